package promtenant

import "testing"

// TestRedactAddresses: addresses in an intermediate proxy's error text are
// redacted; text that only looks like one (times, line:column, versions
// with fewer parts) stays.
func TestRedactAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 10.0.0.9:9090: connect: connection refused":                        "dial tcp <address>: connect: connection refused",
		"dial tcp: lookup prometheus on 10.96.0.10:53: no such host":                 "dial tcp: lookup prometheus on <address>: no such host",
		`Get "http://prometheus-0.prometheus.monitoring.svc:9090/api/v1/query": EOF`: `Get "http://<address>/api/v1/query": EOF`,
		"upstream prom-k8s-0:9090 down":                                              "upstream <address> down",
		"dial tcp [fd00::a:9]:9090: i/o timeout":                                     "dial tcp <address>: i/o timeout",
		"no route to fe80::1ff:fe23:4567:890a":                                       "no route to <address>",
		"connect to 192.168.1.20 failed, and to localhost:9090":                      "connect to <address> failed, and to <address>",
		"parse error at 1:5: unexpected at 12:30:45, code:404, version 1.2.3":        "parse error at 1:5: unexpected at 12:30:45, code:404, version 1.2.3",
		`cannot parse "2026-12-04T23:06:33Z" to a valid timestamp`:                   `cannot parse "2026-12-04T23:06:33Z" to a valid timestamp`,
	} {
		if got := redactAddresses(in); got != want {
			t.Errorf("redactAddresses(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
