package daemon

import (
	"net/netip"
	"slices"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// Evidence is a log line that counted toward a ban: what `sipguard why`
// shows. Text is attacker-influenced: display it quoted.
type Evidence struct {
	Source string
	Line   int64
	Time   time.Time
	Text   string
}

// Bounds of what is kept: the last evidenceLines failure lines of each of
// the evidenceAddrs addresses seen last, and the lines of the
// evidenceBans bans made last. A flood of addresses evicts the oldest;
// evidence is a help for people, never needed to ban.
const (
	evidenceLines = 5
	evidenceAddrs = 4096
	evidenceBans  = 1000
	evidenceText  = 512 // bytes of a line kept
)

// evidence keeps recent failure lines by the prefix the engine counts
// them under, and the lines that led to each ban. Owned by the core
// goroutine.
type evidence struct {
	recent   map[netip.Prefix][]Evidence
	order    []netip.Prefix // recent's keys, oldest first (may hold keys already gone)
	bans     map[netip.Prefix][]Evidence
	banOrder []netip.Prefix // bans' keys, oldest first
}

func newEvidence() *evidence {
	return &evidence{recent: map[netip.Prefix][]Evidence{}, bans: map[netip.Prefix][]Evidence{}}
}

// seen keeps a failure line of p.
func (e *evidence) seen(p netip.Prefix, ev *parsers.Event, text string) {
	if len(text) > evidenceText {
		text = text[:evidenceText]
	}
	lines, ok := e.recent[p]
	if !ok {
		e.order = append(e.order, p)
		for len(e.recent) >= evidenceAddrs && len(e.order) > 0 {
			delete(e.recent, e.order[0])
			e.order = e.order[1:]
		}
		if len(e.order) > 2*evidenceAddrs {
			// Keys a ban took out of recent: drop them from the order.
			live := e.order[:0]
			for _, q := range e.order {
				if _, ok := e.recent[q]; ok || q == p {
					live = append(live, q)
				}
			}
			e.order = live
		}
	}
	if len(lines) == evidenceLines {
		lines = append(lines[:0], lines[1:]...)
	}
	e.recent[p] = append(lines, Evidence{Source: ev.Source, Line: ev.Line, Time: ev.Time, Text: text})
}

// decided returns the recent lines of p as a ban of it is decided: the
// lines that led to it. Lines read after, in the same batch or before the
// ban is enforced, did not.
func (e *evidence) decided(p netip.Prefix) []Evidence { return slices.Clone(e.recent[p]) }

// banned keeps lines, from decided, as the evidence of p's ban.
func (e *evidence) banned(p netip.Prefix, lines []Evidence) {
	if len(lines) == 0 {
		return
	}
	if _, ok := e.bans[p]; !ok {
		e.banOrder = append(e.banOrder, p)
		for len(e.bans) >= evidenceBans && len(e.banOrder) > 0 {
			delete(e.bans, e.banOrder[0])
			e.banOrder = e.banOrder[1:]
		}
	}
	e.bans[p] = lines
	delete(e.recent, p) // a ban spends the window: later lines are new
}

// lifted forgets the evidence of a ban that ended.
func (e *evidence) lifted(p netip.Prefix) { delete(e.bans, p) }
