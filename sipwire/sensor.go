package sipwire

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// The Parser and Source of the sensor's events, as the daemon names them
// (scan sets Source to the capture's name).
const (
	Parser = "sipwire"
	Source = "wire"
)

// Packet is one captured response packet.
type Packet struct {
	Time             time.Time  // when it was captured; must be set
	Src, Dst         netip.Addr // IP header addresses of the response (Src = the PBX, Dst = the client)
	SrcPort, DstPort uint16
	TCP              bool
	Payload          []byte // the UDP/TCP payload; the sensor does not keep it after Handle returns
}

// Options bound the sensor. Zero values take the defaults.
type Options struct {
	// MaxDialogs bounds the Call-IDs tracked (default 100,000); when full,
	// the least recently seen is forgotten (Stats.Evicted).
	MaxDialogs int
	// Lifetime is how long a Call-ID is remembered after its last response
	// (default 64 s: SIP's timers B and F, the longest a transaction lives).
	Lifetime time.Duration
	// ChallengeTimeout is how long a first challenge may go unanswered
	// before it is a challenge_unanswered event (default 32 s: timer B/F
	// halved, well past any phone's retransmissions).
	ChallengeTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxDialogs       = 100_000
	DefaultLifetime         = 64 * time.Second
	DefaultChallengeTimeout = 32 * time.Second
)

// Stats counts what the sensor did.
type Stats struct {
	Packets   uint64            // payloads handed to Handle
	Responses uint64            // SIP responses read from them
	Events    uint64            // events returned by Handle and Expire
	Dropped   map[string]uint64 // by reason: see Reasons
	Tracked   int               // Call-IDs held now
	Evicted   uint64            // Call-IDs forgotten early because MaxDialogs were held
}

// Sensor turns a PBX's SIP responses into events: it reads each response
// and follows the dialog of its Call-ID. It is safe for concurrent use.
type Sensor struct {
	mu      sync.Mutex
	opts    Options
	seed    maphash.Seed
	table   *dialogs
	stats   Stats
	dropped []uint64 // by index in reasons
}

var reasons = Reasons()

// maxResponses bounds the responses read from one TCP segment.
const maxResponses = 64

// NewSensor returns a sensor with options o.
func NewSensor(o Options) *Sensor {
	if o.MaxDialogs <= 0 {
		o.MaxDialogs = DefaultMaxDialogs
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.ChallengeTimeout <= 0 {
		o.ChallengeTimeout = DefaultChallengeTimeout
	}
	return &Sensor{opts: o, seed: maphash.MakeSeed(), table: newDialogs(o.MaxDialogs), dropped: make([]uint64, len(reasons))}
}

// Handle reads the responses in p and returns the events they make (often
// none). A UDP payload holds one response; a TCP segment may hold several,
// one after another as their Content-Length says. Segments are not
// reassembled: a response split across segments is dropped (truncated,
// then not_sip).
func (s *Sensor) Handle(p Packet) []parsers.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Packets++
	var evs []parsers.Event
	b := p.Payload
	for n := 0; ; n++ {
		if p.TCP {
			b = bytes.TrimLeft(b, "\r\n") // keep-alives (RFC 5626) between messages
		}
		if len(b) == 0 {
			break
		}
		if n == maxResponses {
			s.drop(ReasonTooLong)
			break
		}
		r, reason := Read(b, p.TCP)
		if reason != "" {
			s.drop(reason)
			break
		}
		s.stats.Responses++
		if ev, ok := s.response(p, &r); ok {
			evs = append(evs, ev)
		}
		if !p.TCP {
			break
		}
		b = b[r.Len:]
	}
	s.stats.Events += uint64(len(evs))
	return evs
}

// Expire returns the challenge_unanswered events due by now (timed when
// the challenge became unanswered, in now's location), and forgets the
// Call-IDs not seen for Lifetime. The daemon calls it every second;
// scan calls it with each packet's time.
func (s *Sensor) Expire(now time.Time) []parsers.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table
	n := now.UnixNano()
	var evs []parsers.Event
	for t.phead >= 0 && t.slab[t.phead].chalAt+int64(s.opts.ChallengeTimeout) <= n {
		i := t.phead
		d := &t.slab[i]
		evs = append(evs, event(time.Unix(0, d.chalAt+int64(s.opts.ChallengeTimeout)).In(now.Location()), d.addr, d.port,
			parsers.ChallengeUnanswered, d.user))
		t.unpend(i)
	}
	for t.tail >= 0 && t.slab[t.tail].last+int64(s.opts.Lifetime) <= n {
		t.remove(t.tail)
	}
	s.stats.Events += uint64(len(evs))
	return evs
}

// Stats returns the counts so far.
func (s *Sensor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Tracked = s.table.len()
	st.Dropped = make(map[string]uint64, len(s.dropped))
	for i, r := range reasons {
		st.Dropped[r] = s.dropped[i]
	}
	return st
}

func (s *Sensor) drop(reason string) {
	for i, r := range reasons {
		if r == reason {
			s.dropped[i]++
			return
		}
	}
	panic("sipwire: unknown drop reason " + reason) // a programming error
}

// response follows r's dialog and returns the event it makes.
func (s *Sensor) response(p Packet, r *Response) (parsers.Event, bool) {
	dst, reason := destination(p, &r.Via)
	if reason != "" {
		s.drop(reason)
		return parsers.Event{}, false
	}
	t := p.Time.UnixNano()
	key, txn := s.key(dst, r.CallID), s.txn(r)
	tab := s.table
	i := tab.get(key)
	if i >= 0 && t-tab.slab[i].last > int64(s.opts.Lifetime) {
		tab.remove(i) // not yet expired by Expire: a new dialog all the same
		i = -1
	}
	if i < 0 {
		var evicted bool
		if i, evicted = tab.add(key); evicted {
			s.stats.Evicted++
		}
	} else {
		tab.touch(i)
	}
	d := &tab.slab[i]
	status := uint16(r.Status)
	if d.lastStatus == status && d.lastTxn == txn {
		d.last = max(d.last, t)
		s.drop(ReasonRetransmission)
		return parsers.Event{}, false
	}
	d.last, d.lastTxn, d.lastStatus = t, txn, status
	method := s.method(r)
	if d.challenged && method != d.chalMethod && status >= 200 && status < 300 {
		// Another request on the challenged Call-ID (OPTIONS, CANCEL,
		// MESSAGE): the PBX may answer it without a password. Its 200 is
		// neither a login nor an answer to the challenge; taken for one,
		// it would have the address learned without a password. Its
		// failures count as ever: passwords guessed by INVITE on a
		// challenged REGISTER's Call-ID are still refused passwords.
		return parsers.Event{}, false
	}
	if d.pending && txn != d.chalTxn {
		tab.unpend(i) // a response to a new request: the challenge was answered
	}
	port := eventPort(p, &r.Via)
	kind := parsers.Kind(0)
	switch {
	case status == 401 || status == 407:
		switch {
		case !d.challenged:
			// The first challenge: every client's first request gets one.
			d.challenged, d.chalTxn, d.chalAt, d.chalMethod = true, txn, t, method
			d.addr, d.port, d.user = dst, port, string(r.ToUser)
			tab.pend(i)
		case r.Stale || txn == d.chalTxn:
			// A new nonce for an expired one, or for the challenged
			// request sent again: no password was refused.
			d.chalTxn = txn
		default:
			d.chalTxn = txn
			kind = parsers.AuthFailed
		}
	case (status == 403 || status == 404) && bytes.Equal(r.Method, []byte("REGISTER")):
		kind = parsers.UnknownUser
	case (status == 403 || status == 404) && bytes.Equal(r.Method, []byte("INVITE")) && !d.challenged:
		kind = parsers.UnknownExtension
	case status >= 200 && status < 300 && d.challenged && txn != d.chalTxn:
		d.challenged = false // a phone refreshing on this Call-ID is challenged anew
		kind = parsers.AuthSucceeded
	}
	if kind == 0 {
		return parsers.Event{}, false
	}
	return event(p.Time, dst, port, kind, string(r.ToUser)), true
}

func event(t time.Time, addr netip.Addr, port uint16, kind parsers.Kind, user string) parsers.Event {
	return parsers.Event{Time: t, Addr: addr, Port: port, Kind: kind, Service: parsers.SIP, User: user, Parser: Parser, Source: Source}
}

// destination applies the address rule: the response counts only when its
// packet goes where the top Via says the request came from, received (the
// address the PBX saw, which it adds whenever sent-by differs, RFC 3261
// 18.2.1) or else the sent-by address. Anything else (an attacker-chosen
// maddr, an ICMP fallback to sent-by, a proxy in front) is diverted.
func destination(p Packet, v *Via) (netip.Addr, string) {
	dst := p.Dst.Unmap().WithZone("")
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() {
		return netip.Addr{}, ReasonBadAddress
	}
	want := v.Received
	if want == nil {
		want = v.Host
	}
	want = bytes.TrimSuffix(bytes.TrimPrefix(want, []byte("[")), []byte("]"))
	a, err := netip.ParseAddr(string(want))
	if err != nil || a.Unmap().WithZone("") != dst {
		return netip.Addr{}, ReasonDiverted
	}
	return dst, ""
}

// eventPort is the packet's destination port when it is the one the Via
// names (rport, or the sent-by port, 5060 when absent), else 0.
func eventPort(p Packet, v *Via) uint16 {
	port := v.Port
	if port == 0 {
		port = 5060
		if bytes.EqualFold(v.Transport, []byte("TLS")) {
			port = 5061
		}
	}
	if p.DstPort != 0 && (p.DstPort == v.RPort || p.DstPort == port) {
		return p.DstPort
	}
	return 0
}

// key identifies a dialog: the client's address and the Call-ID, so that
// one address cannot touch another's dialog by writing its Call-ID.
func (s *Sensor) key(addr netip.Addr, callID []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	a := addr.As16()
	h.Write(a[:])
	h.Write(callID)
	return h.Sum64()
}

// method identifies r's method (its CSeq's).
func (s *Sensor) method(r *Response) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.Write(r.Method)
	return h.Sum64()
}

// txn identifies r's transaction: the top Via branch (new for every
// request a client sends, RFC 3261 8.1.1.7; the same when it sends one
// again) and the CSeq.
func (s *Sensor) txn(r *Response) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.Write(r.Via.Branch)
	var n [5]byte
	binary.BigEndian.PutUint32(n[1:], r.CSeq)
	h.Write(n[:])
	h.Write(r.Method)
	return h.Sum64()
}
