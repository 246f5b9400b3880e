# Shared by the scripts/build-*.sh scripts, each of which builds a server the tests or the
# benchmark run from the Go module proxy once, keeps it in a cache and prints its path.
# Source it first (before any cd), after setting prog (the prefix of messages).
#
#   PROM_TENANT_CACHE  where binaries are kept (default ~/.cache/prom-tenant)

die() { echo "$prog: $*" >&2; exit 1; }

cache=${PROM_TENANT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prom-tenant}

# cached OUT: the binary at OUT passed the caller's check: say so, print its path, stop.
cached() {
	echo "$prog: cached $1" >&2
	echo "$1"
	exit 0
}

# start_build OUT WHAT: the binary is missing or stale, so it is built: sets tmp, a
# directory removed on exit together with a half-written OUT.tmp.<pid>.
start_build() {
	command -v go >/dev/null 2>&1 || die "go is not installed"
	mkdir -p "$cache"
	tmp=$(mktemp -d -t "prom-tenant-$prog.XXXXXX")
	partial=$1.tmp.$$
	trap 'rm -rf "$tmp" "$partial"' EXIT
	echo "$prog: building $2 into $1" >&2
	build_start=$SECONDS
}

# finish_build OUT: the binary built (and checked) at OUT.tmp.<pid> goes into place by a
# rename, so a concurrent or interrupted run never leaves a half-written binary at OUT.
finish_build() {
	mv -f "$1.tmp.$$" "$1"
	echo "$prog: built in $((SECONDS - build_start))s" >&2
	echo "$1"
}
