package promapi

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestEveryRefusalHasARow: a kind added without its row would answer status
// 0 with no error type and be counted under an empty reason.
func TestEveryRefusalHasARow(t *testing.T) {
	for r := Refusal(0); r < numRefusals; r++ {
		if r.Status() < 400 || r.ErrorType() == "" || r.Reason() == "" {
			t.Errorf("refusal %d: status %d, error type %q, reason %q", r, r.Status(), r.ErrorType(), r.Reason())
		}
	}
}

func TestErrorWritesItsRow(t *testing.T) {
	e := Refuse(Denied, "user %q may not read %q", "alice", "team-b")
	w := httptest.NewRecorder()
	w.Header().Set("Content-Encoding", "gzip")
	e.Write(w)
	var env struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if w.Code != 403 || env.Status != "error" || env.ErrorType != ErrorForbidden || env.Error != `user "alice" may not read "team-b"` {
		t.Errorf("got %d %+v", w.Code, env)
	}
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", w.Header())
	}
	if e.Reason() != ReasonDenied {
		t.Errorf("reason %q, want %q", e.Reason(), ReasonDenied)
	}
}
