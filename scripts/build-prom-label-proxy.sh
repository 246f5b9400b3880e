#!/usr/bin/env bash
# Builds prom-label-proxy, the baseline of scripts/bench.sh's HTTP comparison, and prints
# its path. Built from the Go module proxy at the version bench/plp/go.mod requires (the
# one the enforcer benchmark compares with), then cached as long as that version matches.
#
#   PROM_LABEL_PROXY_VERSION  the module version (default: bench/plp/go.mod's)
#   PROM_TENANT_CACHE         where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail
prog=build-prom-label-proxy
# shellcheck source=scripts/lib-build.sh
. "$(dirname "$0")/lib-build.sh"
cd "$(dirname "$0")/.."

module=github.com/prometheus-community/prom-label-proxy

version=${PROM_LABEL_PROXY_VERSION:-$(awk -v m="$module" '$1 == m { print $2; exit }' bench/plp/go.mod)}
[[ -n $version ]] || die "no version of $module in bench/plp/go.mod"

out=$cache/prom-label-proxy-$version
stamp=$out.version

# prom-label-proxy has no --version flag: the stamp written after a good build says
# which version the binary is.
if [[ -x $out && -f $stamp && $(<"$stamp") == "$version" ]]; then
	cached "$out"
fi

start_build "$out" "prom-label-proxy $version"
# Our caller's module and workspace settings must not leak into the build.
export GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN=$tmp

go install "$module@$version"
"$tmp/prom-label-proxy" -h >/dev/null 2>&1 || [[ $? == 2 ]] || die "built binary does not run"
mv -f "$tmp/prom-label-proxy" "$out.tmp.$$"
finish_build "$out"
echo "$version" >"$stamp"
