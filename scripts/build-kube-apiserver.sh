#!/usr/bin/env bash
# Builds a real kube-apiserver for the Kubernetes tests (internal/testenv/kube.go) and
# prints its path. Debian has no package for it, so it is built from the Go module proxy:
# k8s.io/kubernetes is not meant to be required as a module (its go.mod requires the
# staging modules at v0.0.0 and replaces them with ./staging/src paths, which are not in
# the module zip), so a throwaway module requires it and replaces each staging module with
# its published v0.X.Y twin. About 4-5 minutes on 2 cores with empty Go caches;
# afterwards the cached binary is reused as long as its --version matches.
#
#   KUBE_APISERVER_VERSION  the k8s.io/kubernetes version (default below)
#   PROM_TENANT_CACHE       where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail

version=${KUBE_APISERVER_VERSION:-v1.34.4} # newest v1.34 patch on proxy.golang.org
prog=build-kube-apiserver
# shellcheck source=scripts/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

[[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_APISERVER_VERSION=$version is not v1.<minor>.<patch>"
minor=${BASH_REMATCH[1]}
staging_version=v0.$minor.${BASH_REMATCH[2]} # staging modules are tagged v0.X.Y for v1.X.Y

out=$cache/kube-apiserver-$version

# `kube-apiserver --version` prints "Kubernetes v1.34.4"; anything else (a build
# without our ldflags, a truncated file) is rebuilt.
if [[ -x $out ]] && [[ $("$out" --version 2>/dev/null) == "Kubernetes $version" ]]; then
	cached "$out"
fi

start_build "$out" "kube-apiserver $version (staging modules $staging_version)"
cd "$tmp"
# Our caller's module and workspace settings must not leak into the throwaway module.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0


# The staging modules are exactly those k8s.io/kubernetes replaces with ./staging/src paths.
info=$(go mod download -json "k8s.io/kubernetes@$version") || die "go mod download k8s.io/kubernetes@$version failed: $info"
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$info")
[[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@$version in: $info"
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
((${#staging[@]} > 20)) || die "found only ${#staging[@]} staging modules in $gomod"

{
	echo "module prom-tenant.invalid/kube-apiserver-build"
	echo
	echo "go $(sed -n 's/^go //p' "$gomod")"
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	for m in "${staging[@]}"; do echo "replace $m => $m $staging_version"; done
} >go.mod

# Resolves everything kube-apiserver imports and writes go.sum.
go get "k8s.io/kubernetes/cmd/kube-apiserver@$version"

# What hack/lib/version.sh sets: the version is reported by /version and --version.
# The build date is the release's (the module's time), so rebuilds are identical.
date=$(sed -n 's/^[[:space:]]*"Time": "\(.*\)",$/\1/p' <<<"$info")
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
done
go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" k8s.io/kubernetes/cmd/kube-apiserver
got=$("$out.tmp.$$" --version) || die "built binary does not run"
[[ $got == "Kubernetes $version" ]] || die "built binary reports '$got', want 'Kubernetes $version'"
finish_build "$out"
