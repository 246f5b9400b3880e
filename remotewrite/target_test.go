package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClassify(t *testing.T) {
	base := errors.New("write failed")
	for _, tc := range []struct {
		status int
		reason string
		drop   bool
	}{
		{0, "network", false},
		{200, "protocol", false},
		{204, "protocol", false},
		{429, "http_429", false},
		{500, "http_500", false},
		{502, "http_502", false},
		{503, "http_503", false},
		{599, "http_5xx", false},
		// Misconfigured target: wait for a fix instead of dropping.
		{401, "http_401", false},
		{403, "http_403", false},
		{404, "http_404", false},
		{405, "http_405", false},
		{407, "http_407", false},
		{413, "http_413", false}, // batch_size too large for it
		{415, "http_415", false}, // a protocol version it does not take
		// The target refuses the data for good.
		{400, "http_400", true},
		{409, "http_409", true},
		{422, "http_422", true},
		{499, "http_4xx", true},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			err := classify(tc.status, base)
			var te *targetError
			if !errors.As(err, &te) {
				t.Fatalf("classify(%d) = %T %v, want *targetError", tc.status, err, err)
			}
			if te.reason != tc.reason || te.drop != tc.drop {
				t.Errorf("classify(%d) = reason %q drop %v, want %q %v", tc.status, te.reason, te.drop, tc.reason, tc.drop)
			}
			if !errors.Is(err, base) || err.Error() != base.Error() {
				t.Errorf("classify(%d) lost the cause: %v", tc.status, err)
			}
			if got := reasonOf(tc.status); got != tc.reason {
				t.Errorf("reasonOf(%d) = %q, want %q", tc.status, got, tc.reason)
			}
		})
	}
}

func TestClassifySuccess(t *testing.T) {
	for _, status := range []int{0, 200, 204, 400, 500} {
		if err := classify(status, nil); err != nil {
			t.Errorf("classify(%d, nil) = %v, want nil", status, err)
		}
	}
}

func TestClassifyCanceled(t *testing.T) {
	// Stopping is not a failure of the target: passed on as it is.
	for _, err := range []error{context.Canceled, fmt.Errorf("post: %w", context.Canceled)} {
		got := classify(0, err)
		var te *targetError
		if errors.As(got, &te) {
			t.Errorf("classify(0, %v) = targetError %+v, want the error itself", err, te)
		}
		if got != err {
			t.Errorf("classify(0, %v) = %v", err, got)
		}
	}
	// A deadline is a failed attempt (a slow target), retried.
	var te *targetError
	if err := classify(0, context.DeadlineExceeded); !errors.As(err, &te) || te.reason != "network" || te.drop {
		t.Errorf("classify(0, DeadlineExceeded) = %v", err)
	}
}

func TestStatusRecorder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	client := &http.Client{Transport: statusRecorder{next: http.DefaultTransport}}

	status := -1
	req, _ := http.NewRequestWithContext(withStatus(context.Background(), &status), http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status != http.StatusTeapot {
		t.Errorf("recorded status %d, want %d", status, http.StatusTeapot)
	}

	// A failed round trip records 0, replacing an earlier status.
	srv.Close()
	req, _ = http.NewRequestWithContext(withStatus(context.Background(), &status), http.MethodGet, srv.URL, nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request to a closed server succeeded")
	}
	if status != 0 {
		t.Errorf("recorded status %d after a network error, want 0", status)
	}

	// Without a status in the context, nothing is recorded and nothing breaks.
	srv2 := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv2.Close()
	resp, err = client.Get(srv2.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
