package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
	"github.com/sipguard/sipguard/wirecap"
)

// The wire sensor's name as a source (status, metrics, events) and the
// name of its reader as a parser.
const (
	WireSource = "wire"
	wireParser = "sipwire"
)

// ResponseReader turns the PBX's captured SIP responses into events:
// package sipwire's Sensor. Handle and Expire are never called at once.
type ResponseReader interface {
	// Handle reads one captured packet; it does not keep its payload.
	Handle(wirecap.Packet) []parsers.Event
	// Expire ends the dialogs that timed out by now (called every second).
	Expire(now time.Time) []parsers.Event
}

// Wire is the wire sensor: the capture of the PBX's SIP responses that
// the firewall's rules copy to an NFLOG group, and the reader that turns
// them into events (source "wire", service sip).
type Wire struct {
	// Capture says which NFLOG group to read (and in which namespace).
	Capture wirecap.Options
	// Hooks are the firewall hooks the responses are copied on (status).
	Hooks  []string
	Reader ResponseReader
	// Drops returns the reader's own drops by reason (truncated,
	// not_sip, diverted, ...), shown with the capture's; nil: none.
	Drops func() map[string]int64
}

// wireSensor runs a Wire: the capture hands packets to the reader on its
// goroutine, a ticker calls Expire; the events go to the core in batches.
type wireSensor struct {
	cfg *Wire
	cap *wirecap.Capture

	mu sync.Mutex // serialises the reader, guards the counts
	// The events sent to the core: by kind, failures, auth_succeeded.
	kinds               map[string]int64
	failures, successes int64
}

// startWire starts reading the wire sensor's NFLOG group. A group another
// program holds (ulogd2) fails the start, naming the group: [wire] is on,
// so the operator counts on it.
func (d *Daemon) startWire(ctx context.Context) error {
	w := d.cfg.Wire
	if w == nil {
		return nil
	}
	if w.Reader == nil {
		return errors.New("wire sensor: no response reader")
	}
	ctx, cancel := context.WithCancel(ctx)
	ws := &wireSensor{cfg: w, kinds: map[string]int64{}}
	r := &runner{src: Source{Name: WireSource, Parser: wireParser, Path: ws.path()}, wire: ws, cancel: cancel, done: make(chan struct{})}
	opts := w.Capture
	opts.Logger = d.log.With().Str(fieldSource, WireSource).Logger()
	var err error
	ws.cap, err = wirecap.Start(ctx, opts, func(p wirecap.Packet) {
		ws.mu.Lock()
		evs := w.Reader.Handle(p)
		ws.mu.Unlock()
		if len(evs) > 0 {
			d.emitWire(ctx, r, evs, packetText(p))
		}
	})
	if err != nil {
		cancel()
		return fmt.Errorf("wire sensor: %w", err)
	}
	d.runners[WireSource] = r
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		defer ws.cap.Close()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ws.cap.Done():
				if err := ws.cap.Err(); err != nil {
					msg := err.Error()
					r.err.Store(&msg)
				}
				return
			case <-tick.C:
				ws.mu.Lock()
				evs := w.Reader.Expire(d.now())
				ws.mu.Unlock()
				if len(evs) > 0 {
					d.emitWire(ctx, r, evs, "no answer to the challenge")
				}
			}
		}
	}()
	d.log.Info().Uint16("group", opts.Group).Strs("hooks", w.Hooks).Msg("wire sensor reading the PBX's SIP responses")
	return nil
}

// emitWire hands the reader's events to the core, as source "wire".
func (d *Daemon) emitWire(ctx context.Context, r *runner, evs []parsers.Event, text string) {
	ws := r.wire
	texts := make([]string, len(evs))
	ws.mu.Lock()
	for i := range evs {
		ev := &evs[i]
		ev.Source, ev.Parser = WireSource, wireParser
		if ev.Service == 0 {
			ev.Service = parsers.SIP
		}
		if ev.Time.IsZero() {
			ev.Time = d.now()
		}
		ws.kinds[ev.Kind.String()]++
		if ev.Kind == parsers.AuthSucceeded {
			ws.successes++
		} else {
			ws.failures++
		}
		texts[i] = text
	}
	ws.mu.Unlock()
	select {
	case d.batches <- batch{source: WireSource, from: r, events: evs, texts: texts, read: time.Now()}:
	case <-ctx.Done():
	}
}

// packetText is the evidence `why` shows for a response's events: its
// status line and where it went (the status line is the PBX's, escaped
// all the same).
func packetText(p wirecap.Packet) string {
	line, _, _ := bytes.Cut(p.Payload, []byte("\r\n"))
	if len(line) > 80 {
		line = line[:80]
	}
	proto := "udp"
	if p.TCP {
		proto = "tcp"
	}
	return fmt.Sprintf("%q %s -> %s", line, proto, netip.AddrPortFrom(p.Dst, p.DstPort))
}

// wireKey tells whether two Wires read the same group the same way.
func wireKey(w *Wire) string {
	if w == nil {
		return ""
	}
	return fmt.Sprint(w.Capture.Group, w.Capture.NetNS, w.Capture.Snaplen, w.Hooks)
}

func (ws *wireSensor) path() string {
	return fmt.Sprintf("nflog group %d (%s)", ws.cfg.Capture.Group, strings.Join(ws.cfg.Hooks, ","))
}

// status is the sensor as a source in status: packets as lines, the
// events by kind, the capture's and the reader's drops by reason.
func (ws *wireSensor) status(r *runner) sourceStatusParts {
	cs := ws.cap.Stats()
	c := parsers.Counts{Lines: int64(cs.Packets), DropBy: map[string]int64{}}
	ws.mu.Lock()
	c.ByKind, c.Events, c.Successes = maps.Clone(ws.kinds), ws.failures, ws.successes
	ws.mu.Unlock()
	for reason, n := range cs.Dropped {
		c.DropBy[reason] = int64(n)
	}
	// Copies the kernel dropped (the socket's buffer was full): lost
	// packets by sequence gaps, and the failed reads that reported them.
	c.DropBy["nflog_lost"] = int64(cs.Lost)
	c.DropBy["nflog_overruns"] = int64(cs.Overruns)
	if ws.cfg.Drops != nil {
		for reason, n := range ws.cfg.Drops() {
			c.DropBy[reason] += n
		}
	}
	for reason, n := range c.DropBy {
		if reason != "nflog_overruns" {
			c.Dropped += n // packets not read (overruns are failed reads)
		}
	}
	var e string
	if p := r.err.Load(); p != nil {
		e = *p
	}
	state, why := r.state(watchers.Stats{})
	return sourceStatusParts{counts: c, err: e, state: state, why: why}
}
