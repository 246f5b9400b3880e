#!/usr/bin/env bash
# make bench: six Grafana workloads (issue 15's table) through Caddy's plain reverse_proxy,
# prom-label-proxy and prom_tenant + reverse_proxy in front of one Prometheus, with each
# proxy's and Prometheus's CPU per request; then the Go benchmarks, and the bench/ module's
# comparison of the PromQL enforcer with prom-label-proxy's. Writes the marked section of
# docs/BENCHMARKS.md (the rest of that file is left as it is).
#
# wrk runs on core 0; Prometheus and the proxies share core 1, so a proxy's CPU cost shows
# up as lost throughput, as in the comparison in ANCHORS.md.
#
#   BENCH_DURATION   seconds per run (default 3)
#   BENCH_ROUNDS     rounds of runs of the three proxies in turn (default 3)
#   BENCH_HTTP_ONLY  if set: print the HTTP table and stop (no Go benchmarks, no docs)
#   BENCH_PROFILE    a directory: CPU profiles of Caddy during each run of reverse_proxy and of
#                    prom_tenant (<workload>.<round>.<proxy>.pprof), to compare with -diff_base
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
make --no-print-directory build
plp=$(scripts/build-prom-label-proxy.sh)

prog=bench
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

bench_pinning
# Data: 20 namespaces of 1,000 series; the tenant below sees 1/20.
bench_prometheus prometheus

# The tenant: every series of its namespace, which is what prom-label-proxy enforces with
# -label namespace.
bench_tenant

# One Caddy: plain reverse_proxy; prom_tenant in front of reverse_proxy; and prom_tenant in
# front of a site that echoes the request it gets, to learn what prom_tenant sends upstream.
free_port
admin_port=$port
free_port
rp_port=$port
free_port
pt_port=$port
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

:$rp_port {
	reverse_proxy 127.0.0.1:$prom_port
}

:$pt_port {
	prom_tenant
	reverse_proxy 127.0.0.1:$prom_port
}

:$cap_port {
	prom_tenant
	reverse_proxy 127.0.0.1:$echo_port
}

:$echo_port {
	respond "{http.request.method} {http.request.uri}
{http.request.body}"
}
CADDYFILE
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	"${pin_servers[@]}" bin/caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
pids+=($!)
caddy_pid=${pids[-1]}
caddy_loaded() { curl -fsS "http://127.0.0.1:$admin_port/config/" | grep -qv '^null$'; }
wait_for Caddy "$caddy_pid" "$tmp/caddy.log" 30 caddy_loaded

# prom-label-proxy, enforcing namespace=<the X-Tenant-Namespace header>.
free_port
plp_port=$port
"${pin_servers[@]}" "$plp" -insecure-listen-address "127.0.0.1:$plp_port" -upstream "http://127.0.0.1:$prom_port" \
	-label namespace -header-name X-Tenant-Namespace -enable-label-apis >"$tmp/plp.log" 2>&1 &
pids+=($!)
plp_pid=${pids[-1]}
wait_for prom-label-proxy "$plp_pid" "$tmp/plp.log" 30 curl -fsS -H "X-Tenant-Namespace: $tenant" \
	"http://127.0.0.1:$plp_port/api/v1/query?query=vector(1)"

uri() { jq -rn --arg v "$1" '$v | @uri'; }

# The workloads, as Grafana sends them. The 4 KB query is a panel with a multi-value
# variable expanded into a regex of pod names.
regex="api-0|api-1|api-2|api-3|api-4|api-5|api-6|api-7|api-8|api-9"
for ((k = 0; ${#regex} < 3950; k++)); do regex+="|api-canary-$k"; done
q_long="sum by (pod) (rate(http_requests_total{job=\"api\",pod=~\"$regex\"}[5m]))"
q_range='sum by (pod) (rate(http_requests_total{job="api"}[5m]))'
hour="start=$((t - 3600))&end=$t"
w_name=("instant, concurrency 1" "instant, concurrency 4" "range panel, 1 h" "series with match[]" "label __name__ values" "4 KB query by POST")
w_conc=(1 4 4 4 4 4)
w_method=(GET GET GET GET GET POST)
w_path=(
	"/api/v1/query?query=$(uri 'up{job="api"}')&time=$t"
	"/api/v1/query?query=$(uri 'up{job="api"}')&time=$t"
	"/api/v1/query_range?query=$(uri "$q_range")&$hour&step=15"
	"/api/v1/series?match%5B%5D=$(uri 'up{job="api"}')&$hour"
	"/api/v1/label/__name__/values?$hour"
	"/api/v1/query"
)
w_body=("" "" "" "" "" "query=$(uri "$q_long")&time=$t")
# jq checks of each workload's answer (after the comparison between proxies).
w_check=(
	'.data.result | length == 10 and all(.metric.namespace == "tenant-00")'
	'.data.result | length == 10 and all(.metric.namespace == "tenant-00")'
	'.data.result | length == 10 and all(.values | length == 241)'
	'.data | length == 10 and all(.namespace == "tenant-00")'
	'.data | length == 47'
	'.data.result | length == 10'
)
names=(reverse_proxy prom-label-proxy prom_tenant)
labels=("Caddy reverse_proxy" "prom-label-proxy" "prom_tenant + reverse_proxy")
proxy_pid=("$caddy_pid" "$plp_pid" "$caddy_pid")
base=("http://127.0.0.1:$rp_port" "http://127.0.0.1:$plp_port" "http://127.0.0.1:$pt_port")

# request W P: sets method, url, body and hdr (an array of curl/wrk -H values) of workload
# W sent to proxy P. reverse_proxy is sent what prom_tenant sends upstream (up_uri, up_body
# of W), so that all three make Prometheus do the same work.
request() {
	local w=$1 p=$2
	method=${w_method[w]} body=${w_body[w]} url=${base[p]}${w_path[w]}
	hdr=("Accept-Encoding: gzip")
	[[ $method != POST ]] || hdr+=("Content-Type: application/x-www-form-urlencoded")
	if ((p == 0)); then
		url=${base[p]}${up_uri[w]} body=${up_body[w]}
	else
		hdr+=("X-Tenant-Namespace: $tenant")
	fi
}
# fetch W P: the answer's JSON, uncompressed.
fetch() {
	request "$1" "$2"
	local args=(-fsS --compressed -X "$method") h
	for h in "${hdr[@]}"; do args+=(-H "$h"); done
	[[ $method != POST ]] || args+=(--data-binary "$body")
	curl "${args[@]}" "$url"
}

up_uri=() up_body=()
for w in "${!w_name[@]}"; do
	request "$w" 2
	args=(-fsS -X "$method")
	for h in "${hdr[@]}"; do args+=(-H "$h"); done
	[[ $method != POST ]] || args+=(--data-binary "$body")
	echoed=$(curl "${args[@]}" "http://127.0.0.1:$cap_port${w_path[w]}") || die "${w_name[w]}: capturing the upstream request failed"
	first=$(head -n1 <<<"$echoed")
	[[ ${first%% *} == "$method" ]] || die "${w_name[w]}: prom_tenant sent $first upstream"
	up_uri[w]=${first#* }
	up_body[w]=$(tail -n +2 <<<"$echoed")
done

# Every proxy must give the same answer (series in a canonical order), and the expected one.
norm='.data | if type == "object" and has("result") then .result |= sort_by(.metric) else . end | if type == "array" then sort else . end'
gzip=()
for w in "${!w_name[@]}"; do
	for p in 0 1 2; do
		fetch "$w" "$p" >"$tmp/answer.$p" || die "${w_name[w]}: ${labels[p]} failed"
		jq -e "${w_check[w]}" "$tmp/answer.$p" >/dev/null || die "${w_name[w]}: ${labels[p]}: unexpected answer: $(head -c 2000 "$tmp/answer.$p")"
		jq -S "$norm" "$tmp/answer.$p" >"$tmp/norm.$p"
		((p == 0)) || cmp -s "$tmp/norm.0" "$tmp/norm.$p" ||
			die "${w_name[w]}: ${labels[p]} answers differently from ${labels[0]}: $(diff "$tmp/norm.0" "$tmp/norm.$p" | head -20)"
		# Whether the answer stays gzip-compressed end to end: a proxy that loses the
		# client's Accept-Encoding makes Prometheus send plain JSON, a different workload.
		request "$w" "$p"
		args=(-fsS -o /dev/null -D - -X "$method")
		for h in "${hdr[@]}"; do args+=(-H "$h"); done
		[[ $method != POST ]] || args+=(--data-binary "$body")
		gzip[w * 3 + p]=no
		! curl "${args[@]}" "$url" | grep -qi '^content-encoding: *gzip' || gzip[w * 3 + p]=yes
	done
done

# quote ARGS...: a shell command line, single-quoting only the words that need it.
quote() {
	local out=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
	done
	echo "${out[*]}"
}
# wrk_cmd W P DURATION: the wrk command line of workload W against proxy P. A POST's method
# and body are set by a Lua script (wrk takes no body on its command line).
wrk_cmd() {
	request "$1" "$2"
	local cmd=("${pin_load[@]}" wrk -t1 -c"${w_conc[$1]}" -d"$3" --latency) h
	for h in "${hdr[@]}"; do cmd+=(-H "$h"); done
	if [[ $method == POST ]]; then
		local script=$tmp/post.$1.$2.lua
		printf '%s\n' "$body" >"$script.body"
		truncate -s -1 "$script.body"
		printf 'local f = assert(io.open("%s", "rb"))\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n' "$script.body" >"$script"
		cmd+=(-s "$script")
	fi
	cmd+=("$url")
	quote "${cmd[@]}"
}
# to_ms VALUE: wrk's "123.45us" / "1.23ms" / "1.00s" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
		if (f < 0) { print "?"; exit }
		printf "%.3f", n * f
	}'
}
# cpu_ticks PID: the process's user + system CPU time, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
us_per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }

# Rounds: the three proxies take turns, each round a run of each, so that what else the
# machine does falls on all three alike; each round gives a ratio of paired runs.
duration=${BENCH_DURATION:-3}
rounds=${BENCH_ROUNDS:-3}
rps=() p50=() cmds=() reqs=() ticks_proxy=() ticks_prom=()
for w in "${!w_name[@]}"; do
	for p in 0 1 2; do
		k=$((w * 3 + p))
		cmds[k]=$(wrk_cmd "$w" "$p" "${duration}s")
		rps[k]="" p50[k]="" reqs[k]=0 ticks_proxy[k]=0 ticks_prom[k]=0
	done
	for ((r = 0; r < rounds; r++)); do
		for p in 0 1 2; do
			k=$((w * 3 + p))
			echo "bench: ${w_name[w]}: round $((r + 1)): ${labels[p]}" >&2
			eval "$(wrk_cmd "$w" "$p" 1s)" >/dev/null # warm-up: connections, caches, Go heap
			if [[ -n ${BENCH_PROFILE:-} && $p != 1 ]]; then
				mkdir -p "$BENCH_PROFILE"
				curl -fsS -o "$BENCH_PROFILE/$w.$r.${names[p]}.pprof" "http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=$((duration - 1))" &
				prof_pid=$!
			fi
			c0=$(cpu_ticks "${proxy_pid[p]}") q0=$(cpu_ticks "$prom_pid")
			eval "${cmds[k]}" >"$tmp/wrk.$k.$r"
			c1=$(cpu_ticks "${proxy_pid[p]}") q1=$(cpu_ticks "$prom_pid")
			[[ -z ${prof_pid:-} ]] || wait "$prof_pid"
			prof_pid=
			! grep -q 'Non-2xx' "$tmp/wrk.$k.$r" || die "${w_name[w]}: ${labels[p]}: non-2xx answers during the run: $(cat "$tmp/wrk.$k.$r")"
			rps[k]+=" $(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.$k.$r")"
			p50[k]+=" $(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.$k.$r")")"
			reqs[k]=$((reqs[k] + $(awk '/ requests in / {print $1}' "$tmp/wrk.$k.$r")))
			ticks_proxy[k]=$((ticks_proxy[k] + c1 - c0))
			ticks_prom[k]=$((ticks_prom[k] + q1 - q0))
		done
	done
done

# Stop the servers before the Go benchmarks, so they have the machine to themselves.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# median VALUES...: the median, as printed by awk.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ratios A B: the per-round ratios of two lists of req/s, "a b c".
ratios() {
	local -a a b
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	local i out=()
	for i in "${!a[@]}"; do out+=("$(ratio "${a[i]}" "${b[i]}")"); done
	echo "${out[*]}"
}
# http_table: one row per workload. req/s and p50 are medians of the rounds; each ratio is
# the median of the rounds' ratios (all of them in parentheses); CPU is over all rounds.
http_table() {
	echo '| workload | req/s: Caddy / PLP / prom-tenant | prom-tenant ÷ PLP (each round) | prom-tenant ÷ Caddy (each round) | from CPU: ÷ PLP / ÷ Caddy | proxy CPU µs/req: Caddy / PLP / prom-tenant | Prometheus CPU µs/req behind Caddy / PLP / prom-tenant | p50 ms: Caddy / PLP / prom-tenant |'
	echo '|---|---:|---:|---:|---:|---:|---:|---:|'
	local w k p vs_plp vs_rp cost=()
	for w in "${!w_name[@]}"; do
		k=$((w * 3))
		# What a request costs CPU 1 (the proxy's and Prometheus's CPU): the ratio
		# of these is what req/s would show with nothing else on the machine.
		for p in 0 1 2; do cost[p]=$(((ticks_proxy[k + p] + ticks_prom[k + p]) * 1000000 / reqs[k + p])); done
		# shellcheck disable=SC2086 # word splitting of the lists is meant
		{
			vs_plp=$(ratios "${rps[k + 2]}" "${rps[k + 1]}")
			vs_rp=$(ratios "${rps[k + 2]}" "${rps[k]}")
			echo "| ${w_name[w]} | $(median ${rps[k]}) / $(median ${rps[k + 1]}) / $(median ${rps[k + 2]}) | **$(median $vs_plp)** (${vs_plp// /, }) | **$(median $vs_rp)** (${vs_rp// /, }) | $(ratio "${cost[1]}" "${cost[2]}") / $(ratio "${cost[0]}" "${cost[2]}") | $(for p in 0 1 2; do us_per "${ticks_proxy[k + p]}" "${reqs[k + p]}"; ((p == 2)) || printf ' / '; done) | $(for p in 0 1 2; do us_per "${ticks_prom[k + p]}" "${reqs[k + p]}"; ((p == 2)) || printf ' / '; done) | $(median ${p50[k]}) / $(median ${p50[k + 1]}) / $(median ${p50[k + 2]}) |"
		}
	done
}
# requests_table: what each workload sends, and what prom_tenant sends upstream.
requests_table() {
	echo '| workload | sent to prom_tenant and prom-label-proxy | prom_tenant sends upstream (and Caddy is sent) | gzip: Caddy / PLP / prom-tenant |'
	echo '|---|---|---|---|'
	local w sent upstream
	for w in "${!w_name[@]}"; do
		sent="${w_method[w]} ${w_path[w]}"
		[[ -z ${w_body[w]} ]] || sent+=" (body: ${#w_body[w]} bytes)"
		upstream="${w_method[w]} ${up_uri[w]}"
		[[ -z ${up_body[w]} ]] || upstream+=" (body: ${#up_body[w]} bytes)"
		echo "| ${w_name[w]} | \`$sent\` | \`$upstream\` | ${gzip[w * 3]} / ${gzip[w * 3 + 1]} / ${gzip[w * 3 + 2]} |"
	done
}
if [[ -n ${BENCH_HTTP_ONLY:-} ]]; then
	http_table
	echo
	requests_table
	exit 0
fi

echo "bench: go test -run '^\$' -bench . -benchmem ./..." >&2
gobench_status=0
go test -run '^$' -bench . -benchmem ./... >"$tmp/gobench" 2>&1 || gobench_status=$?
cat "$tmp/gobench" >&2

# The enforcer against prom-label-proxy's, on the same queries (bench/, its own module so
# that the main module does not depend on prom-label-proxy).
# Two modules, one run: bench/ (ours) and bench/plp/ (prom-label-proxy, unmodified, built
# against the Prometheus it requires), on the same bench/queries.txt.
enforce_cmd="(cd bench && go test -run '^\$' -bench . -benchmem -count 5); (cd bench/plp && go test -run '^\$' -bench . -benchmem -count 5)"
echo "bench: $enforce_cmd" >&2
enforce_status=0
{
	(cd bench && go test -run '^$' -bench . -benchmem -count 5) || enforce_status=$?
	(cd bench/plp && go test -run '^$' -bench . -benchmem -count 5) || enforce_status=$?
} >"$tmp/enforce" 2>&1
# One benchmark set across both packages: benchstat would split it by pkg.
sed -i '/^pkg: /d' "$tmp/enforce"
cat "$tmp/enforce" >&2

# $tmp/enforce.tsv: QUERY IMPL UNIT MEDIAN, UNIT one of ns/op B/op allocs/op. The medians
# come from benchstat if the go command can fetch it, else from awk over the raw output.
benchstat_pkg=golang.org/x/perf/cmd/benchstat@latest
if (cd bench && go run "$benchstat_pkg" -format csv "$tmp/enforce") >"$tmp/benchstat.csv" 2>"$tmp/benchstat.err"; then
	summarizer="benchstat ($(cd bench && go list -m -f '{{.Path}}@{{.Version}}' golang.org/x/perf@latest 2>/dev/null || echo "$benchstat_pkg"), \`-format csv\`): median of the 5 runs"
	awk -F, '
		$1 == "" && $2 != "" { unit = ($2 == "sec/op") ? "ns/op" : $2; f = ($2 == "sec/op") ? 1e9 : 1; next }
		$1 ~ /^Enforce\// {
			n = split($1, p, "/"); impl = p[3]; sub(/-[0-9]+$/, "", impl)
			printf "%s\t%s\t%s\t%.10g\n", p[2], impl, unit, $2 * f
		}
	' "$tmp/benchstat.csv" >"$tmp/enforce.tsv"
else
	echo "bench: benchstat unavailable ($(head -n1 "$tmp/benchstat.err")); computing medians with awk" >&2
	summarizer="awk in scripts/bench.sh (benchstat was unavailable): median of the 5 runs"
	awk '
		$1 ~ /^BenchmarkEnforce\// {
			n = split($1, p, "/"); impl = p[3]; sub(/-[0-9]+$/, "", impl)
			for (i = 3; i < NF; i++) if ($(i + 1) ~ /^(ns|B|allocs)\/op$/) {
				k = p[2] "\t" impl "\t" $(i + 1); v[k, ++c[k]] = $i
			}
		}
		END {
			for (k in c) {
				m = c[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
				for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
				printf "%s\t%.10g\n", k, (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
			}
		}
	' "$tmp/enforce" >"$tmp/enforce.tsv"
fi
if [[ ! -s $tmp/enforce.tsv ]]; then
	echo "bench: no enforcer benchmark results" >&2
	((enforce_status != 0)) || enforce_status=1
fi

# enforce_tables: the summary table, then one table per query, in the order the
# benchmarks ran. Ratios are ours / prom-label-proxy (below 1: ours is faster or smaller).
enforce_tables() {
	local queries
	queries=$(awk '$1 ~ /^BenchmarkEnforce\// { split($1, p, "/"); if (!seen[p[2]]++) printf "%s ", p[2] }' "$tmp/enforce")
	awk -F'\t' -v queries="$queries" '
		FNR == NR { v[$1, $2, $3] = $4; next }
		$1 ~ /^BenchmarkEnforce\// {
			split($1, p, "/"); impl = p[3]; sub(/-[0-9]+$/, "", impl); k = p[2] SUBSEP impl
			for (i = 3; i < NF; i++) if ($(i + 1) == "ns/op") {
				if (!(k in lo) || $i + 0 < lo[k]) lo[k] = $i + 0
				if (!(k in hi) || $i + 0 > hi[k]) hi[k] = $i + 0
			}
		}
		function num(x, d) { return (x == "") ? "?" : sprintf("%." d "f", x) }
		function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "?" : sprintf("%.2f", a / b) }
		function us(x) { return (x == "") ? "?" : sprintf("%.1f", x / 1000) }
		function spread(k, m) { return (!(k in lo) || m == "" || m == 0) ? "?" : sprintf("%.0f%%", 100 * (hi[k] - lo[k]) / m) }
		function yes(c, x) { return (x == "") ? "?" : (c ? "yes" : "**no**") }
		BEGIN { nq = split(queries, q, " ") }
		END {
			plp = "prom-label-proxy"; s = "ours-single"; f = "ours-fifty"
			print "Summary (medians, µs/op). Goals: ours with `{namespace=\"t\"}` no slower than prom-label-proxy;"
			print "ours with the 50-pattern policy under 50 µs per typical dashboard query."
			print ""
			print "| query | prom-label-proxy (µs) | ours, single (µs) | single ÷ plp | single ≤ plp | ours, 50 patterns (µs) | 50 ÷ plp | 50 patterns < 50 µs |"
			print "|---|---:|---:|---:|:-:|---:|---:|:-:|"
			for (i = 1; i <= nq; i++) {
				a = v[q[i], plp, "ns/op"]; b = v[q[i], s, "ns/op"]; c = v[q[i], f, "ns/op"]
				printf "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n", q[i], us(a), us(b), ratio(b, a), yes(b <= a, b), us(c), ratio(c, a), yes(c < 50000, c)
			}
			n = split(plp " " s " " f, impls, " ")
			name[plp] = "prom-label-proxy, inject `namespace=\"t\"`"
			name[s] = "ours, policy `{namespace=\"t\"}`"
			name[f] = "ours, 50-pattern policy"
			for (i = 1; i <= nq; i++) {
				print ""
				print "#### `" q[i] "`"
				print ""
				print "| implementation | ns/op | spread | allocs/op | B/op | ns/op ÷ plp | allocs/op ÷ plp |"
				print "|---|---:|---:|---:|---:|---:|---:|"
				for (j = 1; j <= n; j++) {
					m = impls[j]; t = v[q[i], m, "ns/op"]; al = v[q[i], m, "allocs/op"]
					printf "| %s | %s | %s | %s | %s | %s | %s |\n", name[m], num(t, 0), spread(q[i] SUBSEP m, t), num(al, 0), num(v[q[i], m, "B/op"], 0),
						ratio(t, v[q[i], plp, "ns/op"]), ratio(al, v[q[i], plp, "allocs/op"])
				}
			}
		}
	' "$tmp/enforce.tsv" FS=' ' "$tmp/enforce"
}

cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
	echo '<!-- bench.sh:start -->'
	echo '<!-- Everything up to bench.sh:end is rewritten by scripts/bench.sh (make bench). -->'
	echo '## Latest `make bench`'
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
	echo "- $(go version)"
	echo "- $(prometheus --version 2>&1 | head -n1)"
	echo "- caddy: $(bin/caddy version) (bin/caddy, \`make build\`)"
	echo "- $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-3)"
	echo "- prom-label-proxy $(basename "$plp" | sed 's/^prom-label-proxy-//') (\`scripts/build-prom-label-proxy.sh\`)"
	echo
	echo "### HTTP path: prom-tenant against prom-label-proxy and Caddy's reverse_proxy"
	echo
	echo "Prometheus holds 20 namespaces of 1,000 series (\`cmd/httpbenchdata\`, 70 minutes at 30 s);"
	echo "the tenant, $tenant, may see its namespace's series (\`metricIsolation: true\`, \`metrics: [\".+\"]\`),"
	echo "1/20 of them. prom-label-proxy enforces \`namespace\` from the same header; Caddy's plain"
	echo "reverse_proxy is sent the request prom_tenant sends upstream (below), so that all three make"
	echo "Prometheus answer the same query, and every answer was checked equal between the three before"
	echo "the runs. Prometheus, Caddy and prom-label-proxy run pinned to CPU 1 (\`taskset -c 1\`), wrk to"
	echo "CPU 0, so a proxy's CPU shows as lost throughput. $rounds rounds, in each a run of each proxy in"
	echo "turn (${duration}s after a 1s warm-up), so that interference falls on all three alike; a ratio is the"
	echo "median of the rounds' ratios, each round's in parentheses."
	echo "\`Accept-Encoding: gzip\`. CPU per request is the process's user + system time over the run"
	echo "(\`/proc/PID/stat\`) divided by the requests wrk counted; \"Prometheus CPU\" is Prometheus's in"
	echo "the same runs, so a costlier upstream query shows there. \"From CPU\": the ratio of what a request"
	echo "costs CPU 1 (proxy + Prometheus CPU per request; above 1: prom-tenant costs less), which is what the"
	echo "req/s ratio shows on an idle machine and is steadier than it when other work shares the cores."
	echo
	http_table
	echo
	requests_table
	echo
	echo 'Caddyfile (ports are picked at random per run):'
	echo
	echo '```'
	sed "s|$tmp/||" "$tmp/Caddyfile"
	echo '```'
	echo
	echo '<details><summary>wrk commands and each run</summary>'
	echo
	echo '```'
	for w in "${!w_name[@]}"; do
		for p in 0 1 2; do
			echo "# ${w_name[w]}: ${labels[p]}"
			echo "${cmds[w * 3 + p]//$tmp\//}"
			for ((r = 0; r < rounds; r++)); do
				awk -v r=$((r + 1)) '
					/ requests in / { n = $1 " requests in " $4 }
					/^Requests\/sec:/ { rps = $2 }
					$1 == "50%" { p50 = $2 }
					$1 == "99%" { p99 = $2 }
					END { printf "round %d: %s %s req/s, p50 %s, p99 %s\n", r, n, rps, p50, p99 }
				' "$tmp/wrk.$((w * 3 + p)).$r"
			done
		done
	done
	echo '```'
	echo
	echo '</details>'
	echo
	echo "### Go benchmarks"
	echo
	echo "\`go test -run '^\$' -bench . -benchmem ./...\` (not pinned; servers stopped)$( ((gobench_status == 0)) || echo ", exit status $gobench_status"):"
	echo
	echo '```'
	cat "$tmp/gobench"
	echo '```'
	echo
	echo "### PromQL enforcer vs prom-label-proxy"
	echo
	echo "\`$enforce_cmd\` (not pinned; servers stopped)$( ((enforce_status == 0)) || echo ", exit status $enforce_status")."
	echo "Medians by $summarizer; \"spread\" is (max − min) / median of ns/op over"
	echo "the 5 runs, so ratios within about that much of 1.00 are noise."
	echo
	echo "Versions: ours with $(cd bench && go list -m -f '{{.Path}} {{.Version}}' github.com/prometheus/prometheus);"
	echo "prom-label-proxy $(cd bench/plp && go list -m -f '{{.Version}}' github.com/prometheus-community/prom-label-proxy)"
	echo "(its latest release, unmodified) with $(cd bench/plp && go list -m -f '{{.Path}} {{.Version}}' github.com/prometheus/prometheus),"
	echo "the version it requires: it does not compile against ours, so it runs from its own module, bench/plp."
	echo
	echo "Each op is the whole text-to-text work for one query, with enforcer and policy built once"
	echo "outside the loop: for prom-label-proxy, \`parser.ParseExpr\` + \`PromQLEnforcer.EnforceNode\`"
	echo "(\`-error-on-replace=false\`) + \`Expr.String()\`; for ours, \`rewrite.Enforcer.EnforceQuery\`,"
	echo "which does the same three steps. The 50-pattern policy: 48 \`{__name__=\"app_metric_N_total\",namespace=\"t\"}\`,"
	echo "\`http_.*\` and \`up\`, all with \`namespace=\"t\"\`. The queries are in bench/queries.txt."
	echo
	enforce_tables
	echo
	echo '<details><summary>go test output</summary>'
	echo
	echo '```'
	cat "$tmp/enforce"
	echo '```'
	echo
	echo '</details>'
	echo '<!-- bench.sh:end -->'
} >"$tmp/section.md"

write_section bench.sh "$tmp/section.md"
((gobench_status == 0)) || exit "$gobench_status"
exit "$enforce_status"
