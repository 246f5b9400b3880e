package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// guardedTenants are the union tenants: each sees only its own namespace,
// so another's name in an answer is a leak.
var guardedTenants = []string{"team-a", "team-b", "team-c"}

type guardRequestKey struct{}

// guarded serves base through a reverse proxy that adds the parameters add
// to every request's URL and checks every answer, whatever the test does
// with it: no answer body or error text may hold the proxy's own labels
// (__prom_tenant…) or, for a union tenant, another tenant's namespace,
// unless the request wrote it (an error may quote the tenant's query).
func guarded(t *testing.T, base string, add url.Values) string {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header = r.In.Header.Clone()
			q := r.Out.URL.Query()
			for k, vs := range add {
				q[k] = vs
			}
			r.Out.URL.RawQuery = q.Encode()
			asked := r.Out.URL.RawQuery
			if r.In.Body != nil {
				body, _ := io.ReadAll(r.In.Body)
				r.Out.Body = io.NopCloser(bytes.NewReader(body))
				asked += "&" + string(body)
			}
			asked, _ = url.QueryUnescape(asked)
			r.Out = r.Out.WithContext(context.WithValue(r.Out.Context(), guardRequestKey{}, asked))
		},
		ModifyResponse: func(resp *http.Response) error {
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(raw))
			text := raw
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					return err
				}
				if text, err = io.ReadAll(zr); err != nil {
					return err
				}
			}
			asked, _ := resp.Request.Context().Value(guardRequestKey{}).(string)
			tenant := resp.Request.Header.Get("X-Tenant-Namespace")
			for _, leak := range forbidden(tenant) {
				if bytes.Contains(text, []byte(leak)) && !strings.Contains(asked, leak) {
					t.Errorf("%s asked %s %s and got %q in the answer (%d): %.400s", tenant, resp.Request.URL.Path, asked, leak, resp.StatusCode, text)
				}
			}
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// forbidden is what no answer to tenant may hold.
func forbidden(tenant string) []string {
	out := []string{"__prom_tenant"}
	if !slices.Contains(guardedTenants, tenant) {
		return out
	}
	for _, other := range guardedTenants {
		if other != tenant {
			out = append(out, other)
		}
	}
	return out
}
