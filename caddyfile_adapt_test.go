package promtenant

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/caddyfile_adapt")

const goldenSeparator = "\n----------\n"

// TestCaddyfileAdapt adapts each testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a separator line, the expected JSON) and compares.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), goldenSeparator)
			if !ok {
				t.Fatalf("%s has no separator line", f)
			}
			got := adapt(t, input+"\n")
			if *update {
				if err := os.WriteFile(f, []byte(input+goldenSeparator+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != strings.TrimSpace(want) {
				t.Errorf("adapted JSON differs (run go test -run TestCaddyfileAdapt -update to accept)\n got: %s\nwant: %s", got, strings.TrimSpace(want))
			}
		})
	}
}

func adapt(t *testing.T, input string) string {
	t.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestCaddyfileAdaptErrors(t *testing.T) {
	for _, tc := range []struct{ name, input, want string }{
		{"unknown subdirective", ":80 {\n\tprom_tenant {\n\t\tbogus\n\t}\n}", `unrecognized prom_tenant subdirective "bogus"`},
		{"tenant needs a value", ":80 {\n\tprom_tenant {\n\t\ttenant\n\t}\n}", "wrong argument count"},
		{"no inline arguments", ":80 {\n\tprom_tenant team-a\n}", "wrong argument count"},
		{"bad body size", ":80 {\n\tprom_tenant {\n\t\tmax_request_body lots\n\t}\n}", `parsing max_request_body "lots"`},
		{"zero body size", ":80 {\n\tprom_tenant {\n\t\tmax_request_body 0\n\t}\n}", "must be between"},
		{"bad metadata cap", ":80 {\n\tprom_tenant {\n\t\tmax_metadata_response lots\n\t}\n}", `parsing max_metadata_response "lots"`},
		{"zero metadata cap", ":80 {\n\tprom_tenant {\n\t\tmax_metadata_response 0\n\t}\n}", `max_metadata_response "0" must be between`},
		{"bad query length", ":80 {\n\tprom_tenant {\n\t\tmax_query_length lots\n\t}\n}", `parsing max_query_length "lots"`},
		{"zero rewritten size", ":80 {\n\tprom_tenant {\n\t\tmax_rewritten_size 0\n\t}\n}", `max_rewritten_size "0" must be between 1 byte and 1 GiB`},
		{"zero depth", ":80 {\n\tprom_tenant {\n\t\tmax_query_depth 0\n\t}\n}", `max_query_depth "0" must be a whole number between 1 and 1048576`},
		{"bad matchers", ":80 {\n\tprom_tenant {\n\t\tmax_matchers many\n\t}\n}", `max_matchers "many" must be a whole number`},
		{"depth needs a value", ":80 {\n\tprom_tenant {\n\t\tmax_query_depth\n\t}\n}", "wrong argument count"},
		{"zero union selectors", ":80 {\n\tprom_tenant {\n\t\tmax_union_selectors 0\n\t}\n}", `max_union_selectors "0" must be a whole number between 1 and 1048576`},
		{"zero rewrite cache", ":80 {\n\tprom_tenant {\n\t\trewrite_cache_size 0\n\t}\n}", `rewrite_cache_size "0" must be between 1 byte and 1 TiB`},
		{"rewrite cache off and more", ":80 {\n\tprom_tenant {\n\t\trewrite_cache_size off 1MiB\n\t}\n}", `parsing rewrite_cache_size "off"`},
		{"rewrite cache needs a value", ":80 {\n\tprom_tenant {\n\t\trewrite_cache_size\n\t}\n}", "wrong argument count"},
		{"unknown backend", ":80 {\n\tprom_tenant {\n\t\tbackend mimir\n\t}\n}", `unknown backend "mimir": use one of prometheus, thanos, victoriametrics`},
		{"backend needs a value", ":80 {\n\tprom_tenant {\n\t\tbackend\n\t}\n}", "wrong argument count"},
		{"backend_params needs a value", ":80 {\n\tprom_tenant {\n\t\tbackend_params\n\t}\n}", "wrong argument count"},
		{"unknown backend param", ":80 {\n\tprom_tenant {\n\t\tbackend_params thanos timeout_all\n\t}\n}", `backend_params: unknown parameter or preset "timeout_all": use the presets thanos, victoriametrics or the parameters dedup,`},
		{"enforcement backend param", ":80 {\n\tprom_tenant {\n\t\tbackend_params extra_filters[]\n\t}\n}", `backend_params: "extra_filters[]" is an enforcement parameter of VictoriaMetrics and is never let through`},
		{"replica_labels needs a value", ":80 {\n\tprom_tenant {\n\t\treplica_labels\n\t}\n}", "wrong argument count"},
		{"analyze backend param", ":80 {\n\tprom_tenant {\n\t\tbackend thanos\n\t\tbackend_params analyze\n\t}\n}", `backend_params: "analyze" is never let through: Thanos Query's analyze exposes`},
		{"backend param of another engine", ":80 {\n\tprom_tenant {\n\t\tbackend_params thanos\n\t}\n}", `backend_params: dedup is a Thanos parameter; set backend thanos (the backend is prometheus`},
		{"backend param of another engine, backend after", ":80 {\n\tprom_tenant {\n\t\tbackend_params nocache\n\t\tbackend thanos\n\t}\n}", `backend_params: nocache is a VictoriaMetrics parameter; set backend victoriametrics (the backend is thanos`},
		{"replica_labels not a label", ":80 {\n\tprom_tenant {\n\t\tbackend thanos\n\t\treplica_labels a-b\n\t}\n}", `replica_labels: "a-b": want a label name`},
		{"replica_labels reserved", ":80 {\n\tprom_tenant {\n\t\tbackend thanos\n\t\treplica_labels __name__\n\t}\n}", `replica_labels: "__name__": a replica label is an external label, never a reserved __ name`},
		{"replica_labels without thanos", ":80 {\n\tprom_tenant {\n\t\treplica_labels replica\n\t}\n}", `replica_labels is only meaningful with backend thanos, not prometheus`},
		{"remote write unknown", "{\n\tprom_remote_write http://p {\n\t\tbogus\n\t}\n}", `unrecognized prom_remote_write subdirective "bogus"`},
		{"remote write twice", "{\n\tprom_remote_write http://p\n\tprom_remote_write http://q\n}", "prom_remote_write is already set"},
		{"remote write bad shard", "{\n\tprom_remote_write http://p {\n\t\tshard 3 3\n\t}\n}", "want 0 <= index < count"},
		{"remote write zero interval", "{\n\tprom_remote_write http://p {\n\t\tinterval 0s\n\t}\n}", "interval must be positive"},
		{"remote write leader election on", "{\n\tprom_remote_write http://p {\n\t\tleader_election on\n\t}\n}", "leader_election takes no argument but off, or a block"},
		{"remote write bad lease", "{\n\tprom_remote_write http://p {\n\t\tleader_election {\n\t\t\tlease_duration 0s\n\t\t}\n\t}\n}", "lease_duration must be positive"},
		{"remote write bad batch", "{\n\tprom_remote_write http://p {\n\t\tbatch_size -1\n\t}\n}", "batch_size must be a positive integer"},
		{"tenancy twice", "{\n\tprom_tenancy {\n\t\tdirectory a\n\t}\n\tprom_tenancy {\n\t\tdirectory b\n\t}\n}\n:80 {\n\tprom_tenant\n}", "prom_tenancy is already set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
			_, _, err := adapter.Adapt([]byte(tc.input), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Adapt error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
