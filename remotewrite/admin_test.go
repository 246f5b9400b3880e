package remotewrite

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAdminRoutes: the copiers' state answers on /prom_tenant/copiers, with
// prom-tenant's other admin routes, and on its first path, which scripts
// may still call.
func TestAdminRoutes(t *testing.T) {
	routes := map[string]bool{}
	for _, r := range (adminAPI{}).Routes() {
		routes[r.Pattern] = true
		w := httptest.NewRecorder()
		if err := r.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, r.Pattern+"?namespace=team-none", nil)); err != nil {
			t.Fatalf("%s: %v", r.Pattern, err)
		}
		if w.Code != http.StatusOK || w.Body.String() != "[]\n" && w.Body.String() != "[]" {
			t.Errorf("%s: %d %q, want 200 and no copier", r.Pattern, w.Code, w.Body)
		}
	}
	for _, p := range []string{"/prom_tenant/copiers", "/prom_remote_write/status"} {
		if !routes[p] {
			t.Errorf("no admin route %s", p)
		}
	}
}
