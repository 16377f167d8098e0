package daemon

// This file is the daemon's side of the control socket: it turns the
// requests of package control into calls on the core goroutine, and the
// daemon's state into the responses. Wire types stop here.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

func (d *Daemon) listen() (net.Listener, error) { return control.Listen(d.cfg.Socket) }

// serve answers the control socket until ctx is done.
func (d *Daemon) serve(ctx context.Context, l net.Listener) {
	if err := control.Serve(ctx, l, handler{d}); err != nil {
		d.log.Error().Err(err).Msg("control socket stopped")
	}
	os.Remove(d.cfg.Socket)
}

// NotifyReporter is an Observer that reports its delivery targets in
// `status`.
type NotifyReporter interface {
	NotifyStatus() []control.NotifyStatus
}

// handler answers control requests on the core goroutine.
type handler struct{ d *Daemon }

func (h handler) Ban(ctx context.Context, req control.BanRequest) (control.BanResponse, error) {
	p, err := parseTarget(req.Target)
	if err != nil {
		return control.BanResponse{}, err
	}
	var dur time.Duration
	if req.For != "" {
		if dur, err = duration.Parse(req.For); err != nil || dur <= 0 {
			return control.BanResponse{}, control.BadRequest("--for %q: a positive duration such as 30m, 1h or 7d", req.For)
		}
	}
	var b ManualBan
	var saved <-chan struct{}
	if cerr := h.d.call(ctx, func() { b, saved, err = h.d.manualBan(ctx, p, dur, req.Reason, req.Force) }); cerr != nil {
		return control.BanResponse{}, cerr
	}
	if err = h.wait(ctx, saved, err); b.Record == nil {
		return control.BanResponse{}, err
	}
	res := control.BanResponse{Result: control.Banned, Ban: wireBan(b.Record), Kept: b.Kept}
	if b.CoveredBy.IsValid() {
		res.Ban.CoveredBy = b.CoveredBy.String()
	}
	if b.Renewed {
		res.Result = control.AlreadyBanned
	}
	return res, err
}

func (h handler) Unban(ctx context.Context, req control.UnbanRequest) (control.UnbanResponse, error) {
	var target netip.Prefix
	if !req.All {
		var err error
		if target, err = parseTarget(req.Target); err != nil {
			return control.UnbanResponse{}, err
		}
	}
	var lifted []netip.Prefix
	var saved <-chan struct{}
	var err error
	cerr := h.d.call(ctx, func() {
		if req.Cluster {
			lifted, saved, err = h.d.clusterUnban(ctx, target, req.All)
		} else {
			lifted, saved, err = h.d.manualUnban(ctx, target, req.All)
		}
	})
	if cerr != nil {
		return control.UnbanResponse{}, cerr
	}
	if err != nil && saved == nil {
		return control.UnbanResponse{}, h.wire(err)
	}
	res := control.UnbanResponse{Result: control.AlreadyUnbanned, Unbanned: []string{}, Cluster: req.Cluster}
	if len(lifted) > 0 {
		res.Result = control.Unbanned
		for _, p := range lifted {
			res.Unbanned = append(res.Unbanned, p.String())
		}
	}
	return res, h.wait(ctx, saved, err)
}

// Import bans many targets at once (sipguard import), answering once
// they are saved. Entries that cannot be read are refused, with why.
func (h handler) Import(ctx context.Context, req control.ImportRequest) (control.ImportResponse, error) {
	var refused []string
	entries := make([]ImportEntry, 0, len(req.Bans))
	for _, b := range req.Bans {
		p, err := parseTarget(b.Target)
		if err != nil {
			refused = append(refused, err.Error())
			continue
		}
		e := ImportEntry{Target: p, Reason: b.Reason}
		if b.For != "" {
			if e.For, err = duration.Parse(b.For); err != nil || e.For <= 0 {
				refused = append(refused, fmt.Sprintf("%s: for %q is not a positive duration", p, b.For))
				continue
			}
		}
		entries = append(entries, e)
	}
	var res Imported
	var saved <-chan struct{}
	var err error
	if cerr := h.d.call(ctx, func() { res, saved, err = h.d.manualImport(ctx, entries) }); cerr != nil {
		return control.ImportResponse{}, cerr
	}
	if err := h.wait(ctx, saved, err); err != nil {
		return control.ImportResponse{}, err
	}
	return control.ImportResponse{Banned: res.Banned, Renewed: res.Renewed, Kept: res.Kept, Covered: res.Covered, Refused: append(refused, res.Refused...)}, nil
}

// Why explains what the daemon holds about an address or network.
func (h handler) Why(ctx context.Context, req control.WhyRequest) (control.WhyResponse, error) {
	p, err := parseTarget(req.Target)
	if err != nil {
		return control.WhyResponse{}, err
	}
	var res control.WhyResponse
	err = h.d.call(ctx, func() { res = h.d.why(p) })
	return res, err
}

// why runs on the core goroutine.
func (d *Daemon) why(p netip.Prefix) control.WhyResponse {
	now := d.now()
	res := control.WhyResponse{Target: bans.String(p), Bans: []control.Ban{}, Rules: []control.WhyRule{}, Lines: []control.WhyLine{}}
	if a := d.allowed(p); a.IsValid() {
		res.Allowlisted = a.String()
		if t := d.trunkOf(a); t != "" {
			res.Allowlisted += " (trunk " + t + ")"
		}
	}
	for _, q := range d.ledger.Overlapping(p, func(r *bans.Record) bool { return r.InForce(now) }) {
		for _, r := range d.profileTops(q, now) {
			res.Bans = append(res.Bans, d.shownBan(r, now))
		}
		for _, e := range d.evidence.bans[q] {
			res.Lines = append(res.Lines, control.WhyLine{Ban: bans.String(q), Source: e.Source, Line: e.Line, Time: e.Time, Text: e.Text})
		}
	}
	if bans.IsHost(p) {
		st := d.eng.Standing(p.Addr())
		res.CountedAs, res.Offences = bans.String(st.Prefix), st.Offences
		for i, r := range d.eng.Rules() {
			res.Rules = append(res.Rules, control.WhyRule{Name: r.Name, Events: st.Windows[i], MaxRetry: r.MaxRetry, FindTime: r.FindTime.Seconds()})
		}
	}
	return res
}

// parseTarget reads the address or network of a request.
func parseTarget(s string) (netip.Prefix, error) {
	p, err := bans.ParseTarget(s)
	if err != nil {
		return netip.Prefix{}, control.BadRequest("%v", err)
	}
	return p, nil
}

// wire turns the daemon's refusals into the socket's bad requests.
func (h handler) wire(err error) error {
	var r *refusal
	if errors.As(err, &r) {
		return control.BadRequest("%s", r.msg)
	}
	return err
}

// wait answers a manual change once it is saved, or says it is not yet.
func (h handler) wait(ctx context.Context, saved <-chan struct{}, err error) error {
	if err != nil || saved == nil {
		return h.wire(err)
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
//
// Status never delays banning, however many ask at once (an unprivileged
// user can scrape the metrics in a loop): what the core goroutine reports
// costs it nothing per ban held, and the firewall's part (a pass over its
// bans and a round trip to the kernel) is read outside it, one read at a
// time, which every caller waiting for it shares (fwStateCache).
func (d *Daemon) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	if err := d.call(ctx, func() { st = d.status() }); err != nil {
		return st, err
	}
	fs := d.fwState.get(ctx, d.fw)
	f := &st.Firewall
	f.Backend, f.Table, f.Hooks, f.Bans, f.Packets = fs.Backend, fs.Table, fs.Hooks, fs.Bans, fs.Packets
	f.PolicyDropped = fs.PolicyDropped
	f.Bytes, f.Allowed, f.Restored, f.LastCheck = fs.Bytes, fs.Allowed, fs.Restored, fs.LastCheck
	f.WireCopied = fs.WireCopied
	if f.Error == "" {
		f.Error = fs.LastError
	}
	return st, nil
}

func (h handler) Status(ctx context.Context) control.Status {
	st, _ := h.d.Status(ctx)
	return st
}

// fwStateCache holds the firewall's last State and when its read began.
// Its lock is held while the backend is read: a caller takes the last
// State if its read began after the caller asked (so it is never older
// than the question), and reads anew otherwise. However many ask at once,
// there are at most two reads for them all.
type fwStateCache struct {
	mu sync.Mutex
	at time.Time
	st firewall.State
}

func (c *fwStateCache) get(ctx context.Context, fw firewall.Backend) firewall.State {
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.After(asked) {
		c.at = time.Now()
		c.st = fw.State(ctx)
	}
	return c.st
}

// list returns the bans in force, soonest to expire last.
func (d *Daemon) list() []control.Ban {
	now := d.now()
	out := make([]control.Ban, 0, d.ledger.Len())
	d.ledger.Targets(func(r *bans.Record) bool {
		for _, t := range d.profileTops(r.Target, now) {
			b := d.shownBan(t, now)
			b.Country = d.banCountry(t)
			out = append(out, b)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return out[i].Ports < out[j].Ports
	})
	return out
}

// profileTops returns, for each ports profile target p is banned in at
// now, its record there that lasts longest: what list and why show.
func (d *Daemon) profileTops(p netip.Prefix, now time.Time) []*bans.Record {
	var out []*bans.Record
	for _, r := range d.ledger.RecordsOf(p) {
		if !r.InForce(now) {
			continue
		}
		i := slices.IndexFunc(out, func(t *bans.Record) bool { return t.Ports == r.Ports })
		switch {
		case i < 0:
			out = append(out, r)
		case r.Expires.After(out[i].Expires):
			out[i] = r
		}
	}
	return out
}

// status is the core goroutine's part of a status: nothing in it costs a
// pass over the bans. Bans counts the bans held: an ended ban is forgotten
// at the next tick of the core loop, within a second.
func (d *Daemon) status() control.Status {
	now := d.now()
	st := control.Status{
		Version: d.cfg.Version, PID: os.Getpid(), Started: d.started,
		UptimeSeconds: now.Sub(d.started).Seconds(), Config: d.cfg.File, Bans: d.ledger.Len(),
		Unbans:        maps.Clone(d.unbans),
		Policy:        control.PolicyStatus{Mode: cmpMode(d.cfg.Policy.Firewall.Mode), Learned: len(d.learned), Refused: d.learnRefusals},
		BansByCountry: d.bansByCountry(now),
	}
	for _, s := range d.cfg.Sources {
		ss := control.SourceStatus{Name: s.Name, Path: s.Path, Parser: s.Parser, DropBy: map[string]int64{}, State: "not started (see the log)"}
		switch {
		case s.syslog():
			ss.Path = "syslog " + strings.Join(s.Listen, ",")
		case s.journald():
			ss.Path = "journal " + s.Journal.String()
		}
		if r, ok := d.runners[s.Name]; ok {
			p := r.status()
			ss.State = wireState(p.state, p.why)
			ss.Waiting, ss.Offset, ss.Inode, ss.Rotated = p.stats.Waiting, p.stats.Pos.Offset, p.stats.Pos.Inode, p.stats.Rotations
			ss.Lines, ss.Events, ss.Dropped, ss.DropBy, ss.Error = p.counts.Lines, p.counts.Events, p.counts.Dropped, p.counts.DropBy, p.err
			ss.EventsBy, ss.Successes, ss.LFFramed = p.counts.ByKind, p.counts.Successes, p.lf
		}
		st.Sources = append(st.Sources, ss)
	}
	if r, ok := d.runners[WireSource]; ok && r.wire != nil {
		p := r.status()
		st.Sources = append(st.Sources, control.SourceStatus{
			Name: WireSource, Path: r.src.Path, Parser: wireParser, State: wireState(p.state, p.why), Error: p.err,
			Lines: p.counts.Lines, Events: p.counts.Events, Successes: p.counts.Successes, EventsBy: p.counts.ByKind,
			Dropped: p.counts.Dropped, DropBy: p.counts.DropBy,
		})
	}
	for _, r := range d.cfg.Engine.Rules {
		rs := control.RuleStatus{
			Name: r.Name, MaxRetry: r.MaxRetry, FindTime: r.FindTime.Seconds(), BanTime: r.BanTime.Seconds(),
			Factor: r.Factor, Bans: d.ruleBans[r.Name], Ports: d.cfg.RulePorts[r.Name],
		}
		if r.MaxBanTime > 0 {
			rs.MaxBanTime = r.MaxBanTime.Seconds()
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
		Events: es.Events, Allowed: es.Allowed, Special: es.Special, WhileBanned: es.WhileBanned, Bans: es.Bans, Narrowed: es.Narrowed,
		Stale: d.stale, Tracked: es.Tracked, Evicted: es.Evicted, Compromises: es.Compromises,
	}
	st.Firewall = control.FirewallStatus{Refused: d.allowRefused, RefusedSpecial: d.specialRefused, Errors: d.fwErrors, Error: d.fwErr}
	st.Feeds = d.feedStatus()
	st.Trunks = d.trunkStatus()
	for _, o := range d.observers {
		if r, ok := o.(NotifyReporter); ok {
			st.Notify = append(st.Notify, r.NotifyStatus()...)
		}
	}
	if d.cluster != nil {
		st.Cluster = wireCluster(d.cluster.Stats())
	}
	st.Fraud = d.fraudStatus()
	st.State = control.StateStatus{Dir: d.cfg.StateDir, LastSaved: d.lastSaved, Error: d.saveErr}
	return st
}

// wireState is a source's state as status shows it: what it is, or why it
// is not read.
func wireState(s watchers.State, why string) string {
	switch s {
	case watchers.Reading:
		return control.SourceReading
	case watchers.Missing:
		return control.SourceMissing
	case watchers.Starting:
		return control.SourceStarting
	}
	if why == "" {
		return s.String()
	}
	return why
}

// shownBan is a record in force as list and why show it: with the wider
// ban that covers it, if any.
func (d *Daemon) shownBan(r *bans.Record, now time.Time) control.Ban {
	b := wireBan(r)
	if w, ok := d.ledger.Covering(r.Target, r.Ports, now); ok {
		b.CoveredBy = w.Target.String()
	}
	return b
}

// wireBan is a ban as `list` shows it.
func wireBan(r *bans.Record) control.Ban {
	return control.Ban{
		Target: bans.String(r.Target), Rule: r.Label(), Reason: r.Reason, Since: r.Since,
		Expires: r.Expires, Count: r.Count, Source: r.Source, Origin: r.Node(), Ports: r.Ports,
	}
}

// wireCluster is the cluster part of status.
func wireCluster(s cluster.Stats) *control.ClusterStatus {
	var peerSkews map[string]float64
	for node, d := range s.PeerSkews {
		if peerSkews == nil {
			peerSkews = map[string]float64{}
		}
		peerSkews[node] = d.Seconds()
	}
	return &control.ClusterStatus{
		Node: s.Node, Servers: s.Servers, Stream: s.Stream, Share: s.Share, Accept: s.Accept,
		Connected: s.Connected, Server: s.Server, Since: s.Since, CaughtUp: s.CaughtUp, Resyncs: s.Resyncs,
		Published: s.Published, Queued: s.Queued, QueueDropped: s.QueueDropped, Expired: s.Expired,
		PublishErrors: s.PublishErrors, Received: s.Received, Applied: s.Applied, Ignored: s.Ignored,
		Malformed: s.Malformed, Oversize: s.Oversize, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
		StreamError: s.StreamError, ClockSkew: s.ClockSkew.Seconds(), ClockChecked: s.ClockChecked,
		PeerSkews: peerSkews, PublishRetries: s.PublishRetries,
	}
}

// feedStatus reports the feeds for `status`.
func (d *Daemon) feedStatus() []control.FeedStatus {
	var out []control.FeedStatus
	for _, f := range d.cfg.Feeds {
		fs, ok := d.feeds[f.Feed.Name]
		if !ok {
			out = append(out, control.FeedStatus{Name: f.Feed.Name, Error: "not started (see the log)"})
			continue
		}
		st := fs.loader.Stats()
		out = append(out, control.FeedStatus{
			Name: st.Name, Location: st.Location, Listed: len(fs.want), Enforced: len(fs.applied), Skipped: fs.skipped,
			Invalid: st.Invalid, TooWide: st.TooWide, Special: st.Special, LastLoad: st.LastLoad, LastOK: st.LastOK,
			Loads: st.Loads, Failures: st.Failures, Error: st.LastError,
		})
	}
	return out
}

// Learned lists the learned addresses (control.PolicyHandler).
func (h handler) Learned(ctx context.Context) (control.LearnedResponse, error) {
	var res control.LearnedResponse
	err := h.d.call(ctx, func() {
		d := h.d
		res = control.LearnedResponse{Mode: cmpMode(d.cfg.Policy.Firewall.Mode), LearnForSeconds: d.learnFor().Seconds(), Learned: []control.Learned{}}
		now := d.now()
		for _, l := range d.learned {
			if l.Until.After(now) {
				res.Learned = append(res.Learned, control.Learned{Addr: l.Addr.String(), Until: l.Until, Since: l.Since, Account: l.Account, Source: l.Source})
			}
		}
		slices.SortFunc(res.Learned, func(x, y control.Learned) int { return strings.Compare(x.Addr, y.Addr) })
	})
	return res, err
}

// Forget forgets a learned address (control.PolicyHandler).
func (h handler) Forget(ctx context.Context, req control.ForgetRequest) (control.ForgetResponse, error) {
	a, err := netip.ParseAddr(req.Addr)
	if err != nil {
		return control.ForgetResponse{}, control.BadRequest("%q is not an address", req.Addr)
	}
	res := control.ForgetResponse{Result: control.NotLearned}
	err = h.d.call(ctx, func() {
		if h.d.forget(a.Unmap().WithZone("")) {
			res.Result = control.Forgotten
			h.d.saveLearned()
		}
	})
	return res, err
}

// Explain says what sipguard's chain does with a packet from an address
// to a port (control.PolicyHandler; `sipguard policy explain`).
func (h handler) Explain(ctx context.Context, req control.ExplainRequest) (control.ExplainResponse, error) {
	a, err := netip.ParseAddr(req.Addr)
	if err != nil {
		return control.ExplainResponse{}, control.BadRequest("%q is not an address", req.Addr)
	}
	port, err := firewall.ParsePort(req.Port)
	if err != nil || port.Last > port.Port {
		return control.ExplainResponse{}, control.BadRequest("port: %q is not one port such as \"5060/udp\"", req.Port)
	}
	a = a.Unmap().WithZone("")
	var x explanation
	err = h.d.call(ctx, func() { x = h.d.explain(a, port) })
	return control.ExplainResponse{Addr: a.String(), Port: port.String(), Mode: x.Mode, Verdict: x.Verdict, Rule: x.Rule, Why: x.Why}, err
}
