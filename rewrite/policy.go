// Package rewrite enforces a tenant's policy on PromQL expressions and series
// selectors by rewriting them before evaluation. It is pure: no HTTP, no Caddy.
//
// A policy is a union (OR) of conjunctive selectors, its branches. A series is
// allowed iff it matches at least one branch. Every selector of a query is
// ANDed with every branch; contradictory branches are dropped, subsumed ones
// removed, and branches that differ in one label's values merged. If one branch
// remains it is injected; otherwise their union is written into the query
// (unionexpr.go), so that the upstream evaluates exactly the allowed series.
// Only a range selector outside a function has no such form and is refused
// with a *UnionError.
package rewrite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// Selector is a conjunction of label matchers, as in `{a="1", b=~"x|y"}`.
type Selector []*labels.Matcher

// String renders the selector in PromQL syntax, matchers sorted.
func (s Selector) String() string { return selectorString(s) }

// Policy is the set of series a tenant may see: the union of its branches.
// A Policy is immutable after NewPolicy and safe for concurrent use.
type Policy struct {
	conj     []conjunction // normalized branches, for rewriting
	branches []Selector    // the same, as compiled matchers, for callers
	text     string
	// id is unique to this Policy, never reused: caches key by it, so that
	// a cache entry does not keep an old policy alive (see cache.go).
	id uint64
}

// policyIDs numbers policies; 0 is never handed out.
var policyIDs atomic.Uint64

// ErrEmptyPolicy is returned by NewPolicy for a policy that allows nothing.
var ErrEmptyPolicy = errors.New("policy has no selectors")

// NewPolicy builds a policy from the union of the given selectors. It
// normalizes each selector, drops those that can match nothing, removes
// branches contained in another, and merges branches that differ only in one
// label's finite set of values. The result is equivalent to the input.
func NewPolicy(selectors []Selector) (*Policy, error) {
	if len(selectors) == 0 {
		return nil, ErrEmptyPolicy
	}
	cs := make([]conjunction, 0, len(selectors))
	for _, s := range selectors {
		c, ok := newConjunction(s)
		if !ok {
			continue // matches nothing: contributes nothing to the union
		}
		c, ok, err := c.dotAll()
		if err != nil {
			return nil, fmt.Errorf("policy selector %s: %w", s, err)
		}
		if !ok {
			continue
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return nil, errors.New("every policy selector is contradictory and matches nothing")
	}
	// The reduction is canonical, so the same union written in any order
	// gives the same policy (and the same text, which keys caches).
	cs, err := reduceUnion(context.Background(), cs)
	if err != nil {
		return nil, err // unreachable: the context is never done
	}
	p := &Policy{conj: cs, branches: make([]Selector, len(cs)), id: policyIDs.Add(1)}
	texts := make([]string, len(cs))
	for i, c := range cs {
		p.branches[i] = c.selector(true)
		texts[i] = p.branches[i].String()
	}
	p.text = strings.Join(texts, " or ")
	return p, nil
}

// Branches returns the policy's normalized selectors. Callers must not modify them.
func (p *Policy) Branches() []Selector { return p.branches }

// String renders the policy as its branches joined by " or ". It is canonical:
// two policies that normalize to the same branches have the same text, so it
// can key caches.
func (p *Policy) String() string { return p.text }

// Matches reports whether the policy allows a series: whether its labels
// match every matcher of at least one branch. A missing label matches as "".
func (p *Policy) Matches(lset labels.Labels) bool {
	for _, b := range p.branches {
		ok := true
		for _, m := range b {
			if !m.Matches(lset.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
