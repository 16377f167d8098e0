package daemon

import (
	"time"

	"github.com/sipguard/sipguard/watchers"
)

// sourceWarnEvery is how often a source that is still not read is logged
// again: a warning at start alone scrolls away while nothing is banned.
const sourceWarnEvery = 5 * time.Minute

// sourceHealth is what watchSources last saw of a source.
type sourceHealth struct {
	state  watchers.State
	why    string
	since  time.Time // not read since
	warned time.Time
}

// watchSources logs each source that is not read (missing, unreadable, a
// syslog listener that failed): a warning when it stops being read, again
// every sourceWarnEvery or when the reason changes while it lasts, and an
// info line when it is read again. It runs on the core goroutine's tick.
func (d *Daemon) watchSources() {
	now := d.now()
	for name, r := range d.runners {
		var st watchers.Stats
		if r.fol != nil {
			st = r.fol.Stats()
		}
		state, why := r.state(st)
		h, seen := d.health[name]
		wasRead := seen && h.state == watchers.Reading
		switch {
		case state == watchers.Reading:
			if seen && !wasRead {
				d.log.Info().Str(fieldSource, name).Str(fieldPath, r.src.Path).
					Dur("after", now.Sub(h.since)).Msg("source read again")
			}
		case !seen || wasRead:
			h.since, h.warned = now, now
			d.warnSource(r, state, why, 0)
		case state != h.state || why != h.why || now.Sub(h.warned) >= sourceWarnEvery:
			h.warned = now
			d.warnSource(r, state, why, now.Sub(h.since))
		}
		h.state, h.why = state, why
		d.health[name] = h
	}
	for name := range d.health {
		if _, ok := d.runners[name]; !ok {
			delete(d.health, name)
		}
	}
}

// warnSource logs that a source is not read, for how long (0: from now).
func (d *Daemon) warnSource(r *runner, state watchers.State, why string, since time.Duration) {
	ev := d.log.Warn().Str(fieldSource, r.src.Name).Str(fieldState, state.String())
	if why != "" {
		ev = ev.Str(fieldReason, why)
	}
	if r.src.syslog() {
		ev = ev.Strs("listen", r.src.Listen)
	} else {
		ev = ev.Str(fieldPath, r.src.Path)
	}
	if since > 0 {
		ev = ev.Dur("for", since)
	}
	ev.Msg("source not read: nothing in it is banned until it is")
}
