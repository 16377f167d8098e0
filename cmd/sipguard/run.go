package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/metrics"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/sdnotify"
	"github.com/sipguard/sipguard/watchers"
)

// Interface guards: the daemon drives these backends.
var (
	_ firewall.Backend = (*firewall.DryRun)(nil)
)

var runCommand = command{"run", "run the daemon: follow the logs, ban in nftables (as root)", (*Main).run}

const runSynopsis = `run [-c FILE] [--dry-run]

Runs the daemon in the foreground (systemd style): follows the configured
logs, bans attackers in the kernel (nftables) and answers the control
socket. SIGHUP reloads the config (an invalid one is reported and the
running one kept); SIGTERM or SIGINT stop it, leaving the bans in force.
Needs root (CAP_NET_ADMIN) unless --dry-run.`

func (m *Main) run(ctx context.Context, args []string) error {
	fs := m.flagSet("run", runSynopsis)
	path := fs.String("c", "", "config `FILE`")
	dryRun := fs.Bool("dry-run", false, "log bans instead of enforcing them (overrides [firewall] backend)")
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := m.loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, cfg.Daemon.LogLevel)
	dcfg, err := m.daemonConfig(cfg)
	if err != nil {
		return err
	}
	for _, w := range m.lockoutWarnings(dcfg.Engine.Allow) {
		log.Warn().Msg(w)
	}
	if dcfg.Policy.Firewall.Enforced() && len(dcfg.Policy.AllowCountries) > 0 {
		// Into the table from the start: set up without them, the
		// firewall would drop those sources (and delete the last run's
		// country sets) until the daemon loaded them.
		if err := daemon.CountryNetworks(log, dcfg.GeoIP, &dcfg.Policy); err != nil {
			return err
		}
	}
	fw, err := newBackend(cfg, dcfg.Engine.Allow, dcfg.Policy.Firewall.Countries, *dryRun, log)
	if err != nil {
		return err
	}
	defer fw.Close()
	d, err := daemon.New(dcfg, fw, log, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel() // runs before bg.Wait
	if cfg.Metrics.Listen != "" {
		l, err := metrics.Listen(cfg.Metrics.Listen)
		if err != nil {
			return err
		}
		met := metrics.New(d.Status, Version())
		d.Observe(metricsObserver{met})
		bg.Go(func() {
			if err := met.Serve(ctx, l); err != nil {
				log.Error().Err(err).Msg("metrics listener stopped")
			}
		})
		log.Info().Str("listen", l.Addr().String()).Msg("metrics at /metrics")
	}
	var notifier notifier
	if len(cfg.Notify) > 0 {
		hooks, cmds := cfg.NotifyTargets()
		disp, err := notify.New(hooks, cmds, log.With().Str("component", "notify").Logger())
		if err != nil {
			return err
		}
		d.Observe(notifyObserver{disp})
		bg.Go(func() { disp.Run(ctx) })
		notifier = disp
	}
	if cfg.Audit.Interval > 0 {
		minSev, _ := audit.ParseSeverity(cfg.Audit.MinSeverity) // validated
		self, err := m.selfAudit(*path)
		if err != nil {
			self = nil
		}
		a := &auditor{cfg: cfg.Audit, min: minSev, stateDir: cfg.Daemon.StateDir, self: self, notify: notifier,
			log: log.With().Str("component", "audit").Logger(), now: time.Now}
		bg.Go(func() { a.run(ctx) })
	}
	if len(cfg.Cluster.Servers) > 0 {
		node, err := cluster.New(cfg.Cluster.Node(), d, log)
		if err != nil {
			return err
		}
		d.Join(node, cfg.Cluster.Escalate)
		c := cfg.Cluster
		d.LimitPeers(daemon.PeerLimits{Bans: c.MaxPeerBans, Networks: c.MaxPeerNetworks, Space4: c.MaxPeerSpace4,
			Space6: c.MaxPeerSpace6, PerMinute: c.MaxPeerPerMinute, Unbans: c.MaxPeerUnbans})
		bg.Go(func() {
			if err := node.Run(ctx); err != nil {
				log.Error().Err(err).Msg("cluster: not joined; bans stay local")
			}
		})
	}
	bg.Go(func() { systemd(ctx, d, log) })

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			sdnotify.Notify(sdnotify.ReloadingNow())
			m.reload(ctx, d, *path, cfg, log)
			sdnotify.Notify(sdnotify.Ready)
		}
	}()
	return d.Run(ctx)
}

// healthEvery is how often, at most, the daemon's health is told to
// systemd (STATUS=) when no watchdog ticks more often.
const healthEvery = 10 * time.Second

// systemd tells systemd (Type=notify) when the daemon is ready and, when
// the unit sets WatchdogSec, that it is alive: only while its core
// goroutine answers, so a hung daemon is restarted. STATUS= says whether
// it runs healthy ("running") or degraded, and why, as `status` would
// (systemctl status shows it).
func systemd(ctx context.Context, d *daemon.Daemon, log zerolog.Logger) {
	select {
	case <-d.Ready():
	case <-ctx.Done():
		return
	}
	if !sdnotify.Enabled() {
		return
	}
	health := systemdHealth(ctx, d)
	if err := sdnotify.Notify(sdnotify.Ready + "\nSTATUS=" + health); err != nil {
		log.Warn().Err(err).Msg("could not tell systemd the daemon is ready")
	}
	defer sdnotify.Notify(sdnotify.Stopping)
	every := sdnotify.WatchdogInterval() / 2
	check := healthEvery
	if every > 0 {
		check = min(every, healthEvery) // pings the watchdog at least as often as it asks
	}
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if every > 0 {
			actx, cancel := context.WithTimeout(ctx, every)
			err := d.Alive(actx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					log.Error().Err(err).Msg("the daemon's core does not answer; not telling the watchdog")
				}
				continue
			}
			sdnotify.Notify(sdnotify.Watchdog)
		}
		if h := systemdHealth(ctx, d); h != health {
			health = h
			sdnotify.Notify("STATUS=" + h)
		}
	}
}

// systemdHealth is the daemon's STATUS= for systemd: "running", or
// "degraded: " and what status names (on one line, as the protocol wants).
func systemdHealth(ctx context.Context, d *daemon.Daemon) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := d.Status(ctx)
	if err != nil {
		return "no status: " + err.Error()
	}
	if problems := degraded(st); len(problems) > 0 {
		return strings.ReplaceAll((&degradedError{problems}).Error(), "\n", " ")
	}
	return "running"
}

// notifyObserver sends the daemon's notices to the [[notify]] targets.
type notifyObserver struct{ d *notify.Dispatcher }

func (o notifyObserver) Notice(n daemon.Notice) {
	if n.Node != "" {
		return // a peer's bans are notified by the node that decided them
	}
	ev := notify.Event{
		Type: string(n.Type), Rule: n.Rule, Reason: n.Reason, Source: n.Source,
		User: n.User, Count: n.Count, Offences: n.Offences, Time: n.Time, Expires: n.Expires,
		Country: n.Country,
	}
	if n.Target.IsValid() { // none for a fraud alert or a drop surge
		ev.Target = bans.String(n.Target)
	}
	if n.Addr.IsValid() {
		ev.Addr = n.Addr.String()
	}
	o.d.Notify(ev)
}

func (o notifyObserver) NotifyStatus() []control.NotifyStatus {
	var out []control.NotifyStatus
	for _, s := range o.d.Stats() {
		out = append(out, control.NotifyStatus{
			Name: s.Name, Kind: s.Kind, Sent: s.Sent, Failed: s.Failed, Dropped: s.Dropped,
			Queued: s.Queued + s.InFlight, LastError: s.LastError, LastErrorTime: s.LastErrorTime,
		})
	}
	return out
}

// metricsObserver counts the daemon's notices in the metrics.
type metricsObserver struct{ m *metrics.Metrics }

func (o metricsObserver) Notice(n daemon.Notice) {
	if n.Node != "" {
		n.Rule = "cluster" // one label for every other node's bans
	}
	switch n.Type {
	case daemon.NoticeBan:
		o.m.Ban(n.Rule, n.Latency)
	case daemon.NoticeUnban:
		o.m.Unban(n.Rule, n.Reason)
	case daemon.NoticeCompromise:
		o.m.Compromise(n.Source)
	case daemon.NoticeFraud:
		o.m.Fraud(n.Rule)
	case daemon.NoticeDropSurge:
		o.m.DropSurge(n.Source)
	}
}

// reload re-reads the config on SIGHUP. An invalid config changes nothing.
func (m *Main) reload(ctx context.Context, d *daemon.Daemon, path string, running *config.Config, log zerolog.Logger) {
	cfg, err := m.loadConfig(path)
	if err != nil {
		log.Error().Err(err).Msg("config not reloaded; the running one is kept")
		return
	}
	dcfg, err := m.daemonConfig(cfg)
	if err == nil {
		err = d.Reload(ctx, dcfg)
	}
	if err != nil {
		log.Error().Err(err).Msg("config not reloaded; the running one is kept")
		return
	}
	if fmt.Sprint(cfg.Firewall) != fmt.Sprint(running.Firewall) {
		log.Warn().Msg("[firewall] changes take effect on restart")
	}
	if fmt.Sprint(cfg.Notify) != fmt.Sprint(running.Notify) || cfg.Metrics != running.Metrics {
		log.Warn().Msg("[[notify]] and [metrics] changes take effect on restart")
	}
	if fmt.Sprint(cfg.Cluster) != fmt.Sprint(running.Cluster) {
		log.Warn().Msg("[cluster] changes take effect on restart")
	}
	if lvl, err := zerolog.ParseLevel(cfg.Daemon.LogLevel); err == nil {
		zerolog.SetGlobalLevel(lvl)
	}
}

// newBackend returns the firewall backend the config asks for, with the
// allowlist and the allowed countries' networks in its table from the
// start.
func newBackend(cfg *config.Config, allow, countries []netip.Prefix, dryRun bool, log zerolog.Logger) (firewall.Backend, error) {
	if dryRun || cfg.Firewall.Backend == "dry-run" {
		if cfg.Wire.Enabled {
			log.Warn().Msg("[wire] with the dry-run backend: no rules copy the PBX's responses, the wire sensor reads nothing")
		}
		return firewall.NewDryRun(log, nil), nil
	}
	ports, profiles, _, err := cfg.PortProfiles()
	if err != nil {
		return nil, err
	}
	wire, err := cfg.Wire.FirewallWire()
	if err != nil {
		return nil, err
	}
	policy, err := cfg.FirewallPolicy()
	policy.Countries = countries
	if err != nil {
		return nil, err
	}
	fw, err := firewall.NewNFT(firewall.NFTOptions{
		Table: cfg.Firewall.Table, Hooks: cfg.Firewall.Hooks, Ports: ports, Profiles: profiles, Allow: allow,
		Wire: wire, Policy: policy, Logger: log.With().Str("component", "firewall").Logger(),
	})
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("nftables: %w (run as root or with CAP_NET_ADMIN, or use --dry-run)", err)
		}
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return fw, nil
}

// daemonConfig turns the config file into the daemon's settings.
func (m *Main) daemonConfig(cfg *config.Config) (daemon.Config, error) {
	eopts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return daemon.Config{}, err
	}
	_, _, rulePorts, err := cfg.PortProfiles()
	if err != nil {
		return daemon.Config{}, err
	}
	dc := daemon.Config{
		File: cfg.File, Version: Version(), Engine: eopts,
		StateDir: cfg.Daemon.StateDir, Socket: cfg.Daemon.Socket,
		ManualBanTime: time.Duration(cfg.Daemon.ManualBanTime), RulePorts: rulePorts,
		GeoIP: cfg.GeoIP.Database, CompromiseNewCountry: cfg.Compromise.OnNewCountry == "alert",
	}
	if dc.File == "" {
		dc.File = "built-in"
	}
	if dc.Policy, err = policyConfig(cfg); err != nil {
		return daemon.Config{}, err
	}
	for _, f := range cfg.Feeds {
		dc.Feeds = append(dc.Feeds, daemon.Feed{Feed: f.Feed(), Expire: time.Duration(f.Expire)})
	}
	if dc.Trunks = cfg.TrunkList(); len(dc.Trunks) > 0 {
		r, err := cfg.Resolver()
		if err != nil {
			return daemon.Config{}, fmt.Errorf("[trunks]: %w", err)
		}
		dc.Resolver = r
	}
	if cfg.Fraud.Enabled {
		rules, err := cfg.Fraud.Options()
		if err != nil {
			return daemon.Config{}, fmt.Errorf("[fraud]: %w", err)
		}
		cols, err := cfg.Fraud.CDRColumns()
		if err != nil {
			return daemon.Config{}, fmt.Errorf("[fraud] cdr_options: %w", err)
		}
		dc.Fraud = &daemon.Fraud{Rules: rules, CDR: cols, Ban: cfg.Fraud.Action == "ban", BanTime: time.Duration(cfg.Fraud.BanTime)}
	}
	if dc.Wire, err = newWire(cfg.Wire); err != nil {
		return daemon.Config{}, err
	}
	for _, s := range cfg.Sources {
		start := watchers.StartEnd
		if s.Start == "beginning" {
			start = watchers.StartBeginning
		}
		src := daemon.Source{
			Name: s.Name, Path: s.Path, Parser: s.Parser, Factory: cfg.ParserFactory(s.Parser),
			Location: s.Location(), Start: start,
		}
		switch s.Type {
		case "syslog":
			src.Listen, src.Senders = s.Listen, s.SenderPrefixes()
		case "journald":
			src.Journal = s.JournalMatch()
		}
		dc.Sources = append(dc.Sources, src)
	}
	return dc, nil
}

// logFormats sets zerolog's formats, once per process: they are plain
// package variables that every goroutine logging reads, so setting them
// again while a daemon logs (a second Main.Run in one process, as the
// tests do) was a data race (found by test.sh's -race pass).
var logFormats = sync.OnceFunc(func() {
	zerolog.DurationFieldUnit = time.Second
	zerolog.TimeFieldFormat = time.RFC3339Nano
})

// newLogger logs for people on a terminal and as JSON lines otherwise
// (journald, files).
func newLogger(w io.Writer, level string) zerolog.Logger {
	logFormats()
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(lvl)
	out := w
	if f, ok := w.(*os.File); ok {
		switch {
		case isatty.IsTerminal(f.Fd()):
			out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
		case toJournal(f):
			out = journalWriter{w}
		}
	}
	return zerolog.New(out).With().Timestamp().Logger()
}

// toJournal reports whether f is the stream systemd connected to the
// journal: $JOURNAL_STREAM names its device and inode (systemd.exec(5)).
func toJournal(f *os.File) bool {
	var dev, ino uint64
	if _, err := fmt.Sscanf(os.Getenv("JOURNAL_STREAM"), "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	return syscall.Fstat(int(f.Fd()), &st) == nil && uint64(st.Dev) == dev && st.Ino == ino
}

// journalWriter starts each log line with the syslog priority of its level
// ("<4>" for a warning), which journald reads from a service's output
// (SyslogLevelPrefix=, on by default) and strips: `journalctl -p warning`
// then shows warnings, compromise alerts and errors, and `-o cat` the JSON.
type journalWriter struct{ w io.Writer }

func (j journalWriter) Write(p []byte) (int, error) { return j.WriteLevel(zerolog.NoLevel, p) }

func (j journalWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	prio := byte('6') // info, and lines without a level
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		prio = '7'
	case zerolog.WarnLevel:
		prio = '4'
	case zerolog.ErrorLevel:
		prio = '3'
	case zerolog.FatalLevel:
		prio = '2'
	case zerolog.PanicLevel:
		prio = '0'
	}
	line := append([]byte{'<', prio, '>'}, p...)
	if _, err := j.w.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}
