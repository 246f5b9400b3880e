package kubeauth

import (
	"testing"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
)

// TestTroubleshooting drives each refusal of authenticate_kubernetes and
// checks that docs/TROUBLESHOOTING.md shows it: the whole answer where the
// doc shows one, else the message.
func TestTroubleshooting(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	f := newFakeAPI()
	f.users["tok-alice"] = authnv1.UserInfo{Username: "alice"}
	h := newHandler(t, f, Config{}, nil)
	twoHeaders := req("/api/v1/query", "tok-alice", "team-a")
	twoHeaders.Header.Add("Authorization", "Bearer tok-alice")
	for _, tc := range []struct {
		name   string
		o      func() outcome
		answer bool     // the doc shows the whole answer
		reWith []string // doccheck.Generalize's pairs
	}{
		{name: "no token", o: func() outcome { return serve(t, h, req("/api/v1/query", "", "team-a")) }, answer: true},
		{name: "malformed", o: func() outcome {
			r := req("/api/v1/query", "", "team-a")
			r.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
			return serve(t, h, r)
		}},
		{name: "two headers", o: func() outcome { return serve(t, h, twoHeaders) }},
		{name: "invalid token", o: func() outcome { return serve(t, h, req("/api/v1/query", "tok-expired", "team-a")) }},
		{name: "denied", o: func() outcome { return serve(t, h, req("/api/v1/query", "tok-alice", "team-b")) }, answer: true,
			reWith: []string{`^user "alice" may not get pods\.metrics\.k8s\.io in namespace "team-b"$`,
				`user "<user>" may not <verb> <resource>.<group> in namespace "<namespace>"`}},
		{name: "TokenReview fails", o: func() outcome {
			f.set(func() { f.fail = true })
			defer f.set(func() { f.fail = false })
			return serve(t, h, req("/api/v1/query", "tok-new", "team-a"))
		}},
		{name: "SubjectAccessReview fails", o: func() outcome {
			serve(t, h, req("/api/v1/query", "tok-alice", "team-a")) // the TokenReview is cached
			f.set(func() { f.fail = true })
			defer f.set(func() { f.fail = false })
			return serve(t, h, req("/api/v1/query", "tok-alice", "team-c"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o()
			if o.status < 400 {
				t.Fatalf("not refused: %d", o.status)
			}
			msg := doccheck.Generalize(o.msg, tc.reWith...)
			if tc.answer {
				doccheck.Shows(t, doc, doccheck.Answer(t, o.status, o.errorType, msg))
			} else {
				doccheck.Shows(t, doc, "`"+msg+"`")
			}
		})
	}
}
