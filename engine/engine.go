// Package engine decides bans from failure events with exact sliding
// windows.
//
// A Rule bans an address when MaxRetry of its kinds of events fall within
// FindTime, that is within any half-open window (t-FindTime, t]. Every event
// time is kept (up to MaxRetry per rule and address), so unlike fail2ban's
// rescaled counter or CrowdSec's leaky bucket there is no rate below which
// an attacker goes unseen: one attempt every 10 s meets a rule of 30 in 24h
// after exactly 30 attempts.
//
// The engine runs on the events' own time, never the wall clock, so
// replaying a log gives exactly the decisions the daemon would have made.
// It makes decisions only; applying them to a firewall is the caller's job.
//
// An IPv6 ban covers the address's whole prefix (Options.IPv6Prefix)
// unless that prefix holds an allowlisted address: providers put many
// customers in one /64, and a ban must never cover a trusted peer. The
// addresses of such a prefix are then counted and banned one by one (the
// ban is narrowed to the /128, Ban.NarrowedFrom and Stats.Narrowed say
// so); the allowlisted ones are never counted.
//
// Events whose ban would cover special-purpose addresses (Options.Special,
// bans.Special in practice: loopback, link-local, ...; ::/64 holds ::1)
// are dropped and counted, never counted toward a ban.
//
// Memory is bounded: at most MaxTracked addresses (least recently seen
// evicted first), and an address's state is dropped as soon as it can no
// longer reach MaxRetry of any rule.
//
// The engine also owns the compromise rule (Success): a successful login
// from an address that has just failed is how a guessed password looks.
// The daemon and `sipguard scan` both ask the engine, so they give the
// same answers.
package engine

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// Rule is one ban policy.
type Rule struct {
	Name     string
	Kinds    parsers.KindSet // kinds of event the rule counts
	MaxRetry int             // events within FindTime that trigger a ban
	FindTime time.Duration
	BanTime  time.Duration // first ban
	// Factor multiplies BanTime for each earlier offence of the address
	// still remembered (see Options.History): BanTime*Factor^n, up to
	// MaxBanTime. A factor of 1 disables escalation.
	Factor     float64
	MaxBanTime time.Duration
	// Ports names the ports the rule's bans drop traffic to (a firewall
	// ports profile; "" the default). Rules of different Ports ban apart:
	// an address banned by a rule of one goes on being counted by the
	// others, whose ports it can still reach.
	Ports string
}

// Options configure an Engine.
type Options struct {
	Rules []Rule
	// Allow lists addresses and networks whose events are never counted.
	Allow []netip.Prefix
	// IPv6Prefix is the length of the IPv6 prefix events are counted and
	// banned by: an attacker owns a whole /64, not one address.
	IPv6Prefix int
	// MaxTracked bounds the number of addresses with state (0: 100,000).
	MaxTracked int
	// History is how long an address's offences count for escalation
	// (0: 7 days).
	History time.Duration
	// Compromise is the rule for successful logins after failures (see
	// Success); off when its Action is empty.
	Compromise CompromiseRule
	// Special reports what must never be banned (bans.Special: loopback,
	// link-local, multicast, ...). An event whose ban would cover such
	// space (its address, or the IPv6 prefix it is counted by: ::/64
	// holds ::1) is dropped, counted in Stats.Special, never counted
	// toward a ban. Nil: nothing is.
	Special func(netip.Prefix) (why string, bad bool)
}

// Defaults for Options fields left zero.
const (
	DefaultIPv6Prefix = 64
	DefaultMaxTracked = 100_000
	DefaultHistory    = 7 * 24 * time.Hour
)

// maxBan caps escalation when a rule sets no MaxBanTime.
const maxBan = 10 * 365 * 24 * time.Hour

// Ban is a decision to ban Prefix for Duration.
type Ban struct {
	Prefix netip.Prefix // the address (/32, /128) or IPv6 prefix to ban
	Addr   netip.Addr   // the address of the event that triggered the ban
	Rule   string
	Count  int       // events in the window
	First  time.Time // first and last event in the window
	Last   time.Time
	// Duration is BanTime escalated by Offences earlier offences.
	Duration time.Duration
	Offences int
	// NarrowedFrom is the IPv6 prefix the ban would have covered, had it
	// not held an allowlisted address: Prefix is then the address alone.
	// Invalid when the ban was not narrowed.
	NarrowedFrom netip.Prefix
}

// Until is when the ban ends.
func (b Ban) Until() time.Time { return b.Last.Add(b.Duration) }

// Stats counts what the engine did with the events it was given.
type Stats struct {
	Events      int64 // events observed
	Counted     int64 // events counted by at least one rule
	Allowed     int64 // ignored: allowlisted address
	Special     int64 // ignored: a ban would cover special-purpose addresses (Options.Special)
	WhileBanned int64 // ignored: address already banned
	Bans        int64 // bans decided
	Narrowed    int64 // IPv6 bans (of rules and compromise) narrowed to the address: its prefix holds an allowlisted one
	Evicted     int64 // addresses forgotten early because of MaxTracked
	Compromises int64 // successful logins after failures reported
	Tracked     int   // addresses with state now
}

// key identifies a counted address: the 16-byte form of an IPv4 address,
// or an IPv6 address masked to the configured prefix, or the whole IPv6
// address when that prefix is narrowed. The key of a narrowed address
// never equals the key of a prefix: a prefix is either narrowed or not.
type key [16]byte

// tracker is the state of one address: the event times of each rule in
// its current windows, sorted, at most MaxRetry each.
type tracker struct {
	// What every event reads and writes first, together in the first 32
	// bytes: in one cache line whatever the tracker's place in its block.
	prev, next *tracker // recency list, most recent first
	last       int64    // newest event time (unix ns)
	until      int64    // end of the ban in force, copied from history
	key        key
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
const trackerBlock = 256

// newTracker returns the tracker of k, its windows empty. Trackers are
// made in blocks and those dropped are reused: a new address then costs
// no allocation of its own. The trackers kept for reuse are never more
// than MaxTracked.
func (e *Engine) newTracker(k key) *tracker {
	var tr *tracker
	if n := len(e.free); n > 0 {
		tr, e.free[n-1], e.free = e.free[n-1], nil, e.free[:n-1]
	} else {
		if len(e.block) == 0 {
			e.block = make([]tracker, min(trackerBlock, e.max))
		}
		tr, e.block = &e.block[0], e.block[1:]
	}
	tr.key = k
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
func (tr *tracker) bannedUntil(ports string) int64 {
	if ports == "" {
		return tr.until
	}
	return tr.untilIn[ports]
}

// offence is what is remembered of an address after a ban.
type offence struct {
	count int   // bans within History
	last  int64 // time of the last ban
	until int64 // end of the ban in force
}

// Engine decides bans. It is not safe for concurrent use: one goroutine
// feeds it events in (roughly) time order.
type Engine struct {
	rules      []Rule
	ports      bool // a rule has Ports of its own: bans are per Ports
	compromise CompromiseRule
	special    func(netip.Prefix) (string, bool)
	allow4     []netip.Prefix
	allow6     []netip.Prefix
	narrow     map[key]bool // IPv6 prefixes holding an allowlisted address, by key
	v6bits     int
	max        int
	history    int64
	maxFind    int64

	trackers   table
	head, tail *tracker   // recency list
	block      []tracker  // trackers not used yet
	free       []*tracker // trackers dropped, to reuse
	offences   map[key]*offence
	alerted    map[netip.Prefix]time.Time // compromises reported, by prefix
	now        int64                      // newest event time seen
	nextSweep  int64
	stats      Stats
}

// New checks opts and returns an Engine.
func New(opts Options) (*Engine, error) {
	if len(opts.Rules) == 0 {
		return nil, errors.New("no rules")
	}
	if len(opts.Rules) > 64 {
		return nil, errors.New("more than 64 rules")
	}
	e := &Engine{
		v6bits:     opts.IPv6Prefix,
		max:        opts.MaxTracked,
		history:    int64(opts.History),
		trackers:   table{v4: make(map[uint32]*tracker), v6: make(map[key]*tracker)},
		offences:   make(map[key]*offence),
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
			r.MaxBanTime = max(maxBan, r.BanTime)
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
func (e *Engine) SetAllow(allow []netip.Prefix) error {
	var allow4, allow6 []netip.Prefix
	narrow := make(map[key]bool)
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
			narrow[key(wide.Addr().As16())] = true
		}
	}
	e.allow4, e.allow6, e.narrow = allow4, allow6, narrow
	// Observe looks at the allowlist only for addresses it does not track:
	// forget those it now allows. (A key is allowed as a whole: entries
	// narrower than the IPv6 prefix narrow it to single addresses.)
	for k, tr := range e.trackers.all() {
		if e.Allowed(netip.AddrFrom16(k).Unmap()) {
			e.drop(tr)
		}
	}
	return nil
}

// Allowed reports whether a is on the allowlist.
func (e *Engine) Allowed(a netip.Addr) bool {
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
func (e *Engine) Prefix(a netip.Addr) netip.Prefix {
	p, _ := e.prefix(a)
	return p
}

// prefix is Prefix, and the IPv6 prefix it narrowed from (invalid when it
// did not narrow).
func (e *Engine) prefix(a netip.Addr) (p, from netip.Prefix) {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32), netip.Prefix{}
	}
	p, _ = a.Prefix(e.v6bits)
	if e.narrow[key(p.Addr().As16())] {
		return netip.PrefixFrom(a, 128), p
	}
	return p, netip.Prefix{}
}

func (e *Engine) keyOf(a netip.Addr) key {
	return key(e.Prefix(a).Addr().As16())
}

// Observe counts ev and returns the ban it triggers, if any. ev.Time must
// be set. When several rules trigger at once the longest ban wins.
func (e *Engine) Observe(ev *parsers.Event) (Ban, bool) {
	if !ev.Kind.Failure() {
		return Ban{}, false // a success is never counted
	}
	e.stats.Events++
	a := ev.Addr.Unmap()
	p, from := e.prefix(a)
	tr := e.trackers.find(p)
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
		if e.expire() && tr != nil && e.trackers.find(p) != tr {
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
		tr = e.track(key(p.Addr().As16()))
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
		offences := e.offencesOf(tr.key, t) // the key: read only now, past the first 32 bytes
		d := escalate(r, offences)
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
		tr.until = e.remember(tr.key, t, ban.Duration, true)
	} else {
		// The offence history's end of ban is the default ports': after a
		// restart the other rules count the address at once.
		e.remember(tr.key, t, ban.Duration, false)
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
func (e *Engine) Recent(a netip.Addr, since time.Time) int {
	tr := e.trackers.get(e.keyOf(a.Unmap()))
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
func (tr *tracker) add(i int, t int64, r *Rule) (first, last int64, n int, hit bool) {
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

// LongestBan returns the longest ban the rules of o can make, escalation
// included: what a node that shares bans may expect of another with the
// same rules (longer ones from the cluster are cut to it).
func (o Options) LongestBan() time.Duration {
	var d time.Duration
	if o.Compromise.Action == "ban" {
		d = o.Compromise.BanTime
	}
	for _, r := range o.Rules {
		switch {
		case r.Factor <= 1:
			d = max(d, r.BanTime)
		case r.MaxBanTime == 0:
			d = max(d, maxBan, r.BanTime)
		default:
			d = max(d, r.MaxBanTime)
		}
	}
	return d
}

// escalate returns the ban time for an address with n earlier offences.
func escalate(r *Rule, n int) time.Duration {
	d := float64(r.BanTime) * math.Pow(r.Factor, float64(n))
	if d >= float64(r.MaxBanTime) || math.IsInf(d, 0) {
		return r.MaxBanTime
	}
	return time.Duration(d)
}

// offencesOf returns how many bans of k are remembered at time t.
func (e *Engine) offencesOf(k key, t int64) int {
	o := e.offences[k]
	if o == nil || t-o.last >= e.history {
		return 0
	}
	return o.count
}

// remember records a ban of k at t and returns its end.
func (e *Engine) remember(k key, t int64, d time.Duration, setUntil bool) int64 {
	o := e.offences[k]
	if o == nil {
		o = &offence{}
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
func (e *Engine) track(k key) *tracker {
	if e.trackers.len() >= e.max {
		e.stats.Evicted++
		e.drop(e.tail)
	}
	tr := e.newTracker(k)
	if o := e.offences[k]; o != nil {
		tr.until = o.until
	}
	e.trackers.set(k, tr)
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
func (e *Engine) touch(tr *tracker) {
	if e.head == tr {
		return
	}
	e.unlink(tr)
	tr.next = e.head
	e.head.prev = tr
	e.head = tr
}

func (e *Engine) unlink(tr *tracker) {
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

func (e *Engine) drop(tr *tracker) {
	e.unlink(tr)
	e.trackers.del(tr.key)
	*tr = tracker{} // let go of its windows and bans by ports
	e.free = append(e.free, tr)
}

// expire drops the state of addresses that can no longer reach MaxRetry:
// their newest event is older than the longest FindTime, so every window
// they hold has closed. The recency list is in event order, so only its
// tail needs looking at. Ban ends are kept in the offence history. It
// reports whether it dropped any.
func (e *Engine) expire() (dropped bool) {
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
func (e *Engine) sweepOffences(full bool) {
	for k, o := range e.offences {
		if e.now-o.last >= e.history && o.until <= e.now {
			delete(e.offences, k)
		}
	}
	if !full || len(e.offences) <= e.max {
		return
	}
	// Rare: more bans within History than MaxTracked. Forget the ended
	// bans with the oldest offence until a tenth of the room is free (bans
	// in force stay). They are sorted once: looking for the oldest again
	// for each one forgotten took O(MaxTracked²), seconds of the core for
	// an attacker with many IPv6 networks. Equal times go by key, so that
	// what is forgotten never depends on the map's order.
	type ended struct {
		k    key
		last int64
	}
	var old []ended
	for k, o := range e.offences {
		if o.until <= e.now {
			old = append(old, ended{k, o.last})
		}
	}
	slices.SortFunc(old, func(a, b ended) int {
		return cmp.Or(cmp.Compare(a.last, b.last), bytes.Compare(a.k[:], b.k[:]))
	})
	for _, o := range old {
		if len(e.offences) <= e.max*9/10 {
			break
		}
		delete(e.offences, o.k)
		e.stats.Evicted++
	}
}

// Forget drops all state of the addresses in p: counters, ban in force and
// offence history (an unban forgives).
func (e *Engine) Forget(p netip.Prefix) {
	p = p.Masked()
	if p.Addr().Is6() && p.Bits() > e.v6bits {
		// State is kept per IPv6 prefix: forgetting one address of it
		// forgets the prefix.
		p = e.Prefix(p.Addr())
	}
	if p.Bits() == p.Addr().BitLen() {
		// One key (an IPv4 address, a narrowed IPv6 one): no scan of
		// every tracker, which every cluster unban of an address (one a
		// peer may send by the thousand) would cost.
		k := key(p.Addr().As16())
		if tr := e.trackers.get(k); tr != nil {
			e.drop(tr)
		}
		delete(e.offences, k)
		return
	}
	for k, tr := range e.trackers.all() {
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
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Tracked = e.trackers.len()
	return s
}

// Rules returns the engine's rules.
func (e *Engine) Rules() []Rule { return e.rules }

// Offence is what the engine remembers of an address it banned, for
// escalation: saved across restarts.
type Offence struct {
	Prefix netip.Prefix `json:"prefix"`
	Count  int          `json:"count"` // bans within History
	Last   time.Time    `json:"last"`  // time of the last ban
	Until  time.Time    `json:"until"` // end of that ban
}

// Offences returns the offence history (not yet forgotten).
func (e *Engine) Offences() []Offence {
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
func (e *Engine) Restore(offences []Offence) {
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
		var until int64
		if e.covers(o.Prefix) {
			until = o.Until.UnixNano()
		}
		e.offences[k] = &offence{count: o.Count, last: o.Last.UnixNano(), until: until}
		if tr := e.trackers.get(k); tr != nil {
			tr.until = max(tr.until, until)
		}
	}
}

// Inherit takes over what old remembers beyond its counters: the offence
// history and the compromises reported. Used when the rules change, so
// that escalation goes on and no compromise is reported twice.
func (e *Engine) Inherit(old *Engine) {
	e.Restore(old.Offences())
	for p, t := range old.alerted {
		e.alerted[p] = t
	}
	e.stats.Compromises = old.stats.Compromises
}

// Banned records a ban decided outside the engine (a manual ban): events
// of p are not counted until it ends, and it counts as an offence.
func (e *Engine) Banned(p netip.Prefix, at time.Time, d time.Duration) {
	k := e.keyOf(p.Addr())
	covers := e.covers(p)
	until := e.remember(k, at.UnixNano(), d, covers)
	if tr := e.trackers.get(k); tr != nil && covers {
		tr.until = until
	}
}

// covers reports whether a ban of p holds every address counted with
// p's: a narrower one (a /64 once ipv6_prefix is 48, an IPv6 address
// banned by hand) counts as an offence, but the events of the others
// must still be counted while it runs.
func (e *Engine) covers(p netip.Prefix) bool {
	return p.Bits() <= e.Prefix(p.Addr()).Bits()
}

// Lifted says that the ban of p decided outside the engine (another
// node's) now ends at until, sooner (at the lift, or when the bans left
// end): the events of p count again from then, and its offence stays.
// Without it, a node that bans an address for long and lifts it at once
// would blind this node to the address's attacks until the lifted ban's
// end.
func (e *Engine) Lifted(p netip.Prefix, until time.Time) {
	k := e.keyOf(p.Addr())
	t := until.UnixNano()
	if o := e.offences[k]; o != nil && o.until > t {
		o.until = t
	}
	if tr := e.trackers.get(k); tr != nil && tr.until > t {
		tr.until = t
	}
}

// Standing is what the engine holds about one address: what it counts it
// as, the events of each rule's window (in the order of the rules), its
// offences, and the end of a ban the engine knows of.
type Standing struct {
	Prefix   netip.Prefix
	Windows  []int // events in each rule's window now
	Offences int
	Until    time.Time // zero: no ban known
}

// Standing reports what the engine holds about a, as of the newest event
// it has seen: for `sipguard why`.
func (e *Engine) Standing(a netip.Addr) Standing {
	k := e.keyOf(a.Unmap())
	s := Standing{Prefix: e.Prefix(a), Windows: make([]int, len(e.rules)), Offences: e.offencesOf(k, e.now)}
	if tr := e.trackers.get(k); tr != nil {
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
