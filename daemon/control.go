package daemon

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/parsers"
)

func (d *Daemon) listen() (net.Listener, error) { return control.Listen(d.cfg.Socket) }

// serve answers the control socket until ctx is done.
func (d *Daemon) serve(ctx context.Context, l net.Listener) {
	if err := control.Serve(ctx, l, handler{d}); err != nil {
		d.log.Error().Err(err).Msg("control socket stopped")
	}
	os.Remove(d.cfg.Socket)
}

// handler answers control requests on the core goroutine.
type handler struct{ d *Daemon }

func (h handler) Ban(ctx context.Context, r control.BanRequest) (res control.BanResponse, err error) {
	var saved <-chan struct{}
	if cerr := h.d.call(ctx, func() { res, saved, err = h.d.manualBan(ctx, r) }); cerr != nil {
		return res, cerr
	}
	return res, h.wait(ctx, saved, err)
}

func (h handler) Unban(ctx context.Context, r control.UnbanRequest) (res control.UnbanResponse, err error) {
	var saved <-chan struct{}
	if cerr := h.d.call(ctx, func() { res, saved, err = h.d.manualUnban(ctx, r) }); cerr != nil {
		return res, cerr
	}
	return res, h.wait(ctx, saved, err)
}

// wait answers a manual change once it is saved, or says it is not yet.
func (h handler) wait(ctx context.Context, saved <-chan struct{}, err error) error {
	if err != nil || saved == nil {
		return err
	}
	select {
	case <-saved:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("done, but not saved yet (see the daemon's log): it may not survive a crash")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h handler) List(ctx context.Context) []control.Ban {
	var out []control.Ban
	h.d.call(ctx, func() { out = h.d.list() })
	return out
}

// Status reports the daemon's state, as `sipguard status --json` shows it.
func (d *Daemon) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	err := d.call(ctx, func() { st = d.status(ctx) })
	return st, err
}

func (h handler) Status(ctx context.Context) control.Status {
	var st control.Status
	h.d.call(ctx, func() { st = h.d.status(ctx) })
	return st
}

// list returns the bans in force, soonest to expire last.
func (d *Daemon) list() []control.Ban {
	now := d.now()
	out := make([]control.Ban, 0, len(d.bans))
	for _, r := range d.bans {
		if r.Expires.After(now) {
			out = append(out, r.control())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Target < out[j].Target
	})
	return out
}

func (d *Daemon) status(ctx context.Context) control.Status {
	now := d.now()
	st := control.Status{
		Version: d.cfg.Version, PID: os.Getpid(), Started: d.started,
		UptimeSeconds: now.Sub(d.started).Seconds(), Config: d.cfg.File, Bans: len(d.list()),
		Unbans: maps.Clone(d.unbans),
	}
	for _, s := range d.cfg.Sources {
		ss := control.SourceStatus{Name: s.Name, Path: s.Path, Parser: s.Parser, DropBy: map[string]int64{}}
		if s.syslog() {
			ss.Path = "syslog " + strings.Join(s.Listen, ",")
		}
		if r, ok := d.runners[s.Name]; ok {
			p := r.status()
			ss.Waiting, ss.Offset, ss.Inode, ss.Rotated = p.stats.Waiting, p.stats.Pos.Offset, p.stats.Pos.Inode, p.stats.Rotations
			ss.Lines, ss.Events, ss.Dropped, ss.DropBy, ss.Error = p.counts.Lines, p.counts.Events, p.counts.Dropped, p.counts.DropBy, p.err
			ss.EventsBy, ss.Successes = p.counts.ByKind, p.counts.Successes
		}
		st.Sources = append(st.Sources, ss)
	}
	for _, r := range d.cfg.Engine.Rules {
		rs := control.RuleStatus{
			Name: r.Name, MaxRetry: r.MaxRetry, FindTime: duration.Format(r.FindTime), BanTime: duration.Format(r.BanTime),
			Factor: r.Factor, Bans: d.ruleBans[r.Name],
		}
		if r.MaxBanTime > 0 {
			rs.MaxBanTime = duration.Format(r.MaxBanTime)
		}
		for _, k := range parsers.Kinds() {
			if r.Kinds.Has(k) {
				rs.Events = append(rs.Events, k.String())
			}
		}
		st.Rules = append(st.Rules, rs)
	}
	es := d.eng.Stats()
	st.Engine = control.EngineStatus{
		Events: es.Events, Allowed: es.Allowed, WhileBanned: es.WhileBanned, Bans: es.Bans,
		Stale: d.stale, Tracked: es.Tracked, Evicted: es.Evicted, Compromises: d.compromises,
	}
	fs := d.fw.State(ctx)
	st.Firewall = control.FirewallStatus{
		Backend: fs.Backend, Table: fs.Table, Hooks: fs.Hooks, Bans: fs.Bans, Packets: fs.Packets,
		Bytes: fs.Bytes, Restored: fs.Restored, LastCheck: fs.LastCheck, Error: fs.LastError, Errors: d.fwErrors,
	}
	if d.fwErr != "" {
		st.Firewall.Error = d.fwErr
	}
	st.Feeds = d.feedStatus()
	for _, o := range d.observers {
		if r, ok := o.(NotifyReporter); ok {
			st.Notify = append(st.Notify, r.NotifyStatus()...)
		}
	}
	st.Cluster = d.fleetStatus()
	st.State = control.StateStatus{Dir: d.cfg.StateDir, LastSaved: d.lastSaved, Error: d.saveErr}
	return st
}
