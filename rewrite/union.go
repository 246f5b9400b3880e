package rewrite

import (
	"context"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Bounds on work the reduction spends on candidates that hashing cannot
// decide. Going past them only keeps a redundant branch or a longer regex:
// the union stays exact, and the choice depends on the set of branches only,
// never on their order.
const (
	// impliedCandidates is how many branches one lookup of dropImplied checks.
	impliedCandidates = 32
	// regexValueChecks bounds the regex matches one merge spends on finding
	// value sets that a regex of the same group already matches.
	regexValueChecks = 1 << 16
)

// reduceUnion simplifies a union of conjunctions without changing what it
// matches: it removes branches implied by another and merges branches that
// agree on every label but one, where each is a single positive condition on
// it. Candidates are found by hashing the branches' constraints, never by
// trying all pairs, so the cost grows about as n log n. The result depends
// only on the set of branches, not their order, and is sorted by its text.
// It returns ctx.Err() as soon as ctx is done.
func reduceUnion(ctx context.Context, cs []conjunction) ([]conjunction, error) {
	for len(cs) > 1 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Sorted by text, so that "the first" of equivalent branches, and
		// every order below, follows from the set alone.
		sortByText(cs)
		var err error
		if cs, err = dropImplied(ctx, cs); err != nil {
			return nil, err
		}
		merged, changed, err := mergeAll(ctx, cs)
		if err != nil {
			return nil, err
		}
		if !changed {
			break
		}
		cs = merged
	}
	sortByText(cs)
	return cs, nil
}

// sortByText sorts conjunctions by their text.
func sortByText(cs []conjunction) {
	if len(cs) < 2 {
		return
	}
	type keyed struct {
		text string
		c    conjunction
	}
	ks := make([]keyed, len(cs))
	for i, c := range cs {
		ks[i] = keyed{c: c}
		if len(c) > 0 {
			ks[i].text = c.selector(false).String()
		}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return strings.Compare(a.text, b.text) })
	for i := range ks {
		cs[i] = ks[i].c
	}
}

// keys holds a conjunction's constraints written as hashable strings: two
// constraints have the same key iff they are equal (constraint.equal).
type keys []string

func keysOf(c conjunction) keys {
	out := make(keys, len(c))
	var b []byte
	for i, k := range c {
		b = appendString(b[:0], k.name)
		if k.values != nil {
			b = append(b, 'v')
			b = strconv.AppendInt(b, int64(len(k.values)), 10)
			for _, v := range k.values {
				b = appendString(b, v)
			}
		} else {
			b = append(b, 'm')
			b = strconv.AppendInt(b, int64(len(k.matchers)), 10)
			for _, m := range k.matchers {
				b = strconv.AppendInt(b, int64(m.Type), 10)
				b = appendString(b, m.Value)
			}
		}
		out[i] = string(b)
	}
	return out
}

// appendString appends s length-prefixed, so that concatenations of keys
// cannot collide.
func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// keySeed seeds the hashes of constraint keys. Hashes only find
// candidates: every candidate is checked exactly, so a collision costs a
// comparison, never a wrong result.
var keySeed = maphash.MakeSeed()

// hashed is a conjunction's constraint keys with their hashes. The hash of
// a set of constraints is the sum of theirs, so that the hash of "all of
// them but with any value on one label" costs one subtraction and one
// addition, not a pass over the conjunction.
type hashed struct {
	keys keys
	h    []uint64 // of each constraint
	wild []uint64 // of each constraint's label with any value
	full uint64   // of all constraints
}

func hashOf(c conjunction) hashed {
	out := hashed{keys: keysOf(c), h: make([]uint64, len(c)), wild: make([]uint64, len(c))}
	for i, k := range out.keys {
		out.h[i] = maphash.String(keySeed, k)
		out.wild[i] = maphash.String(keySeed, c[i].name+"\x00*")
		out.full += out.h[i]
	}
	return out
}

// sum is the hash of the constraints at positions pos.
func (h hashed) sum(pos []int) uint64 {
	var s uint64
	for _, i := range pos {
		s += h.h[i]
	}
	return s
}

// except is the hash of a set of constraints (hash sum) with any value on
// the label at position i instead.
func (h hashed) except(sum uint64, i int) uint64 { return sum - h.h[i] + h.wild[i] }

// dropImplied removes every branch that implies another one still present
// (of equivalent branches, the first is kept). cs must be sorted by text.
//
// A branch c implies d only if d constrains a subset S of c's labels. For
// each such S present among the branches, d is looked up by hash: with equal
// constraints on S, or with equal constraints on S but one label. The
// implication itself is decided by conjunction.implies, as before; branches
// that differ in two or more labels are not compared (implies may miss
// implications, which only keeps a redundant branch).
func dropImplied(ctx context.Context, cs []conjunction) ([]conjunction, error) {
	if len(cs) < 2 {
		return cs, nil
	}
	all := make([]hashed, len(cs))
	nameSets := map[string][]string{} // name-set key → its sorted names
	index := map[uint64][]int{}       // hash of constraints → branches, in order
	pos := make([]int, 0, 8)
	for i, c := range cs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		h := hashOf(c)
		all[i] = h
		pos = pos[:0]
		for j := range c {
			pos = append(pos, j)
		}
		nameSets[namesKey(c, pos)] = names(c)
		index[h.full] = append(index[h.full], i)
		for _, j := range pos {
			k := h.except(h.full, j)
			index[k] = append(index[k], i)
		}
	}
	sorted := sortNameSets(nameSets)
	redundant := func(i int) bool {
		c, h := cs[i], all[i]
		for _, pos := range subsetsPresent(c, nameSets, sorted) {
			sum := h.sum(pos)
			for n := -1; n < len(pos); n++ {
				k := sum
				if n >= 0 {
					k = h.except(sum, pos[n])
				}
				for m, j := range index[k] {
					if m == impliedCandidates {
						break
					}
					if j == i || !c.implies(cs[j]) {
						continue
					}
					if j < i || !cs[j].implies(c) {
						return true
					}
				}
			}
		}
		return false
	}
	out := cs[:0:0]
	for i, c := range cs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if !redundant(i) {
			out = append(out, c)
		}
	}
	return out, nil
}

// names returns the conjunction's label names, sorted.
func names(c conjunction) []string {
	out := make([]string, len(c))
	for i, k := range c {
		out[i] = k.name
	}
	return out
}

// namesKey is the key of the label names of c at positions pos.
func namesKey(c conjunction, pos []int) string {
	var b []byte
	for _, i := range pos {
		b = appendString(b, c[i].name)
	}
	return string(b)
}

// maxSubsetLabels bounds the enumeration of subsets of one branch's labels;
// past it, at most scanNameSets of the name sets present (the smallest
// first) are tried, besides the branch's own: a branch with many labels is
// compared with fewer others, never with all (which could cost n² on
// hostile input).
const (
	maxSubsetLabels = 10
	scanNameSets    = 64
)

// sortNameSets orders the name sets present, smallest first, for
// subsetsPresent: an order that follows from the set alone.
func sortNameSets(nameSets map[string][]string) [][]string {
	sets := make([][]string, 0, len(nameSets))
	for _, s := range nameSets {
		sets = append(sets, s)
	}
	slices.SortFunc(sets, func(a, b []string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return slices.Compare(a, b)
	})
	return sets
}

// subsetsPresent returns, as positions in c, sets of c's labels that are
// the label set of some branch: all of them for a branch of up to
// maxSubsetLabels labels.
func subsetsPresent(c conjunction, nameSets map[string][]string, sorted [][]string) [][]int {
	var out [][]int
	if len(c) <= maxSubsetLabels && 1<<len(c) <= 4*len(nameSets) {
		pos := make([]int, 0, len(c))
		for mask := 0; mask < 1<<len(c); mask++ {
			pos = pos[:0]
			for j := range c {
				if mask&(1<<j) != 0 {
					pos = append(pos, j)
				}
			}
			if _, ok := nameSets[namesKey(c, pos)]; ok {
				out = append(out, slices.Clone(pos))
			}
		}
		return out
	}
	all := make([]int, len(c))
	for j := range all {
		all[j] = j
	}
	out = append(out, all) // its own: duplicates and equivalents
	if len(c) <= maxSubsetLabels {
		sorted = sorted[:min(len(sorted), len(c)*scanNameSets)]
	} else {
		sorted = sorted[:min(len(sorted), scanNameSets)]
	}
	for _, s := range sorted {
		if len(s) >= len(c) {
			break
		}
		if pos, ok := positionsOf(c, s); ok {
			out = append(out, pos)
		}
	}
	return out
}

// positionsOf returns the positions in c of the sorted names s, if c has
// them all.
func positionsOf(c conjunction, s []string) ([]int, bool) {
	pos := make([]int, 0, len(s))
	j := 0
	for _, name := range s {
		for j < len(c) && c[j].name < name {
			j++
		}
		if j == len(c) || c[j].name != name {
			return nil, false
		}
		pos = append(pos, j)
	}
	return pos, true
}

// mergeAll merges, in one sweep, every group of branches that agree on all
// labels but one where each is a single positive condition: {l∈A, rest} ∪
// {l∈B, rest} = {l∈A∪B, rest}. Groups are found by hashing "rest"; a branch
// takes part in at most one merge per sweep (reduceUnion sweeps again).
// cs must be sorted by text; the first member of a group gives the text of
// the constraints they share.
func mergeAll(ctx context.Context, cs []conjunction) ([]conjunction, bool, error) {
	type group struct {
		label   string
		members []int
	}
	groups := map[uint64]*group{}
	var order []*group
	all := make([]hashed, len(cs))
	for i, c := range cs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		all[i] = hashOf(c)
		for j := range c {
			if _, ok := c[j].positiveRegex(); !ok {
				continue
			}
			k := all[i].except(all[i].full, j)
			g := groups[k]
			if g == nil {
				g = &group{label: c[j].name}
				groups[k] = g
				order = append(order, g)
			}
			g.members = append(g.members, i)
		}
	}
	// By label, then by first member: an order that follows from the set.
	slices.SortStableFunc(order, func(a, b *group) int {
		if c := strings.Compare(a.label, b.label); c != 0 {
			return c
		}
		return a.members[0] - b.members[0]
	})
	used := make([]bool, len(cs))
	replaced := make(map[int][]conjunction)
	changed := false
	for n, g := range order {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		if len(g.members) < 2 {
			continue
		}
		// Exactly equal but on the label (a hash collision is left out).
		first := g.members[0]
		members := slices.DeleteFunc(g.members, func(i int) bool {
			return used[i] || !equalBut(cs[first], all[first].keys, cs[i], all[i].keys, g.label)
		})
		if len(members) < 2 {
			continue
		}
		m, ok := mergeGroup(cs, members, g.label)
		if !ok {
			continue
		}
		for _, i := range members {
			used[i] = true
		}
		replaced[members[0]] = m
		changed = true
	}
	if !changed {
		return cs, false, nil
	}
	out := make([]conjunction, 0, len(cs))
	for i, c := range cs {
		switch {
		case replaced[i] != nil:
			out = append(out, replaced[i]...)
		case !used[i]:
			out = append(out, c)
		}
	}
	return out, true, nil
}

// equalBut reports whether a and b constrain the same labels, each the same
// way except label, which both constrain and b with one positive condition.
func equalBut(a conjunction, ka keys, b conjunction, kb keys, label string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name {
			return false
		}
		if a[i].name == label {
			// A collision could bring in a branch for another label.
			if _, ok := b[i].positiveRegex(); !ok {
				return false
			}
			continue
		}
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

// mergeGroup merges branches that are equal but on label, where each is a
// single positive condition, into one: the union of their value sets, or an
// alternation of their regexes. A value set that a regex of the group
// already matches whole is dropped, as dropImplied would. ok is false if the
// alternation cannot be built (say, too large): the branches stay apart.
func mergeGroup(cs []conjunction, members []int, label string) ([]conjunction, bool) {
	first := cs[members[0]]
	at := slices.IndexFunc(first, func(k constraint) bool { return k.name == label })
	var sets [][]string
	var regexes []*labels.Matcher
	for _, i := range members {
		k := cs[i][at]
		if k.values != nil {
			sets = append(sets, k.values)
		} else {
			regexes = append(regexes, k.matchers[0])
		}
	}
	var k constraint
	if len(regexes) == 0 {
		k = constraint{name: label, values: unionAll(sets)}
	} else {
		sets = dropMatchedSets(sets, regexes)
		alts := make([]string, 0, len(regexes)+1)
		for _, m := range regexes {
			re, err := dotAll(m.Value)
			if err != nil {
				return nil, false
			}
			alts = append(alts, re)
		}
		if len(sets) > 0 {
			re, err := dotAll(quoteValues(unionAll(sets)))
			if err != nil {
				return nil, false
			}
			alts = append(alts, re)
		}
		slices.Sort(alts)
		alts = slices.Compact(alts)
		switch {
		case len(regexes) == 1 && len(sets) == 0:
			// The value sets were all dropped: the regex's branch is left,
			// as written.
			k = constraint{name: label, matchers: regexes}
		default:
			// Prometheus anchors the whole regex, so an alternation of the
			// parts (each in its own group) matches exactly the union. Each
			// part is re-rendered from its syntax tree, which is safe to
			// splice.
			var b strings.Builder
			for i, a := range alts {
				if i > 0 {
					b.WriteByte('|')
				}
				b.WriteString("(?:")
				b.WriteString(a)
				b.WriteByte(')')
			}
			m, err := labels.NewMatcher(labels.MatchRegexp, label, b.String())
			if err != nil {
				return nil, false // say, too large: keep the branches apart
			}
			k = constraint{name: label, matchers: []*labels.Matcher{m}}
		}
	}
	out := slices.Clone(first)
	out[at] = k
	return []conjunction{out}, true
}

// dropMatchedSets removes the value sets whose every value one of the
// regexes matches. Regexes are indexed by their required literal prefix, so
// a value is matched only against those that can match it; past
// regexValueChecks matches the remaining sets are kept (still exact).
func dropMatchedSets(sets [][]string, regexes []*labels.Matcher) [][]string {
	byPrefix := map[string][]*labels.Matcher{}
	var lengths []int
	for _, m := range regexes {
		p := m.Prefix()
		if _, ok := byPrefix[p]; !ok {
			lengths = append(lengths, len(p))
		}
		byPrefix[p] = append(byPrefix[p], m)
	}
	slices.Sort(lengths)
	lengths = slices.Compact(lengths)
	budget := regexValueChecks
	matched := func(v string) bool {
		for _, l := range lengths {
			if l > len(v) {
				break
			}
			for _, m := range byPrefix[v[:l]] {
				if budget--; budget < 0 {
					return false
				}
				if m.Matches(v) {
					return true
				}
			}
		}
		return false
	}
	return slices.DeleteFunc(sets, func(vs []string) bool {
		for _, v := range vs {
			if !matched(v) {
				return false
			}
		}
		return true
	})
}

// unionAll returns the sorted union of sorted sets.
func unionAll(sets [][]string) []string {
	if len(sets) == 1 {
		return sets[0]
	}
	n := 0
	for _, s := range sets {
		n += len(s)
	}
	out := make([]string, 0, n)
	for _, s := range sets {
		out = append(out, s...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
