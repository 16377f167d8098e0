package daemon

import (
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// A surge of a source's lines dropped as malformed or injected is the mark
// of someone writing into the PBX's log on purpose: forging lines
// (newlines in a SIP extension or an IAX2 user name), or probing how the
// parser splits fields. Each line is dropped and counted already; a surge
// is also reported, once per surgeQuiet and source: a warning in the
// daemon's log, a notice (metrics, [[notify]] targets).
const (
	// SurgeDrops is how many malformed or injected lines within
	// surgeWindow make a surge.
	SurgeDrops  = 100
	surgeWindow = time.Minute
	surgeQuiet  = 10 * time.Minute
)

// surgeReasons are the drops a surge counts (parsers.Outcome names).
var surgeReasons = []string{parsers.DropMalformed.String(), parsers.DropInjected.String()}

// surge is what the daemon remembers of a source's drops.
type surge struct {
	runner *runner     // whose counts these are
	total  int64       // the source's drops at the last look
	recent []surgeMark // the drops seen at each look within surgeWindow
	warned time.Time   // the last surge reported
}

type surgeMark struct {
	at time.Time
	n  int64
}

// watchSurges looks at every source's drops (each second, from the core
// loop) and reports the sources whose drops surge.
func (d *Daemon) watchSurges() {
	now := d.now()
	for name, r := range d.runners {
		c := r.status().counts
		var total int64
		for _, reason := range surgeReasons {
			total += c.DropBy[reason]
		}
		s := d.surges[name]
		if s == nil || s.runner != r {
			// New, or restarted by a reload: its counts start at 0.
			s = &surge{runner: r}
			d.surges[name] = s
		}
		if n := total - s.total; n > 0 {
			s.recent = append(s.recent, surgeMark{now, n})
		}
		s.total = total
		var within int64
		k := 0
		for _, m := range s.recent {
			if now.Sub(m.at) < surgeWindow {
				s.recent[k] = m
				k++
				within += m.n
			}
		}
		s.recent = s.recent[:k]
		if within < SurgeDrops || (!s.warned.IsZero() && now.Sub(s.warned) < surgeQuiet) {
			continue
		}
		s.warned = now
		d.log.Warn().Str(fieldSource, name).Int64("dropped", within).Dur("within", surgeWindow).
			Msg("a surge of malformed or injected lines: someone is writing into this log on purpose (forged lines, or probing how it is read); each line was dropped and counted, none banned anyone")
		d.notice(Notice{
			Type: NoticeDropSurge, Source: name, Count: int(within), Time: now,
			Reason: "lines dropped as malformed or injected within " + surgeWindow.String(),
		})
	}
	for name := range d.surges {
		if d.runners[name] == nil {
			delete(d.surges, name)
		}
	}
}
