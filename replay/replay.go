// Package replay reads whole logs offline, for `sipguard scan`: it splits
// each log into chunks of lines, parses the chunks at once on every core,
// and hands back the events of all the logs merged in time order, exactly
// as one parser reading each log from its first line to its last would
// have produced them.
//
// Parsers keep state between lines (a message an attacker broke into
// several lines, a line waiting for the next one), so a chunk parsed by a
// new parser is right only if the parser of the chunk before it ended idle
// (parsers.Resumable). When it did not, the chunk is parsed again, in
// order, by the parser that read the chunk before: the answer never
// depends on where the chunks were cut. Parsers that cannot tell when they
// are idle are read in order, on one core.
//
// Replay does no counting toward bans: the caller feeds the events to the
// engine, one at a time, in the order Next returns them.
package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

// Source is one log to replay.
type Source struct {
	Name     string // the source name events carry
	Parser   string // the parser's name
	Factory  parsers.Factory
	Location *time.Location // zone of timestamps without one
	Reader   io.Reader      // the log's lines (see Open)
}

// Options tune a replay; zero values take the defaults.
type Options struct {
	// Now is the clock: the year of timestamps without one, and the time
	// of events from lines without a timestamp before any line with one.
	Now func() time.Time
	// Workers is the number of parsing goroutines per source
	// (default: GOMAXPROCS).
	Workers int
	// ChunkSize is the size of the pieces a log is read and parsed in
	// (default 256 KiB).
	ChunkSize int
	// MaxLine is the longest line kept; longer lines are skipped and
	// counted as too_long (default watchers.DefaultMaxLine).
	MaxLine int

	sources int // how many logs share the read-ahead
}

// DefaultChunkSize is Options.ChunkSize's default: large enough that
// handing a chunk over costs nothing next to parsing it, small enough that
// a few per core fit in the cache. Every chunk in flight is memory the
// replay touches fresh, a page fault per 4 KiB: the 1M-line scan of
// bench/compare.sh ran 5.6-8.8 ms faster with chunks of 256 KiB than of
// 512 (two sets of 25 paired runs, faster in 16 and 18), and no faster
// with 128.
const DefaultChunkSize = 256 << 10

// Stats is what became of one source's lines.
type Stats struct {
	Name   string
	Parser string
	Counts parsers.Counts
	Bytes  int64
}

// Replay is a replay under way. Next returns its events in time order.
type Replay struct {
	cancel context.CancelFunc
	srcs   []*source
	wg     sync.WaitGroup
}

// Start starts replaying sources. Call Next until it returns nil, then Err;
// Close stops early.
func Start(ctx context.Context, sources []Source, opts Options) (*Replay, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = watchers.DefaultMaxLine
	}
	// A chunk must hold the longest line kept and the start of the next.
	opts.ChunkSize = max(opts.ChunkSize, 2*(opts.MaxLine+1))
	opts.sources = max(1, len(sources))
	ctx, cancel := context.WithCancel(ctx)
	r := &Replay{cancel: cancel}
	for _, src := range sources {
		s, err := newSource(ctx, src, opts)
		if err != nil {
			cancel()
			return nil, err
		}
		r.srcs = append(r.srcs, s)
	}
	for _, s := range r.srcs {
		s.start(&r.wg)
	}
	return r, nil
}

// Next returns the next event of all sources in time order (on equal
// times, the source given first goes first), or nil at the end. The event
// is valid until the next call.
func (r *Replay) Next() *parsers.Event {
	var best *source
	var ev *parsers.Event
	for _, s := range r.srcs {
		if e := s.peek(); e != nil && (ev == nil || e.Time.Before(ev.Time)) {
			best, ev = s, e
		}
	}
	if best != nil {
		best.pos++
	}
	return ev
}

// Err returns the first error of a source (a read error), once Next has
// returned nil.
func (r *Replay) Err() error {
	for _, s := range r.srcs {
		if s.err != nil {
			return s.err
		}
	}
	return nil
}

// Stats returns what became of each source's lines, once Next has
// returned nil.
func (r *Replay) Stats() []Stats {
	out := make([]Stats, len(r.srcs))
	for i, s := range r.srcs {
		out[i] = Stats{Name: s.src.Name, Parser: s.src.Parser, Counts: s.counts, Bytes: s.bytes}
	}
	return out
}

// Close stops the replay and waits for its goroutines.
func (r *Replay) Close() {
	r.cancel()
	for _, s := range r.srcs {
		for range s.out { // unblock the merger
		}
	}
	r.wg.Wait()
}

// Open opens a log to replay: path, or stdin for "-", decompressed when it
// is gzip. Close the closer when done.
func Open(path string, stdin io.Reader) (io.Reader, io.Closer, error) {
	var rc io.ReadCloser = io.NopCloser(stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		rc = f
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return gz, rc, nil
	}
	return br, rc, nil
}

// chunk is a piece of a log: whole lines, the last one without its
// newline only at the end of the log.
type chunk struct {
	seq  int
	data []byte
	buf  []byte // what data lies in, to reuse
	// long counts the lines skipped as too long right before data, too
	// long even to be held in a chunk.
	long int64
}

// result is a chunk parsed.
type result struct {
	*chunk
	parsed bool            // by a worker, with a new parser
	events []parsers.Event // lines numbered from 1 in the chunk; times zero where the line had none
	lines  int64           // lines in data
	stream *parsers.Stream // the parser that read it, and its counts
	idle   bool            // the parser ended idle
}

// source is the pipeline of one log: a reader cuts chunks, workers parse
// them, a merger puts them back in order and hands out batches of events.
type source struct {
	ctx       context.Context
	src       Source
	opts      Options
	parallel  bool // the parser is Resumable: chunks are parsed at once
	newStream func() (*parsers.Stream, error)

	slots   chan struct{} // chunks in flight, at most cap
	bufs    chan []byte   // chunk buffers to reuse: a pool the GC does not empty
	chunks  chan *chunk
	results chan *result
	out     chan []parsers.Event
	spent   chan []parsers.Event // batches Next is done with, to reuse
	// eventCap is the largest batch so far: new batches start that large.
	eventCap atomic.Int64

	// Set by the pipeline before out is closed.
	counts parsers.Counts
	bytes  int64
	err    error

	cur  []parsers.Event // Next's view
	pos  int
	done bool
}

func newSource(ctx context.Context, src Source, opts Options) (*source, error) {
	noTime := func() time.Time { return time.Time{} } // the merger fills in times
	newStream := func() (*parsers.Stream, error) {
		return parsers.NewStreamFrom(src.Name, src.Parser, src.Factory, parsers.Options{Location: src.Location, Now: opts.Now}, noTime)
	}
	st, err := newStream()
	if err != nil {
		return nil, err
	}
	// Chunks read ahead and batches parsed ahead of the caller: while the
	// caller (the engine, on one core) runs behind, the parsers go on. With
	// 2 per worker they stopped whenever it did: 2.5% slower, 6.5 MiB less.
	// Several logs share that room: all of them read ahead at once, and
	// those whose lines come later (the rotated copies of a log) hold their
	// chunks until the merge reaches them; 300 files of 3 MB took 1 GB.
	inFlight := max(2, (6*opts.Workers+2)/opts.sources)
	ahead := max(2, 8/opts.sources)
	s := &source{
		ctx: ctx, src: src, opts: opts, parallel: st.Resumes(), newStream: newStream,
		slots: make(chan struct{}, inFlight), bufs: make(chan []byte, inFlight),
		chunks: make(chan *chunk, inFlight), results: make(chan *result, inFlight), out: make(chan []parsers.Event, ahead),
		spent: make(chan []parsers.Event, inFlight+ahead),
	}
	return s, nil
}

func (s *source) start(wg *sync.WaitGroup) {
	var workers sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.read()
	}()
	for range s.opts.Workers {
		workers.Go(s.work)
	}
	go func() {
		workers.Wait()
		close(s.results)
	}()
	go func() {
		defer wg.Done()
		s.merge()
	}()
}

// read cuts the log into chunks of whole lines.
func (s *source) read() {
	defer close(s.chunks)
	var carry []byte // the start of a line the last chunk cut
	var long int64   // lines skipped as too long since the last chunk
	skipping := false
	for seq := 0; ; seq++ {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		var buf []byte
		select {
		case buf = <-s.bufs:
		default:
			buf = make([]byte, 0, s.opts.ChunkSize)
		}
		buf = append(buf[:0], carry...)
		n, eof, err := fill(s.src.Reader, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		s.bytes += int64(n)
		if err != nil {
			s.err = readError(s.src.Name, err)
			return
		}
		data := buf
		if skipping {
			// The rest of a line too long to keep.
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				data = data[:0]
			} else {
				data, skipping = data[i+1:], false
			}
		}
		cut := len(data)
		if !eof {
			cut = bytes.LastIndexByte(data, '\n') + 1
		}
		carry = append(carry[:0], data[cut:]...)
		c := &chunk{seq: seq, data: data[:cut], buf: buf, long: long}
		long = 0
		if len(carry) > s.opts.MaxLine {
			// Too long already: skip it to its end.
			long, carry, skipping = 1, carry[:0], true
		}
		select {
		case s.chunks <- c:
		case <-s.ctx.Done():
			return
		}
		if eof {
			return
		}
	}
}

// fill reads into b until b is full or the log ends. Unlike io.ReadFull,
// it tells the log's end (io.EOF) from a log cut short: gzip reports a
// truncated file as io.ErrUnexpectedEOF, which ReadFull would pass on as a
// short last read, and the cut line would be parsed as whole.
func fill(r io.Reader, b []byte) (n int, eof bool, err error) {
	for empty := 0; n < len(b); {
		k, err := r.Read(b[n:])
		n += k
		if k > 0 {
			empty = 0
		} else if err == nil {
			if empty++; empty == 100 { // as bufio does
				return n, false, io.ErrNoProgress
			}
		}
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("cut short (%w of the compressed data)", err)
			}
			return n, false, err
		}
	}
	return n, false, nil
}

// readError names the log in err, unless the error names its path already.
func readError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("read %s: %w", name, err)
}

// work parses chunks with a new parser each, when the parser can tell it
// is idle; otherwise the merger parses them in order.
func (s *source) work() {
	for c := range s.chunks {
		r := &result{chunk: c}
		select {
		case r.events = <-s.spent:
		default:
		}
		if s.parallel {
			st, err := s.newStream()
			if err == nil { // the first one was made without error: so are these
				s.parse(r, st)
				r.parsed = true
			}
		}
		select {
		case s.results <- r:
		case <-s.ctx.Done():
			return
		}
	}
}

// parse reads the lines of r's chunk with st.
func (s *source) parse(r *result, st *parsers.Stream) {
	r.stream, r.events, r.lines = st, r.events[:0], 0
	if r.events == nil {
		r.events = make([]parsers.Event, 0, max(s.eventCap.Load(), 64))
	}
	var long int64
	data := r.data
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		r.lines++
		if len(line) > s.opts.MaxLine {
			long++
			continue
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		// Parse into the next slot: no copy of each event.
		n := len(r.events)
		if n == cap(r.events) {
			r.events = slices.Grow(r.events, 1)
		}
		if r.events = r.events[:n+1]; !st.Uncounted(line, r.lines, &r.events[n]) {
			r.events = r.events[:n]
		}
	}
	st.AddLines(r.lines - long)
	st.TooLong(long + r.long)
	if c := int64(cap(r.events)); c > s.eventCap.Load() {
		s.eventCap.Store(c) // a racy maximum is fine: it is a size hint
	}
	r.idle = st.Idle()
}

// merge puts parsed chunks back in order, parses again the chunks whose
// parser started in the wrong state, numbers lines, fills in the times of
// lines without one, and hands the events out.
func (s *source) merge() {
	defer close(s.out)
	pending := map[int]*result{}
	next := 0
	var prev *result
	var base int64     // lines before the next chunk
	var last time.Time // time of the last event that had one
	for r := range s.results {
		pending[r.seq] = r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if !r.parsed || prev != nil && !prev.idle {
				// Read it where the chunk before left off.
				var st *parsers.Stream
				if prev != nil {
					st = prev.stream.Continue()
				} else if st, _ = s.newStream(); st == nil {
					continue // cannot happen: the first stream was made
				}
				s.parse(r, st)
			}
			s.counts.Add(r.stream.Counts())
			base += r.long
			for i := range r.events {
				ev := &r.events[i]
				ev.Line += base
				if ev.Time.IsZero() {
					if last.IsZero() {
						last = s.opts.Now()
					}
					ev.Time = last
				} else {
					last = ev.Time
				}
			}
			base += r.lines
			if len(r.events) > 0 {
				select {
				case s.out <- r.events:
				case <-s.ctx.Done():
					return
				}
			}
			s.bufs <- r.buf // never blocks: one buffer per slot
			prev = &result{stream: r.stream, idle: r.idle}
			<-s.slots
		}
	}
}

// peek returns the source's next event, or nil at its end.
func (s *source) peek() *parsers.Event {
	for s.pos == len(s.cur) {
		if s.done {
			return nil
		}
		if s.cur != nil {
			select {
			case s.spent <- s.cur[:0]:
			default:
			}
		}
		b, ok := <-s.out
		s.cur, s.pos, s.done = b, 0, !ok
	}
	return &s.cur[s.pos]
}
