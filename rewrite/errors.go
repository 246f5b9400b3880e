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

// UnionError says which selector of a query needed a union, and of what: the
// selector as restricted to each policy selector it overlaps.
type UnionError struct {
	Selector string   // the selector as the user wrote it
	Branches []string // Selector ANDed with each overlapping policy selector, reduced
}

func (e *UnionError) Error() string {
	return fmt.Sprintf("selector %s would need the union of %d selectors to be answered exactly (%s), "+
		"one for each selector of the tenant's access policy it overlaps; "+
		"PromQL cannot express their union in one selector, so the query is refused: "+
		"narrow the selector to one of them, for example by metric name",
		e.Selector, len(e.Branches), strings.Join(e.Branches, " or "))
}

func (e *UnionError) Unwrap() error { return ErrIrreducibleUnion }

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}
