package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

// startJournal starts following the journal's messages for s, resuming
// after its saved cursor when it was saved for the same match.
func (d *Daemon) startJournal(s Source) {
	// The journal gives each message as one line, newlines escaped.
	stream, err := parsers.NewStreamFrom(s.Name, s.Parser, s.factory(), parsers.Options{Location: s.Location, Now: d.now, Whole: true}, d.now)
	if err != nil {
		d.log.Error().Err(err).Str(fieldSource, s.Name).Msg("source not started")
		return
	}
	log := d.log.With().Str(fieldSource, s.Name).Str("journal", s.Journal.String()).Logger()
	ctx, cancel := context.WithCancel(d.runCtx)
	r := &runner{src: s, stream: stream, cancel: cancel, done: make(chan struct{})}
	opts := journal.Options{
		Match: s.Journal, FromStart: s.Start == watchers.StartBeginning, Journalctl: d.cfg.Journalctl, Logger: log,
		// The problem is the source's error in status while it lasts.
		OnProblem: func(err error) {
			if err == nil {
				r.err.Store(nil)
				return
			}
			msg := err.Error()
			r.err.Store(&msg)
		},
	}
	if p, ok := d.positions[s.Name]; ok && p.Cursor != "" && p.Journal == s.Journal.String() {
		opts.Cursor = p.Cursor
	}
	r.jrn = journal.NewFollower(opts)
	d.runners[s.Name] = r
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		var line []byte
		var num int64
		err := r.jrn.Run(ctx, func(b journal.Batch) error {
			var events []parsers.Event
			var texts []string
			var ev parsers.Event
			for i := range b.Entries {
				e := &b.Entries[i]
				line = e.AppendLine(line[:0])
				num++
				if r.stream.Line(line, num, &ev) {
					// The journal's clock, not text in the message.
					ev.Time = e.Time
					events, texts = append(events, ev), append(texts, string(line))
				}
			}
			select {
			case d.batches <- batch{source: s.Name, from: r, events: events, texts: texts, cursor: b.Cursor, journal: s.Journal.String(), read: time.Now()}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			msg := err.Error()
			r.err.Store(&msg)
			d.log.Error().Err(err).Str(fieldSource, s.Name).Msg("source stopped")
		}
	}()
}

// journalStatus is status for a journald source: its stream's counts,
// with the entries the follower dropped.
func (r *runner) journalStatus() sourceStatusParts {
	c := r.stream.Counts()
	st := r.jrn.Stats()
	for reason, n := range map[string]int64{"too_long": st.TooLong, "not_admitted": st.Refused, "not_journal": st.Malformed} {
		c.DropBy[reason] += n
		c.Dropped += n
		c.Lines += n
	}
	var e string
	if p := r.err.Load(); p != nil {
		e = *p
	}
	state, why := r.state(watchers.Stats{})
	return sourceStatusParts{counts: c, err: e, state: state, why: why}
}
