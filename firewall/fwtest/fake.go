// Package fwtest owns Fake, a map-backed firewall.Backend with the
// semantics of firewall.NFT and no kernel, for the unit tests of the
// packages that use a firewall, such as the daemon.
package fwtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

// Fake is a stateful, map-backed firewall.Backend with the semantics of
// firewall.NFT: prefixes are normalised (firewall.Normalize), a ban needs
// a valid prefix and a positive timeout (firewall.ErrInvalidBan), timeouts
// are rounded up to the millisecond and capped at firewall.MaxTimeout,
// re-banning sets the new timeout, a network overlapping another unexpired
// network ban is refused with a *firewall.OverlapError (the whole call
// fails and nothing changes), bans expire by the Now clock, and every
// method but State and Close fails with firewall.ErrClosed after Close.
//
// Tests assert on its state (Has, Expiry, Entries), not on calls. The
// *Func fields inject errors: when set, they are called first, and a
// non-nil error is returned with the state left unchanged. SetAllow keeps
// the allowlist (Allowlist), as NFT loads it into the kernel: the bans
// stay as they are, for tests to check that none covers it.
//
// Bans are kept per ports profile (firewall.Ban.Ports; "" the default),
// as NFT keeps them in each profile's sets: overlaps are refused within a
// profile only, Unban lifts from every profile and UnbanIn from one. Has
// and Expiry look at the default profile, HasIn at any.
type Fake struct {
	// Now is the clock deciding expiry; nil is time.Now.
	Now func() time.Time
	// Profiles, if not nil, are the ports profiles the fake was set up
	// with beside the default (NFTOptions.Profiles, by PortsKey): a ban,
	// a lift or an UnbanIn in another fails the whole call with
	// firewall.ErrUnknownPorts, and Sync skips and reports its entries,
	// as NFT does. Nil: every profile is known.
	Profiles []string

	BanFunc   func(bans []firewall.Ban) error
	UnbanFunc func(prefixes []netip.Prefix) error // Unban and UnbanIn
	ListFunc  func() error
	SyncFunc  func(entries []firewall.Entry) error
	AllowFunc func(allow []netip.Prefix) error

	mu       sync.Mutex
	bans     map[key]time.Time
	allow    []netip.Prefix
	closed   bool
	restored int
}

var _ firewall.Backend = (*Fake)(nil)

// key is a ban: its ports profile and prefix.
type key struct {
	ports string
	p     netip.Prefix
}

// New returns an empty Fake using the clock now (nil: time.Now).
func New(now func() time.Time) *Fake { return &Fake{Now: now} }

func (f *Fake) now() time.Time {
	if f.Now == nil {
		return time.Now()
	}
	return f.Now()
}

func (f *Fake) init() {
	if f.bans == nil {
		f.bans = map[key]time.Time{}
	}
}

// lock takes f.mu for a method that fails after Close, then calls
// injected (nil: nothing). It returns ctx's error, firewall.ErrClosed or
// the injected error without the lock.
func (f *Fake) lock(ctx context.Context, injected func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return firewall.ErrClosed
	}
	if injected != nil {
		if err := injected(); err != nil {
			f.mu.Unlock()
			return err
		}
	}
	return nil
}

// inject returns a call of fn (a *Func field) with a copy of args, or nil
// if fn is nil.
func inject[T any](fn func([]T) error, args []T) func() error {
	if fn == nil {
		return nil
	}
	return func() error { return fn(slices.Clone(args)) }
}

// Ban bans each prefix for its timeout: all or nothing.
func (f *Fake) Ban(ctx context.Context, bans ...firewall.Ban) error {
	return f.Change(ctx, nil, bans...)
}

// Change lifts lift and bans bans, all or nothing; a ban may overlap a
// network lifted in the same call. BanFunc is called with the bans and
// UnbanFunc with the lifts' prefixes, those that are not empty.
func (f *Fake) Change(ctx context.Context, lift []firewall.Lift, bans ...firewall.Ban) error {
	injected := func() error {
		if len(bans) > 0 && f.BanFunc != nil {
			if err := f.BanFunc(slices.Clone(bans)); err != nil {
				return err
			}
		}
		if len(lift) > 0 && f.UnbanFunc != nil {
			ps := make([]netip.Prefix, len(lift))
			for i, l := range lift {
				ps[i] = l.Prefix
			}
			return f.UnbanFunc(ps)
		}
		return nil
	}
	if err := f.lock(ctx, injected); err != nil {
		return err
	}
	defer f.mu.Unlock()
	f.init()
	now := f.now()
	gone := map[key]bool{}
	for _, l := range lift {
		p, err := firewall.Normalize(l.Prefix)
		if err != nil {
			return err
		}
		if err := f.known(l.Ports); err != nil {
			return fmt.Errorf("unban %s: %w", p, err)
		}
		gone[key{l.Ports, p}] = true
	}
	next := map[key]time.Duration{}
	var order []key
	for _, b := range bans {
		p, err := firewall.Normalize(b.Prefix)
		if err != nil {
			return err
		}
		if b.Timeout <= 0 {
			return fmt.Errorf("%w: %s: timeout %v is not positive", firewall.ErrInvalidBan, p, b.Timeout)
		}
		if err := f.known(b.Ports); err != nil {
			return fmt.Errorf("ban %s: %w", p, err)
		}
		k := key{b.Ports, p}
		if _, ok := next[k]; !ok {
			order = append(order, k)
		}
		next[k] = b.Timeout
	}
	var nets []key
	for _, k := range order {
		if isHost(k.p) {
			continue
		}
		for q, exp := range f.bans {
			if q != k && !gone[q] && q.ports == k.ports && !isHost(q.p) && exp.After(now) && q.p.Overlaps(k.p) {
				return &firewall.OverlapError{Prefix: k.p, With: q.p, Until: exp}
			}
		}
		for _, q := range nets {
			if q.ports == k.ports && q.p.Overlaps(k.p) {
				return &firewall.OverlapError{Prefix: k.p, With: q.p}
			}
		}
		nets = append(nets, k)
	}
	for k := range gone {
		delete(f.bans, k)
	}
	for _, k := range order {
		f.bans[k] = now.Add(kernelTimeout(next[k]))
	}
	return nil
}

// known returns firewall.ErrUnknownPorts for a profile the fake was not
// set up with (Profiles).
func (f *Fake) known(ports string) error {
	if ports == "" || f.Profiles == nil || slices.Contains(f.Profiles, ports) {
		return nil
	}
	return fmt.Errorf("%w %q", firewall.ErrUnknownPorts, ports)
}

// Unban lifts bans from every profile; prefixes not banned are ignored.
func (f *Fake) Unban(ctx context.Context, prefixes ...netip.Prefix) error {
	return f.unban(ctx, func(string) bool { return true }, prefixes)
}

// UnbanIn lifts bans from the profile ports only.
func (f *Fake) UnbanIn(ctx context.Context, ports string, prefixes ...netip.Prefix) error {
	if err := f.known(ports); err != nil {
		return fmt.Errorf("unban: %w", err)
	}
	return f.unban(ctx, func(p string) bool { return p == ports }, prefixes)
}

func (f *Fake) unban(ctx context.Context, in func(ports string) bool, prefixes []netip.Prefix) error {
	if err := f.lock(ctx, inject(f.UnbanFunc, prefixes)); err != nil {
		return err
	}
	defer f.mu.Unlock()
	gone := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p, err := firewall.Normalize(p)
		if err != nil {
			return err
		}
		gone[p] = true
	}
	for k := range f.bans {
		if gone[k.p] && in(k.ports) {
			delete(f.bans, k)
		}
	}
	return nil
}

// List returns the unexpired bans, sorted by prefix.
func (f *Fake) List(ctx context.Context) ([]firewall.Entry, error) {
	if err := f.lock(ctx, f.ListFunc); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	return f.entriesLocked(), nil
}

// Sync replaces the bans with the unexpired entries. As NFT does,
// overlapping networks keep the wider one and the others are reported in
// the error (firewall.ErrOverlap) after the rest is loaded.
func (f *Fake) Sync(ctx context.Context, es []firewall.Entry) error {
	if err := f.lock(ctx, inject(f.SyncFunc, es)); err != nil {
		return err
	}
	defer f.mu.Unlock()
	now := f.now()
	next := map[key]time.Time{}
	unknown := map[string]int{}
	for _, e := range es {
		p, err := firewall.Normalize(e.Prefix)
		if err != nil {
			return err
		}
		if e.Expires.Sub(now) < time.Millisecond {
			continue
		}
		if f.known(e.Ports) != nil {
			unknown[e.Ports]++
			continue
		}
		exp := e.Expires
		if exp.Sub(now) > firewall.MaxTimeout {
			exp = now.Add(firewall.MaxTimeout)
		}
		k := key{e.Ports, p}
		if old, ok := next[k]; !ok || exp.After(old) {
			next[k] = exp
		}
	}
	var nets []key
	for k := range next {
		if !isHost(k.p) {
			nets = append(nets, k)
		}
	}
	slices.SortFunc(nets, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.ports, b.ports), cmp.Compare(a.p.Bits(), b.p.Bits()), a.p.Addr().Compare(b.p.Addr()))
	})
	var kept []key
	var errs []error
	for ports, count := range unknown {
		errs = append(errs, fmt.Errorf("%d bans skipped: %w %q", count, firewall.ErrUnknownPorts, ports))
	}
	for _, k := range nets {
		overlaps := func(q key) bool { return q.ports == k.ports && q.p.Overlaps(k.p) }
		if i := slices.IndexFunc(kept, overlaps); i >= 0 {
			errs = append(errs, &firewall.OverlapError{Prefix: k.p, With: kept[i].p})
			delete(next, k)
			continue
		}
		kept = append(kept, k)
	}
	f.bans = next
	return errors.Join(errs...)
}

// SetAllow replaces the allowlist; an invalid prefix fails the call.
func (f *Fake) SetAllow(ctx context.Context, allow []netip.Prefix) error {
	if err := f.lock(ctx, inject(f.AllowFunc, allow)); err != nil {
		return err
	}
	defer f.mu.Unlock()
	var next []netip.Prefix
	for _, p := range allow {
		p, err := firewall.Normalize(p)
		if err != nil {
			return err
		}
		next = append(next, p)
	}
	f.allow = next
	return nil
}

// Allowlist returns the allowlist last set, normalised; it works after
// Close.
func (f *Fake) Allowlist() []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.allow)
}

// State describes the fake (backend "fake").
func (f *Fake) State(context.Context) firewall.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := firewall.State{Backend: "fake", Bans: len(f.entriesLocked()), Restored: f.restored}
	if f.closed {
		st.LastError = firewall.ErrClosed.Error()
	}
	return st
}

// Close marks the fake closed; the bans stay, as in the kernel.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Reconcile blocks until ctx is done, like NFT.Reconcile; it fails with
// firewall.ErrClosed after Close.
func (f *Fake) Reconcile(ctx context.Context) error {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return firewall.ErrClosed
	}
	<-ctx.Done()
	return nil
}

// Has reports whether p (normalised) is banned and unexpired in the
// default profile.
func (f *Fake) Has(p netip.Prefix) bool {
	_, ok := f.ExpiryIn("", p)
	return ok
}

// HasIn reports whether p (normalised) is banned and unexpired in the
// profile ports.
func (f *Fake) HasIn(ports string, p netip.Prefix) bool {
	_, ok := f.ExpiryIn(ports, p)
	return ok
}

// Expiry returns when the ban of p (normalised) in the default profile
// expires, if it is banned and unexpired.
func (f *Fake) Expiry(p netip.Prefix) (time.Time, bool) { return f.ExpiryIn("", p) }

// ExpiryIn is Expiry in the profile ports.
func (f *Fake) ExpiryIn(ports string, p netip.Prefix) (time.Time, bool) {
	p, err := firewall.Normalize(p)
	if err != nil {
		return time.Time{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.bans[key{ports, p}]
	if !ok || !exp.After(f.now()) {
		return time.Time{}, false
	}
	return exp, true
}

// Entries returns the unexpired bans, sorted by prefix then profile; it
// works after Close.
func (f *Fake) Entries() []firewall.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entriesLocked()
}

// SetRestored sets the State.Restored count, as if the kernel state had
// been repaired that many times.
func (f *Fake) SetRestored(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = n
}

func (f *Fake) entriesLocked() []firewall.Entry {
	now := f.now()
	out := make([]firewall.Entry, 0, len(f.bans))
	for k, exp := range f.bans {
		if exp.After(now) {
			out = append(out, firewall.Entry{Prefix: k.p, Expires: exp, Ports: k.ports})
		}
	}
	slices.SortFunc(out, func(a, b firewall.Entry) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()), cmp.Compare(a.Ports, b.Ports))
	})
	return out
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// kernelTimeout mirrors NFT: rounded up to the millisecond, capped.
func kernelTimeout(d time.Duration) time.Duration {
	if d >= firewall.MaxTimeout-time.Millisecond {
		return firewall.MaxTimeout
	}
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}
