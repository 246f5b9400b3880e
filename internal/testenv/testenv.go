// Package testenv runs the real parts (Prometheus backfilled with internal/exampledata,
// and the repository's bin/caddy) for end-to-end tests. It is an ordinary package so that
// several test packages can share it; nothing outside tests should import it.
//
// End-to-end tests run only when PROM_TENANT_E2E=1 (make test sets it, after installing
// the binaries and building bin/caddy). Then a missing binary fails the test instead of
// skipping it, so CI cannot pass by running nothing.
//
// Typical use, with one Prometheus for the whole test package:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		prom := testenv.SharedPrometheus(t) // skips unless PROM_TENANT_E2E=1
//		proxy, admin := testenv.FreePort(t), testenv.FreePort(t)
//		testenv.StartCaddy(t, fmt.Sprintf(`{
//			admin 127.0.0.1:%d
//			prom_tenancy { directory examples/tenants }
//		}
//		:%d {
//			prom_tenant
//			reverse_proxy %s
//		}`, admin, proxy, prom.Addr))
//		// query http://127.0.0.1:<proxy>/api/v1/query?...&time=<prom.End>
//	}
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvE2E is the variable that turns end-to-end tests on; EnvCaddy overrides the
// path of the caddy binary (default: <repo>/bin/caddy).
const (
	EnvE2E   = "PROM_TENANT_E2E"
	EnvCaddy = "PROM_TENANT_CADDY"
)

// RequireE2E skips the test unless PROM_TENANT_E2E=1, and fails it if that is set but
// prometheus, promtool or the caddy binary is missing. Start* call it themselves.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvE2E) != "1" {
		t.Skip("set PROM_TENANT_E2E=1 (make test does) to run end-to-end tests")
	}
	if err := checkBinaries(); err != nil {
		t.Fatalf("%s=1 but %v", EnvE2E, err)
	}
}

func checkBinaries() error {
	var missing []string
	for _, b := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b+" (run scripts/install-deps.sh)")
		}
	}
	if fi, err := os.Stat(CaddyBinary()); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing = append(missing, CaddyBinary()+" (run make build, or set "+EnvCaddy+")")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s", strings.Join(missing, ", "))
	}
	return nil
}

// CaddyBinary is the caddy to run: $PROM_TENANT_CADDY, else <repo>/bin/caddy.
func CaddyBinary() string {
	if b := os.Getenv(EnvCaddy); b != "" {
		return b
	}
	return filepath.Join(RepoRoot(), "bin", "caddy")
}

var repoRoot = sync.OnceValue(func() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			panic("testenv: no go.mod above " + dir)
		}
	}
})

// RepoRoot is the nearest directory at or above the working directory (a test's package
// directory) that holds go.mod.
func RepoRoot() string { return repoRoot() }

var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, and never the same
// one twice in a process. Another process can still take it before it is used; the
// window is small enough for tests.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("testenv: free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports[p] {
			ports[p] = true
			return p, nil
		}
	}
	return 0, errors.New("testenv: no fresh free port")
}

// A process is a child whose stdout and stderr go to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it has exited; err is set then
	err  error
}

func startProcess(name, logPath, dir string, env []string, bin string, args ...string) (*process, error) {
	return startProcessLog(os.O_TRUNC, name, logPath, dir, env, bin, args...)
}

// startProcessAppend is startProcess appending to the log: a restart keeps
// what the process logged before.
func startProcessAppend(name, logPath, dir string, env []string, bin string, args ...string) (*process, error) {
	return startProcessLog(os.O_APPEND, name, logPath, dir, env, bin, args...)
}

func startProcessLog(mode int, name, logPath, dir string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|mode, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop asks the process to shut down (SIGTERM) and kills it if it has not after 10s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill kills the process (SIGKILL) and waits until it has exited.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// tail returns the last n lines of the log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls ready until it returns nil, the process exits, or timeout passes.
func (p *process) waitUntil(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("testenv: %s exited before it was ready (%v)", p.name, p.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: %s not ready after %v: %v", p.name, timeout, err)
		}
	}
}

// cleanup stops p at the end of t and, if t failed, logs the tail of p's log.
func (p *process) cleanup(t testing.TB) {
	cleanupCurrent(t, func() *process { return p })
}

// cleanupCurrent is cleanup for whichever process current returns when t
// ends: a restarted process replaces the one its owner started with, and
// stays owned by the test that started the first.
func cleanupCurrent(t testing.TB, current func() *process) {
	t.Cleanup(func() {
		p := current()
		p.stop()
		if t.Failed() {
			t.Logf("last lines of the %s log %s:\n%s", p.name, p.log, p.tail(60))
		}
	})
}

var client = &http.Client{Timeout: 10 * time.Second}

// get fetches url and returns the body if the status is 200.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}
