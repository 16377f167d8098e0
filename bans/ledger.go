package bans

import (
	"net/netip"
	"slices"
	"time"
)

// Ledger holds the bans in force, keyed by target, and the unbans
// remembered for the cluster. It is not safe for concurrent use: one
// goroutine (the daemon's core) owns it.
//
// Addresses and networks live apart, as in the kernel: an address ban
// inside a banned network is its own element, while network bans may not
// overlap (nftables interval sets refuse it), so a network inside a wider
// network ban is not needed and a wider one replaces the narrower ones.
type Ledger struct {
	recs  map[netip.Prefix]*Record
	nets  map[netip.Prefix]*Record // the network bans of recs
	lens4 [33]int                  // network bans per prefix length
	lens6 [129]int
	lifts map[netip.Prefix]Lift
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{recs: map[netip.Prefix]*Record{}, nets: map[netip.Prefix]*Record{}, lifts: map[netip.Prefix]Lift{}}
}

// Len returns the number of bans held, ended or not.
func (l *Ledger) Len() int { return len(l.recs) }

// Get returns the ban of exactly p.
func (l *Ledger) Get(p netip.Prefix) (*Record, bool) {
	r, ok := l.recs[p]
	return r, ok
}

// All calls f for every ban held, in no order, until f returns false.
func (l *Ledger) All(f func(*Record) bool) {
	for _, r := range l.recs {
		if !f(r) {
			return
		}
	}
}

// Records returns the bans held, in no order: a snapshot to save or list.
func (l *Ledger) Records() []*Record {
	out := make([]*Record, 0, len(l.recs))
	for _, r := range l.recs {
		out = append(out, r)
	}
	return out
}

// Put holds r, replacing the record of its target if any, and returns the
// record replaced.
func (l *Ledger) Put(r *Record) *Record {
	old := l.recs[r.Target]
	l.recs[r.Target] = r
	if !IsHost(r.Target) {
		if old == nil {
			l.lens(r.Target)[r.Target.Bits()]++
		}
		l.nets[r.Target] = r
	}
	return old
}

// Remove forgets the ban of p and returns it (nil if none).
func (l *Ledger) Remove(p netip.Prefix) *Record {
	r, ok := l.recs[p]
	if !ok {
		return nil
	}
	delete(l.recs, p)
	if !IsHost(p) {
		delete(l.nets, p)
		l.lens(p)[p.Bits()]--
	}
	return r
}

func (l *Ledger) lens(p netip.Prefix) []int {
	if p.Addr().Is4() {
		return l.lens4[:]
	}
	return l.lens6[:]
}

// Covering returns a network ban in force at now that strictly contains
// the network p: a ban of p is then not needed (and the kernel would
// refuse it as overlapping). Addresses are never covered: they live in
// their own sets. It takes one lookup per prefix length in use.
func (l *Ledger) Covering(p netip.Prefix, now time.Time) (*Record, bool) {
	if IsHost(p) {
		return nil, false
	}
	lens := l.lens(p)
	for b := 0; b < p.Bits(); b++ {
		if lens[b] == 0 {
			continue
		}
		q, _ := p.Addr().Prefix(b)
		if r, ok := l.nets[q]; ok && r.InForce(now) {
			return r, true
		}
	}
	return nil, false
}

// Inside returns the network bans strictly inside the network p, which a
// ban of p replaces.
func (l *Ledger) Inside(p netip.Prefix) []netip.Prefix {
	if IsHost(p) {
		return nil
	}
	var out []netip.Prefix
	for q := range l.nets {
		if q.Bits() > p.Bits() && p.Contains(q.Addr()) {
			out = append(out, q)
		}
	}
	return out
}

// Overlapping returns the bans overlapping target that match keep (nil:
// all), sorted: what an unban of target lifts.
func (l *Ledger) Overlapping(target netip.Prefix, keep func(*Record) bool) []netip.Prefix {
	var out []netip.Prefix
	for p, r := range l.recs {
		if p.Overlaps(target) && (keep == nil || keep(r)) {
			out = append(out, p)
		}
	}
	sortPrefixes(out)
	return out
}

// Ended returns the bans that ended at or before now: the kernel has
// lifted them already.
func (l *Ledger) Ended(now time.Time) []netip.Prefix {
	var out []netip.Prefix
	for p, r := range l.recs {
		if !r.InForce(now) {
			out = append(out, p)
		}
	}
	return out
}

// Plan is what putting new bans in force takes.
type Plan struct {
	// Enforce is the new bans that are needed, in their order.
	Enforce []*Record
	// Replace is the network bans in force inside a network of Enforce:
	// lift them first, the wider ban takes their place.
	Replace []netip.Prefix
	// Covered is the new bans a wider ban in force makes needless.
	Covered []*Record
}

// Plan works out what putting recs in force takes, at now. It changes
// nothing: once the firewall has done it, Remove the replaced bans and Put
// the enforced ones.
func (l *Ledger) Plan(recs []*Record, now time.Time) Plan {
	var p Plan
	replace := map[netip.Prefix]bool{}
	for _, r := range recs {
		if _, ok := l.Covering(r.Target, now); ok {
			p.Covered = append(p.Covered, r)
			continue
		}
		p.Enforce = append(p.Enforce, r)
		for _, q := range l.Inside(r.Target) {
			if !replace[q] {
				replace[q] = true
				p.Replace = append(p.Replace, q)
			}
		}
	}
	sortPrefixes(p.Replace)
	return p
}

// Remember records an unban of target, replacing the one remembered
// before: other nodes' bans of target made at or before u.At are not
// enforced again until u.Until.
func (l *Ledger) Remember(target netip.Prefix, u Lift) { l.lifts[target] = u }

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
