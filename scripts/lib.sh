# Shared by scripts/demo.sh, scripts/bench*.sh and scripts/soak.sh: process clean-up,
# ports, readiness; and the benchmarks' CPU pinning and data.
# Source it after setting prog (the prefix of messages); it sets tmp and pids and
# installs the traps that stop everything started (append PIDs to pids).

die() { echo "$prog: $*" >&2; exit 1; }

tmp=$(mktemp -d -t "prom-tenant-$prog.XXXXXX")
pids=()
cleanup() {
	# Ctrl-C reaches our children too; a second signal must not cut the cleanup short.
	trap '' INT TERM
	set +e
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: sets port to a free port, a different one on each call (not in a subshell:
# it remembers where it got to).
next_port=$((20000 + RANDOM % 20000))
free_port() {
	while port_taken "$next_port"; do next_port=$((next_port + 1)); done
	port=$next_port
	next_port=$((next_port + 1))
}

# wait_for NAME PID LOG SECONDS COMMAND...: run COMMAND until it succeeds; fail with
# the log's tail if the process exits or the time runs out.
wait_for() {
	local name=$1 pid=$2 log=$3 deadline=$((SECONDS + $4))
	shift 4
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$log" >&2
			die "$name exited; log above"
		fi
		if ((SECONDS > deadline)); then
			tail -n 30 "$log" >&2
			die "$name not ready after $4s; log above"
		fi
		sleep 0.2
	done
}

# write_section MARKER FILE: replaces the part of docs/BENCHMARKS.md between
# <!-- MARKER:start --> and <!-- MARKER:end --> with FILE (which holds both markers), or
# appends FILE if the document has no such part. The rest of the document is kept.
write_section() {
	local marker=$1 section=$2 doc=docs/BENCHMARKS.md
	mkdir -p docs
	if [[ ! -f $doc ]]; then
		printf '# Benchmarks\n\nNotes written by hand go outside the marked sections below.\n' >"$doc"
	fi
	if grep -q "<!-- $marker:start -->" "$doc"; then
		awk -v section="$section" -v start="<!-- $marker:start -->" -v end="<!-- $marker:end -->" '
			index($0, start) { while ((getline line < section) > 0) print line; skip = 1; next }
			index($0, end) { skip = 0; next }
			!skip { print }
		' "$doc" >"$tmp/doc.md"
		cat "$tmp/doc.md" >"$doc"
	else
		{ echo; cat "$section"; } >>"$doc"
	fi
	echo "$prog: wrote $doc" >&2
}

# bench_pinning: pin_load (CPU 0, for wrk) and pin_servers (CPU 1, for everything that
# answers), so that a hop's CPU cost shows up as lost throughput; empty on one CPU.
bench_pinning() {
	if (($(nproc) >= 2)); then
		pin_load=(taskset -c 0)
		pin_servers=(taskset -c 1)
	else
		echo "$prog: only $(nproc) CPU: running without CPU pinning; numbers are not comparable" >&2
		pin_load=()
		pin_servers=()
	fi
}

# bench_prometheus BINARY [GLOBAL_YAML]: cmd/httpbenchdata's data (20 namespaces of 1,000
# series, 70 minutes at 30 s up to this minute, so that a range panel's 5m rate has data over
# its whole hour) in a TSDB, served by the Prometheus BINARY (pinned with pin_servers) with
# GLOBAL_YAML added to its global section. Sets start, end (RFC 3339), t (end, unix
# seconds), prom_port and prom_pid (also in pids); returns once it is ready.
bench_prometheus() {
	local binary=$1 global=${2:-}
	end=$(date -u +%Y-%m-%dT%H:%M:00Z)
	start=$(date -u -d "$end - 70 minutes" +%Y-%m-%dT%H:%M:%SZ)
	t=$(date -u -d "$end" +%s)
	go run ./cmd/httpbenchdata -start "$start" -end "$end" >"$tmp/data.om"
	promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/data" >/dev/null
	rm -f "$tmp/data.om"
	printf 'global:\n  scrape_interval: 15s\n%s' "$global" >"$tmp/prometheus.yml"
	free_port
	prom_port=$port
	"${pin_servers[@]}" "$binary" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
		--web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
	pids+=($!)
	prom_pid=${pids[-1]}
	wait_for Prometheus "$prom_pid" "$tmp/prometheus.log" 60 curl -fsS "http://127.0.0.1:$prom_port/-/ready"
}

# bench_tenant: the benchmarks' tenant, tenant-00, allowed every series of its namespace
# (what prom-label-proxy enforces with -label namespace), in $tmp/tenants. Sets tenant.
bench_tenant() {
	tenant=tenant-00
	mkdir -p "$tmp/tenants"
	cat >"$tmp/tenants/$tenant.yaml" <<TENANT
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata:
  name: everything
  namespace: $tenant
spec:
  metricIsolation: true
  metrics:
    - ".+"
TENANT
}
