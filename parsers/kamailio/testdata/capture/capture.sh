#!/usr/bin/env bash
# Rewrites the real_*.log captures' raw material: runs Kamailio 5.6 with
# contrib/kamailio/kamailio-test.cfg in a network namespace, once with the
# plain log engine and once with the JSON one, attacks it from another
# namespace (svcrack, svwar, SIPp over IPv6, hostile.py), lets a friend
# register, and leaves the two logs in OUTDIR. As root; needs kamailio,
# sipvicious, sip-tester, python3. The testdata files were cut from these
# logs by hand (see their header comments).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/sipguard-kamailio-capture}
mkdir -p "$out"
cp "$here/../../../../contrib/kamailio/"*.cfg "$out/"
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
pbx=sgcpbx-$id atk=sgcatk-$id
cleanup() { [ -n "${kpid:-}" ] && kill "$kpid" 2>/dev/null; ip netns del "$pbx" 2>/dev/null; ip netns del "$atk" 2>/dev/null; true; }
trap cleanup EXIT
for n in "$pbx" "$atk"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$pbx" link add vpbx type veth peer name vatk netns "$atk"
ip -n "$pbx" addr add 198.18.0.1/24 dev vpbx; ip -n "$pbx" addr add fd00:5::1/64 dev vpbx nodad
ip -n "$atk" addr add 198.18.0.2/24 dev vatk; ip -n "$atk" addr add fd00:5::2/64 dev vatk nodad
ip -n "$atk" addr add 198.18.0.3/24 dev vatk
ip -n "$pbx" link set vpbx up; ip -n "$atk" link set vatk up
a() { ip netns exec "$atk" timeout 30 "$@" >/dev/null 2>&1 || true; }
for engine in plain json; do
	opt=(); [ $engine = json ] && opt=(--log-engine=json:M)
	log="$out/kamailio-$engine.log"; : >"$log"
	(cd "$out" && exec ip netns exec "$pbx" kamailio -DD -E "${opt[@]}" -l udp:198.18.0.1:5060 -l 'udp:[fd00:5::1]:5060' -f kamailio-test.cfg >>"$log" 2>&1) &
	kpid=$!; sleep 1.5
	a svcrack -u 100 -r 1-3 198.18.0.1
	a svwar -m REGISTER -e100-102 198.18.0.1
	a svwar -m INVITE --force -e200-201 198.18.0.1
	a sipp -sf "$here/register.xml" -s 100 -au 100 -ap WRONG -i fd00:5::2 -p 5074 -m 2 -r 10 -nostdin -recv_timeout 2000 '[fd00:5::1]:5060'
	a sipp -sf "$here/register.xml" -s 200 -au 200 -ap friend-secret-200 -i 198.18.0.3 -p 5072 -m 1 -r 10 -nostdin -recv_timeout 2000 198.18.0.1:5060
	a python3 "$here/hostile.py" 198.18.0.1
	a python3 "$here/hostile.py" fd00:5::1
	sleep 0.3; kill "$kpid"; wait "$kpid" 2>/dev/null || true; kpid=
done
echo "logs in $out"
