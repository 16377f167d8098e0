#!/usr/bin/env bash
# Install what the tests need (as root, on Debian 12 with Go), then run every
# test: vet, unit and integration tests, a short fuzz of every fuzz target,
# and the fail2ban-regex comparison. .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=$PATH:/usr/local/go/bin

# Debian packages the tests use, installed when missing. Their services are
# not started: a test starts what it needs itself.
packages=(fail2ban)
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

echo "== gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

echo "== go test"
go test -count=1 ./...

echo "== fuzz (short; run longer by hand, see README)"
fuzztime=${FUZZTIME:-20s}
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$fuzztime" ./parsers/asterisk
go test -run '^$' -fuzz '^FuzzConfig$' -fuzztime "$fuzztime" ./cmd/sipguard

echo "== sipguard scan against fail2ban-regex"
bench/compare.sh --min-ratio 50
