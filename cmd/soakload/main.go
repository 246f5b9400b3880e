// Command soakload sends a tenant's mixed Prometheus API load to a
// prom_tenant site for a while and checks every answer, for make soak
// (scripts/soak.sh) and its failover measurement.
//
// Each of -concurrency workers loops over instant queries, range queries,
// series, label values and a POSTed query, with keep-alive connections as
// Grafana holds them. Every answer that is not a 200 must be Prometheus's
// JSON error envelope and must not contain any of the -leak strings (the
// upstream's address); transport errors (EOF, reset) are counted apart.
// Each failed request is appended to -events with its time, so that the
// script can tell when errors stopped; the totals are written to -summary as
// JSON when -duration has passed (or on SIGTERM).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// summary is what -summary receives.
type summary struct {
	Requests int               `json:"requests"`
	OK       int               `json:"ok"`
	ByKind   map[string]int    `json:"by_kind"`  // "<status> <error>" for an envelope, "non_json <status>", "leak <status>", "transport <error>"
	NonJSON  int               `json:"non_json"` // error answers that are not the envelope
	Leaks    int               `json:"leaks"`    // answers naming a -leak string
	Examples map[string]string `json:"examples"` // the first body of each kind that is not an envelope
}

type loader struct {
	base, tenant string
	leaks        []string
	client       *http.Client

	mu     sync.Mutex
	sum    summary
	events *bufio.Writer
}

func main() {
	base := flag.String("url", "", "the prom_tenant site, e.g. http://127.0.0.1:9091 (required)")
	tenant := flag.String("tenant", "team-a", "X-Tenant-Namespace")
	concurrency := flag.Int("concurrency", 4, "workers")
	duration := flag.Duration("duration", 5*time.Minute, "how long to send")
	leak := flag.String("leak", "", "comma-separated strings no answer may contain (the upstreams' addresses)")
	eventsPath := flag.String("events", "", "file to append each failed request to (unix ms, kind)")
	summaryPath := flag.String("summary", "", "file for the JSON totals (default: stdout)")
	flag.Parse()
	if *base == "" {
		log.Fatal("soakload: -url is required")
	}
	l := &loader{
		base: strings.TrimSuffix(*base, "/"), tenant: *tenant,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency}},
		sum:    summary{ByKind: map[string]int{}, Examples: map[string]string{}},
	}
	for _, s := range strings.Split(*leak, ",") {
		if s != "" {
			l.leaks = append(l.leaks, s)
		}
	}
	if *eventsPath != "" {
		f, err := os.OpenFile(*eventsPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		l.events = bufio.NewWriter(f)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				l.one(ctx, i)
			}
		}()
	}
	wg.Wait()
	l.client.CloseIdleConnections() // the proxy's goroutines for them end now, not at its idle timeout

	if l.events != nil {
		_ = l.events.Flush()
	}
	out, _ := json.MarshalIndent(l.sum, "", "  ")
	if *summaryPath == "" {
		fmt.Println(string(out))
		return
	}
	if err := os.WriteFile(*summaryPath, out, 0o644); err != nil {
		log.Fatal(err)
	}
}

// rangeQuery is a dashboard panel: a rate summed by label over an hour.
const rangeQuery = `sum by (code) (rate(http_requests_total[5m]))`

// one sends the i-th request of the mix and records its answer.
func (l *loader) one(ctx context.Context, i int) {
	now := time.Now()
	var req *http.Request
	var err error
	switch i % 5 {
	case 0:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/v1/query?query=up", nil)
	case 1:
		q := url.Values{"query": {rangeQuery}, "start": {unix(now.Add(-time.Hour))}, "end": {unix(now)}, "step": {"60"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/v1/query_range?"+q.Encode(), nil)
	case 2:
		q := url.Values{"match[]": {"http_requests_total"}, "start": {unix(now.Add(-time.Hour))}, "end": {unix(now)}}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/v1/series?"+q.Encode(), nil)
	case 3:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/v1/label/__name__/values", nil)
	case 4:
		form := url.Values{"query": {`sum(rate(http_requests_total{code=~"2..|3.."}[5m])) / sum(rate(http_requests_total[5m]))`}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/api/v1/query", strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("X-Tenant-Namespace", l.tenant)
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // the end of the run, not an answer
		}
		l.record(0, "transport "+transportKind(err), "")
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		l.record(0, "transport "+transportKind(err), "")
		return
	}
	if resp.StatusCode == http.StatusOK {
		l.record(http.StatusOK, "", "")
		return
	}
	for _, s := range l.leaks {
		if strings.Contains(string(body), s) {
			l.record(resp.StatusCode, "leak "+strconv.Itoa(resp.StatusCode), string(body))
			return
		}
	}
	var env struct{ Status, ErrorType, Error string }
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/json" || json.Unmarshal(body, &env) != nil || env.Status != "error" || env.Error == "" {
		l.record(resp.StatusCode, "non_json "+strconv.Itoa(resp.StatusCode), string(body))
		return
	}
	l.record(resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, env.Error), "")
}

func (l *loader) record(status int, kind, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sum.Requests++
	if status == http.StatusOK {
		l.sum.OK++
		return
	}
	l.sum.ByKind[kind]++
	switch {
	case strings.HasPrefix(kind, "non_json"):
		l.sum.NonJSON++
	case strings.HasPrefix(kind, "leak"):
		l.sum.Leaks++
	}
	if body != "" {
		if _, ok := l.sum.Examples[kind]; !ok {
			l.sum.Examples[kind] = truncate(body, 300)
		}
	}
	if l.events != nil {
		fmt.Fprintf(l.events, "%d\t%s\n", time.Now().UnixMilli(), kind)
	}
}

// transportKind names a transport error without its addresses: EOF,
// reset, refused, timeout, or its last part.
func transportKind(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.HasSuffix(msg, "EOF"):
		return "EOF"
	case strings.Contains(msg, "connection reset"):
		return "connection reset"
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "timeout"):
		return "timeout"
	}
	parts := strings.Split(msg, ": ")
	return parts[len(parts)-1]
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
