package daemon_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/internal/dnstest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/trunks"
)

// withDNSTrunk returns cfg with trunk "carrier": host sip.carrier.test
// resolved through s, network 203.0.113.0/24.
func withDNSTrunk(cfg daemon.Config, s *dnstest.Server, keep time.Duration) daemon.Config {
	cfg.Trunks = []trunks.Trunk{{Name: "carrier", Hosts: []string{"sip.carrier.test"}, Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		MinTTL: 100 * time.Millisecond, MaxTTL: time.Second, Keep: keep}}
	cfg.Resolver = &trunks.Resolver{Servers: []string{s.Addr}, Timeout: 2 * time.Second}
	return cfg
}

// startTrunked runs a daemon with trunk "carrier" (withDNSTrunk) whose
// DNS answers first, until its address is allowed in fw.
func startTrunked(t *testing.T, first string, keep time.Duration) (*dnstest.Server, env, *fwtest.Fake, *running) {
	t.Helper()
	s := dnstest.Start(t)
	s.Set(t, "sip.carrier.test. 0 IN A "+first)
	e := newEnv(t)
	fw := fwtest.New(nil)
	r := start(t, withDNSTrunk(e.config(), s, keep), fw)
	testutil.WaitFor(t, 10*time.Second, "the trunk's address in the firewall's allowlist", func() bool { return allows(fw, first+"/32") })
	return s, e, fw, r
}

func trunkHost(t *testing.T, r *running) control.TrunkHostStatus {
	t.Helper()
	ts, err := r.client.Trunks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != "carrier" || len(ts[0].Hosts) != 1 {
		t.Fatalf("trunks %+v; want carrier with one host", ts)
	}
	return ts[0].Hosts[0]
}

func hostAddrs(h control.TrunkHostStatus) []string {
	var out []string
	for _, a := range h.Addresses {
		out = append(out, a.Address)
	}
	return out
}

func allows(fw *fwtest.Fake, p string) bool {
	return slices.Contains(fw.Allowlist(), netip.MustParsePrefix(p))
}

// TestTrunks_ByName: a trunk's DNS answer changes under the daemon. Its
// new address joins the allowlist (the firewall's, the engine's and the
// last guard's): the ban made before on it is lifted, its failures are
// not counted, a manual ban is refused; the address no longer answered
// stays until keep, then leaves; the networks stay throughout.
func TestTrunks_ByName(t *testing.T) {
	keep := 2 * time.Second
	s, e, fw, r := startTrunked(t, "198.51.100.30", keep)
	if !allows(fw, "203.0.113.0/24") || !allows(fw, "192.0.2.0/24") {
		t.Fatalf("allowlist %v; want the trunk's network and [allow]", fw.Allowlist())
	}

	// 198.51.100.20 is banned before it is the trunk's.
	appendLines(t, e.log, failures("198.51.100.20", 5, time.Now())...)
	testutil.WaitFor(t, 5*time.Second, "the ban", func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.20/32")) })

	s.Set(t, "sip.carrier.test. 0 IN A 198.51.100.30", "sip.carrier.test. 0 IN A 198.51.100.20")
	testutil.WaitFor(t, 10*time.Second, "the new address allowed", func() bool { return allows(fw, "198.51.100.20/32") })
	testutil.WaitFor(t, 5*time.Second, "its ban lifted", func() bool { return !fw.Has(netip.MustParsePrefix("198.51.100.20/32")) })
	if n := status(t, r).Unbans[daemon.UnbanAllowed]; n != 1 {
		t.Errorf("unbans allowlisted %d; want 1", n)
	}
	appendLines(t, e.log, failures("198.51.100.20", 20, time.Now())...)
	handled(t, r, 25)
	if fw.Has(netip.MustParsePrefix("198.51.100.20/32")) || status(t, r).Engine.Allowed != 20 {
		t.Errorf("the trunk's failures were counted: %+v", status(t, r).Engine)
	}
	if _, err := r.client.Ban(context.Background(), control.BanRequest{Target: "198.51.100.0/24"}); err == nil || !strings.Contains(err.Error(), "allowlisted") {
		t.Errorf("a manual ban covering the trunk: %v; want refused", err)
	}
	if w, err := r.client.Why(context.Background(), "198.51.100.20"); err != nil || w.Allowlisted != "198.51.100.20/32 (trunk carrier)" {
		t.Errorf("why: %q %v; want allowlisted by the trunk", w.Allowlisted, err)
	}
	h := trunkHost(t, r)
	if got := hostAddrs(h); !slices.Equal(got, []string{"198.51.100.20", "198.51.100.30"}) || h.TTLSeconds != 0.1 || h.LastSuccess.IsZero() || h.Error != "" {
		t.Errorf("trunks shows %+v; want both addresses, TTL 0.1s, a success", h)
	}

	// .30 is answered no more: kept for keep, then dropped.
	s.Set(t, "sip.carrier.test. 0 IN A 198.51.100.20")
	changed := time.Now()
	testutil.WaitFor(t, 20*time.Second, "the old address dropped", func() bool { return !allows(fw, "198.51.100.30/32") })
	if took := time.Since(changed); took < keep-300*time.Millisecond {
		t.Errorf("dropped %s after its last answer; keep is %s", took, keep)
	}
	if !allows(fw, "198.51.100.20/32") || !allows(fw, "203.0.113.0/24") {
		t.Errorf("allowlist %v; want the answered address and the network", fw.Allowlist())
	}
	if got := hostAddrs(trunkHost(t, r)); !slices.Equal(got, []string{"198.51.100.20"}) {
		t.Errorf("trunks shows %v; want the answered address only", got)
	}
}

// TestTrunks_Failure: DNS fails: the last answer is kept for keep with
// the error shown by trunks and status, then dropped, the error still
// shown; the networks stay.
func TestTrunks_Failure(t *testing.T) {
	keep := 2 * time.Second
	s, e, fw, r := startTrunked(t, "198.51.100.20", keep)

	s.Fail(dns.RcodeRefused)
	testutil.WaitFor(t, 10*time.Second, "the error shown", func() bool { return strings.Contains(trunkHost(t, r).Error, "REFUSED") })
	if !allows(fw, "198.51.100.20/32") {
		t.Fatal("the last answer was not kept")
	}
	testutil.WaitFor(t, 20*time.Second, "the address dropped after keep", func() bool { return !allows(fw, "198.51.100.20/32") })
	h := trunkHost(t, r)
	if !strings.Contains(h.Error, "REFUSED") || len(h.Addresses) != 0 || h.ErrorSince.IsZero() {
		t.Errorf("trunks shows %+v; want the error and no address", h)
	}
	if st := status(t, r); len(st.Trunks) != 1 || st.Trunks[0].Hosts[0].Error == "" {
		t.Errorf("status trunks %+v; want the error", st.Trunks)
	}
	if !allows(fw, "203.0.113.0/24") {
		t.Error("the network went with the DNS answer")
	}
	// After keep, the address is an address like any other.
	appendLines(t, e.log, failures("198.51.100.20", 5, time.Now())...)
	testutil.WaitFor(t, 5*time.Second, "the former trunk address banned", func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.20/32")) })
}

// TestTrunks_Reload: a reload that keeps the trunk keeps its addresses
// allowed throughout; one that removes it removes them.
func TestTrunks_Reload(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.carrier.test. 0 IN A 198.51.100.20")
	e := newEnv(t)
	fw := fwtest.New(nil)
	cfg := withDNSTrunk(e.config(), s, time.Minute)
	r := start(t, cfg, fw)
	testutil.WaitFor(t, 10*time.Second, "the trunk's address allowed", func() bool { return allows(fw, "198.51.100.20/32") })
	// The trunk's timings change: it is resolved anew, seeded.
	s.Fail(dns.RcodeServerFailure)
	cfg.Trunks[0].MinTTL = 200 * time.Millisecond
	cfg.Engine.Allow = append(slices.Clone(cfg.Engine.Allow), netip.MustParsePrefix("198.51.100.99/32"))
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !allows(fw, "198.51.100.20/32") || !allows(fw, "198.51.100.99/32") {
		t.Fatalf("after the reload: %v; want the trunk's address kept and the new entry", fw.Allowlist())
	}
	appendLines(t, e.log, failures("198.51.100.20", 5, time.Now())...)
	handled(t, r, 5)
	if fw.Has(netip.MustParsePrefix("198.51.100.20/32")) {
		t.Error("the trunk's address banned after a reload")
	}
	cfg.Trunks = nil
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if allows(fw, "198.51.100.20/32") || allows(fw, "203.0.113.0/24") {
		t.Errorf("after removing the trunk: %v", fw.Allowlist())
	}
}

// TestTrunks_SilentDNSNeverDelaysBans: a DNS server that never answers
// (each query waits out its timeout) holds up no ban: resolution runs on
// its own goroutine.
func TestTrunks_SilentDNSNeverDelaysBans(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // reads nothing, answers nothing
	e := newEnv(t)
	fw := fwtest.New(nil)
	cfg := e.config()
	cfg.Trunks = []trunks.Trunk{{Name: "carrier", Hosts: []string{"sip.carrier.test"}, SRV: true}}
	cfg.Resolver = &trunks.Resolver{Servers: []string{pc.LocalAddr().String()}, Timeout: time.Minute}
	r := start(t, cfg, fw)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	took := testutil.WaitFor(t, 10*time.Second, "the ban", func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.7/32")) })
	h := trunkHost(t, r)
	if !h.LastTry.IsZero() || len(h.Addresses) != 0 {
		t.Errorf("the trunk's first resolution ended (%+v): the test did not run while DNS hung", h)
	}
	t.Logf("banned within %s of waiting, with DNS hanging", took)
}

// TestTrunks_Restart: the daemon restarts while DNS fails: the trunk's
// address, saved with its last answer, is allowed from the start (before
// any ban is restored) until keep after that answer, then dropped.
func TestTrunks_Restart(t *testing.T) {
	keep := 3 * time.Second
	s, e, _, r := startTrunked(t, "198.51.100.20", keep)
	r.stop(t)
	answered := time.Now()
	s.Fail(dns.RcodeServerFailure)

	fw := fwtest.New(nil)
	r = start(t, withDNSTrunk(e.config(), s, keep), fw)
	if !allows(fw, "198.51.100.20/32") {
		t.Fatalf("after the restart: %v; want the saved answer allowed at once", fw.Allowlist())
	}
	testutil.WaitFor(t, 10*time.Second, "the error shown", func() bool { return strings.Contains(trunkHost(t, r).Error, "SERVFAIL") })
	if h := trunkHost(t, r); !slices.Equal(hostAddrs(h), []string{"198.51.100.20"}) {
		t.Errorf("trunks shows %+v; want the saved address kept", h)
	}
	testutil.WaitFor(t, 20*time.Second, "the saved answer dropped after keep", func() bool { return !allows(fw, "198.51.100.20/32") })
	if took := time.Since(answered); took < keep-500*time.Millisecond {
		t.Errorf("dropped %s after its last answer; keep is %s", took, keep)
	}
}

// TestTrunks_SavedUnreadable: a damaged trunks.json is logged and the
// trunks resolved afresh.
func TestTrunks_SavedUnreadable(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.carrier.test. 0 IN A 198.51.100.20")
	e := newEnv(t)
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.state, "trunks.json"), []byte("{not json"), 0o600)
	fw := fwtest.New(nil)
	r := start(t, withDNSTrunk(e.config(), s, time.Minute), fw)
	testutil.WaitFor(t, 10*time.Second, "the trunk resolved", func() bool { return allows(fw, "198.51.100.20/32") })
	if r.logs.Count("saved trunk answers unreadable") != 1 {
		t.Errorf("not logged:\n%s", r.logs)
	}
}
