// Package doccheck lets each package's tests check that the documentation
// shows the messages its code produces: a test drives the code, then asks
// whether docs/TROUBLESHOOTING.md shows the answer. The documentation so
// follows the behaviour, wherever in the tree the code lives; no test reads
// another package's source text.
package doccheck

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TroubleshootingFile is the documentation of every refusal and error
// message, relative to the module root.
const TroubleshootingFile = "docs/TROUBLESHOOTING.md"

// Troubleshooting returns docs/TROUBLESHOOTING.md. It is found from this
// file's place in the module, so any package's test can read it.
func Troubleshooting(t testing.TB) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("doccheck: cannot locate the module root")
	}
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", filepath.FromSlash(TroubleshootingFile)))
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// Generalize turns the variable parts of msg into the <placeholders> the
// documentation shows instead: reWith holds pairs of a regular expression
// and its replacement (which may use $1), applied in order, as in
// strings.NewReplacer.
func Generalize(msg string, reWith ...string) string {
	if len(reWith)%2 != 0 {
		panic("doccheck.Generalize: odd number of arguments")
	}
	for i := 0; i < len(reWith); i += 2 {
		msg = regexp.MustCompile(reWith[i]).ReplaceAllString(msg, reWith[i+1])
	}
	return msg
}

// Shows fails t unless doc shows text.
func Shows(t testing.TB, doc, text string) {
	t.Helper()
	if !strings.Contains(doc, text) {
		t.Errorf("%s does not show:\n%s", TroubleshootingFile, text)
	}
}

// Answer is a refusal as the documentation shows it, as curl -i prints it:
// the status line, then the JSON envelope (not escaped as HTML), with msg's
// variable parts already generalized.
func Answer(t testing.TB, status int, errorType, msg string) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", errorType, msg}); err != nil {
		t.Fatal(err)
	}
	return StatusLine(status) + "\n" + strings.TrimSpace(b.String())
}

// StatusLine is the status line curl -i prints; Go writes "status code
// <n>" for a code it has no text for (499).
func StatusLine(code int) string {
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + text
}
