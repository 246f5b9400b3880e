package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// TestRemoteWriteCredentials writes to a receiver that requires basic auth:
// passwords from a file under credentials_dir and from a Kubernetes Secret
// in the tenant's namespace are applied; a wrong password, a file outside
// the directory and a Secret without Kubernetes access show up in the status
// and the log with the reason, and copy nothing.
func TestRemoteWriteCredentials(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	kube := testenv.SharedKubeAPIServer(t)
	cs, err := kubernetes.NewForConfig(kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	src := startSource(t, new(exposition))

	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("basic_auth_users:\n  copier: %s\n", hash))
	recv := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{
		Keep:      func(map[string]string) bool { return false },
		Args:      []string{"--web.config.file=" + webConfig},
		ReadyAuth: url.UserPassword("copier", "s3cret"),
	})

	creds, tenants := filepath.Join(dir, "credentials"), filepath.Join(dir, "tenants")
	for _, d := range []string{creds, tenants} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Each tenant's files are in its own folder of credentials_dir.
	for _, ns := range []string{"team-a", "team-b"} {
		if err := os.Mkdir(filepath.Join(creds, ns), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(creds, "team-a", "good"), "s3cret\n") // the newline is trimmed, as for Prometheus's password_file
	writeFile(t, filepath.Join(creds, "team-b", "bad"), "wrong")
	writeFile(t, filepath.Join(dir, "outside"), "s3cret")

	// team-k's password is a Secret in its own namespace; team-j names a
	// Secret of team-k's namespace as if it were its own and must not get it.
	for _, ns := range []string{"team-k", "team-j"} {
		if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Secrets("team-k").Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "receiver"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tenant := func(ns, auth string) {
		writeFile(t, filepath.Join(tenants, ns+".yaml"), fmt.Sprintf(metricAccessTemplate, "copy", ns, `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target:
      type: remote_write
      remoteWrite:
        url: %s/api/v1/write
        basicAuth:
          username: copier
%s`, recv.URL, auth)))
	}
	// The exposition has series of team-a..team-d; these tenants select
	// app_requests_total in their own namespace, so give them data by name.
	tenant("team-a", "          passwordFile: good\n")
	tenant("team-b", "          passwordFile: bad\n")
	tenant("team-c", "          passwordFile: ../team-a/good\n") // another tenant's
	tenant("team-d", "          passwordFile: "+filepath.Join(dir, "outside")+"\n")
	tenant("team-k", "          passwordSecret: {name: receiver, key: password}\n")
	tenant("team-j", "          passwordSecret: {name: receiver, key: password}\n")

	caddyfile := func(admin int, source, kubernetes string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 1m
		allow_url %s
		credentials_dir %s
		%s
	}
}
`, admin, tenants, source, recv.URL, creds, kubernetes)
	}
	caddy := testenv.StartCaddy(t, caddyfile(testenv.FreePort(t), src.URL, "kubernetes {\n\t\t\tkubeconfig "+kube.Kubeconfig+"\n\t\t}\n\t\tleader_election off"))

	failing := func(c *testenv.Caddy, ns, want string) {
		t.Helper()
		s := waitStatus(t, c, ns, 30*time.Second, "failing", func(s remotewrite.Status) bool { return s.LastError != "" })
		if !strings.Contains(s.LastError, want) {
			t.Errorf("%s: error %q does not say %q", ns, s.LastError, want)
		}
		if s.SamplesSent != 0 || s.SamplesDropped != 0 {
			t.Errorf("%s: a failing target must neither receive nor drop samples: %+v", ns, s)
		}
		if log := readFile(t, c.LogPath); !strings.Contains(log, `"tenant":"`+ns+`"`) {
			t.Errorf("%s: no log line names the tenant", ns)
		}
	}
	copying := func(c *testenv.Caddy, ns string) {
		t.Helper()
		waitStatus(t, c, ns, 30*time.Second, "copying", func(s remotewrite.Status) bool { return s.LastError == "" && s.SamplesSent > 0 })
	}

	copying(caddy, "team-a")
	copying(caddy, "team-k")
	failing(caddy, "team-b", "401")
	failing(caddy, "team-c", "must be a relative path inside the credentials directory")
	failing(caddy, "team-d", "must be a relative path inside the credentials directory")
	failing(caddy, "team-j", `secrets "receiver" not found`)
	if log := readFile(t, caddy.LogPath); strings.Contains(log, "s3cret") || strings.Contains(log, "wrong") {
		t.Error("a password appears in the log")
	}

	t.Run("secret without kubernetes", func(t *testing.T) {
		c := testenv.StartCaddy(t, caddyfile(testenv.FreePort(t), src.URL, ""))
		failing(c, "team-k", "passwordSecret needs Kubernetes access")
	})

	t.Run("unreachable source", func(t *testing.T) {
		closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
		c := testenv.StartCaddy(t, caddyfile(testenv.FreePort(t), closed, ""))
		failing(c, "team-a", closed) // the error names the source
		if s := oneStatus(t, c, "team-a"); !strings.Contains(s.LastError, "connection refused") {
			t.Errorf("unreachable source: %q does not say why", s.LastError)
		}
	})
}
