package rewrite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// The scale benchmarks grow one dimension of a request or a policy over
// n = 100, 1,000, 10,000: the time per operation must grow about linearly
// (n log n at most), never quadratically. They are the regression tests of
// issue 11's timing findings: 800 match[] took 16.7 s, 1,000 patterns ~20 s.

var scaleSizes = []int{100, 1000, 10000}

// scaleEnforcer has limits high enough for every size of the benchmarks:
// they measure the work, not the caps.
func scaleEnforcer() *Enforcer {
	return NewEnforcer(parser.Options{}).WithLimits(Limits{MaxMatchers: 1 << 20, MaxRewrittenSize: 1 << 30, MaxQueryLength: 1 << 30})
}

// BenchmarkScaleMatchersMerge: n match[] {job="jN"} under an isolated policy;
// every product merges into one regex on job.
func BenchmarkScaleMatchersMerge(b *testing.B) {
	e := scaleEnforcer()
	p := newTestPolicy(b, `{namespace="t"}`)
	for _, n := range scaleSizes {
		match := make([]string, n)
		for i := range match {
			match[i] = fmt.Sprintf(`{job="j%d"}`, i)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := e.EnforceMatchers(context.Background(), p, match); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScaleMatchersDistinct: n match[] that neither merge nor imply one
// another (two labels differ), under a two-branch policy.
func BenchmarkScaleMatchersDistinct(b *testing.B) {
	e := scaleEnforcer()
	p := newTestPolicy(b, `{__name__=~"m.*",namespace="t"}`, `{job=~"j1.*",namespace="t"}`)
	for _, n := range scaleSizes {
		match := make([]string, n)
		for i := range match {
			match[i] = fmt.Sprintf(`{__name__="m%d",job="j%d"}`, i, i)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := e.EnforceMatchers(context.Background(), p, match); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScaleMatchersWide: 4 match[] of n labels each, all different:
// the cost per branch must grow with its size, not its size squared (16
// selectors of 4,000 labels took 57 s in a first version of the hashing).
func BenchmarkScaleMatchersWide(b *testing.B) {
	e := scaleEnforcer()
	p := newTestPolicy(b, `{namespace="t"}`, `{job="x"}`)
	for _, n := range scaleSizes {
		match := make([]string, 4)
		for i := range match {
			ls := make([]string, n)
			for j := range ls {
				ls[j] = fmt.Sprintf(`l%d_%d="v"`, i, j)
			}
			match[i] = "{" + strings.Join(ls, ",") + "}"
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := e.EnforceMatchers(context.Background(), p, match); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScalePolicy compiles one MetricAccess of n patterns {job="jN"}
// with namespace isolation (issue 11, finding 4).
func BenchmarkScalePolicy(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	for _, n := range scaleSizes {
		sels := make([]Selector, n)
		for i := range sels {
			ms, err := p.ParseMetricSelector(fmt.Sprintf(`{job="j%d",namespace="t"}`, i))
			if err != nil {
				b.Fatal(err)
			}
			sels[i] = ms
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewPolicy(sels); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScalePolicyMixed compiles n patterns of several shapes: names,
// name regexes and label selectors, as large real objects mix them.
func BenchmarkScalePolicyMixed(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	for _, n := range scaleSizes {
		sels := make([]Selector, n)
		for i := range sels {
			var s string
			switch i % 3 {
			case 0:
				s = fmt.Sprintf(`{__name__="app_metric_%d_total",namespace="t"}`, i)
			case 1:
				s = fmt.Sprintf(`{__name__=~"http_%d_.*",namespace="t"}`, i)
			default:
				s = fmt.Sprintf(`{job="j%d",instance=~"i%d.*",namespace="t"}`, i, i)
			}
			ms, err := p.ParseMetricSelector(s)
			if err != nil {
				b.Fatal(err)
			}
			sels[i] = ms
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewPolicy(sels); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScaleNesting: a query nested n deep, by unary minus and by
// parentheses (issue 11, finding 3): refused by the pre-scan in linear time
// where n is over the cap.
func BenchmarkScaleNesting(b *testing.B) {
	e := NewEnforcer(parser.Options{})
	p := newTestPolicy(b, `{namespace="t"}`)
	shapes := map[string]func(n int) string{
		"unary":  func(n int) string { return strings.Repeat("-", n) + "up" },
		"parens": func(n int) string { return strings.Repeat("(", n) + "up" + strings.Repeat(")", n) },
		"binary": func(n int) string { return strings.Repeat("up+", n) + "up" },
	}
	for _, shape := range []string{"unary", "parens", "binary"} {
		for _, n := range scaleSizes {
			q := shapes[shape](n)
			b.Run(fmt.Sprintf("%s/n=%d", shape, n), func(b *testing.B) {
				for b.Loop() {
					_, _ = e.EnforceQuery(context.Background(), p, q)
				}
			})
		}
	}
}
