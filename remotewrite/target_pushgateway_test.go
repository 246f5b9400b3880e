package remotewrite

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
)

// decodeGroupPath splits a Pushgateway group path, /metrics/job@base64/<v>
// {/<name>@base64/<v>}, into its labels, decoding values as the Pushgateway
// does (base64url, padding optional, "=" for the empty value).
func decodeGroupPath(t *testing.T, path string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(path, "/metrics/")
	if !ok {
		t.Fatalf("group path %q does not start with /metrics/", path)
	}
	segs := strings.Split(rest, "/")
	if len(segs)%2 != 0 {
		t.Fatalf("group path %q has an odd number of segments", path)
	}
	var out []string
	for i := 0; i < len(segs); i += 2 {
		name, ok := strings.CutSuffix(segs[i], "@base64")
		if !ok {
			t.Fatalf("segment %q of %q is not base64-encoded", segs[i], path)
		}
		v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(segs[i+1], "="))
		if err != nil {
			t.Fatalf("value %q of %q: %v", segs[i+1], path, err)
		}
		out = append(out, name+"="+string(v))
	}
	return out
}

func TestGroupURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		job  string
		key  map[string]string
		want string   // exact URL, if set
		dec  []string // decoded labels, in path order
	}{
		{
			name: "job only",
			base: "http://pg:9091",
			job:  "copy",
			want: "http://pg:9091/metrics/job@base64/Y29weQ==",
			dec:  []string{"job=copy"},
		},
		{
			name: "trailing slash on base",
			base: "http://pg:9091/",
			job:  "copy",
			want: "http://pg:9091/metrics/job@base64/Y29weQ==",
		},
		{
			name: "base with a path",
			base: "https://gw.example.com/pushgateway",
			job:  "j",
			want: "https://gw.example.com/pushgateway/metrics/job@base64/ag==",
		},
		{
			name: "grouping keys sorted",
			base: "http://pg:9091",
			job:  "j",
			key:  map[string]string{"zone": "z1", "app": "a1", "instance": "i1"},
			dec:  []string{"job=j", "app=a1", "instance=i1", "zone=z1"},
		},
		{
			name: "empty value",
			base: "http://pg:9091",
			job:  "j",
			key:  map[string]string{"instance": ""},
			want: "http://pg:9091/metrics/job@base64/ag==/instance@base64/=",
			dec:  []string{"job=j", "instance="},
		},
		{
			name: "slashes and dots stay inside their segment",
			base: "http://pg:9091",
			job:  "../../api/v1/admin",
			key:  map[string]string{"path": "/a/b/../c", "q": "x?y#z%2F"},
			dec:  []string{"job=../../api/v1/admin", "path=/a/b/../c", "q=x?y#z%2F"},
		},
		{
			name: "url-safe alphabet",
			base: "http://pg:9091",
			job:  "\xfb\xff\xbf", // standard base64 "+/+/"
			want: "http://pg:9091/metrics/job@base64/-_-_",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := groupURL(tc.base, tc.job, tc.key)
			if tc.want != "" && got != tc.want {
				t.Errorf("groupURL = %q, want %q", got, tc.want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("groupURL %q does not parse: %v", got, err)
			}
			if u.RawQuery != "" || u.Fragment != "" {
				t.Errorf("groupURL %q has a query or fragment", got)
			}
			base, _ := url.Parse(tc.base)
			path, _ := strings.CutPrefix(u.Path, strings.TrimSuffix(base.Path, "/"))
			if tc.dec != nil {
				dec := decodeGroupPath(t, path)
				if strings.Join(dec, "\n") != strings.Join(tc.dec, "\n") {
					t.Errorf("group labels %q, want %q", dec, tc.dec)
				}
			}
			// 2 segments for the job, 2 per key: no value adds any.
			if n := strings.Count(path, "/"); n != 2+2*len(tc.key)+1 {
				t.Errorf("path %q has %d slashes, want %d", path, n, 3+2*len(tc.key))
			}
		})
	}
}

// decodeFamilies reads a delimited-protobuf exposition back.
func decodeFamilies(t *testing.T, body []byte) []*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding families: %v", err)
		}
		out = append(out, mf)
	}
}

// familyLines renders families as "name{labels} value type".
func familyLines(t *testing.T, mfs []*dto.MetricFamily) []string {
	t.Helper()
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			b := labels.NewScratchBuilder(len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				b.Add(lp.GetName(), lp.GetValue())
			}
			if m.Untyped == nil || m.TimestampMs != nil {
				t.Errorf("%s: metric %v is not an untyped value without timestamp", mf.GetName(), m)
			}
			out = append(out, mf.GetName()+b.Labels().String()+" "+floatText(m.GetUntyped().GetValue())+" "+mf.GetType().String())
		}
	}
	return out
}

func TestEncodeFamilies(t *testing.T) {
	series := []labels.Labels{
		labels.FromStrings("__name__", "z_total", "pod", "1"),
		labels.FromStrings("__name__", "a", "pod", "1", "zone", "x"),
		labels.FromStrings("__name__", "z_total", "pod", "2"),
		labels.FromStrings("__name__", "a", "pod", "2"),
		labels.FromStrings("__name__", "solo"),
	}
	values := []float64{1, 2.5, 3, math.Inf(-1), 0}
	body, err := encodeFamilies(series, values)
	if err != nil {
		t.Fatal(err)
	}
	mfs := decodeFamilies(t, body)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	// One family per metric name, in name order.
	if got := strings.Join(names, ","); got != "a,solo,z_total" {
		t.Errorf("families %s, want a,solo,z_total", got)
	}
	want := []string{
		`a{pod="1", zone="x"} 2.5 UNTYPED`,
		`a{pod="2"} -Inf UNTYPED`,
		`solo{} 0 UNTYPED`,
		`z_total{pod="1"} 1 UNTYPED`,
		`z_total{pod="2"} 3 UNTYPED`,
	}
	if got := familyLines(t, mfs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("decoded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The metric name is the family's, never a label.
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "__name__" {
					t.Errorf("%s carries a __name__ label", mf.GetName())
				}
			}
		}
	}
}

func TestEncodeFamiliesEmpty(t *testing.T) {
	body, err := encodeFamilies(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != 0 {
		t.Errorf("no series encoded as %q", body)
	}
}

func TestPushgatewayPush(t *testing.T) {
	type got struct {
		method, path, contentType, userAgent string
		body                                 []byte
	}
	var mu sync.Mutex
	var reqs []got
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
		st := status
		mu.Unlock()
		if st/100 != 2 {
			http.Error(w, "pushed metrics are invalid or inconsistent with existing metrics", st)
			return
		}
		w.WriteHeader(st)
	}))
	defer srv.Close()

	tg := &pushgatewayTarget{
		url:    groupURL(srv.URL, "copy", map[string]string{"namespace": "t"}),
		client: testTargetClient(t),
	}
	series := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "copy", "namespace", "t", "pod", "p"),
	}
	if err := tg.push(context.Background(), series, []float64{1}); err != nil {
		t.Fatalf("push: %v", err)
	}
	mu.Lock()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	mu.Unlock()
	if r.method != http.MethodPut {
		t.Errorf("method %s, want PUT (replace the group)", r.method)
	}
	if want := "/metrics/job@base64/Y29weQ==/namespace@base64/dA=="; r.path != want {
		t.Errorf("path %s, want %s", r.path, want)
	}
	if want := `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`; r.contentType != want {
		t.Errorf("content type %q, want %q", r.contentType, want)
	}
	if r.userAgent != "prom-tenant-test/1.0" {
		t.Errorf("User-Agent %q", r.userAgent)
	}
	if lines := familyLines(t, decodeFamilies(t, r.body)); len(lines) != 1 || lines[0] != `up{job="copy", namespace="t", pod="p"} 1 UNTYPED` {
		t.Errorf("pushed %q", lines)
	}

	for _, tc := range []struct {
		status int
		reason string
		drop   bool
	}{
		{400, "http_400", true},
		{404, "http_404", false},
		{500, "http_500", false},
	} {
		mu.Lock()
		status = tc.status
		mu.Unlock()
		err := tg.push(context.Background(), series, []float64{1})
		var te *targetError
		if !errors.As(err, &te) {
			t.Fatalf("push answered %d: %v, want a targetError", tc.status, err)
		}
		if te.reason != tc.reason || te.drop != tc.drop {
			t.Errorf("push answered %d: reason %q drop %v, want %q %v", tc.status, te.reason, te.drop, tc.reason, tc.drop)
		}
		if !strings.Contains(err.Error(), "inconsistent with existing metrics") {
			t.Errorf("error %q lacks the Pushgateway's message", err)
		}
	}
}

func TestPushgatewayPushNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	tg := &pushgatewayTarget{url: groupURL(u, "j", nil), client: testTargetClient(t)}
	err := tg.push(context.Background(), nil, nil)
	var te *targetError
	if !errors.As(err, &te) || te.reason != "network" || te.drop {
		t.Errorf("push to nothing = %v, want a network targetError", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tg.push(ctx, nil, nil); !errors.Is(err, context.Canceled) || errors.As(err, &te) {
		t.Errorf("cancelled push = %v, want context.Canceled, not a targetError", err)
	}
}
