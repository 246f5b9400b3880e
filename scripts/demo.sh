#!/usr/bin/env bash
# make demo: a real Prometheus with the example data, bin/caddy with Caddyfile.example in
# front of it, and a few curl requests that show what each tenant sees. Caddy then stays
# in the foreground until Ctrl-C; everything this script started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
note() { printf '\033[2m# %s\033[0m\n' "$*"; }

scripts/install-deps.sh
make --no-print-directory build

prog=demo
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# pick_port WANTED WHAT: WANTED if free, else the first free port from WANTED+10000.
pick_port() {
	local p=$1
	if port_taken "$p"; then
		echo "demo: port $p ($2) is taken (a system service, e.g. Debian's prometheus or pushgateway?)" >&2
		p=$(($1 + 10000))
		while port_taken "$p"; do p=$((p + 1)); done
		echo "demo: using port $p for $2 instead" >&2
	fi
	echo "$p"
}

prom_port=$(pick_port 9090 Prometheus)
proxy_port=$(pick_port 9091 "the proxy")
admin_port=$(pick_port 2019 "Caddy's admin API")
caddyfile=Caddyfile.example
if [[ $prom_port != 9090 || $proxy_port != 9091 || $admin_port != 2019 ]]; then
	caddyfile=$tmp/Caddyfile
	sed -e "s/localhost:9090/localhost:$prom_port/" \
		-e "s/^:9091 {/:$proxy_port {/" \
		-e "s/admin localhost:2019/admin localhost:$admin_port/" \
		Caddyfile.example >"$caddyfile"
	grep -q "localhost:$prom_port" "$caddyfile" && grep -q "^:$proxy_port {" "$caddyfile" &&
		grep -q "admin localhost:$admin_port" "$caddyfile" ||
		die "could not substitute the ports in Caddyfile.example (has it changed?)"
	sed -i "s|directory examples/tenants|directory $root/examples/tenants|" "$caddyfile"
fi

bold "Example data: one hour of series for namespaces team-a, team-b, team-c, monitoring"
end=$(date -u +%Y-%m-%dT%H:%M:00Z)
start=$(date -u -d "$end - 1 hour" +%Y-%m-%dT%H:%M:%SZ)
t=$(date -u -d "$end" +%s)
echo "\$ go run ./cmd/exampledata -start $start -end $end > data.om"
go run ./cmd/exampledata -start "$start" -end "$end" >"$tmp/data.om"
echo "\$ promtool tsdb create-blocks-from openmetrics data.om data/"
promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/data" >/dev/null

printf 'global:\n  scrape_interval: 15s\n' >"$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
pids+=("$prom_pid")
wait_for Prometheus "$prom_pid" "$tmp/prometheus.log" 60 curl -fsS "http://127.0.0.1:$prom_port/-/ready"
has_data() {
	curl -fsS "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=count(up)' --data-urlencode "time=$t" |
		jq -e '.data.result | length > 0'
}
wait_for "Prometheus (data)" "$prom_pid" "$tmp/prometheus.log" 60 has_data
echo "Prometheus on http://localhost:$prom_port (log: $tmp/prometheus.log)"

# Caddy keeps its state (autosave.json, certificates) under XDG dirs: keep them in $tmp.
XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/caddy-data \
	bin/caddy run --config "$caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")
caddy_loaded() { curl -fsS "http://localhost:$admin_port/config/" | grep -qv '^null$'; }
proxy_answers() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$proxy_port/api/v1/query") != 000 ]]; }
wait_for Caddy "$caddy_pid" "$tmp/caddy.log" 30 caddy_loaded
wait_for Caddy "$caddy_pid" "$tmp/caddy.log" 30 proxy_answers
echo "bin/caddy run --config $caddyfile --adapter caddyfile: proxy on http://localhost:$proxy_port (log: $tmp/caddy.log)"

# run prints a command, then runs it.
run() {
	printf '\033[36m$ %s\033[0m\n' "$1"
	eval "$1" || true
}
prom="http://localhost:$prom_port/api/v1/query"
proxy="http://localhost:$proxy_port/api/v1/query"
series=".data.result[] | {metric, value: .value[1]}"

bold "1. Prometheus directly: every namespace, and team-b's secret"
run "curl -sG $prom --data-urlencode 'query=count by (namespace) (up)' -d time=$t | jq -c '$series'"
run "curl -sG $prom --data-urlencode 'query=db_password_len' -d time=$t | jq -c '$series'"

bold "2. team-a through the proxy: the same query sees only team-a"
run "curl -sG -H 'X-Tenant-Namespace: team-a' $proxy --data-urlencode 'query=count by (namespace) (up)' -d time=$t | jq -c '$series'"

bold "3. team-b: its own up{job=\"api\"} and http_requests_total, and not db_password_len"
note "team-b's MetricAccess objects allow http_requests_total, and up / process_resident_memory_bytes for job api"
run "curl -sG -H 'X-Tenant-Namespace: team-b' $proxy --data-urlencode 'query=up' -d time=$t | jq -c '$series'"
run "curl -sG -H 'X-Tenant-Namespace: team-b' $proxy --data-urlencode 'query=sum by (namespace, job) (rate(http_requests_total[5m]))' -d time=$t | jq -c '$series'"
note "db_password_len is in namespace team-b, but no policy allows it: an empty result, as if it did not exist"
run "curl -sG -H 'X-Tenant-Namespace: team-b' $proxy --data-urlencode 'query=db_password_len' -d time=$t | jq -c '.data'"
note "nor does a query leak it through an allowed series (result filtering would answer 42 here)"
run "curl -sG -H 'X-Tenant-Namespace: team-b' $proxy --data-urlencode 'query=http_requests_total * 0 + scalar(db_password_len)' -d time=$t | jq -c '[.data.result[].value[1]] | unique'"

bold "4. Refused: team-c has data but no MetricAccess (403); no tenant at all (401)"
run "curl -sG -w '\nHTTP %{http_code}\n' -H 'X-Tenant-Namespace: team-c' $proxy --data-urlencode 'query=up' -d time=$t"
run "curl -sG -w '\nHTTP %{http_code}\n' $proxy --data-urlencode 'query=up' -d time=$t"

bold "The proxy keeps running on http://localhost:$proxy_port (Prometheus: http://localhost:$prom_port). Ctrl-C stops both."
wait "$caddy_pid"
