package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/watchers"
)

// Interface guards: the daemon drives these backends.
var (
	_ firewall.Backend = (*firewall.DryRun)(nil)
)

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
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("run takes no arguments")
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
	fw, err := newBackend(cfg, *dryRun, log)
	if err != nil {
		return err
	}
	defer fw.Close()
	d, err := daemon.New(dcfg, fw, log, nil)
	if err != nil {
		return err
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			m.reload(ctx, d, *path, cfg, log)
		}
	}()
	return d.Run(ctx)
}

// reload re-reads the config on SIGHUP. An invalid config changes nothing.
func (m *Main) reload(ctx context.Context, d *daemon.Daemon, path string, running *Config, log zerolog.Logger) {
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
	if lvl, err := zerolog.ParseLevel(cfg.Daemon.LogLevel); err == nil {
		zerolog.SetGlobalLevel(lvl)
	}
}

// newBackend returns the firewall backend the config asks for.
func newBackend(cfg *Config, dryRun bool, log zerolog.Logger) (firewall.Backend, error) {
	if dryRun || cfg.Firewall.Backend == "dry-run" {
		return firewall.NewDryRun(log, nil), nil
	}
	var ports []firewall.Port
	for _, p := range cfg.Firewall.Ports {
		port, err := firewall.ParsePort(p)
		if err != nil {
			return nil, err
		}
		ports = append(ports, port)
	}
	fw, err := firewall.NewNFT(firewall.NFTOptions{
		Table: cfg.Firewall.Table, Hooks: cfg.Firewall.Hooks, Ports: ports,
		Logger: log.With().Str("component", "firewall").Logger(),
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
func (m *Main) daemonConfig(cfg *Config) (daemon.Config, error) {
	eopts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return daemon.Config{}, err
	}
	dc := daemon.Config{
		File: cfg.File, Version: Version(), Engine: eopts,
		StateDir: cfg.Daemon.StateDir, Socket: cfg.Daemon.Socket,
		ManualBanTime: time.Duration(cfg.Daemon.ManualBanTime),
	}
	if dc.File == "" {
		dc.File = "built-in"
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
		if s.Type == "syslog" {
			src.Listen = s.Listen
			for _, a := range s.Senders {
				p, _ := parsePrefix(a) // validated
				src.Senders = append(src.Senders, p)
			}
		}
		dc.Sources = append(dc.Sources, src)
	}
	return dc, nil
}

// newLogger logs for people on a terminal and as JSON lines otherwise
// (journald, files).
func newLogger(w io.Writer, level string) zerolog.Logger {
	zerolog.DurationFieldUnit = time.Second
	zerolog.TimeFieldFormat = time.RFC3339Nano
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(lvl)
	out := w
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
	}
	return zerolog.New(out).With().Timestamp().Logger()
}
