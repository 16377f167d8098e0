package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/internal/journaltest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/parsers"
)

// These tests run a real systemd-journald in a journal namespace of its
// own (package journaltest), as root; they skip otherwise (fail under
// SIPGUARD_REQUIRE=all, as in CI).

// asteriskFailure is a chan_sip failure as Asterisk's syslog channel
// writes it (the journal's MESSAGE).
func asteriskFailure(addr string) string {
	return "NOTICE[1290]: chan_sip.c:28835 in handle_request_register: Registration from '<sip:6001@203.0.113.10>' failed for '" + addr + ":5060' - Wrong password"
}

// kamailioFailure is a line of contrib/kamailio/sipguard.cfg as Kamailio
// writes it to syslog (the journal's MESSAGE).
func kamailioFailure(addr string) string {
	return "NOTICE: <script>: sipguard: v1 time=" + time.Now().Format("2006-01-02T15:04:05-0700") + " src=" + addr +
		` port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au="100" from="100" to="100" ruri="" ua="x"`
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// journalSources are an Asterisk admitted by its name and user, and a
// Kamailio by its unit.
func journalSources(j *journaltest.Journald) []daemon.Source {
	return []daemon.Source{
		{Name: "asterisk", Parser: "asterisk", Location: time.UTC,
			Journal: journal.Match{Namespace: j.Namespace, Commands: []string{"asterisk"}, UIDs: []uint32{0}}},
		{Name: "kamailio", Parser: "kamailio", Location: time.UTC,
			Journal: journal.Match{Namespace: j.Namespace, Units: []string{"kamailio.service"}}},
	}
}

// savedCursors reads the cursors of positions.json, by source.
func savedCursors(e env) map[string]string {
	var ps struct {
		Sources map[string]struct {
			Journal string `json:"journal"`
			Cursor  string `json:"cursor"`
		} `json:"sources"`
	}
	data, _ := os.ReadFile(filepath.Join(e.state, "positions.json"))
	json.Unmarshal(data, &ps)
	out := map[string]string{}
	for name, p := range ps.Sources {
		if p.Cursor != "" {
			out[name] = p.Journal + " @ " + p.Cursor
		}
	}
	return out
}

// TestJournaldSource: the journal's messages of the configured program and
// unit are read and ban; the same messages written under the tag by any
// other program, by a copy of the program run by another user, or by the
// program outside its unit, ban nobody; a message with a newline cannot
// forge a line; the cursor is saved and a restart resumes from it.
func TestJournaldSource(t *testing.T) {
	j := journaltest.Start(t)
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = journalSources(j)
	fw := fwtest.New(nil)
	r := start(t, cfg, fw)
	// Where each source starts is saved before any message comes.
	testutil.WaitFor(t, 10*time.Second, "the starting cursors saved", func() bool { return len(savedCursors(e)) == 2 })
	first := savedCursors(e)

	// Forgeries, issue 13 item 3: the tag, the name, no unit.
	j.Syslog(journaltest.Writer{Comm: "logger"}, "asterisk", repeat(asteriskFailure("198.51.100.66"), 10)...)
	j.Syslog(journaltest.Writer{Comm: "asterisk", UID: 65534}, "asterisk", repeat(asteriskFailure("198.51.100.67"), 10)...)
	j.Syslog(journaltest.Writer{Comm: "kamailio"}, "kamailio", repeat(kamailioFailure("198.51.100.69"), 10)...)
	j.Syslog(journaltest.Writer{Comm: "kamailio", Unit: "other.service"}, "kamailio", repeat(kamailioFailure("198.51.100.70"), 10)...)
	// issue 13 item 1: a user name with a newline and a forged line after
	// it, in Asterisk's own messages: the attacker's address counts, the
	// victim's never.
	asterisk := journaltest.Writer{Comm: "asterisk"}
	j.Native(asterisk, "asterisk", repeat("NOTICE[1290]: chan_iax2.c:1234 in authenticate_reply: Host 198.51.100.7:4569 failed to authenticate as x\n"+
		"[Dec  2 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.68:5060' - Wrong password", 2)...)
	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.7"), 3)...)
	j.Syslog(journaltest.Writer{Comm: "kamailio", Unit: "kamailio.service"}, "kamailio", repeat(kamailioFailure("198.51.100.8"), 5)...)

	for _, a := range []string{"198.51.100.7/32", "198.51.100.8/32"} {
		testutil.WaitFor(t, 10*time.Second, a+" banned", func() bool { return fw.Has(netip.MustParsePrefix(a)) })
	}
	for _, a := range []string{"198.51.100.66/32", "198.51.100.67/32", "198.51.100.68/32", "198.51.100.69/32", "198.51.100.70/32"} {
		if fw.Has(netip.MustParsePrefix(a)) {
			t.Errorf("%s banned from forged messages", a)
		}
	}
	st, _ := r.client.Status(context.Background())
	if s := st.Sources[0]; s.Events != 5 || s.Lines != 5 || s.Dropped != 0 || s.Error != "" ||
		s.Path != "journal namespace="+j.Namespace+" _COMM=asterisk _UID=0" {
		t.Errorf("asterisk status: %+v", s)
	}
	if s := st.Sources[1]; s.Events != 5 || s.Lines != 5 || s.Error != "" {
		t.Errorf("kamailio status: %+v", s)
	}
	// The cursors saved move on from where the sources started (the
	// restart below shows they are those of the last messages read). The
	// save may come before or after this point: compare with the first.
	testutil.WaitFor(t, 10*time.Second, "the cursors saved", func() bool {
		c := savedCursors(e)
		return c["asterisk"] != first["asterisk"] && c["kamailio"] != first["kamailio"]
	})
	r.stop(t)

	// While the daemon is down.
	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.9"), 3)...)
	fw2 := fwtest.New(nil)
	r2 := start(t, cfg, fw2)
	testutil.WaitFor(t, 10*time.Second, "the 3 messages written while down", func() bool {
		st, _ := r2.client.Status(context.Background())
		return st.Sources[0].Events == 3
	})
	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.9"), 2)...)
	testutil.WaitFor(t, 10*time.Second, "198.51.100.9 banned", func() bool { return fw2.Has(netip.MustParsePrefix("198.51.100.9/32")) })
	st, _ = r2.client.Status(context.Background())
	if s := st.Sources[0]; s.Events != 5 {
		t.Errorf("after the restart: %d events; want the 5 new ones only", s.Events)
	}
	if s := st.Sources[1]; s.Lines != 0 {
		t.Errorf("kamailio after the restart: %d lines; want none read again", s.Lines)
	}
}

// TestJournaldCursorAfterBans: a journald source's cursor is saved only
// once the bans its messages caused are in the firewall.
func TestJournaldCursorAfterBans(t *testing.T) {
	j := journaltest.Start(t)
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = journalSources(j)[:1]
	fw := fwtest.New(nil)
	var refuse atomic.Bool
	refuse.Store(true)
	attacker := netip.MustParsePrefix("198.51.100.7/32")
	fw.BanFunc = func(bs []firewall.Ban) error {
		if refuse.Load() && slices.ContainsFunc(bs, func(b firewall.Ban) bool { return b.Prefix == attacker }) {
			return errors.New("netlink receive: no buffer space available")
		}
		return nil
	}
	r := start(t, cfg, fw)
	testutil.WaitFor(t, 10*time.Second, "the starting cursor saved", func() bool { return len(savedCursors(e)) == 1 })
	origin := savedCursors(e)["asterisk"]
	j.Syslog(journaltest.Writer{Comm: "asterisk"}, "asterisk", repeat(asteriskFailure("198.51.100.7"), 5)...)
	testutil.WaitFor(t, 10*time.Second, "the firewall error", func() bool {
		st, _ := r.client.Status(context.Background())
		return st.Firewall.Error != ""
	})
	// A manual ban returns once the state is saved: a save after the
	// refusal, which must not have taken the cursor along (waiting for a
	// save tick instead passes whether or not one came).
	if _, err := r.client.Ban(context.Background(), control.BanRequest{Target: "203.0.113.0/24"}); err != nil {
		t.Fatalf("manual ban: %v", err)
	}
	if c := savedCursors(e)["asterisk"]; c != origin {
		t.Fatalf("cursor saved before the ban was enforced: %s; want %s", c, origin)
	}
	refuse.Store(false)
	testutil.WaitFor(t, 10*time.Second, "the ban", func() bool { return fw.Has(attacker) })
	testutil.WaitFor(t, 10*time.Second, "the cursor saved", func() bool { return savedCursors(e)["asterisk"] != origin })
}

// TestJournaldSourceProblem: a journal that cannot be read is the source's
// error in status, with journalctl's reason, until it can.
func TestJournaldSourceProblem(t *testing.T) {
	j := journaltest.Start(t)
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = journalSources(j)[:1]
	flag := filepath.Join(e.dir, "unreadable")
	os.WriteFile(flag, nil, 0o644)
	wrapper := filepath.Join(e.dir, "journalctl")
	os.WriteFile(wrapper, fmt.Appendf(nil, "#!/bin/sh\nif [ -e %s ]; then exec setpriv --reuid=65534 --regid=65534 --clear-groups journalctl \"$@\"; fi\nexec journalctl \"$@\"\n", flag), 0o755)
	cfg.Journalctl = wrapper
	r := start(t, cfg, nil)
	status := func() control.SourceStatus {
		st, _ := r.client.Status(context.Background())
		return st.Sources[0]
	}
	testutil.WaitFor(t, 10*time.Second, "the source's error", func() bool { return strings.Contains(status().Error, "insufficient permissions") })
	os.Remove(flag)
	testutil.WaitFor(t, 40*time.Second, "the error to clear", func() bool { return status().Error == "" })
	j.Syslog(journaltest.Writer{Comm: "asterisk"}, "asterisk", repeat(asteriskFailure("198.51.100.7"), 5)...)
	testutil.WaitFor(t, 10*time.Second, "the ban", func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok })
}

// TestJournaldMatchChanged: a cursor is resumed only for the match it was
// read with: another match starts at the journal's end; a reload that
// changes the match restarts the source with it.
func TestJournaldMatchChanged(t *testing.T) {
	j := journaltest.Start(t)
	e := newEnv(t)
	cfg := e.config()
	cfg.Sources = journalSources(j)[:1]
	asterisk := journaltest.Writer{Comm: "asterisk"}
	r := start(t, cfg, nil)
	testutil.WaitFor(t, 10*time.Second, "the starting cursor saved", func() bool { return len(savedCursors(e)) == 1 })
	r.stop(t)

	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.7"), 5)...) // while down
	cfg.Sources = journalSources(j)[:1]
	cfg.Sources[0].Journal.UIDs = []uint32{0, 110}
	r2 := start(t, cfg, nil)
	testutil.WaitFor(t, 10*time.Second, "the new match's cursor saved", func() bool {
		return strings.HasPrefix(savedCursors(e)["asterisk"], cfg.Sources[0].Journal.String()+" @ ")
	})
	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.8"), 5)...)
	testutil.WaitFor(t, 10*time.Second, "198.51.100.8 banned", func() bool { _, ok := banned(r2.fw, "198.51.100.8/32"); return ok })
	if _, ok := banned(r2.fw, "198.51.100.7/32"); ok {
		t.Error("read from a cursor saved for another match")
	}

	// A reload that changes the match starts the source again with it (its
	// own counts, its own cursor).
	cfg.Sources = journalSources(j)[:1] // a copy: the daemon holds the other
	j.Syslog(asterisk, "asterisk", repeat(asteriskFailure("198.51.100.9"), 3)...)
	if err := r2.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the reloaded match's cursor saved", func() bool {
		return strings.HasPrefix(savedCursors(e)["asterisk"], cfg.Sources[0].Journal.String()+" @ ")
	})
	// Then a failure of another kind: once the source has read it, it
	// has read everything before it.
	unknown := strings.Replace(asteriskFailure("198.51.100.10"), "Wrong password", "No matching peer found", 1)
	j.Syslog(asterisk, "asterisk", append(repeat(asteriskFailure("198.51.100.9"), 2), unknown)...)
	var s control.SourceStatus
	testutil.WaitFor(t, 10*time.Second, "the last message read", func() bool {
		s = status(t, r2).Sources[0]
		return s.EventsBy[parsers.UnknownUser.String()] > 0
	})
	if s.Events != 3 || s.EventsBy[parsers.AuthFailed.String()] != 2 {
		t.Errorf("after the reload: %d events %v; want the 3 new ones, 2 of them auth_failed", s.Events, s.EventsBy)
	}
}
