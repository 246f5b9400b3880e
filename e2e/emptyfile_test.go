package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestTruncatedTenantFileKeepsAccess rewrites a tenant's manifest file in
// place, as a tool without atomic writes does (truncate, then write), while
// the tenant queries bin/caddy without pause: no request may be refused in
// between, though the proxy reads the file empty, and the admin API says the
// file is held. A file that then stays empty loses its objects once the
// grace has passed.
func TestTruncatedTenantFileKeepsAccess(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"team-a.yaml", "team-b.yaml"} {
		copyFile(t, filepath.Join(tenantsDir, f), filepath.Join(dir, f))
	}
	p := startProxyWith(t, testenv.SharedPrometheus(t),
		fmt.Sprintf("directory %s {\n\t\t\treload_interval 100ms\n\t\t\tempty_file_grace 3s\n\t\t}", dir), "")
	path := filepath.Join(dir, "team-a.yaml")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var mu sync.Mutex
	var sent int
	refused := map[int]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 10 * time.Second}
		for !stop.Load() {
			resp, err := client.Do(request(t, "GET", p.url+"/api/v1/query?query=up", "team-a", ""))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			sent++
			if resp.StatusCode != http.StatusOK {
				refused[resp.StatusCode]++
			}
			mu.Unlock()
		}
	}()

	// Truncated in place, and left empty for ten reload intervals: the
	// proxy reads it empty several times.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	held := heldFiles(t, p)
	if err := os.WriteFile(path, content, 0o644); err != nil { // in place, as the tool does
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(refused) != 0 || sent == 0 {
		t.Errorf("%d requests, refused by status: %v; want none refused while the file was rewritten", sent, refused)
	}
	if !strings.Contains(held[path], "file is empty; its 1 MetricAccess objects stay in force until") {
		t.Errorf("admin API files while the file was empty: %q, want %s held", held, path)
	}
	if h := heldFiles(t, p); len(h) != 0 {
		t.Errorf("files after the rewrite: %q, want none", h)
	}

	// Left empty: the tenant goes once the grace has passed, the other stays.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	status := func(tenant string) int {
		s, _, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query=up", tenant, ""))
		return s
	}
	eventually(t, "team-a refused after empty_file_grace", 15*time.Second, func() bool { return status("team-a") == http.StatusForbidden })
	if s := status("team-b"); s != http.StatusOK {
		t.Errorf("team-b: %d", s)
	}
}

// heldFiles returns the admin API's rejected files and their errors.
func heldFiles(t *testing.T, p *proxy) map[string]string {
	t.Helper()
	resp, err := http.Get(p.caddy.AdminURL + "/prom_tenant/tenants")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Files []struct{ Source, Error string } `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range v.Files {
		out[f.Source] = f.Error
	}
	return out
}
