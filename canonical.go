package promtenant

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// Canonical times and durations: equal requests are byte-identical upstream,
// so that a cache keyed by the request (Thanos Query Frontend's results cache
// keys by the query text; an HTTP cache by the whole URL) finds them equal
// whether a client wrote 1700000000, 1700000000.000 or 2023-11-14T22:13:20Z,
// step=30 or step=30s. Each value is read as Prometheus reads it (web/api/v1
// parseTime and parseDuration) and written in one form: unix seconds and
// seconds, in the shortest decimal of their milliseconds. What Prometheus
// would refuse is refused here, in its words, and never forwarded.

// timeParams and durationParams are the parameters canonicalised; an
// endpoint that does not take one never has it in its form.
var (
	timeParams     = [...]string{"time", "start", "end"}
	durationParams = [...]string{"step", "timeout", "lookback_delta"}
)

// Prometheus's sentinels for an open range (web/api/v1 MinTime, MaxTime):
// clients such as client_golang send them as RFC 3339, which time.Parse
// cannot read (years past 9999), so Prometheus matches their text.
var (
	minTime          = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime          = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)

	unixEpoch     = time.Unix(0, 0)
	lastRewritten = time.Unix(1<<32, 0)
)

// maxSeconds bounds the unix seconds a number may give: past it the
// milliseconds Prometheus selects by overflow int64, and past 2^63 its
// int64(float) conversion differs between CPUs (amd64 wraps, arm64
// saturates), as it does for NaN and ±Inf.
const maxSeconds = math.MaxInt64 / 1000

// canonicalForm rewrites form's times and durations in place into their
// canonical text, or refuses a value Prometheus would refuse. An empty value
// is left to the upstream: Prometheus reads it as "not given" where the
// parameter is optional. rangeQuery says the form is /api/v1/query_range's:
// Prometheus words a bad time there without the "invalid time value" that
// its other endpoints (web/api/v1 parseTimeParam) put before the reason.
func canonicalForm(form url.Values, rangeQuery bool) error {
	for _, name := range timeParams {
		vs := form[name]
		if len(vs) != 1 || vs[0] == "" {
			continue
		}
		s, err := canonicalTime(vs[0])
		switch {
		case err != nil && rangeQuery:
			return promapi.Refuse(promapi.BadRequest, "invalid parameter %q: %v", name, err)
		case err != nil:
			return promapi.Refuse(promapi.BadRequest, "invalid parameter %q: invalid time value for '%s': %v", name, name, err)
		}
		vs[0] = s
	}
	for _, name := range durationParams {
		vs := form[name]
		if len(vs) != 1 || vs[0] == "" {
			continue
		}
		s, d, err := canonicalDuration(vs[0])
		switch {
		case err != nil:
		case name == "step" && d <= 0:
			err = errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
		case name == "timeout" && d <= 0:
			err = fmt.Errorf("timeout must be positive, got %s", d)
		}
		switch {
		case err != nil && name == "lookback_delta":
			return promapi.Refuse(promapi.BadRequest, "error parsing lookback delta duration: %v", err)
		case err != nil:
			return promapi.Refuse(promapi.BadRequest, "invalid parameter %q: %v", name, err)
		}
		vs[0] = s
	}
	return nil
}

// canonicalTime returns the canonical text of a time: its milliseconds (the
// precision Prometheus evaluates at) as unix seconds. Only a time of whole
// milliseconds in [0, 2^32) s is rewritten; any other keeps the client's text:
//   - a sub-millisecond part: Prometheus compares start and end exactly, so
//     rounding both could turn a refused range (end before start) into an
//     answered one;
//   - a leading '-' (before 1970, but also -0, -0.0004 or -1e-9, which
//     Prometheus reads as 0): VictoriaMetrics reads it as relative to now;
//   - 2^32 s (2106) or later: VictoriaMetrics reads such a number as
//     milliseconds. The sentinels of an open range are in neither range.
//
// No cache gains from rewriting those: clients do not send them.
func canonicalTime(s string) (string, error) {
	if plainInteger(s, 12) {
		return s, nil // already canonical: the usual case, kept cheap
	}
	t, err := parseTime(s)
	if err != nil {
		return "", err
	}
	if s[0] == '-' || t.Nanosecond()%int(time.Millisecond) != 0 || t.Before(unixEpoch) || !t.Before(lastRewritten) {
		return s, nil
	}
	ms := t.UnixMilli()
	out := formatMillis(ms)
	if back, err := parseTime(out); err != nil || back.UnixMilli() != ms {
		return s, nil
	}
	return out, nil
}

// canonicalDuration returns the canonical text of a duration (seconds) and
// its value. A duration that is not whole milliseconds, or that no shorter
// text reads back exactly, keeps the client's text.
func canonicalDuration(s string) (string, time.Duration, error) {
	if plainInteger(s, 9) {
		n, _ := strconv.ParseInt(s, 10, 64)
		return s, time.Duration(n) * time.Second, nil
	}
	d, err := parseDuration(s)
	if err != nil || d%time.Millisecond != 0 {
		return s, d, err
	}
	out := formatMillis(int64(d / time.Millisecond))
	if back, err := parseDuration(out); err != nil || back != d {
		return s, d, nil
	}
	return out, d, nil
}

// plainInteger reports whether s is a positive decimal integer of at most
// maxDigits digits without a leading zero: a number that is its own
// canonical text.
func plainInteger(s string, maxDigits int) bool {
	if len(s) == 0 || len(s) > maxDigits || s[0] < '1' || s[0] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatMillis writes milliseconds as seconds in the shortest decimal:
// 1700000000000 → "1700000000", 1500 → "1.5", -500 → "-0.5".
func formatMillis(ms int64) string {
	var b []byte
	u := uint64(ms)
	if ms < 0 {
		b = append(b, '-')
		u = -u // also right for math.MinInt64
	}
	b = strconv.AppendUint(b, u/1000, 10)
	if frac := u % 1000; frac != 0 {
		b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return string(b)
}

// parseTime is Prometheus's web/api/v1 parseTime: a float of unix seconds
// (rounded to the millisecond), RFC 3339 with any fraction, or a sentinel.
// Unlike Prometheus, it refuses a number whose milliseconds overflow int64,
// NaN and ±Inf, which Prometheus converts to a time that depends on its CPU.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		// Compared before converting: NaN fails every comparison.
		if !(t > -maxSeconds && t < maxSeconds) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp. It overflows int64", s)
		}
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration is Prometheus's web/api/v1 parseDuration: a float of
// seconds, or a Prometheus duration such as 30s or 1h30m.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		// float64(math.MaxInt64) is 2^63, which int64 cannot hold, and NaN passes every comparison.
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}
