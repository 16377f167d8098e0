// Code copied from engine.go and compromise.go at eea0347 (before the
// recency queue of issue 11), types renamed: the reference the differential
// test (TestDifferential) holds the engine to. Do not change it to follow the
// engine: a decision that differs from it is a bug unless meant.

package engine

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// maxBan caps escalation when a rule sets no MaxBanTime.
const refMaxBan = 10 * 365 * 24 * time.Hour

// key identifies a counted address: the 16-byte form of an IPv4 address,
// or an IPv6 address masked to the configured prefix, or the whole IPv6
// address when that prefix is narrowed. The key of a narrowed address
// never equals the key of a prefix: a prefix is either narrowed or not.
type refKey [16]byte

// tracker is the state of one address: the event times of each rule in
// its current windows, sorted, at most MaxRetry each.
type refTracker struct {
	refKey     refKey
	prev, next *refTracker // recency list, most recent first
	last       int64       // newest event time (unix ns)
	until      int64       // end of the ban in force, copied from history
	// untilIn is the end of the bans in force of rules with ports of their
	// own, by Rule.Ports (nil until there is one).
	untilIn map[string]int64
	wins    [][]int64
	// With up to two rules (the usual burst and slow), wins and the
	// start of each window live here: a new address costs one allocation,
	// not one per rule and per growth of its window.
	winsIn [2][]int64
	times  [4]int64
}

// trackerBlock is how many trackers are made at once.
const refTrackerBlock = 256

// newTracker returns the tracker of k, its windows empty. Trackers are
// made in blocks and those dropped are reused: a new address then costs
// no allocation of its own. The trackers kept for reuse are never more
// than MaxTracked.
func (e *refEngine) newTracker(k refKey) *refTracker {
	var tr *refTracker
	if n := len(e.free); n > 0 {
		tr, e.free[n-1], e.free = e.free[n-1], nil, e.free[:n-1]
	} else {
		if len(e.block) == 0 {
			e.block = make([]refTracker, min(refTrackerBlock, e.max))
		}
		tr, e.block = &e.block[0], e.block[1:]
	}
	tr.refKey = k
	n := len(e.rules)
	if n > len(tr.winsIn) {
		tr.wins = make([][]int64, n)
		return tr
	}
	tr.wins = tr.winsIn[:n]
	per := len(tr.times) / n
	for i := range tr.wins {
		c := min(e.rules[i].MaxRetry, per)
		tr.wins[i] = tr.times[i*per : i*per : i*per+c]
	}
	return tr
}

// bannedUntil returns the end of the ban in force of the rules of ports.
func (tr *refTracker) bannedUntil(ports string) int64 {
	if ports == "" {
		return tr.until
	}
	return tr.untilIn[ports]
}

// offence is what is remembered of an address after a ban.
type refOffence struct {
	count int   // bans within History
	last  int64 // time of the last ban
	until int64 // end of the ban in force
}

// Engine decides bans. It is not safe for concurrent use: one goroutine
// feeds it events in (roughly) time order.
type refEngine struct {
	rules      []Rule
	ports      bool // a rule has Ports of its own: bans are per Ports
	compromise CompromiseRule
	special    func(netip.Prefix) (string, bool)
	allow4     []netip.Prefix
	allow6     []netip.Prefix
	narrow     map[refKey]bool // IPv6 prefixes holding an allowlisted address, by key
	v6bits     int
	max        int
	history    int64
	maxFind    int64

	trackers   map[refKey]*refTracker
	head, tail *refTracker   // recency list
	block      []refTracker  // trackers not used yet
	free       []*refTracker // trackers dropped, to reuse
	offences   map[refKey]*refOffence
	alerted    map[netip.Prefix]time.Time // compromises reported, by prefix
	now        int64                      // newest event time seen
	nextSweep  int64
	stats      Stats
}

// New checks opts and returns an Engine.
func newRefEngine(opts Options) (*refEngine, error) {
	if len(opts.Rules) == 0 {
		return nil, errors.New("no rules")
	}
	if len(opts.Rules) > 64 {
		return nil, errors.New("more than 64 rules")
	}
	e := &refEngine{
		v6bits:     opts.IPv6Prefix,
		max:        opts.MaxTracked,
		history:    int64(opts.History),
		trackers:   make(map[refKey]*refTracker),
		offences:   make(map[refKey]*refOffence),
		alerted:    make(map[netip.Prefix]time.Time),
		compromise: opts.Compromise,
		special:    opts.Special,
	}
	if e.v6bits == 0 {
		e.v6bits = DefaultIPv6Prefix
	}
	if e.v6bits < 1 || e.v6bits > 128 {
		return nil, fmt.Errorf("ipv6 prefix length %d out of range 1-128", e.v6bits)
	}
	if e.max == 0 {
		e.max = DefaultMaxTracked
	}
	if e.max < 0 {
		return nil, fmt.Errorf("max tracked %d is negative", e.max)
	}
	if e.history == 0 {
		e.history = int64(DefaultHistory)
	}
	seen := map[string]bool{}
	for _, r := range opts.Rules {
		switch {
		case r.Name == "":
			return nil, errors.New("rule without a name")
		case seen[r.Name]:
			return nil, fmt.Errorf("rule %q: defined twice", r.Name)
		case r.MaxRetry < 1:
			return nil, fmt.Errorf("rule %q: max_retry %d must be at least 1", r.Name, r.MaxRetry)
		case r.FindTime <= 0:
			return nil, fmt.Errorf("rule %q: find_time must be positive", r.Name)
		case r.BanTime <= 0:
			return nil, fmt.Errorf("rule %q: ban_time must be positive", r.Name)
		case r.Factor < 1 || math.IsInf(r.Factor, 0) || math.IsNaN(r.Factor):
			return nil, fmt.Errorf("rule %q: factor %v must be at least 1", r.Name, r.Factor)
		case r.MaxBanTime != 0 && r.MaxBanTime < r.BanTime:
			return nil, fmt.Errorf("rule %q: max_ban_time is shorter than ban_time", r.Name)
		case r.Kinds&parsers.AllKinds == 0:
			return nil, fmt.Errorf("rule %q: counts no kind of event", r.Name)
		}
		seen[r.Name] = true
		if r.MaxBanTime == 0 {
			r.MaxBanTime = max(refMaxBan, r.BanTime)
		}
		e.rules = append(e.rules, r)
		e.ports = e.ports || r.Ports != ""
		e.maxFind = max(e.maxFind, int64(r.FindTime))
	}
	switch c := opts.Compromise; {
	case c.Action == "" || c.Action == "off":
	case c.Action != "alert" && c.Action != "ban":
		return nil, fmt.Errorf("compromise action %q is not off, alert or ban", c.Action)
	case c.MinFailures < 1:
		return nil, fmt.Errorf("compromise min_failures %d must be at least 1", c.MinFailures)
	case c.Window <= 0:
		return nil, errors.New("compromise window must be positive")
	case c.Action == "ban" && c.BanTime <= 0:
		return nil, errors.New("compromise ban_time must be positive")
	}
	if err := e.SetAllow(opts.Allow); err != nil {
		return nil, err
	}
	return e, nil
}

// SetAllow replaces the allowlist (Options.Allow), counters and history
// kept: the daemon's trunks change it as DNS answers change. An invalid
// prefix fails the call and changes nothing.
func (e *refEngine) SetAllow(allow []netip.Prefix) error {
	var allow4, allow6 []netip.Prefix
	narrow := make(map[refKey]bool)
	for _, p := range allow {
		if !p.IsValid() {
			return errors.New("invalid allowlist prefix")
		}
		p = p.Masked()
		if p.Addr().Is4() {
			allow4 = append(allow4, p)
			continue
		}
		allow6 = append(allow6, p)
		if p.Bits() > e.v6bits {
			// A wider entry allows the whole prefix: nothing to narrow.
			wide, _ := p.Addr().Prefix(e.v6bits)
			narrow[refKey(wide.Addr().As16())] = true
		}
	}
	e.allow4, e.allow6, e.narrow = allow4, allow6, narrow
	// Observe looks at the allowlist only for addresses it does not track:
	// forget those it now allows. (A key is allowed as a whole: entries
	// narrower than the IPv6 prefix narrow it to single addresses.)
	for k, tr := range e.trackers {
		if e.Allowed(netip.AddrFrom16(k).Unmap()) {
			e.drop(tr)
		}
	}
	return nil
}

// Allowed reports whether a is on the allowlist.
func (e *refEngine) Allowed(a netip.Addr) bool {
	list := e.allow6
	if a.Is4() {
		list = e.allow4
	}
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Prefix returns what the engine counts and bans for a: the address itself
// for IPv4, its IPv6 prefix for IPv6, or the IPv6 address itself when that
// prefix holds an allowlisted address.
func (e *refEngine) Prefix(a netip.Addr) netip.Prefix {
	p, _ := e.prefix(a)
	return p
}

// prefix is Prefix, and the IPv6 prefix it narrowed from (invalid when it
// did not narrow).
func (e *refEngine) prefix(a netip.Addr) (p, from netip.Prefix) {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32), netip.Prefix{}
	}
	p, _ = a.Prefix(e.v6bits)
	if e.narrow[refKey(p.Addr().As16())] {
		return netip.PrefixFrom(a, 128), p
	}
	return p, netip.Prefix{}
}

func (e *refEngine) keyOf(a netip.Addr) refKey {
	return refKey(e.Prefix(a).Addr().As16())
}

// Observe counts ev and returns the ban it triggers, if any. ev.Time must
// be set. When several rules trigger at once the longest ban wins.
func (e *refEngine) Observe(ev *parsers.Event) (Ban, bool) {
	if !ev.Kind.Failure() {
		return Ban{}, false // a success is never counted
	}
	e.stats.Events++
	a := ev.Addr.Unmap()
	p, from := e.prefix(a)
	k := refKey(p.Addr().As16())
	tr := e.trackers[k]
	// Whether an address is allowlisted depends on its key alone (see
	// SetAllow), and allowlisted keys are never tracked: only an address
	// without a tracker needs the list's scan.
	if tr == nil && e.Allowed(a) {
		e.stats.Allowed++
		return Ban{}, false
	}
	t := ev.Time.UnixNano()
	if t > e.now {
		e.now = t
		if e.expire() && tr != nil && e.trackers[k] != tr {
			tr = nil // dropped: its windows had all closed
		}
	}
	if tr == nil {
		// Only what may be banned is tracked: a tracked key was checked
		// when its tracker was made, and its prefix never changes.
		if e.special != nil {
			if _, bad := e.special(p); bad {
				e.stats.Special++
				return Ban{}, false
			}
		}
		tr = e.track(k)
	} else {
		e.touch(tr)
	}
	tr.last = max(tr.last, t)
	if t < tr.until && !e.ports {
		e.stats.WhileBanned++
		return Ban{}, false
	}

	var ban Ban
	var banPorts string
	var hits uint64 // rules whose window triggered
	counted, whileBanned := false, false
	for i := range e.rules {
		r := &e.rules[i]
		if !r.Kinds.Has(ev.Kind) {
			continue
		}
		if t < tr.bannedUntil(r.Ports) {
			whileBanned = true
			continue
		}
		counted = true
		first, last, n, hit := tr.add(i, t, r)
		if !hit {
			continue
		}
		hits |= 1 << i
		offences := e.offencesOf(k, t)
		d := refEscalate(r, offences)
		if d > ban.Duration {
			ban = Ban{
				Prefix: p, Addr: a, Rule: r.Name, Count: n,
				First: time.Unix(0, first), Last: time.Unix(0, last),
				Duration: d, Offences: offences, NarrowedFrom: from,
			}
			banPorts = r.Ports
		}
	}
	if counted {
		e.stats.Counted++
	} else if whileBanned {
		e.stats.WhileBanned++
	}
	if ban.Duration == 0 {
		return Ban{}, false
	}
	e.stats.Bans++
	if ban.NarrowedFrom.IsValid() {
		e.stats.Narrowed++
	}
	if banPorts == "" {
		tr.until = e.remember(k, t, ban.Duration, true)
	} else {
		// The offence history's end of ban is the default ports': after a
		// restart the other rules count the address at once.
		e.remember(k, t, ban.Duration, false)
		if tr.untilIn == nil {
			tr.untilIn = map[string]int64{}
		}
		tr.untilIn[banPorts] = t + int64(ban.Duration)
	}
	// The windows that triggered are spent (those of the ban's ports:
	// another ports' rule that triggered too bans at its next event);
	// other rules keep counting.
	for i := range e.rules {
		if hits&(1<<i) != 0 && e.rules[i].Ports == banPorts {
			tr.wins[i] = tr.wins[i][:0]
		}
	}
	return ban, true
}

// Recent returns how many failures of a (or of its IPv6 prefix) the rules'
// windows hold at or after since: the largest count of any rule, so at most
// the largest max_retry. A rule's window forgets events older than its
// find_time and is emptied by a ban.
func (e *refEngine) Recent(a netip.Addr, since time.Time) int {
	tr := e.trackers[e.keyOf(a.Unmap())]
	if tr == nil {
		return 0
	}
	t, most := since.UnixNano(), 0
	for _, w := range tr.wins {
		n := len(w) - sort.Search(len(w), func(i int) bool { return w[i] >= t })
		most = max(most, n)
	}
	return most
}

// add inserts t into rule i's window and reports whether the rule now
// holds MaxRetry events within FindTime, with the window's first and last
// event times and its size.
func (tr *refTracker) add(i int, t int64, r *Rule) (first, last int64, n int, hit bool) {
	w := tr.wins[i]
	find, mr := int64(r.FindTime), r.MaxRetry
	// Events at or before newest-FindTime cannot share a window with the
	// newest event or any later one.
	newest := t
	if len(w) > 0 {
		newest = max(newest, w[len(w)-1])
	}
	drop := 0
	for drop < len(w) && w[drop] <= newest-find {
		drop++
	}
	w = w[:copy(w, w[drop:])]
	if t <= newest-find {
		tr.wins[i] = w
		return 0, 0, 0, false // too old to matter
	}
	// Insert t in order: events from several sources may arrive slightly
	// out of order.
	j := len(w)
	for j > 0 && w[j-1] > t {
		j--
	}
	if len(w) == cap(w) {
		// Grow by a factor of 4, up to the most the window keeps: most
		// addresses send a few events, and a window of MaxRetry for each
		// was a third of the engine's memory.
		w = slices.Grow(w, max(min(mr, 4*len(w))-len(w), 1))
	}
	w = append(w, 0)
	copy(w[j+1:], w[j:])
	w[j] = t
	// Only windows of MaxRetry consecutive events that include t are new.
	for s := max(0, j-mr+1); s <= j && s+mr-1 < len(w); s++ {
		if w[s+mr-1]-w[s] < find {
			tr.wins[i] = w
			return w[s], w[s+mr-1], mr, true
		}
	}
	// Keep the newest MaxRetry-1 events: an older one cannot complete a
	// window that a newer one could not.
	if len(w) >= mr {
		w = w[:copy(w, w[len(w)-(mr-1):])]
	}
	tr.wins[i] = w
	return 0, 0, 0, false
}

// escalate returns the ban time for an address with n earlier offences.
func refEscalate(r *Rule, n int) time.Duration {
	d := float64(r.BanTime) * math.Pow(r.Factor, float64(n))
	if d >= float64(r.MaxBanTime) || math.IsInf(d, 0) {
		return r.MaxBanTime
	}
	return time.Duration(d)
}

// offencesOf returns how many bans of k are remembered at time t.
func (e *refEngine) offencesOf(k refKey, t int64) int {
	o := e.offences[k]
	if o == nil || t-o.last >= e.history {
		return 0
	}
	return o.count
}

// remember records a ban of k at t and returns its end.
func (e *refEngine) remember(k refKey, t int64, d time.Duration, setUntil bool) int64 {
	o := e.offences[k]
	if o == nil {
		o = &refOffence{}
		e.offences[k] = o
	}
	if t-o.last >= e.history {
		o.count = 0
	}
	o.count++
	o.last = t
	if setUntil {
		o.until = t + int64(d)
	}
	if len(e.offences) > e.max {
		e.sweepOffences(true)
	}
	return o.until
}

// track starts tracking k, evicting the least recently seen address when
// the engine is full.
func (e *refEngine) track(k refKey) *refTracker {
	if len(e.trackers) >= e.max {
		e.stats.Evicted++
		e.drop(e.tail)
	}
	tr := e.newTracker(k)
	if o := e.offences[k]; o != nil {
		tr.until = o.until
	}
	e.trackers[k] = tr
	tr.next = e.head
	if e.head != nil {
		e.head.prev = tr
	}
	e.head = tr
	if e.tail == nil {
		e.tail = tr
	}
	return tr
}

// touch moves tr to the front of the recency list.
func (e *refEngine) touch(tr *refTracker) {
	if e.head == tr {
		return
	}
	e.unlink(tr)
	tr.next = e.head
	e.head.prev = tr
	e.head = tr
}

func (e *refEngine) unlink(tr *refTracker) {
	if tr.prev != nil {
		tr.prev.next = tr.next
	} else {
		e.head = tr.next
	}
	if tr.next != nil {
		tr.next.prev = tr.prev
	} else {
		e.tail = tr.prev
	}
	tr.prev, tr.next = nil, nil
}

func (e *refEngine) drop(tr *refTracker) {
	e.unlink(tr)
	delete(e.trackers, tr.refKey)
	*tr = refTracker{} // let go of its windows and bans by ports
	e.free = append(e.free, tr)
}

// expire drops the state of addresses that can no longer reach MaxRetry:
// their newest event is older than the longest FindTime, so every window
// they hold has closed. The recency list is in event order, so only its
// tail needs looking at. Ban ends are kept in the offence history. It
// reports whether it dropped any.
func (e *refEngine) expire() (dropped bool) {
	for e.tail != nil && e.tail.last <= e.now-e.maxFind {
		e.drop(e.tail)
		dropped = true
	}
	if e.now >= e.nextSweep {
		e.sweepOffences(false)
		e.nextSweep = e.now + e.history/8
	}
	return dropped
}

// sweepOffences forgets offences older than History whose ban has ended.
// When full is set and the history is still over MaxTracked, it also
// forgets the oldest ended ones.
func (e *refEngine) sweepOffences(full bool) {
	for k, o := range e.offences {
		if e.now-o.last >= e.history && o.until <= e.now {
			delete(e.offences, k)
		}
	}
	if !full || len(e.offences) <= e.max {
		return
	}
	// Rare: more bans within History than MaxTracked. Forget the ended
	// bans with the oldest offence until a tenth of the room is free.
	for len(e.offences) > e.max*9/10 {
		var oldest refKey
		ot := int64(math.MaxInt64)
		for k, o := range e.offences {
			if o.until <= e.now && o.last < ot {
				oldest, ot = k, o.last
			}
		}
		if ot == math.MaxInt64 {
			return // every one is a ban in force
		}
		delete(e.offences, oldest)
		e.stats.Evicted++
	}
}

// Forget drops all state of the addresses in p: counters, ban in force and
// offence history (an unban forgives).
func (e *refEngine) Forget(p netip.Prefix) {
	p = p.Masked()
	if p.Addr().Is6() && p.Bits() > e.v6bits {
		// State is kept per IPv6 prefix: forgetting one address of it
		// forgets the prefix.
		p = e.Prefix(p.Addr())
	}
	for k, tr := range e.trackers {
		if p.Contains(netip.AddrFrom16(k).Unmap()) {
			e.drop(tr)
		}
	}
	for k := range e.offences {
		if p.Contains(netip.AddrFrom16(k).Unmap()) {
			delete(e.offences, k)
		}
	}
}

// Stats returns the engine's counters.
func (e *refEngine) Stats() Stats {
	s := e.stats
	s.Tracked = len(e.trackers)
	return s
}

// Rules returns the engine's rules.
func (e *refEngine) Rules() []Rule { return e.rules }

// Offences returns the offence history (not yet forgotten).
func (e *refEngine) Offences() []Offence {
	out := make([]Offence, 0, len(e.offences))
	for k, o := range e.offences {
		p := e.Prefix(netip.AddrFrom16(k))
		out = append(out, Offence{Prefix: p, Count: o.count, Last: time.Unix(0, o.last), Until: time.Unix(0, o.until)})
	}
	return out
}

// Restore loads an offence history saved by Offences, keeping what is
// already known when both have an entry. The offence of an IPv6 network
// that now holds an allowlisted address is left out: it would fall on the
// network's first address alone.
func (e *refEngine) Restore(offences []Offence) {
	for _, o := range offences {
		if !o.Prefix.IsValid() || o.Count < 1 {
			continue
		}
		if _, from := e.prefix(o.Prefix.Addr()); from.IsValid() && o.Prefix.Bits() < 128 {
			continue
		}
		k := e.keyOf(o.Prefix.Addr())
		if _, ok := e.offences[k]; ok {
			continue
		}
		e.offences[k] = &refOffence{count: o.Count, last: o.Last.UnixNano(), until: o.Until.UnixNano()}
		if tr := e.trackers[k]; tr != nil {
			tr.until = max(tr.until, o.Until.UnixNano())
		}
	}
}

// Inherit takes over what old remembers beyond its counters: the offence
// history and the compromises reported. Used when the rules change, so
// that escalation goes on and no compromise is reported twice.
func (e *refEngine) Inherit(old *refEngine) {
	e.Restore(old.Offences())
	for p, t := range old.alerted {
		e.alerted[p] = t
	}
	e.stats.Compromises = old.stats.Compromises
}

// Banned records a ban decided outside the engine (a manual ban): events
// of p are not counted until it ends, and it counts as an offence.
func (e *refEngine) Banned(p netip.Prefix, at time.Time, d time.Duration) {
	k := e.keyOf(p.Addr())
	until := e.remember(k, at.UnixNano(), d, true)
	if tr := e.trackers[k]; tr != nil {
		tr.until = until
	}
}

// Standing reports what the engine holds about a, as of the newest event
// it has seen: for `sipguard why`.
func (e *refEngine) Standing(a netip.Addr) Standing {
	k := e.keyOf(a.Unmap())
	s := Standing{Prefix: e.Prefix(a), Windows: make([]int, len(e.rules)), Offences: e.offencesOf(k, e.now)}
	if tr := e.trackers[k]; tr != nil {
		for i, w := range tr.wins {
			from := e.now - int64(e.rules[i].FindTime)
			s.Windows[i] = len(w) - sort.Search(len(w), func(j int) bool { return w[j] > from })
		}
		if tr.until > e.now {
			s.Until = time.Unix(0, tr.until)
		}
	}
	if o := e.offences[k]; o != nil && o.until > e.now {
		s.Until = time.Unix(0, o.until)
	}
	return s
}

// maxAlerted bounds the addresses remembered to report once per window.
const refMaxAlerted = 10000

// Success runs the compromise rule on an auth_succeeded event: a success
// from an address (or IPv6 prefix) with at least MinFailures failures in
// the rules' windows within Window is reported, once per Window and
// address. Successes are never counted toward a ban.
func (e *refEngine) Success(ev *parsers.Event) (Compromise, bool) {
	c := e.compromise
	if ev.Kind != parsers.AuthSucceeded || c.Action == "" || c.Action == "off" || e.Allowed(ev.Addr.Unmap()) {
		return Compromise{}, false
	}
	n := e.Recent(ev.Addr, ev.Time.Add(-c.Window))
	if n < c.MinFailures {
		return Compromise{}, false
	}
	p, from := e.prefix(ev.Addr)
	if last, ok := e.alerted[p]; ok && ev.Time.Sub(last) < c.Window {
		return Compromise{}, false
	}
	if len(e.alerted) >= refMaxAlerted {
		for q, t := range e.alerted {
			if ev.Time.Sub(t) >= c.Window {
				delete(e.alerted, q)
			}
		}
		if len(e.alerted) >= refMaxAlerted {
			clear(e.alerted) // at worst, an address is reported twice
		}
	}
	e.alerted[p] = ev.Time
	e.stats.Compromises++
	out := Compromise{
		Prefix: p, Addr: ev.Addr.Unmap(), User: ev.User, Source: ev.Source, Service: ev.Service,
		Failures: n, Time: ev.Time,
	}
	if c.Action == "ban" {
		out.Ban = &Ban{
			Prefix: p, Addr: ev.Addr.Unmap(), Rule: CompromiseRuleName, Count: n,
			First: ev.Time, Last: ev.Time, Duration: c.BanTime, NarrowedFrom: from,
		}
		if from.IsValid() {
			e.stats.Narrowed++
		}
		e.Banned(p, ev.Time, c.BanTime)
	}
	return out, true
}
