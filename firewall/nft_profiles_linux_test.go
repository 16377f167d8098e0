//go:build linux

package firewall_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

func parsePorts(t testing.TB, ss ...string) []firewall.Port {
	t.Helper()
	var out []firewall.Port
	for _, s := range ss {
		p, err := firewall.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func portsKey(t testing.TB, ports []firewall.Port) string {
	t.Helper()
	k, err := firewall.PortsKey(ports)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestNFT_ProfilesTraffic: a GUI rule's ban (ports 80 and 443) drops the
// attacker's packets to 443 and lets its SIP packets through, while a
// SIP ban (the default ports) still drops 5060; UnbanIn lifts a ban in
// one profile only.
func TestNFT_ProfilesTraffic(t *testing.T) {
	ns := newNS(t)
	peer := newNS(t)
	veth(t, ns, peer, "198.18.0.2", "198.18.0.3")

	var udp *net.UDPConn
	var tcp net.Listener
	inNS(t, ns, func() {
		var err error
		if udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 5060}); err != nil {
			t.Fatal(err)
		}
		if tcp, err = net.Listen("tcp4", "198.18.0.1:443"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { udp.Close(); tcp.Close() })
	// from pins the source address of the peer's packets to .1.
	from := func(src string) {
		run(t, "ip", "-n", peer, "route", "replace", "198.18.0.1/32", "dev", "sgfw-atk", "src", src)
	}
	sip := func(src string) int {
		t.Helper()
		from(src)
		run(t, "ip", "netns", "exec", peer, "bash", "-c", "for i in 1 2 3; do echo OPTIONS > /dev/udp/198.18.0.1/5060; done")
		got, buf := 0, make([]byte, 1500)
		for {
			udp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := udp.ReadFromUDP(buf); err != nil {
				return got
			}
			got++
		}
	}
	// https reports whether a TCP connection from src to 443 is set up
	// within a second (a dropped SYN is retried after a second).
	https := func(src string) bool {
		t.Helper()
		from(src)
		err := exec.Command("ip", "netns", "exec", peer, "timeout", "0.8", "bash", "-c", "exec 3<>/dev/tcp/198.18.0.1/443").Run()
		return err == nil
	}

	gui := parsePorts(t, "80/tcp", "443/tcp")
	guiKey := portsKey(t, gui)
	n := newNFT(t, ns, firewall.NFTOptions{Ports: parsePorts(t, "5060/udp", "5060-5061/tcp"), Profiles: [][]firewall.Port{gui}})
	ctx := context.Background()
	if got := sip("198.18.0.2"); got != 3 || !https("198.18.0.2") {
		t.Fatalf("before any ban: %d of 3 SIP datagrams, https %v; want all through", got, https("198.18.0.2"))
	}
	// .2 fails at the GUI, .3 at SIP.
	if err := n.Ban(ctx, firewall.Ban{Prefix: pfx("198.18.0.2"), Timeout: time.Minute, Ports: guiKey},
		firewall.Ban{Prefix: pfx("198.18.0.3"), Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if https("198.18.0.2") {
		t.Error("the GUI ban let a connection to 443 through")
	}
	if got := sip("198.18.0.2"); got != 3 {
		t.Errorf("the GUI ban dropped SIP: %d of 3 datagrams to 5060 received", got)
	}
	if got := sip("198.18.0.3"); got != 0 {
		t.Errorf("the SIP ban let %d datagrams to 5060 through", got)
	}
	if !https("198.18.0.3") {
		t.Error("the SIP ban dropped a connection to 443, not one of its ports")
	}
	drops := map[string]uint64{}
	for _, r := range listChain(t, ns, "input") {
		drops[r.Comment] = r.Packets
	}
	suffix := strings.TrimPrefix(setNameOf(t, ns, "ban4_r"), "ban4")
	if drops["sipguard ban4"+suffix+" tcp"] == 0 || drops["sipguard ban4 udp"] != 3 {
		t.Errorf("drop counters %v: want the GUI ban4 tcp rule and 3 in ban4 udp", drops)
	}

	// The same address in both profiles; lifting one leaves the other.
	if err := n.Ban(ctx, firewall.Ban{Prefix: pfx("198.18.0.2"), Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := sip("198.18.0.2"); got != 0 {
		t.Errorf("banned in both profiles: %d SIP datagrams through", got)
	}
	if err := n.UnbanIn(ctx, guiKey, pfx("198.18.0.2")); err != nil {
		t.Fatal(err)
	}
	if !https("198.18.0.2") {
		t.Error("after UnbanIn of the GUI profile: 443 still dropped")
	}
	if got := sip("198.18.0.2"); got != 0 {
		t.Errorf("UnbanIn of the GUI profile lifted the SIP ban: %d datagrams through", got)
	}
	if err := n.Unban(ctx, pfx("198.18.0.2"), pfx("198.18.0.3")); err != nil {
		t.Fatal(err)
	}
	if got := sip("198.18.0.3"); got != 3 {
		t.Errorf("after Unban: %d of 3 datagrams through", got)
	}
}

// setNameOf returns the name of the set of the table starting with
// prefix (there must be one).
func setNameOf(t testing.TB, ns, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(nft(t, ns, "list", "sets", "inet"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "set" && strings.HasPrefix(f[1], prefix) {
			return f[1]
		}
	}
	t.Fatalf("no set %s* in the table", prefix)
	return ""
}

// TestNFT_Profiles: each profile has its own ban and port sets and drops,
// after the allowlist's accepts; the default keeps the contract's names;
// overlaps are checked per profile; List, Kernel and Sync keep each ban's
// profile across a restart; Reconcile restores a profile's deleted ban;
// a profile no longer asked for is deleted with its rules.
func TestNFT_Profiles(t *testing.T) {
	ns := newNS(t)
	ctx := context.Background()
	gui := parsePorts(t, "443/tcp", "80/tcp", "8080-8090/tcp")
	guiKey := portsKey(t, gui)
	if guiKey != "80/tcp,443/tcp,8080-8090/tcp" {
		t.Fatalf("PortsKey: %q", guiKey)
	}
	sipPorts := parsePorts(t, "5060/udp")
	opts := firewall.NFTOptions{Ports: sipPorts, Profiles: [][]firewall.Port{gui, sipPorts, parsePorts(t, "80/tcp", "8080-8090/tcp", "443/tcp")}}
	n := newNFT(t, ns, opts)

	suffix := strings.TrimPrefix(setNameOf(t, ns, "ban4_r"), "ban4")
	if len(suffix) != len("_r12345678") {
		t.Fatalf("profile suffix %q", suffix)
	}
	sets := strings.Count(nft(t, ns, "list", "sets", "inet"), "set ")
	if sets != 2+5+5 {
		t.Errorf("%d sets; want 12 (allow4/6, ban sets and udp_ports of the default, ban sets and tcp_ports of the GUI: the same list twice and the default's list are no profile of their own)", sets)
	}
	if out := nft(t, ns, "list", "set", "inet", "sipguard", "tcp_ports"+suffix); !strings.Contains(out, "80, 443, 8080-8090") {
		t.Errorf("GUI port set:\n%s", out)
	}
	rules := listChain(t, ns, "input")
	var tags []string
	for _, r := range rules {
		tags = append(tags, r.Comment)
	}
	want := []string{"sipguard allow4", "sipguard allow6", "sipguard ban4 udp", "sipguard ban6 udp", "sipguard net4 udp", "sipguard net6 udp",
		"sipguard ban4" + suffix + " tcp", "sipguard ban6" + suffix + " tcp", "sipguard net4" + suffix + " tcp", "sipguard net6" + suffix + " tcp"}
	if !slices.Equal(tags, want) {
		t.Errorf("rules %q;\nwant %q", tags, want)
	}

	bans := []firewall.Ban{
		{Prefix: pfx("203.0.113.0/24"), Timeout: time.Hour, Ports: guiKey},
		{Prefix: pfx("203.0.113.0/25"), Timeout: time.Hour}, // another profile: no overlap
		{Prefix: pfx("198.51.100.7"), Timeout: time.Hour, Ports: guiKey},
		{Prefix: pfx("198.51.100.7"), Timeout: 2 * time.Hour, Ports: "5060/udp"}, // the default's key is the default
		{Prefix: pfx("2001:db8::/64"), Timeout: time.Hour, Ports: guiKey},
	}
	if err := n.Ban(ctx, bans...); err != nil {
		t.Fatal(err)
	}
	if err := n.Ban(ctx, firewall.Ban{Prefix: pfx("203.0.113.128/25"), Timeout: time.Hour, Ports: guiKey}); !errors.Is(err, firewall.ErrOverlap) {
		t.Errorf("a network inside the GUI profile's /24: %v; want ErrOverlap", err)
	}
	if err := n.Ban(ctx, firewall.Ban{Prefix: pfx("192.0.2.1"), Timeout: time.Hour, Ports: "22/tcp"}); !errors.Is(err, firewall.ErrUnknownPorts) {
		t.Errorf("a ban of a profile not set up: %v; want ErrUnknownPorts", err)
	}
	wantEntries := []string{"198.51.100.7/32 ", "198.51.100.7/32 " + guiKey, "2001:db8::/64 " + guiKey, "203.0.113.0/24 " + guiKey, "203.0.113.0/25 "}
	entryKeys := func(es []firewall.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Prefix.String()+" "+e.Ports)
		}
		slices.Sort(out)
		return out
	}
	list, _ := n.List(ctx)
	if got := entryKeys(list); !slices.Equal(got, wantEntries) {
		t.Errorf("List: %q; want %q", got, wantEntries)
	}
	if got := listSet(t, ns, "net4"+suffix); len(got) != 1 || got[0].Prefix != pfx("203.0.113.0/24") {
		t.Errorf("net4%s: %+v", suffix, got)
	}
	if st := n.State(ctx); st.Bans != 5 {
		t.Errorf("State.Bans %d; want 5", st.Bans)
	}
	// Change: a lift in one profile and a shortening in another, in one
	// transaction; refused as a whole (a profile not set up), nothing
	// lifted.
	host := pfx("198.51.100.7")
	err := n.Change(ctx, []firewall.Lift{{Prefix: host, Ports: guiKey}}, firewall.Ban{Prefix: host, Timeout: time.Hour, Ports: "22/tcp"})
	if !errors.Is(err, firewall.ErrUnknownPorts) {
		t.Errorf("a change with a ban of a profile not set up: %v; want ErrUnknownPorts", err)
	}
	if got := listSet(t, ns, "ban4"+suffix); len(got) != 1 {
		t.Errorf("ban4%s after the refused change: %+v; want 198.51.100.7 still", suffix, got)
	}
	if err := n.Change(ctx, []firewall.Lift{{Prefix: host, Ports: guiKey}}, firewall.Ban{Prefix: host, Timeout: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := listSet(t, ns, "ban4"+suffix); len(got) != 0 {
		t.Errorf("ban4%s after the change: %+v; want 198.51.100.7 lifted", suffix, got)
	}
	if got := listSet(t, ns, "ban4"); len(got) != 1 || got[0].Timeout > 31*time.Minute {
		t.Errorf("ban4 after the change: %+v; want 198.51.100.7 for 30 minutes", got)
	}
	if err := n.Ban(ctx, firewall.Ban{Prefix: host, Timeout: time.Hour, Ports: guiKey}); err != nil {
		t.Fatal(err)
	}

	t.Run("Reconcile", func(t *testing.T) {
		reconcile(t, n)
		nft(t, ns, "delete", "element", "inet", "sipguard", "ban4"+suffix, "{ 198.51.100.7 }")
		waitFor(t, "deleted GUI ban", func() bool {
			out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "set", "inet", "sipguard", "ban4"+suffix).CombinedOutput()
			return err == nil && strings.Contains(string(out), "198.51.100.7")
		})
		nft(t, ns, "delete", "rule", "inet", "sipguard", "input", "handle", ruleHandle(t, ns, "sipguard net6"+suffix+" tcp"))
		waitFor(t, "deleted GUI rule", func() bool { return len(listChain(t, ns, "input")) == len(want) })
	})

	// A restart adopts the kernel's bans with their profiles.
	n.Close()
	n = newNFT(t, ns, opts)
	kernel, err := n.Kernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := entryKeys(kernel); !slices.Equal(got, wantEntries) {
		t.Errorf("Kernel after a restart: %q; want %q", got, wantEntries)
	}
	if err := n.Sync(ctx, kernel); err != nil {
		t.Fatal(err)
	}
	list, _ = n.List(ctx)
	if got := entryKeys(list); !slices.Equal(got, wantEntries) {
		t.Errorf("List after Sync: %q; want %q", got, wantEntries)
	}
	// Sync skips and reports the bans of a profile it does not have.
	err = n.Sync(ctx, append(kernel, firewall.Entry{Prefix: pfx("192.0.2.9"), Expires: time.Now().Add(time.Hour), Ports: "22/tcp"}))
	if !errors.Is(err, firewall.ErrUnknownPorts) {
		t.Errorf("Sync with an unknown profile: %v; want ErrUnknownPorts", err)
	}
	if list, _ = n.List(ctx); len(list) != len(wantEntries) {
		t.Errorf("Sync with an unknown profile: %d bans in force; want %d", len(list), len(wantEntries))
	}
	n.Close()

	// Without the GUI profile its sets and rules go; the default's stay.
	n = newNFT(t, ns, firewall.NFTOptions{Ports: sipPorts})
	if out := nft(t, ns, "list", "table", "inet", "sipguard"); strings.Contains(out, suffix) {
		t.Errorf("the GUI profile is still in the table:\n%s", out)
	}
	kernel, _ = n.Kernel(ctx)
	if got := entryKeys(kernel); !slices.Equal(got, []string{"198.51.100.7/32 ", "203.0.113.0/25 "}) {
		t.Errorf("Kernel without the GUI profile: %q", got)
	}
}

// ruleHandle returns the handle of the rule of chain input tagged tag.
func ruleHandle(t testing.TB, ns, tag string) string {
	t.Helper()
	for _, l := range strings.Split(nft(t, ns, "-a", "list", "chain", "inet", "sipguard", "input"), "\n") {
		if strings.Contains(l, `comment "`+tag+`"`) {
			if _, h, ok := strings.Cut(l, "# handle "); ok {
				return strings.TrimSpace(h)
			}
		}
	}
	t.Fatalf("no rule %q", tag)
	return ""
}

// TestProfileSuffix: a profile's set names are the same on every start
// and version (a changed name would leave the old sets, and their bans,
// behind): the FNV-32a hash of the key, as documented in docs/firewall.md.
func TestProfileSuffix(t *testing.T) {
	for key, want := range map[string]string{"": "", "80/tcp,443/tcp": "_rf5b78040", "80/tcp,443/tcp,8080-8090/tcp": "_rb84d013a"} {
		if got := firewall.ProfileSuffix(key); got != want {
			t.Errorf("ProfileSuffix(%q) = %q; want %q", key, got, want)
		}
	}
}
