package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/notify"
)

type eventRecorder struct {
	mu     sync.Mutex
	events []notify.Event
}

func (r *eventRecorder) Notify(ev notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *eventRecorder) take() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// TestScheduledAudit: the daemon's audit reports each finding at or above
// min_severity once: the first run all of them, a run with nothing new
// none, a new weak password that one alone, and a restart (the findings
// reported kept in the state directory) none again.
func TestScheduledAudit(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	pjsip := filepath.Join(dir, "pjsip.conf")
	write := func(extra string) {
		conf := "[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1\n\n[1001]\ntype = auth\nauth_type = userpass\nusername = 1001\npassword = 1001\n" + extra
		if err := os.WriteFile(pjsip, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	rec := &eventRecorder{}
	newAuditor := func() *auditor {
		return &auditor{cfg: config.AuditConfig{Interval: config.Duration(time.Hour), AsteriskDir: dir, MinSeverity: "high"},
			min: audit.High, stateDir: state, notify: rec, log: zerolog.Nop(), now: time.Now}
	}
	a := newAuditor()
	if err := a.once(); err != nil {
		t.Fatal(err)
	}
	first := rec.take()
	weak := 0
	for _, ev := range first {
		if ev.Type != notify.TypeAudit || ev.Target != "" {
			t.Errorf("event %+v", ev)
		}
		if ev.Rule == "PJSIP-WEAK-PASSWORD" {
			weak++
		}
	}
	if weak != 1 {
		t.Fatalf("first run: %d weak-password events of %+v", weak, first)
	}
	if err := a.once(); err != nil {
		t.Fatal(err)
	}
	if again := rec.take(); len(again) != 0 {
		t.Errorf("a run with nothing new reported %+v", again)
	}
	write("\n[1002]\ntype = auth\nauth_type = userpass\nusername = 1002\npassword = 123456\n")
	if err := a.once(); err != nil {
		t.Fatal(err)
	}
	if added := rec.take(); len(added) != 1 || added[0].Rule != "PJSIP-WEAK-PASSWORD" || !strings.Contains(added[0].Reason, "[1002]") {
		t.Errorf("after a new weak password: %+v", added)
	}
	if err := newAuditor().once(); err != nil {
		t.Fatal(err)
	}
	if restarted := rec.take(); len(restarted) != 0 {
		t.Errorf("after a restart: %+v", restarted)
	}
	for _, ev := range first {
		if strings.Contains(ev.Reason, "password 1001") {
			t.Errorf("a password in an event: %q", ev.Reason)
		}
	}
}
