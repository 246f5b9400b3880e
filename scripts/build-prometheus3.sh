#!/usr/bin/env bash
# Builds a Prometheus 3.x server for the remote-write 2.0 tests and prints its path.
# Debian's prometheus (2.42) accepts only remote-write 1.0: it answers a 2.0 request
# with 204 and writes nothing. Built from the Go module proxy without the service
# discovery plugins the tests never use (build tag remove_all_sd: no cloud or Kubernetes
# SDKs, a third fewer packages to download and compile), then cached as long as its
# --version matches.
#
#   PROMETHEUS3_VERSION  the github.com/prometheus/prometheus module version (default below)
#   PROM_TENANT_CACHE    where binaries are kept (default ~/.cache/prom-tenant)
set -euo pipefail

version=${PROMETHEUS3_VERSION:-v0.316.0} # module v0.316.0 is Prometheus 3.x
prog=build-prometheus3
# shellcheck source=scripts/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

out=$cache/prometheus-$version
stamp=$out.version

if [[ -x $out && -f $stamp && $(<"$stamp") == "$version" ]] && "$out" --version >/dev/null 2>&1; then
	cached "$out"
fi

start_build "$out" "prometheus $version"
# Our caller's module and workspace settings must not leak into the build.
export GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN=$tmp

go install -tags remove_all_sd "github.com/prometheus/prometheus/cmd/prometheus@$version"
"$tmp/prometheus" --version >/dev/null || die "built binary does not run"
mv -f "$tmp/prometheus" "$out.tmp.$$"
finish_build "$out"
echo "$version" >"$stamp"
