#!/usr/bin/env bash
# make bench: the scale-out chain (issue 16). The same two Grafana requests (a 1 h range
# panel, an instant query) sent to Prometheus directly, to Thanos Query directly, to Thanos
# Query Frontend directly, and through prom_tenant → Query Frontend → Query, with the
# frontend's results cache off (every request is computed: "cold") and on and warm. Writes
# the marked section bench-chain.sh of docs/BENCHMARKS.md.
#
# wrk runs on CPU 0; Prometheus, the Thanos components and Caddy share CPU 1, as in
# scripts/bench.sh, so the cost of each hop shows as lost throughput.
#
#   BENCH_DURATION   seconds per run (default 3)
#   BENCH_ROUNDS     rounds of runs of every target in turn (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
make --no-print-directory build
thanos=$(scripts/build-thanos.sh)
# Prometheus 3, as in TestThanosChain: Thanos v0.42's engine is Prometheus 3's (left-open
# range selectors), so its answers can equal Prometheus's only then.
prometheus=$(scripts/build-prometheus3.sh)

prog=bench-chain
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

bench_pinning
# Data and Prometheus: scripts/bench.sh's, with an external label, which the sidecar
# requires; Query drops it as a replica label, so its answers carry exactly Prometheus's
# labels.
bench_prometheus "$prometheus" $'  external_labels:\n    replica: a\n'

# thanos_run NAME ARGS...: a thanos component on fresh ports (http_port, grpc_port), its PID
# in pids; waits for /-/ready.
thanos_run() {
	local name=$1
	shift
	free_port
	http_port=$port
	free_port
	grpc_port=$port
	local args=("$@" --http-address="127.0.0.1:$http_port" --log.level=warn)
	[[ $1 == query-frontend ]] || args+=(--grpc-address="127.0.0.1:$grpc_port")
	"${pin_servers[@]}" "$thanos" "${args[@]}" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
	wait_for "thanos $name" "${pids[-1]}" "$tmp/$name.log" 60 curl -fsS "http://127.0.0.1:$http_port/-/ready"
}
thanos_run sidecar sidecar --prometheus.url="http://127.0.0.1:$prom_port"
sidecar_grpc=$grpc_port
thanos_run query query --endpoint-strict="127.0.0.1:$sidecar_grpc" --query.replica-label=replica
query_port=$http_port query_pid=${pids[-1]}
query_sees_all() { curl -fsS "http://127.0.0.1:$query_port/api/v1/query?query=count(up)" | jq -e '.data.result[0].value[1] | tonumber > 0'; }
wait_for "thanos query (the sidecar's series)" "$query_pid" "$tmp/query.log" 60 query_sees_all
cache='type: IN-MEMORY
config:
  max_size: 256MB'
# The frontend's defaults otherwise (split interval 24h, max freshness 1m): the range
# panel ends 5 minutes ago, so its whole range is cacheable.
# Thanos's advice for a downstream on localhost: keep up to 100 idle connections to it.
tripper='max_idle_conns_per_host: 100'
thanos_run frontend-cold query-frontend --query-frontend.downstream-url="http://127.0.0.1:$query_port" \
	--query-frontend.downstream-tripper-config="$tripper"
cold_port=$http_port cold_pid=${pids[-1]}
thanos_run frontend-warm query-frontend --query-frontend.downstream-url="http://127.0.0.1:$query_port" \
	--query-frontend.downstream-tripper-config="$tripper" \
	--query-range.response-cache-config="$cache"
warm_port=$http_port warm_pid=${pids[-1]}

bench_tenant

# One Caddy: prom_tenant in front of each frontend, and in front of a site that echoes the
# request it gets, to learn what prom_tenant sends upstream (what the direct targets are sent).
free_port
admin_port=$port
free_port
ptc_port=$port
free_port
ptw_port=$port
free_port
cap_port=$port
free_port
echo_port=$port
cat >"$tmp/Caddyfile" <<CADDYFILE
{
	admin 127.0.0.1:$admin_port
	prom_tenancy {
		directory $tmp/tenants
	}
}

:$ptc_port {
	prom_tenant {
		backend thanos
	}
	reverse_proxy 127.0.0.1:$cold_port
}

:$ptw_port {
	prom_tenant {
		backend thanos
	}
	reverse_proxy 127.0.0.1:$warm_port
}

:$cap_port {
	prom_tenant
	reverse_proxy 127.0.0.1:$echo_port
}

:$echo_port {
	respond "{http.request.method} {http.request.uri}"
}
CADDYFILE
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	"${pin_servers[@]}" bin/caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
pids+=($!)
caddy_pid=${pids[-1]}
caddy_loaded() { curl -fsS "http://127.0.0.1:$admin_port/config/" | grep -qv '^null$'; }
wait_for Caddy "$caddy_pid" "$tmp/caddy.log" 30 caddy_loaded

uri() { jq -rn --arg v "$1" '$v | @uri'; }

# The workloads, as Grafana sends them: the range panel of scripts/bench.sh, its hour ending
# 5 minutes before the data does (past the frontend's max freshness), and an instant query.
q_range='sum by (pod) (rate(http_requests_total{job="api"}[5m]))'
w_name=("range panel, 1 h, step 15s" "instant query")
w_path=(
	"/api/v1/query_range?query=$(uri "$q_range")&start=$((t - 3900))&end=$((t - 300))&step=15"
	"/api/v1/query?query=$(uri 'up{job="api"}')&time=$((t - 300))"
)
w_check=(
	'.data.result | length == 10 and all(.values | length == 241)'
	'.data.result | length == 10 and all(.metric.namespace == "tenant-00")'
)
names=("Prometheus" "Thanos Query" "Query Frontend, no cache" "prom_tenant → Frontend, no cache" "Query Frontend, cache warm" "prom_tenant → Frontend, cache warm")
base=("http://127.0.0.1:$prom_port" "http://127.0.0.1:$query_port" "http://127.0.0.1:$cold_port"
	"http://127.0.0.1:$ptc_port" "http://127.0.0.1:$warm_port" "http://127.0.0.1:$ptw_port")
tenant_of=("" "" "" "$tenant" "" "$tenant")
pid_of=("$prom_pid" "$query_pid" "$cold_pid" "$caddy_pid" "$warm_pid" "$caddy_pid")

# What prom_tenant sends upstream: the direct targets are sent that, so every target
# answers the same query.
up_uri=()
for w in "${!w_name[@]}"; do
	first=$(curl -fsS -H "X-Tenant-Namespace: $tenant" "http://127.0.0.1:$cap_port${w_path[w]}") ||
		die "${w_name[w]}: capturing the upstream request failed"
	up_uri[w]=${first#GET }
done
url_of() { # W P
	if [[ -n ${tenant_of[$2]} ]]; then echo "${base[$2]}${w_path[$1]}"; else echo "${base[$2]}${up_uri[$1]}"; fi
}

# Every target gives the same answer (series sorted), and the expected one.
norm='.data.result | sort_by(.metric)'
for w in "${!w_name[@]}"; do
	for p in "${!names[@]}"; do
		hdr=(-H "Accept-Encoding: gzip")
		[[ -z ${tenant_of[p]} ]] || hdr+=(-H "X-Tenant-Namespace: ${tenant_of[p]}")
		curl -fsS --compressed "${hdr[@]}" "$(url_of "$w" "$p")" >"$tmp/answer.$p" || die "${w_name[w]}: ${names[p]} failed"
		jq -e "${w_check[w]}" "$tmp/answer.$p" >/dev/null || die "${w_name[w]}: ${names[p]}: unexpected answer: $(head -c 2000 "$tmp/answer.$p")"
		jq -S "$norm" "$tmp/answer.$p" >"$tmp/norm.$p"
		((p == 0)) || cmp -s "$tmp/norm.0" "$tmp/norm.$p" ||
			die "${w_name[w]}: ${names[p]} answers differently from Prometheus: $(diff "$tmp/norm.0" "$tmp/norm.$p" | head -20)"
	done
done

# wrk_cmd W P DURATION
wrk_cmd() {
	local cmd=("${pin_load[@]}" wrk -t1 -c4 -d"$3" --latency -H "Accept-Encoding: gzip")
	[[ -z ${tenant_of[$2]} ]] || cmd+=(-H "X-Tenant-Namespace: ${tenant_of[$2]}")
	cmd+=("$(url_of "$1" "$2")")
	printf '%q ' "${cmd[@]}"
}
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
		if (f < 0) { print "?"; exit }
		printf "%.3f", n * f
	}'
}
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# all_ticks: CPU 1's servers together (Prometheus, the Thanos components, Caddy).
all_ticks() {
	local s=0 pid
	for pid in "${pids[@]}"; do s=$((s + $(cpu_ticks "$pid"))); done
	echo "$s"
}
hz=$(getconf CLK_TCK)
# query_requests: the requests Thanos Query has answered (range and instant), to show
# what reached it behind each target.
query_requests() {
	curl -fsS "http://127.0.0.1:$query_port/metrics" |
		awk 'index($0, "http_requests_total{") == 1 && /handler="query(_range)?"/ { s += $NF } END { printf "%d", s }'
}

duration=${BENCH_DURATION:-3}
rounds=${BENCH_ROUNDS:-3}
rps=() p50=() p99=() reqs=() ticks=() downstream=()
for w in "${!w_name[@]}"; do
	for p in "${!names[@]}"; do
		k=$((w * ${#names[@]} + p))
		rps[k]="" p50[k]="" p99[k]="" reqs[k]=0 ticks[k]=0 downstream[k]=0
	done
	for ((r = 0; r < rounds; r++)); do
		for p in "${!names[@]}"; do
			k=$((w * ${#names[@]} + p))
			echo "bench-chain: ${w_name[w]}: round $((r + 1)): ${names[p]}" >&2
			eval "$(wrk_cmd "$w" "$p" 1s)" >/dev/null # warm-up (and, where cached, the cache)
			c0=$(all_ticks) d0=$(query_requests)
			eval "$(wrk_cmd "$w" "$p" "${duration}s")" >"$tmp/wrk.$k.$r"
			c1=$(all_ticks) d1=$(query_requests)
			downstream[k]=$((downstream[k] + d1 - d0))
			! grep -q 'Non-2xx' "$tmp/wrk.$k.$r" || die "${w_name[w]}: ${names[p]}: non-2xx answers: $(cat "$tmp/wrk.$k.$r")"
			rps[k]+=" $(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.$k.$r")"
			p50[k]+=" $(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.$k.$r")")"
			p99[k]+=" $(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.$k.$r")")"
			reqs[k]=$((reqs[k] + $(awk '/ requests in / {print $1}' "$tmp/wrk.$k.$r")))
			ticks[k]=$((ticks[k] + c1 - c0))
		done
	done
done

# Cache counters of the warm frontend, to show what "warm" was.
warm_metrics=$(curl -fsS "http://127.0.0.1:$warm_port/metrics")
cache_counter() { awk -v n="$1" 'index($0, n "{") == 1 && /tripperware="query_range"/ { s += $NF } END { printf "%d", s }' <<<"$warm_metrics"; }
warm_hits=$(cache_counter cortex_cache_hits_total)
warm_keys=$(cache_counter cortex_cache_fetched_keys_total)

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
table() {
	local w p k k0 m0 m
	echo '| workload | target | req/s (median) | ÷ Prometheus | ÷ the same without prom_tenant | p50 ms | p99 ms | CPU 1 µs/req (all servers) | requests reaching Query per request |'
	echo '|---|---|---:|---:|---:|---:|---:|---:|---:|'
	for w in "${!w_name[@]}"; do
		k0=$((w * ${#names[@]}))
		# shellcheck disable=SC2086 # word splitting of the lists is meant
		m0=$(median ${rps[k0]})
		for p in "${!names[@]}"; do
			k=$((k0 + p))
			# shellcheck disable=SC2086
			m=$(median ${rps[k]})
			local vs=""
			if ((p == 3 || p == 5)); then
				# shellcheck disable=SC2086
				vs=$(ratio "$m" "$(median ${rps[k - 1]})")
			fi
			# shellcheck disable=SC2086
			echo "| ${w_name[w]} | ${names[p]} | $m | $(ratio "$m" "$m0") | $vs | $(median ${p50[k]}) | $(median ${p99[k]}) | $(awk -v t="${ticks[k]}" -v n="${reqs[k]}" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }') | $( ((p == 0)) && echo - || awk -v d="${downstream[k]}" -v n="${reqs[k]}" 'BEGIN { printf "%.2f", d / n }') |"
		done
	done
}

{
	echo '<!-- bench-chain.sh:start -->'
	echo '<!-- Everything up to bench-chain.sh:end is rewritten by scripts/bench-chain.sh (make bench). -->'
	echo '## Latest `make bench`: the scale-out chain'
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- machine: $(nproc) CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
	echo "- Prometheus $(basename "$prometheus" | sed 's/^prometheus-//') (the module version of Prometheus 3, \`scripts/build-prometheus3.sh\`); $("$thanos" --version 2>&1 | head -n1) (\`scripts/build-thanos.sh\`)"
	echo "- caddy: $(bin/caddy version) (bin/caddy, \`make build\`)"
	echo
	echo "One Prometheus (cmd/httpbenchdata's 20,000 series) with a Thanos sidecar; Thanos Query over"
	echo "the sidecar; two Query Frontends in front of Query, one without a results cache (every"
	echo "request computed: the cold cache) and one with the in-memory results cache (defaults"
	echo "otherwise: split interval 24h; \`max_idle_conns_per_host: 100\` to Query, as Thanos advises for a local"
	echo "downstream); prom_tenant (\`backend thanos\`) in front of each frontend."
	echo "The tenant sees 1/20 of the series. The direct targets are sent the request prom_tenant"
	echo "sends upstream, so every target answers the same query; every answer was checked equal to"
	echo "Prometheus's before the runs. All servers on CPU 1 (\`taskset -c 1\`), wrk on CPU 0, 4"
	echo "connections; $rounds rounds of a ${duration}s run of each target in turn after a 1s warm-up (which also"
	echo "warms the cache); medians. The warm frontend's range-query cache: $warm_hits hits of $warm_keys keys looked up."
	echo "Query Frontend caches range queries only: its instant-query rows show the hop's cost."
	echo
	table
	echo
	echo 'Caddyfile (ports are picked at random per run):'
	echo
	echo '```'
	sed "s|$tmp/||" "$tmp/Caddyfile"
	echo '```'
	echo '<!-- bench-chain.sh:end -->'
} >"$tmp/section.md"

table >&2
write_section bench-chain.sh "$tmp/section.md"
