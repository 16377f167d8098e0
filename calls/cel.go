package calls

import (
	"strconv"
	"strings"
	"time"
)

// CELFields is the mapping contrib/asterisk/cel_custom.conf gives
// cel_custom, in order: what CELReader reads, exactly.
var CELFields = []string{"eventtype", "eventtime", "channame", "context", "exten",
	"uniqueid", "linkedid", "appname", "appdata", "accountcode", "cidnum"}

// Change is what a CEL record did to a call.
type Change uint8

// Changes.
const (
	Started  Change = iota + 1 // the calling channel was created: the call is placed
	Answered                   // a channel of the call was answered
	Ended                      // the calling channel hung up
)

func (c Change) String() string {
	switch c {
	case Started:
		return "started"
	case Answered:
		return "answered"
	case Ended:
		return "ended"
	}
	return "change?"
}

// Update is a call that changed.
type Update struct {
	Change Change
	Call   Call // as it is after the change
}

// CELReader reads the lines of sipguard's cel_custom mapping and follows
// calls from their events: a call is the channels sharing a linked ID; the
// one whose unique ID is the linked ID placed it.
type CELReader struct {
	loc  *time.Location
	rec  csvRecord
	open map[string]*Call // calls under way by linked ID
	fifo []string         // linked IDs in the order their calls started, to bound open
	max  int
}

// celMaxRecord bounds a record: the shipped mapping cuts every field a
// caller writes (${x:0:N}), so its records stay well below it.
const celMaxRecord = 8 << 10

// DefaultMaxCalls bounds the calls a CELReader follows at once (a call
// whose end was never logged is forgotten after that many newer ones).
const DefaultMaxCalls = 10000

// NewCELReader returns a reader; loc is the zone of times written with
// cel.conf's dateformat "%F %T" (the default format, seconds since the
// epoch, needs none).
func NewCELReader(loc *time.Location, maxCalls int) *CELReader {
	if loc == nil {
		loc = time.UTC
	}
	if maxCalls <= 0 {
		maxCalls = DefaultMaxCalls
	}
	return &CELReader{loc: loc, rec: csvRecord{max: celMaxRecord}, open: map[string]*Call{}, max: maxCalls}
}

// Idle reports whether no record is under way across lines.
func (r *CELReader) Idle() bool { return r.rec.idle() }

// Open returns how many calls are under way.
func (r *CELReader) Open() int { return len(r.open) }

// Line reads a physical line. On Matched, u says which call changed how.
func (r *CELReader) Line(l []byte, u *Update) Outcome {
	f, o := r.rec.record(l)
	if f == nil {
		return o
	}
	if len(f) != len(CELFields) || !celEvents[f[0]] || !uniqueID(f[5]) || !uniqueID(f[6]) {
		return DropMalformed
	}
	t, ok := r.time(f[1])
	if !ok {
		return DropTime
	}
	event, channel, context, exten, uid, lid := f[0], f[2], f[3], f[4], f[5], f[6]
	switch event {
	case "CHAN_START":
		if uid != lid {
			return Ignored // a channel the call created (the trunk leg)
		}
		c := &Call{ID: lid, Dialled: exten, Context: context, Start: t}
		c.Tech, c.Account = Account(channel)
		r.add(c)
		*u = Update{Started, *c}
		return Matched
	case "ANSWER":
		c := r.open[lid]
		if c == nil || !c.Answer.IsZero() {
			return Ignored
		}
		c.Answer = t
		*u = Update{Answered, *c}
		return Matched
	case "HANGUP", "LINKEDID_END":
		c := r.open[lid]
		if c == nil || event == "HANGUP" && uid != lid {
			return Ignored
		}
		c.End = t
		delete(r.open, lid)
		*u = Update{Ended, *c}
		return Matched
	}
	return Ignored
}

// add follows c, forgetting the oldest calls beyond the bound.
func (r *CELReader) add(c *Call) {
	if old := r.open[c.ID]; old != nil {
		*old = *c // a linked ID reused: the newer call
		return
	}
	for len(r.open) >= r.max && len(r.fifo) > 0 {
		delete(r.open, r.fifo[0])
		r.fifo = r.fifo[1:]
	}
	if len(r.fifo) > 2*r.max { // ended calls' IDs pile up: compact
		live := r.fifo[:0]
		for _, id := range r.fifo {
			if r.open[id] != nil {
				live = append(live, id)
			}
		}
		r.fifo = live
	}
	r.open[c.ID] = c
	r.fifo = append(r.fifo, c.ID)
}

// celEvents are the event types Asterisk's CEL writes (main/cel.c).
var celEvents = map[string]bool{
	"CHAN_START": true, "CHAN_END": true, "ANSWER": true, "HANGUP": true, "APP_START": true, "APP_END": true,
	"PARK_START": true, "PARK_END": true, "USER_DEFINED": true, "BRIDGE_ENTER": true, "BRIDGE_EXIT": true,
	"BLINDTRANSFER": true, "ATTENDEDTRANSFER": true, "PICKUP": true, "FORWARD": true, "LINKEDID_END": true,
	"LOCAL_OPTIMIZE": true, "LOCAL_OPTIMIZE_BEGIN": true, "STREAM_BEGIN": true, "STREAM_END": true, "DTMF": true,
}

// uniqueID reports whether s is an Asterisk unique ID: "<seconds>.<n>",
// optionally after the system name and a dash.
func uniqueID(s string) bool {
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		s = s[i+1:]
	}
	sec, n, ok := strings.Cut(s, ".")
	return ok && isDigits(sec) && isDigits(n)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// time reads cel.conf's default "<seconds>.<microseconds>", or "%F %T".
func (r *CELReader) time(s string) (time.Time, bool) {
	if sec, us, ok := strings.Cut(s, "."); ok && isDigits(sec) && len(us) == 6 && isDigits(us) {
		secs, err1 := strconv.ParseInt(sec, 10, 64)
		micros, err2 := strconv.ParseInt(us, 10, 64)
		if err1 != nil || err2 != nil || secs > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(secs, micros*1000).UTC(), true
	}
	t, err := time.ParseInLocation(time.DateTime, s, r.loc)
	return t, err == nil
}
