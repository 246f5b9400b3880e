package rewrite

import (
	"errors"
	"fmt"
)

// Limits bound the work one request can make the rewriter, and the
// upstream after it, do. Every field must be positive.
type Limits struct {
	// MaxQueryLength is the longest PromQL query accepted, in bytes.
	MaxQueryLength int
	// MaxDepth is the deepest query accepted, as Depth counts it (the
	// height of its syntax tree), checked before the query is parsed.
	MaxDepth int
	// MaxMatchers is the most match[] selectors accepted in one request.
	MaxMatchers int
	// MaxRewrittenSize is the largest rewritten query, or the largest total
	// of the rewritten match[] selectors, in bytes.
	MaxRewrittenSize int
	// MaxUnionSelectors is the most selectors the unions of one query may
	// write (see unionexpr.go): each is one more selection the upstream runs.
	MaxUnionSelectors int
}

// DefaultLimits are generous for what dashboards send and small enough that
// one request cannot hold a core for long (see the prom_tenant handler's
// options, where each default is explained).
var DefaultLimits = Limits{
	MaxQueryLength:    64 << 10,
	MaxDepth:          200,
	MaxMatchers:       1000,
	MaxRewrittenSize:  256 << 10,
	MaxUnionSelectors: 500,
}

// Limit names one of Limits' caps.
type Limit int

const (
	LimitQueryLength Limit = iota
	LimitDepth
	LimitMatchers
	LimitRewrittenSize
)

func (l Limit) String() string {
	switch l {
	case LimitQueryLength:
		return "query length"
	case LimitDepth:
		return "query nesting depth"
	case LimitMatchers:
		return "number of match[] selectors"
	case LimitRewrittenSize:
		return "rewritten size"
	}
	return fmt.Sprintf("limit %d", int(l))
}

// unit is what the limit counts, for messages.
func (l Limit) unit() string {
	switch l {
	case LimitQueryLength, LimitRewrittenSize:
		return " bytes"
	}
	return ""
}

// ErrLimit marks a request over one of the Limits; test with errors.Is.
var ErrLimit = errors.New("over a limit")

// LimitError is a request over one of the Limits: which, what was seen and
// the cap.
type LimitError struct {
	Limit Limit
	Got   int
	Max   int
	// AtLeast says Got is a lower bound: a rewrite refused as it is built,
	// before it is printed.
	AtLeast bool
}

func (e *LimitError) Error() string {
	u := e.Limit.unit()
	atLeast := ""
	if e.AtLeast {
		atLeast = "at least "
	}
	return fmt.Sprintf("%s %s%d%s is over the limit of %d%s", e.Limit, atLeast, e.Got, u, e.Max, u)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// WithLimits returns a copy of e that enforces l. Zero fields of l keep
// DefaultLimits' values. A cache (WithCache) is replaced by an empty one.
func (e *Enforcer) WithLimits(l Limits) *Enforcer {
	out := *e
	out.limits = l.orDefault()
	out.cache = e.cache.fresh() // the old limits' rewrites must not answer
	return &out
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.MaxQueryLength > 0 {
		d.MaxQueryLength = l.MaxQueryLength
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxMatchers > 0 {
		d.MaxMatchers = l.MaxMatchers
	}
	if l.MaxRewrittenSize > 0 {
		d.MaxRewrittenSize = l.MaxRewrittenSize
	}
	if l.MaxUnionSelectors > 0 {
		d.MaxUnionSelectors = l.MaxUnionSelectors
	}
	return d
}

// checkQuery refuses a query over the length or depth limit. Both checks are
// linear and run before the parser.
func (l Limits) checkQuery(q string) error {
	if len(q) > l.MaxQueryLength {
		return &LimitError{Limit: LimitQueryLength, Got: len(q), Max: l.MaxQueryLength}
	}
	// Every node of a tree has a token: a query with no more tokens than
	// the cap cannot nest deeper, and needs no scan (most queries; the
	// bound costs a fraction of the lexer's pass).
	if tokenBound(q) <= l.MaxDepth {
		return nil
	}
	if d := Depth(q); d > l.MaxDepth {
		return &LimitError{Limit: LimitDepth, Got: d, Max: l.MaxDepth}
	}
	return nil
}
