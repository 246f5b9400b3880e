package kubeauth

import (
	"container/list"
	"sync"
	"time"
)

// ttlCache is a size-bounded cache whose entries expire. When full, the least
// recently used entry goes. Keys are token hashes, never tokens.
type ttlCache[V any] struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	ll    *list.List // front: most recently used
	items map[string]*list.Element
}

type cacheEntry[V any] struct {
	key     string
	value   V
	expires time.Time
}

func newTTLCache[V any](max int, now func() time.Time) *ttlCache[V] {
	if max < 1 {
		max = 1
	}
	return &ttlCache[V]{max: max, now: now, ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns the value of key if present and not expired.
func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*cacheEntry[V])
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, key)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.value, true
}

// put stores value under key for ttl; a ttl <= 0 stores nothing.
func (c *ttlCache[V]) put(key string, value V, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	expires := c.now().Add(ttl)
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry[V])
		e.value, e.expires = value, expires
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry[V]).key)
	}
	c.items[key] = c.ll.PushFront(&cacheEntry[V]{key: key, value: value, expires: expires})
}

func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
