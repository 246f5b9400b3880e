package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// podman runs podman with a store of its own (t's temporary directory), so that the test
// neither sees nor leaves images of the machine's; vfs needs no overlay support, cgroupfs
// no systemd, and runc runs where crun refuses a hybrid cgroup hierarchy with controllers
// in its v2 part ("cgroups in hybrid mode not supported"), as on the machine this was
// written on.
type podman struct {
	bin, root string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("%s=1 but podman is missing (run scripts/install-deps.sh)", testenv.EnvE2E)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatalf("%s=1 but runc is missing (run scripts/install-deps.sh)", testenv.EnvE2E)
	}
	// Not t.TempDir: podman's conmon may still be cleaning a stopped container's
	// storage when the test ends, and TempDir fails the test on a directory that
	// is not yet empty (seen once in make test). Podman removes its containers
	// and images, then the store is removed, retried for a while; a remainder is
	// logged, not a failure of what the test checks.
	root, err := os.MkdirTemp("", "prom-tenant-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{bin: bin, root: root}
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all", "--force"}, {"rmi", "--all", "--force"}} {
			if _, err := p.run(context.Background(), args...); err != nil {
				t.Logf("%v", err)
			}
		}
		for try := 0; ; try++ {
			err := os.RemoveAll(root)
			if err == nil {
				return
			}
			if try == 20 {
				t.Logf("podman's store %s is left behind: %v", root, err)
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	return p
}

// run returns podman's standard output; a failure's error holds its standard error and,
// where one is known, a hint.
func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	global := []string{"--root", filepath.Join(p.root, "storage"), "--runroot", filepath.Join(p.root, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc", "--events-backend", "file",
		"--tmpdir", filepath.Join(p.root, "tmp")}
	cmd := exec.CommandContext(ctx, p.bin, append(global, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w\npodman's stderr:\n%s%s", strings.Join(args, " "), err, stderr.String(), podmanHint(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// podmanHint explains the failures a fresh machine shows.
func podmanHint(stderr string) string {
	switch {
	case strings.Contains(stderr, "newuidmap") || strings.Contains(stderr, "newgidmap") ||
		strings.Contains(stderr, "/etc/subuid") || strings.Contains(stderr, "unable to setup user"):
		return "hint: podman without root maps the image's user 65534 through newuidmap/newgidmap (Debian's uidmap, " +
			"scripts/install-deps.sh installs it) and needs a range of at least 65536 ids for your user in /etc/subuid and /etc/subgid"
	case strings.Contains(stderr, "setrlimit"):
		return "hint: podman could not set the container's limits: this process lacks CAP_SYS_RESOURCE"
	case strings.Contains(stderr, "cgroup"):
		return "hint: a cgroup error: the test asks for runc and cgroupfs; check that runc is installed (scripts/install-deps.sh)"
	case strings.Contains(stderr, "image not known") || strings.Contains(stderr, "pull policy"):
		return "hint: the image was not loaded under the name in bin/image's index: run make image"
	}
	return "hint: run it by hand with --log-level=debug"
}

// TestImageRunsInPodman: the image loaded from bin/prom-tenant-image.tar runs under the
// Deployment's restrictions (its own user 65534, read-only root, no capabilities, no
// privilege escalation; podman's --read-only-tmpfs gives a writable /tmp, where the pod has
// an emptyDir), with a Caddyfile and tenants mounted where the Deployment mounts them, and
// answers a tenant's query as bin/caddy does. The Caddyfile is a minimal one of its own,
// not the chart's, which needs a kube-apiserver (e2e/helm_test.go runs that one on
// bin/caddy).
func TestImageRunsInPodman(t *testing.T) {
	img := readImage(t, imageLayout(t))
	pm := newPodman(t)
	prom := testenv.SharedPrometheus(t)
	ctx := t.Context()

	if _, err := pm.run(ctx, "load", "--quiet", "--input", filepath.Join(testenv.RepoRoot(), "bin", "prom-tenant-image.tar")); err != nil {
		t.Fatal(err)
	}
	// The name the tarball gives the image: make image's IMAGE_REPOSITORY and tag,
	// whatever they were, as bin/image's index records them.
	ref := img.name
	if ref == "" {
		t.Fatalf("bin/image's index has no %s annotation: run make image", containerdImageName)
	}

	// The mounts, readable by nobody.
	conf, tenants := filepath.Join(pm.root, "config"), filepath.Join(pm.root, "tenants")
	for _, d := range []string{conf, tenants} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(tenantsDir, "team-a.yaml"), filepath.Join(tenants, "team-a.yaml"))
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	writeFile(t, filepath.Join(conf, "Caddyfile"), fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory /etc/prom-tenant/tenants
	}
}

http://127.0.0.1:%d {
	prom_tenant
	reverse_proxy %s
}
`, admin, port, prom.Addr))
	for _, f := range []string{filepath.Join(conf, "Caddyfile"), filepath.Join(tenants, "team-a.yaml")} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The image's own ENTRYPOINT, CMD and USER: nothing given after the image name.
	// Rootful podman raises the container's open-file and process limits to 1048576 by
	// default; without CAP_SYS_RESOURCE (a sandbox, a container) that fails ("setrlimit
	// RLIMIT_NOFILE: Operation not permitted"), so ask for limits any process may set.
	name := fmt.Sprintf("prom-tenant-image-test-%d", port)
	// --pull=never: the loaded image or nothing, never one from a registry of the same name.
	if _, err := pm.run(ctx, "run", "--detach", "--pull=never", "--name", name, "--network", "host",
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
		"--read-only", "--read-only-tmpfs", "--cap-drop", "all", "--security-opt", "no-new-privileges",
		"--volume", conf+":/etc/caddy:ro", "--volume", tenants+":/etc/prom-tenant/tenants:ro", ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if t.Failed() {
			logs, _ := pm.run(ctx, "logs", name)
			t.Logf("container log:\n%s", logs)
		}
		if out, err := pm.run(ctx, "rm", "--force", "--time", "10", name); err != nil {
			t.Logf("%v: %s", err, out)
		}
	})
	if user, err := pm.run(ctx, "inspect", "--format", "{{.Config.User}}", name); err != nil || user != "65534:65534" {
		t.Errorf("container user %q (%v), want 65534:65534", user, err)
	}

	proxyURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitListening(t, pm, name, proxyURL)

	q := proxyURL + "/api/v1/query?" + url.Values{"query": {"up"}, "time": {fmt.Sprint(prom.End.Unix())}}.Encode()
	got := get(t, q, "team-a")
	if !strings.Contains(got, `"status":"success"`) || !strings.Contains(got, `"namespace":"team-a"`) {
		t.Fatalf("team-a's up through the image: %s", got)
	}
	// The same answer as bin/caddy gives with the same tenants.
	local := startProxy(t, tenants, "")
	want := get(t, local.url+"/api/v1/query?"+url.Values{"query": {"up"}, "time": {fmt.Sprint(prom.End.Unix())}}.Encode(), "team-a")
	if got != want {
		t.Errorf("through the image:\n%s\nthrough bin/caddy:\n%s", got, want)
	}
	// Enforced: a tenant without MetricAccess objects is refused.
	if body := get(t, q, "team-b"); !strings.Contains(body, `"errorType":"forbidden"`) {
		t.Errorf("team-b (no MetricAccess mounted) through the image: %s", body)
	}

	// Under the read-only root, Caddy wrote its autosave and data under /tmp without
	// complaint: no error in its log.
	logs, err := pm.run(ctx, "logs", name)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(logs) {
		if strings.Contains(l, `"level":"error"`) {
			t.Errorf("caddy logged an error in the container: %s", l)
		}
	}
}

// waitListening waits until url accepts connections, failing early if the container
// exits.
func waitListening(t *testing.T, pm *podman, name, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		state, _ := pm.run(t.Context(), "inspect", "--format", "{{.State.Status}}", name)
		if state != "running" || time.Now().After(deadline) {
			t.Fatalf("the container (%s) does not answer on %s: %v", state, url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
