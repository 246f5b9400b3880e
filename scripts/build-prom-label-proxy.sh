#!/usr/bin/env bash
# Builds prom-label-proxy, the baseline of scripts/bench.sh's HTTP comparison, and prints
# its path. Built from the Go module proxy at the version bench/plp/go.mod requires (the
# one the enforcer benchmark compares with), then cached as long as that version matches.
#
#   PROM_LABEL_PROXY_VERSION  the module version (default: bench/plp/go.mod's)
#   PROM_TENANT_CACHE         where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail
cd "$(dirname "$0")/.."

module=github.com/prometheus-community/prom-label-proxy
prog=build-prom-label-proxy
die() { echo "$prog: $*" >&2; exit 1; }

version=${PROM_LABEL_PROXY_VERSION:-$(awk -v m="$module" '$1 == m { print $2; exit }' bench/plp/go.mod)}
[[ -n $version ]] || die "no version of $module in bench/plp/go.mod"

cache=${PROM_TENANT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prom-tenant}
out=$cache/prom-label-proxy-$version
stamp=$out.version

# prom-label-proxy has no --version flag: the stamp written after a good build says
# which version the binary is.
if [[ -x $out && -f $stamp && $(<"$stamp") == "$version" ]]; then
	echo "$prog: cached $out" >&2
	echo "$out"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not installed"
mkdir -p "$cache"
tmp=$(mktemp -d -t "prom-tenant-$prog.XXXXXX")
trap 'rm -rf "$tmp" "$out.tmp.$$"' EXIT
# Our caller's module and workspace settings must not leak into the build.
export GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN=$tmp

echo "$prog: building prom-label-proxy $version into $out" >&2
start=$SECONDS
go install "$module@$version"
"$tmp/prom-label-proxy" -h >/dev/null 2>&1 || [[ $? == 2 ]] || die "built binary does not run"
mv -f "$tmp/prom-label-proxy" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "$version" >"$stamp"
echo "$prog: built in $((SECONDS - start))s" >&2
echo "$out"
