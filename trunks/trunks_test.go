package trunks_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/dnstest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/trunks"
)

// latest keeps the last set a watcher published.
type latest struct {
	mu  sync.Mutex
	set trunks.Set
	n   int
}

func (l *latest) publish(s trunks.Set) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set, l.n = s, l.n+1
}

func (l *latest) get() trunks.Set {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set
}

func (l *latest) allows(p string) bool {
	return slices.Contains(l.get().Allow, netip.MustParsePrefix(p))
}

func (l *latest) host() trunks.HostStatus {
	s := l.get()
	if len(s.Trunks) == 0 || len(s.Trunks[0].Hosts) == 0 {
		return trunks.HostStatus{}
	}
	return s.Trunks[0].Hosts[0]
}

func watch(t *testing.T, tr trunks.Trunk, s *dnstest.Server) (*latest, *testutil.Buffer) {
	t.Helper()
	return watchAll(t, []trunks.Trunk{tr}, resolver(s))
}

// watchAll runs a watcher of ts resolving through lookup until the test
// ends.
func watchAll(t *testing.T, ts []trunks.Trunk, lookup trunks.Lookup) (*latest, *testutil.Buffer) {
	t.Helper()
	var logs testutil.Buffer
	w := trunks.NewWatcher(ts, lookup, zerolog.New(&logs))
	l := &latest{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, l.publish)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l, &logs
}

// TestWatcher_AnswerChanges: the DNS answer changes under the watcher:
// the new address is admitted at the next resolution (TTL clamped to
// min_ttl), the old one only dropped once no answer held it for keep.
func TestWatcher_AnswerChanges(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.example.test. 0 IN A 192.0.2.1") // TTL 0: clamped to min_ttl
	keep := 1500 * time.Millisecond
	tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		MinTTL: 50 * time.Millisecond, MaxTTL: time.Second, Keep: keep}
	l, logs := watch(t, tr, s)
	testutil.WaitFor(t, 10*time.Second, "the first address", func() bool { return l.allows("192.0.2.1/32") })
	if !l.allows("203.0.113.0/24") {
		t.Errorf("the network is not allowed: %v", l.get().Allow)
	}
	if h := l.host(); h.TTL != 50*time.Millisecond || h.Error != "" || h.LastSuccess.IsZero() {
		t.Errorf("status %+v; want TTL 50ms (clamped), a success, no error", h)
	}

	s.Set(t, "sip.example.test. 0 IN A 192.0.2.2")
	changed := time.Now()
	testutil.WaitFor(t, 10*time.Second, "the new address", func() bool { return l.allows("192.0.2.2/32") })
	if !l.allows("192.0.2.1/32") {
		t.Fatal("the old address was dropped at once, not after keep")
	}
	testutil.WaitFor(t, 20*time.Second, "the old address dropped", func() bool { return !l.allows("192.0.2.1/32") })
	if took := time.Since(changed); took < keep-200*time.Millisecond {
		t.Errorf("the old address dropped %s after the change; keep is %s", took, keep)
	}
	if !l.allows("192.0.2.2/32") || !l.allows("203.0.113.0/24") {
		t.Errorf("allow %v; want the new address and the network", l.get().Allow)
	}
	if logs.Count("trunk addresses dropped", "192.0.2.1") != 1 || logs.Count("trunk addresses admitted", "192.0.2.2") != 1 {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestWatcher_Failure: DNS fails: the last answer is kept for keep, with
// the error shown, then dropped with the error still shown; the networks
// stay; an answer again admits the address again.
func TestWatcher_Failure(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.example.test. 0 IN A 192.0.2.1")
	keep := 1500 * time.Millisecond
	tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		MinTTL: 50 * time.Millisecond, MaxTTL: time.Second, Keep: keep}
	l, logs := watch(t, tr, s)
	testutil.WaitFor(t, 10*time.Second, "the address", func() bool { return l.allows("192.0.2.1/32") })

	s.Fail(dns.RcodeServerFailure)
	failed := time.Now()
	testutil.WaitFor(t, 10*time.Second, "the error shown", func() bool { return strings.Contains(l.host().Error, "SERVFAIL") })
	if !l.allows("192.0.2.1/32") {
		t.Fatal("the last answer was not kept on failure")
	}
	testutil.WaitFor(t, 20*time.Second, "the last answer dropped", func() bool { return !l.allows("192.0.2.1/32") })
	if took := time.Since(failed); took < keep-200*time.Millisecond {
		t.Errorf("dropped %s after the failure; keep is %s", took, keep)
	}
	h := l.host()
	if !strings.Contains(h.Error, "SERVFAIL") || len(h.Addrs) != 0 || h.ErrorSince.IsZero() {
		t.Errorf("status %+v; want no address and the error", h)
	}
	if !l.allows("203.0.113.0/24") {
		t.Error("the networks went with the DNS answer")
	}
	if logs.Count(`"level":"error"`, "trunk addresses dropped", "SERVFAIL") != 1 {
		t.Errorf("the drop is not logged as an error with its cause:\n%s", logs)
	}

	s.Fail(dns.RcodeSuccess)
	testutil.WaitFor(t, 10*time.Second, "the address again", func() bool { return l.allows("192.0.2.1/32") })
	testutil.WaitFor(t, 10*time.Second, "the error cleared", func() bool { return l.host().Error == "" })
}

// TestWatcher_NXDOMAIN: a name that does not exist is an error from the
// start, never an empty set that looks fine.
func TestWatcher_NXDOMAIN(t *testing.T) {
	s := dnstest.Start(t)
	tr := trunks.Trunk{Name: "typo", Hosts: []string{"sip.exmaple.test"}, MinTTL: 50 * time.Millisecond, Keep: time.Second}
	l, _ := watch(t, tr, s)
	testutil.WaitFor(t, 10*time.Second, "the error", func() bool { return strings.Contains(l.host().Error, "NXDOMAIN") })
	if a := l.get().Allow; len(a) != 0 {
		t.Errorf("allow %v; want nothing", a)
	}
}

// TestWatcher_MaxTTL: a long TTL is clamped to max_ttl.
func TestWatcher_MaxTTL(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.example.test. 86400 IN A 192.0.2.1")
	tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, MinTTL: 50 * time.Millisecond, MaxTTL: 100 * time.Millisecond, Keep: time.Minute}
	l, _ := watch(t, tr, s)
	testutil.WaitFor(t, 10*time.Second, "the address", func() bool { return l.allows("192.0.2.1/32") })
	if h := l.host(); h.TTL != 100*time.Millisecond {
		t.Errorf("TTL %s; want max_ttl 100ms", h.TTL)
	}
	s.Set(t, "sip.example.test. 86400 IN A 192.0.2.9")
	testutil.WaitFor(t, 10*time.Second, "the new address within max_ttl, not the day the TTL says", func() bool { return l.allows("192.0.2.9/32") })
}

// TestWatcher_Seed: a new watcher (after a reload) admits what the last
// one knew from its first set on, before any DNS answer.
func TestWatcher_Seed(t *testing.T) {
	s := dnstest.Start(t)
	s.Fail(dns.RcodeServerFailure)
	tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, MinTTL: time.Minute, Keep: time.Hour}
	now := time.Now()
	prev := trunks.Set{Trunks: []trunks.Status{{Name: "carrier", Hosts: []trunks.HostStatus{{Host: "sip.example.test",
		Addrs: []trunks.Addr{{Addr: netip.MustParseAddr("192.0.2.1"), Answered: now}}}}}}}
	w := trunks.NewWatcher([]trunks.Trunk{tr}, resolver(s), zerolog.Nop())
	w.Seed(prev)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan trunks.Set, 1)
	go w.Run(ctx, func(s trunks.Set) {
		select {
		case first <- s:
		default:
		}
	})
	if got := (<-first).Allow; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}) {
		t.Errorf("first set %v; want the seeded address", got)
	}
}

// TestWatcher_PartialFailure: one query of a host name fails for good (a
// broken middlebox that SERVFAILs AAAA; an SRV target whose DNS is dead,
// or owned by an attacker who answers SERVFAIL or too many addresses):
// the addresses the other queries answer are admitted all the same, the
// error shown. Complete-or-none would keep the host erring, admit nothing
// new, and drop every address of the provider after keep.
func TestWatcher_PartialFailure(t *testing.T) {
	servfail := func(s *dnstest.Server, name string, qtype uint16) {
		s.Hook(func(req *dns.Msg) *dns.Msg {
			q := req.Question[0]
			if dns.CanonicalName(q.Name) != name || q.Qtype != qtype {
				return nil
			}
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeServerFailure)
			return m
		})
	}
	t.Run("AAAA", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t, "sip.example.test. 60 IN A 192.0.2.1")
		servfail(s, "sip.example.test.", dns.TypeAAAA)
		tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, MinTTL: 50 * time.Millisecond, Keep: time.Minute}
		l, _ := watch(t, tr, s)
		testutil.WaitFor(t, 10*time.Second, "the A record's address", func() bool { return l.allows("192.0.2.1/32") })
		if h := l.host(); !strings.Contains(h.Error, "SERVFAIL") {
			t.Errorf("status %+v; want the AAAA failure shown", h)
		}
	})
	t.Run("SRVTarget", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t,
			"_sip._udp.example.test. 60 IN SRV 10 50 5060 edge1.example.test.",
			"_sip._udp.example.test. 60 IN SRV 20 50 5060 edge2.example.test.",
			"edge1.example.test. 60 IN A 198.51.100.1",
		)
		servfail(s, "edge2.example.test.", dns.TypeA)
		tr := trunks.Trunk{Name: "carrier", Hosts: []string{"example.test"}, SRV: true, MinTTL: 50 * time.Millisecond, Keep: time.Minute}
		l, _ := watch(t, tr, s)
		testutil.WaitFor(t, 10*time.Second, "the healthy target's address", func() bool { return l.allows("198.51.100.1/32") })
		if h := l.host(); !strings.Contains(h.Error, "edge2.example.test") {
			t.Errorf("status %+v; want the failing target's error shown", h)
		}
	})
}

// TestWatcher_Churn: whoever answers for a host name (a hostile server, a
// CDN) answers MaxAddrs new addresses at every resolution, TTL 0: what
// the watcher keeps of the host stays bounded (memory, trunks.json, the
// kernel's allow sets, the allowlist rebuilt at each change), the newest
// answer always whole.
func TestWatcher_Churn(t *testing.T) {
	s := dnstest.Start(t)
	var round int
	s.Hook(func(req *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(req)
		if req.Question[0].Qtype != dns.TypeA {
			return m
		}
		round++
		for i := range trunks.MaxAddrs {
			rr, _ := dns.NewRR(fmt.Sprintf("sip.example.test. 0 IN A 10.%d.%d.%d", round>>8&255, round&255, i))
			m.Answer = append(m.Answer, rr)
		}
		return m
	})
	tr := trunks.Trunk{Name: "carrier", Hosts: []string{"sip.example.test"}, MinTTL: 10 * time.Millisecond, Keep: time.Hour}
	l, _ := watch(t, tr, s)
	rounds := 4*trunks.MaxKept/trunks.MaxAddrs + 2
	testutil.WaitFor(t, 30*time.Second, "the rounds", func() bool {
		h := l.host()
		return len(h.Addrs) > 0 && h.Addrs[len(h.Addrs)-1].Addr.As4()[2] >= byte(rounds)
	})
	h := l.host()
	if len(h.Addrs) > trunks.MaxKept {
		t.Errorf("%d addresses kept; want at most %d", len(h.Addrs), trunks.MaxKept)
	}
	// The newest answer: the addresses of the highest round, all kept.
	last := h.Addrs[len(h.Addrs)-1].Addr.As4()
	n := 0
	for _, a := range h.Addrs {
		if b := a.Addr.As4(); b[1] == last[1] && b[2] == last[2] {
			n++
		}
	}
	if n != trunks.MaxAddrs {
		t.Errorf("%d addresses of the newest answer kept; want %d", n, trunks.MaxAddrs)
	}
}

// stalled is a Lookup whose answer for one host never comes (until the
// context ends): a server that holds each query just under the timeout,
// along CNAME chains and SRV targets, is as good as that for minutes.
// Every other host answers at once.
type stalled struct {
	host  string
	other trunks.Lookup
}

func (s stalled) Resolve(ctx context.Context, host string, srv bool) (trunks.Answer, error) {
	if host == s.host {
		<-ctx.Done()
		return trunks.Answer{}, ctx.Err()
	}
	return s.other.Resolve(ctx, host, srv)
}

// TestWatcher_Stalled: the resolution of one trunk's host name never
// ends: the other trunks are resolved and re-resolved all the same.
func TestWatcher_Stalled(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.carrier.test. 0 IN A 192.0.2.1")
	ts := []trunks.Trunk{
		{Name: "hostile", Hosts: []string{"sip.hostile.test"}, MinTTL: 50 * time.Millisecond, Keep: time.Minute},
		{Name: "carrier", Hosts: []string{"sip.carrier.test"}, MinTTL: 50 * time.Millisecond, Keep: time.Minute},
	}
	l, _ := watchAll(t, ts, stalled{host: "sip.hostile.test", other: resolver(s)})
	testutil.WaitFor(t, 10*time.Second, "the carrier's address", func() bool { return l.allows("192.0.2.1/32") })
	s.Set(t, "sip.carrier.test. 0 IN A 192.0.2.2")
	testutil.WaitFor(t, 10*time.Second, "the carrier's new address", func() bool { return l.allows("192.0.2.2/32") })
}
