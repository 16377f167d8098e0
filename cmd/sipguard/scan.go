package main

import (
	"bufio"
	"compress/gzip"
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
	"github.com/sipguard/sipguard/watchers"
)

var scanCommand = command{"scan", "replay logs offline and print the bans the rules would make", (*Main).scan}

const scanSynopsis = `scan [-c FILE] [--parser NAME] [--events] [--json] FILE...

Replays logs through the parsers and rules, using the times in the lines,
and prints the bans the rules would make, or with --events every event.
A FILE of "-" is standard input; gzip-compressed files are read as such.
Several files are merged in time order (messages.log.1 messages.log).

A FILE that is the path of a configured [[source]] uses its parser and
name; others use --parser, or the parser of the configured sources when
they all use the same one. Parsers: `

type scanOptions struct {
	config string
	parser string
	events bool
	json   bool
	files  []string
}

func (m *Main) scan(ctx context.Context, args []string) error {
	fs := m.flagSet("scan", scanSynopsis+strings.Join(parsers.Names(), ", "))
	var o scanOptions
	fs.StringVar(&o.config, "c", "", "config `FILE`")
	fs.StringVar(&o.parser, "parser", "", "parse every FILE with parser `NAME`")
	fs.BoolVar(&o.events, "events", false, "print every event instead of the bans")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("scan needs at least one FILE (- for standard input)")
	}
	o.files = files
	cfg, err := m.loadConfig(o.config)
	if err != nil {
		return err
	}
	if o.parser != "" && !cfg.KnownParser(o.parser) {
		return usagef("unknown parser %q (known: %s)", o.parser, strings.Join(cfg.ParserNames(), ", "))
	}
	return m.runScan(ctx, cfg, o)
}

// scanStream is one file being replayed. A goroutine reads and parses it
// and hands over events in batches, so that parsing and the rules run on
// two cores.
type scanStream struct {
	src    *parsers.Stream
	lines  *watchers.LineReader
	closer io.Closer
	full   chan []parsers.Event // batches of events, closed at the end
	empty  chan []parsers.Event // batches handed back for reuse
	err    error                // read error, valid once full is closed
	cur    []parsers.Event
	pos    int
	done   bool
}

const batchSize = 512

// read runs in its own goroutine until the file ends or ctx is done.
func (s *scanStream) read(ctx context.Context) {
	defer close(s.full)
	batch := make([]parsers.Event, 0, batchSize)
	send := func() bool {
		select {
		case s.full <- batch:
		case <-ctx.Done():
			return false
		}
		select {
		case batch = <-s.empty:
			batch = batch[:0]
		default:
			batch = make([]parsers.Event, 0, batchSize)
		}
		return true
	}
	for {
		line, num, err := s.lines.Next()
		if err != nil {
			if err != io.EOF {
				s.err = fmt.Errorf("read %s: %w", s.src.Source(), err)
			}
			if len(batch) > 0 {
				send()
			}
			return
		}
		batch = append(batch, parsers.Event{})
		if !s.src.Line(line, num, &batch[len(batch)-1]) {
			batch = batch[:len(batch)-1]
			continue
		}
		if len(batch) == batchSize && !send() {
			return
		}
	}
}

// peek returns the stream's next event, or nil at its end.
func (s *scanStream) peek() *parsers.Event {
	for s.pos == len(s.cur) {
		if s.done {
			return nil
		}
		if s.cur != nil {
			select {
			case s.empty <- s.cur:
			default:
			}
		}
		b, ok := <-s.full
		s.cur, s.pos, s.done = b, 0, !ok
	}
	return &s.cur[s.pos]
}

func (m *Main) runScan(ctx context.Context, cfg *config.Config, o scanOptions) error {
	start := time.Now()
	opts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return err
	}
	eng, err := engine.New(opts)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	var streams []*scanStream
	defer func() {
		for _, s := range streams {
			s.closer.Close()
		}
	}()
	for _, f := range o.files {
		s, err := m.openStream(cfg, o.parser, f)
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, s := range streams {
		go s.read(ctx)
	}
	out := bufio.NewWriterSize(m.Stdout, 64<<10)
	p := newScanPrinter(out, o.json)
	for {
		// The stream with the earliest next event goes first.
		var s *scanStream
		var ev *parsers.Event
		for _, c := range streams {
			if e := c.peek(); e != nil && (ev == nil || e.Time.Before(ev.Time)) {
				s, ev = c, e
			}
		}
		if s == nil {
			break
		}
		ban, banned := eng.Observe(ev)
		switch {
		case o.events:
			p.event(ev)
		case banned:
			p.ban(ban)
		}
		s.pos++
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, s := range streams {
		if s.err != nil {
			return s.err
		}
	}
	if err := p.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	m.scanSummary(streams, eng.Stats(), time.Since(start))
	return nil
}

// openStream opens one FILE and picks its parser and source name.
func (m *Main) openStream(cfg *config.Config, parserFlag, file string) (*scanStream, error) {
	name, parser, loc := file, parserFlag, time.Local
	if file == "-" {
		name = "stdin"
	}
	var sources []string
	for _, src := range cfg.Sources {
		if !slices.Contains(sources, src.Parser) {
			sources = append(sources, src.Parser)
		}
		if file != "-" && src.Type == "file" && samePath(src.Path, file) {
			name, loc = src.Name, src.Location()
			if parser == "" {
				parser = src.Parser
			}
		}
	}
	if parser == "" {
		if len(sources) != 1 {
			return nil, usagef("%s is not a configured source: choose its parser with --parser (known: %s)", file, strings.Join(cfg.ParserNames(), ", "))
		}
		parser = sources[0]
	}
	src, err := parsers.NewStreamFrom(name, parser, cfg.ParserFactory(parser), parsers.Options{Location: loc, Now: m.Now}, m.Now)
	if err != nil {
		return nil, err
	}
	var r io.ReadCloser = io.NopCloser(m.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		r = f
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		in = gz
	}
	return &scanStream{
		src: src, lines: watchers.NewLineReader(in, 0), closer: r,
		full: make(chan []parsers.Event, 4), empty: make(chan []parsers.Event, 8),
	}, nil
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
// contract (README: "JSON output").
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

// banJSON is the JSON form of a ban decision. ban_for is in seconds.
type banJSON struct {
	IP       string    `json:"ip"`
	Prefix   string    `json:"prefix"`
	Rule     string    `json:"rule"`
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	BanFor   int64     `json:"ban_for"`
	Offences int       `json:"offences"`
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
		p.enc.Encode(banJSON{
			IP: b.Addr.String(), Prefix: b.Prefix.String(), Rule: b.Rule, Count: b.Count,
			First: b.First.In(b.Last.Location()), Last: b.Last, BanFor: int64(b.Duration / time.Second),
			Offences: b.Offences,
		})
		return
	}
	if p.table == nil {
		p.table = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.table, "address\trule\tcount\tfirst\tlast\tban")
	}
	fmt.Fprintf(p.table, "%s\t%s\t%d\t%s\t%s\t%s\n", bans.String(b.Prefix), b.Rule, b.Count,
		b.First.Format(time.DateTime), b.Last.Format(time.DateTime), duration.Format(b.Duration))
}

func (p *scanPrinter) flush() error {
	if p.table != nil {
		return p.table.Flush()
	}
	return nil
}

// scanSummary prints the counts of a scan to stderr.
func (m *Main) scanSummary(streams []*scanStream, st engine.Stats, elapsed time.Duration) {
	var total parsers.Counts
	var bytes int64
	for _, s := range streams {
		s.src.TooLong(s.lines.Long())
		total.Add(s.src.Counts())
		bytes += s.lines.Bytes()
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
			c := s.src.Counts()
			fmt.Fprintf(w, "  %s (%s): %d lines, %d events, %d dropped\n", s.src.Source(), s.src.Parser(), c.Lines, c.Events, c.Dropped)
		}
	}
	fmt.Fprintf(w, "dropped lines:")
	for _, o := range parsers.DropOutcomes() {
		fmt.Fprintf(w, " %d %s,", total.DropBy[o.String()], o)
	}
	fmt.Fprintf(w, " %d too_long\n", total.DropBy["too_long"])
	fmt.Fprintf(w, "events not counted: %d allowlisted, %d while banned; addresses tracked at the end: %d\n",
		st.Allowed, st.WhileBanned, st.Tracked)
	if total.Successes > 0 {
		fmt.Fprintf(w, "successful logins (auth_succeeded, never counted toward a ban): %d\n", total.Successes)
	}
}
