package rewrite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"weak"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestCacheNeverSharedAcrossPolicies: two tenants asking the same query,
// and one tenant whose policy changes, each get their own policy's rewrite,
// while a repeated query is answered from the cache.
func TestCacheNeverSharedAcrossPolicies(t *testing.T) {
	ctx := context.Background()
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	a := newTestPolicy(t, `{namespace="a"}`)
	b := newTestPolicy(t, `{namespace="b"}`)
	// Same text as a, another tenant: never the same entry either.
	a2 := newTestPolicy(t, `{namespace="a"}`)
	const q = `sum(rate(http_requests_total[5m]))`
	want := map[*Policy]string{
		a:  `sum(rate(http_requests_total{namespace="a"}[5m]))`,
		b:  `sum(rate(http_requests_total{namespace="b"}[5m]))`,
		a2: `sum(rate(http_requests_total{namespace="a"}[5m]))`,
	}
	for round := range 2 {
		for _, p := range []*Policy{a, b, a2} {
			got, err := e.EnforceQuery(ctx, p, q)
			if err != nil || got != want[p] {
				t.Errorf("round %d, policy %s: %q, %v; want %q", round, p, got, err, want[p])
			}
		}
	}
	if got := e.cache.hits; got != 3 {
		t.Errorf("%d cache hits, want 3 (the second round)", got)
	}
	if got := len(e.cache.items); got != 3 {
		t.Errorf("%d cache entries, want 3 (one per policy)", got)
	}

	// The tenant's policy changes: the registry hands out a new *Policy.
	changed := newTestPolicy(t, `{namespace="a",team="x"}`)
	got, err := e.EnforceQuery(ctx, changed, q)
	if want := `sum(rate(http_requests_total{namespace="a",team="x"}[5m]))`; err != nil || got != want {
		t.Errorf("after the policy change: %q, %v; want %q", got, err, want)
	}

	// match[] and exemplar queries are keyed apart from queries, and by policy.
	for _, p := range []*Policy{a, b, a, b} {
		ms, err := e.EnforceMatchers(ctx, p, []string{"up"})
		if want := []string{fmt.Sprintf(`{__name__="up",namespace=%q}`, p.branches[0][0].Value)}; err != nil || !slices.Equal(ms, want) {
			t.Errorf("match[] under %s: %q, %v; want %q", p, ms, err, want)
		}
		ex, err := e.EnforceExemplarQuery(ctx, p, q)
		if want := fmt.Sprintf(`{__name__="http_requests_total",namespace=%q}`, p.branches[0][0].Value); err != nil || ex != want {
			t.Errorf("exemplars under %s: %q, %v; want %q", p, ex, err, want)
		}
	}
}

// TestCacheMatchKeys: lists of match[] that concatenate to the same text are
// different keys, and a caller changing its result does not change the
// cache's.
func TestCacheMatchKeys(t *testing.T) {
	ctx := context.Background()
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	p := newTestPolicy(t, `{namespace="a"}`)
	one, err := e.EnforceMatchers(ctx, p, []string{`{a="1"}`, `{b="2"}`})
	if err != nil {
		t.Fatal(err)
	}
	two, err := e.EnforceMatchers(ctx, p, []string{`{a="1"}{b="2"}`})
	if err == nil {
		t.Errorf("the joined text was answered from the two selectors' entry: %q", two)
	}
	one[0] = "changed by the caller"
	again, err := e.EnforceMatchers(ctx, p, []string{`{a="1"}`, `{b="2"}`})
	if want := []string{`{a="1",namespace="a"}`, `{b="2",namespace="a"}`}; err != nil || !slices.Equal(again, want) {
		t.Errorf("from the cache: %q, %v; want %q", again, err, want)
	}
}

// TestCacheKeepsNoFailures: a refusal, or a request that left, is not
// remembered.
func TestCacheKeepsNoFailures(t *testing.T) {
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	p := newTestPolicy(t, `{namespace="a"}`)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.EnforceQuery(done, p, "up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if _, err := e.EnforceMatchers(done, p, []string{"up"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled match[]: %v", err)
	}
	if got, err := e.EnforceQuery(context.Background(), p, "up"); err != nil || got != `up{namespace="a"}` {
		t.Errorf("after a canceled request: %q, %v", got, err)
	}
	if _, err := e.EnforceQuery(context.Background(), p, "up{"); err == nil {
		t.Fatal("a bad query was accepted")
	}
	if len(e.cache.items) != 1 {
		t.Errorf("%d entries, want 1: failures were kept", len(e.cache.items))
	}
}

// TestCacheLimitsNotShared: an enforcer with other limits does not answer
// from the cache of the one it was derived from.
func TestCacheLimitsNotShared(t *testing.T) {
	ctx := context.Background()
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	p := newTestPolicy(t, `{namespace="a"}`)
	const q = `up{job="a-rather-long-job-name"}`
	if _, err := e.EnforceQuery(ctx, p, q); err != nil {
		t.Fatal(err)
	}
	small := e.WithLimits(Limits{MaxQueryLength: 10})
	if got, err := small.EnforceQuery(ctx, p, q); !errors.Is(err, ErrLimit) {
		t.Errorf("a 10-byte limit took a %d-byte query: %q, %v", len(q), got, err)
	}
}

// TestCacheBounded: the cache stays within its size however many distinct
// queries pass, keeps the recently used ones, and does not keep a query over
// 1/64 of its size.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	const size = 64 << 10
	e := NewEnforcer(parser.Options{}).WithCache(size)
	p := newTestPolicy(t, `{namespace="a"}`)
	for i := range 5000 {
		if _, err := e.EnforceQuery(ctx, p, fmt.Sprintf("up{job=%q}", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		// One query used all along stays.
		if _, err := e.EnforceQuery(ctx, p, "up"); err != nil {
			t.Fatal(err)
		}
		if e.cache.size > size {
			t.Fatalf("after %d queries the cache holds %d bytes, over %d", i+1, e.cache.size, size)
		}
	}
	n := len(e.cache.items)
	if n < 100 || n > size/entryOverhead {
		t.Errorf("%d entries in %d bytes", n, size)
	}
	if _, ok := e.cache.items[cacheKey{kind: rewriteQuery, policy: p.id, text: "up"}]; !ok {
		t.Error("the query used all along was evicted")
	}
	big := fmt.Sprintf("up{job=%q}", string(make([]byte, size/64)))
	if _, err := e.EnforceQuery(ctx, p, big); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.cache.items[cacheKey{kind: rewriteQuery, policy: p.id, text: big}]; ok {
		t.Error("a query over 1/64 of the cache was kept")
	}
}

// TestCacheDoesNotKeepPoliciesAlive: entries of a policy the registry has
// replaced must not hold it in memory, as the byte bound counts only texts
// (a policy may have up to 1024 patterns, each compiled).
func TestCacheDoesNotKeepPoliciesAlive(t *testing.T) {
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	p := newTestPolicy(t, `{namespace="a"}`)
	if _, err := e.EnforceQuery(context.Background(), p, "up"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnforceMatchers(context.Background(), p, []string{"up"}); err != nil {
		t.Fatal(err)
	}
	if len(e.cache.items) != 2 {
		t.Fatalf("%d cache entries, want 2", len(e.cache.items))
	}
	wp := weak.Make(p)
	p = nil
	for range 5 {
		runtime.GC()
	}
	if wp.Value() != nil {
		t.Error("the cache keeps a policy alive after its last user dropped it")
	}
	if len(e.cache.items) != 2 { // and keeps e (its cache) alive until here
		t.Errorf("%d cache entries after GC, want 2", len(e.cache.items))
	}
}

// TestCacheSkipsPolicyWithoutID: a Policy not built by NewPolicy has no id
// of its own; it must never share entries with another such policy.
func TestCacheSkipsPolicyWithoutID(t *testing.T) {
	e := NewEnforcer(parser.Options{}).WithCache(1 << 20)
	a, b := *newTestPolicy(t, `{namespace="a"}`), *newTestPolicy(t, `{namespace="b"}`)
	a.id, b.id = 0, 0
	ga, _ := e.EnforceQuery(context.Background(), &a, "up")
	gb, _ := e.EnforceQuery(context.Background(), &b, "up")
	if ga != `up{namespace="a"}` || gb != `up{namespace="b"}` || len(e.cache.items) != 0 {
		t.Errorf("got %q and %q with %d entries; want each policy's own rewrite, none cached", ga, gb, len(e.cache.items))
	}
}
