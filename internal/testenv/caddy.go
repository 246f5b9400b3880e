package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Caddy is a running caddy (bin/caddy unless PROM_TENANT_CADDY says otherwise).
// Its working directory is the repository root, so relative paths in a Caddyfile
// (examples/tenants) mean the same as for make demo.
type Caddy struct {
	AdminURL string // http://<admin address>
	LogPath  string

	dir  string
	file string   // the JSON config it was started with
	env  []string // its environment additions
	proc *process
}

// StartCaddy runs caddyfile and waits until its configuration is loaded; it is stopped
// when t ends. The Caddyfile is adapted with `caddy adapt`, and `caddy run` runs the JSON
// with the local CA's trust installation turned off. The Caddyfile must set its admin
// address in the global options (`admin 127.0.0.1:<FreePort>`): the default,
// localhost:2019, would collide between test packages that run in parallel.
func StartCaddy(t testing.TB, caddyfile string) *Caddy {
	t.Helper()
	RequireE2E(t)
	c := &Caddy{dir: t.TempDir()}
	c.LogPath = filepath.Join(c.dir, "caddy.log")
	file, admin, err := c.adapt(t.Context(), caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	c.AdminURL = "http://" + admin

	// Caddy autosaves its config and keeps certificates under the XDG directories:
	// give each instance its own, away from the user's.
	c.env = []string{"XDG_CONFIG_HOME=" + filepath.Join(c.dir, "config"), "XDG_DATA_HOME=" + filepath.Join(c.dir, "data")}
	c.file = file + ".json"
	c.proc, err = startProcess("caddy", c.LogPath, RepoRoot(), c.env, CaddyBinary(), "run", "--config", c.file)
	if err != nil {
		t.Fatal(err)
	}
	cleanupCurrent(t, func() *process { return c.proc })
	c.waitLoaded(t)
	return c
}

// DataDir is Caddy's data directory (XDG_DATA_HOME/caddy), where apps keep state.
func (c *Caddy) DataDir() string { return filepath.Join(c.dir, "data", "caddy") }

// Restart stops Caddy and starts it again with the configuration it was
// started with (not a reload: a new process, as after a crash or a rollout),
// keeping its data directory. The log is appended to.
func (c *Caddy) Restart(t testing.TB) {
	t.Helper()
	c.proc.stop()
	proc, err := startProcessAppend("caddy", c.LogPath, RepoRoot(), c.env, CaddyBinary(), "run", "--config", c.file)
	if err != nil {
		t.Fatal(err)
	}
	c.proc = proc // stopped by the cleanup of the test that started c
	c.waitLoaded(t)
}

func (c *Caddy) waitLoaded(t testing.TB) {
	t.Helper()
	// The admin API answers /config/ only once the whole config is provisioned and
	// started (the load holds the config lock), so a non-null answer means the sites
	// are listening.
	err := c.proc.waitUntil(30*time.Second, func() error {
		b, err := get(t.Context(), c.AdminURL+"/config/")
		if err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
			err = fmt.Errorf("config not loaded yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Reload replaces the running configuration with caddyfile (POST /load of the adapted
// JSON, as `caddy reload` does) and returns when the new one is running. A Caddyfile
// that fails to adapt or load fails t.
func (c *Caddy) Reload(t testing.TB, caddyfile string) {
	t.Helper()
	if err := c.reload(t.Context(), caddyfile); err != nil {
		t.Fatal(err) // the log tail follows from cleanup
	}
	// The old config's server closes its idle connections as it stops; a
	// pooled one picked for the next request would fail with EOF (Caddy does
	// this to keep-alive clients on every reload). Tests are about the new
	// config, so they start from fresh connections.
	http.DefaultClient.CloseIdleConnections()
}

func (c *Caddy) reload(ctx context.Context, caddyfile string) error {
	file, admin, err := c.adapt(ctx, caddyfile)
	if err != nil {
		return err
	}
	cfg, err := os.ReadFile(file + ".json")
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.AdminURL+"/load", bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("testenv: caddy reload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testenv: caddy reload: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	c.AdminURL = "http://" + admin
	return nil
}

// Stop stops Caddy now, before the test ends (cleanup does it otherwise).
func (c *Caddy) Stop() { c.proc.stop() }

// Kill kills Caddy with SIGKILL, as a crash or a node loss would: nothing
// of it runs after Kill returns, no shutdown, no release of anything.
func (c *Caddy) Kill() { c.proc.kill() }

// adapt writes caddyfile to a new file in c.dir, adapts it to JSON (file+".json") with
// the binary under test, and returns the file and the admin address it configures.
// The JSON is what runs: StartCaddy and Reload need the admin address before Caddy runs,
// and the trust store must stay untouched (below).
// Adapting first turns a bad Caddyfile into a clear error rather than a startup timeout.
func (c *Caddy) adapt(ctx context.Context, caddyfile string) (file, admin string, err error) {
	f, err := os.CreateTemp(c.dir, "Caddyfile-*")
	if err != nil {
		return "", "", err
	}
	file = f.Name()
	_, err = f.WriteString(caddyfile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, CaddyBinary(), "adapt", "--adapter", "caddyfile", "--config", file)
	cmd.Dir = RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("testenv: caddy adapt: %v\n%s\nCaddyfile:\n%s", err, stderr.Bytes(), caddyfile)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		return "", "", fmt.Errorf("testenv: caddy adapt output: %w", err)
	}
	listen, _ := dig(cfg, "admin")["listen"].(string)
	admin = strings.TrimPrefix(listen, "tcp/")
	if admin == "" || strings.Contains(admin, "/") {
		return "", "", fmt.Errorf("testenv: the Caddyfile must set a TCP admin address in its global options, e.g. `admin 127.0.0.1:<testenv.FreePort>` (got %q)", listen)
	}
	// A site address with a host name or IP gets a certificate from Caddy's local CA,
	// and Caddy then installs that CA's root in the system trust store (as root, it
	// succeeds). Tests must never touch the machine like that: this is the
	// skip_install_trust global option, applied to every Caddyfile.
	dig(cfg, "apps", "pki", "certificate_authorities", "local")["install_trust"] = false
	if out, err = json.Marshal(cfg); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(file+".json", out, 0o644); err != nil {
		return "", "", err
	}
	return file, admin, nil
}

// dig returns the object at path in m, creating missing ones.
func dig(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	return m
}
