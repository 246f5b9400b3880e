# Build, test, demo and benchmark prom-tenant. See docs/DESIGN.md for the design and the contract.
GO ?= go

.PHONY: all build test deps demo bench soak xcaddy generate verify-generate clean image

all: build

# bin/caddy: standard Caddy modules plus all of ours. Static (CGO off) and with trimmed
# paths, as the image's binary is: make image then only links again (its version stamp and
# stripping are link flags), instead of compiling Caddy a second time.
CADDY_BUILD_FLAGS = -trimpath -buildvcs=false
build:
	CGO_ENABLED=0 $(GO) build $(CADDY_BUILD_FLAGS) -o bin/caddy ./cmd/caddy

deps:
	scripts/install-deps.sh

# Unit and end-to-end tests against the real Prometheus and bin/caddy.
# The builds run in parallel (make -j), so that one's module downloads overlap another's
# compiling; kube-apiserver, Prometheus 3, Thanos and Helm are built once, then cached;
# the image (make image) is rebuilt every time, as its tests check it is this tree's.
# go test's own timeout is 10 minutes per package; the e2e package takes 4-6 on a
# 2-core machine, so the limit is explicit, with room for a busy one.
E2E_TIMEOUT ?= 30m
test:
	scripts/install-deps.sh
	$(MAKE) --no-print-directory -j4 build verify-generate test-binaries image
	PROM_TENANT_E2E=1 PROM_TENANT_KUBE_APISERVER="$$(cat bin/.kube-apiserver)" PROM_TENANT_PROMETHEUS3="$$(cat bin/.prometheus3)" \
		PROM_TENANT_THANOS="$$(cat bin/.thanos)" PROM_TENANT_HELM="$$(cat bin/.helm)" $(GO) test -count=1 -parallel 4 -timeout $(E2E_TIMEOUT) ./...
	@# Bounded fuzz runs of the rewriter: its safety invariant (rewrite/fuzz_test.go),
	@# then the differential oracle against the Prometheus engine (rewrite/oracle_test.go).
	$(GO) test -run '^$$' -fuzz '^FuzzEnforceQuery$$' -fuzztime 30s ./rewrite/
	$(GO) test -run '^$$' -fuzz '^FuzzOracle$$' -fuzztime 60s ./rewrite/

# The servers the end-to-end tests run that Debian does not package: kube-apiserver
# (built from the module proxy, about 5 minutes on 2 cores with empty caches),
# Prometheus 3.x (the remote-write 2.0 receiver; Debian's 2.42 takes 1.0 only) and
# Thanos (sidecar, query, query-frontend: the scale-out topology) and Helm (the chart's
# tests), each built once into ~/.cache/prom-tenant; bin/.kube-apiserver, bin/.prometheus3,
# bin/.thanos and bin/.helm hold their paths.
test-binaries: bin/.kube-apiserver bin/.prometheus3 bin/.thanos bin/.helm
.PHONY: test-binaries bin/.kube-apiserver bin/.prometheus3 bin/.thanos bin/.helm
bin/.kube-apiserver:
	@mkdir -p bin
	scripts/build-kube-apiserver.sh >$@.tmp && mv $@.tmp $@
bin/.prometheus3:
	@mkdir -p bin
	scripts/build-prometheus3.sh >$@.tmp && mv $@.tmp $@
bin/.thanos:
	@mkdir -p bin
	scripts/build-thanos.sh >$@.tmp && mv $@.tmp $@
# Helm (v4) for the chart's tests (lint, template) and make manifests; about 5 minutes cold.
bin/.helm:
	@mkdir -p bin
	scripts/build-helm.sh >$@.tmp && mv $@.tmp $@

# deploy/kubernetes/*.yaml, rendered from the Helm chart (scripts/manifests.sh);
# TestManifestsFromChart fails when they differ.
.PHONY: manifests
manifests: bin/.helm
	scripts/manifests.sh

# The MetricAccess CRD and deepcopy code, generated from the API package tenancy/v1alpha1.
CONTROLLER_GEN = $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
generate:
	$(CONTROLLER_GEN) object paths=./tenancy/v1alpha1/
	$(CONTROLLER_GEN) crd paths=./tenancy/v1alpha1/ output:crd:dir=deploy/kubernetes/crd
	cp deploy/kubernetes/crd/*.yaml deploy/helm/prom-tenant/crds/

# Fails when the generated files do not match tenancy/v1alpha1 (run make generate).
verify-generate:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(CONTROLLER_GEN) object paths=./tenancy/v1alpha1/ output:object:dir="$$d" && \
	$(CONTROLLER_GEN) crd paths=./tenancy/v1alpha1/ output:crd:dir="$$d/crd" && \
	diff -u tenancy/v1alpha1/zz_generated.deepcopy.go "$$d/zz_generated.deepcopy.go" && \
	diff -ru deploy/kubernetes/crd "$$d/crd" && diff -ru deploy/helm/prom-tenant/crds "$$d/crd" && echo "generated files are up to date" || \
	{ echo "generated files are stale: run make generate" >&2; exit 1; }

demo:
	scripts/demo.sh

# The HTTP path and the enforcer (scripts/bench.sh), then the remote-write copier against
# vmagent (scripts/bench-remotewrite.sh, about 6 minutes); each rewrites its own marked
# section of docs/BENCHMARKS.md.
bench:
	scripts/bench.sh
	scripts/bench-remotewrite.sh
	# The scale-out chain: Prometheus, Thanos Query, Query Frontend cold and warm, with and
	# without prom_tenant in front (scripts/bench-chain.sh, about 4 minutes).
	scripts/bench-chain.sh

# Sustained mixed load through bin/caddy with faults (upstream killed and restarted, a
# tenant file rewritten in place, a reload, one of two backends killed), sampling the
# proxy's RSS, goroutines and FDs (scripts/soak.sh). Not part of make test.
SOAK_DURATION ?= 300
soak:
	SOAK_DURATION=$(SOAK_DURATION) scripts/soak.sh

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

# The container image, without a container engine: a static caddy (CGO off, paths
# trimmed, no symbol table or DWARF, Caddy's version prefixed with ours) in an OCI image layout, bin/image, and a
# docker-archive, bin/prom-tenant-image.tar (podman load / docker load), written by
# tools/image (its own module: go-containerregistry stays out of go.mod). The Dockerfile
# describes the same image; every timestamp is the last commit's, so the same tree gives
# the same digest with the same Go toolchain.
# The tag is the chart's appVersion, the one source of truth: helm install with the chart's
# defaults pulls what make image tagged. The commit goes into the revision label and into
# caddy version.
IMAGE_REPOSITORY ?= ghcr.io/prom-tenant/caddy-prom-tenant
IMAGE_VERSION ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' deploy/helm/prom-tenant/Chart.yaml)
IMAGE_REVISION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_DIR ?= bin
image: build
	@test -n "$(IMAGE_VERSION)" || { echo "make image: no appVersion in deploy/helm/prom-tenant/Chart.yaml (or set IMAGE_VERSION)" >&2; exit 1; }
	@mkdir -p $(IMAGE_DIR)
	CGO_ENABLED=0 $(GO) build $(CADDY_BUILD_FLAGS) \
		-ldflags '-s -w -X "github.com/caddyserver/caddy/v2.CustomVersion=prom-tenant/$(IMAGE_VERSION) ($(IMAGE_REVISION))"' \
		-o $(IMAGE_DIR)/caddy-image ./cmd/caddy
	cd tools/image && $(GO) run . -caddy "$(abspath $(IMAGE_DIR))/caddy-image" \
		-repository $(IMAGE_REPOSITORY) -version $(IMAGE_VERSION) -revision $(IMAGE_REVISION) -epoch $(SOURCE_DATE_EPOCH) \
		-layout "$(abspath $(IMAGE_DIR))/image" -tar "$(abspath $(IMAGE_DIR))/prom-tenant-image.tar"

clean:
	rm -rf bin
