package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/replay"
	"github.com/sipguard/sipguard/report"
)

var scanCommand = command{"scan", "replay logs offline and print the bans the rules would make", (*Main).scan}

const scanSynopsis = `scan [-c FILE] [--parser NAME] [--events] [--json] FILE...
       sipguard scan [-c FILE] [--events] [--json] --pcap CAPTURE

Replays logs through the parsers and rules, using the times in the lines,
and prints the bans the rules would make, or with --events every event.
A FILE of "-" is standard input; gzip-compressed files are read as such.
Several files are merged in time order (messages.log.1 messages.log).

A FILE that is the path of a configured [[source]] uses its parser and
name, one of its rotated copies (PATH.1, PATH.2.gz, PATH-20261127) its
parser and zone; others use --parser, or the parser of the configured
sources when they all use the same one. A file given twice is refused.
With --parser cel (sipguard's cel_custom mapping) or cdr (Master.csv),
the records are calls, checked by the toll-fraud rules of [fraud]; scan
prints their alerts. With --pcap, the PBX's SIP responses in a pcap or
pcapng capture (tcpdump, sngrep) go through the wire sensor
(docs/wire.md) instead. Parsers: `

type scanOptions struct {
	config string
	parser string
	events bool
	json   bool
	pcap   string
	files  []string
}

func (m *Main) scan(ctx context.Context, args []string) error {
	fs := m.flagSet("scan", scanSynopsis+strings.Join(parsers.Names(), ", "))
	var o scanOptions
	fs.StringVar(&o.config, "c", "", "config `FILE`")
	fs.StringVar(&o.parser, "parser", "", "parse every FILE with parser `NAME`")
	fs.BoolVar(&o.events, "events", false, "print every event instead of the bans")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line")
	fs.StringVar(&o.pcap, "pcap", "", "read the SIP responses of capture `FILE` (pcap or pcapng; - for standard input)")
	files, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if o.pcap != "" {
		if len(files) > 0 || o.parser != "" {
			return usagef("scan --pcap reads one capture: no log FILE or --parser with it")
		}
		cfg, err := m.loadConfig(o.config)
		if err != nil {
			return err
		}
		return m.scanPcap(ctx, cfg, o)
	}
	if len(files) == 0 {
		return usagef("scan needs at least one FILE (- for standard input)")
	}
	o.files = files
	cfg, err := m.replayConfig(o.config, o.parser)
	if err != nil {
		return err
	}
	if isCallParser(o.parser) {
		return m.scanCalls(ctx, cfg, o)
	}
	return m.runScan(ctx, cfg, o)
}

// replayConfig loads the config of scan and report and checks --parser.
func (m *Main) replayConfig(path, parser string) (*config.Config, error) {
	cfg, err := m.loadConfig(path)
	if err != nil {
		return nil, err
	}
	if parser != "" && !cfg.KnownParser(parser) && !isCallParser(parser) {
		return nil, usagef("unknown parser %q (known: %s)", parser, strings.Join(cfg.ParserNames(), ", "))
	}
	return cfg, nil
}

func (m *Main) runScan(ctx context.Context, cfg *config.Config, o scanOptions) error {
	start := time.Now()
	eng, r, done, err := m.startReplay(ctx, cfg, o.parser, o.files)
	if err != nil {
		return err
	}
	defer done()
	out := bufio.NewWriterSize(m.Stdout, 64<<10)
	p := newScanPrinter(out, o.json)
	for ev := r.Next(); ev != nil; ev = r.Next() {
		p.observe(eng, ev, o.events)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	if err := p.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	m.scanSummary(r.Stats(), eng.Stats(), time.Since(start))
	return nil
}

// observe runs ev through the engine and prints it (with events), or the
// ban or compromise it makes.
func (p *scanPrinter) observe(eng *engine.Engine, ev *parsers.Event, events bool) {
	if ev.Kind == parsers.AuthSucceeded {
		c, compromised := eng.Success(ev)
		switch {
		case events:
			p.event(ev)
		case compromised:
			p.compromise(c)
			if c.Ban != nil {
				p.ban(*c.Ban)
			}
		}
		return
	}
	ban, banned := eng.Observe(ev)
	switch {
	case events:
		p.event(ev)
	case banned:
		p.ban(ban)
	}
}

// startReplay makes the engine of cfg's rules and starts replaying files,
// as scan and report do. Call done when finished with the replay.
func (m *Main) startReplay(ctx context.Context, cfg *config.Config, parser string, files []string) (eng *engine.Engine, r *replay.Replay, done func(), err error) {
	opts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return nil, nil, nil, err
	}
	if eng, err = engine.New(opts); err != nil {
		return nil, nil, nil, fmt.Errorf("rules: %w", err)
	}
	if err := m.distinctInputs(files); err != nil {
		return nil, nil, nil, err
	}
	var sources []replay.Source
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, f := range files {
		src, closer, err := m.openSource(cfg, parser, f)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		closers = append(closers, closer)
		sources = append(sources, src)
	}
	if r, err = replay.Start(ctx, sources, replay.Options{Now: m.Now}); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	restoreGC := lateFirstGC()
	return eng, r, func() { r.Close(); closeAll(); restoreGC() }, nil
}

// openSource opens one FILE and picks its parser and source name.
func (m *Main) openSource(cfg *config.Config, parserFlag, file string) (replay.Source, io.Closer, error) {
	name, parser, loc := file, parserFlag, time.Local
	if file == "-" {
		name = "stdin"
	}
	var sources []string
	var exact, rotated *config.SourceConfig
	for i, src := range cfg.Sources {
		if !slices.Contains(sources, src.Parser) {
			sources = append(sources, src.Parser)
		}
		if file == "-" || src.Type != "file" {
			continue
		}
		if exact == nil && samePath(src.Path, file) {
			exact = &cfg.Sources[i]
		} else if rotated == nil && rotationOf(src.Path, file) {
			rotated = &cfg.Sources[i]
		}
	}
	if exact == nil && rotated != nil {
		// A rotated copy keeps its own name (the summary tells the files
		// apart) and is read as the source is: with its parser and in its
		// zone, or its times would not merge with the live log's.
		loc = rotated.Location()
		if parser == "" {
			parser = rotated.Parser
		}
	}
	if exact != nil {
		name, loc = exact.Name, exact.Location()
		if parser == "" {
			parser = exact.Parser
		}
	}
	if parser == "" {
		if len(sources) != 1 {
			return replay.Source{}, nil, usagef("%s is not a configured source: choose its parser with --parser (known: %s)", file, strings.Join(cfg.ParserNames(), ", "))
		}
		parser = sources[0]
	}
	r, closer, err := replay.Open(file, m.Stdin)
	if err != nil {
		return replay.Source{}, nil, err
	}
	return replay.Source{Name: name, Parser: parser, Factory: cfg.ParserFactory(parser), Location: loc, Reader: r}, closer, nil
}

// distinctInputs refuses a log given twice (the same path twice, a link
// to it, a glob overlapping a path, "-" twice, "-" and /dev/stdin): its
// lines would be counted twice, and an address that failed three times
// banned as if it had failed six.
func (m *Main) distinctInputs(files []string) error {
	type input struct {
		name string
		info os.FileInfo
	}
	var seen []input
	stdin := false
	for _, f := range files {
		var fi os.FileInfo
		var err error
		if f == "-" {
			if stdin {
				return usagef("standard input (-) given twice")
			}
			stdin = true
			sf, ok := m.Stdin.(*os.File)
			if !ok {
				continue
			}
			fi, err = sf.Stat()
		} else {
			fi, err = os.Stat(f)
		}
		if err != nil {
			continue // opening it says what is wrong
		}
		for _, in := range seen {
			if os.SameFile(in.info, fi) {
				return usagef("%s and %s are the same file: give each log once", in.name, f)
			}
		}
		seen = append(seen, input{f, fi})
	}
	return nil
}

// rotationOf reports whether file is a rotated copy of the log at live:
// in the same directory, named as live followed by a rotation's suffix as
// logrotate and Asterisk's logger write them (.1, .2.gz, -20261127,
// -20261127.gz, .1764237600).
func rotationOf(live, file string) bool {
	dir, base := filepath.Split(file)
	liveDir, liveBase := filepath.Split(live)
	rest, ok := strings.CutPrefix(base, liveBase)
	if !ok || liveBase == "" || len(rest) < 2 || !strings.ContainsRune(".-_", rune(rest[0])) || rest[1] < '0' || rest[1] > '9' {
		return false
	}
	return samePath(dirOrDot(dir), dirOrDot(liveDir))
}

// dirOrDot is filepath.Split's directory, "." for none.
func dirOrDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// samePath reports whether two paths name the same file.
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// scanPrinter writes events and bans as text or JSON lines.
type scanPrinter struct {
	w     *bufio.Writer
	json  bool
	enc   *json.Encoder
	table *tabwriter.Writer
}

func newScanPrinter(w *bufio.Writer, asJSON bool) *scanPrinter {
	p := &scanPrinter{w: w, json: asJSON}
	if asJSON {
		p.enc = json.NewEncoder(w)
	}
	return p
}

// eventJSON is the JSON form of an event; field names are a stable
// contract (docs/scan.md, "JSON output").
type eventJSON struct {
	Time    time.Time `json:"time"`
	IP      string    `json:"ip"`
	Port    uint16    `json:"port"`
	Kind    string    `json:"kind"`
	Service string    `json:"service"`
	User    string    `json:"user"`
	Parser  string    `json:"parser"`
	Source  string    `json:"source"`
	Line    int64     `json:"line"`
}

func (p *scanPrinter) event(ev *parsers.Event) {
	if p.json {
		p.enc.Encode(eventJSON{
			Time: ev.Time, IP: ev.Addr.String(), Port: ev.Port, Kind: ev.Kind.String(),
			Service: ev.Service.String(), User: ev.User, Parser: ev.Parser, Source: ev.Source, Line: ev.Line,
		})
		return
	}
	// Fixed-width columns: a tabwriter would hold every line in memory.
	fmt.Fprintf(p.w, "%s  %-39s %5s  %-19s %-6s %s:%d  user=%s\n",
		ev.Time.Format(time.RFC3339Nano), ev.Addr, portString(ev.Port), ev.Kind, ev.Service,
		ev.Source, ev.Line, strconv.Quote(ev.User))
}

func portString(p uint16) string {
	if p == 0 {
		return "-"
	}
	return strconv.Itoa(int(p))
}

func (p *scanPrinter) ban(b engine.Ban) {
	if p.json {
		p.enc.Encode(report.BanOf(b))
		return
	}
	if p.table == nil {
		p.table = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.table, "address\trule\tcount\tfirst\tlast\tban")
	}
	fmt.Fprintf(p.table, "%s\t%s\t%d\t%s\t%s\t%s\n", bans.String(b.Prefix), b.Rule, b.Count,
		b.First.Format(time.DateTime), b.Last.Format(time.DateTime), duration.Format(b.Duration))
}

// compromise reports a successful login after failures: in the table's
// place a line of its own, in JSON an object with "compromise": true.
func (p *scanPrinter) compromise(c engine.Compromise) {
	if p.json {
		p.enc.Encode(compromiseJSON{
			Compromise: true, IP: c.Addr.String(), Prefix: c.Prefix.String(), User: c.User, Source: c.Source,
			Service: c.Service.String(), Failures: c.Failures, Time: c.Time,
		})
		return
	}
	if p.table != nil {
		p.table.Flush()
		p.table = nil
	}
	fmt.Fprintf(p.w, "COMPROMISE %s: %s as user=%s (%s, %s) at %s\n", bans.String(c.Prefix), c.Reason(),
		strconv.Quote(c.User), c.Service, c.Source, c.Time.Format(time.DateTime))
}

// compromiseJSON is the JSON form of a compromise.
type compromiseJSON struct {
	Compromise bool      `json:"compromise"`
	IP         string    `json:"ip"`
	Prefix     string    `json:"prefix"`
	User       string    `json:"user"`
	Source     string    `json:"source"`
	Service    string    `json:"service"`
	Failures   int       `json:"failures"`
	Time       time.Time `json:"time"`
}

func (p *scanPrinter) flush() error {
	if p.table != nil {
		return p.table.Flush()
	}
	return nil
}

// scanSummary prints the counts of a scan to stderr.
func (m *Main) scanSummary(streams []replay.Stats, st engine.Stats, elapsed time.Duration) {
	var total parsers.Counts
	var bytes int64
	for _, s := range streams {
		total.Add(s.Counts)
		bytes += s.Bytes
	}
	w := m.Stderr
	rate := float64(total.Lines) / elapsed.Seconds()
	fmt.Fprintf(w, "scanned %d %s: %d lines (%.1f MiB), %d events, %d dropped lines, %d bans in %.3fs (%.0f lines/s)",
		len(streams), plural(len(streams), "file"), total.Lines, float64(bytes)/(1<<20), total.Events,
		total.Dropped, st.Bans, elapsed.Seconds(), rate)
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(w, ", peak RSS %.1f MiB", float64(rss)/(1<<20))
	}
	fmt.Fprintln(w)
	if len(streams) > 1 {
		for _, s := range streams {
			c := s.Counts
			fmt.Fprintf(w, "  %s (%s): %d lines, %d events, %d dropped\n", s.Name, s.Parser, c.Lines, c.Events, c.Dropped)
		}
	}
	fmt.Fprintf(w, "dropped lines:")
	for _, o := range parsers.DropOutcomes() {
		fmt.Fprintf(w, " %d %s,", total.DropBy[o.String()], o)
	}
	fmt.Fprintf(w, " %d too_long\n", total.DropBy["too_long"])
	m.engineSummary(st, total.Successes)
}

// engineSummary prints what the engine made of a scan's events to stderr.
func (m *Main) engineSummary(st engine.Stats, successes int64) {
	w := m.Stderr
	fmt.Fprintf(w, "events not counted: %d allowlisted, %d while banned; addresses tracked at the end: %d\n",
		st.Allowed, st.WhileBanned, st.Tracked)
	if st.Special > 0 {
		fmt.Fprintf(w, "events not counted: %d of special-purpose addresses (loopback, link-local, ...), never banned\n", st.Special)
	}
	if successes > 0 {
		fmt.Fprintf(w, "successful logins (auth_succeeded, never counted toward a ban): %d\n", successes)
	}
	if st.Compromises > 0 {
		fmt.Fprintf(w, "COMPROMISE: %d successful logins after failures (guessed passwords?): change those accounts' passwords\n", st.Compromises)
	}
}
