package daemon_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// policyFake is a fake firewall that enforces the policy: it records the
// policy set and the addresses learned and forgotten. The kernel's side
// is tested with the real thing (firewall's and cmd/sipguard's namespace
// tests).
type policyFake struct {
	*fwtest.Fake
	mu      sync.Mutex
	policy  firewall.Policy
	learned map[netip.Addr]time.Duration
}

func newPolicyFake() *policyFake {
	return &policyFake{Fake: fwtest.New(nil), learned: map[netip.Addr]time.Duration{}}
}

func (f *policyFake) SetPolicy(_ context.Context, p firewall.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policy = p
	return nil
}

func (f *policyFake) Learn(_ context.Context, ls ...firewall.Learned) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range ls {
		f.learned[l.Addr] = l.Timeout
	}
	return nil
}

func (f *policyFake) Forget(_ context.Context, as ...netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range as {
		delete(f.learned, a)
	}
	return nil
}

func (f *policyFake) has(a string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.learned[netip.MustParseAddr(a)]
	return d, ok
}

func (f *policyFake) mode() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policy.Mode
}

func learnedAddrs(t *testing.T, r *running) []string {
	t.Helper()
	res, err := r.client.Learned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range res.Learned {
		out = append(out, l.Addr+" "+l.Account)
	}
	return out
}

// TestLearned: a successful login learns its address for learn_for, in
// the firewall too; a login after as many failures as the compromise rule
// asks for is not learned, and the compromise alert keeps the address out
// for learn_for, even for a later login without failures; allowlisted
// addresses are not learned; forget removes one; the learned addresses
// and the refusals survive a restart and are loaded into the firewall
// again.
func TestLearned(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Engine.Compromise = engine.CompromiseRule{Action: "alert", MinFailures: 3, Window: time.Hour, BanTime: time.Hour}
	udp, _ := firewall.ParsePort("5060/udp")
	cfg.Policy = daemon.Policy{
		Firewall: firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: []firewall.Port{udp}},
		LearnFor: time.Hour,
	}
	fw := newPolicyFake()
	r := start(t, cfg, fw)
	if fw.mode() != firewall.PolicyStrict {
		t.Fatalf("policy set in the firewall: %q; want strict", fw.mode())
	}
	now := time.Now()
	const phone, typo, cracked, office = "198.51.100.20", "198.51.100.21", "198.51.100.7", "192.0.2.5"
	var lines []string
	lines = append(lines, success(phone, "100", now))
	// Two failures, then the right password: a user who mistyped.
	lines = append(lines, failures(typo, 2, now.Add(-time.Minute))...)
	lines = append(lines, success(typo, "101", now))
	// Three failures, then a success: a guessed password. Twice: the
	// compromise rule reports the address once per window, and the door
	// stays shut the second time too.
	lines = append(lines, failures(cracked, 3, now.Add(-time.Minute))...)
	lines = append(lines, success(cracked, "102", now), success(cracked, "102", now))
	lines = append(lines, success(office, "103", now))
	// Then a failure of its own: once handled, the successes were.
	lines = append(lines, failures("198.51.100.250", 1, now)...)
	appendLines(t, e.log, lines...)
	handled(t, r, 2+3+1)

	if got, want := strings.Join(learnedAddrs(t, r), ","), phone+" 100,"+typo+" 101"; got != want {
		t.Errorf("learned %q; want %q\n%s", got, want, r.logs)
	}
	if d, ok := fw.has(phone); !ok || d < 59*time.Minute || d > time.Hour {
		t.Errorf("phone in the firewall: %v %v; want about an hour", d, ok)
	}
	if _, ok := fw.has(cracked); ok {
		t.Error("the cracked account's address reached the firewall's learned set")
	}
	if st := status(t, r); st.Policy.Mode != "strict" || st.Policy.Learned != 2 || st.Policy.Refused != 2 {
		t.Errorf("status: %+v; want strict, 2 learned, 2 refused", st.Policy)
	}
	if r.logs.Count("198.51.100.7", "a guessed password must not open the SIP ports") != 1 {
		t.Errorf("no warning for the refused address:\n%s", r.logs)
	}

	ctx := context.Background()
	for _, c := range []struct{ addr, port, verdict, rule string }{
		{phone, "5060/udp", control.VerdictAccepted, "learn4 udp"},
		{cracked, "5060/udp", control.VerdictDropped, "policy drop 5060/udp"},
		{office, "5060/udp", control.VerdictAccepted, "allow4"},
		{cracked, "22/tcp", control.VerdictUntouched, ""},
	} {
		x, err := r.client.Explain(ctx, c.addr, c.port)
		if err != nil || x.Verdict != c.verdict || x.Rule != c.rule {
			t.Errorf("explain %s %s: %+v, %v; want %s by %q", c.addr, c.port, x, err, c.verdict, c.rule)
		}
	}
	if _, err := r.client.Explain(ctx, "pbx.example.com", "5060/udp"); err == nil {
		t.Error("explain of a host name answered")
	}

	if res, err := r.client.Forget(ctx, typo); err != nil || res.Result != control.Forgotten {
		t.Errorf("forget: %+v %v", res, err)
	}
	if res, _ := r.client.Forget(ctx, typo); res.Result != control.NotLearned {
		t.Errorf("forget again: %+v", res)
	}
	if _, ok := fw.has(typo); ok {
		t.Error("forgotten, still in the firewall")
	}

	// Restart: the phone comes back, into the new firewall; the cracked
	// address stays refused, even for a login without failures.
	r.stop(t)
	if _, err := os.Stat(filepath.Join(e.state, "learned.json")); err != nil {
		t.Fatal(err)
	}
	fw2 := newPolicyFake()
	r2 := start(t, cfg, fw2)
	if got := learnedAddrs(t, r2); len(got) != 1 || got[0] != phone+" 100" {
		t.Errorf("after the restart: learned %q; want the phone", got)
	}
	if _, ok := fw2.has(phone); !ok {
		t.Error("after the restart: the phone is not in the firewall")
	}
	appendLines(t, e.log, success(cracked, "102", time.Now()))
	appendLines(t, e.log, failures("198.51.100.251", 1, time.Now())...)
	handled(t, r2, 1)
	if got := learnedAddrs(t, r2); len(got) != 1 {
		t.Errorf("the cracked address learned after the restart: %q", got)
	}
}

// TestLearnedCompromiseOff: with the compromise rule off, a login after
// min_failures failures within its window is still not learned.
func TestLearnedCompromiseOff(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Engine.Compromise = engine.CompromiseRule{Action: "off", MinFailures: 3, Window: time.Hour, BanTime: time.Hour}
	cfg.Policy.LearnFor = time.Hour
	fw := newPolicyFake()
	r := start(t, cfg, fw)
	now := time.Now()
	lines := append(failures("198.51.100.7", 3, now.Add(-time.Minute)), success("198.51.100.7", "102", now))
	lines = append(lines, failures("198.51.100.250", 1, now)...)
	appendLines(t, e.log, lines...)
	handled(t, r, 4)
	if got := learnedAddrs(t, r); len(got) != 0 {
		t.Errorf("learned %q; want none", got)
	}
	if _, ok := fw.has("198.51.100.7"); ok || r.logs.Count("198.51.100.7", "not learned") != 1 {
		t.Errorf("in the firewall %v; log:\n%s", ok, r.logs)
	}
}

// TestPolicyReload: a reload sets a changed policy in the firewall; a
// changed [firewall] early is kept as it was (it changes the chains'
// hooks: restart), with a warning, and the rest of the reload applies.
func TestPolicyReload(t *testing.T) {
	e := newEnv(t)
	fw := newPolicyFake()
	r := start(t, e.config(), fw)
	if fw.mode() != "" {
		t.Fatalf("policy at start: %q; want open (zero)", fw.mode())
	}
	udp, _ := firewall.ParsePort("5060/udp")
	cfg := e.config()
	cfg.Policy.Firewall = firewall.Policy{Mode: firewall.PolicyResponsive, SIPPorts: []firewall.Port{udp}, Rate: firewall.Rate{Count: 20, Per: time.Minute}}
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if fw.mode() != firewall.PolicyResponsive {
		t.Errorf("after the reload: %q; want responsive", fw.mode())
	}
	cfg.Policy.Firewall.Mode, cfg.Policy.Firewall.Early = firewall.PolicyStrict, true
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	fw.mu.Lock()
	early := fw.policy.Early
	fw.mu.Unlock()
	if fw.mode() != firewall.PolicyStrict || early {
		t.Errorf("after a reload changing early: mode %q, early %v; want strict, false", fw.mode(), early)
	}
	if r.logs.Count("early changes take effect on restart") != 1 {
		t.Errorf("no warning:\n%s", r.logs)
	}
	x, err := r.client.Explain(context.Background(), "198.51.100.9", "5060/udp")
	if err != nil || x.Mode != firewall.PolicyStrict || x.Verdict != control.VerdictDropped {
		t.Errorf("explain after the reload: %+v %v", x, err)
	}
}

// TestLearned_SyslogForgeable: a successful login that arrives in a UDP
// syslog datagram is not learned: anyone can send one with a listed
// sender's address as its source, and learning it would admit the
// forger's address to the SIP ports in strict mode for learn_for. Nor
// one framed by a newline over TCP: a newline inside an earlier message
// (an attacker's user name, logged raw) forges it. The same login over
// TCP with octet counting is learned.
func TestLearned_SyslogForgeable(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	udp, _ := firewall.ParsePort("5060/udp")
	cfg.Policy = daemon.Policy{Firewall: firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: []firewall.Port{udp}}, LearnFor: time.Hour}
	cfg.Sources = append(cfg.Sources, daemon.Source{
		Name: "remote", Parser: "asterisk", Location: time.UTC,
		Listen: []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"}, Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	fw := newPolicyFake()
	r := start(t, cfg, fw)
	msg := func(addr, user string) string {
		_, text, _ := strings.Cut(success(addr, user, time.Now()), "] ")
		return fmt.Sprintf("<38>%s pbx asterisk[812]: %s", time.Now().UTC().Format("Jan _2 15:04:05"), text)
	}
	successes := func() int64 {
		for _, s := range status(t, r).Sources {
			if s.Name == "remote" {
				return s.Successes
			}
		}
		return -1
	}
	const forger, injected, phone = "198.51.100.66", "198.51.100.67", "198.51.100.20"
	u, err := net.Dial("udp", "127.0.0.1:"+listenerPort(t, r, "udp"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	fmt.Fprint(u, msg(forger, "100"))
	if !eventually(func() bool { return successes() == 1 }) {
		t.Fatalf("the datagram's login not read: %d successes\n%s", successes(), r.logs)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+listenerPort(t, r, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\n", msg(injected, "102"))
	m := msg(phone, "101")
	fmt.Fprintf(c, "%d %s", len(m), m)
	if !eventually(func() bool { _, ok := fw.has(phone); return ok }) {
		t.Fatalf("the login over TCP not learned\n%s", r.logs)
	}
	if !eventually(func() bool { return r.logs.Count(forger, "not learned", "UDP") == 1 }) { // once a minute: not injected's
		t.Errorf("no warning for the datagram's login:\n%s", r.logs)
	}
	for _, a := range []string{forger, injected} {
		if _, ok := fw.has(a); ok {
			t.Errorf("a login of %s in a forgeable message was learned: %v", a, learnedAddrs(t, r))
		}
	}
	if st := status(t, r); st.Policy.Learned != 1 || st.Policy.Refused != 2 {
		t.Errorf("status: %+v; want 1 learned, 2 refused", st.Policy)
	}
}

// TestLearned_PerAccount: one account's password, used from ever new
// addresses (a botnet, or one IPv6 /64 holding any number), learns at
// most a bounded number of them: it cannot fill the learned addresses
// and keep every other phone from being learned (shut out in strict
// mode) for learn_for. Another account is learned as before.
func TestLearned_PerAccount(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	udp, _ := firewall.ParsePort("5060/udp")
	cfg.Policy = daemon.Policy{Firewall: firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: []firewall.Port{udp}}, LearnFor: time.Hour}
	fw := newPolicyFake()
	r := start(t, cfg, fw)
	now := time.Now()
	var lines []string
	for i := range 100 {
		lines = append(lines, success(fmt.Sprintf("198.51.100.%d", 101+i), "100", now))
	}
	lines = append(lines, success("198.51.100.20", "101", now))
	lines = append(lines, failures("198.51.100.250", 1, now)...)
	appendLines(t, e.log, lines...)
	handled(t, r, 1)
	var by100 int
	for _, l := range learnedAddrs(t, r) {
		if strings.HasSuffix(l, " 100") {
			by100++
		}
	}
	if by100 > daemon.MaxLearnedPerAccount {
		t.Errorf("account 100 learned %d addresses; want at most %d", by100, daemon.MaxLearnedPerAccount)
	}
	if _, ok := fw.has("198.51.100.20"); !ok {
		t.Error("another account's phone not learned")
	}
	if st := status(t, r); st.Policy.Refused != int64(100-daemon.MaxLearnedPerAccount) {
		t.Errorf("status %+v; want %d refused", st.Policy, 100-daemon.MaxLearnedPerAccount)
	}
}
