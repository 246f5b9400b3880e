#!/usr/bin/env bash
# Builds Helm for the chart tests (deploy/helm: lint and template, chart_test.go and
# e2e/helm_test.go) and `make manifests`, and prints its path. Built from the Go module
# proxy (helm.sh/helm/v4 has no replace directives, so `go install pkg@version` works),
# with the version stamped as Helm's own Makefile does, then cached as long as
# `helm version` reports it.
#
#   HELM_VERSION       the helm.sh/helm/v4 module version (default below)
#   PROM_TENANT_CACHE  where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail

version=${HELM_VERSION:-v4.3.2}
prog=build-helm
# shellcheck source=scripts/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

[[ $version =~ ^v4\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION=$version is not v4.<minor>.<patch>"

out=$cache/helm-$version

# Without the -X below, Helm reports only "v4.3" (internal/version's default).
built_right() {
	[[ -x $1 ]] && [[ $("$1" version --short 2>/dev/null) == "$version" ]]
}
if built_right "$out"; then
	cached "$out"
fi

start_build "$out" "helm $version"
# Our caller's module and workspace settings must not leak into the build.
export GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN=$tmp

go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
	"helm.sh/helm/v4/cmd/helm@$version"
built_right "$tmp/helm" || die "built binary reports '$("$tmp/helm" version --short 2>&1)', want $version"
mv -f "$tmp/helm" "$out.tmp.$$"
finish_build "$out"
