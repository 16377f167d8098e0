//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Reconcile restores what other processes change in sipguard's table,
// until ctx is done or the backend is closed (it then returns nil):
//
//   - the nftables monitor (its own netlink socket, subscribed to the
//     namespace's nftables notifications) reports each transaction that
//     another process commits; ours are recognised by the netlink port id
//     the kernel stamps on their notifications (NFTA_GEN_PROC_PID holds a
//     thread id, not the process id). A change to the table, a chain, a
//     rule or a set brings the structure back (see NFT) and reloads the
//     bans of any set it recreated, and the allowlist into allow4 and
//     allow6 whenever their elements differ from it (elements others add
//     or delete there are undone); deleted elements of the ban sets
//     (nft delete element, nft flush set) are added again with their
//     remaining time; both take milliseconds;
//   - every 2 s, a structural check reads the table, sets, chains and
//     rules, as a fallback for missed notifications;
//   - every 10 s, or 50 times the duration of the last read when that is
//     longer (about 25 s for 100,000 bans), the ban sets are read back and
//     missing bans are added again (a ban that seems missing is read again
//     after 500 ms before it is restored, see verifyAllLocked); also 1-2 s
//     after a bulk write, during which the monitor is unsubscribed, and
//     after lost notifications (ENOBUFS).
//
// Each restoration increments State.Restored and logs one warning. Bans
// that expired are never restored, nor are bans with less than a second
// left. Elements that others add to sipguard's ban sets are left alone.
func (n *NFT) Reconcile(ctx context.Context) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	events := make(chan monEvent, 64)
	stop := make(chan struct{})
	var mon *monitor
	var monErr chan error
	start := func() error {
		// Under mu, so that Close cannot release the namespace meanwhile.
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return ErrClosed
		}
		m, err := newMonitor(n.nsFD, n.table.Name, n.setIndex, &n.ourPort)
		n.mu.Unlock()
		if err != nil {
			return err
		}
		n.monMu.Lock()
		if n.mon != nil {
			n.monMu.Unlock()
			m.close()
			return errors.New("reconcile is already running")
		}
		n.mon = m
		n.monMu.Unlock()
		mon, monErr = m, make(chan error, 1)
		go func(errc chan error) { errc <- m.run(events, stop) }(monErr)
		return nil
	}
	// release closes the monitor; its reader has returned unless wait.
	release := func(wait bool) {
		n.monMu.Lock()
		n.mon = nil
		n.monMu.Unlock()
		if mon != nil {
			mon.close()
			if wait {
				<-monErr
			}
		}
		mon, monErr = nil, nil
	}
	if err := start(); err != nil {
		return fmt.Errorf("start nftables monitor: %w", err)
	}
	defer func() {
		close(stop)
		release(true)
	}()

	dumpTook := n.check(true, "start")
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	nextVerify := time.Now().Add(max(verifyInterval, 50*dumpTook))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.done:
			return nil
		case ev := <-events:
			switch {
			case ev.lost:
				n.check(true, "missed nftables notifications")
			case len(ev.structural) > 0:
				n.check(false, strings.Join(slices.Compact(ev.structural), ", "))
			}
			if len(ev.deleted) > 0 {
				n.restoreDeleted(ev.deleted)
			}
		case err := <-monErr:
			n.log.Warn().Err(err).Msg("nftables monitor stopped; restarting it")
			release(false)
		case <-n.checkSignal:
			n.monMu.Lock()
			full := n.checkFull
			n.checkFull = false
			n.monMu.Unlock()
			n.check(false, "after a bulk write")
			if full {
				// Read the sets back at a later tick: right after a large
				// insert the kernel is still growing the set's hash table.
				nextVerify = time.Now().Add(time.Second)
			}
		case <-tick.C:
			if mon == nil {
				if err := start(); err != nil {
					n.setErr("restart nftables monitor: " + err.Error())
					continue
				}
				nextVerify = time.Time{}
			}
			full := !time.Now().Before(nextVerify)
			took := n.check(full, "periodic check")
			if full {
				nextVerify = time.Now().Add(max(verifyInterval, 50*took))
			}
		}
	}
}

func (n *NFT) setErr(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if msg != n.lastErr && msg != "" {
		n.log.Warn().Str("error", msg).Msg("nftables check")
	}
	n.lastErr = msg
}

// check brings the structure back and, if full, verifies the elements of
// the ban sets. It returns how long reading the sets took.
func (n *NFT) check(full bool, trigger string) time.Duration {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0
	}
	if !n.sweepLocked(n.now(), time.Minute, true) {
		n.mu.Unlock()
		return 0 // closed
	}
	res, err := n.ensureLocked(true)
	if err == nil {
		n.lastCheck = n.now()
	}
	if len(res.fixes) > 0 {
		n.restored++
		n.log.Warn().Str("restored", strings.Join(res.fixes, ", ")).Int("bans", res.reloaded).Str("trigger", trigger).
			Msg("restored nftables objects changed outside sipguard")
	}
	n.mu.Unlock()
	if err != nil {
		n.setErr(err.Error())
		return 0
	}
	if !full {
		n.setErr("")
		return 0
	}
	took, err := n.verifyElements(trigger)
	if err != nil {
		n.setErr(err.Error())
	} else {
		n.setErr("")
	}
	return took
}

// snapEntry is a ban as it was in memory when a verification started.
type snapEntry struct {
	p   netip.Prefix
	exp time.Time
}

// verifyElements reads the ban sets back (without holding the lock, so
// bans go on meanwhile) and adds again the bans that are missing, or
// refreshes those whose kernel timeout is shorter than memory says. Bans
// changed during the read are left out.
func (n *NFT) verifyElements(trigger string) (time.Duration, error) {
	sets := n.banSets() // fixed at NewNFT: no lock needed
	snap := make([]map[netip.Addr]snapEntry, len(sets))
	n.mu.Lock()
	now := n.now()
	walked := 0
	for i, s := range sets {
		snap[i] = map[netip.Addr]snapEntry{}
		for p, exp := range s.pr.maps()[s.kind/2] {
			if kindOf(p) == s.kind && exp.Sub(now) > restoreMargin {
				snap[i][p.Addr()] = snapEntry{p, exp}
			}
			// Bans made during the walk may be missed: the next
			// verification checks them.
			if !n.breatheLocked(&walked) {
				n.mu.Unlock()
				return 0, nil
			}
		}
	}
	n.mu.Unlock()

	start := time.Now()
	kernel := make([]map[netip.Addr]kelem, len(sets))
	for i, s := range sets {
		name := s.pr.sets[s.kind].Name
		got, err := n.dumpStarts(name)
		if err != nil {
			return time.Since(start), fmt.Errorf("read set %s: %w", name, err)
		}
		kernel[i] = got
	}
	took := time.Since(start)
	// A dump can miss elements while the kernel resizes the set's hash
	// table (see verifyAllLocked): confirm what seems missing with a
	// second read.
	for i, s := range sets {
		missing := false
		for a := range snap[i] {
			if _, ok := kernel[i][a]; !ok {
				missing = true
				break
			}
		}
		if !missing {
			continue
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-n.done:
			return took, nil
		}
		name := s.pr.sets[s.kind].Name
		again, err := n.dumpStarts(name)
		if err != nil {
			return took, fmt.Errorf("read set %s: %w", name, err)
		}
		for a, e := range again {
			kernel[i][a] = e
		}
	}

	// What may need restoring, found without the lock: nearly always
	// nothing. Time only passes, so a ban short now by the snapshot's
	// expiry may be short later; whether it is, and still held as it was,
	// is decided under the lock.
	type suspect struct {
		set     int
		e       snapEntry
		ke      kelem
		present bool
	}
	var suspects []suspect
	now = n.now()
	for i := range sets {
		for a, e := range snap[i] {
			ke, present := kernel[i][a]
			if !present || ke.expires > 0 && ke.expires < e.exp.Sub(now)-5*time.Second {
				suspects = append(suspects, suspect{i, e, ke, present})
			}
		}
	}
	if len(suspects) == 0 {
		return took, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return took, nil
	}
	now = n.now()
	var o elemOps
	missing, short := 0, 0
	for _, c := range suspects {
		s := sets[c.set]
		exp, ok := s.pr.lookup(c.e.p)
		left := exp.Sub(now)
		if !ok || !exp.Equal(c.e.exp) || left < restoreMargin {
			continue
		}
		switch {
		case !c.present:
			missing++
			o.put(s.pr, c.e.p, left)
		case c.ke.expires > 0 && c.ke.expires < left-5*time.Second:
			short++
			o.refresh(s.pr, c.e.p, left)
		}
	}
	if missing+short == 0 {
		return took, nil
	}
	if _, err := n.commitOps(&o, false); err != nil {
		return took, fmt.Errorf("restore bans: %w", err)
	}
	n.restored++
	n.log.Warn().Int("bans", missing).Int("refreshed", short).Str("trigger", trigger).
		Msg("restored bans missing from the kernel")
	return took, nil
}

// restoreDeleted adds again the bans that another process deleted from the
// ban sets, with their remaining time.
func (n *NFT) restoreDeleted(deleted map[string][]netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	now := n.now()
	byStart := map[*profile]map[netip.Addr]netip.Prefix{}
	var o elemOps
	type key struct {
		pr *profile
		p  netip.Prefix
	}
	seen := map[key]bool{}
	count := 0
	var sets []string
	for name, addrs := range deleted {
		ref, ok := n.setIndex[name]
		if !ok {
			continue
		}
		pr, k := ref.pr, ref.kind
		before := count
		for _, a := range addrs {
			p := netip.PrefixFrom(a, a.BitLen())
			if k >= kindNet4 {
				starts := byStart[pr]
				if starts == nil {
					starts = make(map[netip.Addr]netip.Prefix, len(pr.nets))
					for q := range pr.nets {
						starts[q.Addr()] = q
					}
					byStart[pr] = starts
				}
				var ok bool
				if p, ok = starts[a]; !ok {
					continue
				}
			}
			exp, ok := pr.lookup(p)
			if !ok || seen[key{pr, p}] || exp.Sub(now) < restoreMargin {
				continue
			}
			seen[key{pr, p}] = true
			o.put(pr, p, exp.Sub(now))
			count++
		}
		if count > before {
			sets = append(sets, name)
		}
	}
	if count == 0 {
		return
	}
	if _, err := n.commitOps(&o, true); err != nil {
		n.lastErr = "restore deleted bans: " + err.Error()
		n.log.Warn().Err(err).Msg("restore deleted bans")
		return
	}
	n.restored++
	slices.Sort(sets)
	n.log.Warn().Int("bans", count).Str("sets", strings.Join(sets, ",")).
		Msg("restored bans deleted outside sipguard")
}
