#!/usr/bin/env bash
# make bench, second part: the prom_remote_write copier end to end, against vmagent doing
# the closest copy it can, in the same run. Writes the marked section
# <!-- bench-remotewrite.sh:start --> ... <!-- bench-remotewrite.sh:end --> of
# docs/BENCHMARKS.md (the rest of that file is left as it is).
#
# Setup: a source Prometheus backfilled (promtool, from cmd/benchdata) with $series series
# of tenant "bench" (plus $others of another namespace that must not be copied) over the
# last $minutes minutes at 15s steps; a receiver Prometheus with the remote-write receiver.
#   1. idle baseline: bin/caddy with the same config, its MetricAccess not copying;
#   2. prom_remote_write copies the tenant's series (remote read: raw samples, original
#      timestamps) to a fresh receiver, catching up window by window, until copied_until
#      passes the data's end; the receiver must then hold every sample (count_over_time);
#   3. vmagent, which cannot remote-read, scrapes the source's /federate?match[]=<the
#      tenant's selector> (honor_labels, honor_timestamps) and remote-writes to a fresh
#      receiver, until it has written $vm_rows samples.
# CPU: utime+stime of the copier process (/proc/<pid>/stat); memory: its VmHWM. The copiers
# (caddy, vmagent) run pinned to CPU 0, the Prometheus servers to CPU 1.
#
# Environment: BENCH_RW_SERIES (default 100000), BENCH_RW_MINUTES (10), BENCH_RW_MAX_WINDOW
# (1m), BENCH_RW_BATCH_SIZE (2000), BENCH_RW_VMAGENT_SAMPLES (1500000),
# BENCH_RW_PROFILE_SECONDS (30; 0 for no CPU profile), BENCH_RW_KEEP (a directory to copy
# the CPU and allocation profiles and the progress readings to).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
make --no-print-directory build

prog=bench-remotewrite
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

series=${BENCH_RW_SERIES:-100000}
others=1000
minutes=${BENCH_RW_MINUTES:-10}
max_window=${BENCH_RW_MAX_WINDOW:-1m}
batch_size=${BENCH_RW_BATCH_SIZE:-2000}
vm_rows=${BENCH_RW_VMAGENT_SAMPLES:-1500000}
profile_seconds=${BENCH_RW_PROFILE_SECONDS:-30}
step=15
hz=$(getconf CLK_TCK)

if (($(nproc) >= 2)); then
	pin_copier=(taskset -c 0)
	pin_servers=(taskset -c 1)
	pinning="the copier (caddy or vmagent) pinned to CPU 0 (\`taskset -c 0\`), both Prometheus servers to CPU 1"
else
	echo "$prog: only $(nproc) CPU: running without CPU pinning" >&2
	pin_copier=()
	pin_servers=()
	pinning="no pinning (1 CPU)"
fi

# cpu_s PID: CPU seconds (user + system) the process has used.
cpu_s() { awk -v hz="$hz" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# hwm_mb PID: peak resident set size (VmHWM) in MiB.
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# dur_s DURATION: whole seconds of a duration like 90s, 1m, 2h.
dur_s() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) die "duration $1: want a whole number of s, m or h" ;;
	esac
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# stop PID: stop one process we started and forget it.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget "$1"
}
forget() {
	local p keep=()
	for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	pids=("${keep[@]}")
}
# started NAME PID EXE: check that PID is EXE itself (not a wrapper), so that its
# /proc/<pid>/stat is the copier's.
started() {
	[[ $(readlink -f "/proc/$2/exe") == "$(readlink -f "$3")" ]] || die "$1: pid $2 is $(readlink "/proc/$2/exe"), not $3"
}

window_s=$(dur_s "$max_window")

# Data: $series + $others series, a sample every 15s, ending on the last full step.
now=$(date +%s)
end_s=$(((now / step - 1) * step))
start_s=$((end_s - minutes * 60))
per_series=$((minutes * 60 / step + 1))
want_samples=$((series * per_series))
echo "$prog: generating $((series + others)) series x $per_series samples" >&2
go run ./cmd/benchdata -series "$series" -others "$others" \
	-start "$(date -u -d "@$start_s" +%FT%TZ)" -end "$(date -u -d "@$end_s" +%FT%TZ)" >"$tmp/data.om"
promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/source" >/dev/null
rm -f "$tmp/data.om"
: >"$tmp/prometheus.yml" # no scrape jobs: the servers hold only the benchmark's data

# The source keeps the data visible to /federate for an hour (its lookback delta; remote
# read does not use it), so that the vmagent run sees it however long the first one takes.
free_port
src_port=$port
"${pin_servers[@]}" prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/source" \
	--web.listen-address="127.0.0.1:$src_port" --query.lookback-delta=1h >"$tmp/source.log" 2>&1 &
pids+=($!)
src_pid=$!
wait_for "source Prometheus" "$src_pid" "$tmp/source.log" 60 curl -fsS "http://127.0.0.1:$src_port/-/ready"
started "source Prometheus" "$src_pid" "$(command -v prometheus)"

# receiver NAME: a fresh receiver Prometheus; sets recv_port and recv_pid.
receiver() {
	free_port
	recv_port=$port
	"${pin_servers[@]}" prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/$1" \
		--web.listen-address="127.0.0.1:$recv_port" --web.enable-remote-write-receiver >"$tmp/$1.log" 2>&1 &
	pids+=($!)
	recv_pid=$!
	wait_for "receiver Prometheus" "$recv_pid" "$tmp/$1.log" 60 curl -fsS "http://127.0.0.1:$recv_port/-/ready"
}
# query PORT PROMQL: the value of a one-element instant vector at the data's end ("" if empty).
query() {
	curl -fsS "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$end_s" |
		jq -r '.data.result[0].value[1] // ""'
}
# samples_in PORT: every sample of the tenant's series in the data's range. count_over_time
# drops the metric name, so one query per family keeps the label sets apart.
samples_in() {
	local total=0 f n
	for f in $(seq -w 0 19); do
		n=$(query "$1" "sum(count_over_time({namespace=\"bench\",__name__=~\"bench_metric_${f}(_total)?\"}[$((minutes + 1))m]))")
		total=$((total + ${n:-0}))
	done
	echo "$total"
}

tenant() { # ENABLED URL
	cat <<YAML
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata:
  name: copy
  namespace: bench
spec:
  metricIsolation: true
  metrics:
    - bench_metric_.*
  remoteWrite:
    enabled: $1
    target:
      type: remote_write
      remoteWrite:
        url: $2
YAML
}
caddyfile() { # ADMIN_PORT TENANTS_DIR RECEIVER_PORT
	cat <<CADDYFILE
{
	admin 127.0.0.1:$1
	prom_tenancy {
		directory $2
	}
	prom_remote_write {
		source http://127.0.0.1:$src_port
		read_delay 1s
		initial_lookback $((minutes + 5))m
		max_window $max_window
		batch_size $batch_size
		allow_url http://127.0.0.1:$3
		state_dir $tmp/state
	}
}
CADDYFILE
}
# run_caddy NAME: starts bin/caddy on $tmp/NAME.Caddyfile; sets caddy_pid, admin.
run_caddy() {
	TZ=UTC XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
		"${pin_copier[@]}" bin/caddy run --config "$tmp/$1.Caddyfile" --adapter caddyfile >"$tmp/$1.log" 2>&1 &
	pids+=($!)
	caddy_pid=$!
	caddy_loaded() { curl -fsS "http://$admin/config/" | grep -qv '^null$'; }
	wait_for Caddy "$caddy_pid" "$tmp/$1.log" 30 caddy_loaded
	started Caddy "$caddy_pid" bin/caddy
}

# 1. Idle baseline: the same config, the MetricAccess not copying.
echo "$prog: idle baseline" >&2
mkdir -p "$tmp/tenants-idle" "$tmp/tenants"
tenant false "http://127.0.0.1:1/api/v1/write" >"$tmp/tenants-idle/bench.yaml"
free_port
admin_port=$port
admin=127.0.0.1:$admin_port
caddyfile "$admin_port" "$tmp/tenants-idle" 1 >"$tmp/idle.Caddyfile"
run_caddy idle
sleep 5
idle_cpu=$(cpu_s "$caddy_pid")
idle_hwm=$(hwm_mb "$caddy_pid")
[[ $(curl -fsS "http://$admin/prom_tenant/copiers") == "[]" ]] || die "idle caddy runs a copier"
stop "$caddy_pid"

# 2. prom_remote_write.
receiver receiver-ours
tenant true "http://127.0.0.1:$recv_port/api/v1/write" >"$tmp/tenants/bench.yaml"
free_port
admin_port=$port
admin=127.0.0.1:$admin_port
caddyfile "$admin_port" "$tmp/tenants" "$recv_port" >"$tmp/ours.Caddyfile"
echo "$prog: prom_remote_write copying $want_samples samples" >&2
ours_load=$(loadavg)
src_cpu0=$(cpu_s "$src_pid")
recv_cpu0=$(cpu_s "$recv_pid")
t0=$EPOCHREALTIME
run_caddy ours
profiling=0
: >"$tmp/ours.tsv" # elapsed seconds, CPU seconds, samples acknowledged
while :; do
	elapsed=$(calc %.2f "$EPOCHREALTIME - $t0")
	cpu=$(cpu_s "$caddy_pid")
	st=$(curl -fsS "http://$admin/prom_tenant/copiers") || die "status: $st"
	IFS=$'\t' read -r sent copied err < <(jq -r '.[0] | [.samples_sent,
		((.copied_until // "1970-01-01T00:00:00Z") | capture("^(?<s>[^.Z]+)(?<f>\\.[0-9]+)?Z$") |
			(.s + "Z" | fromdate) * 1000 + ((.f // "0") | tonumber * 1000 | round)),
		(.last_error // "" | gsub("\t"; " "))] | @tsv' <<<"$st")
	echo "$elapsed $cpu $sent" >>"$tmp/ours.tsv"
	[[ -z $err ]] || die "copier error: $err"
	if ((profile_seconds > 0 && !profiling && sent > 0)); then
		profiling=1
		curl -fsS -o "$tmp/cpu.pprof" "http://$admin/debug/pprof/profile?seconds=$profile_seconds" &
		profile_pid=$!
		pids+=("$profile_pid")
		# The allocations of the same span (a delta profile), kept with BENCH_RW_KEEP.
		curl -fsS -o "$tmp/allocs.pprof" "http://$admin/debug/pprof/allocs?seconds=$profile_seconds" &
		allocs_pid=$!
		pids+=("$allocs_pid")
	fi
	# Done when copied_until is past the data's last timestamp: at that timestamp itself it
	# can still be in the middle of the series (progress is a timestamp and a series).
	((copied <= end_s * 1000)) || break
	awk -v e="$elapsed" 'BEGIN { exit !(e > 600) }' && die "copy not done after 600s: $st"
	sleep 0.5
done
ours_wall=$elapsed
ours_cpu=$cpu
ours_sent=$sent
ours_hwm=$(hwm_mb "$caddy_pid")
ours_src_cpu=$(calc %.2f "$(cpu_s "$src_pid") - $src_cpu0")
if ((profiling)); then
	wait "$profile_pid" || echo "$prog: CPU profile failed" >&2
	forget "$profile_pid"
	wait "$allocs_pid" || echo "$prog: allocation profile failed" >&2
	forget "$allocs_pid"
fi
stop "$caddy_pid"
if [[ -n ${BENCH_RW_KEEP:-} ]]; then
	mkdir -p "$BENCH_RW_KEEP"
	cp "$tmp/ours.tsv" "$BENCH_RW_KEEP/"
	[[ ! -s $tmp/cpu.pprof ]] || cp "$tmp/cpu.pprof" "$BENCH_RW_KEEP/"
	[[ ! -s $tmp/allocs.pprof ]] || cp "$tmp/allocs.pprof" "$BENCH_RW_KEEP/"
fi
ours_recv_cpu=$(calc %.2f "$(cpu_s "$recv_pid") - $recv_cpu0")
ours_got=$(samples_in "$recv_port")
ours_others=$(query "$recv_port" 'count({__name__=~".+",namespace!="bench"})')
((ours_sent == want_samples)) || die "copier acknowledged $ours_sent samples, want $want_samples"
((ours_got == want_samples)) || die "receiver holds $ours_got samples, want $want_samples"
[[ -z $ours_others ]] || die "receiver holds $ours_others series outside the tenant"
stop "$recv_pid"
echo "$prog: prom_remote_write: $ours_sent samples, $ours_cpu CPU s, ${ours_wall}s" >&2

# 3. vmagent: /federate of the tenant's selector, the same receiver kind.
receiver receiver-vmagent
free_port
vm_port=$port
# Every 10s: rendering the 13 MB answer took the source over 5s on a busy 2-CPU machine, and a
# scrape that times out costs vmagent CPU and writes nothing (a 5s timeout ended two runs).
cat >"$tmp/vmagent.yml" <<YAML
scrape_configs:
  - job_name: federate
    honor_labels: true
    honor_timestamps: true
    scrape_interval: 10s
    scrape_timeout: 10s
    metrics_path: /federate
    params:
      'match[]': ['{__name__=~"bench_metric_.*",namespace="bench"}']
    static_configs:
      - targets: ['127.0.0.1:$src_port']
YAML
vm_cmd=(vmagent -promscrape.config="$tmp/vmagent.yml" -promscrape.maxScrapeSize=256MB
	-remoteWrite.url="http://127.0.0.1:$recv_port/api/v1/write" -remoteWrite.tmpDataPath="$tmp/vmagent-data"
	-httpListenAddr="127.0.0.1:$vm_port")
echo "$prog: vmagent writing $vm_rows samples" >&2
vm_load=$(loadavg)
src_cpu0=$(cpu_s "$src_pid")
recv_cpu0=$(cpu_s "$recv_pid")
t0=$EPOCHREALTIME
"${pin_copier[@]}" "${vm_cmd[@]}" >"$tmp/vmagent.log" 2>&1 &
pids+=($!)
vm_pid=$!
wait_for vmagent "$vm_pid" "$tmp/vmagent.log" 30 curl -fsS "http://127.0.0.1:$vm_port/metrics"
started vmagent "$vm_pid" "$(command -v vmagent)"
# Samples count once acknowledged: a snapshot counts only when nothing is queued and
# every block formed got a 2xx (the rows include vmagent's 6 series per scrape: up, ...).
vm_metrics() {
	curl -fsS "http://127.0.0.1:$vm_port/metrics" | awk '
		/^vmagent_remotewrite_block_size_rows_sum / { rows = $NF }
		/^vmagent_remotewrite_block_size_rows_count / { blocks = $NF }
		/^vmagent_remotewrite_requests_total/ && /status_code="2XX"/ { ok += $NF }
		/^vmagent_remotewrite_errors_total/ { errs += $NF }
		/^vmagent_remotewrite_requests_total/ && /status_code="4/ { refused += $NF }
		/^vmagent_remotewrite_pending_(inmemory_blocks|data_bytes)/ { pending += $NF }
		/^vm_promscrape_scrapes_total/ { scrapes += $NF }
		/^vm_promscrape_scraped_samples_sum / { scraped = $NF }
		/^vm_promscrape_scrapes_(failed|timed_out)_total/ { failed += $NF }
		END { printf "%d %d %d %d %d %d %d %d %d\n", rows, blocks, ok, errs + refused, pending, scrapes, scraped, failed, refused }'
}
: >"$tmp/vmagent.tsv" # elapsed seconds, CPU seconds, samples acknowledged
vm_sent=0
while :; do
	elapsed=$(calc %.2f "$EPOCHREALTIME - $t0")
	cpu=$(cpu_s "$vm_pid")
	read -r rows blocks ok errs pending scrapes scraped failed refused < <(vm_metrics)
	# A scrape that fails (a busy machine) makes vmagent write staleness markers, and the
	# next scrape's samples are then refused (400): the run cannot be counted.
	((errs == 0)) || die "vmagent: $errs remote-write errors ($refused refused, after $failed failed scrapes): $(tail -n 5 "$tmp/vmagent.log")"
	if ((pending == 0 && ok == blocks && rows > vm_sent)); then
		vm_sent=$rows vm_cpu=$cpu vm_wall=$elapsed vm_scrapes=$scrapes vm_scraped=$scraped vm_failed=$failed
		echo "$elapsed $cpu $rows" >>"$tmp/vmagent.tsv"
		((vm_sent < vm_rows)) || break
	fi
	awk -v e="$elapsed" 'BEGIN { exit !(e > 300) }' &&
		die "vmagent: not done after 300s (rows $rows, blocks $blocks, 2xx $ok, pending $pending, scrapes $scrapes): $(tail -n 5 "$tmp/vmagent.log")"
	# As often as the copier's status: a reading of vmagent's /metrics (about 30 KB of
	# text) costs it about 0.7 ms of CPU, counted in its samples per CPU second.
	sleep 0.5
done
vm_hwm=$(hwm_mb "$vm_pid")
vm_src_cpu=$(calc %.2f "$(cpu_s "$src_pid") - $src_cpu0")
stop "$vm_pid"
vm_recv_cpu=$(calc %.2f "$(cpu_s "$recv_pid") - $recv_cpu0")
vm_series=$(query "$recv_port" 'count({namespace="bench"})')
((vm_series == series)) || die "vmagent's receiver holds ${vm_series:-no} series at the data's end, want $series"
stop "$recv_pid"
echo "$prog: vmagent: $vm_sent samples, $vm_cpu CPU s, ${vm_wall}s" >&2

# steady TSV: samples per CPU second and per wall second from the first row at or above
# 10% of the final count (start-up and the first, empty windows excluded) to the last.
steady() {
	awk '{ t[NR] = $1; c[NR] = $2; s[NR] = $3 }
		END {
			for (i = 1; i <= NR && s[i] < 0.1 * s[NR]; i++) {}
			if (i >= NR || c[NR] == c[i]) { print "? ?"; exit }
			printf "%.0f %.0f\n", (s[NR] - s[i]) / (c[NR] - c[i]), (s[NR] - s[i]) / (t[NR] - t[i])
		}' "$1"
}
read -r ours_steady_cpu ours_steady_wall < <(steady "$tmp/ours.tsv")
read -r vm_steady_cpu vm_steady_wall < <(steady "$tmp/vmagent.tsv")
ours_rate=$(calc %.0f "$ours_sent / $ours_cpu")
vm_rate=$(calc %.0f "$vm_sent / $vm_cpu")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "?"; else printf "%.2f", a / b }'; }
per1m() { calc %.2f "$1 / $2 * 1e6"; }
goal_met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0 && b + 0 > 0) ? "yes" : "**no**" }'; }

[[ -z ${BENCH_RW_KEEP:-} ]] || cp "$tmp/vmagent.tsv" "$BENCH_RW_KEEP/"
profile_top=""
if [[ -s $tmp/cpu.pprof ]]; then
	# The copier's own functions by cumulative CPU, with the runtime's GC and allocation.
	profile_top=$(go tool pprof -top -cum -nodecount=400 bin/caddy "$tmp/cpu.pprof" 2>/dev/null |
		awk 'n < 45 && (NR <= 5 || /flat%/ || /remotewrite\.|prompb\.|snappy|s2\.|gcBgMarkWorker|runtime\.mallocgc$|Syscall6$|chunkenc\.|proto\.Unmarshal$/) { print; n++ }')
fi
rw_hash=$(cat remotewrite/*.go | sha256sum | cut -c1-12)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$( [[ -z $(git status --porcelain 2>/dev/null) ]] || echo " + uncommitted changes")
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
	echo '<!-- bench-remotewrite.sh:start -->'
	echo '<!-- Everything up to bench-remotewrite.sh:end is rewritten by scripts/bench-remotewrite.sh (make bench). -->'
	echo '## Latest `make bench`: copying series (prom_remote_write vs vmagent)'
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average (1/5/15 min) at the start of each copy: ours $ours_load, vmagent $vm_load"
	echo "- code: git $rev$dirty; remotewrite/*.go sha256 $rw_hash"
	echo "- $(go version); caddy $(bin/caddy version | cut -d' ' -f1) (bin/caddy, \`make build\`)"
	echo "- $(prometheus --version 2>&1 | head -n1) (source and receivers)"
	echo "- vmagent from Debian victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '?')"
	echo
	echo "Data: $series series of tenant \`bench\` (20 families, half counters, half gauges, labels like a node"
	echo "exporter's, about 100 bytes each) and $others of namespace \`other\`, a sample every ${step}s for $minutes minutes"
	echo "ending $((now - end_s))s before the start of the run ($per_series samples per series, $want_samples to copy),"
	echo "generated by \`cmd/benchdata\` and backfilled with \`promtool tsdb create-blocks-from openmetrics\`."
	echo "The tenant's MetricAccess has \`metricIsolation: true\`, \`metrics: [bench_metric_.*]\`, so its selector is"
	echo "\`{__name__=~\"bench_metric_.*\",namespace=\"bench\"}\`. Each copier writes to a fresh receiver Prometheus"
	echo "(\`--web.enable-remote-write-receiver\`), remote write 1.0. Pinning: $pinning."
	echo
	echo "- **prom_remote_write** (remote read, streamed XOR chunks: every raw sample once, with its timestamp):"
	echo "  catches up from \`initial_lookback\` ago window by window (\`max_window $max_window\`, \`batch_size $batch_size\`,"
	echo "  other settings default); measured from the start of the caddy process until \`copied_until\`"
	echo "  (GET /prom_tenant/copiers) passes the data's end. Verified: the copier acknowledged $ours_sent"
	echo "  samples and the receiver holds $ours_got (\`count_over_time\` per family), none of namespace \`other\`."
	echo "- **vmagent** (cannot remote-read): scrapes \`/federate?match[]=<the same selector>\` every 10s with"
	echo "  \`honor_labels\` and \`honor_timestamps\`, remote-writes to its receiver; measured from the start of"
	echo "  the process until it has written $vm_rows samples (a reading counts only with nothing queued and a 2xx"
	echo "  for every block formed; the count includes vmagent's 6 own series per scrape). Verified: no write"
	echo "  errors, the receiver holds all $vm_series series at the data's end. $vm_scrapes scrapes, $vm_failed failed$( ((vm_failed == 0)) ||
		echo " (vmagent then writes staleness markers for the target's series, counted as samples)")."
	echo
	echo "\"per core\": samples acknowledged ÷ CPU seconds (utime + stime from /proc/<pid>/stat) of the copier"
	echo "process. \"whole run\" counts everything from process start; \"steady\" counts from the first reading at"
	echo "10% of the samples to the last (start-up, empty windows, the first read left out). Peak RSS is VmHWM."
	echo "Both are read every 0.5s (the copier's status, vmagent's /metrics); the copier's CPU also pays for the"
	echo "CPU and allocation profiles of ${profile_seconds}s."
	echo
	echo '| copier | samples written | CPU s | samples/s per core, whole run | per core, steady | wall s | samples/s wall, steady | peak RSS (MiB) | source CPU s per 1M samples | receiver CPU s per 1M samples |'
	echo '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
	echo "| prom_remote_write | $ours_sent | $ours_cpu | $ours_rate | $ours_steady_cpu | $ours_wall | $ours_steady_wall | $ours_hwm | $(per1m "$ours_src_cpu" "$ours_sent") | $(per1m "$ours_recv_cpu" "$ours_sent") |"
	echo "| vmagent (federate) | $vm_sent | $vm_cpu | $vm_rate | $vm_steady_cpu | $vm_wall | $vm_steady_wall | $vm_hwm | $(per1m "$vm_src_cpu" "$vm_sent") | $(per1m "$vm_recv_cpu" "$vm_sent") |"
	echo
	echo "- **prom_remote_write ÷ vmagent, samples/s per core: $(ratio "$ours_steady_cpu" "$vm_steady_cpu") steady, $(ratio "$ours_rate" "$vm_rate") whole run.** Goal (issue 15): at least 1.50 — met: $(goal_met "$ours_steady_cpu" "$(calc %.0f "$vm_steady_cpu * 1.5")")."
	echo "- Memory: idle caddy (same config, MetricAccess not copying) peaks at $idle_hwm MiB RSS after 5s ($idle_cpu CPU s of start-up);"
	echo "  copying $series series it peaks at $ours_hwm MiB, so about $(calc %.0f "($ours_hwm - $idle_hwm) * 100000 / $series") MiB per 100k copied series. vmagent: $vm_hwm MiB."
	echo "- Wall clock is not a fair comparison: vmagent's rate is set by its scrape interval and by how fast"
	echo "  the source renders /federate (about 13 MB of text per scrape here); prom_remote_write sends a"
	echo "  window while it reads the next, one write request in flight."
	echo
	echo "The read paths are not the same, so neither is the copy. /federate answers with the latest sample of"
	echo "each series at the time of the scrape, as text (about 13 MB for these 100k series, gzip on the wire):"
	echo "vmagent's copy has one sample per series per scrape, misses every sample between two scrapes and, as"
	echo "here where the source gets no new samples, writes the same sample again on every scrape (the receiver"
	echo "keeps it once). Remote read returns every raw sample once, with its original timestamp, in XOR chunks,"
	echo "one frame per series per read; the copier checks each series against the policy, orders the window by"
	echo "(time, series), and saves its progress around every batch. Per sample written, both decode, build a"
	echo "remote-write sample with its full label set, encode protobuf, snappy-compress and send, so samples per"
	echo "CPU second compares the two pipelines; it does not say that federation copies the same data (it does"
	echo "not). vmctl 1.79 (same package) has no remote-read mode and writes only to VictoriaMetrics' import API,"
	echo "so it cannot make this copy into a Prometheus receiver by itself."
	echo
	echo "prom_remote_write's cost per sample depends on how many samples of a series one read returns: much of"
	echo "its work is per series per read (a remote-read frame, its labels, the policy check). Here a"
	echo "\`max_window\` of $max_window holds $((window_s / step)) samples per series ($((series * window_s / step)) per window; the default"
	echo "\`max_pending_samples\` is 500000). The default 5m window holds $((series * 300 / step)) here$( ((series * 300 / step <= 500000)) ||
		printf '%s\n%s' ", more than max_pending_samples," "so each pass reads it again in halves until it fits"). A steady state with the default 30s"
	echo "interval reads $((30 / step)) samples per series per pass."
	echo
	echo 'Caddyfile (ports are picked per run):'
	echo
	echo '```'
	sed "s|$tmp/|\$tmp/|g" "$tmp/ours.Caddyfile"
	echo '```'
	echo
	echo "MetricAccess (\`\$tmp/tenants/bench.yaml\`; the idle baseline has \`enabled: false\`):"
	echo
	echo '```yaml'
	cat "$tmp/tenants/bench.yaml"
	echo '```'
	echo
	echo 'vmagent:'
	echo
	echo '```'
	echo "${vm_cmd[*]}" | sed "s|$tmp/|\$tmp/|g"
	sed "s|$tmp/|\$tmp/|g" "$tmp/vmagent.yml"
	echo '```'
	if [[ -n $profile_top ]]; then
		echo
		echo "<details><summary>CPU profile of prom_remote_write (${profile_seconds}s from the first acknowledged batch; Caddy admin /debug/pprof/profile)</summary>"
		echo
		echo '`go tool pprof -top -cum`, the copier'"'"'s functions, encoding, GC and allocation only:'
		echo
		echo '```'
		echo "$profile_top"
		echo '```'
		echo
		echo '</details>'
	fi
	echo '<!-- bench-remotewrite.sh:end -->'
} >"$tmp/section.md"

write_section bench-remotewrite.sh "$tmp/section.md"
