#!/usr/bin/env bash
# Captures Kamailio's lines as rsyslog writes them (real_syslog*.log): in a
# private mount and network namespace, with a /dev of its own where rsyslogd
# (8.2302, Debian 12; apt-get install rsyslog) creates /dev/log, runs
# kamailio-test.cfg with log_stderror=no, first with the plain log engine
# then with --log-engine=json:M, and sends svcrack and hostile.py at it.
# As root; the logs go to OUTDIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/sipguard-kamailio-syslog}
mkdir -p "$out"
cp "$here/../../../../contrib/kamailio/"*.cfg "$out/"
sed -i 's/^log_stderror=yes/log_stderror=no/' "$out/kamailio-test.cfg"
cat >"$out/rsyslog.conf" <<CONF
module(load="imuxsock")
global(workDirectory="$out")
*.* action(type="omfile" file="$out/traditional.log" template="RSYSLOG_TraditionalFileFormat")
*.* action(type="omfile" file="$out/rfc3339.log" template="RSYSLOG_FileFormat")
CONF
export here out
unshare --mount --net --propagation private bash -euc '
cd "$out"
ip link set lo up
mkdir -p newdev && mount -t tmpfs none newdev
for d in null zero urandom random; do touch newdev/$d; mount --bind /dev/$d newdev/$d; done
mkdir -p newdev/shm && mount -t tmpfs none newdev/shm
mount --rbind newdev /dev
rsyslogd -n -f "$out/rsyslog.conf" -i "$out/rsyslog.pid" & rs=$!
sleep 1
for opt in "" --log-engine=json:M; do
	/usr/sbin/kamailio -DD $opt -l udp:127.0.0.1:5060 -l "udp:[::1]:5060" -f kamailio-test.cfg & k=$!
	sleep 1.5
	timeout 20 svcrack -u 100 -r 1-2 127.0.0.1 >/dev/null 2>&1 || true
	timeout 20 python3 "$here/hostile.py" 127.0.0.1 || true
	timeout 20 python3 "$here/hostile.py" ::1 || true
	sleep 0.5; kill $k; wait $k || true
done
kill $rs; wait $rs || true
'
echo "logs in $out"
