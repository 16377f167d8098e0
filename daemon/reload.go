package daemon

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/sipguard/sipguard/engine"
)

// Reload applies a new configuration to the running daemon. It is checked
// completely first: on error nothing changes. Rules, allowlist and engine
// settings take effect at once (counters start afresh, offence history is
// kept); a new allowlist goes into the firewall first, then the bans in
// force that cover it are lifted or narrowed (see fitAllow); sources
// added, removed or changed start or stop; the state directory, the
// socket and the rules' ports (Config.RulePorts: the firewall's ports
// profiles) change only on restart. The country database is opened anew
// (an update replaces the file), outside the core goroutine.
func (d *Daemon) Reload(ctx context.Context, cfg Config) error {
	geo, err := openGeoIP(cfg.GeoIP)
	if err != nil {
		return err
	}
	if err := countryPolicy(d.log, geo, &cfg.Policy); err != nil {
		return err
	}
	// The old database is not closed: it holds only memory, which the
	// garbage collector takes back once nothing looks it up.
	if cerr := d.call(ctx, func() {
		if err = d.reload(ctx, cfg); err == nil {
			d.geo, d.banGeo = geo, nil
			logGeoIP(d.log, geo, cfg.GeoIP, d.now())
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

func (d *Daemon) reload(ctx context.Context, cfg Config) error {
	if cfg.CompromiseNewCountry && cfg.GeoIP == "" {
		return fmt.Errorf("[compromise] on_new_country needs a [geoip] database")
	}
	if !maps.Equal(cfg.RulePorts, d.cfg.RulePorts) {
		// The firewall's ports profiles are set up at start.
		d.log.Warn().Msg("changes of a rule's ports take effect on restart")
	}
	cfg.RulePorts = d.cfg.RulePorts
	var eng *engine.Engine
	cfg.Engine = withPorts(withSpecial(cfg.Engine), cfg.RulePorts)
	if !sameEngine(cfg.Engine, d.cfg.Engine) {
		var err error
		if eng, err = engine.New(cfg.Engine); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		eng.Inherit(d.eng)
	}
	if cfg.ManualBanTime <= 0 {
		cfg.ManualBanTime = d.cfg.ManualBanTime
	}
	if err := d.reloadGuard(cfg); err != nil {
		return err
	}
	if cfg.StateDir != d.cfg.StateDir || cfg.Socket != d.cfg.Socket {
		d.log.Warn().Msg("state_dir and socket changes take effect on restart")
		cfg.StateDir, cfg.Socket = d.cfg.StateDir, d.cfg.Socket
	}
	if err := d.reloadPolicy(ctx, &cfg.Policy); err != nil {
		return err
	}
	allowChanged := !slices.Equal(cfg.Engine.Allow, d.cfg.Engine.Allow)
	if allowChanged {
		if err := d.fw.SetAllow(ctx, append(slices.Clone(cfg.Engine.Allow), d.trunkAllow...)); err != nil {
			d.fwErrors++
			return fmt.Errorf("load the allowlist into the firewall: %w", err)
		}
	}
	if eng != nil {
		d.eng = eng
	}
	trunksChanged := !reflect.DeepEqual(cfg.Trunks, d.cfg.Trunks) || !reflect.DeepEqual(cfg.Resolver, d.cfg.Resolver)
	if trunksChanged {
		d.stopTrunks()
	}
	old := map[string]Source{}
	for _, s := range d.cfg.Sources {
		old[s.Name] = s
	}
	feedsChanged := !reflect.DeepEqual(cfg.Feeds, d.cfg.Feeds)
	if feedsChanged {
		d.stopFeeds()
	}
	if wireKey(cfg.Wire) != wireKey(d.cfg.Wire) {
		// Its firewall rules are set up at start, with the group it reads.
		d.log.Warn().Msg("[wire] changes take effect on restart")
	}
	cfg.Wire = d.cfg.Wire
	d.cfg = cfg
	if allowChanged {
		if err := d.fitAllow(ctx); err != nil {
			d.allowDirty = true // tried again each tick (applyAllow)
			d.log.Error().Err(err).Msg("bans covering the new allowlist not lifted; retrying; the firewall lets the allowlist through all the same")
		}
	}
	if eng != nil || allowChanged {
		// The trunks' addresses stay allowed in the new engine.
		d.eng.SetAllow(d.allowlist())
	}
	if feedsChanged {
		d.startFeeds(d.runCtx)
	}
	if trunksChanged {
		d.startTrunks(d.runCtx, d.trunkSet)
	}
	keep := map[string]bool{WireSource: cfg.Wire != nil}
	for _, s := range cfg.Sources {
		if o, ok := old[s.Name]; ok && o.Path == s.Path && o.Parser == s.Parser && o.Start == s.Start &&
			o.Location.String() == s.Location.String() && slices.Equal(o.Listen, s.Listen) && slices.Equal(o.Senders, s.Senders) &&
			reflect.DeepEqual(o.Journal, s.Journal) {
			keep[s.Name] = true
		}
	}
	for name := range d.runners {
		if !keep[name] {
			d.stopSource(name)
			// Its lines were handled: the position stands.
			d.flush(context.Background())
		}
	}
	for _, s := range cfg.Sources {
		if !keep[s.Name] {
			d.startSource(s)
		}
	}
	d.awaitSources(d.runCtx)
	d.log.Info().Int("sources", len(cfg.Sources)).Int("rules", len(cfg.Engine.Rules)).Bool("rules_changed", eng != nil).Msg("configuration reloaded")
	return nil
}

// sameEngine reports whether a and b configure the same engine: its
// Special function compared by identity (funcs are never DeepEqual).
func sameEngine(a, b engine.Options) bool {
	fa, fb := reflect.ValueOf(a.Special).Pointer(), reflect.ValueOf(b.Special).Pointer()
	a.Special, b.Special = nil, nil
	return fa == fb && reflect.DeepEqual(a, b)
}
