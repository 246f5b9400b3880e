package rewrite

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// conjunction is a normalized selector: one constraint per label name, sorted
// by name. Every step that produces one is exact: it denotes the same set of
// series as the matchers it came from.
type conjunction []constraint

// constraint is what a conjunction requires of one label's value. Exactly one
// of values and matchers is set.
type constraint struct {
	name string
	// values is a finite set of allowed values, sorted and unique. One value is
	// an equality; the empty value stands for "label absent".
	values []string
	// re, if set, is a matcher (equality or regex) that matches exactly
	// values: the user's or policy's own, printed as written, which also
	// saves building one.
	re *labels.Matcher
	// matchers is a conjunction of matchers with no finite set of values,
	// sorted and unique.
	matchers []*labels.Matcher
}

// newConjunction normalizes a selector. ok is false if it matches nothing.
func newConjunction(sel Selector) (conjunction, bool) {
	// Sorted by name, on the stack for selectors of usual size.
	var buf [8]*labels.Matcher
	ms := append(buf[:0], sel...)
	slices.SortStableFunc(ms, func(a, b *labels.Matcher) int { return strings.Compare(a.Name, b.Name) })
	var c conjunction
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].Name == ms[i].Name {
			j++
		}
		k, ok, trivial := newConstraint(ms[i].Name, ms[i:j])
		if !ok {
			return nil, false
		}
		if !trivial {
			c = append(c, k)
		}
		i = j
	}
	return c, true
}

// newConstraint normalizes the matchers of one label. trivial reports a
// constraint that every value satisfies.
func newConstraint(name string, ms []*labels.Matcher) (k constraint, ok, trivial bool) {
	k.name = name
	var set []string
	var setFrom *labels.Matcher
	haveSet := false
	for _, m := range ms {
		var s []string
		switch {
		case m.Type == labels.MatchEqual:
			s = []string{m.Value}
		case m.Type == labels.MatchRegexp && m.Value == "":
			s = []string{""} // the label is absent
		case m.Type == labels.MatchRegexp:
			// Prometheus uses SetMatches for index look-ups, so it is the
			// complete set of strings the regex matches.
			s = m.SetMatches()
		}
		if s == nil {
			continue
		}
		slices.Sort(s)
		s = slices.Compact(s)
		switch {
		case !haveSet:
			set, haveSet, setFrom = s, true, m
		case len(intersectSorted(set, s)) != len(set):
			set, setFrom = intersectSorted(set, s), nil
		}
	}
	if haveSet {
		// The set absorbs every other matcher on the label.
		n := len(set)
		set = slices.DeleteFunc(set, func(v string) bool { return !matchesAll(ms, v) })
		if len(set) == 0 {
			return k, false, false
		}
		k.values = set
		if len(set) == n {
			k.re = setFrom
		}
		return k, true, false
	}
	for _, m := range ms {
		switch {
		case m.Type == labels.MatchRegexp && isMatchAll(m.Value):
			continue // every value matches
		case m.Type == labels.MatchNotRegexp && isMatchAll(m.Value):
			return k, false, false // no value matches
		}
		k.matchers = append(k.matchers, m)
	}
	if len(k.matchers) == 0 {
		return k, true, true
	}
	sortMatchers(k.matchers)
	k.matchers = slices.CompactFunc(k.matchers, sameMatcher)
	if disjointMatchers(k.matchers) {
		return k, false, false
	}
	return k, true, false
}

// and returns the conjunction of a and b. ok is false if it matches nothing.
func (a conjunction) and(b conjunction) (conjunction, bool) {
	out := make(conjunction, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].name < b[j].name):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].name < a[i].name:
			out = append(out, b[j])
			j++
		default:
			k, ok := a[i].and(b[j])
			if !ok {
				return nil, false
			}
			out = append(out, k)
			i++
			j++
		}
	}
	return out, true
}

func (a constraint) and(b constraint) (constraint, bool) {
	k := constraint{name: a.name}
	switch {
	case a.values != nil && b.values != nil:
		k.values = intersectSorted(a.values, b.values)
		k.re = keptRegex(k.values, a, b)
	case a.values != nil:
		k.values = filterValues(a.values, b.matchers)
		k.re = keptRegex(k.values, a)
	case b.values != nil:
		k.values = filterValues(b.values, a.matchers)
		k.re = keptRegex(k.values, b)
	default:
		k.matchers = make([]*labels.Matcher, 0, len(a.matchers)+len(b.matchers))
		k.matchers = append(append(k.matchers, a.matchers...), b.matchers...)
		sortMatchers(k.matchers)
		k.matchers = slices.CompactFunc(k.matchers, sameMatcher)
		return k, !disjointMatchers(k.matchers)
	}
	return k, len(k.values) > 0
}

// keptRegex returns the regex of the first constraint whose values are
// exactly vs, for printing: an intersection that removed nothing.
func keptRegex(vs []string, from ...constraint) *labels.Matcher {
	for _, k := range from {
		if k.re != nil && len(k.values) == len(vs) {
			return k.re
		}
	}
	return nil
}

// withoutSetOnly returns the conjunction without its constraint on name if
// that constraint only requires the label to be set (name=~"(?s:.+)" or
// name!="") and the rest does not match the empty label set, which the API
// would refuse; otherwise the conjunction itself.
func (a conjunction) withoutSetOnly(name string) conjunction {
	i := slices.IndexFunc(a, func(k constraint) bool { return k.name == name })
	if i < 0 || a[i].values != nil || len(a[i].matchers) != 1 {
		return a
	}
	m := a[i].matchers[0]
	if !(m.Type == labels.MatchRegexp && m.Value == "(?s:.+)") && !(m.Type == labels.MatchNotEqual && m.Value == "") {
		return a
	}
	rest := slices.Delete(slices.Clone(a), i, i+1)
	if rest.matchesEmpty() {
		return a
	}
	return rest
}

// matchesEmpty reports whether a series without any of the conjunction's
// labels matches it: whether every constraint admits the empty value.
func (a conjunction) matchesEmpty() bool {
	for _, k := range a {
		if k.values != nil && !slices.Contains(k.values, "") {
			return false
		}
		if k.values == nil && !matchesAll(k.matchers, "") {
			return false
		}
	}
	return true
}

// implies reports whether every series matching a also matches b. False
// negatives are allowed (they only keep a redundant branch), false positives
// are not.
func (a conjunction) implies(b conjunction) bool {
	i := 0
	for _, kb := range b {
		for i < len(a) && a[i].name < kb.name {
			i++
		}
		if i == len(a) || a[i].name != kb.name {
			return false // a leaves the label free; kb is never trivial
		}
		if !a[i].implies(kb) {
			return false
		}
	}
	return true
}

func (a constraint) implies(b constraint) bool {
	switch {
	case b.values != nil:
		return a.values != nil && subsetSorted(a.values, b.values)
	case a.values != nil:
		for _, v := range a.values {
			if !matchesAll(b.matchers, v) {
				return false
			}
		}
		return true
	default:
		for _, mb := range b.matchers {
			if !a.impliesMatcher(mb) {
				return false
			}
		}
		return true
	}
}

// impliesMatcher reports whether every value a allows satisfies m, where a
// has no finite set of values: if a has m itself, or m is l!="v" and some
// matcher of a rejects v.
func (a constraint) impliesMatcher(m *labels.Matcher) bool {
	for _, ma := range a.matchers {
		if sameMatcher(ma, m) || (m.Type == labels.MatchNotEqual && !ma.Matches(m.Value)) {
			return true
		}
	}
	return false
}

// equal reports whether two constraints are written identically.
func (a constraint) equal(b constraint) bool {
	if a.name != b.name || (a.values == nil) != (b.values == nil) {
		return false
	}
	if a.values != nil {
		return slices.Equal(a.values, b.values)
	}
	return slices.EqualFunc(a.matchers, b.matchers, sameMatcher)
}

// positiveRegex renders a constraint that is one positive condition as an
// unanchored regex, for merging. ok is false for anything else.
func (a constraint) positiveRegex() (string, bool) {
	if a.values != nil {
		return quoteValues(a.values), true
	}
	if len(a.matchers) == 1 && a.matchers[0].Type == labels.MatchRegexp {
		return a.matchers[0].Value, true
	}
	return "", false
}

// selector renders the conjunction as matchers. compile says whether the
// matchers must be usable for matching; when false, regex matchers are built
// for printing only and must never be matched.
func (a conjunction) selector(compile bool) Selector {
	out := make(Selector, 0, len(a))
	for _, k := range a {
		switch {
		case len(k.values) == 1 && k.re != nil && k.re.Type == labels.MatchEqual:
			out = append(out, k.re)
		case len(k.values) == 1:
			out = append(out, &labels.Matcher{Type: labels.MatchEqual, Name: k.name, Value: k.values[0]})
		case k.re != nil:
			out = append(out, k.re)
		case k.values != nil:
			out = append(out, newRegexMatcher(k.name, quoteValues(k.values), compile))
		default:
			out = append(out, k.matchers...)
		}
	}
	return out
}

func newRegexMatcher(name, re string, compile bool) *labels.Matcher {
	if !compile {
		return &labels.Matcher{Type: labels.MatchRegexp, Name: name, Value: re}
	}
	// The regex is built from quoted literals and regexes that compiled
	// already, so it compiles.
	return labels.MustNewMatcher(labels.MatchRegexp, name, re)
}

func quoteValues(vs []string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(regexp.QuoteMeta(v))
	}
	return b.String()
}

func matchesAll(ms []*labels.Matcher, v string) bool {
	for _, m := range ms {
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

func filterValues(vs []string, ms []*labels.Matcher) []string {
	var out []string
	for _, v := range vs {
		if matchesAll(ms, v) {
			out = append(out, v)
		}
	}
	return out
}

// disjointMatchers reports a conjunction of matchers on one label that
// provably matches no value: a regex and its negation, or two positive regexes
// whose required literal prefixes diverge.
func disjointMatchers(ms []*labels.Matcher) bool {
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if isNegationOf(a.Type, b.Type) && sameRegex(a.Value, b.Value) {
				return true
			}
			if a.Type == labels.MatchRegexp && b.Type == labels.MatchRegexp {
				pa, pb := a.Prefix(), b.Prefix()
				if pa != "" && pb != "" && !strings.HasPrefix(pa, pb) && !strings.HasPrefix(pb, pa) {
					return true
				}
			}
		}
	}
	return false
}

// sameRegex reports whether two regexes are written the same, or the same
// once rendered from their syntax trees (a policy's are, by dotAll).
func sameRegex(a, b string) bool {
	if a == b {
		return true
	}
	ca, errA := dotAll(a)
	cb, errB := dotAll(b)
	return errA == nil && errB == nil && ca == cb
}

func isNegationOf(a, b labels.MatchType) bool {
	return (a == labels.MatchRegexp && b == labels.MatchNotRegexp) || (a == labels.MatchNotRegexp && b == labels.MatchRegexp) ||
		(a == labels.MatchEqual && b == labels.MatchNotEqual) || (a == labels.MatchNotEqual && b == labels.MatchEqual)
}

// isMatchAll reports a regex that matches every value on every upstream.
// Only the dotAll form does: on Prometheus 2.x "." does not match a
// newline, so a user's ".*" rejects values with one there and must stay
// in the query as written (a policy's ".*" is rendered by dotAll first).
func isMatchAll(re string) bool { return re == "(?s:.*)" }

// dotAll renders a regex from its syntax tree, parsed as Prometheus parses
// (Perl syntax, "." matching a newline). The text it returns says so
// explicitly, so an upstream on Prometheus 2.x, where "." does not match a
// newline, evaluates it as the proxy reasoned about it; and it is safe to
// splice into a larger regex, which the source text is not (an unterminated
// \Q quotes everything after it).
func dotAll(re string) (string, error) {
	parsed, err := syntax.Parse(re, syntax.Perl|syntax.DotNL)
	if err != nil {
		return "", err
	}
	return parsed.String(), nil
}

// dotAll returns the conjunction with every regex matcher rendered by dotAll.
// A regex that becomes (?s:.*) matches every value: =~ is dropped, and !~
// makes the conjunction match nothing (ok false).
func (a conjunction) dotAll() (c conjunction, ok bool, err error) {
	out := make(conjunction, 0, len(a))
	for _, k := range a {
		if k.matchers == nil {
			out = append(out, k)
			continue
		}
		ms := make([]*labels.Matcher, 0, len(k.matchers))
		for _, m := range k.matchers {
			if m.Type != labels.MatchRegexp && m.Type != labels.MatchNotRegexp {
				ms = append(ms, m)
				continue
			}
			re, err := dotAll(m.Value)
			if err != nil {
				return nil, false, err
			}
			if isMatchAll(re) {
				if m.Type == labels.MatchNotRegexp {
					return nil, false, nil
				}
				continue
			}
			if m, err = labels.NewMatcher(m.Type, m.Name, re); err != nil {
				return nil, false, err
			}
			ms = append(ms, m)
		}
		if len(ms) == 0 {
			continue // every value matches
		}
		sortMatchers(ms)
		ms = slices.CompactFunc(ms, sameMatcher)
		if disjointMatchers(ms) {
			return nil, false, nil
		}
		k.matchers = ms
		out = append(out, k)
	}
	return out, true, nil
}

func sameMatcher(a, b *labels.Matcher) bool {
	return a.Type == b.Type && a.Name == b.Name && a.Value == b.Value
}

func sortMatchers(ms []*labels.Matcher) {
	slices.SortFunc(ms, func(a, b *labels.Matcher) int {
		if a.Type != b.Type {
			return int(a.Type) - int(b.Type)
		}
		return strings.Compare(a.Value, b.Value)
	})
}

func intersectSorted(a, b []string) []string {
	out := make([]string, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := strings.Compare(a[i], b[j]); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func subsetSorted(a, b []string) bool {
	return len(intersectSorted(a, b)) == len(a)
}
