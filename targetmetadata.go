package promtenant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// Metadata is kept per scrape target, and /api/v1/metadata merges it over
// all targets: restricting it by metric name would hand a tenant the HELP of
// every other exporter of a family it has series of. So the proxy reads the
// metadata per target (/api/v1/targets/metadata) and keeps a target's entry
// for a family only when the tenant can see a series of that family that
// carries the target's labels, as every series scraped from it does. A
// series that does not (honor_labels with a conflicting label, relabelled
// target labels), or an entry with no target labels, cannot be traced to a
// target: its metadata is given to no one.

// metaKey is the metadata Prometheus merges by family: identical ones once.
type metaKey struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// targetEntry is one entry of /api/v1/targets/metadata, interned.
type targetEntry struct{ target, family, meta int32 }

// targetMetadata is the upstream's metadata by target, in the upstream's
// order, with each target, family and metadata stored once: the entries of
// a large Prometheus repeat them many times over.
type targetMetadata struct {
	targets   []labels.Labels
	targetIDs map[string]int32 // by the target's JSON text
	families  []string
	familyIDs map[string]int32
	metas     []metaKey
	metaIDs   map[metaKey]int32
	entries   []targetEntry
}

func newTargetMetadata() *targetMetadata {
	return &targetMetadata{targetIDs: map[string]int32{}, familyIDs: map[string]int32{}, metaIDs: map[metaKey]int32{}}
}

// decode reads the data of /api/v1/targets/metadata, an array of entries.
// Entries carry no family name when the request named one (metric).
func (tm *targetMetadata) decode(metric string) func(*json.Decoder) error {
	return func(dec *json.Decoder) error {
		return walkArray(dec, func() error {
			var e struct {
				Target json.RawMessage `json:"target"`
				Metric string          `json:"metric"`
				metaKey
			}
			if err := dec.Decode(&e); err != nil {
				return unexpected(err)
			}
			if e.Metric == "" {
				e.Metric = metric
			}
			return tm.add(e.Target, e.Metric, e.metaKey)
		})
	}
}

// add interns an entry. Targets are keyed by their JSON text, which
// Prometheus writes the same for every entry of a target (sorted labels),
// so that each is decoded once.
func (tm *targetMetadata) add(target json.RawMessage, family string, md metaKey) error {
	t, ok := tm.targetIDs[string(target)]
	if !ok {
		var ls map[string]string
		if err := json.Unmarshal(target, &ls); err != nil {
			return unexpected(err)
		}
		t = intern(&tm.targets, tm.targetIDs, string(target), labels.FromMap(ls))
	}
	f := intern(&tm.families, tm.familyIDs, family, family)
	m := intern(&tm.metas, tm.metaIDs, md, md)
	tm.entries = append(tm.entries, targetEntry{target: t, family: f, meta: m})
	return nil
}

func intern[K comparable, V any](values *[]V, ids map[K]int32, key K, v V) int32 {
	id, ok := ids[key]
	if !ok {
		id = int32(len(*values))
		ids[key] = id
		*values = append(*values, v)
	}
	return id
}

// labelNames are the names of all target labels, sorted.
func (tm *targetMetadata) labelNames() []string {
	seen := map[string]bool{}
	for _, t := range tm.targets {
		t.Range(func(l labels.Label) { seen[l.Name] = true })
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// seriesNames are the names of the series of the given families, by the
// types the targets give them (familySuffixes), as an anchored regex.
func (tm *targetMetadata) seriesNames(families []string) string {
	var names []string
	for _, e := range tm.entries {
		f := tm.families[e.family]
		if !slices.Contains(families, f) {
			continue
		}
		names = append(names, regexp.QuoteMeta(f))
		for _, s := range familySuffixes[tm.metas[e.meta].Type] {
			names = append(names, regexp.QuoteMeta(f+s))
		}
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), "|")
}

// familyLabel carries a series' name through group by, which drops
// __name__ from its output unless grouped by; and `or`, which ignores
// __name__ when it matches series, must tell series of two names apart.
const familyLabel = "__prom_tenant_name__"

// selectorParser reads the rewriter's selectors back; it holds only options
// and is safe for concurrent use.
var selectorParser = parser.NewParser(parser.Options{})

// seen is a target that the tenant has a series of a name from.
type seen struct {
	name   string
	target int32
}

// visibleSeries asks the upstream which (series name, target) pairs the
// tenant has series of, in one query: the tenant's series of those names
// (the selector constrained by the rewriter under the policy, one selector
// per branch of the union) grouped by name and every target label name. A
// target's labels then match a group exactly when a series of that name
// carries them. nameRegex "" stands for every name.
func (h *Handler) visibleSeries(r *http.Request, p *rewrite.Policy, tm *targetMetadata, nameRegex string, next caddyhttp.Handler) (map[seen]bool, error) {
	if nameRegex == "" {
		nameRegex = ".+"
	}
	match, err := h.enforcer.EnforceMatchers(r.Context(), p, []string{fmt.Sprintf("{__name__=~%q}", nameRegex)})
	if err != nil {
		return nil, err
	}
	var union parser.Expr
	for _, m := range match {
		ms, err := selectorParser.ParseMetricSelector(m)
		if err != nil {
			return nil, err // the rewriter's own output: unreachable
		}
		named := &parser.Call{Func: parser.Functions["label_replace"], Args: parser.Expressions{
			&parser.VectorSelector{LabelMatchers: ms},
			&parser.StringLiteral{Val: familyLabel}, &parser.StringLiteral{Val: "$1"},
			&parser.StringLiteral{Val: labels.MetricName}, &parser.StringLiteral{Val: "(.+)"},
		}}
		if union == nil {
			union = named
		} else {
			union = &parser.BinaryExpr{Op: parser.LOR, LHS: union, RHS: named, VectorMatching: &parser.VectorMatching{Card: parser.CardManyToMany}}
		}
	}
	query := (&parser.AggregateExpr{Op: parser.GROUP, Expr: union, Grouping: append(tm.labelNames(), familyLabel)}).String()

	// Targets by instance, which every target has: a group is compared with
	// the few targets of its instance only.
	byInstance := map[string][]int32{}
	for i, t := range tm.targets {
		if !t.IsEmpty() {
			byInstance[t.Get("instance")] = append(byInstance[t.Get("instance")], int32(i))
		}
	}
	visible := map[seen]bool{}
	decode := func(dec *json.Decoder) error {
		return walkObject(dec, func(key string) error {
			if key != "result" {
				return skipValue(dec)
			}
			return walkArray(dec, func() error {
				var group struct {
					Metric map[string]string `json:"metric"`
				}
				if err := dec.Decode(&group); err != nil {
					return unexpected(err)
				}
				for _, t := range byInstance[group.Metric["instance"]] {
					if carries(group.Metric, tm.targets[t]) {
						visible[seen{group.Metric[familyLabel], t}] = true
					}
				}
				return nil
			})
		})
	}
	err = h.subrequest(r, http.MethodPost, "/api/v1/query", url.Values{"query": {query}}, next, h.MaxMetadataResponse, decode)
	return visible, err
}

// carries reports whether a series' labels include every label of target.
func carries(series map[string]string, target labels.Labels) bool {
	ok := true
	target.Range(func(l labels.Label) {
		if ok && series[l.Name] != l.Value {
			ok = false
		}
	})
	return ok
}
