#!/usr/bin/env bash
# Measure the daemon against the kernel, in a throw-away network namespace:
# ban latency (log line written -> element committed, p50/p90/p99), a burst
# of distinct attackers written at once, and the restore of saved bans
# after a restart. Needs root, nft and ip. Installs nothing.
#
#   sudo bench/daemon.sh [-n 200] [-burst 10000] [-restore 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/sipguard" ./cmd/sipguard
go run ./internal/daemonbench -bin "$work/sipguard" "$@"
