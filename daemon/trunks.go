package daemon

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/store"
	"github.com/sipguard/sipguard/trunks"
)

// Trunks admitted by name (Config.Trunks): a trunks.Watcher resolves them
// on a goroutine of its own and hands the core complete sets; the core
// adds the addresses and networks of the last set to the allowlist
// (allowlist), so everything the allowlist guarantees holds for them: the
// engine never counts them, no ban covers them (bans made before are
// lifted or narrowed: fitAllow), and the firewall accepts them ahead of
// every drop. DNS never holds up banning: the core only takes sets.

// allowlist returns the allowlist in force: [allow] (and allow.self) and
// the trunks' addresses and networks.
func (d *Daemon) allowlist() []netip.Prefix {
	if len(d.trunkAllow) == 0 {
		return d.cfg.Engine.Allow
	}
	return append(slices.Clone(d.cfg.Engine.Allow), d.trunkAllow...)
}

// trunksFile holds the trunks' last answers in the state directory: after
// a restart while DNS is down, their addresses stay admitted until keep
// after the answer that held them, as they would have without the restart.
const trunksFile = "trunks.json"

// trunksSaveEvery is how often the trunks' answers are saved when their
// addresses do not change (the time of the last answer moves on).
const trunksSaveEvery = 10 * time.Minute

// newTrunkWatcher returns a watcher of the configured trunks seeded with
// seed, nil when there are none.
func (d *Daemon) newTrunkWatcher(seed trunks.Set) *trunks.Watcher {
	if len(d.cfg.Trunks) == 0 || d.cfg.Resolver == nil {
		return nil
	}
	w := trunks.NewWatcher(d.cfg.Trunks, d.cfg.Resolver, d.log.With().Str("component", "trunks").Logger())
	w.Seed(seed)
	return w
}

// restoreTrunks seeds the trunks with their answers saved before the
// restart and allows what is still within keep, before the restored bans
// reach the firewall (restore): it returns the watcher to run.
func (d *Daemon) restoreTrunks() *trunks.Watcher {
	var saved trunks.Set
	if len(d.cfg.Trunks) > 0 {
		if _, err := store.Load(filepath.Join(d.cfg.StateDir, trunksFile), &saved.Trunks); err != nil {
			d.log.Warn().Err(err).Msg("saved trunk answers unreadable; trunks resolved afresh")
			saved = trunks.Set{}
		}
	}
	w := d.newTrunkWatcher(saved)
	if w != nil {
		s := w.Current()
		d.trunkSet, d.trunkAllow = s, s.Allow
		if err := d.eng.SetAllow(d.allowlist()); err != nil {
			d.log.Error().Err(err).Msg("saved trunk addresses not given to the engine")
		}
	}
	return w
}

// startTrunks starts resolving the trunks, seeded with what was known of
// them (a reload); stopTrunks stops it.
func (d *Daemon) startTrunks(ctx context.Context, seed trunks.Set) {
	d.runTrunks(ctx, d.newTrunkWatcher(seed))
}

// runTrunks runs w (nil: no trunks) until stopTrunks.
func (d *Daemon) runTrunks(ctx context.Context, w *trunks.Watcher) {
	if w == nil {
		d.stopTrunks = func() {}
		d.trunksResolved(ctx, trunks.Set{})
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.stopTrunks = func() { cancel(); <-done }
	path := filepath.Join(d.cfg.StateDir, trunksFile)
	var saved []netip.Prefix
	var savedAt time.Time
	go func() {
		defer close(done)
		w.Run(ctx, func(s trunks.Set) {
			// Saved here, off the core goroutine.
			if !slices.Equal(s.Allow, saved) || time.Since(savedAt) >= trunksSaveEvery {
				if err := store.Save(path, s.Trunks); err != nil {
					d.log.Warn().Err(err).Msg("trunk answers not saved")
				} else {
					saved, savedAt = s.Allow, time.Now()
				}
			}
			d.call(ctx, func() { d.trunksResolved(d.runCtx, s) })
		})
	}()
}

// trunksResolved takes a trunks' set: the allowlist follows it when its
// addresses or networks changed.
func (d *Daemon) trunksResolved(ctx context.Context, s trunks.Set) {
	d.trunkSet = s
	if slices.Equal(s.Allow, d.trunkAllow) {
		return
	}
	d.log.Info().Int("entries", len(s.Allow)).Int("before", len(d.trunkAllow)).Msg("trunks' addresses changed: allowlist updated")
	d.trunkAllow = s.Allow
	if err := d.eng.SetAllow(d.allowlist()); err != nil {
		// Validated entries only: not expected.
		d.log.Error().Err(err).Msg("trunks' addresses not given to the engine")
	}
	d.allowDirty = true
	d.applyAllow(ctx)
}

// applyAllow loads the allowlist into the firewall after the trunks
// changed it, and lifts or narrows the bans that cover the new addresses
// (after a reload too: fitAllow); on failure the core loop tries again
// each tick (the daemon's own guard, allowed, holds the new addresses
// meanwhile: no new ban covers them). A ban left covering one is refused
// when a wider ban around it goes (coveredInside): in the ledger, it kept
// the bans inside it out of the firewall too.
func (d *Daemon) applyAllow(ctx context.Context) {
	if !d.allowDirty {
		return
	}
	if err := d.setAllow(ctx); err != nil {
		d.log.Error().Err(err).Msg("allowlist not loaded into the firewall; retrying")
		return
	}
	if err := d.fitAllow(ctx); err != nil {
		d.log.Error().Err(err).Msg("bans covering the allowlist not lifted; retrying; the firewall lets it through all the same")
		return
	}
	d.allowDirty = false
}

// trunkOf names the trunk an allowlist entry is an address or network of
// ("" when [allow] holds it itself).
func (d *Daemon) trunkOf(a netip.Prefix) string {
	if slices.Contains(d.cfg.Engine.Allow, a) {
		return ""
	}
	for _, t := range d.trunkSet.Trunks {
		if slices.Contains(t.Networks, a) {
			return t.Name
		}
		for _, h := range t.Hosts {
			for _, x := range h.Addrs {
				if netip.PrefixFrom(x.Addr, x.Addr.BitLen()) == a {
					return t.Name
				}
			}
		}
	}
	return ""
}

// trunkStatus reports the trunks for `sipguard trunks` and status.
func (d *Daemon) trunkStatus() []control.TrunkStatus {
	var out []control.TrunkStatus
	for _, t := range d.trunkSet.Trunks {
		ts := control.TrunkStatus{Name: t.Name, Networks: []string{}, Hosts: []control.TrunkHostStatus{}}
		for _, n := range t.Networks {
			ts.Networks = append(ts.Networks, n.String())
		}
		for _, h := range t.Hosts {
			hs := control.TrunkHostStatus{Host: h.Host, Addresses: []control.TrunkAddr{}, TTLSeconds: h.TTL.Seconds(),
				LastSuccess: h.LastSuccess, LastTry: h.LastTry, Next: h.Next, Error: h.Error, ErrorSince: h.ErrorSince}
			for _, a := range h.Addrs {
				hs.Addresses = append(hs.Addresses, control.TrunkAddr{Address: a.Addr.String(), Answered: a.Answered, Until: a.Until})
			}
			ts.Hosts = append(ts.Hosts, hs)
		}
		out = append(out, ts)
	}
	return out
}

func (h handler) Trunks(ctx context.Context) []control.TrunkStatus {
	var out []control.TrunkStatus
	h.d.call(ctx, func() { out = h.d.trunkStatus() })
	return out
}
