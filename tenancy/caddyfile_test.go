package tenancy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"go.uber.org/zap"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		wantPath  string
		wantIvl   time.Duration
		wantGrace time.Duration
		wantErr   string
	}{
		{name: "directory", input: `prom_tenancy {
			directory /etc/tenants
		}`, wantPath: "/etc/tenants"},
		{name: "reload interval", input: `prom_tenancy {
			directory /etc/tenants {
				reload_interval 2s
			}
		}`, wantPath: "/etc/tenants", wantIvl: 2 * time.Second},
		{name: "empty file grace", input: `prom_tenancy {
			directory /etc/tenants {
				empty_file_grace 30s
			}
		}`, wantPath: "/etc/tenants", wantGrace: 30 * time.Second},
		{name: "empty file grace zero", input: `prom_tenancy {
			directory /etc/tenants {
				empty_file_grace 0s
			}
		}`, wantErr: "empty_file_grace must be positive"},
		{name: "empty file grace not a duration", input: `prom_tenancy {
			directory /etc/tenants {
				empty_file_grace a while
			}
		}`, wantErr: "parsing empty_file_grace"},
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
			if got := app.Directory.EmptyFileGrace; got != caddy.Duration(tt.wantGrace) {
				t.Errorf("empty_file_grace = %v, want %v", time.Duration(got), tt.wantGrace)
			}
		})
	}
}

func TestUnmarshalCaddyfileKubernetes(t *testing.T) {
	var app App
	err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`prom_tenancy {
		directory /etc/tenants
		kubernetes {
			kubeconfig /etc/kubeconfig
			namespaces team-a team-b
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	k := app.Kubernetes
	if k == nil || k.Kubeconfig != "/etc/kubeconfig" || len(k.Namespaces) != 2 || k.Namespaces[1] != "team-b" || app.Directory == nil {
		t.Fatalf("got %+v, directory %+v", k, app.Directory)
	}
	var inCluster App
	if err := inCluster.UnmarshalCaddyfile(caddyfile.NewTestDispenser("prom_tenancy {\n\tkubernetes\n}")); err != nil ||
		inCluster.Kubernetes == nil || inCluster.Kubernetes.Kubeconfig != "" || inCluster.Validate() != nil {
		t.Fatalf("kubernetes without a block: %+v, %v", inCluster.Kubernetes, err)
	}
	for input, want := range map[string]string{
		"prom_tenancy {\n\tkubernetes {\n\t\tnamespaces\n\t}\n}":     "wrong argument count",
		"prom_tenancy {\n\tkubernetes {\n\t\tkubeconfig a b\n\t}\n}": "wrong argument count",
		"prom_tenancy {\n\tkubernetes {\n\t\tbogus\n\t}\n}":          `unrecognized kubernetes subdirective "bogus"`,
		"prom_tenancy {\n\tkubernetes\n\tkubernetes\n}":              "kubernetes already specified",
		"prom_tenancy {\n\tkubernetes in-cluster\n}":                 "wrong argument count",
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

func TestKubernetesProvisionNeedsConfig(t *testing.T) {
	// Outside a cluster, without a kubeconfig, provisioning says why (no network).
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	k := &KubernetesSource{}
	if err := k.provision(zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "kubernetes:") {
		t.Fatalf("provision outside a cluster: %v", err)
	}
	k = &KubernetesSource{Kubeconfig: filepath.Join(t.TempDir(), "missing")}
	if err := k.provision(zap.NewNop(), nil); err == nil {
		t.Fatal("provision with a missing kubeconfig: no error")
	}
}

func TestUnmarshalCaddyfileMaxPatterns(t *testing.T) {
	var app App
	if err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser("prom_tenancy {\n\tdirectory /a\n\tmax_patterns_per_namespace 4096\n}")); err != nil {
		t.Fatal(err)
	}
	if app.MaxPatternsPerNamespace != 4096 {
		t.Errorf("max_patterns_per_namespace = %d, want 4096", app.MaxPatternsPerNamespace)
	}
	for input, want := range map[string]string{
		"prom_tenancy {\n\tmax_patterns_per_namespace\n}":      "wrong argument count",
		"prom_tenancy {\n\tmax_patterns_per_namespace 1 2\n}":  "wrong argument count",
		"prom_tenancy {\n\tmax_patterns_per_namespace 0\n}":    "must be a positive integer",
		"prom_tenancy {\n\tmax_patterns_per_namespace many\n}": "must be a positive integer",
		"prom_tenancy {\n\tmax_patterns_per_namespace -5\n}":   "must be a positive integer",
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

// TestGlobalOption: this package registers its own global option, so a
// Caddyfile adapts to the prom_tenancy app with no other prom-tenant package.
func TestGlobalOption(t *testing.T) {
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte("{\n\tprom_tenancy {\n\t\tdirectory /etc/tenants\n\t}\n}\n"), nil)
	if want := `"apps":{"prom_tenancy":{"directory":{"path":"/etc/tenants"}}}`; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("adapted to %s, %v; want it to hold %s", out, err, want)
	}
}
