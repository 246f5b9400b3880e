package tenancy

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		wantPath string
		wantIvl  time.Duration
		wantErr  string
	}{
		{name: "directory", input: `prom_tenancy {
			directory /etc/tenants
		}`, wantPath: "/etc/tenants"},
		{name: "reload interval", input: `prom_tenancy {
			directory /etc/tenants {
				reload_interval 2s
			}
		}`, wantPath: "/etc/tenants", wantIvl: 2 * time.Second},
		{name: "empty", input: `prom_tenancy`},
		{name: "option argument", input: `prom_tenancy foo`, wantErr: "wrong argument count"},
		{name: "directory without path", input: `prom_tenancy {
			directory
		}`, wantErr: "wrong argument count"},
		{name: "directory with two paths", input: `prom_tenancy {
			directory /a /b
		}`, wantErr: "wrong argument count"},
		{name: "directory twice", input: `prom_tenancy {
			directory /a
			directory /b
		}`, wantErr: "directory already specified"},
		{name: "unknown subdirective", input: `prom_tenancy {
			dir /a
		}`, wantErr: `unrecognized subdirective "dir"`},
		{name: "unknown nested subdirective", input: `prom_tenancy {
			directory /a {
				interval 2s
			}
		}`, wantErr: `unrecognized subdirective "interval"`},
		{name: "bad duration", input: `prom_tenancy {
			directory /a {
				reload_interval soon
			}
		}`, wantErr: "parsing reload_interval"},
		{name: "zero duration", input: `prom_tenancy {
			directory /a {
				reload_interval 0s
			}
		}`, wantErr: "reload_interval must be positive"},
		{name: "reload_interval without value", input: `prom_tenancy {
			directory /a {
				reload_interval
			}
		}`, wantErr: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var app App
			err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				wantErrContains(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantPath == "" {
				if app.Directory != nil {
					t.Fatalf("directory = %+v, want none", app.Directory)
				}
				return
			}
			if app.Directory == nil || app.Directory.Path != tt.wantPath {
				t.Fatalf("directory = %+v, want path %q", app.Directory, tt.wantPath)
			}
			if got := app.Directory.ReloadInterval; got != caddy.Duration(tt.wantIvl) {
				t.Errorf("reload_interval = %v, want %v", time.Duration(got), tt.wantIvl)
			}
		})
	}
}
