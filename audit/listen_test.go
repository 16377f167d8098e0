package audit_test

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sipguard/sipguard/audit"
)

// sipPorts are [policy]'s default SIP ports.
var sipPorts = []audit.PortRange{{Proto: "udp", First: 5060, Last: 5060}, {Proto: "tcp", First: 5060, Last: 5060}, {Proto: "tcp", First: 5061, Last: 5061}}

const procHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// TestListeners: /proc/net's tables as the kernel writes them (addresses
// in host-order words, ports big-endian), listening TCP and unconnected
// UDP sockets only; damaged lines skipped.
func TestListeners(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/net/udp": {Data: []byte(procHeader +
			"   1: 0500000A:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0\n" + // 10.0.0.5:5060
			"   2: 0500000A:13C4 0300000A:13C4 01 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0\n" + // connected
			"   3: ZZ00000A:13C4 00000000:0000 07\n" +
			"   4: 0500000A 00000000:0000 07\n" +
			"   5: 0500000A:FFFFF 00000000:0000 07\n" +
			"garbage\n")},
		"proc/net/tcp": {Data: []byte(procHeader +
			"   0: 22D8B85D:13C5 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0\n" + // 93.184.216.34:5061
			"   1: 22D8B85D:13C4 0A00000A:C350 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0\n")}, // established
		"proc/net/tcp6": {Data: []byte(procHeader +
			"   0: 00000000000000000000000001000000:13C4 00000000000000000000000000000000:0000 0A 0\n" + // [::1]:5060
			"   1: 0000000000000000FFFF00000500000A:13C5 00000000000000000000000000000000:0000 0A 0\n" + // [::ffff:10.0.0.5]:5061
			"   2: B80D0120000000000000000001000000:13C4 00000000000000000000000000000000:0000 0A 0\n")}, // [2001:db8::1]:5060
	}
	var got []string
	for _, l := range audit.Listeners(fsys) {
		got = append(got, l.String())
	}
	want := "93.184.216.34:5061/tcp [::1]:5060/tcp 10.0.0.5:5061/tcp [2001:db8::1]:5060/tcp 10.0.0.5:5060/udp"
	if strings.Join(got, " ") != want {
		t.Errorf("listeners\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if l := audit.Listeners(fstest.MapFS{}); len(l) != 0 {
		t.Errorf("no /proc: %v", l)
	}
}

func TestPublic(t *testing.T) {
	for a, want := range map[string]bool{
		"93.184.216.34": true, "2a00:1450:4001::1": true, "::ffff:93.184.216.34": true,
		"10.1.2.3": false, "192.168.1.1": false, "172.16.0.1": false, "100.64.0.1": false, "127.0.0.1": false,
		"169.254.1.1": false, "198.51.100.7": false, "fd00::1": false, "fe80::1": false, "::1": false, "2001:db8::1": false,
	} {
		if got := audit.Public(netip.MustParseAddr(a)); got != want {
			t.Errorf("Public(%s) = %v", a, got)
		}
	}
}

// TestPolicyOpen: the finding needs all three: mode open, a SIP port
// listened on beyond loopback (on every address, or a public one), and
// a public address on the host.
func TestPolicyOpen(t *testing.T) {
	udp := func(lines ...string) fstest.MapFS {
		return fstest.MapFS{"proc/net/udp": {Data: []byte(procHeader + strings.Join(lines, ""))}}
	}
	any5060 := "   1: 00000000:13C4 00000000:0000 07 0\n"
	public := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("93.184.216.34")}
	cases := []struct {
		name   string
		fsys   fstest.MapFS
		policy string
		ports  []audit.PortRange
		addrs  []netip.Addr
		want   string // "" for no finding
	}{
		{"open, every address, public host", udp(any5060), "open", sipPorts, public, "SIP port 0.0.0.0:5060/udp listened on, the host has the public address 93.184.216.34"},
		{"default mode", udp(any5060), "", sipPorts, public, "0.0.0.0:5060/udp"},
		{"bound to the public address", udp("   1: 22D8B85D:13C4 00000000:0000 07 0\n"), "open", sipPorts, public, "93.184.216.34:5060/udp"},
		{"strict", udp(any5060), "strict", sipPorts, public, ""},
		{"responsive", udp(any5060), "responsive", sipPorts, public, ""},
		{"behind NAT", udp(any5060), "open", sipPorts, public[:1], ""},
		{"loopback only", udp("   1: 0100007F:13C4 00000000:0000 07 0\n"), "open", sipPorts, public, ""},
		{"private address only", udp("   1: 0500000A:13C4 00000000:0000 07 0\n"), "open", sipPorts, public, ""},
		{"not a SIP port", udp("   1: 00000000:1F90 00000000:0000 07 0\n"), "open", sipPorts, public, ""},
		{"FreePBX's chan_sip port in sip_ports", udp("   1: 00000000:1428 00000000:0000 07 0\n"), "open",
			append(sipPorts, audit.PortRange{Proto: "udp", First: 5160, Last: 5160}), public, "0.0.0.0:5160/udp"},
		{"nothing listens", fstest.MapFS{}, "open", sipPorts, public, ""},
	}
	for _, c := range cases {
		c.fsys["etc/asterisk/asterisk.conf"] = &fstest.MapFile{Data: []byte("[options]\n")}
		h := audit.Host{FS: c.fsys, Dir: "/etc/asterisk", Now: now,
			Self: &audit.Self{File: "/etc/sipguard/rules.toml", Allow: []string{"203.0.113.5"}, Policy: c.policy, SIPPorts: c.ports, HostAddrs: c.addrs}}
		r := run(t, h)
		got := find(r, "SIPGUARD-POLICY-OPEN")
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("%s: %+v", c.name, got)
		case c.want != "" && (len(got) != 1 || !strings.Contains(got[0].Detail, c.want)):
			t.Errorf("%s: %+v; want one finding with %q", c.name, got, c.want)
		}
	}
}

// TestNoAllowlistTrunks: a [[trunk]] is a provider in the allowlist.
func TestNoAllowlistTrunks(t *testing.T) {
	for trunks, want := range map[int]int{0: 1, 1: 0} {
		fsys := fstest.MapFS{"etc/asterisk/asterisk.conf": {Data: []byte("[options]\n")}}
		h := audit.Host{FS: fsys, Dir: "/etc/asterisk", Now: now, Self: &audit.Self{File: "rules.toml", Trunks: trunks}}
		if got := find(run(t, h), "SIPGUARD-NO-ALLOWLIST"); len(got) != want {
			t.Errorf("%d trunks: %d findings, want %d", trunks, len(got), want)
		}
	}
}
