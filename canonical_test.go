package promtenant

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCanonicalUpstreamRequest: requests that Prometheus reads as equal
// reach the upstream byte-identical, whatever form the client wrote times
// and durations in, by GET or POST.
func TestCanonicalUpstreamRequest(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		name  string
		path  string
		forms []url.Values
		want  string
	}{
		{"instant time", "/api/v1/query", []url.Values{
			{"query": {"up"}, "time": {"1700000000"}},
			{"query": {"up"}, "time": {"1700000000.000"}},
			{"query": {"up"}, "time": {"2023-11-14T22:13:20Z"}},
			{"query": {"up"}, "time": {"2023-11-14T23:13:20+01:00"}},
			{"query": {"up"}, "time": {"2023-11-14T22:13:20.000000Z"}},
			{"query": {"up"}, "time": {"1.7e9"}},
			{"query": {"up"}, "time": {"1700000000.0001"}}, // Prometheus rounds to the millisecond
		}, "query=up%7Bnamespace%3D%22team-a%22%7D&time=1700000000"},
		{"milliseconds", "/api/v1/query", []url.Values{
			{"query": {"up"}, "time": {"1700000000.123"}},
			{"query": {"up"}, "time": {"2023-11-14T22:13:20.123Z"}},
			{"query": {"up"}, "time": {"1700000000.1230"}},
		}, "query=up%7Bnamespace%3D%22team-a%22%7D&time=1700000000.123"},
		{"range step", "/api/v1/query_range", []url.Values{
			{"query": {"up"}, "start": {"1700000000"}, "end": {"1700003600"}, "step": {"30"}},
			{"query": {"up"}, "start": {"1700000000"}, "end": {"1700003600"}, "step": {"30s"}},
			{"query": {"up"}, "start": {"1700000000"}, "end": {"1700003600"}, "step": {"30.0"}},
			{"query": {"up"}, "start": {"2023-11-14T22:13:20Z"}, "end": {"2023-11-14T23:13:20Z"}, "step": {"30000ms"}},
		}, "end=1700003600&query=up%7Bnamespace%3D%22team-a%22%7D&start=1700000000&step=30"},
		{"durations", "/api/v1/query", []url.Values{
			{"query": {"up"}, "time": {"1"}, "timeout": {"1m30s"}, "lookback_delta": {"5m"}},
			{"query": {"up"}, "time": {"1"}, "timeout": {"90"}, "lookback_delta": {"300.000"}},
		}, "lookback_delta=300&query=up%7Bnamespace%3D%22team-a%22%7D&time=1&timeout=90"},
		{"sub-second step", "/api/v1/query_range", []url.Values{
			{"query": {"up"}, "start": {"0"}, "end": {"1"}, "step": {"0.5"}},
			{"query": {"up"}, "start": {"0.000"}, "end": {"1970-01-01T00:00:01Z"}, "step": {"500ms"}},
		}, "end=1&query=up%7Bnamespace%3D%22team-a%22%7D&start=0&step=0.5"},
		// Prometheus refuses this range (end before start, by 0.8 µs):
		// rounded to the millisecond, both would be 1700000000 and answered.
		{"sub-millisecond times as written", "/api/v1/query_range", []url.Values{
			{"query": {"up"}, "start": {"2023-11-14T22:13:20.0009Z"}, "end": {"2023-11-14T22:13:20.0001Z"}, "step": {"1"}},
		}, "end=2023-11-14T22%3A13%3A20.0001Z&query=up%7Bnamespace%3D%22team-a%22%7D&start=2023-11-14T22%3A13%3A20.0009Z&step=1"},
		// VictoriaMetrics reads a leading '-' as relative to now, and a
		// number from 2^32 on as milliseconds: such times keep their text.
		{"before 1970 as written", "/api/v1/query", []url.Values{
			{"query": {"up"}, "time": {"1969-12-31T23:59:59.5Z"}},
		}, "query=up%7Bnamespace%3D%22team-a%22%7D&time=1969-12-31T23%3A59%3A59.5Z"},
		{"2106 and later as written", "/api/v1/query_range", []url.Values{
			{"query": {"up"}, "start": {"1700000000.000"}, "end": {"9999-12-31T23:59:59Z"}, "step": {"60"}},
		}, "end=9999-12-31T23%3A59%3A59Z&query=up%7Bnamespace%3D%22team-a%22%7D&start=1700000000&step=60"},
		// client_golang's open range: Prometheus matches the sentinel's text.
		{"open range", "/api/v1/series", []url.Values{
			{"match[]": {"up"}, "start": {minTimeFormatted}, "end": {maxTimeFormatted}},
		}, "end=" + url.QueryEscape(maxTimeFormatted) + "&match%5B%5D=%7B__name__%3D%22up%22%2Cnamespace%3D%22team-a%22%7D&start=" + url.QueryEscape(minTimeFormatted)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range tc.forms {
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					r := get(tc.path+"?"+f.Encode(), "team-a")
					if method == http.MethodPost {
						r = post(tc.path, "team-a", f.Encode())
					}
					u := &upstream{}
					if w := serve(t, h, u, r); w.Code != http.StatusOK {
						t.Fatalf("%s %v: %d %s", method, f, w.Code, w.Body)
					}
					got := u.got.URL.RawQuery
					if method == http.MethodPost {
						got = u.body
					}
					if got != tc.want {
						t.Errorf("%s %v upstream:\n got %s\nwant %s", method, f, got, tc.want)
					}
				}
			}
		})
	}
}

// TestCanonicalRefusals: values Prometheus refuses are refused before the
// upstream, with Prometheus's words and the parameter's name.
func TestCanonicalRefusals(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct{ target, want string }{
		{"/api/v1/query?query=up&time=yesterday", `invalid parameter "time": invalid time value for 'time': cannot parse "yesterday" to a valid timestamp`},
		{"/api/v1/query?query=up&time=2023-11-14", `invalid parameter "time": invalid time value for 'time': cannot parse "2023-11-14" to a valid timestamp`},
		{"/api/v1/query_range?query=up&start=now-1h&end=1&step=1", `invalid parameter "start": cannot parse "now-1h" to a valid timestamp`},
		{"/api/v1/query_range?query=up&start=0&end=1700000000x&step=1", `invalid parameter "end": cannot parse "1700000000x" to a valid timestamp`},
		{"/api/v1/query_range?query=up&start=0&end=1&step=30sec", `invalid parameter "step": cannot parse "30sec" to a valid duration`},
		{"/api/v1/query_range?query=up&start=0&end=1&step=0", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{"/api/v1/query_range?query=up&start=0&end=1&step=-15", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{"/api/v1/query_range?query=up&start=0&end=1&step=1e300", `invalid parameter "step": cannot parse "1e300" to a valid duration. It overflows int64`},
		{"/api/v1/query?query=up&timeout=0s", `invalid parameter "timeout": timeout must be positive, got 0s`},
		{"/api/v1/query?query=up&lookback_delta=5x", `error parsing lookback delta duration: cannot parse "5x" to a valid duration`},
		// Prometheus converts these with int64(float), which differs between
		// CPUs; past ±2^63/1000 s the milliseconds overflow.
		{"/api/v1/query?query=up&time=Inf", `invalid parameter "time": invalid time value for 'time': cannot parse "Inf" to a valid timestamp. It overflows int64`},
		{"/api/v1/query?query=up&time=-Inf", `invalid parameter "time": invalid time value for 'time': cannot parse "-Inf" to a valid timestamp. It overflows int64`},
		{"/api/v1/query?query=up&time=NaN", `invalid parameter "time": invalid time value for 'time': cannot parse "NaN" to a valid timestamp. It overflows int64`},
		{"/api/v1/query_range?query=up&start=0&end=1e19&step=1", `invalid parameter "end": cannot parse "1e19" to a valid timestamp. It overflows int64`},
		{"/api/v1/query_range?query=up&start=-1e300&end=1&step=1", `invalid parameter "start": cannot parse "-1e300" to a valid timestamp. It overflows int64`},
		{"/api/v1/series?match[]=up&start=9.3e15", `invalid parameter "start": invalid time value for 'start': cannot parse "9.3e15" to a valid timestamp. It overflows int64`},
		{"/api/v1/series?match[]=up&start=tomorrow", `invalid parameter "start": invalid time value for 'start': cannot parse "tomorrow" to a valid timestamp`},
		{"/api/v1/labels?end=never", `invalid parameter "end": invalid time value for 'end': cannot parse "never" to a valid timestamp`},
	} {
		u := &upstream{}
		w := serve(t, h, u, get(tc.target, "team-a"))
		var env struct{ Status, ErrorType, Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || w.Code != http.StatusBadRequest ||
			env.ErrorType != "bad_data" || env.Error != tc.want {
			t.Errorf("%s: %d %s\nwant 400 bad_data %q", tc.target, w.Code, w.Body, tc.want)
		}
		if u.got != nil {
			t.Errorf("%s: forwarded", tc.target)
		}
	}
}

// TestCanonicalReadsAsPrometheus: the canonical text of a time or duration
// reads back, with Prometheus's own parsing, as exactly what the client's
// text reads as; where no shorter text does, the client's text is kept.
func TestCanonicalReadsAsPrometheus(t *testing.T) {
	for _, s := range []string{
		"0", "1", "1700000000", "1700000000.5", "1700000000.0005", "1700000000.0004999", "-1", "-1.5", "-0.001",
		"1e3", "0x1p4", "1e12", "4102444800.999", "253402300799.999", "9007199254740.993", "1e15", "9.2e15", "-9.2e15",
		"4294967295.999", "4294967296", "2023-11-14T22:13:20.999999999Z", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z",
		minTimeFormatted, maxTimeFormatted,
	} {
		want, c := readAndRewriteTime(t, s)
		if c == s {
			continue // kept as written
		}
		got, err := parseTime(c)
		if err != nil || !sameMillisecond(got, want) {
			t.Errorf("time %s → %s reads %v (%v), want %v", s, c, got, err, want)
		}
	}
	for _, s := range []string{
		"1", "15", "30s", "1m", "1h30m", "0.001", "0.0001", "1ms", "0.0000015", "0.3", "2.675", "1d", "1w", "1y",
		"9223372036", "9e9", "-300", "-0.5",
	} {
		want, err := parseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		c, d, err := canonicalDuration(s)
		if err != nil || d != want {
			t.Fatalf("%s: %v, %v", s, d, err)
		}
		if got, err := parseDuration(c); err != nil || got != want {
			t.Errorf("duration %s → %s reads %v (%v), want %v", s, c, got, err, want)
		}
	}
	// A sub-millisecond part, a time before 1970 or from 2^32 s on reaches
	// the upstream as written (see canonicalTime).
	for _, s := range []string{"1969-12-31T23:59:59.9995Z", "2263-01-01T00:00:00.0001Z", "2023-11-14T22:13:20.123999999Z",
		"-0.5", "-1", "1969-12-31T23:59:59Z", "4294967296.5", "9999-12-31T23:59:59Z", "1e15", minTimeFormatted, maxTimeFormatted} {
		if c, err := canonicalTime(s); err != nil || c != s {
			t.Errorf("time %s → %s (%v), want it kept as written", s, c, err)
		}
	}
	if s, _, _ := canonicalDuration("0.0001"); s != "0.0001" {
		t.Errorf("a duration finer than a millisecond is kept as written, got %s", s)
	}
	if s, _ := canonicalTime(strings.Repeat("1", 13)); s != strings.Repeat("1", 13) {
		t.Errorf("13-digit seconds: %s", s)
	}
}

// sameMillisecond reports whether Prometheus uses a and b alike: the
// engine evaluates at UnixNano truncated to the millisecond, series are
// selected from UnixMilli. Outside UnixNano's range both would be
// overflowed values, equal or not by accident: never the same.
func sameMillisecond(a, b time.Time) bool {
	first, last := time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)
	for _, t := range []time.Time{a, b} {
		if t.Before(first) || t.After(last) {
			return false
		}
	}
	return a.UnixMilli() == b.UnixMilli() && a.UnixNano()/1e6 == b.UnixNano()/1e6
}

// FuzzCanonicalTime: whatever the text, the canonical form reads as the
// original does, or the original is refused as Prometheus refuses it.
func FuzzCanonicalTime(f *testing.F) {
	for _, s := range []string{"1700000000", "1700000000.123", "2023-11-14T22:13:20Z", "-0.5", "1e15", minTimeFormatted,
		"1969-12-31T23:59:59.9995Z", "2263-01-01T00:00:00.0001Z", "2023-11-14T22:13:20.123456+01:00", "NaN", "-1e19",
		"9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "4294967295.999", "2106-02-07T06:28:16Z", "1.7e9", "17e8", "0x1p31"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, perr := parseTime(s)
		c, err := canonicalTime(s)
		if (perr != nil) != (err != nil) {
			t.Fatalf("%q: Prometheus %v, canonical %v", s, perr, err)
		}
		if err != nil || c == s {
			return
		}
		got, err := parseTime(c)
		if err != nil || !sameMillisecond(got, want) {
			t.Fatalf("%q → %q reads %v (%v), want %v", s, c, got, err, want)
		}
	})
}

// FuzzCanonicalDuration: the same for durations.
func FuzzCanonicalDuration(f *testing.F) {
	for _, s := range []string{"30", "30s", "30.0", "1m30s", "0.001", "1e300", "-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, perr := parseDuration(s)
		c, d, err := canonicalDuration(s)
		if (perr != nil) != (err != nil) || err == nil && d != want {
			t.Fatalf("%q: Prometheus %v %v, canonical %v %v", s, want, perr, d, err)
		}
		if err != nil {
			return
		}
		if got, err := parseDuration(c); err != nil || got != want {
			t.Fatalf("%q → %q reads %v (%v), want %v", s, c, got, err, want)
		}
	})
}

// BenchmarkCanonicalForm: the cost per request of the forms clients send.
func BenchmarkCanonicalForm(b *testing.B) {
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"Grafana range", url.Values{"start": {"1700000000"}, "end": {"1700003600"}, "step": {"15"}}},
		{"fractions", url.Values{"start": {"1700000000.123"}, "end": {"1700003600.456"}, "step": {"15.5"}}},
		{"RFC 3339", url.Values{"start": {"2023-11-14T22:13:20Z"}, "end": {"2023-11-14T23:13:20.5Z"}, "step": {"30s"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			f := url.Values{}
			for b.Loop() {
				for k, v := range tc.form {
					f[k] = append(f[k][:0], v[0])
				}
				if err := canonicalForm(f, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEquivalentQueryTexts: the query is forwarded as Prometheus's parser
// prints it, so texts that differ only in how they are written (Grafana
// users' whitespace and line breaks, `by` before or after, a duration in
// other units, quotes, number literals, matchers in another order) are one
// upstream query.
func TestEquivalentQueryTexts(t *testing.T) {
	h := newTestHandler(t)
	upstreamQuery := func(q string) string {
		t.Helper()
		u := &upstream{}
		if w := serve(t, h, u, get("/api/v1/query?"+url.Values{"query": {q}, "time": {"1"}}.Encode(), "team-a")); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body)
		}
		return u.form(t).Get("query")
	}
	for _, texts := range [][]string{
		{
			`sum by (code) (rate(http_requests_total{job="api"}[5m]))`,
			"sum by(code)(\n  rate(http_requests_total{job=\"api\"}[5m])\n)",
			`sum(rate(http_requests_total{job="api"}[300s])) by (code)`,
			`sum(rate(http_requests_total{job='api'}[300000ms])) by (code)`,
			"  sum  BY (code) (rate( http_requests_total { job = \"api\" } [5m] ))  ",
		},
		{`up > 1000`, `up > 1e3`, `up>1000.0`},
		{`rate(up[1h])`, `rate(up[60m])`, `rate(up[3600s])`},
		{`up{job="api",instance="a"}`, `up{instance="a",job="api"}`, `{__name__="up",instance="a",job="api"}`},
	} {
		want := upstreamQuery(texts[0])
		for _, q := range texts[1:] {
			if got := upstreamQuery(q); got != want {
				t.Errorf("%q forwarded as %q, %q as %q: want one query", texts[0], want, q, got)
			}
		}
	}
}

// readAndRewriteTime is how Prometheus reads the time s, and the text the
// proxy forwards for it; either failing fails the test.
func readAndRewriteTime(t *testing.T, s string) (time.Time, string) {
	t.Helper()
	read, err := parseTime(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	c, err := canonicalTime(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return read, c
}
