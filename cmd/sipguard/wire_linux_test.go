package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/internal/testutil"
)

// wireNet is the network of a wire sensor test: Kamailio as the PBX, an
// attacker and a friend, and sipguard with [wire] on and no log source.
// On the PBX (hook output):
//
//	attacker ──veth── pbx (Kamailio, sipguard, nftables) ──veth── friend
//
// In gateway mode (hook forward), sipguard runs on a router in front:
//
//	attacker ──veth── router (sipguard, nftables) ──veth── pbx (Kamailio)
//	                     └──veth── friend
type wireNet struct {
	pbx, fw, atk, frd string // namespaces; fw runs sipguard (pbx or the router)
	gateway           bool
	// The PBX's addresses as the attacker and the friend reach it.
	atkPBX4, atkPBX6, frdPBX4, frdPBX6 string
	dir, kamLog                        string
	kamailio                           int // Kamailio's process group
}

func newWireNet(t testing.TB, gateway bool) *wireNet {
	t.Helper()
	w := &wireNet{pbx: atkNetns(t, "wpbx"), atk: atkNetns(t, "watk"), frd: atkNetns(t, "wfrd"), gateway: gateway, dir: t.TempDir()}
	w.kamLog = filepath.Join(w.dir, "kamailio.log")
	w.fw = w.pbx
	side := w.pbx // the namespace the attacker and friend links end in
	if gateway {
		w.fw = atkNetns(t, "wrtr")
		side = w.fw
	}
	atkRun(t, "ip", "-n", side, "link", "add", "to-atk", "type", "veth", "peer", "name", "eth0", "netns", w.atk)
	atkRun(t, "ip", "-n", side, "link", "add", "to-frd", "type", "veth", "peer", "name", "eth0", "netns", w.frd)
	addrs := [][]string{
		{side, "198.18.1.1/24", "to-atk"}, {side, "198.18.2.1/24", "to-frd"},
		{w.atk, "198.18.1.2/24", "eth0"}, {w.atk, "198.18.1.3/24", "eth0"}, {w.atk, "198.18.1.4/24", "eth0"},
		{w.frd, "198.18.2.2/24", "eth0"},
		{side, "fd00:52::1/64", "to-frd"}, {w.atk, "fd00:61::2/64", "eth0"}, {w.frd, "fd00:52::2/64", "eth0"},
	}
	links := [][]string{{side, "to-atk"}, {side, "to-frd"}, {w.atk, "eth0"}, {w.frd, "eth0"}}
	if gateway {
		// The attacker's /64 is the router's link: the router bans in
		// forward only, so its own address in the banned /64 is no matter.
		atkRun(t, "ip", "-n", w.fw, "link", "add", "to-pbx", "type", "veth", "peer", "name", "eth0", "netns", w.pbx)
		addrs = append(addrs, []string{w.fw, "fd00:61::1/64", "to-atk"},
			[]string{w.fw, "198.18.3.1/24", "to-pbx"}, []string{w.fw, "fd00:53::1/64", "to-pbx"},
			[]string{w.pbx, "198.18.3.2/24", "eth0"}, []string{w.pbx, "fd00:53::2/64", "eth0"})
		links = append(links, []string{w.fw, "to-pbx"}, []string{w.pbx, "eth0"})
		w.atkPBX4, w.atkPBX6, w.frdPBX4, w.frdPBX6 = "198.18.3.2", "fd00:53::2", "198.18.3.2", "fd00:53::2"
	} else {
		addrs = append(addrs, []string{side, "fd00:51::1/64", "to-atk"})
		w.atkPBX4, w.atkPBX6, w.frdPBX4, w.frdPBX6 = "198.18.1.1", "fd00:51::1", "198.18.2.1", "fd00:52::1"
	}
	for _, a := range addrs {
		atkRun(t, "ip", "-n", a[0], "addr", "add", a[1], "dev", a[2], "nodad")
	}
	for _, l := range links {
		atkRun(t, "ip", "-n", l[0], "link", "set", l[1], "up")
	}
	if gateway {
		atkRun(t, "ip", "netns", "exec", w.fw, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
		for _, r := range [][]string{{w.atk, "198.18.1.1", "fd00:61::1"}, {w.frd, "198.18.2.1", "fd00:52::1"}, {w.pbx, "198.18.3.1", "fd00:53::1"}} {
			atkRun(t, "ip", "-n", r[0], "route", "add", "default", "via", r[1])
			atkRun(t, "ip", "-n", r[0], "-6", "route", "add", "default", "via", r[2])
		}
	} else {
		atkRun(t, "ip", "-n", w.pbx, "-6", "route", "add", "fd00:61::/64", "dev", "to-atk")
		atkRun(t, "ip", "-n", w.atk, "-6", "route", "add", "fd00:51::/64", "dev", "eth0")
	}
	return w
}

// source makes src the source address of the attacker's IPv4 packets to
// the PBX (SIPVicious binds 0.0.0.0 whatever -b says).
func (w *wireNet) source(t testing.TB, src string) {
	t.Helper()
	if w.gateway {
		atkRun(t, "ip", "-n", w.atk, "route", "replace", "198.18.3.0/24", "via", "198.18.1.1", "dev", "eth0", "src", src)
		return
	}
	atkSource(t, w.atk, src)
}

// startKamailio runs Kamailio with the shipped test configuration (edit,
// if not nil, changes kamailio-test.cfg). It still logs every failure
// through sipguard.cfg: sipguard does not read that log, the test does,
// as a witness of what the PBX refused.
func (w *wireNet) startKamailio(t testing.TB, edit func(string) string) {
	t.Helper()
	for _, f := range []string{"sipguard.cfg", "kamailio-test.cfg"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "kamailio", f))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil && f == "kamailio-test.cfg" {
			b = []byte(edit(string(b)))
		}
		if err := os.WriteFile(filepath.Join(w.dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"ip", "netns", "exec", w.pbx, "kamailio", "-DD", "-E", "-f", "kamailio-test.cfg"}
	for _, a := range []string{w.atkPBX4, "[" + w.atkPBX6 + "]", w.frdPBX4, "[" + w.frdPBX6 + "]"} {
		if l := "udp:" + a + ":5060"; !strings.Contains(strings.Join(args, " "), l) {
			args = append(args, "-l", l)
		}
	}
	w.kamailio = atkStartProc(t, w.dir, w.kamLog, args...).Process.Pid
	if !waitFor(10*time.Second, func() bool { return atkFileHas(w.kamLog, "Listening on") }) {
		t.Fatalf("kamailio did not start:\n%s", atkReadFile(w.kamLog))
	}
}

// startSipguard writes a configuration with [wire] on and no [[source]],
// one rule of maxRetry failures, allow the addresses allowlisted
// (loopback besides), and runs the daemon where the firewall is.
func (w *wireNet) startSipguard(t testing.TB, bin string, maxRetry int, allow ...string) (string, *daemonProc) {
	t.Helper()
	hook, firewall, pbx := "output", "", ""
	if w.gateway {
		hook, firewall = "forward", "[firewall]\nhooks = [\"forward\"]\n"
		pbx = fmt.Sprintf("pbx = [%q, %q]", w.atkPBX4, w.atkPBX6)
	}
	allowed, _ := json.Marshal(append([]string{"127.0.0.0/8", "::1"}, allow...))
	config := filepath.Join(w.dir, "rules.toml")
	// source = []: not even the shipped rules.toml's Asterisk source.
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`source = []

[daemon]
state_dir = %q
socket = %q
%s
[allow]
addresses = %s

[wire]
enabled = true
hook = %q
%s

[[rule]]
name = "attack"
max_retry = %d
find_time = "1m"
ban_time = "10m"
`, filepath.Join(w.dir, "state"), filepath.Join(w.dir, "sipguard.sock"), firewall, allowed, hook, pbx, maxRetry)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := atkStartDaemon(t, bin, w.fw, config)
	if !waitFor(10*time.Second, func() bool { return atkCtl(bin, "status", "-c", config) == nil }) {
		t.Fatalf("daemon did not come up:\n%s", d.stderr)
	}
	return config, d
}

// wireStatus is the daemon's status: the wire sensor as a source, and
// the firewall's count of the responses its rules copied.
func wireStatus(t testing.TB, bin, config string) (control.SourceStatus, uint64) {
	t.Helper()
	out, err := exec.Command(bin, "status", "--json", "-c", config).Output()
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, s := range st.Sources {
		if s.Name == "wire" {
			return s, st.Firewall.WireCopied
		}
	}
	t.Fatalf("status shows no wire source:\n%s", out)
	return control.SourceStatus{}, 0
}

func TestWireAttack(t *testing.T) { wireAttack(t, false) }

func TestWireAttackGateway(t *testing.T) { wireAttack(t, true) }

// wireAttack is TestAttackKamailio with no log source at all: sipguard
// reads only the PBX's SIP responses ([wire]), on the PBX (hook output)
// or on a router in front of it (gateway: hook forward, pbx = its
// addresses). svcrack, svwar and SIPp (IPv4 and IPv6) must each be banned
// at the rule's count of refusals, within a second of the PBX's refusal
// that reached it; a friend that is not allowlisted, registering with the
// right password 100 times over IPv4 and 100 over IPv6 meanwhile, never.
func wireAttack(t *testing.T, gateway bool) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install kamailio sipvicious sip-tester; .ci/run installs them", "kamailio", "svcrack", "svwar", "sipp")
	testStart := time.Now()
	tick := kernelTick()
	bin := buildSipguard(t)
	w := newWireNet(t, gateway)
	w.startKamailio(t, nil)
	config, d := w.startSipguard(t, bin, atkMaxRetry)
	scenario := filepath.Join(w.dir, "register.xml")
	if err := os.WriteFile(scenario, []byte(atkRegisterScenario), 0o644); err != nil {
		t.Fatal(err)
	}

	// The friend: 100 registrations over each family, during the attacks.
	type friendRun struct {
		src string
		out string
		err error
	}
	friendc := make(chan friendRun, 2)
	for _, f := range [][]string{{"198.18.2.2", "5072", w.frdPBX4 + ":5060"}, {"fd00:52::2", "5073", "[" + w.frdPBX6 + "]:5060"}} {
		go func() {
			out, err := atkTool(90*time.Second, "ip", "netns", "exec", w.frd, "sipp", "-sf", scenario,
				"-s", "200", "-au", "200", "-ap", "friend-secret-200", "-i", f[0], "-p", f[1],
				"-m", "100", "-r", "10", "-nostdin", "-recv_timeout", "5000", f[2])
			friendc <- friendRun{f[0], out, err}
		}()
	}

	attacks := []struct {
		name, src, set, elem string
		args                 []string
	}{
		{"svcrack", "198.18.1.2", "ban4", "198.18.1.2",
			[]string{"svcrack", "-b", "198.18.1.2", "-u", "100", "-r", "1-300", w.atkPBX4}},
		{"svwar", "198.18.1.3", "ban4", "198.18.1.3",
			[]string{"svwar", "-b", "198.18.1.3", "-m", "REGISTER", "-e100-200", w.atkPBX4}},
		{"sipp", "198.18.1.4", "ban4", "198.18.1.4",
			[]string{"sipp", "-sf", scenario, "-s", "100", "-au", "100", "-ap", "WRONG", "-i", "198.18.1.4", "-p", "5074",
				"-m", "200", "-r", "50", "-nostdin", "-recv_timeout", "2000", w.atkPBX4 + ":5060"}},
		{"sipp IPv6", "fd00:61::2", "net6", "fd00:61::",
			[]string{"sipp", "-sf", scenario, "-s", "100", "-au", "100", "-ap", "WRONG", "-i", "fd00:61::2", "-p", "5076",
				"-m", "200", "-r", "50", "-nostdin", "-recv_timeout", "2000", "[" + w.atkPBX6 + "]:5060"}},
	}
	if gateway {
		// The router's own address is in the attacker's /64 (allow.self):
		// sipguard narrows the ban to the address.
		attacks[3].set, attacks[3].elem = "ban6", "fd00:61::2"
	}
	for _, a := range attacks {
		if a.args[0] != "sipp" {
			w.source(t, a.src)
		}
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		toolDone := make(chan string, 1)
		go func() {
			out, _ := atkToolCtx(ctx, 30*time.Second, append([]string{"ip", "netns", "exec", w.atk}, a.args...)...)
			toolDone <- out
		}()
		countedc := atkWhenCounted(ctx, w.kamLog, a.src, start)
		banned := false
		for time.Since(start) < 20*time.Second && !banned {
			if banned = atkRuleset(t, w.fw).setHas(a.set, a.elem); !banned {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if !banned {
			cancel()
			st, _ := wireStatus(t, bin, config)
			t.Fatalf("%s: %s not banned after 20 s; wire sensor %+v\n%s:\n%s\nsipguard:\n%s\nkamailio log:\n%s", a.name, a.src, st,
				a.name, atkTail(<-toolDone, 20), d.stderr, atkTail(atkReadFile(w.kamLog), 30))
		}
		rs, err := exec.Command("ip", "netns", "exec", w.fw, "nft", "list", "ruleset").Output()
		if err != nil {
			t.Fatalf("nft list ruleset: %v", err)
		}
		// In the kernel by bannedBy (nft listed before it returned).
		bannedBy := time.Now().Add(-atkElemAge(t, rs, "sipguard", a.set, a.elem))
		select {
		case <-toolDone:
		case <-time.After(2 * time.Second):
			cancel()
			<-toolDone
		}
		cancel()
		counted := <-countedc
		failed := atkFailureLines(atkReadFile(w.kamLog), a.src)
		t.Logf("%-9s %-10s banned %4.0f ms after the tool started, at most %4.0f ms after the PBX refused it the %dth time; %d refusals in all",
			a.name, a.src, atkMs(bannedBy.Sub(start)), atkMs(bannedBy.Sub(counted)), atkMaxRetry, len(failed))
		// The PBX logs each refusal as it sends it: the 10th was logged
		// after counted, so a ban before counted came before the count.
		// bannedBy is dated in whole kernel jiffies (kernelTick): it may
		// lie up to one before the ban (CI saw svwar's "before" by 0.55 ms
		// at HZ=250), so only a ban a jiffy or more before counted is one.
		switch {
		case counted.IsZero():
			t.Errorf("%s: the PBX's %dth refusal was not seen in its log", a.name, atkMaxRetry)
		case !bannedBy.After(counted.Add(-tick)):
			t.Errorf("%s: banned by %v, a kernel tick (%v) or more before the PBX's %dth refusal (logged after %v)", a.name, bannedBy, tick, atkMaxRetry, counted)
		case bannedBy.Sub(counted) > atkBanLatency:
			t.Errorf("%s: banned up to %v after the PBX's %dth refusal; want under %v", a.name, bannedBy.Sub(counted), atkMaxRetry, atkBanLatency)
		}
		// svwar sends about 100 requests a second: the refusals in flight
		// while the response is read, counted and put into the kernel
		// (the latency bound above) come on top of the rule's count. On a
		// loaded 2-core machine that was 13 in 126 ms, so the bound is
		// three times the count; the time bound above is the latency claim.
		if len(failed) < atkMaxRetry || len(failed) > 3*atkMaxRetry {
			t.Errorf("%s: the PBX refused it %d times before the ban stopped it; want %d to %d", a.name, len(failed), atkMaxRetry, 3*atkMaxRetry)
		}
		wireCheckWhy(t, bin, config, a.name, a.src)
	}

	for range 2 {
		f := <-friendc
		if f.err != nil {
			t.Errorf("friend %s: 100 registrations with the right password did not all succeed: %v\n%s", f.src, f.err, atkTail(f.out, 30))
		}
	}
	final := atkRuleset(t, w.fw)
	for _, a := range []string{"198.18.2.2", "fd00:52::"} {
		if final.setHas("ban4", a) || final.setHas("ban6", a) || final.setHas("net6", a) {
			t.Errorf("the friend %s was banned", a)
		}
	}
	// Every refusal the PBX logged is an event of the sensor, or a
	// response to a retransmitted request the sensor counted once.
	st, copied := wireStatus(t, bin, config)
	events := st.EventsBy["auth_failed"] + st.EventsBy["unknown_user"] + st.EventsBy["unknown_extension"]
	logged := int64(len(regexp.MustCompile(`sipguard: v1 `).FindAllStringIndex(atkReadFile(w.kamLog), -1)))
	t.Logf("wire sensor: %d packets (%d copied by the kernel), events %v, %d successes, dropped %v; the PBX logged %d refusals",
		st.Lines, copied, st.EventsBy, st.Successes, st.DropBy, logged)
	if events > logged || logged > events+st.DropBy["retransmission"] {
		t.Errorf("the sensor counted %d failures (%d retransmissions dropped); the PBX logged %d", events, st.DropBy["retransmission"], logged)
	}
	if st.Successes < 200 {
		t.Errorf("the sensor saw %d successful registrations; the friend made 200", st.Successes)
	}
	for _, r := range []string{"diverted", "nflog_lost", "malformed", "truncated"} {
		if st.DropBy[r] != 0 {
			t.Errorf("%d responses dropped as %s", st.DropBy[r], r)
		}
	}
	t.Logf("test ran %.1f s", time.Since(testStart).Seconds())
}

// wireCheckWhy checks that why shows src's ban with the wire sensor's
// last events: the PBX's refusals sent to src.
func wireCheckWhy(t *testing.T, bin, config, name, src string) {
	t.Helper()
	why, out := atkWhy(t, bin, config, name, src)
	if len(why.Bans) == 0 || len(why.Lines) == 0 {
		t.Fatalf("%s: why shows no ban or no events:\n%s", name, out)
	}
	to := "-> " + src + ":"
	if strings.Contains(src, ":") {
		to = "-> [" + src + "]:"
	}
	for _, l := range why.Lines {
		if l.Source != "wire" || !strings.HasPrefix(l.Text, `"SIP/2.0 4`) || !strings.Contains(l.Text, to) {
			t.Errorf("%s: why shows %+v; want the wire sensor's 4xx responses to %s", name, l, src)
		}
	}
}

// TestWireForgedVia: an attacker forges the top Via of its REGISTERs
// (sent-by and maddr naming the friend), and Kamailio with reply_to_via=1
// sends its refusals to the friend. The sensor must drop them as
// diverted: the friend, who never sent a request, is not banned, though
// it receives four times the rule's count of refusals.
func TestWireForgedVia(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install kamailio; .ci/run installs it", "kamailio")
	bin := buildSipguard(t)
	w := newWireNet(t, false)
	w.startKamailio(t, func(cfg string) string {
		return strings.Replace(cfg, "\ndebug=2\n", "\ndebug=2\nreply_to_via=1\n", 1)
	})
	const maxRetry, sent = 5, 20
	config, _ := w.startSipguard(t, bin, maxRetry)

	// The friend counts what reaches its SIP port.
	friend := wireListen(t, w.frd, "198.18.2.2:5060")
	got := make(chan int, 1)
	go func() {
		n, buf := 0, make([]byte, 4096)
		for {
			friend.SetReadDeadline(time.Now().Add(3 * time.Second))
			l, _, err := friend.ReadFrom(buf)
			if err != nil {
				got <- n
				return
			}
			if strings.HasPrefix(string(buf[:l]), "SIP/2.0 401 ") {
				n++
			}
		}
	}()

	atk := wireListen(t, w.atk, "198.18.1.2:5090")
	pbx := &net.UDPAddr{IP: net.ParseIP(w.atkPBX4), Port: 5060}
	for i := 1; i <= sent; i++ {
		msg := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %[2]s:5060;maddr=%[2]s;branch=z9hG4bK-forged-%[3]d\r\n"+
			"From: <sip:100@%[1]s>;tag=forged\r\nTo: <sip:100@%[1]s>\r\nCall-ID: forged-via@%[2]s\r\n"+
			"CSeq: %[3]d REGISTER\r\nContact: <sip:100@%[2]s:5060>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			w.atkPBX4, "198.18.2.2", i)
		if _, err := atk.WriteTo([]byte(msg), pbx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	reached := <-got
	if reached < sent {
		t.Fatalf("%d of %d refusals reached the friend: Kamailio did not answer the forged Via, the test proves nothing\n%s",
			reached, sent, atkTail(atkReadFile(w.kamLog), 20))
	}
	var st control.SourceStatus
	waitFor(5*time.Second, func() bool { st, _ = wireStatus(t, bin, config); return st.DropBy["diverted"] >= sent })
	t.Logf("%d refusals sent to the friend; wire sensor: %d packets, events %v, dropped %v", reached, st.Lines, st.EventsBy, st.DropBy)
	if st.DropBy["diverted"] != sent {
		t.Errorf("diverted = %d; want %d (every response to the friend)", st.DropBy["diverted"], sent)
	}
	if st.Events != 0 {
		t.Errorf("the sensor made %d failure events of responses that went where a forged Via said", st.Events)
	}
	rs := atkRuleset(t, w.fw)
	for _, set := range []string{"ban4", "ban6", "net6"} {
		if e := rs.sets[set]; e != "" && e != "null" {
			t.Errorf("set %s holds %s; want nobody banned", set, e)
		}
	}
}

// wireListen opens a UDP socket on addr in the namespace ns, closed when
// the test ends.
func wireListen(t testing.TB, ns, addr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	testutil.InNetNS(t, ns, func() {
		var err error
		if c, err = net.ListenPacket("udp", addr); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkWireFlood floods Kamailio with failed REGISTERs and measures
// the wire sensor on the PBX (hook output) reading its refusals: the
// responses per second the sensor handled, the CPU the daemon and
// Kamailio used, the copies NFLOG lost, and for attackers that start
// during the flood, the time from the PBX's 5th refusal to the ban in the
// kernel. b.N is the number of failed REGISTERs; SIPGUARD_WIRE_RATE the
// rate they are sent at (default 10,000 a second, the target):
//
//	go test -run '^$' -bench BenchmarkWireFlood -benchtime 100000x ./cmd/sipguard/
//
// The flooder is allowlisted, so that it is not banned and the flood
// goes on: every refusal still goes through the capture, the reader and
// the engine. One Call-ID, a new branch and CSeq each time, the nonce of
// one challenge and a wrong digest: each answer after the first is an
// auth_failed, as in svcrack's attack.
func BenchmarkWireFlood(b *testing.B) {
	needRoot(b)
	testutil.NeedCommands(b, "apt-get install kamailio; .ci/run installs it", "kamailio")
	rate := 10000
	if r := os.Getenv("SIPGUARD_WIRE_RATE"); r != "" {
		if _, err := fmt.Sscan(r, &rate); err != nil || rate < 1 {
			b.Fatalf("SIPGUARD_WIRE_RATE=%q: want a number of requests a second", r)
		}
	}
	const maxRetry, probes = 5, 5
	bin := buildSipguard(b)
	w := newWireNet(b, false)
	for i := range probes + 1 {
		atkRun(b, "ip", "-n", w.atk, "addr", "add", fmt.Sprintf("198.18.1.%d/24", 10+i), "dev", "eth0")
	}
	w.startKamailio(b, nil)
	config, d := w.startSipguard(b, bin, maxRetry, "198.18.1.10")
	pbx := &net.UDPAddr{IP: net.ParseIP(w.atkPBX4), Port: 5060}

	flood, err := newSIPClient(wireListen(b, w.atk, "198.18.1.10:5100"), pbx)
	if err != nil {
		b.Fatal(err)
	}
	// The attackers' sockets, opened here: the probes run on a goroutine.
	var probeConns []net.PacketConn
	for k := range probes {
		probeConns = append(probeConns, wireListen(b, w.atk, fmt.Sprintf("198.18.1.%d:5100", 11+k)))
	}
	kam := procGroup(w.kamailio) // its workers answer by now
	before, copiedBefore := wireStatus(b, bin, config)
	cpuBefore, kamBefore := procCPU(d.cmd.Process.Pid), procCPU(kam...)
	load := loadAvg()
	b.ResetTimer()
	start := time.Now()
	answered := flood.receive()
	type probeResult struct {
		ban [2]time.Duration
		err error
	}
	latencies := make(chan probeResult, probes)
	go func() {
		defer close(latencies)
		for k := range probes {
			time.Sleep(time.Until(start.Add(time.Duration(k) * time.Duration(b.N) * time.Second / time.Duration(rate) / probes)))
			ban, err := wireProbe(w, probeConns[k], pbx, maxRetry)
			latencies <- probeResult{ban, err}
		}
	}()
	for i := range b.N {
		if i%10 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		flood.send(i, true)
	}
	sent := time.Since(start)
	// The sensor is done when its count of packets stops moving.
	var after control.SourceStatus
	var copied uint64
	last, lines := time.Now(), int64(-1)
	for time.Since(last) < time.Second {
		time.Sleep(100 * time.Millisecond)
		if after, copied = wireStatus(b, bin, config); after.Lines != lines {
			last, lines = time.Now(), after.Lines
		}
	}
	b.StopTimer()
	cpu, kamCPU := procCPU(d.cmd.Process.Pid)-cpuBefore, procCPU(kam...)-kamBefore
	flood.conn.Close()
	got := <-answered
	var worst time.Duration
	var lat []string
	for r := range latencies {
		if r.err != nil {
			b.Fatal(r.err)
		}
		worst = max(worst, r.ban[0])
		lat = append(lat, fmt.Sprintf("%.0f-%.0f", atkMs(r.ban[1]), atkMs(r.ban[0])))
	}
	took := last.Sub(start).Seconds()
	handled := after.Lines - before.Lines
	lost := after.DropBy["nflog_lost"] - before.DropBy["nflog_lost"]
	overruns := after.DropBy["nflog_overruns"] - before.DropBy["nflog_overruns"]
	b.ReportMetric(float64(handled)/took, "responses/s")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(overruns), "overruns")
	b.ReportMetric(100*cpu.Seconds()/took, "daemon-cpu%")
	b.ReportMetric(atkMs(worst), "ban-ms-max")
	b.Logf("sent %d failed REGISTERs in %.2f s (%.0f/s); Kamailio answered %d; the kernel copied %d responses, the sensor read %d (%.0f/s over %.2f s), lost %d, %d overruns; events %d; daemon CPU %.2f s (%.0f%% of a core), Kamailio %.2f s; ban after the 5th refusal (from its reception - from its request), ms: %s; load average %s, then %s",
		b.N, sent.Seconds(), float64(b.N)/sent.Seconds(), got, copied-copiedBefore, handled, float64(handled)/took, took,
		lost, overruns, after.Events-before.Events, cpu.Seconds(), 100*cpu.Seconds()/took, kamCPU.Seconds(),
		strings.Join(lat, " "), load, loadAvg())
}

// wireProbe attacks from src with failed REGISTERs every 5 ms until the
// PBX refused it maxRetry times, and returns the time to the ban in the
// kernel from the sending of the request the PBX refused the maxRetry-th
// time (an upper bound: the refusal left after its request was sent and
// Kamailio's queue under a flood is in it; the ban's time is read back
// from its element's age, to the millisecond, after nft returned), and
// from the reception of that refusal (closer, a little short: the
// refusal reached the attacker after it left).
func wireProbe(w *wireNet, conn net.PacketConn, pbx *net.UDPAddr, maxRetry int) ([2]time.Duration, error) {
	c, err := newSIPClient(conn, pbx)
	if err != nil {
		return [2]time.Duration{}, err
	}
	defer c.conn.Close()
	src := c.src
	var sentAt []time.Time
	type refusal struct {
		cseq int
		at   time.Time
	}
	refusals := make(chan refusal, 1) // the maxRetry-th
	go func() {
		buf, n := make([]byte, 4096), 0
		for {
			l, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				close(refusals)
				return
			}
			if !strings.HasPrefix(string(buf[:l]), "SIP/2.0 401 ") {
				continue
			}
			if n++; n == maxRetry {
				r := refusal{at: time.Now()}
				if m := regexp.MustCompile(`(?m)^CSeq: (\d+) `).FindSubmatch(buf[:l]); m != nil {
					fmt.Sscan(string(m[1]), &r.cseq)
				}
				refusals <- r
			}
		}
	}()
	var last refusal
send:
	for i := range 400 {
		sentAt = append(sentAt, time.Now())
		c.send(i, true)
		select {
		case last = <-refusals:
			break send
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Ask the kernel until the ban is there.
	for range 200 {
		rs, err := exec.Command("ip", "netns", "exec", w.pbx, "nft", "list", "set", "inet", "sipguard", "ban4").Output()
		if err != nil {
			return [2]time.Duration{}, fmt.Errorf("nft list set: %v", err)
		}
		if strings.Contains(string(rs), src+" ") {
			age, err := elemAge(rs, "sipguard", "ban4", src)
			if err != nil {
				return [2]time.Duration{}, err
			}
			bannedBy := time.Now().Add(-age)
			if last.cseq < 2 || last.cseq-2 >= len(sentAt) {
				return [2]time.Duration{}, fmt.Errorf("%s: the %dth refusal had CSeq %d", src, maxRetry, last.cseq)
			}
			return [2]time.Duration{bannedBy.Sub(sentAt[last.cseq-2]), bannedBy.Sub(last.at)}, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return [2]time.Duration{}, fmt.Errorf("%s not banned", src)
}

// sipClient sends REGISTERs for user 100 with a wrong digest, on one
// Call-ID, with the nonce of the PBX's first challenge.
type sipClient struct {
	conn             net.PacketConn
	src              string
	pbx              *net.UDPAddr
	callID, nonce    string
	realm, authPrefx string
}

// newSIPClient makes a client of conn (bound to the port of its Via)
// and asks the PBX for its challenge.
func newSIPClient(conn net.PacketConn, pbx *net.UDPAddr) (*sipClient, error) {
	src := conn.LocalAddr().(*net.UDPAddr).IP.String()
	c := &sipClient{conn: conn, src: src, pbx: pbx, callID: "flood-" + src}
	c.send(-1, false)
	buf := make([]byte, 4096)
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, _, err := c.conn.ReadFrom(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: no challenge from the PBX: %v", src, err)
	}
	c.conn.SetReadDeadline(time.Time{})
	m := regexp.MustCompile(`realm="([^"]*)", nonce="([^"]*)"`).FindSubmatch(buf[:l])
	if m == nil {
		return nil, fmt.Errorf("%s: no challenge in %q", src, buf[:l])
	}
	c.realm, c.nonce = string(m[1]), string(m[2])
	return c, nil
}

// send sends request i (CSeq i+2; -1: the first, unauthenticated).
func (c *sipClient) send(i int, auth bool) {
	pbx := c.pbx.IP.String()
	var authz string
	if auth {
		authz = fmt.Sprintf("Authorization: Digest username=\"100\", realm=%q, nonce=%q, uri=\"sip:%s\", response=\"00000000000000000000000000000000\", algorithm=MD5\r\n",
			c.realm, c.nonce, pbx)
	}
	msg := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s:5100;rport;branch=z9hG4bK-%[3]s-%[4]d\r\n"+
		"From: <sip:100@%[1]s>;tag=flood\r\nTo: <sip:100@%[1]s>\r\nCall-ID: %[3]s\r\nCSeq: %[4]d REGISTER\r\n"+
		"Contact: <sip:100@%[2]s:5100>\r\n%[5]sMax-Forwards: 70\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n",
		pbx, c.src, c.callID, i+2, authz)
	c.conn.WriteTo([]byte(msg), c.pbx)
}

// receive counts the 401s the client receives until its socket closes.
func (c *sipClient) receive() <-chan int {
	n := make(chan int, 1)
	go func() {
		count, buf := 0, make([]byte, 4096)
		for {
			l, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				n <- count
				return
			}
			if strings.HasPrefix(string(buf[:l]), "SIP/2.0 401 ") {
				count++
			}
		}
	}()
	return n
}

// procGroup returns the processes of the process group led by leader.
func procGroup(leader int) []int {
	var pids []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		// The group is the 3rd field after the command's parenthesis.
		var pid, pgrp int
		fmt.Sscan(s, &pid)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 2 {
			fmt.Sscan(f[2], &pgrp)
		}
		if pgrp == leader {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procCPU is the user and system CPU time the processes used so far.
func procCPU(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state is the
		// 3rd field, utime the 14th and stime the 15th.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var u, st int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &st)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
