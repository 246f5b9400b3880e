package rewrite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestLimits(t *testing.T) {
	e := NewEnforcer(parser.Options{})
	p := newTestPolicy(t, `{namespace="t"}`)
	union := newTestPolicy(t, `{__name__="a",namespace="t"}`, `{job="b",namespace="t"}`)
	small := e.WithLimits(Limits{MaxRewrittenSize: 10})
	many := make([]string, DefaultLimits.MaxMatchers+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{job="j%d"}`, i)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		run   func() error
		limit Limit
		got   int
	}{
		{"query length", func() error {
			_, err := e.EnforceQuery(ctx, p, strings.Repeat("up+", 30000)+"up")
			return err
		}, LimitQueryLength, 90002},
		// Depth is checked before parsing: this one would not even parse.
		{"depth", func() error { _, err := e.EnforceQuery(ctx, p, strings.Repeat("-", 300)+"up{"); return err }, LimitDepth, 302},
		{"depth of a match[] selector", func() error {
			_, err := e.EnforceMatchers(ctx, p, []string{strings.Repeat("(", 300) + "up"})
			return err
		}, LimitDepth, 301},
		{"match[] count", func() error { _, err := e.EnforceMatchers(ctx, p, many); return err }, LimitMatchers, 1001},
		// Refused as it is built, on a lower bound of its size: the
		// selector's matchers without the comma and braces.
		{"rewritten query", func() error { _, err := small.EnforceQuery(ctx, p, "up"); return err }, LimitRewrittenSize, len(`upnamespace="t"`)},
		{"rewritten match[]", func() error {
			_, err := small.EnforceMatchers(ctx, union, []string{`{namespace="t"}`})
			return err
		}, LimitRewrittenSize, len(`{__name__="a",namespace="t"}`) + len(`{job="b",namespace="t"}`)},
		{"policy alone as match[]", func() error { _, err := small.EnforceMatchers(ctx, union, nil); return err },
			LimitRewrittenSize, len(`{__name__="a",namespace="t"}`) + len(`{job="b",namespace="t"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var le *LimitError
			if !errors.Is(err, ErrLimit) || !errors.As(err, &le) {
				t.Fatalf("error %v, want a *LimitError", err)
			}
			if le.Limit != tc.limit || le.Got != tc.got {
				t.Errorf("%v: limit %v, got %d; want %v, %d", err, le.Limit, le.Got, tc.limit, tc.got)
			}
		})
	}
	// At the caps, not over: accepted.
	if _, err := e.EnforceQuery(ctx, p, strings.Repeat("-", 199)+"up"); err != nil {
		t.Errorf("depth 200: %v", err)
	}
	if _, err := e.EnforceMatchers(ctx, p, many[:1000]); err != nil {
		t.Errorf("1000 match[]: %v", err)
	}
}

// countingContext is done after its first `after` calls of Err, and counts
// the calls.
type countingContext struct {
	context.Context
	calls, after int
}

func (c *countingContext) Err() error {
	c.calls++
	if c.calls > c.after {
		return context.Canceled
	}
	return nil
}

// A request whose client left stops consuming CPU: the long loops check
// the context as they go (several times for one request), and return at
// the first check after it is done, without further work.
func TestCanceledStopsWork(t *testing.T) {
	e := NewEnforcer(parser.Options{}).WithLimits(Limits{MaxMatchers: 1 << 20, MaxRewrittenSize: 1 << 30})
	p := newTestPolicy(t, `{__name__=~"m.*",namespace="t"}`, `{job=~"j1.*",namespace="t"}`)
	match := make([]string, 5000)
	for i := range match {
		match[i] = fmt.Sprintf(`{__name__="m%d",job="j%d"}`, i, i)
	}
	done := &countingContext{Context: context.Background(), after: 1 << 30}
	if _, err := e.EnforceMatchers(done, p, match); err != nil {
		t.Fatal(err)
	}
	if done.calls < 20 {
		t.Fatalf("the context was checked %d times over 5000 match[]: not within the loops", done.calls)
	}
	for _, after := range []int{0, 1, done.calls / 2, done.calls - 1} {
		ctx := &countingContext{Context: context.Background(), after: after}
		_, err := e.EnforceMatchers(ctx, p, match)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled after %d checks: error %v", after, err)
		}
		if ctx.calls != after+1 {
			t.Errorf("canceled after %d checks: checked %d times, want it to stop at the first check after", after, ctx.calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.EnforceQuery(ctx, p, `{namespace="t"}`); !errors.Is(err, context.Canceled) {
		t.Errorf("EnforceQuery with a canceled context: %v", err)
	}
}

// TestReduceUnionExactAndCanonical: over random unions of small
// conjunctions, the reduction selects exactly the same label sets, and the
// same set in another order reduces to the same text.
func TestReduceUnionExactAndCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := parser.NewParser(parser.Options{})
	names := []string{"a", "b", "c"}
	values := []string{"", "x", "y", "z", "xy"}
	matcherOf := func() string {
		n := names[r.IntN(len(names))]
		switch r.IntN(6) {
		case 0, 1:
			return fmt.Sprintf(`%s="%s"`, n, values[r.IntN(len(values))])
		case 2:
			return fmt.Sprintf(`%s!="%s"`, n, values[r.IntN(len(values))])
		case 3:
			return fmt.Sprintf(`%s=~"%s|%s"`, n, values[r.IntN(len(values))], values[r.IntN(len(values))])
		case 4:
			return fmt.Sprintf(`%s=~"x.*"`, n)
		default:
			return fmt.Sprintf(`%s!~"y.*"`, n)
		}
	}
	var universe []labels.Labels
	var walk func(i int, b *labels.Builder)
	walk = func(i int, b *labels.Builder) {
		if i == len(names) {
			universe = append(universe, b.Labels())
			return
		}
		for _, v := range values {
			b.Set(names[i], v) // "" deletes the label
			walk(i+1, b)
		}
	}
	walk(0, labels.NewBuilder(labels.EmptyLabels()))
	matchesAny := func(cs []conjunction, l labels.Labels) bool {
		for _, c := range cs {
			if matches3x(c.selector(true), l.Map()) {
				return true
			}
		}
		return false
	}
	for range 2000 {
		var cs []conjunction
		for range r.IntN(12) + 1 {
			var ms []string
			for range r.IntN(3) + 1 {
				ms = append(ms, matcherOf())
			}
			sel, err := p.ParseMetricSelector("{" + strings.Join(ms, ",") + "}")
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := newConjunction(sel); ok {
				cs = append(cs, c)
			}
		}
		in := slices.Clone(cs)
		out, err := reduceUnion(context.Background(), slices.Clone(cs))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range universe {
			if matchesAny(in, l) != matchesAny(out, l) {
				t.Fatalf("union %v reduced to %v: differs on %s", texts(in), texts(out), l)
			}
		}
		r.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
		again, _ := reduceUnion(context.Background(), cs)
		if !slices.Equal(texts(out), texts(again)) {
			t.Fatalf("union %v reduced to %v, and shuffled to %v", texts(in), texts(out), texts(again))
		}
	}
}

// matches3x matches a selector as the Prometheus library (and 3.x) does.
func matches3x(ms []*labels.Matcher, lset map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(lset[m.Name]) {
			return false
		}
	}
	return true
}

func texts(cs []conjunction) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.selector(false).String()
	}
	return out
}
