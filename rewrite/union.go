package rewrite

import (
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// reduceUnion simplifies a union of conjunctions without changing what it
// matches: it removes branches implied by another and merges pairs that agree
// on every label but one, where both are a single positive condition on it.
// It repeats until nothing changes. The result is sorted by its text, so equal
// unions reduce to equal results.
func reduceUnion(cs []conjunction) []conjunction {
	for changed := true; changed && len(cs) > 1; {
		changed = false
		cs = dropImplied(cs)
	merge:
		for i := 0; i < len(cs); i++ {
			for j := i + 1; j < len(cs); j++ {
				if m, ok := merge(cs[i], cs[j]); ok {
					cs[i] = m
					cs = slices.Delete(cs, j, j+1)
					changed = true
					break merge
				}
			}
		}
	}
	sortByText(cs)
	return cs
}

// sortByText sorts conjunctions by their text.
func sortByText(cs []conjunction) {
	if len(cs) < 2 {
		return
	}
	keys := make(map[*constraint]string, len(cs))
	key := func(c conjunction) string {
		if len(c) == 0 {
			return ""
		}
		k, ok := keys[&c[0]]
		if !ok {
			k = c.selector(false).String()
			keys[&c[0]] = k
		}
		return k
	}
	slices.SortFunc(cs, func(a, b conjunction) int { return strings.Compare(key(a), key(b)) })
}

// dropImplied removes every branch that implies another one still present.
func dropImplied(cs []conjunction) []conjunction {
	out := cs[:0:0]
	for i, c := range cs {
		redundant := false
		for j, d := range cs {
			if i == j || !c.implies(d) {
				continue
			}
			// Of two equivalent branches keep the first.
			if j < i || !d.implies(c) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, c)
		}
	}
	return out
}

// merge returns the union of a and b as one conjunction when they differ in
// exactly one label's constraint and that constraint is a single positive
// condition in both: {l∈A, rest} ∪ {l∈B, rest} = {l∈A∪B, rest}.
func merge(a, b conjunction) (conjunction, bool) {
	if len(a) != len(b) {
		return nil, false
	}
	diff := -1
	for i := range a {
		if a[i].name != b[i].name {
			return nil, false
		}
		if a[i].equal(b[i]) {
			continue
		}
		if diff >= 0 {
			return nil, false
		}
		diff = i
	}
	if diff < 0 {
		return a, true // identical
	}
	ka, kb := a[diff], b[diff]
	var k constraint
	switch {
	case ka.values != nil && kb.values != nil:
		k = constraint{name: ka.name, values: unionSorted(ka.values, kb.values)}
	default:
		ra, okA := ka.positiveRegex()
		rb, okB := kb.positiveRegex()
		if !okA || !okB {
			return nil, false
		}
		// Prometheus anchors the whole regex, so an alternation of the two
		// (each in its own group) matches exactly the union. Each side is
		// re-rendered from its syntax tree, which is safe to splice.
		ra, errA := dotAll(ra)
		rb, errB := dotAll(rb)
		if errA != nil || errB != nil {
			return nil, false
		}
		if rb < ra {
			ra, rb = rb, ra // canonical order
		}
		m, err := labels.NewMatcher(labels.MatchRegexp, ka.name, "(?:"+ra+")|(?:"+rb+")")
		if err != nil {
			return nil, false // say, too large: keep the branches apart
		}
		k = constraint{name: ka.name, matchers: []*labels.Matcher{m}}
	}
	out := slices.Clone(a)
	out[diff] = k
	return out, true
}
