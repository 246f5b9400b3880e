package promtenant

import (
	"net/http"
	"strings"

	"github.com/prometheus/common/model"
)

// param says how often a request parameter may appear.
type param int

const (
	single param = iota // at most once
	multi               // any number of times
)

// endpointKind says which part of a request carries selectors to enforce.
type endpointKind int

const (
	kindQuery    endpointKind = iota // a PromQL expression in "query"
	kindExemplar                     // a PromQL expression in "query", used for its selectors only
	kindMatch                        // selectors in "match[]"
	kindMetadata                     // metric names, answered under the policy's names
	kindNoSeries                     // no series data at all
)

// endpoint is one served path of the Prometheus HTTP API.
type endpoint struct {
	// name is the served path, or its pattern for label values: the
	// "endpoint" label of the proxy's metrics.
	name string
	kind endpointKind
	// post is whether Prometheus takes POST here as well as GET.
	post bool
	// matchRequired is whether match[] must be given (as Prometheus requires).
	matchRequired bool
	// params are the only parameters accepted; any other is refused.
	params map[string]param
}

var (
	queryParams = map[string]param{"query": single, "time": single, "timeout": single, "limit": single, "lookback_delta": single, "stats": single}
	rangeParams = map[string]param{"query": single, "start": single, "end": single, "step": single, "timeout": single, "limit": single, "lookback_delta": single, "stats": single}
	matchParams = map[string]param{"match[]": multi, "start": single, "end": single, "limit": single}
)

// endpoints are the served paths, matched exactly. Everything else is refused.
var endpoints = map[string]*endpoint{
	"/api/v1/query":            {kind: kindQuery, post: true, params: queryParams},
	"/api/v1/query_range":      {kind: kindQuery, post: true, params: rangeParams},
	"/api/v1/query_exemplars":  {kind: kindExemplar, post: true, params: map[string]param{"query": single, "start": single, "end": single}},
	"/api/v1/series":           {kind: kindMatch, post: true, matchRequired: true, params: matchParams},
	"/api/v1/labels":           {kind: kindMatch, post: true, params: matchParams},
	"/federate":                {kind: kindMatch, matchRequired: true, params: map[string]param{"match[]": multi}},
	"/api/v1/metadata":         {kind: kindMetadata, params: map[string]param{"metric": single, "limit": single, "limit_per_metric": single}},
	"/api/v1/status/buildinfo": {kind: kindNoSeries, params: map[string]param{}},
}

// labelValues is the endpoint for /api/v1/label/<name>/values.
var labelValues = &endpoint{name: "/api/v1/label/:name/values", kind: kindMatch, params: matchParams}

// endpointOther is the "endpoint" label of every path that is not served.
const endpointOther = "other"

func init() {
	for path, ep := range endpoints {
		ep.name = path
	}
}

// endpointName is the "endpoint" label of a request path: the served path
// pattern, or endpointOther. The label set stays bounded whatever clients send.
func endpointName(path string) string {
	if ep, ok := lookupEndpoint(path); ok {
		return ep.name
	}
	return endpointOther
}

const labelValuesPrefix, labelValuesSuffix = "/api/v1/label/", "/values"

// lookupEndpoint finds the endpoint of an exact path. A label-values path
// must name a valid (legacy, or U__-escaped) label.
func lookupEndpoint(path string) (*endpoint, bool) {
	if ep, ok := endpoints[path]; ok {
		return ep, true
	}
	if _, ok := labelValuesName(path); ok {
		return labelValues, true
	}
	return nil, false
}

// labelValuesName returns the <name> of a path /api/v1/label/<name>/values
// that names a valid (legacy, or U__-escaped) label.
func labelValuesName(path string) (string, bool) {
	name, ok := strings.CutPrefix(path, labelValuesPrefix)
	if !ok {
		return "", false
	}
	name, ok = strings.CutSuffix(name, labelValuesSuffix)
	return name, ok && model.LegacyValidation.IsValidLabelName(name)
}

// valuesLabel returns the label a label-values path asks for, if it is
// written literally; "" for another path, or a U__-escaped name (which the
// API unescapes). It is only used to make the upstream's work lighter, so
// the escaped names are not worth unescaping here.
func valuesLabel(path string) string {
	if name, ok := labelValuesName(path); ok && !strings.HasPrefix(name, "U__") {
		return name
	}
	return ""
}

// allows reports whether the endpoint takes the method.
func (ep *endpoint) allows(method string) bool {
	return method == http.MethodGet || (ep.post && method == http.MethodPost)
}
