package promtenant

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestReadAll: a body is read whole whatever length it announces, and the
// size cap holds.
func TestReadAll(t *testing.T) {
	const body = "query=up&time=1"
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"exact", int64(len(body))},
		{"unknown", -1},
		{"announced shorter", 3},
		{"announced longer", 100},
		{"announced over the cap", 1 << 30},
	} {
		got, err := readAll(strings.NewReader(body), tc.length, 1<<20)
		if err != nil || string(got) != body {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
	for _, length := range []int64{-1, 4, int64(len(body))} {
		_, err := readAll(http.MaxBytesReader(nil, noClose{strings.NewReader(body)}, 4), length, 4)
		if _, ok := errors.AsType[*http.MaxBytesError](err); !ok {
			t.Errorf("announced %d, cap 4: %v, want a MaxBytesError", length, err)
		}
	}
}

type noClose struct{ *strings.Reader }

func (noClose) Close() error { return nil }
