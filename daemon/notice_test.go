package daemon_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/engine"
)

// notices records what an observer hears.
type notices struct {
	mu   sync.Mutex
	list []daemon.Notice
}

func (n *notices) Notice(x daemon.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, x)
}

func (n *notices) of(typ daemon.NoticeType) []daemon.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []daemon.Notice
	for _, x := range n.list {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

// success is a PJSIP SuccessfulAuth security line with a password.
func success(addr, user string, at time.Time) string {
	ts := at.UTC().Format(time.DateTime)
	return "[" + ts + "] SECURITY[1] res_security_log.c: SecurityEvent=\"SuccessfulAuth\",EventTV=\"" + at.UTC().Format("2006-01-02T15:04:05.000-0700") +
		"\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"" + user + "\",SessionID=\"x\",LocalAddress=\"IPV4/UDP/203.0.113.10/5060\",RemoteAddress=\"IPV4/UDP/" +
		addr + "/5060\",UsingPassword=\"1\""
}

func TestNoticesOfBansAndUnbans(t *testing.T) {
	e := newEnv(t)
	var n notices
	r := start(t, e.config(), nil, &n)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { return len(n.of(daemon.NoticeBan)) == 1 }) {
		t.Fatalf("no ban notice:\n%s", r.logs)
	}
	b := n.of(daemon.NoticeBan)[0]
	if b.Target.String() != "198.51.100.7/32" || b.Addr.String() != "198.51.100.7" || b.Rule != "burst" || b.Count != 5 ||
		b.Source != "pbx" || b.Latency <= 0 || b.Latency > 5*time.Second || time.Until(b.Expires) < 59*time.Minute {
		t.Errorf("ban notice %+v", b)
	}
	ctx := context.Background()
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "203.0.113.0/24", Reason: "abuse"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	bans, unbans := n.of(daemon.NoticeBan), n.of(daemon.NoticeUnban)
	if len(bans) != 2 || bans[1].Rule != "manual" || bans[1].Reason != "abuse" || bans[1].Latency != 0 {
		t.Errorf("manual ban notices %+v", bans)
	}
	if len(unbans) != 1 || unbans[0].Target.String() != "198.51.100.7/32" || unbans[0].Reason != daemon.UnbanManual || unbans[0].Rule != "burst" {
		t.Errorf("unban notices %+v", unbans)
	}
	st, _ := r.client.Status(ctx)
	if st.Unbans[daemon.UnbanManual] != 1 {
		t.Errorf("status unbans %v", st.Unbans)
	}
}

func TestCompromise(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name, action string
		failures     int
		addr         string
		alerts       int
		ban          bool
	}{
		{"alert", "alert", 3, "198.51.100.7", 1, false},
		{"ban", "ban", 3, "198.51.100.7", 1, true},
		{"too few failures", "alert", 2, "198.51.100.7", 0, false},
		{"off", "off", 4, "198.51.100.7", 0, false},
		{"allowlisted", "ban", 4, "192.0.2.7", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config()
			cfg.Engine.Compromise = engine.CompromiseRule{Action: c.action, MinFailures: 3, Window: time.Hour, BanTime: 7 * 24 * time.Hour}
			var n notices
			r := start(t, cfg, nil, &n)
			lines := failures(c.addr, c.failures, now.Add(-10*time.Minute))
			// A success from another address, which had no failures.
			lines = append(lines, success("198.51.100.99", "200", now.Add(-time.Minute)))
			// Two successes: a phone registering again is reported once.
			lines = append(lines, success(c.addr, "100", now.Add(-time.Minute)), success(c.addr, "100", now))
			// Then a failure of an address of its own: once the core has
			// handled it, it has handled the successes before it.
			lines = append(lines, failures("198.51.100.250", 1, now)...)
			appendLines(t, e.log, lines...)
			handled(t, r, int64(c.failures+1))
			got := n.of(daemon.NoticeCompromise)
			if len(got) != c.alerts {
				t.Fatalf("%d compromise notices; want %d: %+v\n%s", len(got), c.alerts, got, r.logs)
			}
			st, _ := r.client.Status(context.Background())
			if st.Engine.Compromises != int64(c.alerts) || st.Sources[0].EventsBy["auth_succeeded"] != 3 {
				t.Errorf("status: compromises %d, events %v", st.Engine.Compromises, st.Sources[0].EventsBy)
			}
			if c.alerts > 0 {
				a := got[0]
				if a.Addr.String() != c.addr || a.User != "100" || a.Count != c.failures || a.Source != "pbx" {
					t.Errorf("notice %+v", a)
				}
				if !strings.Contains(r.logs.String(), `"level":"warn"`) || !strings.Contains(r.logs.String(), "guessed password") {
					t.Errorf("no warning in the log:\n%s", r.logs)
				}
			}
			ent, isBanned := banned(r.fw, c.addr+"/32")
			if isBanned != c.ban {
				t.Fatalf("banned %v; want %v\n%s", isBanned, c.ban, r.logs)
			}
			if c.ban {
				if left := time.Until(ent.Expires); left < 6*24*time.Hour {
					t.Errorf("compromise ban for %v; want about 7d", left)
				}
				bans, _ := r.client.List(context.Background())
				if len(bans) != 1 || bans[0].Rule != "compromise" || !strings.Contains(bans[0].Reason, "successful login after 3 failures") {
					t.Errorf("list %+v", bans)
				}
			}
			if _, ok := banned(r.fw, "198.51.100.99/32"); ok {
				t.Error("the address with only a success was banned")
			}
		})
	}
}

// TestDropSurge: a source whose lines are dropped as malformed or injected
// by the hundred within a minute is reported once (a warning, a notice),
// and nobody is banned for it.
func TestDropSurge(t *testing.T) {
	e := newEnv(t)
	var n notices
	r := start(t, e.config(), nil, &n)
	now := time.Now().UTC()
	var lines []string
	for i := range daemon.SurgeDrops / 2 {
		ts := now.Format(time.DateTime)
		// A cut message of the attacker's, then a forged line in its reach.
		lines = append(lines,
			"["+ts+"] NOTICE[4400] chan_iax2.c: No registration for peer 'x",
			"["+ts+"] NOTICE["+strconv.Itoa(i+1)+"] chan_sip.c: Registration from '' failed for '203.0.113.44:5060' - Wrong password",
			"' (from 198.51.100.20)",
			// A line whose fields cannot be read.
			"["+ts+"] NOTICE[4121] chan_sip.c: Registration from '' failed for '198.51.100.7:5060' - Cosmic rays")
	}
	appendLines(t, e.log, lines...)
	if !eventually(func() bool { return len(n.of(daemon.NoticeDropSurge)) == 1 }) {
		t.Fatalf("no surge notice:\n%s", r.logs)
	}
	s := n.of(daemon.NoticeDropSurge)[0]
	if s.Source != "pbx" || s.Count < daemon.SurgeDrops || s.Target.IsValid() {
		t.Errorf("surge notice %+v", s)
	}
	if !strings.Contains(r.logs.String(), "a surge of malformed or injected lines") {
		t.Errorf("no warning:\n%s", r.logs)
	}
	// More of the same within the quiet time: no second report.
	appendLines(t, e.log, lines...)
	time.Sleep(2500 * time.Millisecond)
	if got := len(n.of(daemon.NoticeDropSurge)); got != 1 {
		t.Errorf("%d surge notices; want 1", got)
	}
	if bans := n.of(daemon.NoticeBan); len(bans) != 0 {
		t.Errorf("bans for dropped lines: %+v", bans)
	}
}
