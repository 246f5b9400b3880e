# Build, test, demo and benchmark prom-tenant. See docs/DESIGN.md for the design and the contract.
GO ?= go

.PHONY: all build test deps demo bench xcaddy generate verify-generate clean

all: build

# bin/caddy: standard Caddy modules plus all of ours.
build:
	$(GO) build -o bin/caddy ./cmd/caddy

deps:
	scripts/install-deps.sh

# Unit and end-to-end tests against the real Prometheus and bin/caddy.
test:
	scripts/install-deps.sh
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory verify-generate
	@# kube-apiserver has no Debian package: built from the module proxy once (~4-5
	@# minutes on 2 cores), then cached; the script prints its path.
	@# Prometheus 3.x (remote-write 2.0 receiver; Debian's 2.42 takes 1.0 only): likewise
	@# built once (~5 minutes), then cached.
	kube_apiserver="$$(scripts/build-kube-apiserver.sh)" && \
	prometheus3="$$(scripts/build-prometheus3.sh)" && \
		PROM_TENANT_E2E=1 PROM_TENANT_KUBE_APISERVER="$$kube_apiserver" PROM_TENANT_PROMETHEUS3="$$prometheus3" \
		$(GO) test -count=1 ./...
	@# Bounded fuzz runs of the rewriter: its safety invariant (rewrite/fuzz_test.go),
	@# then the differential oracle against the Prometheus engine (rewrite/oracle_test.go).
	$(GO) test -run '^$$' -fuzz '^FuzzEnforceQuery$$' -fuzztime 30s ./rewrite/
	$(GO) test -run '^$$' -fuzz '^FuzzOracle$$' -fuzztime 60s ./rewrite/

# The MetricAccess CRD and deepcopy code, generated from the API package tenancy/v1alpha1.
CONTROLLER_GEN = $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
generate:
	$(CONTROLLER_GEN) object paths=./tenancy/v1alpha1/
	$(CONTROLLER_GEN) crd paths=./tenancy/v1alpha1/ output:crd:dir=deploy/kubernetes/crd

# Fails when the generated files do not match tenancy/v1alpha1 (run make generate).
verify-generate:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(CONTROLLER_GEN) object paths=./tenancy/v1alpha1/ output:object:dir="$$d" && \
	$(CONTROLLER_GEN) crd paths=./tenancy/v1alpha1/ output:crd:dir="$$d/crd" && \
	diff -u tenancy/v1alpha1/zz_generated.deepcopy.go "$$d/zz_generated.deepcopy.go" && \
	diff -ru deploy/kubernetes/crd "$$d/crd" && echo "generated files are up to date" || \
	{ echo "generated files are stale: run make generate" >&2; exit 1; }

demo:
	scripts/demo.sh

# The HTTP path and the enforcer (scripts/bench.sh), then the remote-write copier against
# vmagent (scripts/bench-remotewrite.sh, about 6 minutes); each rewrites its own marked
# section of docs/BENCHMARKS.md.
bench:
	scripts/bench.sh
	scripts/bench-remotewrite.sh

# The same binary as users build it, with xcaddy. The module path is not published, and
# the module proxy answers 403 for it; '|' makes the go command fall through to an empty
# file proxy (any error, not only 404/410 as with ','), after which the replace to . wins.
XCADDY_CADDY_VERSION ?= v2.11.9
xcaddy:
	mkdir -p .empty-goproxy
	gobin="$$($(GO) env GOBIN)"; gobin="$${gobin:-$$($(GO) env GOPATH | cut -d: -f1)/bin}"; \
	XCADDY="$$(command -v xcaddy || echo "$$gobin/xcaddy")"; \
	test -x "$$XCADDY" || { $(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@latest && XCADDY="$$gobin/xcaddy"; }; \
	GOPROXY="$$($(GO) env GOPROXY | cut -d, -f1)|file://$(CURDIR)/.empty-goproxy" \
		"$$XCADDY" build $(XCADDY_CADDY_VERSION) \
		--with github.com/prom-tenant/caddy-prom-tenant=. \
		--output bin/caddy-xcaddy

clean:
	rm -rf bin
