package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/parsers"
	_ "github.com/sipguard/sipguard/parsers/all"
	"github.com/sipguard/sipguard/watchers"
)

// env is a daemon's files: its log, state and socket.
type env struct {
	dir, log, state, socket string
}

func newEnv(t *testing.T) env {
	dir := t.TempDir()
	e := env{dir: dir, log: filepath.Join(dir, "messages.log"), state: filepath.Join(dir, "state"), socket: filepath.Join(dir, "sipguard.sock")}
	os.WriteFile(e.log, nil, 0o644)
	return e
}

func (e env) config() daemon.Config {
	return daemon.Config{
		Version: "test",
		Sources: []daemon.Source{{Name: "pbx", Path: e.log, Parser: "asterisk", Location: time.UTC, Start: watchers.StartBeginning}},
		Engine: engine.Options{
			Rules: []engine.Rule{
				{Name: "burst", Kinds: parsers.AllKinds, MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour, Factor: 2, MaxBanTime: 24 * time.Hour},
			},
			Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24")},
		},
		StateDir: e.state, Socket: e.socket, ManualBanTime: time.Hour,
	}
}

// running is a daemon in a goroutine.
type running struct {
	d      *daemon.Daemon
	fw     firewall.Backend
	logs   *testutil.Buffer
	cancel context.CancelFunc
	done   chan error
	client *control.Client
}

func start(t *testing.T, cfg daemon.Config, fw firewall.Backend, obs ...daemon.Observer) *running {
	t.Helper()
	return startWith(t, cfg, fw, func(d *daemon.Daemon) {
		for _, o := range obs {
			d.Observe(o)
		}
	})
}

// startWith runs a daemon after setup (Observe, Join) has seen it.
func startWith(t *testing.T, cfg daemon.Config, fw firewall.Backend, setup func(*daemon.Daemon)) *running {
	t.Helper()
	return startAt(t, cfg, fw, nil, setup)
}

// startAt is startWith with the daemon's clock (nil: time.Now).
func startAt(t *testing.T, cfg daemon.Config, fw firewall.Backend, now func() time.Time, setup func(*daemon.Daemon)) *running {
	t.Helper()
	return startLevel(t, cfg, fw, now, zerolog.DebugLevel, setup)
}

// startLevel is startAt with the daemon's log at level: info, as in
// production, where a test measures how fast the daemon is.
func startLevel(t *testing.T, cfg daemon.Config, fw firewall.Backend, now func() time.Time, level zerolog.Level, setup func(*daemon.Daemon)) *running {
	t.Helper()
	logs := &testutil.Buffer{}
	log := zerolog.New(logs).Level(level)
	if fw == nil {
		fw = firewall.NewDryRun(log, nil)
	}
	d, err := daemon.New(cfg, fw, log, now)
	if err != nil {
		t.Fatal(err)
	}
	setup(d)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, fw: fw, logs: logs, cancel: cancel, done: make(chan error, 1), client: control.NewClient(cfg.Socket)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	if !eventually(func() bool { _, err := r.client.Status(context.Background()); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", logs)
	}
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

func eventually(cond func() bool) bool { return testutil.Eventually(5*time.Second, cond) }

// handled waits until the core goroutine has handled n events in all
// (allowlisted ones too). The core enforces the bans a batch of events
// causes before it answers anything else (loop: handle, then flush), so
// once it has, a ban that is not in the firewall was not decided: the
// positive signal a test waits for before it asserts that a ban is not
// there. Waiting a fixed time instead passes whenever the line was not
// read yet.
func handled(t *testing.T, r *running, n int64) {
	t.Helper()
	var st control.Status
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("the core to handle %d events", n), func() bool {
		st = status(t, r)
		return st.Engine.Events >= n
	})
	if st.Engine.Events != n {
		t.Fatalf("the core handled %d events; want %d", st.Engine.Events, n)
	}
}

// ticked waits until a tick of the core loop (every second: expiries,
// feeds, the sources' health, saves) has run after the call: the positive
// signal a test waits for before it asserts that a tick changed nothing.
// It bans an address of its own by hand for a second and waits for a tick
// to expire it (or anything else: any expiry it sees came from a tick
// after the call).
func ticked(t *testing.T, r *running) {
	t.Helper()
	before := status(t, r).Unbans[daemon.UnbanExpired]
	if _, err := r.client.Ban(context.Background(), control.BanRequest{Target: "2001:db8:71c::1", For: "1s", Reason: "a tick"}); err != nil {
		t.Fatalf("ban to see a tick: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "a tick of the core loop", func() bool {
		return status(t, r).Unbans[daemon.UnbanExpired] > before
	})
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(strings.Join(lines, "\n") + "\n")
}

func failures(addr string, n int, at time.Time) []string {
	var out []string
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Second).UTC().Format(time.DateTime)
		out = append(out, "["+ts+"] NOTICE[1] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '"+addr+":5060' - Wrong password")
	}
	return out
}

func banned(fw firewall.Backend, target string) (firewall.Entry, bool) {
	es, _ := fw.List(context.Background())
	for _, e := range es {
		if e.Prefix.String() == target {
			return e, true
		}
	}
	return firewall.Entry{}, false
}

func TestBanFromLog(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	appendLines(t, e.log, failures("198.51.100.7", 4, time.Now())...)
	appendLines(t, e.log, failures("192.0.2.10", 9, time.Now())...) // allowlisted
	handled(t, r, 13)
	if _, ok := banned(r.fw, "198.51.100.7/32"); ok {
		t.Fatal("banned after 4 failures")
	}
	appendLines(t, e.log, failures("198.51.100.7", 1, time.Now())...)
	var ent firewall.Entry
	if !eventually(func() bool { var ok bool; ent, ok = banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	if left := time.Until(ent.Expires); left < 59*time.Minute || left > time.Hour {
		t.Errorf("ban expires in %v; want about 1h", left)
	}
	bans, _ := r.client.List(context.Background())
	if len(bans) != 1 || bans[0].Target != "198.51.100.7" || bans[0].Rule != "burst" || bans[0].Count != 5 || bans[0].Source != "pbx" {
		t.Errorf("list: %+v", bans)
	}
	st, _ := r.client.Status(context.Background())
	if st.Sources[0].Lines != 14 || st.Sources[0].Events != 14 || st.Engine.Allowed != 9 || st.Engine.Bans != 1 || st.Rules[0].Bans != 1 {
		t.Errorf("status: %+v %+v", st.Sources, st.Engine)
	}
	if !strings.Contains(r.logs.String(), `"message":"ban"`) || !strings.Contains(r.logs.String(), `"ttl_seconds":`) {
		t.Errorf("no ban log line:\n%s", r.logs)
	}
}

func TestManualBanUnban(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	ctx := context.Background()
	res, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.0/24", For: "2h", Reason: "abuse report"})
	if err != nil || res.Result != control.Banned || res.Ban.Rule != "manual" {
		t.Fatalf("ban: %+v %v", res, err)
	}
	if ent, ok := banned(r.fw, "198.51.100.0/24"); !ok || time.Until(ent.Expires) < 119*time.Minute {
		t.Errorf("firewall: %v %v", ent, ok)
	}
	if res, _ := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.0/24"}); res.Result != control.AlreadyBanned {
		t.Errorf("second ban: %v", res.Result)
	}
	// Refused: allowlisted (or overlapping the allowlist), bad input.
	for _, target := range []string{"192.0.2.5", "192.0.0.0/16", "127.0.0.1"} {
		if _, err := r.client.Ban(ctx, control.BanRequest{Target: target}); err == nil || !strings.Contains(err.Error(), "allowlisted") {
			t.Errorf("ban %s: %v", target, err)
		}
	}
	for _, target := range []string{"10.1.2.3/8", "pbx.example.com", ""} {
		if _, err := r.client.Ban(ctx, control.BanRequest{Target: target}); err == nil {
			t.Errorf("ban %q accepted", target)
		}
	}
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.9", For: "3600"}); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("bare --for: %v", err)
	}
	// Unbanning an address inside the network lifts the network.
	un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7"})
	if err != nil || un.Result != control.Unbanned || len(un.Unbanned) != 1 || un.Unbanned[0] != "198.51.100.0/24" {
		t.Fatalf("unban: %+v %v", un, err)
	}
	if _, ok := banned(r.fw, "198.51.100.0/24"); ok {
		t.Error("still in the firewall")
	}
	if un, _ := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7"}); un.Result != control.AlreadyUnbanned {
		t.Errorf("second unban: %v", un.Result)
	}
	r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.1"})
	r.client.Ban(ctx, control.BanRequest{Target: "2001:db8::/64"})
	if un, _ := r.client.Unban(ctx, control.UnbanRequest{All: true}); len(un.Unbanned) != 2 {
		t.Errorf("unban --all: %v", un.Unbanned)
	}
}

// TestManualBanSafety: a network wider than a /8 (IPv4) or /19 (IPv6) is
// a typo until --force says otherwise; a shorter manual ban never cuts a
// longer ban in force; an import follows the same rules.
func TestManualBanSafety(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	ctx := context.Background()
	for _, target := range []string{"0.0.0.0/2", "10.0.0.0/7", "2001::/16"} {
		if _, err := r.client.Ban(ctx, control.BanRequest{Target: target}); err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("ban %s: %v; want refused, naming --force", target, err)
		}
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s in the firewall", target)
		}
	}
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "10.0.0.0/7", Force: true, For: "1h"}); err != nil || res.Result != control.Banned {
		t.Errorf("ban --force 10.0.0.0/7: %+v %v", res, err)
	}
	// Inside it: recorded, covered; the /7 stays whole in the kernel.
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "11.0.0.0/8"}); err != nil || res.Ban.CoveredBy != "10.0.0.0/7" {
		t.Errorf("11.0.0.0/8 inside the forced ban: %+v %v; want it covered by 10.0.0.0/7", res, err)
	}
	if _, ok := banned(r.fw, "11.0.0.0/8"); ok {
		t.Error("11.0.0.0/8 in the firewall beside 10.0.0.0/7")
	}
	if _, ok := banned(r.fw, "10.0.0.0/7"); !ok {
		t.Error("10.0.0.0/7 not in the firewall")
	}

	// A rule's 1h ban, then a manual ban for 5m: the longer one stays.
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	ent, _ := banned(r.fw, "198.51.100.7/32")
	res, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.7", For: "5m"})
	if err != nil || !res.Kept || res.Result != control.AlreadyBanned || res.Ban.Rule != "burst" || res.Ban.Expires.Sub(ent.Expires).Abs() > time.Second {
		t.Errorf("ban --for 5m over a 1h ban: %+v %v; want the 1h ban kept", res, err)
	}
	if now, _ := banned(r.fw, "198.51.100.7/32"); !now.Expires.Equal(ent.Expires) {
		t.Errorf("the firewall's ban changed: %v; was %v", now.Expires, ent.Expires)
	}
	// Longer: replaced by the manual ban.
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.7", For: "2h"}); err != nil || res.Kept || res.Ban.Rule != "manual" {
		t.Errorf("ban --for 2h over a 1h ban: %+v %v", res, err)
	}
	imp, err := r.client.Import(ctx, control.ImportRequest{Bans: []control.BanRequest{
		{Target: "198.51.100.7", For: "10m"}, {Target: "64.0.0.0/3"}, {Target: "198.51.100.9"},
	}})
	if err != nil || imp.Kept != 1 || imp.Banned != 1 || len(imp.Refused) != 1 || !strings.Contains(imp.Refused[0], "wider than") {
		t.Errorf("import: %+v %v", imp, err)
	}
}

// TestStatusDurations: every duration in status is in seconds.
func TestStatusDurations(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	st, err := r.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rs := st.Rules[0]; rs.FindTime != 60 || rs.BanTime != 3600 || rs.MaxBanTime != 86400 {
		t.Errorf("rule %+v; want find 60, ban 3600, max 86400 (seconds)", rs)
	}
	js, _ := json.Marshal(st.Rules[0])
	if !strings.Contains(string(js), `"find_time_seconds":60,`) {
		t.Errorf("JSON %s", js)
	}
}

// TestUnbanClearsCounters: after an unban the address starts from zero.
func TestUnbanClearsCounters(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	appendLines(t, e.log, failures("198.51.100.7", 4, time.Now())...)
	handled(t, r, 4)
	// Not banned, yet the unban of its address clears its counters.
	if _, err := r.client.Unban(context.Background(), control.UnbanRequest{Target: "198.51.100.7"}); err != nil {
		t.Fatalf("unban: %v", err)
	}
	appendLines(t, e.log, failures("198.51.100.7", 1, time.Now())...)
	handled(t, r, 5)
	if _, ok := banned(r.fw, "198.51.100.7/32"); ok {
		t.Error("banned: the counters survived the unban")
	}
}

// TestRestart: bans and offences come back into a fresh firewall; the log
// is resumed where it stopped, so lines written meanwhile are read once.
func TestRestart(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatal("not banned")
	}
	r.client.Ban(context.Background(), control.BanRequest{Target: "203.0.113.0/24", Reason: "manual"})
	r.stop(t)

	appendLines(t, e.log, failures("198.51.100.8", 3, time.Now())...)
	fw := firewall.NewDryRun(zerolog.Nop(), nil) // as after a reboot: nothing in the kernel
	r2 := start(t, e.config(), fw)
	for _, target := range []string{"198.51.100.7/32", "203.0.113.0/24"} {
		if _, ok := banned(fw, target); !ok {
			t.Errorf("%s not restored", target)
		}
	}
	if !eventually(func() bool { st, _ := r2.client.Status(context.Background()); return st.Sources[0].Events == 3 }) {
		st, _ := r2.client.Status(context.Background())
		t.Fatalf("after restart read %d events; want the 3 new ones only", st.Sources[0].Events)
	}
	// Escalation history survived: the next ban of .7 is twice as long.
	r2.client.Unban(context.Background(), control.UnbanRequest{Target: "203.0.113.0/24"})
	bans, _ := r2.client.List(context.Background())
	if len(bans) != 1 || bans[0].Target != "198.51.100.7" {
		t.Errorf("list after restart: %+v", bans)
	}
}

// TestStaleBan: a ban decided on old lines (read late) whose time is
// already over is not enforced.
func TestStaleBan(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now().Add(-3*time.Hour))...)
	appendLines(t, e.log, failures("198.51.100.8", 5, time.Now().Add(-30*time.Minute))...)
	r := start(t, e.config(), nil)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.8/32"); return ok }) {
		t.Fatal("recent ban not enforced")
	}
	if ent, _ := banned(r.fw, "198.51.100.8/32"); time.Until(ent.Expires) > 31*time.Minute {
		t.Errorf("a ban decided 30 min late lasts %v; want the 30 min left", time.Until(ent.Expires))
	}
	if _, ok := banned(r.fw, "198.51.100.7/32"); ok {
		t.Error("a ban that ended 2 hours ago was enforced")
	}
	st, _ := r.client.Status(context.Background())
	if st.Engine.Stale != 1 {
		t.Errorf("stale = %d", st.Engine.Stale)
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	bad := e.config()
	bad.Engine.Rules[0].MaxRetry = 0
	if err := r.d.Reload(context.Background(), bad); err == nil {
		t.Fatal("invalid config reloaded")
	}
	good := e.config()
	good.Engine.Rules[0].MaxRetry = 1
	if err := r.d.Reload(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.log, failures("198.51.100.7", 1, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Error("new rule not applied")
	}
	// A source added by a reload is followed.
	other := filepath.Join(e.dir, "other.log")
	os.WriteFile(other, nil, 0o644)
	good.Sources = append(good.Sources, daemon.Source{Name: "other", Path: other, Parser: "asterisk", Location: time.UTC, Start: watchers.StartBeginning})
	if err := r.d.Reload(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	appendLines(t, other, failures("198.51.100.8", 1, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.8/32"); return ok }) {
		t.Error("added source not followed")
	}
}

// TestStateProblems: an unreadable state file is kept aside, and a state
// that cannot be saved does not stop enforcement.
func TestStateProblems(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(e.state, 0o700)
	os.WriteFile(filepath.Join(e.state, "bans.state"), []byte("{torn"), 0o600)
	r := start(t, e.config(), nil)
	if m, _ := filepath.Glob(filepath.Join(e.state, "bans.state.corrupt-*")); len(m) != 1 {
		t.Errorf("corrupt state not kept aside: %v", m)
	}
	// bans.state replaced by a directory: saving fails.
	os.Remove(filepath.Join(e.state, "bans.state"))
	os.Mkdir(filepath.Join(e.state, "bans.state"), 0o700)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatal("not banned while the state cannot be saved")
	}
	if !eventually(func() bool { st, _ := r.client.Status(context.Background()); return st.State.Error != "" }) {
		t.Error("status does not show the state error")
	}
	os.Remove(filepath.Join(e.state, "bans.state"))
	if !eventually(func() bool { st, _ := r.client.Status(context.Background()); return st.State.Error == "" }) {
		t.Error("state not saved again")
	}
	if _, err := os.Stat(filepath.Join(e.state, "bans.state")); err != nil {
		t.Error(err)
	}
}

// TestStartEndThenRestart: a daemon that started at the end of a file and
// saw no line yet still resumes there after a restart, so lines written
// while it was down are read.
func TestStartEndThenRestart(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.log, failures("198.51.100.9", 5, time.Now().Add(-time.Minute))...) // before the first start: skipped
	cfg := e.config()
	cfg.Sources[0].Start = watchers.StartEnd
	r := start(t, cfg, nil)
	testutil.WaitFor(t, 10*time.Second, "the starting position saved", func() bool {
		data, _ := os.ReadFile(filepath.Join(e.state, "positions.json"))
		return strings.Contains(string(data), `"pbx"`)
	})
	r.stop(t)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...) // while down
	r2 := start(t, cfg, nil)
	if !eventually(func() bool { _, ok := banned(r2.fw, "198.51.100.7/32"); return ok }) {
		t.Error("lines written while the daemon was down were skipped")
	}
	if _, ok := banned(r2.fw, "198.51.100.9/32"); ok {
		t.Error("lines from before the first start were read")
	}
}

// TestNetworkBansNest: an attacker inside a network banned by hand needs
// no ban of its own in the kernel, nor does a narrower network banned by
// hand; a wider manual ban replaces narrower network bans there; and
// neither blocks the other bans of the batch.
func TestNetworkBansNest(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	ctx := context.Background()
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "2001:db8::/32", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	// Five failures from one /64 inside the /32, and five from an IPv4
	// attacker, in the same batch.
	v6 := strings.ReplaceAll(strings.Join(failures("x", 5, time.Now()), "\n"), "'x:5060'", "'[2001:db8:1:2::9]:5060'")
	appendLines(t, e.log, append(strings.Split(v6, "\n"), failures("198.51.100.7", 5, time.Now())...)...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("the IPv4 ban was held up:\n%s", r.logs)
	}
	if _, ok := banned(r.fw, "2001:db8:1:2::/64"); ok {
		t.Error("a /64 inside a banned /32 was banned on its own")
	}
	// A narrower manual ban inside it is recorded, covered by it: out of
	// the kernel, which holds no overlapping networks.
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "2001:db8:5::/48"}); err != nil || res.Ban.CoveredBy != "2001:db8::/32" {
		t.Errorf("ban inside a banned network: %+v, %v; want it covered by 2001:db8::/32", res, err)
	}
	if _, ok := banned(r.fw, "2001:db8:5::/48"); ok {
		t.Error("a /48 inside a banned /32 is in the firewall beside it")
	}
	// A wider one replaces it.
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "2001::/16", Force: true}); err != nil {
		t.Fatalf("wider ban: %v", err)
	}
	if _, ok := banned(r.fw, "2001:db8::/32"); ok {
		t.Error("the narrower network ban was not replaced")
	}
	if _, ok := banned(r.fw, "2001::/16"); !ok {
		es, _ := r.fw.List(ctx)
		t.Errorf("wider ban not in force: %v", es)
	}
}

// TestFirewallFailureRetried: bans the firewall refuses (a netlink error)
// are retried with backoff until they hold; none is lost.
func TestFirewallFailureRetried(t *testing.T) {
	e := newEnv(t)
	fw := fwtest.New(nil)
	var calls atomic.Int32
	fw.BanFunc = func([]firewall.Ban) error {
		if calls.Add(1) <= 3 {
			return errors.New("netlink receive: no buffer space available")
		}
		return nil
	}
	r := start(t, e.config(), fw)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { st, _ := r.client.Status(context.Background()); return st.Firewall.Error != "" }) {
		t.Error("status does not show the firewall error")
	}
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.7/32")) }) {
		t.Fatalf("ban lost after firewall errors:\n%s", r.logs)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d firewall calls; want 3 failures and 1 success", n)
	}
	if !strings.Contains(r.logs.String(), "retrying") {
		t.Errorf("no retry logged:\n%s", r.logs)
	}
}

// TestEscalationSurvivesRestart: the offence history is saved, so a repeat
// offender's next ban after a restart is longer.
func TestEscalationSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	cfg, r, p := firstOffence(t, e)
	time.Sleep(1100 * time.Millisecond) // the first ban (1s) ends
	r.stop(t)
	fw2 := fwtest.New(nil)
	start(t, cfg, fw2)
	wantEscalated(t, e, fw2, p)
}

// firstOffence starts a daemon whose rule bans for 1 s, escalating by a
// factor of 4, and has it ban p, an address, from its log.
func firstOffence(t *testing.T, e env) (cfg daemon.Config, r *running, p netip.Prefix) {
	t.Helper()
	cfg = e.config()
	cfg.Engine.Rules[0].BanTime, cfg.Engine.Rules[0].Factor = time.Second, 4
	fw := fwtest.New(nil)
	r = start(t, cfg, fw)
	p = netip.MustParsePrefix("198.51.100.7/32")
	lines, _ := burst(p.Addr().String())
	appendLines(t, e.log, lines...)
	if !eventually(func() bool { return fw.Has(p) }) {
		t.Fatal("first ban missing")
	}
	return cfg, r, p
}

// burst is five failures of addr at once, stamped to the millisecond with
// the time it returns: the ban runs from the last.
func burst(addr string) ([]string, time.Time) {
	at := time.Now().UTC().Truncate(time.Millisecond)
	line := "[" + at.Format("2006-01-02 15:04:05.000") + "] NOTICE[1] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '" + addr + ":5060' - Wrong password"
	return []string{line, line, line, line, line}, at
}

// wantEscalated appends a burst of p's address to the log and checks that
// its ban, with a rule of 1 s and factor 4, lasts 4 s: the offence of its
// earlier ban was remembered.
func wantEscalated(t *testing.T, e env, fw *fwtest.Fake, p netip.Prefix) {
	t.Helper()
	lines, at := burst(p.Addr().String())
	appendLines(t, e.log, lines...)
	if !eventually(func() bool { return fw.Has(p) }) {
		t.Fatal("second ban missing")
	}
	// The ban runs from its last event's log time: measured from there, not
	// from when the test looks (which a loaded machine delays by seconds),
	// it is 4 s, give or take how long the firewall call took; unescalated
	// it would be 1 s, escalated twice 16 s.
	exp, _ := fw.Expiry(p)
	if d := exp.Sub(at); d < 4*time.Second || d > 6*time.Second {
		t.Errorf("second ban lasts %v from its last event; want 4s (1s x 4 for one earlier offence)", d)
	}
}

// TestHostileInput: a 1 MB line, binary garbage, NUL bytes, invalid UTF-8
// and an unterminated last line neither stop the daemon nor cause a ban;
// the real attacker after them is banned; the long line is counted.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	fw := fwtest.New(nil)
	r := start(t, e.config(), fw)
	f, _ := os.OpenFile(e.log, os.O_APPEND|os.O_WRONLY, 0)
	defer f.Close()
	f.WriteString(strings.Repeat("A", 1<<20) + "\n")
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7919 + i/13) // every byte value, newlines included
	}
	f.Write(garbage)
	f.WriteString("\n[2026-11-26 10:00:00] NOTICE[1] chan_sip.c: Registration from '\x00\xff\xfe' failed for '198.51.100.99:5060' - Wrong\x00password\n")
	real := failures("198.51.100.7", 5, time.Now())
	f.WriteString(strings.Join(real, "\n") + "\n")
	f.WriteString(real[0][:60]) // unterminated: not read until it ends
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.7/32")) }) {
		t.Fatalf("attacker after the garbage not banned:\n%s", r.logs)
	}
	if es := fw.Entries(); len(es) != 1 {
		t.Errorf("bans %v; want only 198.51.100.7", es)
	}
	st, _ := r.client.Status(context.Background())
	if st.Sources[0].DropBy["too_long"] != 1 || st.Sources[0].Events != 5 {
		t.Errorf("status: %+v", st.Sources[0])
	}
	f.WriteString(real[0][60:] + "\n")
	if !eventually(func() bool { st, _ := r.client.Status(context.Background()); return st.Sources[0].Events == 6 }) {
		t.Error("the completed last line was not read once")
	}
}

// TestSyslogSource: a syslog source bans from messages of listed senders;
// messages from anyone else change nothing and are counted.
func TestSyslogSource(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = []daemon.Source{{
		Name: "yeastar", Parser: "asterisk", Location: time.UTC,
		Listen:  []string{"udp://127.0.0.1:0"},
		Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	fw := fwtest.New(nil)
	r := start(t, cfg, fw)
	port := listenerPort(t, r, "udp")
	send := func(from string, n int, attacker string) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: atoi(port)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range n {
			fmt.Fprintf(c, "<29>%s pbx asterisk[812]: NOTICE[1290]: chan_sip.c:28835 in handle_request_register: Registration from '<sip:6001@203.0.113.10>' failed for '%s:5060' - Wrong password",
				time.Now().UTC().Format("Jan _2 15:04:05"), attacker)
		}
	}
	send("127.0.0.3", 20, "198.51.100.66") // not a listed sender: a forged attack on .66
	send("127.0.0.2", 5, "198.51.100.7")
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("198.51.100.7/32")) }) {
		t.Fatalf("not banned from syslog:\n%s", r.logs)
	}
	if fw.Has(netip.MustParsePrefix("198.51.100.66/32")) {
		t.Error("banned from an unlisted sender's messages")
	}
	st, _ := r.client.Status(context.Background())
	if s := st.Sources[0]; s.Events != 5 || s.DropBy["unlisted_sender"] != 20 || !strings.HasPrefix(s.Path, "syslog udp://127.0.0.1:") {
		t.Errorf("status: %+v", s)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// listenerPort finds in the daemon's log the port a syslog receiver bound
// for port 0 (scheme "udp" or "tcp").
func listenerPort(t *testing.T, r *running, scheme string) string {
	t.Helper()
	var port string
	if !eventually(func() bool {
		for _, l := range strings.Split(r.logs.String(), "\n") {
			var v struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal([]byte(l), &v) == nil && v.Message == "syslog listener started" && strings.HasPrefix(v.Addr, scheme+"://") {
				_, port, _ = strings.Cut(strings.TrimPrefix(v.Addr, scheme+"://"), ":")
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s listening line:\n%s", scheme, r.logs)
	}
	return port
}

// TestSyslogLFFraming: a sender framing TCP messages by newlines, where a
// newline inside a message forges another, is warned of once in the log
// and counted in status.
func TestSyslogLFFraming(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = []daemon.Source{{
		Name: "pbx", Parser: "asterisk", Location: time.UTC,
		Listen: []string{"tcp://127.0.0.1:0"}, Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}}
	r := start(t, cfg, nil)
	c, err := net.Dial("tcp", "127.0.0.1:"+listenerPort(t, r, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		fmt.Fprintf(c, "<29>%s pbx asterisk[812]: VERBOSE[1]: pbx.c: hello\n", time.Now().UTC().Format("Jan _2 15:04:05"))
	}
	if !eventually(func() bool { return status(t, r).Sources[0].LFFramed == 3 }) {
		t.Fatalf("status: %+v", status(t, r).Sources[0])
	}
	if n := r.logs.Count("frames messages over TCP by newlines", `"source":"pbx"`); n != 1 {
		t.Errorf("%d warnings; want 1:\n%s", n, r.logs)
	}
}

// TestWhy: what the daemon holds about an address, with the lines that
// banned it.
func TestWhy(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	ctx := context.Background()
	now := time.Now()
	appendLines(t, e.log, failures("198.51.100.8", 2, now)...)
	appendLines(t, e.log, failures("198.51.100.7", 5, now)...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	w, err := r.client.Why(ctx, "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Bans) != 1 || w.Bans[0].Rule != "burst" || w.CountedAs != "198.51.100.7" || w.Offences != 1 || len(w.Rules) != 1 || w.Rules[0].Events != 0 {
		t.Errorf("why 198.51.100.7: %+v", w)
	}
	if len(w.Lines) != 5 || w.Lines[4].Line != 7 || w.Lines[0].Source != "pbx" || !strings.Contains(w.Lines[4].Text, "failed for '198.51.100.7:5060'") {
		t.Errorf("lines: %+v", w.Lines)
	}
	if w, _ := r.client.Why(ctx, "198.51.100.8"); len(w.Bans) != 0 || w.Rules[0].Events != 2 || w.Rules[0].MaxRetry != 5 || len(w.Lines) != 0 {
		t.Errorf("why 198.51.100.8: %+v", w)
	}
	if w, _ := r.client.Why(ctx, "192.0.2.7"); w.Allowlisted != "192.0.2.0/24" {
		t.Errorf("why 192.0.2.7: %+v", w)
	}
	if w, _ := r.client.Why(ctx, "198.51.100.0/24"); len(w.Bans) != 1 || len(w.Lines) != 5 || len(w.Rules) != 0 {
		t.Errorf("why 198.51.100.0/24: %+v", w)
	}
	if _, err := r.client.Why(ctx, "pbx.example.com"); err == nil {
		t.Error("why of a host name answered")
	}
	// An unban forgets the lines.
	r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7"})
	if w, _ := r.client.Why(ctx, "198.51.100.7"); len(w.Bans) != 0 || len(w.Lines) != 0 || w.Offences != 0 {
		t.Errorf("after unban: %+v", w)
	}
}
