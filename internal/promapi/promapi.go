// Package promapi writes answers in the Prometheus HTTP API's JSON envelope,
// so that Grafana and API clients show why a request was refused.
package promapi

import (
	"encoding/json"
	"net/http"
)

// WriteError writes {"status":"error","errorType":...,"error":...} with the
// status code. It drops a Content-Encoding set earlier: the body is plain.
func WriteError(w http.ResponseWriter, status int, errorType, msg string) {
	body, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", errorType, msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
