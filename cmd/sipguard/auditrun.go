package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/store"
)

// auditSeenFile keeps, in the state directory, the findings the scheduled
// audit has reported, so that a restart reports only new ones.
const auditSeenFile = "audit.json"

// auditSeen is auditSeenFile's content.
type auditSeen struct {
	Version  int       `json:"version"`
	Saved    time.Time `json:"saved"`
	Findings []string  `json:"findings"` // findingKey of each finding reported and still there
}

// notifier takes the events of new findings: a notify.Dispatcher.
type notifier interface{ Notify(notify.Event) }

// auditor runs `sipguard audit` for the daemon ([audit]).
type auditor struct {
	cfg      config.AuditConfig
	min      audit.Severity
	stateDir string
	self     *audit.Self
	notify   notifier // nil: log only
	log      zerolog.Logger
	now      func() time.Time
}

// run audits at once, then every interval, until ctx ends.
func (a *auditor) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.Interval))
	defer t.Stop()
	for {
		if err := a.once(); err != nil {
			a.log.Error().Err(err).Msg("audit not run")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once audits, reports the findings at or above the minimum severity that
// were not reported before, and remembers the ones still there.
func (a *auditor) once() error {
	h := audit.Host{FS: os.DirFS("/"), Dir: a.cfg.AsteriskDir, Now: a.now(), Self: a.self}
	h.Version, h.VersionFrom = asteriskVersion()
	if h.Version == "" {
		h.Version, h.VersionFrom = audit.LogVersion(h.FS, audit.AsteriskLogs)
	}
	r, err := audit.Run(h)
	if err != nil {
		return err
	}
	r = audit.CleanReport(r)
	path := filepath.Join(a.stateDir, auditSeenFile)
	var seen auditSeen
	if _, err := store.Load(path, &seen); err != nil {
		a.log.Warn().Err(err).Msg("findings reported before unreadable: reporting every finding again")
	}
	var now []string
	added := 0
	for _, f := range r.Findings {
		if f.Severity < a.min {
			continue
		}
		k := findingKey(f)
		now = append(now, k)
		if slices.Contains(seen.Findings, k) {
			continue
		}
		added++
		a.log.Warn().Str("check", f.ID).Str("severity", f.Severity.String()).Str("where", f.Where()).Str("detail", f.Detail).
			Msg("audit: " + f.Title)
		if a.notify != nil {
			a.notify.Notify(notify.Event{Type: notify.TypeAudit, Rule: f.ID, Time: a.now(),
				Reason: fmt.Sprintf("%s %s: %s (%s)", f.Severity, f.Title, f.Detail, f.Where())})
		}
	}
	a.log.Info().Int("findings", len(now)).Int("new", added).Str("min_severity", a.min.String()).Msg("audit run")
	return store.Save(path, auditSeen{Version: 1, Saved: a.now(), Findings: now})
}

// findingKey names a finding across runs: its check, place and detail
// (secrets in the detail are masked).
func findingKey(f audit.Finding) string {
	return f.ID + "|" + f.Where() + "|" + f.Detail
}
