package exampledata

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type point struct {
	t int64 // milliseconds, as Prometheus stores them
	v float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+) ([0-9]+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parse reads the OpenMetrics text strictly enough for what promtool's backfill relies
// on: contiguous families, samples inside their family, a timestamp on every sample,
// ascending timestamps per series, and a final # EOF. (The real promtool reads it in the
// end-to-end test of internal/testenv; Prometheus's textparse is not used here because it
// would pull gogo/protobuf into go.mod.)
func parse(t *testing.T, b []byte) (series map[string][]point, types map[string]string) {
	t.Helper()
	series = map[string][]point{}
	types = map[string]string{}
	family, eof := "", false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if eof {
			t.Fatalf("line after # EOF: %q", line)
		}
		switch f := strings.Fields(line); {
		case line == "# EOF":
			eof = true
		case len(f) >= 3 && f[0] == "#" && f[1] == "HELP":
			if _, seen := types[f[2]]; seen || f[2] == family {
				t.Errorf("family %s is not contiguous", f[2])
			}
			family = f[2]
		case len(f) == 4 && f[0] == "#" && f[1] == "TYPE":
			if f[2] != family {
				t.Errorf("TYPE %s after HELP %s", f[2], family)
			}
			types[f[2]] = f[3]
		default:
			m := sampleLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("bad line %q", line)
			}
			if !strings.HasPrefix(m[1], family) {
				t.Errorf("sample %s outside its family (current family %s)", m[1], family)
			}
			ls := []string{`__name__="` + m[1] + `"`}
			for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
				ls = append(ls, p[1]+`="`+p[2]+`"`)
			}
			slices.Sort(ls)
			k := "{" + strings.Join(ls, ", ") + "}"
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("bad value in %q", line)
			}
			ts, _ := strconv.ParseInt(m[4], 10, 64)
			ts *= 1000
			if pts := series[k]; len(pts) > 0 && pts[len(pts)-1].t >= ts {
				t.Fatalf("%s: timestamps not ascending", k)
			}
			series[k] = append(series[k], point{ts, v})
		}
	}
	if !eof {
		t.Fatal("missing # EOF")
	}
	return series, types
}

func TestWrite(t *testing.T) {
	start, end := Window(time.Date(2025, 3, 1, 12, 34, 56, 789, time.UTC))
	if want := time.Date(2025, 3, 1, 12, 34, 0, 0, time.UTC); !end.Equal(want) || !start.Equal(want.Add(-time.Hour)) {
		t.Fatalf("Window = %v, %v", start, end)
	}
	var buf bytes.Buffer
	if err := Write(&buf, start, end); err != nil {
		t.Fatal(err)
	}
	series, types := parse(t, buf.Bytes())

	if types["http_requests"] != "counter" || types["http_request_duration_seconds"] != "histogram" || types["up"] != "gauge" {
		t.Errorf("types = %v", types)
	}
	const points = 241 // one hour at 15s, both ends included
	for k, pts := range series {
		if len(pts) != points {
			t.Errorf("%s: %d points, want %d", k, len(pts), points)
		}
		if pts[0].t != start.UnixMilli() || pts[len(pts)-1].t != end.UnixMilli() {
			t.Errorf("%s: spans %d..%d", k, pts[0].t, pts[len(pts)-1].t)
		}
	}
	// 4 namespaces × 2 jobs × 2 pods × 2 codes; 8 histograms × 6 series; 16 targets
	// for up and memory; 1 secret; 2 node CPU modes; 16 pods.
	if want := 32 + 48 + 16 + 16 + 1 + 2 + 16; len(series) != want {
		t.Errorf("%d series, want %d", len(series), want)
	}

	check := func(selector string, want float64) {
		t.Helper()
		pts, ok := series[selector]
		if !ok {
			t.Errorf("no series %s", selector)
			return
		}
		if got := pts[len(pts)-1].v; got != want {
			t.Errorf("%s = %v, want %v", selector, got, want)
		}
	}
	check(`{__name__="db_password_len", job="db", namespace="team-b"}`, 42)
	check(`{__name__="up", instance="web-1.team-a:8080", job="web", namespace="team-a"}`, 0)
	check(`{__name__="up", instance="web-0.team-a:8080", job="web", namespace="team-a"}`, 1)
	check(`{__name__="kube_pod_info", namespace="team-c", pod="api-1"}`, 1)

	for k, pts := range series {
		if !strings.Contains(k, "_total") && !strings.Contains(k, "_bucket") {
			continue
		}
		for i := 1; i < len(pts); i++ {
			if pts[i].v <= pts[i-1].v {
				t.Fatalf("counter %s does not increase at %d", k, pts[i].t)
			}
		}
	}
	if _, ok := series[`{__name__="node_cpu_seconds_total", cpu="0", instance="node-1", mode="idle"}`]; !ok {
		t.Error("node_cpu_seconds_total without namespace is missing")
	}

	var again bytes.Buffer
	if err := Write(&again, start, end); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("output is not deterministic")
	}
}

func TestWriteSelected(t *testing.T) {
	start, end := Window(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	var all, some bytes.Buffer
	if err := Write(&all, start, end); err != nil {
		t.Fatal(err)
	}
	n, err := WriteSelected(&some, start, end, func(s map[string]string) bool {
		return s["namespace"] == "team-a" && s["__name__"] == "up"
	})
	if err != nil || n != 4 {
		t.Fatalf("WriteSelected = %d, %v; want 4 series", n, err)
	}
	series, types := parse(t, some.Bytes())
	if len(series) != 4 || len(types) != 1 {
		t.Errorf("got %d series in %d families", len(series), len(types))
	}
	// The subset holds exactly the same samples as the full output.
	full, _ := parse(t, all.Bytes())
	for k, pts := range series {
		if len(full[k]) != len(pts) || full[k][7] != pts[7] {
			t.Errorf("%s differs from the full output", k)
		}
	}

	n, err = WriteSelected(&some, start, end, func(map[string]string) bool { return false })
	if err != nil || n != 0 {
		t.Errorf("WriteSelected(none) = %d, %v", n, err)
	}
}

func TestWriteRejectsReversedWindow(t *testing.T) {
	now := time.Now()
	if err := Write(io.Discard, now, now.Add(-time.Minute)); err == nil {
		t.Error("want an error for end before start")
	}
}
