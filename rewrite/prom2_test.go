package rewrite

import (
	"context"
	"regexp"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// matches2x matches a selector as Prometheus 2.x does: regexes anchored,
// with "." not matching a newline (3.x made it match one).
func matches2x(ms []*labels.Matcher, lset map[string]string) bool {
	for _, m := range ms {
		v := lset[m.Name]
		var ok bool
		switch m.Type {
		case labels.MatchEqual:
			ok = v == m.Value
		case labels.MatchNotEqual:
			ok = v != m.Value
		case labels.MatchRegexp, labels.MatchNotRegexp:
			ok = regexp.MustCompile("^(?:"+m.Value+")$").MatchString(v) == (m.Type == labels.MatchRegexp)
		}
		if !ok {
			return false
		}
	}
	return true
}

// TestExactOnPrometheus2 checks that a rewritten selector selects, on a 2.x
// and on a 3.x upstream, exactly the series the user's selector selects
// there among those the policy allows (a policy's regexes say what they
// mean explicitly, (?s:...), so they read the same on both), over values
// with and without newlines. Dropping a user's =~".*" as "matches
// everything" was wrong on 2.x: there it rejects a value with a newline.
func TestExactOnPrometheus2(t *testing.T) {
	e := NewEnforcer(parser.Options{})
	policies := []string{`{}`, `{namespace="t"}`, `{job!~"foo.*"}`, `{job=~"a.*"}`}
	// Not here: up{job!~"a.*"} under {job=~"a.*"}, which sameRegex reads as
	// a contradiction (3.x semantics); on 2.x it selects values with a
	// newline after "a" (TestFindings keeps the 3.x reading on purpose).
	queries := []string{`up{job=~".*"}`, `up{job!~".*"}`, `up{job=~"(?s:.*)"}`, `up{job!~"(?s:.*)"}`, `up{job=~"a.*"}`,
		`up{job=~".+"}`, `up{job!~"b.*"}`, `up{job=~".*",job!=""}`}
	var universe []map[string]string
	for _, job := range []string{"-", "", "a", "a\nb", "foo\n", "x"} {
		for _, ns := range []string{"-", "t"} {
			l := map[string]string{"__name__": "up"}
			if job != "-" {
				l["job"] = job
			}
			if ns != "-" {
				l["namespace"] = ns
			}
			universe = append(universe, l)
		}
	}
	for _, ps := range policies {
		p := newTestPolicy(t, ps)
		for _, q := range queries {
			out, err := e.EnforceQuery(context.Background(), p, q)
			if err != nil {
				t.Fatalf("policy %s, %s: %v", ps, q, err)
			}
			user, _ := e.parser.ParseExpr(q)
			rewritten, err := e.parser.ParseExpr(out)
			if err != nil {
				t.Fatalf("%s does not parse: %v", out, err)
			}
			um := user.(*parser.VectorSelector).LabelMatchers
			rm := rewritten.(*parser.VectorSelector).LabelMatchers
			for _, l := range universe {
				allowed := p.Matches(labels.FromMap(l))
				if got, want := matches2x(rm, l), allowed && matches2x(um, l); got != want {
					t.Errorf("policy %s, %s → %s: on 2.x, series %q selected %v, want %v", ps, q, out, l, got, want)
				}
				if got, want := matches3x(rm, l), allowed && matches3x(um, l); got != want {
					t.Errorf("policy %s, %s → %s: on 3.x, series %q selected %v, want %v", ps, q, out, l, got, want)
				}
			}
		}
	}
}
