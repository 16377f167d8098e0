//go:build linux

package watchers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/watchers"
)

// The test logs hold numbered lines, each written whole by one write(2) with
// O_APPEND as Asterisk's fopen("a") and fflush do. A reader's output is
// checked line by line: every number once, in order, every line intact.

const pad = "NOTICE[4242] res_pjsip/pjsip_distributor.c: Request 'REGISTER' failed"

func lineText(n int) string { return fmt.Sprintf("L %08d %s", n, pad) }

// lineNum returns the number of a test line, false if the line is not one
// exactly (a fragment, two lines run together).
func lineNum(text []byte) (int, bool) {
	if len(text) != 11+len(pad) || text[0] != 'L' || text[1] != ' ' || text[10] != ' ' || string(text[11:]) != pad {
		return 0, false
	}
	n, err := strconv.Atoi(string(text[2:10]))
	return n, err == nil
}

// collector counts the lines a reader hands out.
type collector struct {
	mu      sync.Mutex
	seen    []uint16 // deliveries per line number
	total   int
	dup     int
	order   int // lines handed out after a higher number
	max     int
	bad     []string
	pos     watchers.Position // after the last line
	changed time.Time
	settled int // sentinel lines handed out (see settle)
}

func newCollector() *collector { return &collector{changed: time.Now()} }

func (c *collector) emit(lines []watchers.Line) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range lines {
		c.addLocked(l.Text)
		c.pos = l.Pos
	}
	return nil
}

func (c *collector) add(text []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(text)
}

func (c *collector) addLocked(text []byte) {
	c.changed = time.Now()
	if string(text) == sentinelText {
		c.settled++
		return
	}
	n, ok := lineNum(text)
	if !ok {
		if len(c.bad) < 5 {
			c.bad = append(c.bad, fmt.Sprintf("%.80q", text))
		}
		return
	}
	for len(c.seen) <= n {
		c.seen = append(c.seen, make([]uint16, len(c.seen)+1024)...)
	}
	c.seen[n]++
	c.total++
	if c.seen[n] > 1 {
		c.dup++
	}
	if n < c.max {
		c.order++
	}
	c.max = max(c.max, n)
}

// idleAt tells whether line n, or a later one, was handed out, or nothing
// was for 100ms (a reader that lost lines or is stuck).
func (c *collector) idleAt(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max >= n || time.Since(c.changed) > 100*time.Millisecond
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func (c *collector) last() watchers.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// wait returns once n lines arrived, or the last one did and nothing came
// for a while (a reader that loses lines), or nothing came for giveUp (a
// stuck reader; 0: never), or at the timeout.
func (c *collector) wait(n int, timeout time.Duration) { c.waitIdle(n, timeout, 0) }

func (c *collector) waitIdle(n int, timeout, giveUp time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		idle := time.Since(c.changed)
		done := c.total >= n || len(c.seen) > n && c.seen[n] > 0 && idle > 300*time.Millisecond ||
			giveUp > 0 && idle > giveUp
		c.mu.Unlock()
		if done {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sentinelText is the line a test writes after all of its own (settle).
const sentinelText = "sentinel: every line before this one has been handed out"

// settle appends the sentinel line to path and waits until it is handed
// out, at most timeout. A follower reads a file in order and finishes a
// rotated file before the next, so by then every line it will hand out,
// a duplicate included, has come: the positive signal a check for lost,
// extra or duplicated lines waits for, instead of a pause.
func (c *collector) settle(t *testing.T, path string, timeout time.Duration) bool {
	t.Helper()
	return c.settleWith(t, timeout, func() error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(sentinelText + "\n")
		return err
	})
}

// settleVia is settle writing through w's open file (a test that can no
// longer open the file itself).
func (c *collector) settleVia(t *testing.T, w *logWriter, timeout time.Duration) bool {
	t.Helper()
	return c.settleWith(t, timeout, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, err := w.f.WriteString(sentinelText + "\n")
		return err
	})
}

func (c *collector) settleWith(t *testing.T, timeout time.Duration, write func() error) bool {
	t.Helper()
	c.mu.Lock()
	before := c.settled
	c.mu.Unlock()
	if err := write(); err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		c.mu.Lock()
		done := c.settled > before
		c.mu.Unlock()
		if done {
			return true
		}
	}
	return false
}

// lost returns the numbers in [from, to] never handed out.
func (c *collector) lost(from, to int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lost []int
	for n := from; n <= to; n++ {
		if n >= len(c.seen) || c.seen[n] == 0 {
			lost = append(lost, n)
		}
	}
	return lost
}

// extra returns the numbers outside [from, to] handed out.
func (c *collector) extra(from, to int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for n, k := range c.seen {
		if k > 0 && (n < from || n > to) {
			out = append(out, n)
		}
	}
	return out
}

// diff returns the numbers of want never handed out, and those handed out
// that are not in want.
func (c *collector) diff(want []int) (lost, extra []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := map[int]bool{}
	for _, n := range want {
		in[n] = true
		if n >= len(c.seen) || c.seen[n] == 0 {
			lost = append(lost, n)
		}
	}
	for n, k := range c.seen {
		if k > 0 && !in[n] {
			extra = append(extra, n)
		}
	}
	return lost, extra
}

// testLogger returns a debug logger whose output is shown if t fails.
func testLogger(t *testing.T) (zerolog.Logger, *testutil.Buffer) {
	t.Helper()
	buf := &testutil.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("follower log:\n%s", buf.String())
		}
	})
	return zerolog.New(buf).Level(zerolog.DebugLevel), buf
}

// handle is a running reader of a file.
type handle struct {
	c      *collector
	giveUp time.Duration // see collector.waitIdle
	stop   func()
	stats  func() string
}

// tailer starts reading path from its beginning.
type tailer func(t *testing.T, path string) *handle

// ours follows with a Follower.
func ours(opts watchers.Options) tailer {
	return func(t *testing.T, path string) *handle {
		t.Helper()
		opts := opts
		opts.Start = watchers.StartBeginning
		opts.Logger, _ = testLogger(t)
		f := watchers.NewFollower(path, opts)
		c := newCollector()
		stop := start(t, f, c.emit)
		return &handle{c: c, stop: stop, stats: func() string {
			st := f.Stats()
			return fmt.Sprintf("rotations %d, truncations %d, recovered from copies %d, partial dropped %d",
				st.Rotations, st.Truncations, st.Recovered, st.Partial)
		}}
	}
}

// start runs f in the background. The returned stop cancels it and checks
// that Run returned ctx's error; it is also called at the end of the test.
func start(t *testing.T, f *watchers.Follower, emit func([]watchers.Line) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, emit) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v; want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// logWriter writes numbered lines like Asterisk: O_APPEND, a line per
// write(2), in bursts with small pauses. A rotation asks it to reopen its
// file, after writing some more lines to the old one.
type logWriter struct {
	path     string
	mu       sync.Mutex // held for each write: holding it pauses the writer
	f        *os.File
	written  atomic.Int64
	reopen   chan int // lines to write to the old file, then reopen
	reopened chan struct{}
	// caughtUp, when set, tells whether the reader has line n. Before
	// writing to the old file the writer waits for it, so that the reader
	// is idle when the file is renamed, as with a quiet log.
	caughtUp func(n int) bool
}

func newLogWriter(t *testing.T, path string) *logWriter {
	t.Helper()
	w := &logWriter{path: path, reopen: make(chan int, 1), reopened: make(chan struct{}, 1)}
	if err := w.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.f.Close() })
	return w
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f = f
	return nil
}

func (w *logWriter) line(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.f.WriteString(lineText(n) + "\n")
	w.written.Store(int64(n))
	return err
}

// write writes lines from..to, in bursts of up to 200 lines separated by
// pauses of up to half a millisecond.
func (w *logWriter) write(from, to int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	late := -1
	burst := 0
	for n := from; n <= to; n++ {
		select {
		case late = <-w.reopen:
			if late > 0 {
				deadline := time.Now().Add(5 * time.Second)
				for w.caughtUp != nil && !w.caughtUp(n-1) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Microsecond)
				}
				time.Sleep(5 * time.Millisecond) // and has seen the rotation
			}
		default:
		}
		if late == 0 {
			if err := w.open(); err != nil {
				return err
			}
			late = -1
			w.reopened <- struct{}{}
		}
		if err := w.line(n); err != nil {
			return err
		}
		if late > 0 {
			if late--; late%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if burst--; burst <= 0 {
			burst = 1 + rng.IntN(200)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		}
	}
	if late >= 0 {
		if err := w.open(); err != nil {
			return err
		}
		w.reopened <- struct{}{}
	}
	return nil
}

// scenario is a writer writing lines while the file is rotated.
type scenario struct {
	name      string
	kind      string // "rename" (writer recreates), "create" (rotator creates), "delete", "copytruncate"
	lines     int
	rotations int
	late      int  // lines written to the old file after a rename or delete, before reopening
	pause     bool // copytruncate: the writer pauses from the copy to the truncate
}

type outcome struct {
	written, got, dup, order int
	lost                     []int
	window                   int // lines in neither the copies nor the file: written between copy and truncate
	lostOutsideWindow        int // of lost, those still on disk
	bad                      []string
}

func (o outcome) String() string {
	s := fmt.Sprintf("%d lines written, %d received, lost %d, duplicated %d, out of order %d",
		o.written, o.got, len(o.lost), o.dup, o.order)
	if o.window > 0 || o.lostOutsideWindow > 0 {
		s += fmt.Sprintf(" (copy-to-truncate window: %d lines; lost outside it %d)", o.window, o.lostOutsideWindow)
	}
	if len(o.lost) > 0 {
		s += fmt.Sprintf("; first lost %v", o.lost[:min(len(o.lost), 8)])
	}
	if len(o.bad) > 0 {
		s += fmt.Sprintf("; bad lines %v", o.bad)
	}
	return s
}

// run runs sc with tl reading and returns what arrived.
func (sc scenario) run(t *testing.T, tl tailer) (outcome, *handle) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "messages")
	w := newLogWriter(t, path)
	h := tl(t, path)
	w.caughtUp = h.c.idleAt

	var wg sync.WaitGroup
	var werr, rerr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		werr = w.write(1, sc.lines, uint64(len(sc.name)))
	}()
	go func() {
		defer wg.Done()
		rerr = sc.rotate(w)
	}()
	wg.Wait()
	if werr != nil || rerr != nil {
		t.Fatalf("writer: %v; rotator: %v", werr, rerr)
	}
	h.c.waitIdle(sc.lines, 10*time.Second, h.giveUp)
	if !h.c.settle(t, path, 5*time.Second) {
		t.Logf("%s: the sentinel line written after the last one never came", sc.name)
	}
	h.stop()

	o := outcome{written: sc.lines, got: h.c.count(), lost: h.c.lost(1, sc.lines)}
	h.c.mu.Lock()
	o.dup, o.order, o.bad = h.c.dup, h.c.order, h.c.bad
	h.c.mu.Unlock()
	if sc.kind == "copytruncate" {
		onDisk := linesOnDisk(t, dir)
		for n := 1; n <= sc.lines; n++ {
			if !onDisk[n] {
				o.window++
			}
		}
		for _, n := range o.lost {
			if onDisk[n] {
				o.lostOutsideWindow++
			}
		}
	}
	return o, h
}

// rotate rotates the file sc.rotations times, evenly through the writing.
func (sc scenario) rotate(w *logWriter) error {
	for i := 1; i <= sc.rotations; i++ {
		at := int64(sc.lines * i / (sc.rotations + 1))
		for w.written.Load() < at {
			time.Sleep(100 * time.Microsecond)
		}
		old := fmt.Sprintf("%s.%d", w.path, i)
		switch sc.kind {
		case "rename", "create":
			if err := os.Rename(w.path, old); err != nil {
				return err
			}
			if sc.kind == "create" { // logrotate "create"
				f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return err
				}
				f.Close()
			}
		case "delete":
			if err := os.Remove(w.path); err != nil {
				return err
			}
		case "copytruncate":
			if err := copyTruncate(w, old, sc.pause); err != nil {
				return err
			}
			continue // the writer keeps its file
		}
		w.reopen <- sc.late
		<-w.reopened
	}
	return nil
}

// copyTruncate does what logrotate's copytruncate does: copy the file, then
// truncate it in place. With pause the writer waits meanwhile, so nothing
// falls between the copy and the truncate.
func copyTruncate(w *logWriter, to string, pause bool) error {
	if pause {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	src, err := os.OpenFile(w.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return src.Truncate(0)
}

// linesOnDisk returns the line numbers found in the files of dir.
func linesOnDisk(t *testing.T, dir string) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	on := map[int]bool{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for l := range bytes.Lines(b) {
			if n, ok := lineNum(bytes.TrimSuffix(l, []byte("\n"))); ok {
				on[n] = true
			}
		}
	}
	return on
}

// appendLines appends lines from..to to the file at path.
func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	for n := from; n <= to; n++ {
		b.WriteString(lineText(n) + "\n")
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}
