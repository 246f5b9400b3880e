package promtenant

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// victoriaMetricsMillis reads a time as current VictoriaMetrics does
// (lib/promutils/time.go ParseTimeAt, written again from its rules; the
// forms Prometheus refuses, which never reach it through the proxy, are left
// out): a trailing ±hh:mm offset and Z are cut off first; then text ending in
// a letter, or starting with '-', is a duration relative to now; text without
// '-' is a float of seconds, or of milliseconds from 2^32 on; anything else
// is RFC 3339. It returns milliseconds, rounded as VictoriaMetrics' float
// seconds are when it selects samples.
// errRelative is victoriaMetricsMillis's answer for a text VictoriaMetrics
// reads as relative to now.
var errRelative = errors.New("relative to now")

func victoriaMetricsMillis(s string) (int64, error) {
	orig := s
	if n := len(s); n > 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' {
		s = s[:n-6]
	}
	s = strings.TrimSuffix(s, "Z")
	if strings.HasPrefix(s, "now") || len(s) > 0 && (s[0] == '-' || s[len(s)-1] > '9') {
		return 0, errRelative
	}
	var secs float64
	if !strings.Contains(orig, "-") {
		f, err := strconv.ParseFloat(orig, 64)
		if err != nil {
			return 0, err
		}
		if f >= 1<<32 {
			f /= 1000 // milliseconds
		}
		secs = f
	} else {
		t, err := time.Parse(time.RFC3339, orig)
		if err != nil {
			return 0, err
		}
		secs = float64(t.UnixNano()) / 1e9
	}
	return int64(math.Round(secs * 1000)), nil
}

// TestCanonicalReadsAsVictoriaMetrics: with any backend, a time the proxy
// rewrites reads under VictoriaMetrics' rules as the instant Prometheus reads
// the client's text as, and as VictoriaMetrics reads the client's text where
// it reads it at all (it refuses exponents with '-', such as 17e-1, which
// Prometheus takes). A text VictoriaMetrics reads as relative to now is
// never rewritten: no absolute time means what it does.
func TestCanonicalReadsAsVictoriaMetrics(t *testing.T) {
	corpus := []string{
		"0", "1", "0.5", "1700000000", "1700000000.000", "1700000000.123", "1700000000.1230", "1.7e9", "17e8", "0x1p31",
		"17000000001e-1", "4294967295", "4294967295.999", "4294967296", "4294967296.5", "1e10", "1e12", "253402300799",
		"2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123Z", "2023-11-14T23:13:20+01:00", "2023-11-14T17:13:20.5-05:00",
		"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.001Z", "2106-02-07T06:28:15.999Z", "2106-02-07T06:28:16Z",
		"9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.5Z", "-1", "-0.5", "-1e3",
		"-0", "-0.0004", "-1e-9",
		minTimeFormatted, maxTimeFormatted,
	}
	rewritten := 0
	for _, s := range corpus {
		prom, c := readAndRewriteTime(t, s)
		if c == s {
			continue
		}
		vmS, errS := victoriaMetricsMillis(s)
		if errors.Is(errS, errRelative) {
			t.Errorf("%s → %s: VictoriaMetrics reads %s relative to now, and the rewrite as an absolute time", s, c, s)
			continue
		}
		rewritten++
		vmC, err := victoriaMetricsMillis(c)
		if err != nil || vmC != prom.UnixMilli() {
			t.Errorf("%s → %s: VictoriaMetrics reads %d (%v), Prometheus reads %s as %d", s, c, vmC, err, s, prom.UnixMilli())
		}
		if errS == nil && vmS != vmC {
			t.Errorf("%s → %s: VictoriaMetrics reads %d, and %d as written", s, c, vmC, vmS)
		}
	}
	if rewritten < len(corpus)/3 {
		t.Errorf("only %d of %d spellings rewritten: the test checks little", rewritten, len(corpus))
	}
}
