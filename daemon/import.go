package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/firewall"
)

// Import bans many targets at once (sipguard import), answering once
// they are saved.
func (h handler) Import(ctx context.Context, r control.ImportRequest) (res control.ImportResponse, err error) {
	var saved <-chan struct{}
	if cerr := h.d.call(ctx, func() { res, saved, err = h.d.manualImport(ctx, r) }); cerr != nil {
		return res, cerr
	}
	return res, h.wait(ctx, saved, err)
}

// manualImport makes manual bans of every acceptable entry in one firewall
// transaction. An entry is refused, with the reason, when it is not an
// address or network, is allowlisted, or lies inside a wider ban in force
// or a wider entry of the same import; a network entry replaces the
// narrower network bans inside it, as `sipguard ban` does. Observers are
// not told of each entry: an import is one log line.
func (d *Daemon) manualImport(ctx context.Context, req control.ImportRequest) (control.ImportResponse, <-chan struct{}, error) {
	res := control.ImportResponse{Refused: []string{}}
	now := d.now()
	type entry struct {
		p      netip.Prefix
		dur    time.Duration
		reason string
	}
	var entries []entry
	for _, r := range req.Bans {
		p, err := parseTarget(r.Target)
		if err != nil {
			res.Refused = append(res.Refused, err.Error())
			continue
		}
		dur := d.cfg.ManualBanTime
		if r.For != "" {
			if dur, err = duration.Parse(r.For); err != nil || dur <= 0 {
				res.Refused = append(res.Refused, fmt.Sprintf("%s: for %q is not a positive duration", p, r.For))
				continue
			}
		}
		if a := d.allowed(p); a.IsValid() {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: allowlisted (%s)", prefixString(p), a))
			continue
		}
		if w, ok := d.covering(p, now); ok {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: inside %s, banned already", prefixString(p), w))
			continue
		}
		entries = append(entries, entry{p, dur, r.Reason})
	}
	// Wider networks first, so that an entry inside another is found.
	slices.SortStableFunc(entries, func(a, b entry) int { return a.p.Bits() - b.p.Bits() })
	accepted := &prefixIndex{set: map[netip.Prefix]struct{}{}}
	lengths := map[int]bool{}
	var bans []firewall.Ban
	var keep []entry
	for _, e := range entries {
		if _, dup := accepted.set[e.p]; dup {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: listed twice", prefixString(e.p)))
			continue
		}
		if !isHost(e.p) && accepted.contains(e.p) {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: inside another entry", prefixString(e.p)))
			continue
		}
		accepted.set[e.p] = struct{}{}
		if !isHost(e.p) && !lengths[e.p.Bits()] {
			lengths[e.p.Bits()] = true
			accepted.lengths = append(accepted.lengths, e.p.Bits()) // ascending: entries are sorted
		}
		bans = append(bans, firewall.Ban{Prefix: e.p, Timeout: e.dur})
		keep = append(keep, e)
	}
	if len(bans) == 0 {
		return res, nil, nil
	}
	err := d.makeRoom(ctx, bans)
	if err == nil {
		err = d.fw.Ban(ctx, bans...)
	}
	if err != nil {
		d.fwErrors++
		return control.ImportResponse{}, nil, fmt.Errorf("import: %w", err)
	}
	for _, e := range keep {
		if _, ok := d.bans[e.p]; ok {
			res.Renewed++
		} else {
			res.Banned++
		}
		r := &banRecord{Target: e.p, Rule: manualRule, Reason: e.reason, Since: now, Expires: now.Add(e.dur)}
		d.bans[e.p] = r
		d.eng.Banned(e.p, now, e.dur)
		d.share(r)
	}
	d.bansDirty = true
	d.log.Info().Int("banned", res.Banned).Int("renewed", res.Renewed).Int("refused", len(res.Refused)).Msg("import")
	return res, d.durable(), nil
}

// contains reports whether a network of the index strictly contains p
// (only the lengths recorded are tried).
func (ix *prefixIndex) contains(p netip.Prefix) bool {
	for _, b := range ix.lengths {
		if b >= p.Bits() {
			break
		}
		if q, err := p.Addr().Prefix(b); err == nil {
			if _, ok := ix.set[q]; ok {
				return true
			}
		}
	}
	return false
}
