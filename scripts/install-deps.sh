#!/usr/bin/env bash
# Installs the programs the end-to-end tests, the demo and the benchmark run, from Debian
# packages, and only those whose command is missing: a second run does nothing.
#
# Debian's prometheus, prometheus-pushgateway, etcd-server and victoria-metrics packages
# enable a system service on :9090 / :9091 / :2379 / :8428. Our tests never use it (they
# start their own on free ports), so we keep the install from starting it; the demo checks
# those ports itself.
# (kube-apiserver has no Debian package: scripts/build-kube-apiserver.sh builds it.)
set -euo pipefail

# command -> Debian package
declare -A pkg=(
	[prometheus]=prometheus
	[promtool]=prometheus
	[prometheus-pushgateway]=prometheus-pushgateway
	[wrk]=wrk
	[curl]=curl
	[jq]=jq
	[etcd]=etcd-server
	[vmagent]=victoria-metrics
	[victoria-metrics]=victoria-metrics
	# podman runs the image make image builds (e2e/image_podman_test.go), with runc: crun
	# refuses a hybrid cgroup hierarchy whose v2 part has controllers, as some machines have.
	[podman]=podman
	[runc]=runc
	# newuidmap/newgidmap, which apt's --no-install-recommends leaves out of podman: without
	# them, podman run by a user other than root maps only that user into the container, and
	# the image's USER 65534 fails ("runc: unable to setup user: invalid argument"). Root (as
	# in CI) needs no mapping. That user also needs a range in /etc/subuid and /etc/subgid,
	# which useradd adds once uidmap is installed. Nothing else podman recommends is used:
	# the tests use host networking (no slirp4netns), vfs (no fuse-overlayfs), no --init.
	[newuidmap]=uidmap
)

missing=()
for cmd in "${!pkg[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
if ((${#missing[@]} == 0)); then
	echo "install-deps: all present (prometheus, promtool, prometheus-pushgateway, wrk, curl, jq, etcd, vmagent, victoria-metrics, podman, runc, newuidmap)"
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing ${missing[*]}, and there is no apt-get to install them" >&2
	exit 1
fi
sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi

# policy-rc.d answering 101 ("action forbidden") stops maintainer scripts from starting
# services (invoke-rc.d and deb-systemd-invoke both ask it). Only add one if there is
# none, and always remove ours.
policy=/usr/sbin/policy-rc.d
ours=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	ours=1
fi
cleanup() { if ((ours)); then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

for cmd in "${!pkg[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd still missing after install" >&2; exit 1; }
done
if [[ -d /run/systemd/system ]] && [[ " ${missing[*]} " == *" prometheus"* ]]; then
	echo "install-deps: note: Debian enabled the prometheus (and pushgateway) services; they were not" \
		"started now. Tests don't need them; make demo wants :9090/:9091 free." \
		"To disable: sudo systemctl disable --now prometheus prometheus-pushgateway"
fi
if [[ -d /run/systemd/system ]] && [[ " ${missing[*]} " == *" victoria-metrics "* ]]; then
	echo "install-deps: note: Debian enabled the victoria-metrics service (the tests and make bench start" \
		"their own); it was not started now. To disable: sudo systemctl disable --now victoria-metrics"
fi
if [[ -d /run/systemd/system ]] && [[ " ${missing[*]} " == *" etcd-server "* ]]; then
	echo "install-deps: note: Debian enabled the etcd service; it was not started now and tests" \
		"don't need it. To disable: sudo systemctl disable --now etcd"
fi
