package remotewrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// testExtSource serves series by Prometheus's own remote-read handler with
// external labels ext, and answers /api/v1/series over the stored labels,
// as the query API does.
type testExtSource struct {
	*source
	seriesCalls atomic.Int32
	seriesFail  atomic.Bool
}

func testSourceServerExt(t *testing.T, series []storage.Series, ext map[string]string) *testExtSource {
	t.Helper()
	es := &testExtSource{}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/read", remote.NewReadHandler(nil, nil, testQueryable{series},
		func() config.Config {
			return config.Config{GlobalConfig: config.GlobalConfig{ExternalLabels: labels.FromMap(ext)}}
		}, 0, 1, 1<<20))
	mux.HandleFunc("/api/v1/status/config", func(w http.ResponseWriter, _ *http.Request) {
		yaml := "global:\n  external_labels:\n"
		for k, v := range ext {
			yaml += fmt.Sprintf("    %s: %q\n", k, v)
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": yaml}})
	})
	mux.HandleFunc("/api/v1/series", func(w http.ResponseWriter, r *http.Request) {
		es.seriesCalls.Add(1)
		if es.seriesFail.Load() {
			http.Error(w, `{"status":"error","errorType":"internal","error":"boom"}`, http.StatusInternalServerError)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		start, err1 := time.Parse(time.RFC3339Nano, r.Form.Get("start"))
		end, err2 := time.Parse(time.RFC3339Nano, r.Form.Get("end"))
		if err1 != nil || err2 != nil {
			t.Errorf("series: start %q end %q", r.Form.Get("start"), r.Form.Get("end"))
		}
		data := []map[string]string{}
		for _, sel := range r.Form["match[]"] {
			ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(sel)
			if err != nil {
				t.Errorf("series: match[] %q: %v", sel, err)
			}
			for _, s := range series {
				lset := s.Labels()
				if slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(lset.Get(m.Name)) }) {
					continue
				}
				it := s.Iterator(nil)
				for it.Next() != 0 {
					if ts := it.AtT(); ts >= start.UnixMilli() && ts <= end.UnixMilli() {
						data = append(data, lset.Map())
						break
					}
				}
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	src, err := newSource(srv.URL, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	es.source = src
	return es
}

var testExt = map[string]string{"cluster": "eu", "replica": "r0"}

// testExtData: stored series, some with a label equal to an external one.
func testExtData() []storage.Series {
	ls := func(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
	return []storage.Series{
		testSeries(ls("__name__", "m", "namespace", "a"), testFloats(10, 20, 30)),
		// Returned with replica added: after the one above, though its
		// stored labels sort before.
		testSeries(ls("__name__", "m", "namespace", "a", "path", "/x"), testFloats(10, 20)),
		testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "a", "pod", "1"), testFloats(15, 25)),
		testSeries(ls("__name__", "m", "cluster", "us", "namespace", "a", "pod", "2"), testFloats(15)),
		testSeries(ls("__name__", "m", "namespace", "a", "pod", "3", "replica", "r0"), testFloats(12)),
		testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "a", "pod", "4", "replica", "r0"), testFloats(13)),
		testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "b"), testFloats(10)),
		testSeries(ls("__name__", "m", "namespace", "b", "pod", "9"), testFloats(10)),
	}
}

// testTenantView is what a tenant with policy p sees of series over
// [from, to]: the stored series p matches, in label order, as lines of
// describeWindow.
func testTenantView(t *testing.T, series []storage.Series, p string, from, to int64) []string {
	t.Helper()
	pol := testPolicy(t, strings.Split(p, " or ")...)
	var sel []storage.Series
	for _, s := range series {
		if pol.Matches(s.Labels()) {
			sel = append(sel, s)
		}
	}
	slices.SortFunc(sel, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	var out []string
	for _, s := range sel {
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			if ts >= from && ts <= to {
				out = append(out, sampleLine(ts, s.Labels(), fmt.Sprint(v)))
			}
		}
	}
	return out
}

func TestReadMatchersExternalLabels(t *testing.T) {
	branch := testPolicy(t, `{__name__="m", cluster="eu", replica!="r0", zone="a.b|c", namespace="eu"}`).Branches()[0]
	before := branch.String()
	ms, err := readMatchers(branch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.String())
	}
	// Every = with a value becomes the same regex, external label or not
	// (a source may have gained one since its configuration was read);
	// != and __name__ keep theirs.
	want := []string{`__name__="m"`, `cluster=~"eu"`, `namespace=~"eu"`, `replica!="r0"`, `zone=~"a\\.b\\|c"`}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("matchers %q, want %q", got, want)
	}
	if branch.String() != before {
		t.Errorf("the policy's branch was modified: %s, was %s", branch, before)
	}
	// The regex means what = means: the quoted value, and nothing else.
	for _, m := range ms {
		if m.Name == "zone" && (!m.Matches("a.b|c") || m.Matches("a.b") || m.Matches("axb|c") || m.Matches("")) {
			t.Errorf("%s does not match exactly a.b|c", m)
		}
	}
	// None to rewrite: the branch itself, no copy.
	b2 := testPolicy(t, `{__name__="m", cluster!="us", zone=""}`).Branches()[0]
	if ms, _ := readMatchers(b2); &ms[0] != &b2[0] {
		t.Error("a branch without matchers to rewrite was copied")
	}
}

// TestReadExternalLabelsExactView reads through Prometheus's remote-read
// handler with external labels: every window is exactly the tenant's view
// (the stored series its policy matches, with their stored labels, in
// stored-label order), for policies on external label names too.
func TestReadExternalLabelsExactView(t *testing.T) {
	series := testExtData()
	src := testSourceServerExt(t, series, testExt)
	for _, p := range []string{
		`{namespace="a"}`,
		`{cluster="eu"}`, // a naive read selects the series without a stored cluster
		`{replica="r0"}`,
		`{cluster="eu", replica="r0"}`,
		`{cluster!="eu", namespace="a"}`,
		`{cluster=""}`,
		`{cluster=~"eu|us"}`,
		`{cluster="eu"} or {namespace="a", path="/x"} or {namespace="a"}`,
		`{namespace="b"}`,
	} {
		t.Run(p, func(t *testing.T) {
			pol := testPolicy(t, strings.Split(p, " or ")...)
			ss, err := src.read(context.Background(), pol, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			w, err := collect(ss, pol, progress{}, 0, 100, 1000, false)
			if err != nil {
				t.Fatal(err)
			}
			want := testTenantView(t, series, p, 0, 100)
			if got := describeWindow(t, w); !slices.Equal(got, want) {
				t.Errorf("window:\n got %q\nwant %q", got, want)
			}
			testCheckWindowOrder(t, w)
			if len(want) == 0 {
				t.Fatal("the tenant sees nothing: the case proves nothing")
			}
		})
	}
}

// TestReadExternalLabelsReturnedOrder documents why stripping keeps the
// order: the handler streams in stored-label order, which is not the order
// of the labels it returns.
func TestReadExternalLabelsReturnedOrder(t *testing.T) {
	src := testSourceServerExt(t, testExtData(), testExt)
	q, err := remote.ToQuery(0, 100, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "namespace", "a")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := src.client.Read(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var returned []labels.Labels
	for ss.Next() {
		returned = append(returned, ss.At().Labels())
	}
	if ss.Err() != nil {
		t.Fatal(ss.Err())
	}
	if slices.IsSortedFunc(returned, labels.Compare) {
		t.Errorf("returned labels in order %v: the case proves nothing", returned)
	}
}

// TestReadExternalLabelsWindowParts: progress positions are stored labels;
// a window cut short and its rest make the whole window.
func TestReadExternalLabelsWindowParts(t *testing.T) {
	series := testExtData()
	src := testSourceServerExt(t, series, testExt)
	pol := testPolicy(t, `{namespace="a"}`)
	want := testTenantView(t, series, `{namespace="a"}`, 0, 100)
	var got []string
	done := progress{T: -1}
	for range 20 {
		ss, err := src.read(context.Background(), pol, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		w, err := collect(ss, pol, done, 0, 100, 2, true)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, describeWindow(t, w)...)
		if !w.truncated {
			break
		}
		done = testEndOf(done, w)
	}
	if !slices.Equal(got, want) {
		t.Errorf("parts:\n got %q\nwant %q", got, want)
	}
}

func TestReadExternalLabelsAmbiguous(t *testing.T) {
	ls := func(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
	for name, c := range map[string]struct {
		series []storage.Series
		max    int
		want   string
	}{
		// Both are returned as {cluster=eu, namespace=a, replica=r0}.
		"stored twin": {series: []storage.Series{
			testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "a"), testFloats(10, 20, 30, 40)),
			testSeries(ls("__name__", "m", "namespace", "a"), testFloats(10, 20)),
		}, max: 1000, want: `the source holds several series returned as the stored series {__name__="m", cluster="eu", namespace="a"}`},
		// The same, in a window cut after the first: the rest is read first.
		"stored twin, window cut short": {series: []storage.Series{
			testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "a"), testFloats(10, 20, 30, 40)),
			testSeries(ls("__name__", "m", "namespace", "a"), testFloats(10, 20)),
		}, max: 2, want: `the source holds several series returned as the stored series {__name__="m", cluster="eu", namespace="a"}`},
		"two stored candidates": {series: []storage.Series{
			testSeries(ls("__name__", "m", "cluster", "eu", "namespace", "a"), testFloats(10)),
			testSeries(ls("__name__", "m", "namespace", "a", "replica", "r0"), testFloats(10)),
		}, max: 1000, want: `a series could be any of the stored series [{__name__="m", cluster="eu", namespace="a"}`},
	} {
		t.Run(name, func(t *testing.T) {
			src := testSourceServerExt(t, c.series, testExt)
			pol := testPolicy(t, `{namespace="a"}`)
			ss, err := src.read(context.Background(), pol, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			w, err := collect(ss, pol, progress{}, 0, 100, c.max, true)
			if !errors.Is(err, errExternalLabels) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("window %v, error %v; want %q", w, err, c.want)
			}
		})
	}
}

func TestStripperChangedExternalLabels(t *testing.T) {
	st := &stripper{ext: labels.FromStrings("cluster", "eu", "replica", "r0"), known: map[string][]labels.Labels{}}
	_, _, err := st.stored(labels.FromStrings("__name__", "m", "cluster", "eu"))
	if !errors.Is(err, errExternalLabels) || !strings.Contains(err.Error(), "lacks the external label replica") {
		t.Errorf("error %v", err)
	}
	// A stored value other than the external one is kept.
	lset, known, err := st.stored(labels.FromStrings("__name__", "m", "cluster", "us", "replica", "r0"))
	if err != nil || known || lset.String() != `{__name__="m", cluster="us"}` {
		t.Errorf("stored %s %v %v", lset, known, err)
	}
}

// TestReadExternalLabelsFailsClosed: a source whose configuration or stored
// labels cannot be read is not copied from.
func TestReadExternalLabelsFailsClosed(t *testing.T) {
	pol := testPolicy(t, `{namespace="a"}`)
	src := testSourceServerExt(t, testExtData(), testExt)
	src.seriesFail.Store(true)
	if _, err := src.read(context.Background(), pol, 0, 100); err == nil || !strings.Contains(err.Error(), "/api/v1/series") {
		t.Errorf("series API failing: error %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/api/v1/read", remote.NewReadHandler(nil, nil, testQueryable{testExtData()},
		func() config.Config { return config.Config{} }, 0, 1, 1<<20))
	srv := httptest.NewServer(mux) // no /api/v1/status/config
	t.Cleanup(srv.Close)
	s, err := newSource(srv.URL, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.read(context.Background(), pol, 0, 100); err == nil || !strings.Contains(err.Error(), "reading the source's configuration") || !strings.Contains(err.Error(), "404") {
		t.Errorf("no configuration: error %v", err)
	}
}

// TestReadExternalLabelsSeriesRequests: one /api/v1/series request per
// branch and external label the branch does not rule out.
func TestReadExternalLabelsSeriesRequests(t *testing.T) {
	src := testSourceServerExt(t, testExtData(), testExt)
	pol := testPolicy(t, `{namespace="a", cluster!="eu"}`, `{namespace="b"}`)
	ss, err := src.read(context.Background(), pol, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for ss.Next() {
	}
	if n := src.seriesCalls.Load(); n != 3 {
		t.Errorf("%d series requests, want 3", n)
	}
}

var _ chunks.Sample = testSample{}
