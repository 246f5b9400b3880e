package rewrite

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The HTTP layer maps each to a status code; test with errors.Is.
var (
	// ErrParse marks a query or selector the parser could not read. It is
	// refused, never forwarded: the upstream might read it differently.
	ErrParse = errors.New("cannot parse")
	// ErrIrreducibleUnion marks a selector that only a union of several policy
	// selectors answers exactly, which one PromQL selector cannot express.
	ErrIrreducibleUnion = errors.New("irreducible union")
	// ErrUnionTooLarge marks a query whose unions would write more selectors
	// than the enforcer's limit.
	ErrUnionTooLarge = errors.New("union too large")
	// ErrUnsupported marks a construct the rewriter does not know how to
	// constrain, such as an unknown AST node. Failing closed is the point.
	ErrUnsupported = errors.New("unsupported")
)

// ParseError is a query or selector the parser rejected.
type ParseError struct {
	Input string
	Err   error
}

func (e *ParseError) Error() string   { return fmt.Sprintf("cannot parse %q: %v", e.Input, e.Err) }
func (e *ParseError) Unwrap() []error { return []error{ErrParse, e.Err} }

// UnionError says which range selector of a query needed a union, and of
// what: the selector as restricted to each policy selector it overlaps. A
// union of range vectors has no PromQL form (`or` takes instant vectors), so
// a range selector that is not the argument of a function is refused.
type UnionError struct {
	Selector string   // the selector as the user wrote it, with its range
	Branches []string // Selector ANDed with each overlapping policy selector, reduced
}

func (e *UnionError) Error() string {
	return fmt.Sprintf("range selector %s would need the union of %d selectors to be answered exactly (%s), "+
		"one for each selector of the tenant's access policy it overlaps; "+
		"PromQL has no union of range vectors, so a range selector outside a function is refused: "+
		"narrow the selector to one of them (for example by metric name), or apply a function to it "+
		"(rate(), last_over_time(), …), which is answered exactly",
		e.Selector, len(e.Branches), strings.Join(e.Branches, " or "))
}

// UnionLimitError is a query whose unions would write more selectors than
// Limits.MaxUnionSelectors allows.
type UnionLimitError struct {
	Selector string // the selector whose union went over the limit
	Limit    int
}

func (e *UnionLimitError) Error() string {
	return fmt.Sprintf("the query needs more than %d selectors to be answered exactly under the tenant's access policy "+
		"(selector %s overlaps several of its selectors, and each such overlap is written into the query); "+
		"narrow its selectors, for example by metric name, or raise the limit with the prom_tenant option max_union_selectors",
		e.Limit, e.Selector)
}

func (e *UnionLimitError) Unwrap() error { return ErrUnionTooLarge }

func (e *UnionError) Unwrap() error { return ErrIrreducibleUnion }

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}
