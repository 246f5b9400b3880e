package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// timeSpellings are times as clients write them: unix seconds in every float
// form, RFC 3339 with offsets and fractions, before 1970, from 2^32 s on
// (which VictoriaMetrics reads as milliseconds), the sentinels of an open
// range, and forms only VictoriaMetrics reads.
var timeSpellings = []string{
	"1700000000", "1700000000.000", "1700000000.123", "1700000000.1234", "1700000000.0005", "1.7e9", "17e8",
	"17000000001e-1", "0x1.954fc4p+30", "+1700000000", "0", "0.5", "-1", "-0.5", "-1e3", "4294967295.999",
	"4294967296", "1e12", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123Z", "2023-11-14T23:13:20+01:00",
	"2023-11-14T17:13:20.5-05:00", "2023-11-14T22:13:20.0009Z", "2023-11-14T22:13:20.123999999Z",
	"1969-12-31T23:59:59Z", "1969-12-31T23:59:59.5Z", "2106-02-07T06:28:16Z", "9999-12-31T23:59:59Z",
	"0001-01-01T00:00:00Z", "-292273086-05-16T16:47:06Z", "292277025-08-18T07:12:54.999999999Z",
	"now", "now-1h", "-1h", "2023-11-14", "2023-11-14T22", "1700000000x",
}

// refusedByProxyOnly are times Prometheus converts with int64(float), which
// differs between CPUs: the proxy refuses them.
var refusedByProxyOnly = []string{"NaN", "Inf", "-Inf", "+Inf", "1e19", "-1e300", "9.3e15"}

// durationSpellings are steps and timeouts as clients write them. Left out,
// where the proxy answers as Prometheus 3 and not as 2.42: a NaN step (2.42
// reads it as negative) and a timeout that is not positive (2.42 runs the
// query and times out; 3.x refuses it).
var durationSpellings = []string{"30", "30s", "30.0", "0.5s", "500ms", "1m30s", "90", "1e1", "0x1p4", "15.0005", "30sec", "1e300"}

// stepSpellings are refused as steps, not as timeouts.
var stepSpellings = []string{"0", "-15", "0s"}

// TestCanonicalTimesDifferential: every spelling of a time or step, sent to
// an upstream directly and through prom_tenant, gets the same answer or the
// same refusal. On Prometheus 3 and Debian's Prometheus 2.42 the two are
// equal, refusal texts included. On VictoriaMetrics 1.79 (backend victoriametrics) they are equal
// wherever VictoriaMetrics reads the spelling as Prometheus does; elsewhere the
// proxy answers as Prometheus does (it reads times as Prometheus).
func TestCanonicalTimesDifferential(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	p := startProxyTo(t, prom, tenantsDir, "")
	var requests []url.Values
	for _, s := range timeSpellings {
		requests = append(requests,
			url.Values{"query": {"time()"}, "time": {s}},
			url.Values{"query": {"time()"}, "start": {s}, "end": {s}, "step": {"60"}},
			url.Values{"query": {"time()"}, "start": {"1700000000"}, "end": {s}, "step": {"3600"}},
		)
	}
	// Review 16b's case: end 0.8 µs before start.
	requests = append(requests, url.Values{"query": {"time()"}, "start": {"2023-11-14T22:13:20.0009Z"}, "end": {"2023-11-14T22:13:20.0001Z"}, "step": {"1"}})
	for _, d := range append(durationSpellings, stepSpellings...) {
		requests = append(requests, url.Values{"query": {"time()"}, "start": {"1700000000"}, "end": {"1700000300"}, "step": {d}})
	}
	for _, d := range durationSpellings {
		requests = append(requests, url.Values{"query": {"time()"}, "time": {"1700000000"}, "timeout": {d}})
	}
	ask := func(base string, v url.Values) string {
		path := "/api/v1/query?"
		if v.Has("start") {
			path = "/api/v1/query_range?"
		}
		status, body := getAs(t, base+path+v.Encode(), "team-a")
		var env struct {
			Status, ErrorType, Error string
			Data                     json.RawMessage
		}
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			return fmt.Sprintf("%d not JSON: %s", status, body)
		}
		// Prometheus 2.42 capitalises the reason its parseTimeParam gives;
		// 3.x, whose words the proxy uses, does not.
		env.Error = strings.Replace(env.Error, "Invalid time value for", "invalid time value for", 1)
		return fmt.Sprintf("%d %s %s %q %s", status, env.Status, env.ErrorType, env.Error, env.Data)
	}

	promAnswers := map[string]string{}
	same := func(t *testing.T, upstream, proxy string, requests []url.Values) {
		for _, v := range requests {
			direct, proxied := ask(upstream, v), ask(proxy, v)
			promAnswers[v.Encode()] = direct
			if direct != proxied {
				t.Errorf("%s\ndirect:  %s\nproxied: %s", v.Encode(), direct, proxied)
			}
		}
		for _, s := range refusedByProxyOnly {
			v := url.Values{"query": {"time()"}, "time": {s}}
			if got := ask(proxy, v); got[:3] != "400" {
				t.Errorf("time=%s: %s, want refused", s, got)
			}
		}
	}
	t.Run("prometheus 3", func(t *testing.T) {
		prom3 := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Binary: testenv.Prometheus3Binary(t)})
		p3 := startProxyTo(t, prom3, tenantsDir, "")
		// What 2.42 answers otherwise, and the proxy as 3.x does.
		more := []url.Values{{"query": {"time()"}, "start": {"1700000000"}, "end": {"1700000300"}, "step": {"NaN"}}}
		for _, d := range append(stepSpellings, "NaN") {
			more = append(more, url.Values{"query": {"time()"}, "time": {"1700000000"}, "timeout": {d}})
		}
		same(t, prom3.URL, p3.url, append(requests, more...))
	})
	t.Run("prometheus 2.42", func(t *testing.T) {
		same(t, prom.URL, p.url, requests)
	})

	t.Run("victoriametrics", func(t *testing.T) {
		vm := testenv.StartVictoriaMetrics(t, testenv.VictoriaMetricsOptions{})
		vp := startProxyOptions(t, vm.Addr, "directory "+tenantsDir, "backend victoriametrics", "")
		agree, differ := 0, 0
		for _, v := range requests {
			direct, proxied := ask(vm.URL, v), ask(vp.url, v)
			if direct == proxied {
				agree++
				continue
			}
			differ++
			// VictoriaMetrics reads this spelling otherwise: the proxy must
			// answer as Prometheus does (success with the same data, or a
			// refusal).
			want, ok := promAnswers[v.Encode()]
			if !ok {
				t.Fatalf("%s: no Prometheus answer to compare", v.Encode())
			}
			if (want[:3] == "200") != (proxied[:3] == "200") || want[:3] == "200" && want != proxied {
				t.Errorf("%s\nVictoriaMetrics direct: %s\nthrough the proxy:     %s\nPrometheus direct:     %s", v.Encode(), direct, proxied, want)
			}
		}
		t.Logf("VictoriaMetrics: %d requests answered alike directly and through the proxy, %d read otherwise by VictoriaMetrics", agree, differ)
	})
}
