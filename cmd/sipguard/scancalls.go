package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/replay"
)

// Call logs scan reads with --parser: their records are calls, checked by
// the toll-fraud rules of [fraud], not failures counted toward bans.
const (
	parserCEL = "cel" // sipguard's cel_custom mapping (contrib/asterisk/cel_custom.conf)
	parserCDR = "cdr" // cdr_csv's Master.csv
)

func isCallParser(name string) bool { return name == parserCEL || name == parserCDR }

// maxCallLine bounds a physical line of a call log: the readers bound
// records themselves (calls.CELReader, calls.CDRReader).
const maxCallLine = 64 << 10

// callScan is what a scan of call logs found.
type callScan struct {
	lines, records, calls int64
	outcomes              map[string]int64
	alerts                map[string]int
}

// scanCalls replays call logs through the [fraud] rules (enabled or not:
// scan shows what they would do) and prints the alerts, or with --events
// every call that ended. Files are read in the order given, as rotated
// logs are named oldest first.
func (m *Main) scanCalls(ctx context.Context, cfg *config.Config, o scanOptions) error {
	start := time.Now()
	opts, err := cfg.Fraud.Options()
	if err != nil {
		return fmt.Errorf("[fraud]: %w", err)
	}
	g, err := fraud.New(opts)
	if err != nil {
		return fmt.Errorf("[fraud]: %w", err)
	}
	cols, err := cfg.Fraud.CDRColumns()
	if err != nil {
		return fmt.Errorf("[fraud] cdr_options: %w", err)
	}
	out := bufio.NewWriterSize(m.Stdout, 64<<10)
	p := &callPrinter{w: out, json: o.json, events: o.events}
	s := callScan{outcomes: map[string]int64{}, alerts: map[string]int{}}
	for _, file := range o.files {
		r, closer, err := replay.Open(file, m.Stdin)
		if err != nil {
			return err
		}
		err = s.read(ctx, r, o.parser, cols, g, p)
		closer.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	s.summary(m.Stderr, len(o.files), time.Since(start))
	return nil
}

// read reads one call log.
func (s *callScan) read(ctx context.Context, r io.Reader, parser string, cols calls.CDRColumns, g *fraud.Guard, p *callPrinter) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxCallLine)
	cel := calls.NewCELReader(time.Local, 0)
	cdr := calls.NewCDRReader(cols, time.Local)
	for sc.Scan() {
		if s.lines%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		s.lines++
		line := sc.Bytes()
		var alerts []fraud.Alert
		var outcome calls.Outcome
		if parser == parserCEL {
			var u calls.Update
			if outcome = cel.Line(line, &u); outcome == calls.Matched {
				if u.Change == calls.Ended {
					s.calls++
					p.call(&u.Call)
				}
				alerts = g.Update(u)
				// The daemon counts the minutes of calls under way every
				// second; a replay, at each record's time.
				alerts = append(alerts, g.Tick(changedAt(u))...)
			}
		} else {
			var c calls.Call
			if outcome = cdr.Line(line, &c); outcome == calls.Matched {
				s.calls++
				p.call(&c)
				alerts = g.Record(c)
			}
		}
		if outcome != calls.Pending {
			s.records++
		}
		s.outcomes[outcome.String()]++
		for _, a := range alerts {
			s.alerts[a.Rule]++
			p.alert(a)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read: %w (a line longer than %d bytes is no call record)", err, maxCallLine)
	}
	return nil
}

func (s *callScan) summary(w io.Writer, files int, elapsed time.Duration) {
	fmt.Fprintf(w, "scanned %d %s: %d lines, %d records, %d calls ended, in %.3fs\n", files, plural(files, "file"), s.lines, s.records, s.calls, elapsed.Seconds())
	fmt.Fprintf(w, "dropped records:")
	for _, o := range []calls.Outcome{calls.DropMalformed, calls.DropTooLong, calls.DropTime} {
		fmt.Fprintf(w, " %d %s,", s.outcomes[o.String()], o)
	}
	fmt.Fprintln(w)
	rules := make([]string, 0, len(s.alerts))
	for r := range s.alerts {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	fmt.Fprintf(w, "toll-fraud alerts: ")
	if len(rules) == 0 {
		fmt.Fprint(w, "none")
	}
	for i, r := range rules {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%d %s", s.alerts[r], r)
	}
	fmt.Fprintln(w)
}

// callPrinter writes alerts (and with --events calls) as text or JSON.
type callPrinter struct {
	w            *bufio.Writer
	json, events bool
}

// alertJSON is the JSON form of an alert; field names are a stable
// contract (docs/fraud.md).
type alertJSON struct {
	Alert    string    `json:"alert"`
	Time     time.Time `json:"time"`
	Account  string    `json:"account"`
	Call     string    `json:"call"`
	Dialled  string    `json:"dialled"`
	E164     string    `json:"e164"`
	Country  string    `json:"country"`
	Risk     string    `json:"risk,omitempty"`
	Count    float64   `json:"count"`
	Limit    float64   `json:"limit"`
	LastAddr string    `json:"last_login_ip,omitempty"`
}

type callJSON struct {
	Call    string    `json:"call"`
	Account string    `json:"account"`
	Dialled string    `json:"dialled"`
	Context string    `json:"context"`
	Start   time.Time `json:"start"`
	Billed  float64   `json:"billed"`
}

func (p *callPrinter) alert(a fraud.Alert) {
	if p.json {
		j := alertJSON{Alert: a.Rule, Time: a.Time, Account: a.Account, Call: a.CallID, Dialled: a.Dialled, E164: a.E164,
			Country: a.Country, Risk: a.Risk, Count: a.Count, Limit: a.Limit}
		if a.LastAddr.IsValid() {
			j.LastAddr = a.LastAddr.String()
		}
		json.NewEncoder(p.w).Encode(j)
		return
	}
	where := a.Country
	if a.Risk != "" {
		where = strings.TrimSpace(where + " " + a.Risk)
	}
	fmt.Fprintf(p.w, "FRAUD %s  %-12s account=%s dialled=%s (+%s %s)", a.Time.Format(time.DateTime), a.Rule,
		strconv.Quote(a.Account), strconv.Quote(a.Dialled), a.E164, where)
	if a.Limit > 0 {
		fmt.Fprintf(p.w, " %g > %g", a.Count, a.Limit)
	}
	fmt.Fprintln(p.w)
}

func (p *callPrinter) call(c *calls.Call) {
	if !p.events {
		return
	}
	if p.json {
		json.NewEncoder(p.w).Encode(callJSON{Call: c.ID, Account: c.Account, Dialled: c.Dialled, Context: c.Context,
			Start: c.Start, Billed: c.Billed().Seconds()})
		return
	}
	fmt.Fprintf(p.w, "CALL %s  account=%s dialled=%s context=%s billed=%s\n", c.Start.Format(time.DateTime),
		strconv.Quote(c.Account), strconv.Quote(c.Dialled), strconv.Quote(c.Context), c.Billed())
}

// changedAt is when u's change happened.
func changedAt(u calls.Update) time.Time {
	switch u.Change {
	case calls.Answered:
		return u.Call.Answer
	case calls.Ended:
		return u.Call.End
	}
	return u.Call.Start
}
