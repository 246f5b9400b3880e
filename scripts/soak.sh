#!/usr/bin/env bash
# make soak: sustained mixed load (instant, range, series, label values, POST) from
# cmd/soakload through bin/caddy with prom_tenant in front of a real Prometheus, for
# SOAK_DURATION seconds (default 300), with the Caddy process's RSS, goroutines and open
# FDs sampled every SOAK_SAMPLE seconds (default 5), and these faults on the way:
#   - at 20%: the upstream Prometheus is killed (-9) for SOAK_OUTAGE seconds (default 20)
#     and restarted on the same data: answers are JSON 502/503, then recover;
#   - at 50%: the tenant's manifest file is truncated and written again 2 s later, in place;
#   - at 70%: `caddy reload --force`.
# Then, after the load, one of two backends is killed under load (SOAK_FAILOVER_CONCURRENCY
# workers each, default 8), behind two sites that differ only in lb_try_duration (the
# measurement behind the README's advice).
#
# Prints a summary (requests, errors by kind, RSS/goroutines/FDs at start, peak and end)
# and fails if any error answer was not Prometheus's JSON envelope, if any answer named an
# upstream's address, if the tenant was refused while its file was rewritten, or if
# goroutines or FDs at the end (after the load, idle) are far above the start.
# Not part of make test. Other work on the machine slows it, but changes no check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${SOAK_DURATION:-300}
concurrency=${SOAK_CONCURRENCY:-4}
sample_every=${SOAK_SAMPLE:-5}
outage=${SOAK_OUTAGE:-20}
failover_concurrency=${SOAK_FAILOVER_CONCURRENCY:-8}
((duration >= 30)) || { echo "soak: SOAK_DURATION must be at least 30 (seconds)" >&2; exit 2; }

scripts/install-deps.sh >&2
make --no-print-directory build >&2

prog=soak
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

go build -o "$tmp/soakload" ./cmd/soakload

# Data: the demo's namespaces over the last hour, one copy per Prometheus.
end=$(date -u +%Y-%m-%dT%H:%M:00Z)
start=$(date -u -d "$end - 1 hour" +%Y-%m-%dT%H:%M:%SZ)
go run ./cmd/exampledata -start "$start" -end "$end" >"$tmp/data.om"
promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/data1" >/dev/null
cp -r "$tmp/data1" "$tmp/data2"
printf 'global:\n  scrape_interval: 15s\n' >"$tmp/prometheus.yml"

declare -A prom_pid prom_port
# start_prom N: Prometheus N (1 or 2) on its port with its data, until ready.
start_prom() {
	local n=$1
	prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data$n" \
		--web.listen-address="127.0.0.1:${prom_port[$n]}" >>"$tmp/prometheus$n.log" 2>&1 &
	prom_pid[$n]=$!
	pids+=($!)
	wait_for "Prometheus $n" "${prom_pid[$n]}" "$tmp/prometheus$n.log" 60 curl -fsS "http://127.0.0.1:${prom_port[$n]}/-/ready"
}
for n in 1 2; do
	free_port
	prom_port[$n]=$port
	start_prom "$n"
done
p1=127.0.0.1:${prom_port[1]} p2=127.0.0.1:${prom_port[2]}

mkdir -p "$tmp/tenants"
cp examples/tenants/*.yaml "$tmp/tenants/"
tenant_file=$tmp/tenants/team-a.yaml

free_port
admin=127.0.0.1:$port
free_port
site=$port
free_port
lb_plain=$port
free_port
lb_try=$port
cat >"$tmp/Caddyfile" <<CADDYFILE
{
	admin $admin
	prom_tenancy {
		directory $tmp/tenants
	}
}

# The soak: prom_tenant in front of one Prometheus.
:$site {
	prom_tenant
	reverse_proxy $p1
}

# Two backends, passive health checks, no retries.
:$lb_plain {
	prom_tenant
	reverse_proxy $p1 $p2 {
		lb_policy round_robin
		fail_duration 30s
	}
}

# The same, retrying another backend for up to 3 s.
:$lb_try {
	prom_tenant
	reverse_proxy $p1 $p2 {
		lb_policy round_robin
		fail_duration 30s
		lb_try_duration 3s
	}
}
CADDYFILE
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	bin/caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
caddy_pid=$!
pids+=($!)
caddy_loaded() { curl -fsS "http://$admin/config/" | grep -qv '^null$'; }
wait_for Caddy "$caddy_pid" "$tmp/caddy.log" 30 caddy_loaded
curl -fsS -H 'X-Tenant-Namespace: team-a' "http://127.0.0.1:$site/api/v1/query?query=up" |
	jq -e '.data.result | length > 0' >/dev/null || die "team-a sees no series through the proxy"

# sample PHASE: one line of samples.tsv: time, phase, RSS (KiB), goroutines, open FDs.
sample() {
	local rss gor fds
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$caddy_pid/status" 2>/dev/null || true)
	gor=$({ curl -fsS "http://$admin/debug/pprof/goroutine?debug=1" || true; } | awk 'NR == 1 {print $NF}')
	fds=$(find "/proc/$caddy_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)
	[[ -n $rss && -n $gor ]] || return 0 # mid-reload: the next sample will do
	printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%s)" "$1" "$rss" "$gor" "$fds" >>"$tmp/samples.tsv"
}
sample start

# The load, and the sampler, in the background.
leak="$p1,$p2,dial tcp"
"$tmp/soakload" -url "http://127.0.0.1:$site" -concurrency "$concurrency" -duration "${duration}s" \
	-leak "$leak" -events "$tmp/events.tsv" -summary "$tmp/summary.json" 2>"$tmp/soakload.log" &
load_pid=$!
pids+=($!)
(while kill -0 "$load_pid" 2>/dev/null; do sleep "$sample_every"; sample load; done) &
sampler_pid=$!
pids+=($!)
t0=$(date +%s)
at() { # at FRACTION: sleep until that part of the run
	local when=$((t0 + duration * $1 / 100))
	while (($(date +%s) < when)); do sleep 0.5; done
}
now_ms() { date +%s%3N; }

at 20
echo "soak: killing the upstream for ${outage}s" >&2
kill_ms=$(now_ms)
kill -9 "${prom_pid[1]}"
{ wait "${prom_pid[1]}"; } 2>/dev/null || true
sleep "$outage"
restart_ms=$(now_ms)
start_prom 1
ready_ms=$(now_ms)

at 50
echo "soak: truncating the tenant's file and writing it again" >&2
cp "$tenant_file" "$tmp/team-a.saved"
truncate_ms=$(now_ms)
: >"$tenant_file"
sleep 2
cat "$tmp/team-a.saved" >"$tenant_file"
rewritten_ms=$(now_ms)

at 70
echo "soak: caddy reload" >&2
reload_ms=$(now_ms)
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	bin/caddy reload --force --config "$tmp/Caddyfile" --adapter caddyfile --address "$admin" 2>>"$tmp/reload.log"
reloaded_ms=$(now_ms)

wait "$load_pid" || die "soakload failed: $(cat "$tmp/soakload.log")"
wait "$sampler_pid" 2>/dev/null || true
sleep 10 # idle: connections to the clients are closed, requests are done
sample end

# events_between FROM_MS TO_MS: the failed requests in that time, by kind.
events_between() {
	awk -F'\t' -v a="$1" -v b="$2" '$1 >= a && $1 <= b {n[$2]++} END {for (k in n) printf "      %6d  %s\n", n[k], k; if (length(n) == 0) print "           0  failed"}' \
		"$tmp/events.tsv" 2>/dev/null | sort -rn
}
last_upstream_error() { # FROM_MS TO_MS: time of the last 502/503/504 answer between them, or empty
	awk -F'\t' -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 ~ /^50[234] / {t = $1} END {if (t) print t}' "$tmp/events.tsv" 2>/dev/null
}

# The failover measurement: 30 s of load on both two-backend sites at once, Prometheus 2
# killed after 10 s.
echo "soak: failover: killing one of two backends under load" >&2
for s in plain try; do
	port_var=lb_$s
	"$tmp/soakload" -url "http://127.0.0.1:${!port_var}" -concurrency "$failover_concurrency" -duration 30s -leak "$leak" \
		-summary "$tmp/lb-$s.json" 2>>"$tmp/soakload.log" &
	eval "lb_${s}_pid=\$!"
	pids+=($!)
done
sleep 10
kill -9 "${prom_pid[2]}"
{ wait "${prom_pid[2]}"; } 2>/dev/null || true
wait "$lb_plain_pid" || die "soakload failed: $(cat "$tmp/soakload.log")"
wait "$lb_try_pid" || die "soakload failed: $(cat "$tmp/soakload.log")"

# The summary.
col() { awk -F'\t' -v c="$1" -v p="$2" '$2 == p {print $c}' "$tmp/samples.tsv" | head -1; }
peak() { awk -F'\t' -v c="$1" 'NR == 1 || $c > m {m = $c} END {print m}' "$tmp/samples.tsv"; }
fmt_mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
s=$tmp/summary.json
requests=$(jq .requests "$s") ok=$(jq .ok "$s") non_json=$(jq .non_json "$s") leaks=$(jq .leaks "$s")
g0=$(col 4 start) g1=$(peak 4) g2=$(col 4 end)
f0=$(col 5 start) f1=$(peak 5) f2=$(col 5 end)
r0=$(col 3 start) r1=$(peak 3) r2=$(col 3 end)
last=$(last_upstream_error "$restart_ms" "$truncate_ms")
recovery=$(awk -v l="${last:-0}" -v r="$ready_ms" 'BEGIN {d = (l - r) / 1000; if (d <= 0) printf "%.2f s before", -d; else printf "%.2f s after", d}')
refused=$(awk -F'\t' -v a="$truncate_ms" -v b="$((rewritten_ms + 3000))" '$1 >= a && $1 <= b && $2 ~ /^403 / {n++} END {print n + 0}' "$tmp/events.tsv" 2>/dev/null || echo 0)

{
	echo "soak: $(date -u +%Y-%m-%dT%H:%MZ), ${duration}s, concurrency $concurrency, $(nproc) CPUs, $(bin/caddy version | cut -d' ' -f1)"
	echo "  requests: $requests, ok: $ok, failed: $((requests - ok)) ($(awk -v r="$requests" 'BEGIN {printf "%.0f", r / '"$duration"'}')/s)"
	echo "  failed, by kind:"
	jq -r '.by_kind | to_entries | sort_by(-.value)[] | "      \(.value | tostring | (" " * (6 - length)) + .)  \(.key)"' "$s"
	echo "  upstream killed for ${outage}s: failures from the kill to 5 s after it was ready:"
	events_between "$kill_ms" "$((ready_ms + 5000))"
	echo "    restart took $((ready_ms - restart_ms)) ms to ready; the last failure came $recovery it was ready"
	echo "  tenant file truncated and rewritten 2 s later: $refused refused (403) from the truncation to 3 s after the rewrite"
	echo "  caddy reload ($((reloaded_ms - reload_ms)) ms): failures from the reload to 2 s after it:"
	events_between "$reload_ms" "$((reloaded_ms + 2000))"
	echo "  non-JSON error answers: $non_json; answers naming an upstream: $leaks"
	printf '  %-12s %12s %12s %12s\n' "" start peak end
	printf '  %-12s %12s %12s %12s\n' RSS "$(fmt_mib "$r0")" "$(fmt_mib "$r1")" "$(fmt_mib "$r2")"
	printf '  %-12s %12s %12s %12s\n' goroutines "$g0" "$g1" "$g2"
	printf '  %-12s %12s %12s %12s\n' "open FDs" "$f0" "$f1" "$f2"
	for s2 in plain try; do
		label="two backends, passive health checks (fail_duration 30s), no lb_try_duration"
		[[ $s2 == plain ]] || label="the same with lb_try_duration 3s"
		echo "  failover, $label: $(jq .requests "$tmp/lb-$s2.json") requests at concurrency $failover_concurrency, one backend killed -9 after 10 s of 30:"
		jq -r '.by_kind | to_entries | sort_by(-.value)[] | "      \(.value | tostring | (" " * (6 - length)) + .)  \(.key)"' "$tmp/lb-$s2.json"
		[[ $(jq '.requests - .ok' "$tmp/lb-$s2.json") != 0 ]] || echo "           0  failed"
	done
} | tee "$tmp/report.txt"
[[ -z ${SOAK_REPORT:-} ]] || cp "$tmp/report.txt" "$SOAK_REPORT"

# The checks.
fail=0
check() { # CONDITION MESSAGE
	if ! eval "$1"; then
		echo "soak: FAIL: $2" >&2
		fail=1
	fi
}
lb_bad=$(jq -s 'map(.non_json + .leaks) | add' "$tmp/lb-plain.json" "$tmp/lb-try.json")
check "((non_json == 0 && lb_bad == 0))" "error answers that are not Prometheus's JSON envelope (examples: $(jq -c .examples "$s"))"
check "((leaks == 0))" "answers that name an upstream's address (examples: $(jq -c .examples "$s"))"
check "((refused == 0))" "the tenant was refused while its manifest file was rewritten"
# After the load the clients are gone: what is left is the idle pool to the upstreams
# (two goroutines per connection) and the servers. Far above the start is a leak.
check "((g2 <= 2 * g0 + 4 * concurrency))" "goroutines grew: $g0 at the start, $g2 at the end"
check "((f2 <= 2 * f0 + 2 * concurrency))" "open FDs grew: $f0 at the start, $f2 at the end"
check "((ok > 0))" "no request succeeded"
((fail == 0)) || exit 1
echo "soak: passed" >&2
