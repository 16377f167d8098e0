package firewall

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DryRun is a Backend that changes nothing: it logs what it would do and
// remembers the bans for List, so the daemon behaves as with nftables.
type DryRun struct {
	log zerolog.Logger
	now func() time.Time

	mu    sync.Mutex
	bans  map[netip.Prefix]time.Time
	allow []netip.Prefix
}

// NewDryRun returns a dry-run backend logging to log. now is the clock
// (nil: time.Now).
func NewDryRun(log zerolog.Logger, now func() time.Time) *DryRun {
	if now == nil {
		now = time.Now
	}
	return &DryRun{log: log.With().Str("backend", "dry-run").Logger(), now: now, bans: map[netip.Prefix]time.Time{}}
}

func (d *DryRun) Ban(_ context.Context, bans ...Ban) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, b := range bans {
		if err := checkOverlap(d.bans, b.Prefix, now); err != nil {
			return err
		}
	}
	for _, b := range bans {
		d.bans[b.Prefix.Masked()] = now.Add(b.Timeout)
		d.log.Info().Str("prefix", b.Prefix.String()).Float64("timeout_seconds", b.Timeout.Seconds()).Msg("would ban")
	}
	return nil
}

func (d *DryRun) Unban(_ context.Context, prefixes ...netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range prefixes {
		if _, ok := d.bans[p.Masked()]; ok {
			delete(d.bans, p.Masked())
			d.log.Info().Str("prefix", p.String()).Msg("would unban")
		}
	}
	return nil
}

func (d *DryRun) List(context.Context) ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return entries(d.bans, d.now()), nil
}

func (d *DryRun) Sync(_ context.Context, es []Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.bans = map[netip.Prefix]time.Time{}
	for _, e := range es {
		if e.Expires.After(now) {
			d.bans[e.Prefix.Masked()] = e.Expires
		}
	}
	d.log.Info().Int("bans", len(d.bans)).Msg("would restore bans")
	return nil
}

// SetAllow checks and remembers the allowlist and logs it.
func (d *DryRun) SetAllow(_ context.Context, allow []netip.Prefix) error {
	v4, v6, err := allowRanges(allow)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.allow = slices.Clone(allow)
	d.log.Info().Int("entries", len(allow)).Int("ranges", len(v4)+len(v6)).Msg("would allow")
	return nil
}

// Allowlist returns the allowlist last set.
func (d *DryRun) Allowlist() []netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.allow)
}

func (d *DryRun) State(context.Context) State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return State{Backend: "dry-run", Bans: len(entries(d.bans, d.now()))}
}

func (d *DryRun) Close() error { return nil }

// entries lists the unexpired bans of m.
func entries(m map[netip.Prefix]time.Time, now time.Time) []Entry {
	out := make([]Entry, 0, len(m))
	for p, exp := range m {
		if exp.After(now) {
			out = append(out, Entry{Prefix: p, Expires: exp})
		}
	}
	return out
}

// checkOverlap refuses a network ban overlapping another unexpired one
// (a single address inside a banned network is fine: it goes to another
// set).
func checkOverlap(m map[netip.Prefix]time.Time, p netip.Prefix, now time.Time) error {
	p = p.Masked()
	if p.Bits() == p.Addr().BitLen() {
		return nil
	}
	for q, exp := range m {
		if q != p && q.Bits() != q.Addr().BitLen() && exp.After(now) && q.Overlaps(p) {
			return &OverlapError{Prefix: p, With: q}
		}
	}
	return nil
}

// OverlapError says which network ban a new one overlaps.
type OverlapError struct{ Prefix, With netip.Prefix }

func (e *OverlapError) Error() string {
	return e.Prefix.String() + " " + ErrOverlap.Error() + ": " + e.With.String()
}

func (e *OverlapError) Unwrap() error { return ErrOverlap }

var _ Backend = (*DryRun)(nil)
