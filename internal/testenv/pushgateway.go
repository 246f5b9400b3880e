package testenv

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Pushgateway is a running prometheus-pushgateway (Debian's package) on a
// free loopback port, without persistence.
type Pushgateway struct {
	URL     string // http://127.0.0.1:<port>
	LogPath string

	proc *process
}

// StartPushgateway starts a Pushgateway, stopped when t ends.
func StartPushgateway(t testing.TB) *Pushgateway {
	t.Helper()
	RequireE2E(t)
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := &Pushgateway{URL: "http://" + addr, LogPath: filepath.Join(dir, "pushgateway.log")}
	p.proc, err = startProcess("pushgateway", p.LogPath, dir, nil, "prometheus-pushgateway", "--web.listen-address="+addr)
	if err != nil {
		t.Fatal(err)
	}
	p.proc.cleanup(t)
	if err := p.proc.waitUntil(30*time.Second, func() error {
		_, err := get(t.Context(), p.URL+"/-/ready")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}
