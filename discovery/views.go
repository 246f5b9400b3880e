package discovery

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Probe states of a backend (BackendView.Probe).
const (
	probeNone    = ""        // no health_uri
	probePending = "pending" // discovered, not probed yet: handed out
	probePassed  = "passed"
	probeFailed  = "failed" // not handed out until a probe passes
)

// SourceView is one watcher (one set of kubernetes upstream settings,
// shared by every config that uses them) and its backends.
type SourceView struct {
	// Source names the settings: the "source" label of
	// prometheus_proxy_targets_discovered.
	Source      string            `json:"source"`
	Kind        string            `json:"kind"`
	Namespaces  []string          `json:"namespaces"`
	Selector    string            `json:"selector,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Port        string            `json:"port"`
	HealthURI   string            `json:"health_uri,omitempty"`
	// Synced is whether the informers have listed once; before that, no
	// backend is handed out.
	Synced   bool          `json:"synced"`
	Backends []BackendView `json:"backends"`
}

// BackendView is one discovered address.
type BackendView struct {
	Address string `json:"address"`
	// Ready is what Kubernetes says: ready and not terminating (always true
	// for services).
	Ready bool `json:"ready"`
	// Probe is the active probe's state: pending, passed or failed; empty
	// without health_uri or when not ready (not probed).
	Probe string `json:"probe,omitempty"`
	// Serving is whether reverse_proxy gets the address: ready and its
	// probe not failed.
	Serving bool `json:"serving"`
}

// source names the watcher's settings, without the connection.
func (o watchOptions) source() string {
	s := o.kind + " " + strings.Join(o.namespaces, ",")
	if o.selector != "" {
		s += " " + o.selector
	}
	for _, k := range slices.Sorted(maps.Keys(o.annotations)) {
		s += " @" + k + "=" + o.annotations[k]
	}
	return s + " port " + o.port.String()
}

// view returns the watcher's current backends, sorted by address.
func (w *watcher) view() SourceView {
	o := w.opts
	v := SourceView{Source: o.source(), Kind: o.kind, Namespaces: o.namespaces, Selector: o.selector,
		Annotations: o.annotations, Port: o.port.String(), Synced: w.snapshot.Load() != nil, Backends: []BackendView{}}
	if o.health != nil {
		v.HealthURI = o.health.uri
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.discovered {
		b := BackendView{Address: a, Ready: true, Serving: !w.down[a]}
		if w.prober != nil {
			switch {
			case w.down[a]:
				b.Probe = probeFailed
			case w.passed[a]:
				b.Probe = probePassed
			default:
				b.Probe = probePending
			}
		}
		v.Backends = append(v.Backends, b)
	}
	for _, a := range w.notReady {
		v.Backends = append(v.Backends, BackendView{Address: a})
	}
	slices.SortFunc(v.Backends, func(x, y BackendView) int {
		return cmp.Or(compareAddr(x.Address, y.Address), cmp.Compare(b2i(x.Ready), b2i(y.Ready)))
	})
	return v
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// String is the port as configured: a name or a number.
func (p portSpec) String() string {
	if p.name != "" {
		return p.name
	}
	return strconv.Itoa(int(p.number))
}

// views returns every live watcher's view, sorted by source.
func views() []SourceView {
	out := []SourceView{}
	watchers.Range(func(_, v any) bool {
		if w, ok := v.(*watcher); ok {
			out = append(out, w.view())
		}
		return true
	})
	slices.SortFunc(out, func(a, b SourceView) int { return strings.Compare(a.Source, b.Source) })
	return out
}
