package rewrite

import (
	"container/list"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// cache remembers recent rewrites, so that a dashboard's queries, which
// Grafana sends with the same text on every refresh, are parsed and printed
// once. It is bounded in bytes and evicts the least recently used entry.
//
// A rewrite depends on the policy, the query and the Enforcer (its parser
// options and limits). A cache belongs to one Enforcer (WithLimits and
// WithCache give the copy a cache of its own), and each entry is keyed by
// the kind of rewrite, the policy's id and the text. Keying by the id (each
// *Policy's own, never reused), not its text, means two tenants never share
// an entry even when their policies print the same, and a policy that
// changes (a new *Policy from the registry) never finds the old one's
// entries: they age out. Unlike its pointer, the id does not keep the
// policy alive, so the byte bound, which counts only the texts, bounds the
// memory the cache holds.
// Only successes are kept: a refusal, or a request that left, is computed
// again.
type cache struct {
	max int // bytes, at least minCacheSize

	mu    sync.Mutex
	size  int
	lru   list.List // of *cacheEntry, most recently used first
	items map[cacheKey]*list.Element
	hits  uint64 // for tests
}

// rewriteKind is the method a cache entry was computed by.
type rewriteKind uint8

const (
	rewriteQuery rewriteKind = iota
	rewriteExemplar
	rewriteMatch
)

type cacheKey struct {
	kind   rewriteKind
	policy uint64 // Policy.id
	// text is the query, or the match[] selectors length-prefixed.
	text string
}

type cacheEntry struct {
	key   cacheKey
	query string   // for rewriteQuery and rewriteExemplar
	match []string // for rewriteMatch
	size  int
}

// entryOverhead approximates an entry's bytes besides its strings: the map
// slot, the list element, the entry and the slice header.
const entryOverhead = 200

// minCacheSize is the smallest cache worth having: one entry may take up to
// 1/64 of it, and below this a typical dashboard query would not fit.
const minCacheSize = 64 << 10

func newCache(maxBytes int) *cache {
	if maxBytes <= 0 {
		return nil
	}
	return &cache{max: max(maxBytes, minCacheSize), items: make(map[cacheKey]*list.Element)}
}

// fresh returns an empty cache of the same size, or nil for none.
func (c *cache) fresh() *cache {
	if c == nil {
		return nil
	}
	return newCache(c.max)
}

// matchText is the key text of a list of match[] selectors: each prefixed
// by its length, so that no two lists share one.
func matchText(match []string) string {
	n := 0
	for _, s := range match {
		n += len(s) + 4
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range match {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

// get returns the entry for k, marked as recently used.
func (c *cache) get(k cacheKey) (*cacheEntry, bool) {
	if c == nil || k.policy == 0 { // a Policy not from NewPolicy: not cached
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	c.hits++
	return el.Value.(*cacheEntry), true
}

// add stores an entry, evicting the least recently used ones to stay
// under the bound. An entry over 1/64 of the bound is not kept, so that
// one large query cannot empty the cache.
func (c *cache) add(e *cacheEntry) {
	if c == nil || e.key.policy == 0 {
		return
	}
	e.size = entryOverhead + len(e.key.text) + len(e.query)
	for _, s := range e.match {
		e.size += len(s) + 16
	}
	if e.size > c.max/64 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[e.key]; ok {
		return // computed concurrently; the first one stays
	}
	c.items[e.key] = c.lru.PushFront(e)
	c.size += e.size
	for c.size > c.max {
		old := c.lru.Back()
		oe := old.Value.(*cacheEntry)
		c.lru.Remove(old)
		delete(c.items, oe.key)
		c.size -= oe.size
	}
}

// cachedQuery returns the rewrite of query by kind under p from e's cache,
// or computes it and keeps it when it succeeds.
func (e *Enforcer) cachedQuery(ctx context.Context, kind rewriteKind, p *Policy, query string,
	compute func(context.Context, *Policy, string) (string, error)) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	k := cacheKey{kind: kind, policy: p.id, text: query}
	if ce, ok := e.cache.get(k); ok {
		return ce.query, nil
	}
	out, err := compute(ctx, p, query)
	if err != nil {
		return "", err
	}
	e.cache.add(&cacheEntry{key: k, query: out})
	return out, nil
}

func (c *cache) matchers(p *Policy, key string) ([]string, bool) {
	e, ok := c.get(cacheKey{kind: rewriteMatch, policy: p.id, text: key})
	if !ok {
		return nil, false
	}
	// The caller owns what it gets: the entry's slice stays as it is.
	return slices.Clone(e.match), true
}

func (c *cache) addMatchers(p *Policy, key string, out []string) {
	c.add(&cacheEntry{key: cacheKey{kind: rewriteMatch, policy: p.id, text: key}, match: slices.Clone(out)})
}

// WithCache returns a copy of e that remembers the rewrites of its recent
// requests in a cache of about maxBytes (at least 64 KiB), its own: a
// query rewritten under the same policy (the same *Policy) is answered
// from it without being parsed. maxBytes of 0 or less: no cache.
func (e *Enforcer) WithCache(maxBytes int) *Enforcer {
	out := *e
	out.cache = newCache(maxBytes)
	return &out
}
