package daemon

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/syslogd"
	"github.com/sipguard/sipguard/watchers"
)

// maxSenderStreams bounds the parser streams of one syslog source: one per
// sender address, since parsers keep state between the lines of a stream.
const maxSenderStreams = 1024

// syslogReceiver is a syslog source: a receiver, and a parser stream for
// each sender it hears from.
type syslogReceiver struct {
	rcv *syslogd.Receiver

	mu      sync.Mutex
	streams map[netip.Addr]*parsers.Stream
	num     atomic.Int64 // messages, for event line numbers
	tooMany atomic.Int64 // messages from senders beyond maxSenderStreams
}

// startSyslog starts receiving syslog messages for s.
func (d *Daemon) startSyslog(s Source) {
	log := d.log.With().Str(fieldSource, s.Name).Logger()
	rcv, err := syslogd.New(syslogd.Options{Listen: s.Listen, Senders: s.Senders, Logger: log, Now: d.now})
	if err != nil {
		d.log.Error().Err(err).Str(fieldSource, s.Name).Msg("source not started")
		return
	}
	sr := &syslogReceiver{rcv: rcv, streams: map[netip.Addr]*parsers.Stream{}}
	ctx, cancel := context.WithCancel(d.runCtx)
	r := &runner{src: s, rcv: sr, cancel: cancel, done: make(chan struct{})}
	d.runners[s.Name] = r
	// Listening now, status tells at once whether the source is read.
	if err := rcv.Listen(ctx); err != nil {
		msg := err.Error()
		r.err.Store(&msg)
		close(r.done)
		d.log.Error().Err(err).Str(fieldSource, s.Name).Strs("listen", s.Listen).Msg("source not started")
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		err := rcv.Run(ctx, func(msgs []syslogd.Message) error { return d.emitSyslog(ctx, r, msgs) })
		if err != nil && !errors.Is(err, context.Canceled) {
			msg := err.Error()
			r.err.Store(&msg)
			d.log.Error().Err(err).Str(fieldSource, s.Name).Strs("listen", s.Listen).Msg("source stopped")
		}
	}()
}

// stream returns the parser stream of a sender, making it on first use.
func (sr *syslogReceiver) stream(d *Daemon, src Source, sender netip.Addr) *parsers.Stream {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if st, ok := sr.streams[sender]; ok {
		return st
	}
	if len(sr.streams) >= maxSenderStreams {
		return nil
	}
	st, err := parsers.NewStreamFrom(src.Name, src.Parser, src.factory(), parsers.Options{Location: src.Location, Now: d.now}, d.now)
	if err != nil {
		return nil
	}
	sr.streams[sender] = st
	return st
}

// emitSyslog parses messages on the receiver's goroutine and hands the
// events to the core. Syslog sources have no position to save.
func (d *Daemon) emitSyslog(ctx context.Context, r *runner, msgs []syslogd.Message) error {
	var events []parsers.Event
	var texts []string
	var forgeable []bool
	var ev parsers.Event
	for _, m := range msgs {
		st := r.rcv.stream(d, r.src, m.Sender.Addr())
		if st == nil {
			r.rcv.tooMany.Add(1)
			continue
		}
		if st.Line(m.Line, r.rcv.num.Add(1), &ev) {
			events, texts, forgeable = append(events, ev), append(texts, string(m.Line)), append(forgeable, m.Forgeable)
		}
	}
	if len(events) == 0 {
		return nil
	}
	select {
	case d.batches <- batch{source: r.src.Name, from: r, events: events, texts: texts, forgeable: forgeable, read: time.Now()}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// status sums the source's streams and adds the receiver's own drops.
func (sr *syslogReceiver) status(r *runner) sourceStatusParts {
	var c parsers.Counts
	sr.mu.Lock()
	for _, st := range sr.streams {
		c.Add(st.Counts())
	}
	sr.mu.Unlock()
	if c.DropBy == nil {
		c.DropBy, c.ByKind = map[string]int64{}, map[string]int64{}
	}
	rs := sr.rcv.Stats()
	for reason, n := range map[string]int64{
		"unlisted_sender": rs.DroppedUnlisted, "oversize": rs.DroppedOversize,
		"not_syslog": rs.DroppedMalformed, "overflow": rs.DroppedOverflow, "too_many_senders": sr.tooMany.Load(),
	} {
		c.DropBy[reason] = n
		c.Dropped += n
	}
	var e string
	if p := r.err.Load(); p != nil {
		e = *p
	}
	state, why := r.state(watchers.Stats{})
	return sourceStatusParts{stats: watchers.Stats{Path: ""}, counts: c, err: e, state: state, why: why, lf: rs.FramedLF}
}
