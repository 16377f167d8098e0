package firewall

import (
	"context"
	"errors"
	"maps"
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

	mu     sync.Mutex
	bans   map[string]map[netip.Prefix]time.Time // ports profile → prefix → expiry
	allow  []netip.Prefix
	closed bool
}

// NewDryRun returns a dry-run backend logging to log. now is the clock
// (nil: time.Now).
func NewDryRun(log zerolog.Logger, now func() time.Time) *DryRun {
	if now == nil {
		now = time.Now
	}
	return &DryRun{log: log.With().Str("backend", "dry-run").Logger(), now: now, bans: map[string]map[netip.Prefix]time.Time{}}
}

func (d *DryRun) Ban(ctx context.Context, bans ...Ban) error { return d.Change(ctx, nil, bans...) }

// Change lifts and bans as one: refused as a whole as NFT refuses it.
// Prefixes are normalised as NFT normalises them (an IPv4-mapped address
// is the IPv4 address), or a lift would miss the ban it names.
func (d *DryRun) Change(_ context.Context, lift []Lift, bans ...Ban) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	lift, bans = slices.Clone(lift), slices.Clone(bans)
	for i, b := range bans {
		p, err := normalizeBan(b)
		if err != nil {
			return err
		}
		bans[i].Prefix = p
	}
	for i, l := range lift {
		p, err := Normalize(l.Prefix)
		if err != nil {
			return err
		}
		lift[i].Prefix = p
	}
	now := d.now()
	gone := map[string]map[netip.Prefix]bool{}
	for _, l := range lift {
		if gone[l.Ports] == nil {
			gone[l.Ports] = map[netip.Prefix]bool{}
		}
		gone[l.Ports][l.Prefix] = true
	}
	// Refused as NFT refuses them: a network overlapping one in force
	// (and not lifted here), or another of the same call, in its ports
	// profile.
	nets := map[string][]netip.Prefix{}
	for _, b := range bans {
		if b.Prefix.Bits() != b.Prefix.Addr().BitLen() {
			nets[b.Ports] = append(nets[b.Ports], b.Prefix)
		}
	}
	for ports, ps := range nets {
		if err := newOverlap(d.bans[ports], gone[ports], ps, now); err != nil {
			return err
		}
	}
	for _, l := range lift {
		d.unbanLocked(l.Ports, []netip.Prefix{l.Prefix})
	}
	for _, b := range bans {
		m := d.bans[b.Ports]
		if m == nil {
			m = map[netip.Prefix]time.Time{}
			d.bans[b.Ports] = m
		}
		m[b.Prefix] = now.Add(kernelTimeout(b.Timeout))
		ev := d.log.Info().Str("prefix", b.Prefix.String()).Float64("timeout_seconds", b.Timeout.Seconds())
		if b.Ports != "" {
			ev = ev.Str("ports", b.Ports)
		}
		ev.Msg("would ban")
	}
	return nil
}

func (d *DryRun) Unban(_ context.Context, prefixes ...netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	prefixes, err := normalizeAll(prefixes)
	if err != nil {
		return err
	}
	for ports := range d.bans {
		d.unbanLocked(ports, prefixes)
	}
	return nil
}

func (d *DryRun) UnbanIn(_ context.Context, ports string, prefixes ...netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	prefixes, err := normalizeAll(prefixes)
	if err != nil {
		return err
	}
	d.unbanLocked(ports, prefixes)
	return nil
}

// unbanLocked lifts prefixes, normalised, in the profile ports.
func (d *DryRun) unbanLocked(ports string, prefixes []netip.Prefix) {
	for _, p := range prefixes {
		if _, ok := d.bans[ports][p]; ok {
			delete(d.bans[ports], p)
			d.log.Info().Str("prefix", p.String()).Msg("would unban")
		}
	}
}

func (d *DryRun) List(context.Context) ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	return d.entriesLocked(), nil
}

func (d *DryRun) entriesLocked() []Entry {
	var out []Entry
	for ports, m := range d.bans {
		out = append(out, entries(m, ports, d.now())...)
	}
	return out
}

// Sync holds exactly es from now on, as NFT loads them: less than a
// millisecond left, skipped; the timeout capped at MaxTimeout; of
// overlapping networks in a profile, the widest kept and the others
// reported (ErrOverlap) once the rest is loaded.
func (d *DryRun) Sync(_ context.Context, es []Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	next := map[string]map[netip.Prefix]time.Time{}
	nets := map[string]map[netip.Prefix]time.Time{}
	now := d.now()
	for _, e := range es {
		p, err := Normalize(e.Prefix)
		if err != nil {
			return err
		}
		if e.Expires.Sub(now) < time.Millisecond {
			continue
		}
		exp := e.Expires
		if exp.Sub(now) > MaxTimeout {
			exp = now.Add(MaxTimeout)
		}
		m := next
		if !isHost(p) {
			m = nets
		}
		if m[e.Ports] == nil {
			m[e.Ports] = map[netip.Prefix]time.Time{}
		}
		if old, ok := m[e.Ports][p]; !ok || exp.After(old) {
			m[e.Ports][p] = exp
		}
	}
	var errs []error
	for ports, m := range nets {
		errs = append(errs, dropOverlaps(m)...)
		if next[ports] == nil {
			next[ports] = map[netip.Prefix]time.Time{}
		}
		maps.Copy(next[ports], m)
	}
	n := 0
	for _, m := range next {
		n += len(m)
	}
	d.bans = next
	d.log.Info().Int("bans", n).Msg("would restore bans")
	return errors.Join(errs...)
}

// SetAllow checks and remembers the allowlist and logs it.
func (d *DryRun) SetAllow(_ context.Context, allow []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	v4, v6, err := allowRanges(allow)
	if err != nil {
		return err
	}
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
	return State{Backend: "dry-run", Bans: len(d.entriesLocked())}
}

// Close ends the dry run: every method but State and Close then returns
// ErrClosed, as NFT's do.
func (d *DryRun) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// normalizeAll returns prefixes normalised (Normalize), or the first
// error.
func normalizeAll(prefixes []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, len(prefixes))
	for i, p := range prefixes {
		var err error
		if out[i], err = Normalize(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// entries lists the unexpired bans of m, of the ports profile ports.
func entries(m map[netip.Prefix]time.Time, ports string, now time.Time) []Entry {
	out := make([]Entry, 0, len(m))
	for p, exp := range m {
		if exp.After(now) {
			out = append(out, Entry{Prefix: p, Expires: exp, Ports: ports})
		}
	}
	return out
}

// OverlapError says which network ban a new one overlaps.
type OverlapError struct {
	Prefix, With netip.Prefix
	// Until is when the backend's ban of With ends, when it holds one
	// (zero for two networks of one call): a network that ended after its
	// record (the kernel counts from its transaction) is refused until
	// then, and a caller can try again at that moment.
	Until time.Time
}

func (e *OverlapError) Error() string {
	return e.Prefix.String() + " " + ErrOverlap.Error() + ": " + e.With.String()
}

func (e *OverlapError) Unwrap() error { return ErrOverlap }

var _ Backend = (*DryRun)(nil)
