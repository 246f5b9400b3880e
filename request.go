package promtenant

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// readForm reads the parameters of a request into one canonical form.
//
// The rules, so that the proxy and the upstream can never read a request
// differently: the URL query and a POST body are parsed strictly (a bad
// escape or a ';' is an error, not a silently dropped pair); a parameter may
// come from the URL or the body, or from both only with the same values; only
// the endpoint's parameters are accepted, and the backend parameters the
// operator allowed (backend_params); a single-valued one appears once;
// times and durations are read as Prometheus reads them and written in one
// form (canonical.go).
func readForm(r *http.Request, ep *endpoint, maxBody int64, backendParams map[string]param) (url.Values, error) {
	form, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, promapi.Refuse(promapi.BadRequest, "cannot parse the URL query: %v", err)
	}
	if r.Method == http.MethodPost {
		body, err := readBody(r, maxBody)
		if err != nil {
			return nil, err
		}
		for k, vs := range body {
			if uvs, ok := form[k]; ok && !slices.Equal(uvs, vs) {
				return nil, promapi.Refuse(promapi.BadRequest,
					"parameter %q is given in both the URL and the body with different values", k)
			}
			form[k] = vs
		}
	}
	for k, vs := range form {
		kind, ok := ep.params[k]
		if !ok {
			if kind, err = checkBackendParam(backendParams, k, r.URL.Path, vs); err != nil {
				return nil, err
			}
		}
		if kind == single && len(vs) > 1 {
			return nil, promapi.Refuse(promapi.BadRequest, "parameter %q is given %d times; it takes one value", k, len(vs))
		}
	}
	// Times and durations in one form, so that equal requests are equal upstream.
	if err := canonicalForm(form, r.URL.Path == "/api/v1/query_range"); err != nil {
		return nil, err
	}
	return form, nil
}

// readBody parses a form-encoded POST body of at most maxBody bytes.
func readBody(r *http.Request, maxBody int64) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, promapi.Refuse(promapi.ContentType,
				"unsupported Content-Type %q: POST takes application/x-www-form-urlencoded", ct)
		}
	}
	raw, err := readAll(http.MaxBytesReader(nil, r.Body, maxBody), r.ContentLength, maxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, promapi.Refuse(promapi.BodyTooLarge, "request body larger than %d bytes", maxBody)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server's read_body timeout: a client too slow to send its body.
			return nil, promapi.Refuse(promapi.SlowBody,
				"the request body did not arrive within the server's read_body timeout (Caddyfile global option servers { timeouts { read_body } })")
		}
		return nil, promapi.Refuse(promapi.BadRequest, "cannot read the request body: %v", err)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, promapi.Refuse(promapi.BadRequest, "cannot parse the request body: %v", err)
	}
	return form, nil
}

// readAll is io.ReadAll with a first buffer of the announced length (up to
// maxBody), so that a body of known length is read without regrowing it.
func readAll(body io.Reader, length, maxBody int64) ([]byte, error) {
	if length <= 0 || length > maxBody {
		return io.ReadAll(body)
	}
	// One byte more than announced, so that a body that is longer fills
	// the buffer instead of being cut short, and goes on to ReadAll's path.
	buf := make([]byte, 0, length+1)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			rest, err := io.ReadAll(body)
			return append(buf, rest...), err
		}
	}
}

// forwardedHeaders are the client headers kept on the upstream request; every
// other one is dropped, credentials and tenant headers (X-Tenant-Namespace,
// X-Scope-OrgID, ...) included. Accept-Encoding is kept so the upstream's
// compressed answer streams through untouched.
var forwardedHeaders = []string{"Accept", "Accept-Encoding", "User-Agent", "Traceparent", "Tracestate"}

// rebuild replaces the request's path, parameters, body and headers by the
// canonical upstream request: GET with the form in the URL, or POST with it in
// the body.
func rebuild(r *http.Request, path string, form url.Values) {
	h := make(http.Header, len(forwardedHeaders)+1)
	for _, k := range forwardedHeaders {
		if vs := r.Header.Values(k); len(vs) > 0 {
			h[k] = slices.Clone(vs)
		}
	}
	u := *r.URL
	u.Path, u.RawPath, u.RawQuery, u.Fragment, u.RawFragment = path, "", "", "", ""
	encoded := form.Encode()
	if r.Method == http.MethodPost {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Body = io.NopCloser(strings.NewReader(encoded))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(encoded)), nil }
		r.ContentLength = int64(len(encoded))
	} else {
		u.RawQuery = encoded
		r.Body, r.GetBody, r.ContentLength = http.NoBody, nil, 0
	}
	r.URL = &u
	r.RequestURI = u.RequestURI()
	r.Header = h
	r.TransferEncoding = nil
	r.Trailer = nil
}
