//go:build linux

package firewall

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
)

// elemOps gathers the element operations of one transaction on the ban
// sets, by profile and setKind. They are queued in three passes (the adds
// of pre, the deletes of del, the adds of add), so that a refresh is add,
// delete, add and a lift is add, delete.
type elemOps struct {
	pre, del, add [][4][]nftables.SetElement // indexed by profile.idx
	n             int                        // element operations in all
}

// at returns the element lists of profile idx in pass, growing it.
func at(pass *[][4][]nftables.SetElement, idx int) *[4][]nftables.SetElement {
	for len(*pass) <= idx {
		*pass = append(*pass, [4][]nftables.SetElement{})
	}
	return &(*pass)[idx]
}

// put adds p to pr's sets for timeout (see kernelTimeout): for a prefix
// that is not in the set, or to restore one.
func (o *elemOps) put(pr *profile, p netip.Prefix, timeout time.Duration) {
	k, els := kindOf(p), elementsOf(p, kernelTimeout(timeout))
	add := at(&o.add, pr.idx)
	add[k] = append(add[k], els...)
	o.n += len(els)
}

// refresh adds p for timeout as add, delete, add, which sets the new
// timeout even if p is in the set already (a plain re-add does not before
// kernel 6.12), and never deletes an element the kernel has just expired,
// which would abort the transaction.
func (o *elemOps) refresh(pr *profile, p netip.Prefix, timeout time.Duration) {
	k, els := kindOf(p), elementsOf(p, kernelTimeout(timeout))
	pre, del, add := at(&o.pre, pr.idx), at(&o.del, pr.idx), at(&o.add, pr.idx)
	pre[k] = append(pre[k], els...)
	del[k] = append(del[k], withoutTimeout(els)...)
	add[k] = append(add[k], els...)
	o.n += 3 * len(els)
}

// lift removes p as add, delete: the add makes sure the delete finds the
// element, even if the kernel has just expired it.
func (o *elemOps) lift(pr *profile, p netip.Prefix) {
	k, els := kindOf(p), elementsOf(p, time.Second)
	pre, del := at(&o.pre, pr.idx), at(&o.del, pr.idx)
	pre[k] = append(pre[k], els...)
	del[k] = append(del[k], withoutTimeout(els)...)
	o.n += 2 * len(els)
}

// commitOps sends o in one transaction or, if splittable, in as many as
// the send buffer needs; it returns how many it sent.
func (n *NFT) commitOps(o *elemOps, splittable bool) (parts int, err error) {
	tx := n.newTxn(o.n)
	tx.splittable = splittable
	if err := tx.queue(o); err != nil {
		return 0, err
	}
	err = tx.commit()
	return tx.parts, err
}

// txn queues one transaction on conn, in messages of at most
// maxElemsPerMsg elements.
type txn struct {
	n          *NFT
	ops        int  // element operations announced for the whole call
	bytes      int  // estimated size of what is queued
	queued     int  // messages queued
	splittable bool // may commit early when the send buffer would overflow
	parts      int
}

func (n *NFT) newTxn(ops int) *txn { return &txn{n: n, ops: ops} }

func (t *txn) add(s *nftables.Set, els []nftables.SetElement) error {
	return t.elements(s, els, false)
}

func (t *txn) elements(s *nftables.Set, els []nftables.SetElement, del bool) error {
	for len(els) > 0 {
		k := min(maxElemsPerMsg, len(els))
		if k < len(els) && els[k].IntervalEnd {
			k-- // keep a network's start and end in one message
		}
		size := msgBytes + k*elemBytes
		if t.splittable && t.queued > 0 && t.bytes+size > t.n.txMax {
			if err := t.commit(); err != nil {
				return err
			}
		}
		var err error
		if del {
			err = t.n.conn.SetDeleteElements(s, els[:k])
		} else {
			err = t.n.conn.SetAddElements(s, els[:k])
		}
		if err != nil {
			if del {
				return fmt.Errorf("delete elements from %s: %w", s.Name, err)
			}
			return fmt.Errorf("add elements to %s: %w", s.Name, err)
		}
		t.bytes += size
		t.queued++
		els = els[k:]
	}
	return nil
}

// queue queues the element operations of o, pass after pass.
func (t *txn) queue(o *elemOps) error {
	for _, pass := range []struct {
		del bool
		els [][4][]nftables.SetElement
	}{{false, o.pre}, {true, o.del}, {false, o.add}} {
		for i, byKind := range pass.els {
			for k, els := range byKind {
				if err := t.elements(t.n.profiles[i].sets[k], els, pass.del); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// commit sends what is queued. A large transaction is sent with the
// monitor unsubscribed, and Reconcile is asked to check afterwards for
// changes it may have missed meanwhile.
func (t *txn) commit() error {
	quiet := t.ops > quietElems
	if quiet {
		t.n.setQuiet(true)
	}
	err := t.n.talk(func(c *nftables.Conn) error { return c.Flush() })
	if quiet {
		t.n.setQuiet(false)
	}
	t.parts++
	t.bytes, t.queued = 0, 0
	return err
}

// setQuiet unsubscribes the monitor (on) or subscribes it again and asks
// for a check (off).
func (n *NFT) setQuiet(on bool) {
	n.monMu.Lock()
	defer n.monMu.Unlock()
	if n.mon == nil {
		return
	}
	if err := n.mon.join(!on); err != nil {
		n.log.Warn().Err(err).Msg("toggle nftables monitor")
	}
	if !on {
		n.checkFull = true
		select {
		case n.checkSignal <- struct{}{}:
		default:
		}
	}
}

// elementsOf returns the set elements of p: its address, or for a network
// its start (with the timeout) and end.
func elementsOf(p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	els := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: timeout}}
	if isHost(p) {
		return els
	}
	if end := lastAddr(p).Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	return els
}

func withoutTimeout(els []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
	}
	return out
}
