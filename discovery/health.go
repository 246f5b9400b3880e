package discovery

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the active probe.
const (
	defaultHealthInterval = 10 * time.Second
	defaultHealthTimeout  = 2 * time.Second
	maxConcurrentProbes   = 16
)

// prober checks discovered addresses with HTTP GET scheme://addr+uri; 2xx
// within the timeout is healthy, anything else (error, timeout, redirect,
// other status) is not.
type prober struct {
	client  *http.Client
	scheme  string
	uri     string
	timeout time.Duration
}

func newProber(scheme, uri string, timeout time.Duration) *prober {
	if scheme == "" {
		scheme = "http"
	}
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	tr := &http.Transport{
		Proxy:             nil, // never through an environment proxy: the probe is about the endpoint itself
		DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives: true, // one request per endpoint per interval: no idle connections to many pods
		// Like the kubelet's HTTPS probes: liveness only, no trust decision and
		// no credentials sent; traffic itself uses reverse_proxy's transport.
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		ResponseHeaderTimeout: timeout,
	}
	return &prober{
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		scheme:  scheme,
		uri:     uri,
		timeout: timeout,
	}
}

// probe reports whether addr ("host:port") answers 2xx.
func (p *prober) probe(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.scheme+"://"+addr+p.uri, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "prom-tenant-health")
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// failing probes addrs concurrently (a bounded number at a time) and
// returns the ones that did not answer 2xx.
func (p *prober) failing(ctx context.Context, addrs []string) map[string]bool {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		down = map[string]bool{}
		sem  = make(chan struct{}, maxConcurrentProbes)
	)
	for _, a := range addrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !p.probe(ctx, a) {
				mu.Lock()
				down[a] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return down
}

// healthy returns the addresses not marked down, in order.
func healthy(addrs []string, down map[string]bool) []string {
	if len(down) == 0 {
		return addrs
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if !down[a] {
			out = append(out, a)
		}
	}
	return out
}
