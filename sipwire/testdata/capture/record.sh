#!/usr/bin/env bash
# Re-records the wire sensor's golden captures (../*.pcap): Kamailio 5.6
# with contrib/kamailio/kamailio-test.cfg as the PBX in one network
# namespace, attack tools and phones in another, tcpdump on the PBX's
# link. As root; needs kamailio, sipvicious, sip-tester (sipp), tcpdump,
# python3. The expected events and bans of each capture are in
# cmd/sipguard/scanpcap_test.go (wireCaptures) and the .golden files
# (go test ./cmd/sipguard -run TestScanPcap -update rewrites those).
#
#   right.pcap     SIPp, the right password, 3 registrations (401 -> 200)
#   wrong.pcap     SIPp, a wrong password, 5 registrations (401 -> 401)
#   svcrack.pcap   svcrack -u 100 -r 1-10 (tcpdump -i any: Linux SLL2)
#   svwar.pcap     svwar -m REGISTER -e100-110, then 33 s for user 100's
#                  unanswered challenge, then an OPTIONS to mark the time
#   invite.pcap    svwar -m INVITE -e200-205 and sipp -sn uac (5 INVITEs);
#                  svwar stops at a varying extension (7 and 9 events in
#                  two recordings): check the count after re-recording
#   ipv6.pcap      SIPp over IPv6: a wrong password 5 times, the right once
#   flood.pcap.gz  SIPp, a wrong password 300 times at 200 a second
#   forged.pcap    REGISTERs whose Via names a friend (sent-by and maddr),
#                  Kamailio with reply_to_via=1 answering where the Via says
#   tcp.pcap       SIPp over TCP, a wrong password 5 times
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/..}
work=$(mktemp -d /tmp/sipguard-wire-record.XXXXXX)
cp "$here/../../../contrib/kamailio/"*.cfg "$work/"
# Variants: answering where the Via says, and listening on TCP.
sed 's/^debug=2$/debug=2\nreply_to_via=1/' "$work/kamailio-test.cfg" >"$work/via.cfg"
sed 's/^disable_tcp=yes$/disable_tcp=no/' "$work/kamailio-test.cfg" >"$work/tcp.cfg"
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
pbx=sgwpbx-$id cli=sgwcli-$id
kpid= tpid=
cleanup() {
	set +e
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null
	[ -n "$kpid" ] && kill "$kpid" 2>/dev/null
	ip netns del "$pbx" 2>/dev/null
	ip netns del "$cli" 2>/dev/null
	rm -rf "$work"
	true
}
trap cleanup EXIT
for n in "$pbx" "$cli"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$pbx" link add vpbx type veth peer name vcli netns "$cli"
ip -n "$pbx" addr add 198.18.0.1/24 dev vpbx
ip -n "$cli" addr add 198.18.0.2/24 dev vcli # the attacker
ip -n "$cli" addr add 198.18.0.3/24 dev vcli # the friend
# IPv6: the client in a /64 of its own (sipguard bans IPv6 per /64).
ip -n "$pbx" addr add fd00:51::1/64 dev vpbx nodad
ip -n "$cli" addr add fd00:61::2/64 dev vcli nodad
ip -n "$pbx" link set vpbx up; ip -n "$cli" link set vcli up
ip -n "$pbx" -6 route add fd00:61::/64 dev vpbx
ip -n "$cli" -6 route add fd00:51::/64 dev vcli

kamailio() { # CONFIG [-l ADDRESS]...
	local cfg=$1
	shift
	(cd "$work" && exec ip netns exec "$pbx" kamailio -DD -E -l udp:198.18.0.1:5060 -l 'udp:[fd00:51::1]:5060' "$@" \
		-f "$cfg" >>"$work/kamailio.log" 2>&1) &
	kpid=$!
	sleep 1.5
	if ! kill -0 "$kpid" 2>/dev/null || ! grep -q "Listening on" "$work/kamailio.log"; then
		cat "$work/kamailio.log" >&2
		echo "kamailio did not start" >&2
		exit 1
	fi
}
start() { # NAME [IFACE]
	ip netns exec "$pbx" tcpdump -q -U -i "${2:-vpbx}" -w "$work/$1.pcap" port 5060 2>"$work/tcpdump.err" &
	tpid=$!
	for _ in $(seq 50); do grep -q "listening on" "$work/tcpdump.err" && break; sleep 0.1; done
	sleep 0.2
}
stop() { # NAME
	sleep 1
	kill "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=
	cp "$work/$1.pcap" "$dest/$1.pcap"
	echo "$1.pcap: $(stat -c %s "$dest/$1.pcap") bytes"
}
c() { ip netns exec "$cli" timeout "$@" >/dev/null 2>&1 || true; }
sipp_register() { # SOURCE PORT USER PASSWORD COUNT PBX [sipp options]
	local src=$1 port=$2 user=$3 pw=$4 n=$5 to=$6
	shift 6
	c 20 sipp -sf "$here/register.xml" -s "$user" -au "$user" -ap "$pw" -i "$src" -p "$port" -m "$n" -r "${rate:-5}" \
		-nostdin -recv_timeout 2000 "$@" "$to"
}

kamailio kamailio-test.cfg
start right
sipp_register 198.18.0.3 5072 200 friend-secret-200 3 198.18.0.1:5060
stop right

start wrong
sipp_register 198.18.0.2 5074 100 WRONG 5 198.18.0.1:5060
stop wrong

start svcrack any
c 5 svcrack -u 100 -r 1-10 198.18.0.1
stop svcrack

start svwar
c 10 svwar -m REGISTER -e100-110 198.18.0.1
sleep 33
c 5 svmap 198.18.0.1
stop svwar

start invite
c 10 svwar -m INVITE --force -e200-205 198.18.0.1
c 10 sipp -sn uac -i 198.18.0.2 -p 5073 -m 5 -r 5 -nostdin -recv_timeout 2000 198.18.0.1:5060
stop invite

start ipv6
sipp_register fd00:61::2 5076 100 WRONG 5 '[fd00:51::1]:5060'
sipp_register fd00:61::2 5078 100 Hj7-kq2-Lp9-x100 1 '[fd00:51::1]:5060'
stop ipv6

start flood
rate=200 sipp_register 198.18.0.2 5082 100 WRONG 300 198.18.0.1:5060
stop flood
gzip -9nf "$dest/flood.pcap"
kill "$kpid"; wait "$kpid" 2>/dev/null || true; kpid=

kamailio via.cfg
start forged
c 10 python3 "$here/forged_via.py" 198.18.0.1 198.18.0.3 6
stop forged
kill "$kpid"; wait "$kpid" 2>/dev/null || true; kpid=

kamailio tcp.cfg -l tcp:198.18.0.1:5060
start tcp
sipp_register 198.18.0.2 5080 100 WRONG 5 198.18.0.1:5060 -t t1
stop tcp
