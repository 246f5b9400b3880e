package tenancy

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Rejection is a MetricAccess object, or a manifest file, that is not in
// force (or, for a file that keeps its last good version, whose current
// content is not), and why.
type Rejection struct {
	// Namespace and Name identify the object; both are empty for a manifest
	// file rejected as a whole (its objects are not known).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Source is the manifest file's path, or "kubernetes".
	Source string `json:"source"`
	// Reason is the Ready condition's reason of a Kubernetes object
	// (Invalid, Empty, Duplicate); empty for a file.
	Reason string `json:"reason,omitempty"`
	// Error says what is wrong.
	Error string `json:"error"`
}

// Rejections returns what the app's sources hold that is not in force:
// the directory's manifest files whose content is rejected (invalid, or in
// conflict with another file, or in a namespace that allows nothing), then
// the Kubernetes objects that are invalid, duplicated by the directory, or
// in a namespace that allows nothing. Files are sorted by path, objects by
// namespace and name.
func (a *App) Rejections() []Rejection {
	out := []Rejection{}
	if a.Directory != nil {
		errs := a.Directory.Errors()
		for _, path := range slices.Sorted(maps.Keys(errs)) {
			out = append(out, Rejection{Source: path, Error: errs[path].Error()})
		}
	}
	if a.Kubernetes != nil {
		objs := slices.Clone(a.Kubernetes.rejections())
		slices.SortFunc(objs, func(x, y Rejection) int {
			return cmp.Or(strings.Compare(x.Namespace, y.Namespace), strings.Compare(x.Name, y.Name))
		})
		out = append(out, objs...)
	}
	return out
}
