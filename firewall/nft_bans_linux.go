//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Ban bans each prefix for its timeout, in its ports profile, in one
// transaction.
func (n *NFT) Ban(ctx context.Context, bans ...Ban) error { return n.Change(ctx, nil, bans...) }

// Change lifts lift and bans bans in one transaction: the lifts go first
// in it, so that a network may take the place of those it overlaps. After
// Close it fails with ErrClosed, whatever it is given, as the Fake does.
func (n *NFT) Change(ctx context.Context, lift []Lift, bans ...Ban) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	type key struct {
		pr *profile
		p  netip.Prefix
	}
	items := make([]banItem, 0, len(bans))
	index := make(map[key]int, len(bans))
	for _, b := range bans {
		p, err := normalizeBan(b)
		if err != nil {
			return err
		}
		pr, err := n.profileOf(b.Ports)
		if err != nil {
			return fmt.Errorf("ban %s: %w", p, err)
		}
		if i, ok := index[key{pr, p}]; ok {
			items[i].timeout = b.Timeout // the last one wins
			continue
		}
		index[key{pr, p}] = len(items)
		items = append(items, banItem{pr, p, b.Timeout})
	}
	lifted := map[*profile]map[netip.Prefix]bool{}
	for _, l := range lift {
		p, err := Normalize(l.Prefix)
		if err != nil {
			return err
		}
		pr, err := n.profileOf(l.Ports)
		if err != nil {
			return fmt.Errorf("unban %s: %w", p, err)
		}
		if lifted[pr] == nil {
			lifted[pr] = map[netip.Prefix]bool{}
		}
		lifted[pr][p] = true
	}
	if len(items) == 0 && len(lifted) == 0 {
		return nil
	}
	now := n.now()
	// The reconciler sweeps every minute without holding up bans
	// (check); this is for a backend without it.
	n.sweepLocked(now, 2*time.Minute, false)
	// Networks may not overlap within a profile: they share its sets; a
	// network lifted in this transaction no longer counts.
	newNets := map[*profile][]netip.Prefix{}
	for _, it := range items {
		if !isHost(it.p) {
			newNets[it.pr] = append(newNets[it.pr], it.p)
		}
	}
	for pr, nets := range newNets {
		if err := newOverlap(pr.nets, lifted[pr], nets, now); err != nil {
			return err
		}
	}

	gone := n.liftOps(lifted, items)
	err := n.commitChange(gone, items)
	if err != nil && errors.Is(err, unix.EEXIST) {
		// A network that expired in memory can live on in the kernel (a
		// jiffy or two: it rounds timeouts up to them; or the clock
		// jumped): try again until it is gone, every overlapPoll, not
		// once after the longest it may live (2 s the core waited).
		var wait time.Duration
		for pr, nets := range newNets {
			wait = max(wait, pr.expiredOverlapWait(nets, now))
		}
		for deadline := time.Now().Add(wait); wait > 0; wait = time.Until(deadline) {
			time.Sleep(min(overlapPoll, wait))
			if err = n.commitChange(gone, items); !errors.Is(err, unix.EEXIST) {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("commit %d bans, %d unbans: %w", len(items), len(gone), err)
	}
	for _, it := range gone {
		delete(it.pr.mapFor(it.p), it.p)
	}
	// The kernel counts each timeout from when the transaction reached
	// its element: counted from its end, the memory never says a network
	// is gone while the kernel holds it, and refuses one overlapping it.
	// Counted from its start, an overlapping ban met the kernel's refusal
	// instead, and waited.
	now = n.now()
	for _, it := range items {
		it.pr.mapFor(it.p)[it.p] = now.Add(kernelTimeout(it.timeout))
	}
	n.log.Debug().Int("bans", len(items)).Int("unbans", len(gone)).Msg("banned")
	return nil
}

// liftOps returns the bans of lifted that are held, to lift, but those
// banned in the same transaction (items): the ban wins, as if the lift
// came first (a delete of the element beside its refresh would abort the
// transaction).
func (n *NFT) liftOps(lifted map[*profile]map[netip.Prefix]bool, items []banItem) []banItem {
	banned := make(map[banItem]bool, len(items))
	for _, it := range items {
		banned[banItem{pr: it.pr, p: it.p}] = true
	}
	var gone []banItem
	for _, pr := range n.profiles {
		for p := range lifted[pr] {
			if _, ok := pr.lookup(p); ok && !banned[banItem{pr: pr, p: p}] {
				gone = append(gone, banItem{pr: pr, p: p})
			}
		}
	}
	return gone
}

// banItem is a normalised ban.
type banItem struct {
	pr      *profile
	p       netip.Prefix
	timeout time.Duration
}

// commitChange sends one transaction lifting gone and adding each ban; a
// ban of a prefix that may be in the kernel already is refreshed (add,
// delete, add), which sets the new timeout on every kernel. The lifts'
// deletes come before every add of a ban (elemOps' passes).
func (n *NFT) commitChange(gone, items []banItem) error {
	o := n.changeOps(gone, items)
	_, err := n.commitOps(o, false)
	return err
}

// changeOps returns the element operations of commitChange.
func (n *NFT) changeOps(gone, items []banItem) *elemOps {
	var o elemOps
	// The networks lifted: addresses never overlap them (they have sets
	// of their own), and a ban of one inside or around them is refreshed
	// as any other.
	lifted := map[*profile][]netip.Prefix{} // sorted by comparePrefix
	set := map[banItem]bool{}
	for _, it := range gone {
		o.lift(it.pr, it.p)
		if !isHost(it.p) {
			lifted[it.pr] = append(lifted[it.pr], it.p)
			set[banItem{pr: it.pr, p: it.p}] = true
		}
	}
	for _, ps := range lifted {
		slices.SortFunc(ps, comparePrefix)
	}
	overlapsLifted := func(it banItem) bool {
		if isHost(it.p) || len(lifted[it.pr]) == 0 {
			return false
		}
		_, around := around(it.p, func(q netip.Prefix) bool { return set[banItem{pr: it.pr, p: q}] })
		_, in := inside(lifted[it.pr], it.p)
		return around || in
	}
	for _, it := range items {
		if overlapsLifted(it) {
			// Taking the place of a network lifted here: not in the
			// kernel, and a refresh's first add would come before the
			// lift's delete, overlapping it.
			o.put(it.pr, it.p, it.timeout)
		} else if _, known := it.pr.lookup(it.p); known || !n.synced {
			o.refresh(it.pr, it.p, it.timeout)
		} else {
			o.put(it.pr, it.p, it.timeout)
		}
	}
	return &o
}

// expiredOverlapWait returns how long to wait for the networks of pr that
// expired in memory less than 2 s ago and overlap nets to be gone from
// the kernel, and forgets them.
func (pr *profile) expiredOverlapWait(nets []netip.Prefix, now time.Time) time.Duration {
	var wait time.Duration
	for q, exp := range pr.nets {
		if exp.After(now) || now.Sub(exp) >= 2*time.Second || !slices.ContainsFunc(nets, q.Overlaps) {
			continue
		}
		wait = max(wait, exp.Add(2*time.Second).Sub(now))
		delete(pr.nets, q)
	}
	return wait
}

// overlapPoll is how often Ban tries again a network the kernel refuses
// beside one that expired in memory.
const overlapPoll = 5 * time.Millisecond

// Unban lifts bans from every profile; prefixes not banned are ignored.
func (n *NFT) Unban(ctx context.Context, prefixes ...netip.Prefix) error {
	return n.unban(ctx, n.profiles, prefixes)
}

// UnbanIn lifts bans from the profile named ports only.
func (n *NFT) UnbanIn(ctx context.Context, ports string, prefixes ...netip.Prefix) error {
	pr, err := n.profileOf(ports)
	if err != nil {
		return fmt.Errorf("unban: %w", err)
	}
	return n.unban(ctx, []*profile{pr}, prefixes)
}

func (n *NFT) unban(ctx context.Context, profiles []*profile, prefixes []netip.Prefix) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	var o elemOps
	var gone []banItem
	seen := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		p, err := Normalize(p)
		if err != nil {
			return err
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		for _, pr := range profiles {
			if _, ok := pr.lookup(p); ok {
				o.lift(pr, p)
				gone = append(gone, banItem{pr: pr, p: p})
			}
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if _, err := n.commitOps(&o, false); err != nil {
		return fmt.Errorf("commit %d unbans: %w", len(gone), err)
	}
	for _, it := range gone {
		delete(it.pr.mapFor(it.p), it.p)
	}
	n.log.Debug().Int("unbans", len(gone)).Msg("unbanned")
	return nil
}

// List returns the bans in force, each with its ports profile; after
// Close, ErrClosed, as every other method but State and Close (what it
// would list is no longer kept up).
func (n *NFT) List(ctx context.Context) ([]Entry, error) {
	if err := n.lock(ctx); err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	now := n.now()
	var out []Entry
	for _, pr := range n.profiles {
		for _, m := range pr.maps() {
			out = append(out, entries(m, pr.key, now)...)
		}
	}
	return out, nil
}

// Sync makes the kernel hold exactly the unexpired entries, with their
// remaining time, in one transaction (flush the ban sets of every profile
// and add every element), so that there is no moment without protection;
// then it reads the sets back and returns an error if the kernel holds
// other elements than those loaded. Overlapping networks of a profile
// keep the wider one; the others are skipped and reported in the error
// (ErrOverlap), after the rest is loaded; so are entries of a profile
// the backend does not have (ErrUnknownPorts). Sync holds the backend's
// lock throughout: for 100,000 bans, about 0.4 s of loading and 0.6 to
// 1.3 s of verification on a 2-core VM.
func (n *NFT) Sync(ctx context.Context, es []Entry) error { return n.load(ctx, es, true) }

func (n *NFT) load(ctx context.Context, es []Entry, verify bool) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	now := n.now()
	type maps struct{ bans, nets map[netip.Prefix]time.Time }
	next := make([]maps, len(n.profiles))
	for i := range next {
		next[i] = maps{map[netip.Prefix]time.Time{}, map[netip.Prefix]time.Time{}}
	}
	var errs []error
	unknown := map[string]int{}
	total := 0
	for _, e := range es {
		p, err := Normalize(e.Prefix)
		if err != nil {
			return err
		}
		if e.Expires.Sub(now) < time.Millisecond {
			continue
		}
		pr, ok := n.byKey[e.Ports]
		if !ok {
			unknown[e.Ports]++
			continue
		}
		exp := e.Expires
		if exp.Sub(now) > MaxTimeout {
			exp = now.Add(MaxTimeout)
		}
		m := next[pr.idx].bans
		if !isHost(p) {
			m = next[pr.idx].nets
		}
		if old, ok := m[p]; !ok || exp.After(old) {
			m[p] = exp
		}
	}
	for key, count := range unknown {
		errs = append(errs, fmt.Errorf("%d bans skipped: %w %q", count, ErrUnknownPorts, key))
	}
	for _, m := range next {
		errs = append(errs, dropOverlaps(m.nets)...)
		total += len(m.bans) + len(m.nets)
	}

	if _, err := n.ensureLocked(false); err != nil {
		return err
	}
	start := time.Now()
	var o elemOps
	for i, m := range next {
		for _, mm := range []map[netip.Prefix]time.Time{m.bans, m.nets} {
			for p, exp := range mm {
				o.put(n.profiles[i], p, exp.Sub(now))
			}
		}
	}
	// Flushed in the transaction that adds the bans (the first, if the
	// send buffer splits it): there is no moment without protection.
	for _, pr := range n.profiles {
		for _, s := range pr.sets {
			n.conn.FlushSet(s)
		}
	}
	parts, err := n.commitOps(&o, true)
	if err != nil {
		return fmt.Errorf("load %d bans: %w", total, err)
	}
	if parts > 1 {
		n.log.Warn().Int("transactions", parts).Msg("bans loaded in several transactions: the send buffer is too small for one")
	}
	// The kernel counts each timeout from when the transaction reached
	// its element, up to its length after now: the networks' memory
	// counts from its end (Ban).
	lag := n.now().Sub(now)
	for i, pr := range n.profiles {
		for p, exp := range next[i].nets {
			next[i].nets[p] = exp.Add(lag)
		}
		pr.bans, pr.nets = next[i].bans, next[i].nets
	}
	n.synced = true
	load := time.Since(start)
	if !verify {
		n.lastLoad = load
		n.log.Info().Int("bans", total).Float64("load_seconds", load.Seconds()).Msg("loaded bans")
		return errors.Join(errs...)
	}

	start = time.Now()
	verr := n.verifyAllLocked()
	n.lastLoad, n.lastVerify = load, time.Since(start)
	n.log.Info().Int("bans", total).Float64("load_seconds", load.Seconds()).
		Float64("verify_seconds", n.lastVerify.Seconds()).Msg("loaded bans")
	return errors.Join(append([]error{verr}, errs...)...)
}

// Load is Sync without its read-back: the bans are in force when it
// returns (the kernel committed them in one transaction); Verify then
// checks the kernel without holding up bans meanwhile.
func (n *NFT) Load(ctx context.Context, es []Entry) error { return n.load(ctx, es, false) }

// sweepLocked forgets bans expired for longer than sweepGrace, if the
// last sweep is older than every. It walks every ban held; with breathe,
// it lets a ban waiting for the lock in every walkChunk bans (breathe),
// and reports false if the backend was closed meanwhile.
func (n *NFT) sweepLocked(now time.Time, every time.Duration, breathe bool) bool {
	if now.Sub(n.lastSweep) < every {
		return true
	}
	n.lastSweep = now
	walked := 0
	for _, pr := range n.profiles {
		for _, m := range pr.maps() {
			for p, exp := range m {
				if now.Sub(exp) > sweepGrace {
					delete(m, p)
				}
				if breathe && !n.breatheLocked(&walked) {
					return false
				}
			}
		}
	}
	return true
}

// walkChunk is how many bans a walk of all of them (the sweep, the
// read-back's snapshot) handles while it holds the lock: with 100,000
// bans held, a walk under the lock made the bans that came meanwhile wait
// 40-100 ms (TestPeerFloodLocalLatencyKernel).
const walkChunk = 2048

// breatheLocked counts a step of a walk under the lock, and every
// walkChunk steps releases the lock and takes it back, so that a ban
// waiting for it goes first. It reports false if the backend was closed
// meanwhile. Go maps may change between the steps of a range over them:
// the walk may miss or see the bans added meanwhile, which its callers
// allow for.
func (n *NFT) breatheLocked(walked *int) bool {
	if *walked++; *walked%walkChunk != 0 {
		return true
	}
	n.mu.Unlock()
	runtime.Gosched() // the waiter, woken by Unlock, runs first
	n.mu.Lock()
	return !n.closed
}
