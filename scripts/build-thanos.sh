#!/usr/bin/env bash
# Builds Thanos (sidecar, query, query-frontend are subcommands of one binary) for the
# scale-out end-to-end tests (internal/testenv/thanos.go) and prints its path. Built from
# the Go module proxy: Thanos's go.mod has replace directives, which `go install pkg@version`
# refuses, so a throwaway module requires github.com/thanos-io/thanos and copies its
# replaces. Thanos's go line may be newer than the local Go; GOTOOLCHAIN=auto then fetches
# that toolchain (golang.org/toolchain, itself a module on the proxy). Several minutes on
# 2 cores with empty Go caches; afterwards the cached binary is reused as long as its
# --version matches.
#
#   THANOS_VERSION     the github.com/thanos-io/thanos version (default below)
#   PROM_TENANT_CACHE  where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail

version=${THANOS_VERSION:-v0.42.5} # newest v0.42 patch on proxy.golang.org
prog=build-thanos
# shellcheck source=scripts/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

[[ $version =~ ^v(0\.[0-9]+\.[0-9]+)$ ]] || die "THANOS_VERSION=$version is not v0.<minor>.<patch>"
bare=${BASH_REMATCH[1]}

out=$cache/thanos-$version

# Thanos's own build tags (.promu.yml). slicelabels is not optional: Thanos converts
# between Prometheus's labels.Labels and its protobuf labels without copying, which
# needs the slice layout; Prometheus 3's default (stringlabels) makes the sidecar panic
# in its gRPC codec on the first Series call (thanos-io/thanos#8543).
tags=netgo,slicelabels

# `thanos --version` prints "thanos, version 0.42.5 (branch: ..., revision: ...)" with our
# ldflags, and the build info records the tags; anything else (a build without them, a
# truncated file) is rebuilt.
want="thanos, version $bare "
built_right() {
	[[ -x $1 ]] && [[ $("$1" --version 2>&1 | head -1) == "$want"* ]] &&
		go version -m "$1" 2>/dev/null | grep -q "^[[:space:]]*build[[:space:]]*-tags=$tags\$"
}
if built_right "$out"; then
	cached "$out"
fi

start_build "$out" "thanos $version"
cd "$tmp"
# Our caller's module and workspace settings must not leak into the throwaway module.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=auto


info=$(go mod download -json "github.com/thanos-io/thanos@$version" 2>/dev/null) || true
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$info")
[[ -f $gomod ]] || die "no go.mod for github.com/thanos-io/thanos@$version in: $info"
goline=$(sed -n 's/^go //p' "$gomod")

{
	echo "module prom-tenant.invalid/thanos-build"
	echo
	echo "go $goline"
	echo
	echo "require github.com/thanos-io/thanos $version"
	echo
	# Both forms: `replace a => b v` lines and those inside a `replace (...)` block.
	sed -n -e 's/^replace \(.* => .*\)$/replace \1/p' \
		-e '/^replace ($/,/^)$/{/=>/{s/^[[:space:]]*/replace /;s/[[:space:]]*\/\/.*$//;p}}' "$gomod"
} >go.mod
grep -q '^replace ' go.mod || die "found no replace directives in $gomod"

# Resolves everything cmd/thanos imports and writes go.sum.
go get "github.com/thanos-io/thanos/cmd/thanos@$version"

# What Thanos's Makefile (promu) sets: the version is reported by --version and
# thanos_build_info. The revision is the tag, so rebuilds are identical.
pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$bare -X $pkg.Revision=$version -X $pkg.Branch=$version"
ldflags+=" -X $pkg.BuildUser=prom-tenant -X $pkg.BuildDate=19700101-00:00:00"
go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out.tmp.$$" github.com/thanos-io/thanos/cmd/thanos
built_right "$out.tmp.$$" || die "built binary reports '$("$out.tmp.$$" --version 2>&1 | head -1)', want '$want...' built with -tags=$tags"
finish_build "$out"
