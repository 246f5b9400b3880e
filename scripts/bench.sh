#!/usr/bin/env bash
# make bench: throughput and latency of a cheap instant query against Prometheus
# directly, through Caddy's plain reverse_proxy, and through prom_tenant + reverse_proxy;
# then the Go benchmarks, and the bench/ module's comparison of the PromQL enforcer with
# prom-label-proxy's. Writes the marked section of docs/BENCHMARKS.md (the rest of that
# file is left as it is).
#
# wrk runs on core 0; Prometheus and Caddy share core 1, so the proxy's CPU cost shows up
# as lost throughput, as in the comparison in ANCHORS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
make --no-print-directory build

prog=bench
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if (($(nproc) >= 2)); then
	pin_load=(taskset -c 0)
	pin_servers=(taskset -c 1)
else
	echo "bench: only $(nproc) CPU: running without CPU pinning; numbers are not comparable" >&2
	pin_load=()
	pin_servers=()
fi

# Data and Prometheus, as in make demo.
end=$(date -u +%Y-%m-%dT%H:%M:00Z)
start=$(date -u -d "$end - 1 hour" +%Y-%m-%dT%H:%M:%SZ)
t=$(date -u -d "$end" +%s)
go run ./cmd/exampledata -start "$start" -end "$end" >"$tmp/data.om"
promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/data" >/dev/null
printf 'global:\n  scrape_interval: 15s\n' >"$tmp/prometheus.yml"
free_port
prom_port=$port
"${pin_servers[@]}" prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
wait_for Prometheus "${pids[-1]}" "$tmp/prometheus.log" 60 curl -fsS "http://127.0.0.1:$prom_port/-/ready"

# One Caddy, two sites: plain reverse_proxy, and prom_tenant in front of reverse_proxy.
free_port
admin_port=$port
free_port
rp_port=$port
free_port
pt_port=$port
cat >"$tmp/Caddyfile" <<CADDYFILE
{
	admin 127.0.0.1:$admin_port
	prom_tenancy {
		directory $root/examples/tenants
	}
}

:$rp_port {
	reverse_proxy 127.0.0.1:$prom_port
}

:$pt_port {
	prom_tenant
	reverse_proxy 127.0.0.1:$prom_port
}
CADDYFILE
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	"${pin_servers[@]}" bin/caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
pids+=($!)
caddy_loaded() { curl -fsS "http://127.0.0.1:$admin_port/config/" | grep -qv '^null$'; }
wait_for Caddy "${pids[-1]}" "$tmp/caddy.log" 30 caddy_loaded

# prom_tenant sends team-a's `up` upstream as up{namespace="team-a"}; the other two
# targets are asked that query directly, so all three make Prometheus do the same work
# and return the same answer, and the difference is the proxies' own cost.
path="/api/v1/query?query=up&time=$t"
enforced="/api/v1/query?query=up%7Bnamespace%3D%22team-a%22%7D&time=$t"
names=(prometheus reverse_proxy prom_tenant)
labels=("Prometheus directly" "Caddy reverse_proxy" "Caddy prom_tenant + reverse_proxy")
urls=("http://127.0.0.1:$prom_port$enforced" "http://127.0.0.1:$rp_port$enforced" "http://127.0.0.1:$pt_port$path")
headers=("" "" "X-Tenant-Namespace: team-a")

# Every target must answer the query with data, and prom_tenant with team-a's only.
gzip=()
for i in 0 1 2; do
	args=(-fsS --compressed -H 'Accept-Encoding: gzip')
	[[ -z ${headers[i]} ]] || args+=(-H "${headers[i]}")
	body=$(curl "${args[@]}" "${urls[i]}") || die "${labels[i]}: ${urls[i]} failed"
	want='length == 4 and all(.metric.namespace == "team-a")'
	jq -e ".data.result | $want" <<<"$body" >/dev/null || die "${labels[i]}: unexpected answer: $body"
	# Whether the answer stays gzip-compressed end to end: a proxy that loses the
	# client's Accept-Encoding makes Prometheus send plain JSON, a different workload.
	gzip[i]=no
	! curl "${args[@]}" -o /dev/null -D - "${urls[i]}" | grep -qi '^content-encoding: *gzip' || gzip[i]=yes
done

# quote ARGS...: a shell command line, single-quoting only the words that need it.
quote() {
	local out=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
	done
	echo "${out[*]}"
}
wrk_cmd() { # INDEX DURATION
	local cmd=("${pin_load[@]}" wrk -t1 -c8 -d"$2" --latency -H 'Accept-Encoding: gzip')
	[[ -z ${headers[$1]} ]] || cmd+=(-H "${headers[$1]}")
	cmd+=("${urls[$1]}")
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

rps=() p50=() p99=() cmds=()
for i in 0 1 2; do
	echo "bench: ${labels[i]}" >&2
	eval "$(wrk_cmd "$i" 2s)" >/dev/null # warm-up: connections, caches, Go heap
	cmds[i]=$(wrk_cmd "$i" 10s)
	eval "${cmds[i]}" >"$tmp/wrk.$i"
	cat "$tmp/wrk.$i" >&2
	rps[i]=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.$i")
	p50[i]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.$i")")
	p99[i]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.$i")")
	! grep -q 'Non-2xx' "$tmp/wrk.$i" || die "${labels[i]}: non-2xx answers during the run; see above"
done

# Stop the servers before the Go benchmarks, so they have the machine to themselves.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()

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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
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
	echo
	echo "Query: team-a's \`GET $path\` through prom_tenant, which sends \`up{namespace=\"team-a\"}\`"
	echo "upstream; Prometheus and plain reverse_proxy are asked that same query directly, so all three"
	echo "answer the same 4 series and the ratios are the proxies' own cost. \`Accept-Encoding: gzip\`."
	echo "Prometheus and Caddy run pinned to CPU 1 (\`taskset -c 1\`), wrk to CPU 0. Each run follows a"
	echo "2s warm-up. \"gzip\": whether the answer arrived compressed."
	echo
	echo '| target | req/s | p50 (ms) | p99 (ms) | × Prometheus | × reverse_proxy | gzip |'
	echo '|---|---:|---:|---:|---:|---:|---|'
	for i in 0 1 2; do
		echo "| ${labels[i]} | ${rps[i]} | ${p50[i]} | ${p99[i]} | $(ratio "${rps[i]}" "${rps[0]}") | $(ratio "${rps[i]}" "${rps[1]}") | ${gzip[i]} |"
	done
	echo
	echo 'Commands (ports are picked at random per run):'
	echo
	echo '```'
	for i in 0 1 2; do echo "${cmds[i]}"; done
	echo '```'
	echo
	echo 'Caddyfile:'
	echo
	echo '```'
	sed "s|$root/||" "$tmp/Caddyfile"
	echo '```'
	echo
	echo '<details><summary>wrk output</summary>'
	echo
	echo '```'
	for i in 0 1 2; do
		echo "# ${labels[i]}"
		cat "$tmp/wrk.$i"
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
