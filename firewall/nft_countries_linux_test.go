//go:build linux

package firewall_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

// labCountries is the test database of TestNFT_PolicyCountries: DE and
// AT touch (merged into one range, 198.18.0.16/28), FR is next to them.
var labCountries = map[string]string{
	"198.18.0.16/29":  "DE",
	"198.18.0.24/29":  "AT",
	"198.18.0.32/29":  "FR",
	"2001:db8:1::/48": "DE",
	"2001:db8:2::/48": "FR",
}

// countryNetworks builds the test database and returns the networks of
// codes in it, as the daemon does.
func countryNetworks(t *testing.T, codes ...string) []netip.Prefix {
	t.Helper()
	db, err := geoip.Open(geoiptest.Write(t, t.TempDir(), labCountries))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.Networks(codes)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestNFT_PolicyCountries: in strict mode, sources in the allowed
// countries (from a built database) reach 5060/udp and are counted on the
// country accepts; a source in another country is dropped; a banned
// address in an allowed country stays dropped. A changed list replaces
// the networks (the old country is dropped, the new one admitted); no
// list removes the sets and their rules.
func TestNFT_PolicyCountries(t *testing.T) {
	const de, at, fr, bannedDE = "198.18.0.17", "198.18.0.25", "198.18.0.33", "198.18.0.18"
	l := newPolicyLab(t, de, at, fr, bannedDE)
	ctx := context.Background()
	strict := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp"), Countries: countryNetworks(t, "DE", "AT")}
	n := newNFT(t, l.pbx, firewall.NFTOptions{Allow: prefixes("127.0.0.0/8"), Policy: strict})
	banForAnHour(t, n, bannedDE)
	t.Logf("chain input:\n%s", nft(t, l.pbx, "list", "chain", "inet", "sipguard", "input"))

	if els := listSet(t, l.pbx, "country4"); len(els) != 1 || els[0].Prefix != pfx("198.18.0.16/28") {
		t.Errorf("country4 = %v; want DE and AT merged into [198.18.0.16/28]", els)
	}
	if els := listSet(t, l.pbx, "country6"); len(els) != 1 || els[0].Prefix != pfx("2001:db8:1::/48") {
		t.Errorf("country6 = %v; want [2001:db8:1::/48]", els)
	}
	for _, src := range []string{de, at, fr, bannedDE} {
		l.send(src, 0, 3)
	}
	got, c := l.received(false), l.counters()
	if got[de] != 3 || got[at] != 3 || got[fr] != 0 || got[bannedDE] != 0 {
		t.Errorf("received %v; want 3 from DE and AT, none from FR and the banned DE address", got)
	}
	for rule, want := range map[string]uint64{
		"sipguard country4 udp": 6, "sipguard policy drop 5060/udp": 3, "sipguard ban4": 3,
	} {
		if c[rule] != want {
			t.Errorf("counter %q = %d; want %d (all: %v)", rule, c[rule], want, c)
		}
	}
	if st := n.State(ctx); st.PolicyDropped != 3 || st.Packets != 3 {
		t.Errorf("State: %d policy-dropped, %d dropped; want 3 each", st.PolicyDropped, st.Packets)
	}

	// A reload with another list: FR in, DE and AT out, in one step.
	strict.Countries = countryNetworks(t, "FR")
	if err := n.SetPolicy(ctx, strict); err != nil {
		t.Fatal(err)
	}
	if els := listSet(t, l.pbx, "country4"); len(els) != 1 || els[0].Prefix != pfx("198.18.0.32/29") {
		t.Errorf("country4 after the reload = %v; want [198.18.0.32/29]", els)
	}
	for _, src := range []string{de, fr, bannedDE} {
		l.send(src, 0, 2)
	}
	if got := l.received(false); got[de] != 0 || got[fr] != 2 || got[bannedDE] != 0 {
		t.Errorf("after the reload: received %v; want 2 from FR only", got)
	}
	// The same list again changes nothing (no flush, counters kept).
	before := l.counters()["sipguard country4 udp"]
	if err := n.SetPolicy(ctx, strict); err != nil {
		t.Fatal(err)
	}
	if after := l.counters()["sipguard country4 udp"]; after != before || before != 8 {
		t.Errorf("country4 counter %d, then %d after the same policy; want 8 both", before, after)
	}

	// Without a list the sets and rules go; FR is a stranger again.
	strict.Countries = nil
	if err := n.SetPolicy(ctx, strict); err != nil {
		t.Fatal(err)
	}
	table := nft(t, l.pbx, "list", "table", "inet", "sipguard")
	if strings.Contains(table, "country") {
		t.Errorf("no countries: left in the table:\n%s", table)
	}
	l.send(fr, 0, 2)
	if got := l.received(false); got[fr] != 0 {
		t.Errorf("no countries: received %v; want none from FR", got)
	}
}

// TestNFT_PolicyCountriesMany loads many networks (more than one netlink
// message holds) and reads every one back: none is lost.
func TestNFT_PolicyCountriesMany(t *testing.T) {
	ns := newNS(t)
	var nets []netip.Prefix
	for i := range 5000 {
		// Every other /24 of 10.0.0.0/8: none adjacent, none merged.
		nets = append(nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 7), byte(i&127) * 2, 0}), 24))
		nets = append(nets, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 1}), 64))
	}
	pol := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp"), Countries: nets}
	start := time.Now()
	n := newNFT(t, ns, firewall.NFTOptions{Policy: pol})
	t.Logf("%d networks loaded in %v", len(nets), time.Since(start))
	// What Reconcile's check pays every 2 s: the sets read back whole.
	start = time.Now()
	if err := n.SetPolicy(context.Background(), pol); err != nil {
		t.Fatal(err)
	}
	t.Logf("the same policy again (read back, nothing changed) in %v", time.Since(start))
	var got []netip.Prefix
	for _, set := range []string{"country4", "country6"} {
		for _, e := range listSet(t, ns, set) {
			got = append(got, e.Prefix)
		}
	}
	slices.SortFunc(got, netip.Prefix.Compare)
	want := slices.Clone(nets)
	slices.SortFunc(want, netip.Prefix.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("the kernel holds %d networks; want %d", len(got), len(want))
	}
}
