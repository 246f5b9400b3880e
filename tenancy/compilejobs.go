package tenancy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// compileJobs holds the compiles of namespaces, process-wide and keyed by
// what they compile (compileKey), so that a config reload finds every
// unchanged namespace compiled already and compiles nothing again; a job
// lives as long as some config's namespace uses it.
var compileJobs = caddy.NewUsagePool()

// compileNamespace compiles one namespace in a job; tests replace it to
// hold a compile back.
var compileNamespace = CompileNamespace

// compileJob is one namespace's compile, running in its own goroutine: a
// namespace that takes long never holds up another's, and the Go scheduler
// shares the CPUs among them. The caps (MaxPatternsPerObject,
// App.MaxPatternsPerNamespace) bound each one's cost.
type compileJob struct {
	done chan struct{} // closed when pol and err are set
	pol  *rewrite.Policy
	err  error
}

// Destruct implements caddy.Destructor; a running compile finishes on its own.
func (*compileJob) Destruct() error { return nil }

func (j *compileJob) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// acquireCompile returns the job compiling objs, the namespace ns's objects
// sorted by name, starting it unless one with the same key exists. Every
// call must be matched by a releaseCompile of the key. objs must not be
// modified afterwards.
func acquireCompile(key, ns string, objs []*v1alpha1.MetricAccess) *compileJob {
	v, _, _ := compileJobs.LoadOrNew(key, func() (caddy.Destructor, error) {
		j := &compileJob{done: make(chan struct{})}
		go j.run(ns, objs)
		return j, nil
	})
	return v.(*compileJob)
}

func (j *compileJob) run(ns string, objs []*v1alpha1.MetricAccess) {
	defer close(j.done)
	defer func() {
		// A bug in one namespace's compile must not take the process down.
		if r := recover(); r != nil {
			j.pol, j.err = nil, fmt.Errorf("namespace %s: internal error compiling the policy: %v", ns, r)
		}
	}()
	j.pol, j.err = compileNamespace(ns, objs)
}

// releaseCompile gives up one use of the job with key; "" is no job.
func releaseCompile(key string) {
	if key != "" {
		_, _ = compileJobs.Delete(key)
	}
}

// compileKey identifies what CompileNamespace reads of a namespace's
// objects: equal keys compile to the same policy.
func compileKey(ns string, objs []*v1alpha1.MetricAccess) string {
	type input struct {
		Namespace string            `json:"n"`
		Metrics   []string          `json:"m"`
		Labels    map[string]string `json:"l,omitempty"`
		Isolation bool              `json:"i,omitempty"`
	}
	in := make([]input, len(objs))
	for i, o := range objs {
		in[i] = input{o.Namespace, o.Spec.Metrics, o.Spec.LabelSelectors, o.Spec.MetricIsolation}
	}
	b, err := json.Marshal(in) // map keys sorted: deterministic
	if err != nil {
		panic(err) // strings, maps of strings and bools always encode
	}
	sum := sha256.Sum256(b)
	return ns + "/" + hex.EncodeToString(sum[:])
}
