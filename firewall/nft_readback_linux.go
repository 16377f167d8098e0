//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Verify reads the ban sets back, restores any ban missing from the
// kernel, and reports what it did. Bans go on while it reads.
func (n *NFT) Verify(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	n.mu.Lock()
	before := n.restored
	n.mu.Unlock()
	_, err := n.verifyElements("load")
	n.mu.Lock()
	n.lastVerify = time.Since(start)
	repaired := n.restored != before
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if !repaired {
		n.log.Info().Float64("verify_seconds", time.Since(start).Seconds()).Msg("bans read back from the kernel: all present")
	}
	return nil
}

// verifyAllLocked checks that the kernel's sets hold exactly the bans in
// memory (bans expiring during the check may be missing). A set dump runs
// in many parts, each restarting the kernel's walk of the set and skipping
// what was already sent: while the kernel grows a set's hash table (in the
// background, for a few hundred milliseconds after a large insert) a dump
// can miss elements. So a set that seems to lack elements is read again,
// up to three times, 100 ms apart.
func (n *NFT) verifyAllLocked() error {
	var errs []error
	for _, pr := range n.profiles {
		for k, s := range pr.sets {
			var err error
			for i := range 4 {
				if i > 0 {
					time.Sleep(100 * time.Millisecond)
				}
				if err = n.verifySetLocked(pr, setKind(k)); err == nil {
					break
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("verify %s: %w", s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (n *NFT) verifySetLocked(pr *profile, k setKind) error {
	got, err := n.dumpStarts(pr.sets[k].Name)
	if err != nil {
		return err
	}
	now := n.now()
	want, missing := 0, 0
	for _, m := range pr.maps() {
		for p, exp := range m {
			if kindOf(p) != k {
				continue
			}
			_, ok := got[p.Addr()]
			delete(got, p.Addr()) // the kernel may outlive memory by a commit
			if !exp.After(now) {
				continue
			}
			want++
			if !ok && exp.Sub(now) > restoreMargin {
				missing++
			}
		}
	}
	if missing > 0 || len(got) > 0 {
		return fmt.Errorf("kernel holds %d unexpected elements and lacks %d of %d", len(got), missing, want)
	}
	return nil
}

// dumpSet reads a ban set's elements. An interrupted dump is retried once.
func (n *NFT) dumpSet(set string) (els []kelem, err error) {
	for range 2 {
		els, err = n.dump.elements(n.table.Name, set)
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	return els, err
}

// dumpStarts reads a ban set's elements, keyed by address (network start),
// skipping interval ends.
func (n *NFT) dumpStarts(set string) (map[netip.Addr]kelem, error) {
	els, err := n.dumpSet(set)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]kelem, len(els))
	for _, e := range els {
		if !e.end {
			out[e.addr] = e
		}
	}
	return out, nil
}

// Kernel reads the bans the kernel holds now, in every profile, with the
// time each has left (a ban without a timeout gets MaxTimeout). The daemon adopts them at
// start: a ban made just before a crash is in the kernel even if it had
// not been saved yet, and must not be flushed away by the restore.
func (n *NFT) Kernel(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := n.now()
	var out []Entry
	for _, s := range n.banSets() {
		pr, k, name := s.pr, s.kind, s.pr.sets[s.kind].Name
		els, err := n.dumpSet(name)
		if err != nil {
			return nil, fmt.Errorf("read set %s: %w", name, err)
		}
		left := func(e kelem) time.Time {
			if e.expires <= 0 {
				return now.Add(MaxTimeout)
			}
			return now.Add(e.expires)
		}
		if k == kindBan4 || k == kindBan6 {
			for _, e := range els {
				if !e.end {
					out = append(out, Entry{Prefix: netip.PrefixFrom(e.addr, e.addr.BitLen()), Expires: left(e), Ports: pr.key})
				}
			}
			continue
		}
		// Interval sets: a network is a start element and the end element
		// at the first address after it (none for a network reaching the
		// top of the address space).
		slices.SortFunc(els, func(a, b kelem) int { return a.addr.Compare(b.addr) })
		for i, e := range els {
			if e.end {
				continue
			}
			var next netip.Addr
			if i+1 < len(els) && els[i+1].end {
				next = els[i+1].addr
			}
			if p, ok := networkOf(e.addr, next); ok {
				out = append(out, Entry{Prefix: p, Expires: left(e), Ports: pr.key})
			}
		}
	}
	return out, nil
}

// networkOf returns the prefix covering [start, next), or up to the top of
// the address space when next is not valid.
func networkOf(start, next netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		after := lastAddr(p).Next()
		if next.IsValid() && after == next || !next.IsValid() && !after.IsValid() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// banSets returns the ban sets of every profile, in order.
func (n *NFT) banSets() []setRef {
	out := make([]setRef, 0, 4*len(n.profiles))
	for _, pr := range n.profiles {
		for k := range pr.sets {
			out = append(out, setRef{pr, setKind(k)})
		}
	}
	return out
}
