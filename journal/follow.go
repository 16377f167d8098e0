package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/watchers"
)

// MaxMessage is the longest message handed over; longer ones are skipped
// and counted (TooLong). It is the longest line a log file source keeps.
const MaxMessage = watchers.DefaultMaxLine

const (
	// maxJSON bounds one line of journalctl's output: a message of
	// MaxMessage bytes written as byte values ("255,") and the other fields.
	maxJSON = 4*MaxMessage + 16<<10
	// maxBatch and maxBatchBytes bound the entries of one Batch.
	maxBatch      = 512
	maxBatchBytes = 1 << 20
	// settle is how long a journalctl must run without complaint before
	// the problem that stopped the one before it is over.
	settle = 2 * time.Second
	// stable is how long a journalctl must have run for the pause before
	// the next one to start again from Options.Backoff.
	stable = time.Minute
	// maxBackoff is the longest pause between two journalctl runs.
	maxBackoff = 30 * time.Second
)

// Options configure a Follower.
type Options struct {
	Match Match
	// Cursor resumes after the entry it names (a Batch's Cursor); "":
	// start as FromStart says.
	Cursor string
	// FromStart reads, without a Cursor, every entry the journal holds;
	// otherwise only those after its last entry at start.
	FromStart bool
	// Journalctl is the program run ("": journalctl, found in PATH).
	Journalctl string
	Logger     zerolog.Logger
	// OnProblem is told when a problem starts (why the journal is not
	// read: no journalctl, no permission, journalctl stopped) and, with
	// nil, when it is over. It is called from the Follower's goroutines,
	// one call at a time.
	OnProblem func(error)
	// Backoff is the first pause before journalctl is run again (default
	// 1 s); it doubles, up to 30 s, while journalctl keeps stopping.
	Backoff time.Duration
}

// Batch is the entries admitted from a run of journalctl's output, and
// the cursor of the last entry read (admitted or not): the position to
// save once the entries are handled.
type Batch struct {
	Entries []Entry // valid only during the call that receives the Batch
	Cursor  string
}

// Stats are a Follower's counters.
type Stats struct {
	Entries   int64 // entries read
	Refused   int64 // entries whose trusted fields do not match (journalctl should never give them)
	Malformed int64 // output that is not an entry with a cursor, a time and one MESSAGE
	TooLong   int64 // messages over MaxMessage, skipped
	Restarts  int64 // times journalctl stopped or could not start, and was run again
}

// Follower follows the journal's entries for a Match.
type Follower struct {
	opts Options

	// Owned by Run's goroutine.
	cursor    string // the last entry read
	fromStart bool   // without a cursor, read from the beginning

	origin                                       atomic.Pointer[string]
	entries, refused, malformed, tooLong, starts atomic.Int64

	mu      sync.Mutex
	problem string // the problem last reported ("" none)
	run     int64  // the journalctl run under way, for reports about it
	ended   int64  // the last run that is over: only its error may follow
	told    map[string]bool
}

// maxTold bounds the distinct lines of journalctl's stderr logged: it
// says the same at every run when it cannot read the journal.
const maxTold = 16

// complaint logs a line journalctl wrote to stderr, once.
func (f *Follower) complaint(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.told[line] || len(f.told) >= maxTold {
		return
	}
	if f.told == nil {
		f.told = map[string]bool{}
	}
	f.told[line] = true
	f.opts.Logger.Warn().Str("journalctl", line).Msg("journalctl complains")
}

// NewFollower returns a Follower; Run starts it.
func NewFollower(opts Options) *Follower {
	if opts.Journalctl == "" {
		opts.Journalctl = "journalctl"
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.OnProblem == nil {
		opts.OnProblem = func(error) {}
	}
	if opts.Cursor != "" && !validCursor(opts.Cursor) {
		// journalctl would refuse it at every run: start afresh.
		opts.Logger.Warn().Str("cursor", opts.Cursor).Msg("saved journal cursor unreadable; starting as at first start")
		opts.Cursor = ""
	}
	f := &Follower{opts: opts, cursor: opts.Cursor, fromStart: opts.FromStart}
	if opts.Cursor != "" {
		f.origin.Store(&opts.Cursor)
	}
	return f
}

// validCursor reports whether c has the form of journalctl's cursors,
// "s=HEX;i=HEX;b=HEX;m=HEX;t=HEX;x=HEX".
func validCursor(c string) bool {
	if len(c) > 256 {
		return false
	}
	parts := strings.Split(c, ";")
	if len(parts) != 6 {
		return false
	}
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != string("sibmtx"[i]) || v == "" || strings.Trim(v, "0123456789abcdef") != "" {
			return false
		}
	}
	return true
}

// Origin returns the cursor the Follower started from, once it knows it:
// an entry at or before every entry it hands over. "" when it reads from
// the journal's beginning, or has not started yet.
func (f *Follower) Origin() string {
	if p := f.origin.Load(); p != nil {
		return *p
	}
	return ""
}

// Stats returns the Follower's counters.
func (f *Follower) Stats() Stats {
	return Stats{
		Entries: f.entries.Load(), Refused: f.refused.Load(), Malformed: f.malformed.Load(),
		TooLong: f.tooLong.Load(), Restarts: max(f.starts.Load()-1, 0),
	}
}

// emitError is an error of the function entries are handed to: it ends Run.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// Run follows the journal, handing each batch of entries to emit, until
// ctx is done or emit fails; it returns that error. Everything else (no
// journalctl, a journal that cannot be read, journalctl stopping) is
// reported to OnProblem and tried again.
func (f *Follower) Run(ctx context.Context, emit func(Batch) error) error {
	wait := f.opts.Backoff
	for {
		began := time.Now()
		err := f.follow(ctx, emit)
		var ee emitError
		switch {
		case errors.As(err, &ee):
			return ee.err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if time.Since(began) > stable {
			wait = f.opts.Backoff
		}
		f.report(f.run, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// report sets the problem of journalctl run number run (nil: none; retry
// is when the next run starts), and logs it and tells OnProblem when it
// changes: a journalctl that fails the same way at every run is logged
// once. A report about an earlier run, or that a run which is over is
// fine, is ignored.
func (f *Follower) report(run int64, err error, retry time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if run != f.run || err == nil && run <= f.ended || msg == f.problem {
		return
	}
	if err != nil {
		f.opts.Logger.Warn().Err(err).Dur("retry_in", retry).Msg("journal not followed; trying again until it is")
	} else {
		f.opts.Logger.Info().Msg("journal followed again")
	}
	f.problem = msg
	f.opts.OnProblem(err)
}

// follow runs journalctl once, until it stops or ctx is done.
func (f *Follower) follow(ctx context.Context, emit func(Batch) error) error {
	f.mu.Lock()
	f.run++
	run := f.run
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.ended = run
		f.mu.Unlock()
	}()
	f.starts.Add(1)
	if err := f.locate(ctx); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, f.opts.Journalctl, f.args()...)
	stderr := &complaints{onLine: f.complaint}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", f.opts.Journalctl, err)
	}
	calm := time.AfterFunc(settle, func() { f.report(run, nil, 0) })
	defer calm.Stop()

	lr := watchers.NewLineReader(out, maxJSON)
	skip := f.cursor // journalctl starts at this entry, which was handed over already
	var b Batch
	var long int64
	size := 0 // bytes read into b
	for {
		line, _, err := lr.Next()
		if n := lr.Long(); n > long {
			f.tooLong.Add(n - long)
			long = n
		}
		if err != nil {
			break
		}
		if f.read(line, &b, &skip) {
			f.report(run, nil, 0)
		}
		if size += len(line); b.Cursor != "" && (lr.Buffered() == 0 || len(b.Entries) >= maxBatch || size >= maxBatchBytes) {
			if err := emit(b); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return emitError{err}
			}
			b, size = Batch{Entries: b.Entries[:0]}, 0
		}
	}
	err = cmd.Wait()
	if b.Cursor != "" && ctx.Err() == nil {
		if err := emit(b); err != nil {
			return emitError{err}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if last := stderr.last(); last != "" {
		return fmt.Errorf("journalctl stopped (%v): %s", err, last)
	}
	return fmt.Errorf("journalctl stopped (%v)", err)
}

// read takes one line of journalctl's output into b and reports whether
// it was an entry. The first entry is dropped when its cursor is skip
// (then cleared): journalctl starts at the entry of its --cursor.
func (f *Follower) read(line []byte, b *Batch, skip *string) bool {
	var e Entry
	cursor, err := parseEntry(line, &e)
	if !validCursor(cursor) {
		f.malformed.Add(1)
		f.opts.Logger.Debug().Err(err).Msg("not a journal entry")
		return false
	}
	if first := *skip; first != "" {
		*skip = ""
		if cursor == first {
			return true
		}
	}
	f.cursor, b.Cursor = cursor, cursor
	f.entries.Add(1)
	switch {
	case err != nil:
		f.malformed.Add(1)
		f.opts.Logger.Debug().Err(err).Msg("journal entry not read")
	case !f.opts.Match.admits(&e):
		// journalctl was asked for these entries only: this is a bug or
		// a journalctl that is not what it seems.
		if f.refused.Add(1) == 1 {
			f.opts.Logger.Warn().Str("unit", e.Unit).Str("comm", e.Comm).Int64("uid", e.UID).
				Msg("journalctl gave an entry the match does not admit; dropped")
		}
	case len(e.Message) > MaxMessage:
		f.tooLong.Add(1)
	default:
		b.Entries = append(b.Entries, e)
	}
	return true
}

// locate decides, before the first journalctl, where it starts: after
// the cursor given, from the beginning, or after the journal's last entry
// now (the cursor of any entry serves: --cursor seeks to its place).
func (f *Follower) locate(ctx context.Context) error {
	if f.cursor != "" || f.fromStart {
		return nil
	}
	c, err := f.last(ctx)
	if err != nil {
		return err
	}
	if c == "" {
		// An empty journal: everything in it will be new.
		f.fromStart = true
		return nil
	}
	f.cursor = c
	f.origin.Store(&c)
	return nil
}

// last returns the cursor of the journal's last entry, "" when it is
// empty.
func (f *Follower) last(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := []string{"--lines=1", "--output=json", "--output-fields=_PID", "--no-pager"}
	if f.opts.Match.Namespace != "" {
		args = append(args, "--namespace="+f.opts.Match.Namespace)
	}
	cmd := exec.CommandContext(ctx, f.opts.Journalctl, args...)
	stderr := &complaints{}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		if last := stderr.last(); last != "" {
			return "", fmt.Errorf("find the journal's end: %w: %s", err, last)
		}
		return "", fmt.Errorf("find the journal's end: %w", err)
	}
	for line := range bytes.Lines(out) {
		var e struct {
			Cursor string `json:"__CURSOR"`
		}
		if json.Unmarshal(line, &e) == nil && e.Cursor != "" {
			return e.Cursor, nil
		}
	}
	return "", nil
}

// args are journalctl's arguments to follow from the Follower's cursor.
func (f *Follower) args() []string {
	args := []string{"--follow", "--output=json", "--all", "--no-pager", "--output-fields=" + fields}
	if f.opts.Match.Namespace != "" {
		args = append(args, "--namespace="+f.opts.Match.Namespace)
	}
	if f.cursor != "" {
		args = append(args, "--cursor="+f.cursor)
	} else {
		args = append(args, "--lines=all")
	}
	return append(args, f.opts.Match.args()...)
}

// complaints collects what journalctl writes to stderr: it calls onLine
// with each line and keeps the last one, both cut to a bounded length and
// cleaned of control characters.
type complaints struct {
	onLine func(string)

	mu      sync.Mutex
	partial []byte
	final   string
}

const maxComplaint = 256

func (c *complaints) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range p {
		if b != '\n' {
			if len(c.partial) < maxComplaint {
				if b < ' ' || b == 0x7f {
					b = '?'
				}
				c.partial = append(c.partial, b)
			}
			continue
		}
		c.line()
	}
	return len(p), nil
}

// line ends the line being collected. Called with mu held.
func (c *complaints) line() {
	s := string(bytes.TrimSpace(c.partial))
	c.partial = c.partial[:0]
	if s == "" {
		return
	}
	c.final = s
	if c.onLine != nil {
		c.onLine(s)
	}
}

// last returns the last line, ending one left without a newline.
func (c *complaints) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.line()
	}
	return c.final
}
