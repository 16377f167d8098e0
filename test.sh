#!/usr/bin/env bash
# Install what the tests need (as root, on Debian 12 with Go), then run every
# test: vet, unit and integration tests (the firewall and daemon tests run
# against the kernel in network namespaces of their own, so root is
# needed), the same kernel tests under Debian 12's own kernel (6.1) in
# QEMU, a short fuzz of every fuzz target, the fail2ban-regex comparison
# and the daemon measurements. .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=$PATH:/usr/local/go/bin

# Debian packages the tests use, installed when missing. Their services are
# not started: a test starts what it needs itself.
# systemd: systemd-journald and journalctl, which the journald source's tests
# run in a journal namespace of their own (never the system journal).
# chromium: the report page opened headless, networking off
# (TestReportChromium).
packages=(fail2ban nftables iproute2 kamailio sipvicious sip-tester zsh fish groff-base logrotate
	qemu-system-x86 busybox-static systemd chromium)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test.sh: missing packages ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	policy=/usr/sbin/policy-rc.d
	created=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	if [ -n "$created" ]; then rm -f "$policy"; fi
fi
# The tests start Kamailio and fail2ban themselves when they need them: on
# a host that runs this script, neither is left to start at boot (their
# packages enable them).
for unit in kamailio.service fail2ban.service; do
	if [ "$(systemctl is-enabled "$unit" 2>/dev/null)" = enabled ]; then
		systemctl disable --quiet "$unit" 2>/dev/null || deb-systemd-helper disable "$unit"
	fi
	if [ "$(systemctl is-enabled "$unit" 2>/dev/null)" = enabled ]; then
		echo "test.sh: $unit is still enabled at boot" >&2
		exit 1
	fi
done

# section prints a heading with the time the run has taken so far, so a
# slow part shows in CI's log.
section() { printf '== %s (%dm%02ds)\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }

section "gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

section "go test"
before=$(ip netns list 2>/dev/null | awk '{print $1}' | sort)
# Everything the tests need is installed above and they run as root, so a
# test that would skip for a missing prerequisite (root, a command, fail2ban's
# samples, cgroup v2, ...) fails instead: a skip in CI is not a pass
# (internal/testutil.Missing). Only -short skips, a choice, stay skips.
export SIPGUARD_REQUIRE=all
go test -count=1 ./...

section "race detector: the concurrent packages under -race -short"
# Each of these shares state between goroutines (the core loop, followers,
# receivers, the cluster node, notifiers, the control socket, the nftables
# monitor), and in cmd/sipguard the tests that run the daemon in process
# (the others run the binary). -short leaves out what costs minutes under
# -race without checking concurrency (100,000-ban transactions, timings,
# nxadm/tail's measurement; the flood of peers' bans is a tenth): the run
# above has them all. A data race fails the test that found it.
go test -race -short -count=1 ./daemon ./watchers ./cluster ./notify ./syslogd ./control ./firewall \
	./metrics ./journal ./feeds ./replay
go test -race -short -count=1 -run '^(TestRun(Metrics|Notify|Systemd|FeedHTTP)|TestExportImport|TestImportMany|TestWhyCommand|TestScan[A-Za-z]*)$' ./cmd/sipguard

section "the kernel tests under Debian 12's kernel (6.1), in QEMU"
test/debian-kernel.sh

section "fuzz every fuzz target briefly (run longer by hand, see docs/testing.md)"
fuzztime=${FUZZTIME:-15s}
for file in $(grep -rl --include='*_test.go' '^func Fuzz' .); do
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "./$(dirname "$file")" 2>&1); then
			# Go 1.26's fuzz coordinator can fail a run with a bare "context
			# deadline exceeded" as -fuzztime ends (golang.org/issue/75804,
			# fixed in 1.27): no input failed. Such a run is tried once more;
			# a failing input always fails.
			if grep -q 'Failing input written' <<<"$out" || ! grep -q '^    context deadline exceeded$' <<<"$out"; then
				echo "$out"
				exit 1
			fi
			echo "$target: the fuzz coordinator's deadline race (go.dev/issue/75804); once more"
			if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "./$(dirname "$file")" 2>&1); then
				echo "$out"
				exit 1
			fi
		fi
		echo "$target: $(echo "$out" | grep 'fuzz: elapsed' | tail -1)"
	done
done

section "sipguard scan against fail2ban-regex"
bench/compare.sh --min-ratio 80 --min-cpu-ratio 40

section "daemon against the kernel: ban latency, burst, restore"
bench/daemon.sh

section "daemon: local bans during a flood of 100,000 other nodes' bans, alone on the machine"
# The flood's latency ratios (local bans as fast as without it) need the
# 2 cores to themselves: go test ./... above runs two packages at once.
SIPGUARD_ALONE=1 go test -count=1 -run '^TestPeerFloodLocalLatency' -v ./daemon | grep -E '^\s*(--- |ok|FAIL)|cluster_test'

section "cluster: propagation through a real NATS server to 100 nodes"
go test -run '^$' -bench Cluster -benchtime 1x ./cluster | grep -E 'bench_test|^Benchmark'

section "cluster: a fleet of 1,100 nodes through a server restart and a restart of every node"
# On its own: 1,100 NATS connections and consumers in one process take the
# two cores and 0.6 GiB for about a minute (issue 20, item 5).
SIPGUARD_FLEET_NODES=1100 go test -count=1 -run '^TestFleetRestart$' -v ./cluster | grep -E '^(--- |ok|FAIL)|fleet_test'

section "wire sensor: a flood of failed REGISTERs through Kamailio at 10,000/s"
go test -run '^$' -bench BenchmarkWireFlood -benchtime 100000x ./cmd/sipguard | grep -E 'wire_linux_test|^Benchmark'

section "the Debian package: build, install, unit capabilities, upgrade, purge"
packaging/test.sh

# Every test removes the namespaces it creates, even when it fails.
after=$(ip netns list 2>/dev/null | awk '{print $1}' | sort)
leaked=$(comm -13 <(echo "$before") <(echo "$after"))
if [ -n "$leaked" ]; then
	echo "network namespaces left behind: $leaked" >&2
	exit 1
fi
section "all passed"
