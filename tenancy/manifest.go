package tenancy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// parseManifests reads every MetricAccess of a multi-document YAML file and
// validates it. Empty documents are skipped. Any problem fails the whole
// file; all problems found are returned joined, each prefixed with name and
// the document number (1-based).
func parseManifests(name string, data []byte) ([]*v1alpha1.MetricAccess, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var (
		objs  []*v1alpha1.MetricAccess
		errs  []error
		where = map[string]int{} // object key -> document number
	)
	for n := 1; ; n++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		prefix := fmt.Sprintf("%s: document %d", name, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
			break // the reader cannot resynchronize
		}
		m, err := parseDocument(doc)
		if err != nil {
			errs = append(errs, prefixAll(prefix, err)...)
			continue
		}
		if m == nil {
			continue // empty document
		}
		if first, dup := where[m.Key()]; dup {
			errs = append(errs, fmt.Errorf("%s: %s: already defined in document %d", prefix, m.Key(), first))
			continue
		}
		where[m.Key()] = n
		objs = append(objs, m)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return objs, nil
}

// parseDocument decodes and validates one YAML document. It returns nil, nil
// for a document without content (only comments or whitespace).
func parseDocument(doc []byte) (*v1alpha1.MetricAccess, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if s := string(bytes.TrimSpace(j)); s == "null" || s == "" {
		return nil, nil
	}
	m := new(v1alpha1.MetricAccess)
	if err := yaml.UnmarshalStrict(doc, m); err != nil {
		return nil, explainDecodeError(doc, j, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// explainDecodeError names the object (if its metadata can be read) and
// the path of each unknown field.
func explainDecodeError(doc, j []byte, err error) error {
	var errs []error
	var generic any
	if json.Unmarshal(j, &generic) == nil {
		for _, f := range unknownFields(generic, reflect.TypeFor[v1alpha1.MetricAccess](), "") {
			errs = append(errs, fmt.Errorf("unknown field %q", f))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, err)
	}
	var meta struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if yaml.Unmarshal(doc, &meta) == nil && (meta.Metadata.Name != "" || meta.Metadata.Namespace != "") {
		ref := (&v1alpha1.MetricAccess{ObjectMeta: metav1.ObjectMeta{Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace}}).ErrorName()
		for i, e := range errs {
			errs[i] = fmt.Errorf("%s: %w", ref, e)
		}
	}
	return errors.Join(errs...)
}

// prefixAll prefixes each error joined in err.
func prefixAll(prefix string, err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s: %w", prefix, e)
	}
	return out
}
