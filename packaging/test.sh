#!/usr/bin/env bash
# Test the Debian package for real, as root on Debian 12 with Go: build it
# with packaging/deb/build.sh, install it, check every file, the unit
# (systemd-analyze) and the unit's capabilities (a log only
# CAP_DAC_READ_SEARCH can read, a syslog port only CAP_NET_BIND_SERVICE can
# bind), the logrotate file beside Asterisk's own, an upgrade that keeps a
# modified config, removal and purge.
#
# Everything it creates (temporary directory, test user, the package) is
# removed on exit, failed or not, so it can run again at once. It refuses to
# run where sipguard is installed other than by an earlier run of itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
export DEBIAN_FRONTEND=noninteractive

# Versions of the two test packages; an installed version with "~pkgtest"
# was left by a run of this script that could not clean up.
v1=0.0.1~pkgtest1
v2=0.0.2~pkgtest2
testuser=sipguard-pkgtest
unit=/lib/systemd/system/sipguard.service
wants=/etc/systemd/system/multi-user.target.wants/sipguard.service

step() { echo "== $*"; }
ok() { echo "   ok: $*"; }
fail() {
	echo "packaging/test.sh: FAIL: $*" >&2
	exit 1
}

# quiet runs a command, showing its output only when it fails.
quiet() {
	if ! "$@" >"$tmp/quiet.out" 2>&1; then
		cat "$tmp/quiet.out" >&2
		fail "$*"
	fi
}

installed_version() {
	dpkg-query -W -f='${db:Status-Status} ${Version}' sipguard 2>/dev/null | awk '$1 != "not-installed" { print $2 }'
}

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges the sipguard package)"

tmp=""
policy_created=""
daemon_pid=""
cleanup() {
	local rc=$?
	set +e
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	if [ -n "$(installed_version)" ]; then
		dpkg --purge sipguard >/dev/null 2>&1 || echo "packaging/test.sh: could not purge sipguard" >&2
	fi
	if id "$testuser" >/dev/null 2>&1; then
		userdel "$testuser" 2>/dev/null
		getent group "$testuser" >/dev/null && groupdel "$testuser"
	fi
	[ -n "$policy_created" ] && rm -f /usr/sbin/policy-rc.d
	[ -n "$tmp" ] && rm -rf "$tmp"
	[ $rc = 0 ] && echo "== packaging: all passed" || echo "== packaging: FAILED" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "preconditions"
case $(installed_version) in
"") ;;
*~pkgtest*)
	echo "   purging sipguard $(installed_version) left by an earlier run"
	dpkg --purge sipguard >/dev/null
	;;
*) fail "sipguard $(installed_version) is installed; this test would purge it" ;;
esac
for p in /usr/sbin/sipguard /usr/bin/sipguard /etc/sipguard /var/lib/sipguard "$unit" /etc/systemd/system/sipguard.service; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p exists outside the package; this test would install over it and purge it"
done
if id "$testuser" >/dev/null 2>&1; then
	userdel "$testuser"
	getent group "$testuser" >/dev/null && groupdel "$testuser"
fi
tmp=$(mktemp -d /tmp/sipguard-pkgtest.XXXXXX)

# What this test needs beyond what ./test.sh installs; no service starts.
extra=()
command -v logrotate >/dev/null || extra+=(logrotate)
command -v ss >/dev/null || extra+=(iproute2)
if [ ${#extra[@]} -gt 0 ]; then
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		policy_created=1
	fi
	quiet apt-get install -y --no-install-recommends "${extra[@]}"
	if [ -n "$policy_created" ]; then
		rm -f /usr/sbin/policy-rc.d
		policy_created=""
	fi
	ok "installed ${extra[*]}"
fi

step "build $v1 and $v2 with packaging/deb/build.sh"
quiet packaging/deb/build.sh --version "$v1" -o "$tmp/deb"
quiet packaging/deb/build.sh --version "$v2" -o "$tmp/deb"
arch=$(dpkg --print-architecture)
deb1=$tmp/deb/sipguard_${v1}_$arch.deb
deb2=$tmp/deb/sipguard_${v2}_$arch.deb
[ -f "$deb1" ] && [ -f "$deb2" ] || fail "build.sh did not write $deb1 and $deb2"
ok "$(basename "$deb1"), $(basename "$deb2")"

# v2 ships a changed rules.toml, so that upgrading over a modified one is a
# real conffile conflict for dpkg to settle.
quiet dpkg-deb -R "$deb2" "$tmp/v2"
echo "# changed in $v2" >>"$tmp/v2/etc/sipguard/rules.toml"
(cd "$tmp/v2" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$tmp/v2/DEBIAN/md5sums"
quiet dpkg-deb --root-owner-group -Zxz --build "$tmp/v2" "$deb2"

step "package contents (dpkg-deb -c)"
dpkg-deb -c "$deb1" >"$tmp/listing"
awk '$2 != "root/root" { bad = 1; print "   not root/root: " $0 } END { exit bad }' "$tmp/listing" || fail "files not owned by root"
awk '{ print $6 }' "$tmp/listing" | sed 's#^\./#/#' >"$tmp/paths"
while read -r p; do
	case $p in
	/ | /etc/ | /lib/ | /lib/systemd/ | /lib/systemd/system/ | /usr/ | /usr/sbin/ | /usr/share/ | /usr/share/doc/ | \
		/usr/share/man/ | /usr/share/man/man8/ | /usr/share/lintian/ | /usr/share/lintian/overrides/ | /etc/logrotate.d/ | \
		/usr/share/bash-completion/ | /usr/share/bash-completion/completions/ | /usr/share/zsh/ | /usr/share/zsh/vendor-completions/ | \
		/usr/share/fish/ | /usr/share/fish/vendor_completions.d/) ;;
	/usr/sbin/sipguard | /etc/sipguard/ | /etc/sipguard/rules.toml | /etc/logrotate.d/sipguard | "$unit" | \
		/usr/share/doc/sipguard/* | /usr/share/man/man8/sipguard.8.gz | /usr/share/lintian/overrides/sipguard | \
		/usr/share/bash-completion/completions/sipguard | /usr/share/zsh/vendor-completions/_sipguard | \
		/usr/share/fish/vendor_completions.d/sipguard.fish) ;;
	*) fail "unexpected path in the package: $p" ;;
	esac
done <"$tmp/paths"
grep -qx /usr/share/doc/sipguard/examples/asterisk/logger.conf "$tmp/paths" || fail "examples missing"
ok "$(wc -l <"$tmp/paths") entries, all root/root, all under sipguard's own paths"

step "install $v1 (dpkg -i)"
quiet dpkg -i "$deb1"
[ "$(installed_version)" = "$v1" ] || fail "installed version is $(installed_version); want $v1"
grep -q "not enabled" "$tmp/quiet.out" || fail "postinst did not say the service is not enabled"
[ ! -e "$wants" ] || fail "installation enabled the service"
ok "installed, not enabled"

# check_file PATH MODE: a root-owned regular file with this mode.
check_file() {
	[ -f "$1" ] && [ ! -L "$1" ] || fail "$1: missing"
	local got
	got=$(stat -c '%a %U:%G' "$1")
	[ "$got" = "$2 root:root" ] || fail "$1: got $got; want $2 root:root"
}
check_file /usr/sbin/sipguard 755
check_file /etc/sipguard/rules.toml 640
check_file /etc/logrotate.d/sipguard 644
check_file "$unit" 644
check_file /usr/share/doc/sipguard/copyright 644
check_file /usr/share/doc/sipguard/README.Debian 644
check_file /usr/share/doc/sipguard/README.md.gz 644
check_file /usr/share/doc/sipguard/changelog.gz 644
check_file /usr/share/doc/sipguard/examples/asterisk/logger.conf 644
check_file /usr/share/doc/sipguard/examples/systemd/sipguard.service 644
check_file /usr/share/lintian/overrides/sipguard 644
[ "$(stat -c '%a' /etc/sipguard)" = 755 ] || fail "/etc/sipguard: mode $(stat -c '%a' /etc/sipguard); want 755"
cmp -s /etc/sipguard/rules.toml rules.toml || fail "/etc/sipguard/rules.toml differs from rules.toml"
cmp -s "$unit" contrib/systemd/sipguard.service || fail "$unit differs from contrib/systemd/sipguard.service"
cmp -s /etc/logrotate.d/sipguard contrib/logrotate/sipguard || fail "/etc/logrotate.d/sipguard differs from contrib/logrotate/sipguard"
zcat /usr/share/doc/sipguard/README.md.gz | cmp -s - README.md || fail "README.md.gz differs from README.md"
check_file /usr/share/man/man8/sipguard.8.gz 644
zcat /usr/share/man/man8/sipguard.8.gz | grep -q '^\.SS import$' || fail "sipguard.8.gz is not sipguard's man page"
check_file /usr/share/bash-completion/completions/sipguard 644
check_file /usr/share/zsh/vendor-completions/_sipguard 644
check_file /usr/share/fish/vendor_completions.d/sipguard.fish 644
bash -n /usr/share/bash-completion/completions/sipguard || fail "the bash completion does not parse"
ok "files in place with their modes, identical to the repository's"

out=$(/usr/sbin/sipguard version)
[[ $out == *"$v1"* ]] || fail "sipguard version printed \"$out\"; want $v1"
ok "sipguard version: $out"
out=$(/usr/sbin/sipguard check -c /etc/sipguard/rules.toml) || fail "sipguard check: $out"
ok "sipguard check: $out"

conffiles=$(dpkg-query -W -f='${Conffiles}\n' sipguard)
for c in /etc/sipguard/rules.toml /etc/logrotate.d/sipguard; do
	grep -q "^ $c [0-9a-f]\{32\}$" <<<"$conffiles" || fail "$c is not a registered conffile: $conffiles"
done
ok "conffiles registered: /etc/sipguard/rules.toml, /etc/logrotate.d/sipguard"

step "the unit (systemd-analyze)"
if command -v systemd-analyze >/dev/null; then
	man=()
	# Documentation=man:sipguard(8) is checked where man can look it up.
	command -v man >/dev/null || man=(--man=no)
	if ! out=$(systemd-analyze verify "${man[@]}" "$unit" 2>&1) || grep -q sipguard <<<"$out"; then
		echo "$out" >&2
		fail "systemd-analyze verify $unit"
	fi
	ok "systemd-analyze verify $unit${man:+ (${man[*]}: no man command)}"
	if score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p') && [ -n "$score" ]; then
		# 2.5 was the score of the unit before it could read the logs.
		if [ "$(systemctl --version | awk 'NR == 1 { print $2 }')" = 252 ] && awk -v s="$score" 'BEGIN { exit !(s > 2.5) }'; then
			fail "systemd-analyze security: exposure $score; want at most 2.5"
		fi
		ok "systemd-analyze security: exposure $score"
	fi
else
	echo "   skipped: no systemd-analyze"
fi

step "the unit's reload checks the config first"
mapfile -t reload < <(sed -n 's/^ExecReload=//p' "$unit")
[ ${#reload[@]} -eq 2 ] && [[ ${reload[0]} == "/usr/sbin/sipguard check "* ]] && [[ ${reload[1]} == *"kill -HUP"* ]] ||
	fail "ExecReload= of $unit: ${reload[*]}; want sipguard check, then kill -HUP"
cp /etc/sipguard/rules.toml "$tmp/rules.toml.keep"
printf '[engine]\nmax_trakced = 5\n' >>/etc/sipguard/rules.toml
if out=$(bash -c "${reload[0]}" 2>&1); then
	cp "$tmp/rules.toml.keep" /etc/sipguard/rules.toml
	fail "ExecReload's check passed an invalid config: $out"
fi
cp "$tmp/rules.toml.keep" /etc/sipguard/rules.toml
out=$(bash -c "${reload[0]}" 2>&1) || fail "ExecReload's check refused the shipped config: $out"
ok "an invalid config fails the reload before the daemon is signalled"

step "the unit's capabilities, for real"
mapfile -t caps < <(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | sed '/^$/d')
[ ${#caps[@]} -gt 0 ] || fail "no CapabilityBoundingSet= in $unit"
[[ ${caps[*]} != *'~'* ]] || fail "CapabilityBoundingSet= in $unit is a deny list; this test reads an allow list"
# setpriv_caps CAP...: the setpriv --bounding-set argument keeping only these.
setpriv_caps() {
	local arg=-all c
	for c in "$@"; do
		[ -n "$c" ] || continue
		c=${c,,}
		arg+=",+${c#cap_}"
	done
	echo "$arg"
}
for c in CAP_DAC_READ_SEARCH CAP_NET_BIND_SERVICE CAP_NET_ADMIN; do
	[[ " ${caps[*]} " == *" $c "* ]] || fail "$unit lacks $c"
done
with=$(setpriv_caps "${caps[@]}")
without_dac=$(setpriv_caps "${caps[@]/CAP_DAC_READ_SEARCH/}")
without_bind=$(setpriv_caps "${caps[@]/CAP_NET_BIND_SERVICE/}")
# as CAPS CMD...: run as root with the bounding set CAPS and nothing
# inheritable, as systemd runs the unit's root process.
as() {
	local bounding=$1
	shift
	setpriv --reuid=0 --inh-caps=-all --ambient-caps=-all --bounding-set="$bounding" -- "$@"
}
status=$(as "$with" cat /proc/self/status)
eff=$(awk '/^CapEff:/ { print $2 }' <<<"$status")
bnd=$(awk '/^CapBnd:/ { print $2 }' <<<"$status")
[ "$eff" = "$bnd" ] || fail "effective capabilities $eff; want the bounding set $bnd"
ok "the unit's set: ${caps[*]} (effective $eff)"

# An Asterisk log as Asterisk leaves it: asterisk:asterisk, 0640, in a
# directory of its own with mode 0750.
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$testuser"
logdir=$tmp/asterisk
install -d -m 0750 -o "$testuser" -g "$testuser" "$logdir"
log=$logdir/messages.log
for s in 01 02 03 04 05 06; do
	echo "[2026-03-02 09:14:$s] NOTICE[4121] chan_sip.c: Registration from '<sip:301@203.0.113.10>' failed for '198.51.100.7:5060' - Wrong password"
done >"$log"
chown "$testuser:$testuser" "$log"
chmod 0640 "$log"
scan() { as "$1" /usr/sbin/sipguard scan -c /etc/sipguard/rules.toml "$log" 2>&1; }
out=$(scan "$with") || fail "sipguard scan with the unit's capabilities: $out"
grep -q '^198\.51\.100\.7 .*burst' <<<"$out" || fail "sipguard scan did not ban 198.51.100.7: $out"
ok "reads a 0640 $testuser log with them (198.51.100.7 banned by rule burst)"
if out=$(scan "$without_dac"); then
	fail "sipguard scan read the log without CAP_DAC_READ_SEARCH: this test proves nothing"
fi
grep -qi "permission denied" <<<"$out" || fail "sipguard scan without CAP_DAC_READ_SEARCH failed otherwise: $out"
ok "without CAP_DAC_READ_SEARCH: permission denied"

# A syslog source on port 514, in a network namespace of its own (where
# ports below 1024 are privileged whatever the host's sysctl says).
cat >"$tmp/syslog.toml" <<EOF
[daemon]
state_dir = "$tmp/state"
socket = "$tmp/sipguard.sock"
[firewall]
backend = "dry-run"
[[source]]
name = "syslog"
type = "syslog"
listen = ["udp://0.0.0.0:514"]
senders = ["127.0.0.1/32"]
parser = "yeastar"
EOF
# syslog_port CAPS: runs the daemon with CAPS and sets port to "bound" when
# it listens on UDP port 514, to "refused" when binding failed. (Not run in
# a $(...) subshell: cleanup must see daemon_pid.)
syslog_port() {
	: >"$tmp/daemon.log"
	unshare --net -- setpriv --reuid=0 --inh-caps=-all --ambient-caps=-all --bounding-set="$1" -- \
		/usr/sbin/sipguard run -c "$tmp/syslog.toml" >"$tmp/daemon.log" 2>&1 &
	daemon_pid=$!
	local result="" _
	for _ in $(seq 50); do
		sleep 0.1
		if [ "$(readlink "/proc/$daemon_pid/exe" 2>/dev/null)" = /usr/sbin/sipguard ] &&
			[ -n "$(nsenter -t "$daemon_pid" -n ss -Hlun 'sport = :514' 2>/dev/null)" ]; then
			result=bound
			break
		fi
		if grep -q "bind: permission denied" "$tmp/daemon.log"; then
			result=refused
			break
		fi
		kill -0 "$daemon_pid" 2>/dev/null || break
	done
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=""
	port=${result:-neither}
}
syslog_port "$with"
[ "$port" = bound ] || { cat "$tmp/daemon.log" >&2; fail "sipguard run did not bind UDP port 514 with the unit's capabilities"; }
ok "binds UDP port 514 with them"
syslog_port "$without_bind"
[ "$port" = refused ] || { cat "$tmp/daemon.log" >&2; fail "sipguard run bound port 514 without CAP_NET_BIND_SERVICE: this test proves nothing"; }
ok "without CAP_NET_BIND_SERVICE: permission denied"

step "logrotate beside Asterisk's own configuration"
# Asterisk's /etc/logrotate.d/asterisk as its "make install-logrotate"
# writes it (contrib/scripts/asterisk.logrotate), and the installed
# /etc/logrotate.d/sipguard, both pointed at $logdir.
mkdir "$tmp/logrotate.d"
cat >"$tmp/logrotate.d/asterisk" <<EOF
$logdir/debug $logdir/console $logdir/full $logdir/messages $logdir/*log {
	weekly
	missingok
	rotate 52
	compress
	delaycompress
	notifempty
	create 640 root root
	sharedscripts
	postrotate
		true
	endscript
}
EOF
sed "s#/var/log/asterisk#$logdir#g" /etc/logrotate.d/sipguard >"$tmp/logrotate.d/sipguard"
for f in full security.log sipguard.json queue_log; do
	echo "line" >"$logdir/$f"
	chown "$testuser:$testuser" "$logdir/$f"
	chmod 0640 "$logdir/$f"
done
out=$(logrotate -d -s "$tmp/logrotate.state" "$tmp/logrotate.d" 2>&1) || { echo "$out" >&2; fail "logrotate -d"; }
grep -qi "error" <<<"$out" && { echo "$out" >&2; fail "logrotate reports an error"; }
[ "$(grep -c "considering log $logdir/sipguard.json" <<<"$out")" = 1 ] || { echo "$out" >&2; fail "sipguard.json not rotated exactly once"; }
ok "no duplicate entry; sipguard.json rotated by /etc/logrotate.d/sipguard only"
quiet logrotate -f -s "$tmp/logrotate.state" "$tmp/logrotate.d/sipguard"
[ -f "$logdir/sipguard.json.1" ] || fail "logrotate -f did not rotate sipguard.json"
got=$(stat -c '%a %U:%G' "$logdir/sipguard.json")
[ "$got" = "640 $testuser:$testuser" ] || fail "the new sipguard.json is $got; want 640 $testuser:$testuser"
ok "rotated: a new sipguard.json with the old one's owner and mode"

step "upgrade to $v2 over a modified config, the service enabled"
echo "# local change" >>/etc/sipguard/rules.toml
quiet systemctl enable sipguard.service
[ -L "$wants" ] || fail "systemctl enable made no $wants"
install -d -m 0700 /var/lib/sipguard
echo state >/var/lib/sipguard/bans.state
quiet dpkg -i --force-confold "$deb2" </dev/null
[ "$(installed_version)" = "$v2" ] || fail "installed version is $(installed_version); want $v2"
[[ $(/usr/sbin/sipguard version) == *"$v2"* ]] || fail "sipguard version after the upgrade: $(/usr/sbin/sipguard version)"
grep -qx "# local change" /etc/sipguard/rules.toml || fail "the modified rules.toml was replaced"
grep -qx "# changed in $v2" /etc/sipguard/rules.toml.dpkg-dist || fail "no rules.toml.dpkg-dist with $v2's version"
quiet /usr/sbin/sipguard check -c /etc/sipguard/rules.toml
[ -L "$wants" ] || fail "the upgrade disabled the service"
ok "$v2 installed; the modified rules.toml kept (the new one as rules.toml.dpkg-dist); still enabled"

step "remove, then purge"
quiet dpkg --remove sipguard
[ ! -e /usr/sbin/sipguard ] && [ ! -e "$unit" ] || fail "dpkg --remove left the binary or the unit"
[ -f /etc/sipguard/rules.toml ] && [ -f /var/lib/sipguard/bans.state ] || fail "dpkg --remove deleted the config or the state"
ok "removed: binary and unit gone; config and state kept"
quiet dpkg --purge sipguard
[ -z "$(installed_version)" ] || fail "sipguard still known to dpkg after purge"
for p in /usr/sbin/sipguard "$unit" /etc/sipguard /var/lib/sipguard /etc/logrotate.d/sipguard /usr/share/doc/sipguard \
	"$wants" /etc/systemd/system/sipguard.service /var/lib/systemd/deb-systemd-helper-enabled/sipguard.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-masked/sipguard.service; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p left after purge"
done
ok "purged: binary, unit, /etc/sipguard, /var/lib/sipguard, enablement all gone"
