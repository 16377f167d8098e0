package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

// runner follows one source: a file through a follower, syslog messages
// through a receiver, or the journal.
type runner struct {
	src    Source
	stream *parsers.Stream // file and journald sources
	calls  *callReader     // call logs (stream is nil)
	fol    *watchers.Follower
	rcv    *syslogReceiver // syslog sources
	jrn    *journal.Follower
	wire   *wireSensor // the wire sensor (wire.go)
	cancel context.CancelFunc
	done   chan struct{}
	err    atomic.Pointer[string]
}

// batch is the events of a run of lines, and the position after them:
// in a file, or in the journal (cursor, of the entries of journal).
type batch struct {
	source string
	from   *runner // the runner that read them: a batch of one stopped is dropped
	events []parsers.Event
	texts  []string // the line of each event (the evidence `why` shows)
	// forgeable marks the events read from syslog messages someone other
	// than their sender may have written: their logins are not learned
	// (learnFrom).
	forgeable []bool
	calls     []callItem // a call log's changes
	pos       watchers.Position
	cursor    string
	journal   string
	read      time.Time // when the lines were handed over (for ban latency)
}

// savedPosition is a source's position, with its path: a position is
// only resumed on the same path. A journald source's is a cursor, with
// the match it was read with (journal.Match.String), resumed only for the
// same match.
type savedPosition struct {
	Path     string            `json:"path"`
	Position watchers.Position `json:"position"`
	Journal  string            `json:"journal,omitempty"`
	Cursor   string            `json:"cursor,omitempty"`
}

// startSource starts following s, resuming from its saved position.
func (d *Daemon) startSource(s Source) {
	switch {
	case s.syslog():
		d.startSyslog(s)
		return
	case s.journald():
		d.startJournal(s)
		return
	}
	var stream *parsers.Stream
	var callr *callReader
	if IsCallParser(s.Parser) {
		callr = newCallReader(s, d.cfg.Fraud)
	} else {
		var err error
		stream, err = parsers.NewStreamFrom(s.Name, s.Parser, s.factory(), parsers.Options{Location: s.Location, Now: d.now}, d.now)
		if err != nil {
			d.log.Error().Err(err).Str(fieldSource, s.Name).Msg("source not started")
			return
		}
	}
	opts := watchers.Options{
		Start:  s.Start,
		Logger: d.log.With().Str(fieldSource, s.Name).Logger(),
	}
	if p, ok := d.positions[s.Name]; ok && p.Path == s.Path {
		pos := p.Position
		opts.Resume = &pos
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	r := &runner{src: s, stream: stream, calls: callr, fol: watchers.NewFollower(s.Path, opts), cancel: cancel, done: make(chan struct{})}
	d.runners[s.Name] = r
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		err := r.fol.Run(ctx, func(lines []watchers.Line) error { return d.emit(ctx, r, lines) })
		if err != nil && !errors.Is(err, context.Canceled) {
			msg := err.Error()
			r.err.Store(&msg)
			d.log.Error().Err(err).Str(fieldSource, s.Name).Str(fieldPath, s.Path).Msg("source stopped")
		}
	}()
}

// emit parses lines on the follower's goroutine and hands the events to
// the core.
func (d *Daemon) emit(ctx context.Context, r *runner, lines []watchers.Line) error {
	if len(lines) == 0 {
		return nil
	}
	var events []parsers.Event
	var texts []string
	var items []callItem
	if r.calls != nil {
		items = r.calls.read(lines)
	} else {
		var ev parsers.Event
		for _, l := range lines {
			if r.stream.Line(l.Text, l.Num, &ev) {
				events, texts = append(events, ev), append(texts, string(l.Text))
			}
		}
	}
	select {
	case d.batches <- batch{source: r.src.Name, from: r, events: events, texts: texts, calls: items, pos: lines[len(lines)-1].Pos, read: time.Now()}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopWait bounds how long the core goroutine waits for a source to stop.
// A follower stops at once when asked, unless a system call holds it (a
// file system that does not answer): the core must not hang with it.
const stopWait = time.Second

// stopSource stops following a source and waits for it, at most
// stopWait: one that does not stop by then is left behind, and the
// batches it may still send are dropped (handle), so that its
// replacement, reading on from the last position handled, counts no
// line twice.
func (d *Daemon) stopSource(name string) {
	r, ok := d.runners[name]
	if !ok {
		return
	}
	r.cancel()
	defer delete(d.runners, name)
	timeout := time.NewTimer(stopWait)
	defer timeout.Stop()
	// The follower may be blocked handing a batch to us: take them.
	for {
		select {
		case <-r.done:
			d.drain() // what it sent before it returned
			return
		case b := <-d.batches:
			d.handle(b)
		case <-timeout.C:
			d.log.Error().Str(fieldSource, name).Str(fieldPath, r.src.Path).Dur("waited", stopWait).
				Msg("source did not stop (a file system that does not answer?); left behind, its lines dropped")
			return
		}
	}
}

// stopSources stops every source, waiting for their goroutines at most
// stopWait beyond what stopSource waits.
func (d *Daemon) stopSources() {
	for name := range d.runners {
		d.stopSource(name)
	}
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
		d.log.Error().Msg("sources left behind still running at stop")
	}
}

// handle counts a batch's events in the engine and queues the bans they
// cause. Event times come from the log lines, so the engine's windows are
// exact even when lines are read late (after a restart); a line stamped
// more than a minute in the future is taken as now.
func (d *Daemon) handle(b batch) {
	if r := d.runners[b.source]; r == nil || r != b.from {
		return // from a runner stopped meanwhile (see stopSource)
	}
	now := d.now()
	for i := range b.events {
		ev := &b.events[i]
		if ev.Time.After(now.Add(time.Minute)) {
			d.warnSkew(b.source, ev.Time, now)
			ev.Time = now
		}
		if ev.Kind == parsers.AuthSucceeded {
			d.login(ev)
			if c, ok := d.eng.Success(ev); ok {
				d.compromised(c)
				if c.Ban != nil {
					d.decide(*c.Ban, ev, now, time.Time{}, c.Reason())
				}
			}
			d.learnFrom(ev, i < len(b.forgeable) && b.forgeable[i])
			continue
		}
		if i < len(b.texts) && ev.Kind.Failure() {
			d.evidence.seen(d.eng.Prefix(ev.Addr), ev, b.texts[i])
		}
		ban, ok := d.eng.Observe(ev)
		if !ok {
			continue
		}
		d.decide(ban, ev, now, b.read, "")
	}
	for _, it := range b.calls {
		d.called(b.source, it, now)
	}
	switch {
	case b.cursor != "":
		d.pendingPos[b.source] = savedPosition{Journal: b.journal, Cursor: b.cursor}
	case b.pos.Inode != 0 || b.pos.Offset != 0:
		d.pendingPos[b.source] = savedPosition{Path: d.sourcePath(b.source), Position: b.pos}
	}
}

// initialPositions saves where a follower started in a file, or in the
// journal, before any line came: otherwise a restart with start = "end"
// would skip the lines written while the daemon was down.
func (d *Daemon) initialPositions() {
	for name, r := range d.runners {
		if _, ok := d.pendingPos[name]; ok {
			continue
		}
		p, saved := d.positions[name]
		switch {
		case r.jrn != nil:
			// The origin precedes every entry handed over: saving it
			// late repeats entries at worst, never skips one. A cursor
			// saved for another match does not count.
			m := r.src.Journal.String()
			if c := r.jrn.Origin(); c != "" && (!saved || p.Journal != m) {
				d.positions[name] = savedPosition{Journal: m, Cursor: c}
				d.posDirty = true
			}
		case r.fol != nil && !saved:
			st := r.fol.Stats()
			if st.Lines == 0 && st.Pos.Inode != 0 {
				d.positions[name] = savedPosition{Path: r.src.Path, Position: st.Pos}
				d.posDirty = true
			}
		}
	}
}

func (d *Daemon) sourcePath(name string) string {
	if r, ok := d.runners[name]; ok {
		return r.src.Path
	}
	return ""
}

// warnSkew logs, at most hourly per source, that its lines are stamped in
// the future: usually a wrong [[source]] timezone.
func (d *Daemon) warnSkew(source string, t, now time.Time) {
	if last, ok := d.skewWarned[source]; ok && now.Sub(last) < time.Hour {
		return
	}
	d.skewWarned[source] = now
	d.log.Warn().Str(fieldSource, source).Time("line_time", t).
		Msg("log lines are stamped in the future; counting them as now (check the source's timezone)")
}

// lookTimeout bounds the wait for new followers' first look at their
// files (awaitSources).
const lookTimeout = 2 * time.Second

// awaitSources waits until every follower has looked at its file, at most
// lookTimeout: from then on status, and systemd's READY=1, tell whether
// each source is read. A follower closes Looked before it hands out a
// line, so it never waits for the core goroutine that waits here.
func (d *Daemon) awaitSources(ctx context.Context) {
	timeout := time.NewTimer(lookTimeout)
	defer timeout.Stop()
	for _, r := range d.runners {
		if r.fol == nil {
			continue
		}
		select {
		case <-r.fol.Looked():
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// state says whether the source is read, and if it fails, why: the error
// that stopped it, the follower's state, or whether the syslog receiver
// listens.
func (r *runner) state(st watchers.Stats) (watchers.State, string) {
	if p := r.err.Load(); p != nil {
		return watchers.Failing, *p
	}
	switch {
	case r.rcv != nil:
		if len(r.rcv.rcv.Stats().Listening) > 0 {
			return watchers.Reading, ""
		}
		return watchers.Starting, ""
	case r.jrn != nil, r.wire != nil:
		// journalctl runs and follows unless it reported a problem (kept
		// in err until it has run cleanly again); the wire sensor reads
		// until its capture fails.
		return watchers.Reading, ""
	}
	return st.State, st.Err
}

// sourceStatus reports a runner for `status`.
func (r *runner) status() sourceStatusParts {
	switch {
	case r.rcv != nil:
		return r.rcv.status(r)
	case r.jrn != nil:
		return r.journalStatus()
	case r.wire != nil:
		return r.wire.status(r)
	}
	st := r.fol.Stats()
	var c parsers.Counts
	if r.calls != nil {
		c = r.calls.counts()
	} else {
		c = r.stream.Counts()
	}
	if st.Long > 0 {
		c.DropBy["too_long"] += st.Long
		c.Dropped += st.Long
		c.Lines += st.Long
	}
	var e string
	if p := r.err.Load(); p != nil {
		e = *p
	}
	state, why := r.state(st)
	return sourceStatusParts{stats: st, counts: c, err: e, state: state, why: why}
}

type sourceStatusParts struct {
	stats  watchers.Stats
	counts parsers.Counts
	err    string
	state  watchers.State
	why    string // when state is Failing
	lf     int64  // syslog: TCP messages framed by a newline
}
