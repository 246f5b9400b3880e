# Shared by scripts/demo.sh, scripts/bench.sh and scripts/bench-remotewrite.sh: process
# clean-up, ports, readiness.
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
