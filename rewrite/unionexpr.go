package rewrite

import (
	"fmt"
	"strconv"

	"github.com/prometheus/prometheus/promql/parser"
)

// UnionPartLabel is the label a written union marks each part's series
// with while the parts are united (see unionExpr). It is removed again, and
// a series that has it already keeps its own value.
const UnionPartLabel = "__prom_tenant_part__"

// unionExpr writes the union of parts, instant vectors whose series are
// pairwise disjoint, as one PromQL expression:
//
//	label_replace(
//	    label_replace(part0, "L", "0$1", "L", "(?s)(.*)")
//	  or label_replace(part1, "L", "1$1", "L", "(?s)(.*)")
//	  …,
//	  "L", "$1", "L", "(?s)[0-9]{w}(.*)")
//
// where L is UnionPartLabel and w the width of the part numbers. `or` keeps
// a right-hand series only if no left-hand series has the same labels less
// the metric name, so without the mark it would drop a series of one part
// whose other labels equal a series' of an earlier part. Marked, series of
// different parts always differ, and no series is in two parts, so `or`
// keeps every series once. The mark is the part's number, zero-padded, put
// before the label's own value: removing the fixed-width prefix restores that
// value exactly (an absent label stays absent), so data that carries L
// already is answered as it is stored. Where the parts are results of a
// function that drops the metric name, series of different parts can end up
// with the same labels: once the mark is removed, the engine refuses that
// with "vector cannot contain metrics with the same labelset", exactly as it
// does when the function runs over the tenant's series in one go.
func unionExpr(parts []parser.Expr) parser.Expr {
	width := len(strconv.Itoa(len(parts) - 1))
	var union parser.Expr
	for i, part := range parts {
		marked := labelReplace(part, fmt.Sprintf("%0*d$1", width, i), "(?s)(.*)")
		if union == nil {
			union = marked
			continue
		}
		union = &parser.BinaryExpr{
			Op: parser.LOR, LHS: union, RHS: marked,
			VectorMatching: &parser.VectorMatching{Card: parser.CardManyToMany},
		}
	}
	return labelReplace(union, "$1", fmt.Sprintf("(?s)[0-9]{%d}(.*)", width))
}

// labelReplace returns label_replace(x, L, replacement, L, regex) for L the
// UnionPartLabel.
func labelReplace(x parser.Expr, replacement, regex string) *parser.Call {
	return &parser.Call{
		Func: parser.Functions["label_replace"],
		Args: parser.Expressions{
			x,
			&parser.StringLiteral{Val: UnionPartLabel},
			&parser.StringLiteral{Val: replacement},
			&parser.StringLiteral{Val: UnionPartLabel},
			&parser.StringLiteral{Val: regex},
		},
	}
}

// allOf writes (parts[0] and parts[1] and …) for absent() over each branch
// of a union: each is empty or one sample with the same labels, so the `and`
// is that sample iff every branch is absent.
func allOf(parts []parser.Expr) parser.Expr {
	all := parts[0]
	for _, part := range parts[1:] {
		all = &parser.BinaryExpr{
			Op: parser.LAND, LHS: all, RHS: part,
			VectorMatching: &parser.VectorMatching{Card: parser.CardManyToMany},
		}
	}
	return &parser.ParenExpr{Expr: all}
}
