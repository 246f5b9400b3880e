package rewrite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// newTestPolicy compiles selectors written in PromQL into a policy.
func newTestPolicy(t testing.TB, selectors ...string) *Policy {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	var sels []Selector
	for _, s := range selectors {
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			t.Fatalf("policy selector %q: %v", s, err)
		}
		sels = append(sels, ms)
	}
	pol, err := NewPolicy(sels)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return pol
}

func TestNewPolicyNormalizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want string
	}{
		{"names merge into one set", []string{`{__name__="b"}`, `{__name__="a"}`}, `{__name__=~"a|b"}`},
		{"isolation keeps namespace", []string{`{__name__="up",namespace="t"}`, `{__name__="x",namespace="t"}`}, `{__name__=~"up|x",namespace="t"}`},
		{"regex and name merge by alternation", []string{`{__name__="up",namespace="t"}`, `{__name__=~"http_.*",namespace="t"}`}, `{__name__=~"(?:(?s:http_.*))|(?:up)",namespace="t"}`},
		{"subsumed branch dropped", []string{`{job="a"}`, `{__name__="up",job="a"}`}, `{job="a"}`},
		{"contradictory branch dropped", []string{`{job="a",job="b"}`, `{job="c"}`}, `{job="c"}`},
		{"regex set narrows equality", []string{`{job=~"a|b",job="a"}`}, `{job="a"}`},
		{"different labels stay apart", []string{`{job="a"}`, `{__name__="up"}`}, `{__name__="up"} or {job="a"}`},
		{"duplicates collapse", []string{`{job="a"}`, `{job="a"}`}, `{job="a"}`},
		{"allow-all absorbs everything", []string{`{}`, `{job="a"}`}, `{}`},
		{"match-all regex dropped", []string{`{job="a",x=~".*"}`}, `{job="a"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newTestPolicy(t, tc.in...).String(); got != tc.want {
				t.Errorf("policy %v = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestEnforceQuery(t *testing.T) {
	e := NewEnforcer(parser.Options{})
	isolated := newTestPolicy(t, `{__name__="http_requests_total",namespace="t"}`, `{__name__="up",namespace="t"}`)
	union := newTestPolicy(t, `{__name__="http_requests_total",namespace="t"}`, `{job="api",namespace="t"}`)
	for _, tc := range []struct {
		name    string
		policy  *Policy
		query   string
		want    string
		wantErr error
	}{
		{"plain name", isolated, `up`, `up{namespace="t"}`, nil},
		{"name outside the policy selects nothing", isolated, `db_password_len`, `{__name__!~"(?s:.*)"}`, nil},
		{"other namespace is ANDed, not replaced", isolated, `up{namespace="other"}`, `{__name__!~"(?s:.*)"}`, nil},
		{"no name needs the union", isolated, `{namespace="t"}`, `{__name__=~"http_requests_total|up",namespace="t"}`, nil},
		{"regex name narrowed", isolated, `{__name__=~"u.*"}`, `up{namespace="t"}`, nil},
		{"aggregation and function", isolated, `sum by (job) (rate(http_requests_total{code="500"}[5m]))`,
			`sum by (job) (rate(http_requests_total{code="500",namespace="t"}[5m]))`, nil},
		{"subquery offset and @", isolated, `max_over_time(rate(up[1m] @ 50)[10m:1m] offset 5m @ 100)`,
			`max_over_time(rate(up{namespace="t"}[1m] @ 50.000)[10m:1m] @ 100.000 offset 5m)`, nil},
		{"binary operands both enforced", isolated, `up * on() group_left db_password_len`,
			`up{namespace="t"} * on () group_left () {__name__!~"(?s:.*)"}`, nil},
		{"scalar leak closed", isolated, `up * 0 + scalar(db_password_len)`, `up{namespace="t"} * 0 + scalar({__name__!~"(?s:.*)"})`, nil},
		{"label_replace renaming closed", isolated, `label_replace(db_password_len, "__name__", "up", "", "")`,
			`label_replace({__name__!~"(?s:.*)"}, "__name__", "up", "", "")`, nil},
		{"absent keeps only the user's labels", isolated, `absent(up{job="x"})`, `absent(up{job="x",namespace=~"t"})`, nil},
		{"absent of a forbidden metric", isolated, `absent(db_password_len{job="x"})`, `absent({__name__!~"(?s:.*)",job="x"})`, nil},
		{"absent_over_time range", isolated, `absent_over_time(up[5m])`, `absent_over_time(up{namespace=~"t"}[5m])`, nil},
		{"union reduces by name", union, `http_requests_total`, `http_requests_total{namespace="t"}`, nil},
		{"range selector over a union refused", union, `{namespace="t"}[5m]`, ``, ErrIrreducibleUnion},
		{"info refused", isolated, `info(up)`, ``, ErrUnsupported},
		// A __name__ value is printed bare only if it reads back as that name:
		// otherwise it would be spliced into the query as PromQL.
		{"name is never spliced as PromQL", newTestPolicy(t, `{job="my-app"}`), `{__name__="db_password_len or up", job="my-app"}`,
			`{__name__="db_password_len or up",job="my-app"}`, nil},
		{"name that is a number stays quoted", newTestPolicy(t, `{job="my-app"}`), `{__name__="nan", job="my-app"}`,
			`{__name__="nan",job="my-app"}`, nil},
		{"name that is a keyword stays quoted", newTestPolicy(t, `{job="my-app"}`), `{__name__=~"sum|x", job="my-app"}`,
			`{__name__=~"sum|x",job="my-app"}`, nil},
		{"name narrowed to a legal name is bare", isolated, `{__name__=~"u.+|nan"}`, `up{namespace="t"}`, nil},
		{"unparsable refused", isolated, `up{`, ``, ErrParse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ee := e
			if tc.name == "info refused" {
				ee = NewEnforcer(parser.Options{EnableExperimentalFunctions: true})
			}
			got, err := ee.EnforceQuery(context.Background(), tc.policy, tc.query)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("EnforceQuery(%q) error = %v, want %v", tc.query, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnforceQuery(%q): %v", tc.query, err)
			}
			if got != tc.want {
				t.Errorf("EnforceQuery(%q)\n got  %s\n want %s", tc.query, got, tc.want)
			}
			// The rewritten text parses again to the same text.
			again, err := ee.parser.ParseExpr(got)
			if err != nil {
				t.Fatalf("rewritten query %q does not parse: %v", got, err)
			}
			if again.String() != got {
				t.Errorf("rewritten query does not round-trip: %q → %q", got, again.String())
			}
		})
	}
}

// A regex's text is not safe to splice into a larger one: merging must
// re-render it, and never panic on what it cannot merge.
func TestMergeDoesNotSpliceRegexText(t *testing.T) {
	p := newTestPolicy(t, `{x=~".*\\Qfoo"}`, `{x=~"\\Qbar\\E.*"}`)
	for _, b := range p.Branches() {
		for _, m := range b {
			if m.Matches("SECRETfoo)|(?:\\QbarSECRET") {
				t.Errorf("policy %s matches a value neither selector allows", p)
			}
		}
	}
	e := NewEnforcer(parser.Options{})
	out, err := e.EnforceMatchers(context.Background(), newTestPolicy(t, `{job="a"}`), []string{"{x=~`a+\\Qfoo`}", `{x=~"b+"}`})
	if err != nil || len(out) == 0 {
		t.Fatalf("EnforceMatchers = %q, %v", out, err)
	}
}

func TestEnforceMatchers(t *testing.T) {
	e := NewEnforcer(parser.Options{})
	union := newTestPolicy(t, `{__name__="http_requests_total",namespace="t"}`, `{job="api",namespace="t"}`)
	for _, tc := range []struct {
		name  string
		match []string
		want  []string
	}{
		{"no match[] means the policy", nil, []string{`{__name__="http_requests_total",namespace="t"}`, `{job="api",namespace="t"}`}},
		{"union is exact here", []string{`{namespace="t"}`}, []string{`{__name__="http_requests_total",namespace="t"}`, `{job="api",namespace="t"}`}},
		{"product with several match[]", []string{`up`, `http_requests_total{code="500"}`},
			[]string{`{__name__="http_requests_total",code="500",namespace="t"}`, `{__name__="up",job="api",namespace="t"}`}},
		{"nothing allowed matches nothing", []string{`{namespace="other"}`}, []string{`{__name__!~"(?s:.*)"}`}},
		{"allow-all policy still gives a valid match[]", nil, []string{`{__name__=~".+"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := union
			if strings.HasPrefix(tc.name, "allow-all") {
				pol = newTestPolicy(t, `{}`)
			}
			got, err := e.EnforceMatchers(context.Background(), pol, tc.match)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("EnforceMatchers(%q) = %q, want %q", tc.match, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("EnforceMatchers(%q)[%d] = %s, want %s", tc.match, i, got[i], tc.want[i])
				}
			}
		})
	}
}
