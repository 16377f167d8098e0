#!/usr/bin/env bash
# Compare `sipguard scan` with `fail2ban-regex` (Debian's asterisk filter)
# on the same generated Asterisk log, in one run, and print the ratio of
# their wall times, and their CPU times (user + sys): scan parses on every
# core, fail2ban-regex on one, so on two cores the wall ratio is about
# twice the CPU ratio.
#
# Installs nothing: needs go, and fail2ban-regex from Debian's fail2ban.
#
#   bench/compare.sh [--lines N] [--min-ratio R] [--min-cpu-ratio C] [--runs K] [--repeat R] [--keep DIR]
#
# --lines N      lines in the generated mix (default 1000000: 20% failures,
#                half chan_sip half PJSIP, 2% IPv6, ~18.5k Zipf attackers)
# --min-ratio R  exit 1 unless sipguard is at least R times faster (wall)
# --min-cpu-ratio C
#                exit 1 unless sipguard uses at least C times less CPU time
# --runs K       time sipguard K times before fail2ban-regex and K times
#                after it, and keep the median (default 3)
# --repeat R     time both tools R times over (rounds), print each round's
#                ratios and their median, and judge --min-ratio and
#                --min-cpu-ratio on the median (default 1)
# --keep DIR     generate into DIR and keep the files (default: a temp dir)
#
# Both tools must find exactly the failure lines the generator wrote, or the
# script fails: speed without the same answer is no comparison.
set -euo pipefail

lines=1000000 min_ratio=0 min_cpu_ratio=0 runs=3 repeat=1 keep=""
while [ $# -gt 0 ]; do
	case "$1" in
	--lines) lines=$2; shift 2 ;;
	--min-ratio) min_ratio=$2; shift 2 ;;
	--min-cpu-ratio) min_cpu_ratio=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	*) echo "usage: $0 [--lines N] [--min-ratio R] [--min-cpu-ratio C] [--runs K] [--repeat R] [--keep DIR]" >&2; exit 2 ;;
	esac
done
for n in "$runs" "$repeat"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$0: --runs and --repeat take a whole number from 1" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
filter=/etc/fail2ban/filter.d/asterisk.conf
command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found (apt-get install fail2ban)" >&2; exit 1; }
[ -r "$filter" ] || { echo "$filter not found" >&2; exit 1; }

if [ -n "$keep" ]; then
	work=$keep
	mkdir -p "$work"
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi

# Built as the Debian package builds it (packaging/deb/build.sh): the
# binary users run, static, which starts 2 ms sooner than a cgo build.
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$work/sipguard" ./cmd/sipguard
go build -o "$work/benchrun" ./internal/benchrun
go run ./internal/loggen -n "$lines" -seed 1 -o "$work/mix.log" -truth "$work/truth.json" 2>/dev/null

json() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" "$2"; }
failures=$(json failures "$work/truth.json")
attackers=$(json distinct_attackers "$work/truth.json")
bytes=$(json bytes "$work/truth.json")
echo "mix: $lines lines, $bytes bytes, $failures failure lines from $attackers attackers"

# Written out before anything is timed: otherwise the kernel writes the
# mix just generated back to disk during sipguard's runs.
sync

# sipguard: $runs runs before fail2ban-regex and $runs after it, and the
# slower of the middle two of them all: this machine's speed drifts over
# minutes, and fail2ban-regex's 20 s lie between the two halves.
sg() {
	"$work/benchrun" -out "$work/sg.out" -err "$work/sg.err" -- \
		"$work/sipguard" scan -c rules.toml "$work/mix.log" >"$work/sg.$1.json"
	walls+=("$(json wall_s "$work/sg.$1.json") $1")
}

# round R times both tools, prints what it measured, and adds its ratios
# to ratios and cpu_ratios; it sets status to 1 when either tool did not
# find exactly the mix's failure lines. (Called plainly, not in a test:
# set -e holds inside it.)
status=0 ratios=() cpu_ratios=()
round() {
	local r=$1 i
	if [ "$repeat" -gt 1 ]; then echo "round $r of $repeat:"; fi
	walls=()
	for i in $(seq "$runs"); do sg "$r.$i"; done

	# fail2ban-regex, once a round: it takes about 20 s.
	"$work/benchrun" -out "$work/f2b.out" -err "$work/f2b.err" -- \
		fail2ban-regex "$work/mix.log" "$filter" >"$work/f2b.$r.json"

	for i in $(seq "$((runs + 1))" "$((2 * runs))"); do sg "$r.$i"; done
	local median
	median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$((runs + 1))p" | cut -d' ' -f2)
	# All of sipguard's runs, in the order they ran: the machine's speed
	# drifts, and one median hides by how much.
	echo "sipguard's $((2 * runs)) runs (s): $(printf '%s\n' "${walls[@]}" | sort -k2 -n | cut -d' ' -f1 | xargs printf '%.3f ')"
	local sg_wall sg_rss sg_cpu sg_events sg_bans f2b_wall f2b_rss f2b_cpu f2b_matched
	sg_wall=$(json wall_s "$work/sg.$median.json")
	sg_rss=$(json max_rss_kb "$work/sg.$median.json")
	sg_cpu=$(awk -v u="$(json user_s "$work/sg.$median.json")" -v s="$(json sys_s "$work/sg.$median.json")" 'BEGIN { print u + s }')
	sg_events=$(sed -n 's/.* lines ([0-9.]* MiB), \([0-9]*\) events.*/\1/p' "$work/sg.err")
	sg_bans=$(sed -n 's/.* \([0-9]*\) bans in .*/\1/p' "$work/sg.err")

	f2b_wall=$(json wall_s "$work/f2b.$r.json")
	f2b_rss=$(json max_rss_kb "$work/f2b.$r.json")
	f2b_cpu=$(awk -v u="$(json user_s "$work/f2b.$r.json")" -v s="$(json sys_s "$work/f2b.$r.json")" 'BEGIN { print u + s }')
	f2b_matched=$(sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p' "$work/f2b.out")

	awk -v l="$lines" -v sw="$sg_wall" -v fw="$f2b_wall" -v sc="$sg_cpu" -v fc="$f2b_cpu" -v sr="$sg_rss" -v fr="$f2b_rss" \
		-v se="$sg_events" -v fm="$f2b_matched" -v sb="$sg_bans" -v runs="$runs" 'BEGIN {
		printf "%-16s %10s %10s %14s %12s %10s\n", "", "wall", "CPU", "lines/s", "peak RSS", "failures"
		printf "%-16s %9.3fs %9.3fs %14.0f %9.1f MiB %10d   (median of %d runs; %d bans)\n", "sipguard scan", sw, sc, l / sw, sr / 1024, se, 2 * runs, sb
		printf "%-16s %9.3fs %9.3fs %14.0f %9.1f MiB %10d\n", "fail2ban-regex", fw, fc, l / fw, fr / 1024, fm
		printf "ratio: sipguard is %.1fx faster than fail2ban-regex (wall), and uses %.1fx less CPU (user + sys)\n", fw / sw, fc / sc
	}'
	# Kept unrounded: the gates judge the ratio, not its printed form.
	ratios+=("$(awk -v fw="$f2b_wall" -v sw="$sg_wall" 'BEGIN { printf "%.6f", fw / sw }')")
	cpu_ratios+=("$(awk -v fc="$f2b_cpu" -v sc="$sg_cpu" 'BEGIN { printf "%.6f", fc / sc }')")
	if [ "$sg_events" != "$failures" ] || [ "$f2b_matched" != "$failures" ]; then
		echo "FAIL: the mix has $failures failure lines; sipguard found $sg_events, fail2ban-regex $f2b_matched" >&2
		status=1
	fi
}

for r in $(seq "$repeat"); do round "$r"; done

# The rounds' median ratios (of an even number, the lower middle one): a
# single round lands in whatever phase of the machine's speed it meets.
lower_median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
ratio=$(lower_median "${ratios[@]}")
cpu_ratio=$(lower_median "${cpu_ratios[@]}")
if [ "$repeat" -gt 1 ]; then
	printf 'median of %d rounds: %.1fx (wall; rounds%s), %.1fx (CPU; rounds%s)\n' "$repeat" "$ratio" \
		"$(printf ' %.1f' "${ratios[@]}")" "$cpu_ratio" "$(printf ' %.1f' "${cpu_ratios[@]}")"
fi
if ! awk -v r="$ratio" -v min="$min_ratio" 'BEGIN { exit !(r >= min) }'; then
	echo "FAIL: wall-time ratio below $min_ratio" >&2
	status=1
fi
if ! awk -v r="$cpu_ratio" -v min="$min_cpu_ratio" 'BEGIN { exit !(r >= min) }'; then
	echo "FAIL: CPU-time ratio below $min_cpu_ratio" >&2
	status=1
fi
exit $status
