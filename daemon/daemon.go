// Package daemon is sipguard's long-running process: it follows the
// configured logs, runs their lines through the parsers and the rate
// engine, enforces the bans the engine decides through a firewall backend,
// answers the control socket, enforces blocklist feeds and the bans of the
// cluster, and keeps its state across restarts.
//
// It owns orchestration and I/O; the decisions are made elsewhere: the
// engine decides bans and spots compromises, the ledger (package bans)
// says what a new ban covers, replaces or needs.
//
// # Data flow
//
//	follower (one goroutine per log) -> parser -> events -----\
//	control socket (manual ban/unban, status, list) ----------->  core goroutine: engine, ledger
//	feeds, cluster ------------------------------------------/       -> firewall backend (batched)
//	                                                                  -> state files (bans, offences, positions)
//	                                                                  -> observers (metrics, notify, cluster)
//
// The core goroutine owns the engine and the ledger, so nothing there
// needs a lock. While it applies a batch of bans to the firewall, new lines
// queue up; the next round takes them all, so a burst of attackers becomes
// a few large firewall transactions instead of thousands of small ones.
//
// A log position is saved only once the bans its lines caused are in the
// firewall: a crash re-reads lines rather than losing a ban.
//
// Files: daemon.go (the core loop), sources.go, syslog.go and journal.go
// (what feeds it lines), wire.go (the wire sensor: captured SIP responses
// read into events), health.go (logging sources that are not read),
// enforce.go (decisions to the firewall and the ledger), allow.go (the
// allowlist: the last guard before the firewall, the kernel's allow sets,
// bans made before an address was allowlisted), special.go
// (special-purpose addresses: never banned), manual.go (ban, unban and
// import by hand), feeds.go, trunks.go (trunks admitted by name: their
// resolved addresses join the allowlist), cluster.go, state.go (the state files),
// notice.go (observers), control.go (the control socket: wire types in,
// wire types out), reload.go, learned.go and explain.go (the access policy
// of the SIP ports: the mode, learned phones, `policy explain`).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/logins"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/trunks"
	"github.com/sipguard/sipguard/watchers"
)

// Source is a log to follow: a file (Path), the messages syslog senders
// send (Listen, Senders), or the journal's messages of some units or
// programs (Journal).
type Source struct {
	Name     string
	Path     string
	Parser   string
	Factory  parsers.Factory // makes the parser; nil: the one registered as Parser
	Location *time.Location  // zone of timestamps without one
	Start    watchers.Start  // where to begin without a saved position
	Listen   []string        // syslog: "udp://0.0.0.0:514", "tcp://[::]:514"
	Senders  []netip.Prefix  // syslog: who may send
	Journal  journal.Match   // journald: whose messages
}

// syslog reports whether the source receives syslog messages.
func (s Source) syslog() bool { return len(s.Listen) > 0 }

// journald reports whether the source reads the journal.
func (s Source) journald() bool { return !s.Journal.Empty() }

func (s Source) factory() parsers.Factory {
	if s.Factory != nil {
		return s.Factory
	}
	return func(o parsers.Options) (parsers.Parser, error) { return parsers.New(s.Parser, o) }
}

// Config is what the daemon runs with.
type Config struct {
	File          string // the config file, shown in status
	Version       string
	Sources       []Source
	Engine        engine.Options // rules, allowlist, compromise rule
	StateDir      string
	Socket        string
	ManualBanTime time.Duration // for manual bans without a duration
	Feeds         []Feed        // blocklists to enforce
	Journalctl    string        // the program journald sources run ("": journalctl in PATH)
	Fraud         *Fraud        // toll-fraud rules for call sources; nil: off
	// GeoIP is the path of the country database ([geoip] database; "":
	// none), opened by New and again by each Reload.
	GeoIP string
	// CompromiseNewCountry ([compromise] on_new_country = "alert"): a
	// login from a country the account never used is logged and notified
	// as a compromise (rule NewCountryRule). Needs GeoIP.
	CompromiseNewCountry bool
	// RulePorts maps the rules with ports of their own to their ports
	// profile (firewall.PortsKey): their bans drop traffic to those ports
	// only. The firewall must have been set up with these profiles; the
	// other rules' bans, and those of every other origin, use the default
	// ports. A reload keeps the profiles the daemon started with.
	RulePorts map[string]string
	// Wire is the wire sensor (wire.go); nil: off. A reload keeps the one
	// the daemon started with.
	Wire *Wire
	// Policy is the access policy of the SIP ports and the learning of
	// phones (learned.go); the zero Policy is open.
	Policy Policy
	// Trunks are admitted by name: their addresses, resolved through
	// Resolver, and networks join the allowlist (trunks.go).
	Trunks   []trunks.Trunk
	Resolver trunks.Lookup
}

// Log field names.
const (
	fieldIP      = "ip"
	fieldPrefix  = "prefix"
	fieldRule    = "rule"
	fieldCount   = "count"
	fieldTTL     = "ttl_seconds"
	fieldSource  = "source"
	fieldReason  = "reason"
	fieldPath    = "path"
	fieldOffence = "offences"
	fieldNode    = "node"
	fieldState   = "state"
	fieldCountry = "country"
)

// Daemon runs sipguard. Create it with New, then call Run.
type Daemon struct {
	log     zerolog.Logger
	fw      firewall.Backend
	now     func() time.Time
	started time.Time

	calls   chan func()
	callers atomic.Int32 // calls waiting to start (call), not other nodes' (callRemote)
	batches chan batch
	ready   chan struct{}  // closed once Run has restored and started everything
	wg      sync.WaitGroup // followers
	runCtx  context.Context
	fwState fwStateCache // the firewall's part of status, read outside the core

	// Owned by the core goroutine.
	cfg         Config
	eng         *engine.Engine
	guard       *fraud.Guard            // toll-fraud rules; nil when off
	geo         *geoip.DB               // the country database; nil without one
	banGeo      map[netip.Prefix]string // country of each ban target (bansByCountry)
	logins      *logins.History         // where each account logged in from (logins.go)
	loginsSaved time.Time               // the last write of the logins file
	fraudCalls  map[string]int64        // calls to public numbers by destination (fraudStatus)
	fraudAlerts map[string]int64        // toll-fraud alerts by rule
	// fraudLive is the source of each answered call under way, for the
	// alerts Guard.Tick raises about it.
	fraudLive  map[string]string
	fraudSwept time.Time  // fraudLive last swept (fraudTick)
	fraudBans  []fraudBan // bans of fraud alerts, decided fraudBanDelay later
	ledger     *bans.Ledger
	evidence   *evidence
	pending    []decision
	pendingPos map[string]savedPosition
	surges     map[string]*surge // by source (surge.go)
	positions  map[string]savedPosition
	bansDirty  bool
	posDirty   bool
	runners    map[string]*runner
	ruleBans   map[string]int64
	stale      int64
	retryAt    time.Time
	uncovering map[netip.Prefix]time.Time // wider bans gone whose covered ones the firewall failed to put back (uncoverAgain), since
	// uncoverHint is when the firewall said it lets go of the earliest
	// network that kept a return out (firewall.OverlapError.Until): the
	// returns are tried again then, not at the next doubling step.
	uncoverHint    time.Time
	retryWait      time.Duration
	fwErr          string
	lastSaved      time.Time
	lastTry        time.Time
	bansTry        time.Time     // the last save of the bans file begun
	bansEvery      time.Duration // how often the bans file may be written (saveInterval)
	saveErr        string
	bansFailed     bool // the last write of the bans file failed: saveErr stays until one succeeds
	saving         bool // a snapshot is being written
	gen            uint64
	saveWaiters    []saveWaiter
	saveJobs       chan saveJob
	saveResults    chan saveResult
	skewWarned     map[string]time.Time
	health         map[string]sourceHealth     // by source, for watchSources
	verify         func(context.Context) error // the restore's read-back, when deferred
	observers      []Observer
	unbans         map[string]int64 // by reason
	fwErrors       int64
	allowRefused   int64 // bans refused at the last guard (ban): they covered an allowlisted address
	specialRefused int64 // the same: they covered special-purpose addresses (bans.Special)
	feeds          map[string]*feedState
	stopFeeds      func()

	trunkSet   trunks.Set     // the trunks' last set (trunks.go)
	trunkAllow []netip.Prefix // its addresses and networks, in the allowlist
	allowDirty bool           // the allowlist not in the firewall yet, or the bans covering it not fitted (applyAllow)
	stopTrunks func()

	cluster         Cluster // nil: no [cluster]
	clusterEscalate bool
	peerLimits      PeerLimits
	peerRate        map[string]peerRate  // bans of each peer made within the last minute
	peerWarned      map[string]time.Time // limit warnings, by peer and reason
	peerFlush       flushCost            // what enforcing a peer's ban costs (cluster.go)
	peerPace        pace                 // other nodes' work spread over time (cluster.go)

	// The learned phones (learned.go).
	learned       map[netip.Addr]*learnedAddr
	learnedBy     map[string]int           // account -> its addresses in learned
	learnRefused  map[netip.Addr]time.Time // compromise: not learned until
	learnedDirty  bool
	learnRefusals int64
	// learnFullWarned: when the warning that maxLearned was reached was
	// last logged.
	learnFullWarned time.Time
	// learnAccountWarned: the same for MaxLearnedPerAccount.
	learnAccountWarned time.Time
	// learnForgeableWarned: when a login from a forgeable syslog message
	// was last warned of as not learned.
	learnForgeableWarned time.Time
}

// New checks cfg and returns a daemon enforcing bans through fw. now is
// the clock (nil: time.Now).
func New(cfg Config, fw firewall.Backend, log zerolog.Logger, now func() time.Time) (*Daemon, error) {
	if now == nil {
		now = time.Now
	}
	cfg.Engine = withPorts(withSpecial(cfg.Engine), cfg.RulePorts)
	eng, err := engine.New(cfg.Engine)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if cfg.ManualBanTime <= 0 {
		cfg.ManualBanTime = 24 * time.Hour
	}
	guard, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	geo, err := openGeoIP(cfg.GeoIP)
	if err != nil {
		return nil, err
	}
	logGeoIP(log, geo, cfg.GeoIP, now())
	if cfg.Policy.Firewall.Countries == nil || geo == nil {
		// Not read already by CountryNetworks, from the same file.
		if err := countryPolicy(log, geo, &cfg.Policy); err != nil {
			return nil, err
		}
	}
	if cfg.CompromiseNewCountry && geo == nil {
		return nil, fmt.Errorf("[compromise] on_new_country needs a [geoip] database")
	}
	history := logins.New(0) // Run restores the saved one
	if guard != nil {
		guard.UseLogins(history)
	}
	for _, s := range cfg.Sources {
		if cfg.Wire != nil && s.Name == WireSource {
			return nil, fmt.Errorf("source %s: the name is the wire sensor's", s.Name)
		}
		if IsCallParser(s.Parser) {
			if cfg.Fraud == nil || s.syslog() || s.journald() {
				return nil, fmt.Errorf("source %s: parser %s reads a call log (a file) for the [fraud] rules, which are off", s.Name, s.Parser)
			}
			continue
		}
		if s.Factory == nil && !parsers.Known(s.Parser) {
			return nil, fmt.Errorf("source %s: unknown parser %q", s.Name, s.Parser)
		}
		if s.journald() {
			if err := s.Journal.Validate(); err != nil {
				return nil, fmt.Errorf("source %s: %w", s.Name, err)
			}
		}
	}
	return &Daemon{
		log: log, fw: fw, now: now, cfg: cfg, eng: eng, guard: guard, geo: geo, logins: history,
		fraudCalls: map[string]int64{}, fraudAlerts: map[string]int64{}, fraudLive: map[string]string{},
		calls:        make(chan func()),
		ready:        make(chan struct{}),
		batches:      make(chan batch, 64),
		ledger:       bans.NewLedger(),
		peerRate:     map[string]peerRate{},
		peerWarned:   map[string]time.Time{},
		learned:      map[netip.Addr]*learnedAddr{},
		learnedBy:    map[string]int{},
		learnRefused: map[netip.Addr]time.Time{},
		evidence:     newEvidence(),
		pendingPos:   map[string]savedPosition{},
		surges:       map[string]*surge{},
		positions:    map[string]savedPosition{},
		runners:      map[string]*runner{},
		ruleBans:     map[string]int64{},
		skewWarned:   map[string]time.Time{},
		health:       map[string]sourceHealth{},
		unbans:       map[string]int64{},
		feeds:        map[string]*feedState{},
		stopFeeds:    func() {},
		stopTrunks:   func() {},
		saveJobs:     make(chan saveJob, 1),
		saveResults:  make(chan saveResult, 1),
	}, nil
}

// withSpecial makes sure the engine drops the events of special-purpose
// addresses (bans.Special), whoever configured it.
func withSpecial(o engine.Options) engine.Options {
	if o.Special == nil {
		o.Special = bans.Special
	}
	return o
}

// withPorts gives each rule its ports profile (Config.RulePorts), which
// the engine bans apart.
func withPorts(o engine.Options, rulePorts map[string]string) engine.Options {
	o.Rules = slices.Clone(o.Rules)
	for i := range o.Rules {
		o.Rules[i].Ports = rulePorts[o.Rules[i].Name]
	}
	return o
}

// Run restores the saved state, starts following the logs and runs until
// ctx is done. On return the state is saved and the bans stay in force.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = d.now()
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	trunkWatcher := d.restoreTrunks()
	if err := d.restore(ctx); err != nil {
		return err
	}
	d.restoreLogins()
	if err := d.restorePolicy(ctx); err != nil {
		return err
	}
	ctl, err := d.listen()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.runCtx = ctx
	// Before anything else starts: a capture that cannot start (its
	// group held by ulogd2) stops the daemon with a clear error.
	if err := d.startWire(ctx); err != nil {
		ctl.Close()
		return err
	}
	go d.saver(d.cfg.StateDir, d.saveJobs, d.saveResults)
	defer close(d.saveJobs)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		d.serve(ctx, ctl)
	}()
	if d.verify != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := d.verify(ctx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error().Err(err).Msg("restored bans could not be read back from the kernel")
			}
		}()
	}
	if r, ok := d.fw.(reconciler); ok {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := r.Reconcile(ctx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error().Err(err).Msg("firewall reconcile stopped")
			}
		}()
	}
	for _, s := range d.cfg.Sources {
		d.startSource(s)
	}
	d.awaitSources(ctx)
	d.watchSources()
	d.startFeeds(ctx)
	d.runTrunks(ctx, trunkWatcher)
	d.log.Info().Int("sources", len(d.cfg.Sources)).Int("rules", len(d.cfg.Engine.Rules)).
		Int("bans", d.ledger.Len()).Str("socket", d.cfg.Socket).Msg("sipguard running")
	close(d.ready)

	d.loop(ctx)

	// Stop: the followers end with ctx; handle what they already sent.
	d.stopFeeds()
	d.stopTrunks()
	d.stopSources()
	d.drain()
	d.flush(context.Background())
	d.expire()
	d.finalSave(d.saveResults)
	d.saveLogins(true)
	d.saveLearned()
	cancel()
	bg.Wait()
	d.log.Info().Int("bans", d.ledger.Len()).Msg("sipguard stopped; bans stay in force")
	return nil
}

// Ready is closed once the daemon runs: bans restored into the firewall,
// the control socket answering, the logs followed.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Alive reports whether the core goroutine answers within ctx: what a
// watchdog should check.
func (d *Daemon) Alive(ctx context.Context) error { return d.call(ctx, func() {}) }

// reconciler is a backend that repairs changes made behind its back.
type reconciler interface {
	Reconcile(ctx context.Context) error
}

// loop is the core goroutine.
func (d *Daemon) loop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// A network ban holding others (bans.Ledger.CoverEnd) ends in the
	// kernel by itself: the bans inside it go in then, coverSlack after,
	// not at the next tick, up to a second later. The firewall's ban may
	// end later than its record, by as long as the call that set it took
	// (a large batch, a restore): refused then as overlapping, the bans
	// inside are tried again coverSlack later, then twice as long each
	// time (uncoverRetry), until the tick's; or, sooner, coverSlack after
	// the firewall said it lets the network go (uncoverHint): a restore's
	// lag of 0.6 s made the doubling steps put them back 1 s late.
	cover := time.NewTimer(time.Hour)
	cover.Stop()
	defer cover.Stop()
	var coverAt, retryAt time.Time
	var retry time.Duration
	armCover := func() {
		now := d.now()
		at := d.ledger.CoverEnd(now)
		if !at.IsZero() {
			at = at.Add(coverSlack)
		}
		if len(d.uncovering) == 0 {
			retry, retryAt = 0, time.Time{}
		} else {
			if !now.Before(retryAt) {
				retry = uncoverRetry(retry)
				retryAt = now.Add(retry)
			}
			if h := d.uncoverHint; !h.IsZero() && h.Add(coverSlack).Before(retryAt) {
				retryAt = h.Add(coverSlack)
			}
			if at.IsZero() || retryAt.Before(at) {
				at = retryAt
			}
		}
		if at.Equal(coverAt) {
			return
		}
		if coverAt = at; at.IsZero() {
			cover.Stop()
			return
		}
		cover.Reset(max(at.Sub(now), 0))
	}
	for {
		hintEarlier := !d.uncoverHint.IsZero() && d.uncoverHint.Add(coverSlack).Before(retryAt)
		if d.ledger.TakeHoldChange() || len(d.uncovering) > 0 && (retryAt.IsZero() || hintEarlier) {
			armCover()
		}
		// The logs' lines first: a queue of calls (other nodes' bans in
		// chunks, status requests) never holds up a local ban for more
		// than one call.
		select {
		case b := <-d.batches:
			d.handle(b)
			d.drainQueued()
			d.flush(ctx)
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return
		case b := <-d.batches:
			d.handle(b)
			d.drainQueued()
			d.flush(ctx)
		case f := <-d.calls:
			f()
		case r := <-d.saveResults:
			d.saved(r)
		case <-cover.C:
			due := !retryAt.IsZero() && !d.now().Before(retryAt)
			d.expire()
			if due {
				d.uncoverAgain(ctx)
			}
			coverAt = time.Time{}
			armCover()
		case <-tick.C:
			d.fraudTick()
			d.fraudBansDue() // before the flush: their bans go with it
			if len(d.pending) > 0 && !d.now().Before(d.retryAt) {
				d.flush(ctx)
			}
			d.expire()
			d.uncoverAgain(ctx)
			d.applyFeeds(ctx)
			d.applyAllow(ctx)
			d.initialPositions()
			d.watchSources()
			d.watchSurges()
			d.save(false)
			d.saveLogins(false)
			d.expireLearned()
			armCover()
		}
	}
}

// coverSlack is how long after a network ban's end the bans it held go
// in: the kernel ends an element at the jiffy after its timeout (4 ms at
// HZ=250), counted from when it was added, a little after its record's
// start, and refuses a network overlapping one not yet ended.
const coverSlack = 20 * time.Millisecond

// uncoverRetry returns how long to wait before the next try of the bans
// inside a network ban gone that the firewall refused, after waiting
// last: coverSlack, then twice as long, up to the tick's second. A
// firewall refusing for good costs a few tries, not fifty a second.
func uncoverRetry(last time.Duration) time.Duration {
	return min(max(2*last, coverSlack), time.Second)
}

// localWaiting says whether local work waits for the core goroutine:
// lines of the logs (or the wire sensor's packets), or a call (the
// control socket, feeds, trunks). Other nodes' work ends its turn early
// for it, so that a local ban never waits behind the cluster's.
func (d *Daemon) localWaiting() bool { return len(d.batches) > 0 || d.callers.Load() > 0 }

// drain handles the batches already queued, without waiting.
func (d *Daemon) drain() {
	for !d.drainQueued() {
	}
}

// drainQueued handles the batches queued, without waiting, but no more
// than the queue holds, and reports whether it found the queue empty: a
// source that keeps it full (the wire sensor sends a batch a packet, and
// a flood of refusals to an allowlisted address is thousands a second)
// must not hold up the flush of the bans the batches before it made.
func (d *Daemon) drainQueued() bool {
	for range cap(d.batches) {
		select {
		case b := <-d.batches:
			d.handle(b)
		default:
			return true
		}
	}
	return false
}

// call runs f on the core goroutine and waits for it. It is local work
// (localWaiting) until it starts: a turn of other nodes' bans ends early
// for it.
func (d *Daemon) call(ctx context.Context, f func()) error { return d.callAs(ctx, f, true) }

// callRemote is call for other nodes' work, which yields to local work.
func (d *Daemon) callRemote(ctx context.Context, f func()) error { return d.callAs(ctx, f, false) }

func (d *Daemon) callAs(ctx context.Context, f func(), local bool) error {
	done := make(chan struct{})
	run := func() { f(); close(done) }
	if local {
		d.callers.Add(1)
		run = func() { d.callers.Add(-1); f(); close(done) }
	}
	select {
	case d.calls <- run:
	case <-ctx.Done():
		if local {
			d.callers.Add(-1)
		}
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
