package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// TestRemoteWriteProtocol2 sends Remote-Write 2.0 to a Prometheus 3.x
// receiver, which must then hold the exact copy, and to Debian's 2.42, which
// answers 2.0 with 204 and stores nothing: that must be an error in the
// status, never counted as sent.
func TestRemoteWriteProtocol2(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	v3 := testenv.Prometheus3Binary(t)
	src := startSource(t, new(exposition))
	recv3 := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Keep: func(map[string]string) bool { return false }, Binary: v3})
	recv2 := emptyPrometheus(t)

	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants")
	if err := os.Mkdir(tenants, 0o755); err != nil {
		t.Fatal(err)
	}
	for ns, url := range map[string]string{"team-a": recv3.URL, "team-b": recv2.URL} {
		writeFile(t, filepath.Join(tenants, ns+".yaml"), fmt.Sprintf(metricAccessTemplate, "copy", ns, `["app_requests_total", "app_temperature_celsius", "app_ephemeral"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    extraLabels: {cluster: c1}
    target:
      type: remote_write
      remoteWrite:
        url: %s/api/v1/write
        protocolVersion: "2.0"
`, url)))
	}
	caddy := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 1m
		allow_url %s %s
	}
}
`, testenv.FreePort(t), tenants, src.URL, recv3.URL, recv2.URL))

	time.Sleep(10 * time.Second) // two passes, the ephemeral series begun and ended
	s := waitStatus(t, caddy, "team-a", 60*time.Second, "copied", func(s remotewrite.Status) bool {
		return s.LastError == "" && s.CopiedUntil.After(time.Now().Add(-5*time.Second))
	})
	if s.Protocol != "2.0" {
		t.Errorf("team-a protocol %q", s.Protocol)
	}
	assertExactCopy(t, newAPI(t, src.URL, ""), newAPI(t, recv3.URL, ""),
		`{__name__=~"app_requests_total|app_temperature_celsius|app_ephemeral",namespace="team-a"}`,
		relabel{extra: map[string]string{"cluster": "c1"}}, s.CopiedUntil)

	old := waitStatus(t, caddy, "team-b", 30*time.Second, "failing", func(s remotewrite.Status) bool { return s.LastError != "" })
	if old.SamplesSent != 0 || !strings.Contains(old.LastError, "2.0") {
		t.Errorf("2.0 against a 1.0-only receiver: %+v", old)
	}
	if got := instant(t, newAPI(t, recv2.URL, ""), `{__name__=~".+"}`, time.Now()); len(got) != 0 {
		t.Errorf("the 1.0 receiver stored %d series", len(got))
	}
}
