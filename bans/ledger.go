package bans

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/btree"
)

// Ledger holds the bans in force, keyed by target, and the unbans
// remembered for the cluster. It is not safe for concurrent use: one
// goroutine (the daemon's core) owns it.
//
// A target may be banned by several origins at once (a rule here, a peer
// of the cluster, a feed): the ledger keeps each origin's record, and the
// ban in force is their union, lasting as long as the longest. A record
// of one origin never replaces or lifts another's: a peer that bans an
// address this node bans, and then lifts it, lifts only its own part.
//
// Addresses and networks live apart, as in the kernel: an address ban
// inside a banned network is its own element, while network bans may not
// overlap (nftables interval sets refuse it), so a network inside a wider
// network ban is not needed and a wider one replaces the narrower ones.
// Networks are also kept in order, so that finding those inside a network
// takes O(log n), whatever the number of bans (a flood of them included).
// So are the records, by expiry: finding those that ended takes O(log n)
// each, and a copy of them all to save (Copy) takes O(1), however many
// the cluster brought.
type Ledger struct {
	bans  map[netip.Prefix]*ban
	nets  *btree.BTreeG[netip.Prefix] // the network targets, by address then length
	recs  *btree.BTreeG[*Record]      // every record, by expiry (expiryLess)
	lens4 [33]int                     // network targets per prefix length
	lens6 [129]int
	lifts map[netip.Prefix]Lift
	usage map[Origin]*Usage
	// holders are the network targets that have held network bans inside
	// them (a superset, pruned by CoverEnd), and heldChanged says one was
	// added or renewed since TakeHoldChange: when one ends, the kernel
	// ends it and the bans inside it must go in at once (CoverEnd).
	holders     map[netip.Prefix]struct{}
	heldChanged bool
}

// Usage is what one origin holds in the ledger: how many records, how
// many of them networks, and the address space they cover (IPv4
// addresses; IPv6 in /64s). The daemon bounds each peer of the cluster
// by it.
type Usage struct {
	Records  int
	Networks int
	Space4   uint64 // IPv4 addresses
	Space6   uint64 // IPv6 /64 networks (an address or a longer prefix counts as one)
}

// Space returns the address space p covers, as Usage counts it.
func Space(p netip.Prefix) (v4, v6 uint64) {
	if p.Addr().Is4() {
		return 1 << (32 - p.Bits()), 0
	}
	if p.Bits() >= 64 {
		return 0, 1
	}
	return 0, 1 << min(63, 64-p.Bits())
}

func (u *Usage) add(p netip.Prefix, sign int) {
	v4, v6 := Space(p)
	u.Records += sign
	if !IsHost(p) {
		u.Networks += sign
	}
	if sign > 0 {
		u.Space4, u.Space6 = u.Space4+v4, u.Space6+v6
	} else {
		u.Space4, u.Space6 = u.Space4-v4, u.Space6-v6
	}
}

// Usage returns what origin o holds now.
func (l *Ledger) Usage(o Origin) Usage {
	if u := l.usage[o]; u != nil {
		return *u
	}
	return Usage{}
}

func (l *Ledger) count(r *Record, sign int) {
	u := l.usage[r.Origin]
	if u == nil {
		u = &Usage{}
		l.usage[r.Origin] = u
	}
	u.add(r.Target, sign)
	if u.Records == 0 {
		delete(l.usage, r.Origin)
	}
}

// ban is what is held for one target: one record per origin, at most.
type ban struct {
	recs []*Record
}

// top returns the record lasting longest.
func (b *ban) top() *Record {
	t := b.recs[0]
	for _, r := range b.recs[1:] {
		if r.Expires.After(t.Expires) {
			t = r
		}
	}
	return t
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{
		bans:    map[netip.Prefix]*ban{},
		nets:    btree.NewG(16, prefixLess),
		recs:    btree.NewG(16, expiryLess),
		lifts:   map[netip.Prefix]Lift{},
		usage:   map[Origin]*Usage{},
		holders: map[netip.Prefix]struct{}{},
	}
}

func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

// expiryLess orders records by expiry, then by what makes a record
// unique in the ledger (target, origin, ports profile).
func expiryLess(a, b *Record) bool {
	if c := a.Expires.Compare(b.Expires); c != 0 {
		return c < 0
	}
	if a.Target != b.Target {
		return prefixLess(a.Target, b.Target)
	}
	if a.Origin != b.Origin {
		if a.Origin.Kind != b.Origin.Kind {
			return a.Origin.Kind < b.Origin.Kind
		}
		return a.Origin.Name < b.Origin.Name
	}
	return a.Ports < b.Ports
}

// Len returns the number of targets held, ended or not.
func (l *Ledger) Len() int { return len(l.bans) }

// Get returns the record of target p that lasts longest: the ban in force
// is until its Expires.
func (l *Ledger) Get(p netip.Prefix) (*Record, bool) {
	b, ok := l.bans[p]
	if !ok {
		return nil, false
	}
	return b.top(), true
}

// Of returns the record of target p made by origin o.
func (l *Ledger) Of(p netip.Prefix, o Origin) (*Record, bool) {
	if b, ok := l.bans[p]; ok {
		for _, r := range b.recs {
			if r.Origin == o {
				return r, true
			}
		}
	}
	return nil, false
}

// All calls f for every record held (each origin's of each target), in
// no order, until f returns false.
func (l *Ledger) All(f func(*Record) bool) {
	for _, b := range l.bans {
		for _, r := range b.recs {
			if !f(r) {
				return
			}
		}
	}
}

// Targets calls f for each target held with the record lasting longest,
// in no order, until f returns false.
func (l *Ledger) Targets(f func(*Record) bool) {
	for _, b := range l.bans {
		if !f(b.top()) {
			return
		}
	}
}

// Records returns every record held, by expiry.
func (l *Ledger) Records() []*Record { return l.Copy().Records() }

// Copy returns the records held now, in O(1) whatever their number: the
// ledger's tree of records is shared copy-on-write, and records are never
// changed once held. Unlike the ledger, the copy may be read on another
// goroutine (the saver's) while the ledger changes.
func (l *Ledger) Copy() RecordSet { return RecordSet{l.recs.Clone()} }

// RecordSet is the records of a ledger at one moment (Ledger.Copy).
type RecordSet struct{ t *btree.BTreeG[*Record] }

// Records returns them, by expiry.
func (s RecordSet) Records() []*Record {
	if s.t == nil {
		return nil
	}
	out := make([]*Record, 0, s.t.Len())
	s.t.Ascend(func(r *Record) bool { out = append(out, r); return true })
	return out
}

// Put holds r as its origin's record of its target in its ports profile,
// replacing the record that origin had there, and returns that one (nil if
// none). The target's ban lasts until the longest of its records: see Get.
func (l *Ledger) Put(r *Record) *Record {
	b, ok := l.bans[r.Target]
	if !ok {
		b = &ban{}
		l.bans[r.Target] = b
		if !IsHost(r.Target) {
			l.nets.ReplaceOrInsert(r.Target)
			l.lens(r.Target)[r.Target.Bits()]++
		}
	}
	if !IsHost(r.Target) {
		l.noteHolders(r.Target)
	}
	for i, old := range b.recs {
		if old.Origin == r.Origin && old.Ports == r.Ports {
			b.recs[i] = r
			l.recs.Delete(old)
			l.recs.ReplaceOrInsert(r)
			return old
		}
	}
	b.recs = append(b.recs, r)
	l.recs.ReplaceOrInsert(r)
	l.count(r, +1)
	return nil
}

// noteHolders notes the holders of network p, which is put: p, when
// networks lie inside it, and every network held around p.
func (l *Ledger) noteHolders(p netip.Prefix) {
	if _, ok := l.holders[p]; ok || l.hasInside(p) {
		l.holders[p] = struct{}{}
		l.heldChanged = true
	}
	lens := l.lens(p)
	for bits := 0; bits < p.Bits(); bits++ {
		if lens[bits] == 0 {
			continue
		}
		if q, _ := p.Addr().Prefix(bits); l.bans[q] != nil {
			l.holders[q] = struct{}{}
			l.heldChanged = true
		}
	}
}

// hasInside reports whether a network target lies strictly inside p.
func (l *Ledger) hasInside(p netip.Prefix) bool {
	found := false
	l.nets.AscendGreaterOrEqual(netip.PrefixFrom(p.Addr(), 0), func(q netip.Prefix) bool {
		if !p.Contains(q.Addr()) {
			return false
		}
		found = q.Bits() > p.Bits()
		return !found
	})
	return found
}

// CoverEnd returns the next time a record of a network ban holding
// others ends (zero: none), now when one ended and is still held (the
// daemon has not yet looked at what ended). The kernel ends such a ban by
// itself, and the bans inside it are then to go in at once: without
// this, the daemon's tick after put them in, up to a second late. The
// time may come early (another record of the same target lasts longer,
// or the bans inside it went before it): a look at what ended then finds
// nothing. It takes a look at each holder (the networks that held others
// and are still held, a few), without a search of the networks: the
// daemon asks after every change to one.
func (l *Ledger) CoverEnd(now time.Time) time.Time {
	var first time.Time
	for p := range l.holders {
		b, ok := l.bans[p]
		if !ok {
			delete(l.holders, p)
			continue
		}
		next := now // every record ended: due
		for _, r := range b.recs {
			if r.InForce(now) && (next.Equal(now) || r.Expires.Before(next)) {
				next = r.Expires
			}
		}
		if first.IsZero() || next.Before(first) {
			first = next
		}
	}
	return first
}

// TakeHoldChange reports whether a network ban holding others was put
// since the last call (CoverEnd may then be sooner), and resets it.
func (l *Ledger) TakeHoldChange() bool {
	c := l.heldChanged
	l.heldChanged = false
	return c
}

// Remove forgets every record of target p and returns them, the one that
// lasted longest first (none if p was not held).
func (l *Ledger) Remove(p netip.Prefix) []*Record {
	b, ok := l.bans[p]
	if !ok {
		return nil
	}
	l.drop(p)
	for _, r := range b.recs {
		l.count(r, -1)
		l.recs.Delete(r)
	}
	out := []*Record{b.top()}
	for _, r := range b.recs {
		if r != out[0] {
			out = append(out, r)
		}
	}
	return out
}

// RecordsOf returns the records of target p, one per origin.
func (l *Ledger) RecordsOf(p netip.Prefix) []*Record {
	if b, ok := l.bans[p]; ok {
		return slices.Clone(b.recs)
	}
	return nil
}

// Until returns when the ban of target p ends, as of now: the expiry of
// its record in force that lasts longest (zero when none is in force).
func (l *Ledger) Until(p netip.Prefix, now time.Time) time.Time {
	if b, ok := l.bans[p]; ok {
		if r := b.top(); r.InForce(now) {
			return r.Expires
		}
	}
	return time.Time{}
}

// UntilIn is Until in one ports profile: when the firewall's ban of
// target p in that profile ends.
func (l *Ledger) UntilIn(p netip.Prefix, ports string, now time.Time) time.Time {
	if r, ok := l.GetIn(p, ports); ok && r.InForce(now) {
		return r.Expires
	}
	return time.Time{}
}

// GetIn is Get in one ports profile: the record of target p of that
// profile that lasts longest.
func (l *Ledger) GetIn(p netip.Prefix, ports string) (*Record, bool) {
	var top *Record
	if b, ok := l.bans[p]; ok {
		for _, r := range b.recs {
			if r.Ports == ports && (top == nil || r.Expires.After(top.Expires)) {
				top = r
			}
		}
	}
	return top, top != nil
}

// Without returns the record of target p that would last longest once
// the records matching drop are gone (nil if none would be left): what
// the kernel must hold after a lift of some origins.
func (l *Ledger) Without(p netip.Prefix, drop func(*Record) bool) *Record {
	var top *Record
	if b, ok := l.bans[p]; ok {
		for _, r := range b.recs {
			if !drop(r) && (top == nil || r.Expires.After(top.Expires)) {
				top = r
			}
		}
	}
	return top
}

// RemoveIf forgets the records of target p matching drop and returns
// them.
func (l *Ledger) RemoveIf(p netip.Prefix, drop func(*Record) bool) []*Record {
	b, ok := l.bans[p]
	if !ok {
		return nil
	}
	var gone []*Record
	b.recs = slices.DeleteFunc(b.recs, func(r *Record) bool {
		if drop(r) {
			gone = append(gone, r)
			l.count(r, -1)
			l.recs.Delete(r)
			return true
		}
		return false
	})
	if len(b.recs) == 0 {
		l.drop(p)
	}
	return gone
}

// RemoveOrigin forgets the record of target p made by origin o, and
// returns it (nil if none) and the record that now lasts longest (nil
// when none is left: the target is no longer banned).
func (l *Ledger) RemoveOrigin(p netip.Prefix, o Origin) (gone, rest *Record) {
	if g := l.RemoveIf(p, func(r *Record) bool { return r.Origin == o }); len(g) > 0 {
		gone = g[0]
	}
	rest, _ = l.Get(p)
	return gone, rest
}

func (l *Ledger) drop(p netip.Prefix) {
	delete(l.bans, p)
	if !IsHost(p) {
		l.nets.Delete(p)
		l.lens(p)[p.Bits()]--
	}
}

func (l *Ledger) lens(p netip.Prefix) []int {
	if p.Addr().Is4() {
		return l.lens4[:]
	}
	return l.lens6[:]
}

// Covering returns a network ban in force at now, in the ports profile
// ports, that strictly contains the network p: a ban of p in that profile
// is then not needed (and the kernel would refuse it as overlapping).
// Addresses are never covered: they live in their own sets; nor is a ban
// of another profile, which drops other ports. It takes one lookup per
// prefix length in use.
func (l *Ledger) Covering(p netip.Prefix, ports string, now time.Time) (*Record, bool) {
	return l.CoveringBut(p, ports, now, nil)
}

// CoveringBut is Covering without the records matching gone (nil: none):
// what covers p once those are lifted.
func (l *Ledger) CoveringBut(p netip.Prefix, ports string, now time.Time, gone func(*Record) bool) (*Record, bool) {
	if IsHost(p) {
		return nil, false
	}
	lens := l.lens(p)
	for bits := 0; bits < p.Bits(); bits++ {
		if lens[bits] == 0 {
			continue
		}
		q, _ := p.Addr().Prefix(bits)
		if b, ok := l.bans[q]; ok {
			for _, r := range b.recs {
				if r.Ports == ports && r.InForce(now) && (gone == nil || !gone(r)) {
					return r, true
				}
			}
		}
	}
	return nil, false
}

// Inside returns the network bans strictly inside the network p, which a
// ban of p replaces: O(log n) plus the number found.
func (l *Ledger) Inside(p netip.Prefix) []netip.Prefix {
	if IsHost(p) {
		return nil
	}
	var out []netip.Prefix
	l.nets.AscendGreaterOrEqual(netip.PrefixFrom(p.Addr(), 0), func(q netip.Prefix) bool {
		if !p.Contains(q.Addr()) {
			return false // past p's addresses
		}
		if q.Bits() > p.Bits() {
			out = append(out, q)
		}
		return true
	})
	return out
}

// Overlapping returns the targets overlapping target that hold a record
// matching keep (nil: any), sorted: what an unban of target lifts.
func (l *Ledger) Overlapping(target netip.Prefix, keep func(*Record) bool) []netip.Prefix {
	var out []netip.Prefix
	for p, b := range l.bans {
		if !p.Overlaps(target) {
			continue
		}
		if keep == nil || slices.ContainsFunc(b.recs, keep) {
			out = append(out, p)
		}
	}
	sortPrefixes(out)
	return out
}

// Ended returns the records that ended at or before now. A target whose
// every record ended has been lifted by the kernel already; one with a
// record still in force is banned until then (the kernel's timeout is
// the longest of them). It takes O(log n) per record ended, not a look
// at every record.
func (l *Ledger) Ended(now time.Time) []*Record {
	var out []*Record
	l.recs.Ascend(func(r *Record) bool {
		if r.InForce(now) {
			return false
		}
		out = append(out, r)
		return true
	})
	return out
}

// Plan is what putting new bans in force takes.
type Plan struct {
	// Enforce is the new bans that are needed, in their order.
	Enforce []*Record
	// Replace is the network bans in the kernel inside a network of
	// Enforce, in its ports profile: take them out of it first, the wider
	// ban takes their place there (their records stay, covered).
	Replace []Replaced
	// Covered is the new bans that a wider ban in force, or a wider one
	// among the new, holds: kept out of the kernel while it is in force.
	Covered []*Record
}

// Replaced is a network ban that a wider one replaces in its ports
// profile.
type Replaced struct {
	Target netip.Prefix
	Ports  string
}

// Plan works out what putting recs in force takes, at now, each in its
// ports profile. It changes nothing: once the firewall has done it, Put
// the enforced ones and the covered ones; the replaced bans' records stay,
// covered by the wider one (out of the kernel until it goes).
func (l *Ledger) Plan(recs []*Record, now time.Time) Plan {
	var p Plan
	replace := map[Replaced]bool{}
	// The networks of the batch itself: one inside another of them, in
	// the same profile, is covered by it as by a ban in force (the kernel
	// would refuse the later of the two, whichever it is).
	nets := map[Replaced]bool{}
	for _, r := range recs {
		if !IsHost(r.Target) {
			nets[Replaced{r.Target, r.Ports}] = true
		}
	}
	for _, r := range recs {
		if _, ok := l.Covering(r.Target, r.Ports, now); ok || len(nets) > 1 && insideOf(nets, r) {
			p.Covered = append(p.Covered, r)
			continue
		}
		p.Enforce = append(p.Enforce, r)
		for _, q := range l.Inside(r.Target) {
			if _, covered := l.Covering(q, r.Ports, now); covered {
				continue // not in the kernel: it stays, covered (a ban of r's target renewed)
			}
			rq := Replaced{q, r.Ports}
			if !replace[rq] && slices.ContainsFunc(l.bans[q].recs, func(x *Record) bool { return x.Ports == r.Ports }) {
				replace[rq] = true
				p.Replace = append(p.Replace, rq)
			}
		}
	}
	slices.SortFunc(p.Replace, func(a, b Replaced) int {
		if c := a.Target.Addr().Compare(b.Target.Addr()); c != 0 {
			return c
		}
		if c := a.Target.Bits() - b.Target.Bits(); c != 0 {
			return c
		}
		return strings.Compare(a.Ports, b.Ports)
	})
	return p
}

// insideOf reports whether r's target is a network strictly inside one of
// nets in its ports profile.
func insideOf(nets map[Replaced]bool, r *Record) bool {
	if IsHost(r.Target) {
		return false
	}
	for bits := 0; bits < r.Target.Bits(); bits++ {
		q, _ := r.Target.Addr().Prefix(bits)
		if nets[Replaced{q, r.Ports}] {
			return true
		}
	}
	return false
}

// Remember records an unban of target: other nodes' bans of target made
// at or before u.At are not enforced again until u.Until. An unban of
// target remembered before is extended (the later of each time), never
// shortened, and stays its first origin's.
func (l *Ledger) Remember(target netip.Prefix, u Lift) {
	if old, ok := l.lifts[target]; ok {
		u.At, u.Until, u.Origin = latest(old.At, u.At), latest(old.Until, u.Until), old.Origin
	}
	l.lifts[target] = u
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Remembered returns the unban remembered for exactly target.
func (l *Ledger) Remembered(target netip.Prefix) (Lift, bool) {
	u, ok := l.lifts[target]
	return u, ok
}

// Lifted reports whether an unban remembered covers a ban of target
// that began at since.
func (l *Ledger) Lifted(target netip.Prefix, since time.Time) bool {
	for t, u := range l.lifts {
		if t.Overlaps(target) && !since.After(u.At) {
			return true
		}
	}
	return false
}

// Lifts returns the unbans remembered (a copy, to save).
func (l *Ledger) Lifts() map[netip.Prefix]Lift {
	out := make(map[netip.Prefix]Lift, len(l.lifts))
	for t, u := range l.lifts {
		out[t] = u
	}
	return out
}

// NumLifts returns the number of unbans remembered.
func (l *Ledger) NumLifts() int { return len(l.lifts) }

// LiftsOf returns the number of unbans remembered of origin's.
func (l *Ledger) LiftsOf(origin string) int {
	n := 0
	for _, u := range l.lifts {
		if u.Origin == origin {
			n++
		}
	}
	return n
}

// Forget drops the unbans remembered that no longer matter at now.
func (l *Ledger) Forget(now time.Time) {
	for t, u := range l.lifts {
		if !u.Until.After(now) {
			delete(l.lifts, t)
		}
	}
}

// sortPrefixes sorts by family, address, then length: the order people
// read lists in.
func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}
