package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestSlowBodyCutOff runs Caddyfile.example as shipped, with only its
// addresses changed and its read_body timeout shortened to 2s so that the
// test is quick (the shipped value is checked in TestShippedTimeouts, in
// the root package), and sends a POST body one byte a second: the proxy
// must end the connection long before the body is complete. Without the
// timeouts Caddy's defaults let such a client hold the connection for as
// long as it keeps sending.
func TestSlowBodyCutOff(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	prom := testenv.SharedPrometheus(t)
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	cfg := string(raw)
	for _, r := range []struct{ re, with string }{
		{`(?m)^(\s*read_body\s+)\S+`, "${1}2s"},
		{`admin localhost:2019`, fmt.Sprintf("admin 127.0.0.1:%d", admin)},
		{`(?m)^:9091 \{`, fmt.Sprintf("http://127.0.0.1:%d {", port)},
		{`reverse_proxy localhost:9090`, "reverse_proxy " + prom.Addr},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(cfg) {
			t.Fatalf("Caddyfile.example has no %s: the test follows the shipped file", r.re)
		}
		cfg = re.ReplaceAllString(cfg, r.with)
	}
	testenv.StartCaddy(t, cfg)

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "query=" + strings.Repeat("u", 54) // 60 bytes: a minute at a byte a second
	fmt.Fprintf(conn, "POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Tenant-Namespace: team-a\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", port, len(body))

	// The proxy's side ends the exchange: an answer or a closed connection.
	ended := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			ended <- "connection closed: " + err.Error()
			return
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		ended <- fmt.Sprintf("answered %s: %v %s", resp.Status, resp.Header, b)
	}()
	sent := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for sent < len(body) {
		select {
		case how := <-ended:
			t.Logf("after %d of %d body bytes: %s", sent, len(body), how)
			// The refusal in the envelope, naming the timeout; or, had the
			// handler not been reading, a closed connection.
			if strings.HasPrefix(how, "answered") &&
				(!strings.HasPrefix(how, "answered 408") || !strings.Contains(how, "read_body timeout")) {
				t.Fatalf("want 408 naming the read_body timeout, got %s", how)
			}
			return
		case <-tick.C:
			if _, err := conn.Write([]byte{body[sent]}); err != nil {
				t.Logf("after %d of %d body bytes: write failed: %v", sent, len(body), err)
				return
			}
			sent++
		}
	}
	t.Fatalf("the whole %d-byte body was sent a byte a second and the connection is still open", len(body))
}
