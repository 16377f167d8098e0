package watchers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Position is where a Follower is in a file: enough to resume after a
// restart and to tell whether the file was replaced or truncated meanwhile.
type Position struct {
	Dev         uint64 `json:"dev"`
	Inode       uint64 `json:"inode"`
	Offset      int64  `json:"offset"`      // bytes of complete lines handed out
	Fingerprint string `json:"fingerprint"` // hash of the file's first line; "" while unknown
}

func (p Position) id() fileID { return fileID{dev: p.Dev, ino: p.Inode} }

// Start says where a Follower starts in a file it has no Position for.
type Start int

const (
	StartEnd       Start = iota // only lines appended after Run starts
	StartBeginning              // the whole file
)

func (s Start) String() string {
	switch s {
	case StartEnd:
		return "end"
	case StartBeginning:
		return "beginning"
	}
	return fmt.Sprintf("Start(%d)", int(s))
}

// ParseStart parses "end" or "beginning".
func ParseStart(s string) (Start, error) {
	switch s {
	case "end":
		return StartEnd, nil
	case "beginning":
		return StartBeginning, nil
	}
	return 0, fmt.Errorf("start %q: want \"end\" or \"beginning\"", s)
}

// Options tune a Follower. The zero value follows from the end of the file.
type Options struct {
	Start        Start
	Resume       *Position // saved position; nil = use Start
	MaxLine      int       // longest line kept (0: DefaultMaxLine); longer lines are skipped and counted
	Logger       zerolog.Logger
	PollInterval time.Duration // safety re-check when no event arrives (0: 250ms); inotify gives the low latency
}

// Line is one complete line of the followed file.
type Line struct {
	Text []byte   // without "\n" (and "\r"); valid only during the emit call
	Num  int64    // line number in the current file when known from its beginning, else counted from where reading began
	Pos  Position // position just after this line: what to save once the line is handled
}

// State says whether a Follower reads its file.
type State int

const (
	Starting State = iota // Run has not looked at the path yet
	Reading               // the file is open and read, or a rotated one while the path is missing
	Missing               // the path, or a directory on it, does not exist: waited for
	Failing               // the path cannot be opened or read (Stats.Err says why): retried
)

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Reading:
		return "reading"
	case Missing:
		return "missing"
	case Failing:
		return "failing"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Stats describe a Follower for `sipguard status`.
type Stats struct {
	Path        string
	Lines       int64 // lines handed out
	Long        int64 // lines skipped for being longer than MaxLine
	Rotations   int64 // times the path was found to name another file, or none
	Truncations int64 // times the file was found truncated (copytruncate), here or while stopped
	Reopens     int64 // opens of the path after the first
	Recovered   int64 // lines read from a copytruncate copy after a truncation
	Partial     int64 // unterminated last lines of rotated files or copies, dropped
	State       State
	Err         string    // why the file is not read while State is Failing, as Reason says it
	Waiting     bool      // the path cannot be opened (missing, or Err), also while a rotated file is read
	Draining    bool      // a rotated file is still read: the writer may still write to it
	Polling     bool      // no inotify watch on the directory: changes are seen every PollInterval
	Pos         Position  // position after the last line handed out; what to save
	LastLine    time.Time // when a line was last handed out
}

const (
	defaultPollInterval = 250 * time.Millisecond
	// retryInterval is how often an open that failed with an error other
	// than "not found" (permissions, I/O) is tried again.
	retryInterval = 2 * time.Second
	// headMax caps the first line used as the fingerprint.
	headMax = 256
	// minBuf is the smallest read buffer.
	minBuf = 32 << 10
	// maxOlds bounds the rotated files kept open while they drain.
	maxOlds = 4
)

// Follower follows one log file across rotations, the way `tail -F` does,
// but without losing or repeating a line.
//
// It reads the file descriptor itself (pread at its own offsets) and is
// woken by inotify on the file's directory, which reports writes, creation,
// renames and removal alike, and by a ticker every PollInterval as a safety
// net and for a directory that does not exist yet.
//
// Rotation by rename (logrotate "create", Asterisk "logger rotate") or by
// removal keeps the old descriptor open: the writer goes on writing to it
// until it reopens the path. The writer writes to one file at a time, so
// once the new file has data nothing more will come to the old one, and a
// last read to its end gets everything; until then both are watched and
// only the old one is read.
//
// Truncation in place (logrotate "copytruncate") is seen when the file is
// shorter than the read offset or its first line changed. What the writer
// added between the last read and the truncation is then only in the copy,
// so the copy (a sibling whose first line matches, e.g. name.1 or
// name-20240101) is read from the old offset first. Lines the writer adds
// between logrotate's copy and its truncate are in neither file: that
// window is the one loss copytruncate makes unavoidable.
type Follower struct {
	path string
	dir  string
	base string
	opts Options
	log  zerolog.Logger

	running atomic.Bool
	looked  chan struct{} // closed once Run has first looked at the path

	mu sync.Mutex
	st Stats

	// State of Run, used by its goroutine only.
	cur       *source   // the file at the path
	olds      []*source // rotated files still read, oldest first
	resume    *Position // applied at the first step
	started   bool      // the first open happened: later files are new
	missing   bool      // the path was missing before the first open: the file is new
	startID   fileID    // the file at the path when Run started, for StartEnd
	startSize int64
	startSeen bool
	waiting   bool   // absence logged
	openErr   string // why the path cannot be opened (Reason), logged when it starts
	nextTry   time.Time
	readErr   string  // why the last read failed (Reason), logged when it starts
	logs      limiter // those logs: once per reason per logEvery
	hasLooked bool    // looked is closed
	state     State   // as last published in st
	stateErr  string
	stateWait bool
	batch     []Line
	bufs      [][]byte // read buffers not in use
	scratch   []byte
}

// fileID is a file's identity on the machine.
type fileID struct{ dev, ino uint64 }

type fileStat struct {
	id   fileID
	size int64
	mode fs.FileMode // type bits only
}

// NewFollower returns a Follower of path. Nothing happens before Run.
func NewFollower(path string, opts Options) *Follower {
	path = filepath.Clean(path)
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	f := &Follower{
		path:   path,
		dir:    filepath.Dir(path),
		base:   filepath.Base(path),
		opts:   opts,
		log:    opts.Logger.With().Str("path", path).Logger(),
		looked: make(chan struct{}),
	}
	if opts.Resume != nil && (opts.Resume.Inode != 0 || opts.Resume.Dev != 0) {
		p := *opts.Resume
		f.resume = &p
	}
	f.st.Path = path
	return f
}

// Stats returns the follower's counters and state. It is safe for
// concurrent use.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// Looked is closed once Run has first looked at the path: opened the file
// or learned why it cannot. From then on Stats.State says whether the file
// is read, so a daemon can wait for it before it says it is ready.
func (f *Follower) Looked() <-chan struct{} { return f.looked }

func (f *Follower) update(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.st)
	f.mu.Unlock()
}

// Run follows the file until ctx is done, calling emit with batches of
// complete lines in file order (never a partial line). It returns ctx.Err()
// at the end, or emit's error. It must not block other followers: each
// Follower has its own inotify instance and shares nothing.
//
// Problems with the file (missing, unreadable) are logged and retried, not
// returned. Run may be called again after it returned: it resumes at the
// position it stopped at.
func (f *Follower) Run(ctx context.Context, emit func([]Line) error) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("follow " + f.path + ": already running")
	}
	defer f.running.Store(false)
	defer f.stop()
	defer f.lookedAt() // when Run ends before its first look

	if !f.started && f.resume == nil {
		// StartEnd means what the file holds now; remember it even if the
		// file cannot be opened yet.
		st, err := statPath(f.path)
		switch {
		case err == nil:
			f.startID, f.startSize, f.startSeen = st.id, st.size, true
		case errors.Is(err, fs.ErrNotExist):
			f.missing = true
		}
	}

	w := f.newWatch()
	defer w.close()
	tick := time.NewTicker(f.opts.PollInterval)
	defer tick.Stop()

	force := true
	for {
		if err := f.step(ctx, emit, force); err != nil {
			return err
		}
		var ok bool
		if force, ok = f.wait(ctx, w, tick.C); !ok {
			return ctx.Err()
		}
	}
}

// stop closes every file and keeps the position for a later Run.
func (f *Follower) stop() {
	// A line being written stays unread: the position is before it.
	for _, s := range f.olds {
		s.r, s.w, s.skipping = 0, 0, false
		f.closeSource(s)
	}
	f.olds = nil
	if f.cur != nil {
		f.cur.r, f.cur.w, f.cur.skipping = 0, 0, false
		f.closeSource(f.cur)
		f.cur = nil
	}
	f.mu.Lock()
	if p := f.st.Pos; p.Inode != 0 || p.Dev != 0 {
		f.resume = &p
	}
	f.st.Draining = false
	f.mu.Unlock()
}

// step brings the follower up to date: it notices a rotation, opens the
// file, drains rotated files and reads new lines. force is set when an event
// named the file: a failed open is then retried at once.
func (f *Follower) step(ctx context.Context, emit func([]Line) error, force bool) error {
	st, err := statPath(f.path)
	if f.cur != nil && (errors.Is(err, fs.ErrNotExist) || err == nil && st.id != f.cur.id) {
		f.rotated(err)
	}
	switch {
	case f.cur != nil:
	case err != nil && f.resume == nil:
		f.noFile(err)
	case !force && f.openErr != "" && time.Now().Before(f.nextTry):
	case f.resume != nil:
		if err := f.applyResume(ctx, emit); err != nil {
			return err
		}
	default:
		f.open()
	}
	defer f.publish()
	if len(f.olds) > 0 {
		if err := f.drainOlds(ctx, emit); err != nil {
			return err
		}
		if len(f.olds) > 0 {
			return nil // the writer may still write there: the new file waits
		}
	}
	// One truncation per step: a file that seems truncated again at once
	// (a pseudo-file whose size is not its content) waits for the next
	// wakeup instead of spinning.
	for once := true; f.cur != nil; once = false {
		truncated, err := f.read(ctx, f.cur, emit, true)
		if err != nil || !truncated || !once {
			return err
		}
		if err := f.truncated(ctx, emit); err != nil {
			return err
		}
	}
	return nil
}

// rotated moves the current file to the rotated ones: the path names
// another file now, or none.
func (f *Follower) rotated(statErr error) {
	s := f.cur
	f.cur = nil
	msg := "file rotated"
	if statErr != nil {
		msg = "file renamed or removed"
	}
	f.log.Info().Int64("offset", s.off).Msg(msg)
	f.olds = append(f.olds, s)
	f.update(func(st *Stats) { st.Rotations++; st.Draining = true })
}

// drainOlds reads the rotated files to their end and closes those the
// writer has left. A single writer writes to one file at a time and opens
// the next only after leaving the previous one: once a newer file has data,
// the older ones will get nothing more, so a read to their end now, after
// that was seen, gets all they will ever hold.
func (f *Follower) drainOlds(ctx context.Context, emit func([]Line) error) error {
	final := len(f.olds) - maxOlds // too many: let the oldest go
	if f.cur != nil {
		if st, err := statFile(f.cur.f); err == nil && st.size > 0 {
			final = len(f.olds)
		}
	}
	for i := len(f.olds) - 1; i >= 1 && i > final; i-- {
		// Rotated files other than the first were opened empty, as new.
		if st, err := statFile(f.olds[i].f); err == nil && st.size > 0 {
			final = i
			break
		}
	}
	for i, s := range f.olds {
		if _, err := f.read(ctx, s, emit, false); err != nil {
			return err
		}
		if i < final {
			f.log.Debug().Int64("offset", s.off).Msg("rotated file drained")
			f.closeSource(s)
		}
	}
	if final > 0 {
		f.olds = append(f.olds[:0], f.olds[min(final, len(f.olds)):]...)
		if len(f.olds) == 0 {
			f.olds = nil
			if f.cur != nil {
				f.setPos(f.cur)
			}
		}
		f.update(func(st *Stats) { st.Draining = len(f.olds) > 0 })
	}
	return nil
}

// open opens the file at the path as the current file.
func (f *Follower) open() {
	fh, st, err := openFile(f.path)
	if err != nil {
		f.noFile(err)
		return
	}
	s := f.newSource(fh, st.id)
	start := "new"
	if !f.started {
		f.started = true
		switch {
		case f.missing:
		case f.opts.Start == StartBeginning:
			start = "beginning"
		case f.startSeen && st.id != f.startID:
			// replaced since Run started: all of it is new
		default:
			start = "end"
			size := st.size
			if f.startSeen {
				size = min(size, f.startSize)
			}
			f.seekEnd(s, size)
		}
	} else {
		f.update(func(st *Stats) { st.Reopens++ })
	}
	f.cur = s
	f.loadHead(s)
	f.log.Info().Str("start", start).Int64("offset", s.off).Msg("following file")
	f.opened()
	if len(f.olds) == 0 {
		f.setPos(s)
	}
}

// opened clears the state of a missing or unreadable file.
func (f *Follower) opened() {
	f.waiting, f.openErr = false, ""
	f.publish()
}

// lookedAt closes looked, once.
func (f *Follower) lookedAt() {
	if !f.hasLooked {
		f.hasLooked = true
		close(f.looked)
	}
}

// publish sets Stats.State and Stats.Err from what the follower found, as
// soon as it found it: the first time, before any line is handed out (a
// daemon waiting for Looked may be the one the lines go to). A missing
// path while a rotated file is still read is usual in a rotation: the
// follower reads.
func (f *Follower) publish() {
	state, msg := Starting, ""
	switch {
	case f.openErr != "":
		state, msg = Failing, f.openErr
	case f.readErr != "":
		state, msg = Failing, f.readErr
	case f.cur != nil || len(f.olds) > 0:
		state = Reading
	case f.waiting:
		state = Missing
	}
	waiting := f.waiting
	if state == f.state && msg == f.stateErr && waiting == f.stateWait {
		return
	}
	f.state, f.stateErr, f.stateWait = state, msg, waiting
	f.update(func(st *Stats) { st.State, st.Err, st.Waiting = state, msg, waiting })
	if state != Starting {
		f.lookedAt()
	}
}

// noFile handles a path that cannot be opened: a missing file is waited
// for, other errors are logged once and retried every retryInterval.
func (f *Follower) noFile(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		if !f.started {
			f.missing = true
		}
		if !f.waiting || f.openErr != "" {
			if len(f.olds) > 0 {
				f.log.Debug().Msg("waiting for file to appear") // usual during a rotation
			} else if ok, held := f.logs.allow("missing", time.Now()); ok {
				heldBack(f.log.Info(), held).Msg("waiting for file to appear")
			}
		}
		f.waiting, f.openErr = true, ""
		f.publish()
		return
	}
	msg := Reason(err)
	if msg != f.openErr {
		if ok, held := f.logs.allow("open: "+msg, time.Now()); ok {
			heldBack(f.log.Error().Err(err), held).Msg("cannot open file; retrying")
		}
	}
	f.waiting, f.openErr = true, msg
	f.nextTry = time.Now().Add(retryInterval)
	f.publish()
}

// applyResume starts from a saved position: it continues the same file,
// reads the rest of the file it was in when that was rotated meanwhile, or
// reads a file truncated meanwhile from its copy and its beginning.
func (f *Follower) applyResume(ctx context.Context, emit func([]Line) error) error {
	p := *f.resume
	fh, st, err := openFile(f.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.noFile(err) // retried: the position is kept until the file can be read
		return nil
	}
	f.resume, f.started = nil, true
	log := f.log.Info().Uint64("inode", p.Inode).Int64("offset", p.Offset)
	if err == nil && st.id == p.id() {
		s := f.newSource(fh, st.id)
		f.loadHead(s)
		f.cur = s
		f.opened()
		if st.size >= p.Offset && (p.Fingerprint == "" || s.fp == p.Fingerprint) {
			s.rd, s.off = p.Offset, p.Offset
			f.setPos(s)
			log.Str("resume", "continue").Msg("resuming")
			return nil
		}
		log.Str("resume", "truncated").Msg("file truncated while stopped; reading it from its beginning")
		f.update(func(st *Stats) { st.Truncations++ })
		f.setPos(s)
		return f.recoverCopy(ctx, emit, p.Fingerprint, p.Offset, 0, st.id)
	}
	if old := f.findRotated(p); old != nil {
		f.olds = []*source{old}
		f.update(func(st *Stats) { st.Draining = true })
		f.setPos(old)
		log.Str("resume", "rotated").Str("old", old.name).
			Msg("file rotated while stopped; reading the rest of the old one first")
	} else {
		f.log.Warn().Uint64("inode", p.Inode).Int64("offset", p.Offset).Str("resume", "lost").
			Msg("file replaced while stopped and the old one is gone; lines written to it after the saved position are lost")
	}
	if err != nil {
		f.noFile(err)
		return nil
	}
	s := f.newSource(fh, st.id)
	f.cur = s
	f.loadHead(s)
	f.opened()
	f.log.Info().Str("start", "new").Int64("offset", 0).Msg("following file")
	if len(f.olds) == 0 {
		f.setPos(s)
	}
	return nil
}

// findRotated looks in the directory for the file p was in (same device and
// inode, same first line), renamed by a rotation.
func (f *Follower) findRotated(p Position) *source {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || idOf(info) != p.id() || info.Size() < p.Offset {
			continue
		}
		name := filepath.Join(f.dir, e.Name())
		fh, st, err := openFile(name)
		if err != nil {
			f.log.Warn().Err(err).Msg("cannot open rotated file")
			return nil
		}
		if st.id != p.id() {
			fh.Close()
			return nil
		}
		s := f.newSource(fh, p.id())
		s.name = name
		if f.loadHead(s); p.Fingerprint != "" && s.fp != p.Fingerprint {
			f.closeSource(s) // the inode was reused by another file
			return nil
		}
		s.rd, s.off = p.Offset, p.Offset
		return s
	}
	return nil
}

// truncated handles the current file found truncated: it reads what the
// copy holds past the last line handed out, then the file from its start.
func (f *Follower) truncated(ctx context.Context, emit func([]Line) error) error {
	s := f.cur
	if ok, held := f.logs.allow("truncated", time.Now()); ok {
		heldBack(f.log.Info().Int64("offset", s.off), held).Msg("file truncated")
	}
	f.update(func(st *Stats) { st.Truncations++ })
	fp, off, num := s.fp, s.off, s.num
	s.rd, s.off, s.num = 0, 0, 0
	s.r, s.w, s.skipping = 0, 0, false
	s.head, s.fp = nil, ""
	f.setPos(s)
	return f.recoverCopy(ctx, emit, fp, off, num, s.id)
}

// recoverCopy finds the copy copytruncate made of a file whose first line
// hashed to fp, and hands out its lines after off, numbering them on from
// num. The copy is a sibling whose name starts with the file's name
// (name.1, name-20240101); compressed ones are skipped.
func (f *Follower) recoverCopy(ctx context.Context, emit func([]Line) error, fp string, off, num int64, self fileID) error {
	if fp == "" {
		return nil
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		f.log.Warn().Err(err).Msg("cannot look for the copy of the truncated file")
		return nil
	}
	var best fs.FileInfo
	for _, e := range entries {
		name := e.Name()
		if name == f.base || !strings.HasPrefix(name, f.base) || compressed(name) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() < off || idOf(info) == self {
			continue
		}
		if best != nil && !info.ModTime().After(best.ModTime()) {
			continue
		}
		if headFingerprint(filepath.Join(f.dir, name)) == fp {
			best = info
		}
	}
	if best == nil {
		f.log.Info().Int64("offset", off).Msg("no copy of the truncated file found")
		return nil
	}
	if best.Size() == off {
		return nil // nothing was missed
	}
	name := filepath.Join(f.dir, best.Name())
	fh, st, err := openFile(name)
	if err != nil {
		f.log.Warn().Err(err).Str("copy", name).Msg("cannot open the copy of the truncated file")
		return nil
	}
	s := f.newSource(fh, st.id)
	s.name = name
	s.rd, s.off, s.num = off, off, num
	f.loadHead(s)
	before := f.Stats().Lines
	_, err = f.read(ctx, s, emit, false)
	f.closeSource(s)
	n := f.Stats().Lines - before
	f.update(func(st *Stats) { st.Recovered += n })
	f.log.Info().Str("copy", name).Int64("offset", off).Int64("lines", n).Msg("read the copy of the truncated file")
	if f.cur != nil {
		f.setPos(f.cur)
	}
	return err
}

// compressed tells whether a rotated file's name says it is compressed.
func compressed(name string) bool {
	switch filepath.Ext(name) {
	case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lzo", ".Z", ".zip":
		return true
	}
	return false
}

// source is one open file being read.
type source struct {
	f        *os.File
	name     string
	id       fileID
	rd       int64 // next offset to read
	off      int64 // end of the last complete line handed out or skipped
	num      int64 // lines seen
	head     []byte
	fp       string
	skipping bool // in a line longer than MaxLine: discard up to its "\n"
	buf      []byte
	r, w     int // buf[r:w] is read but not handed out: the start of a line
}

func (s *source) pos() Position {
	return Position{Dev: s.id.dev, Inode: s.id.ino, Offset: s.off, Fingerprint: s.fp}
}

func (f *Follower) newSource(fh *os.File, id fileID) *source {
	return &source{f: fh, name: fh.Name(), id: id}
}

func (f *Follower) closeSource(s *source) {
	if s.w > s.r || s.skipping {
		f.log.Debug().Str("file", s.name).Int64("offset", s.off).Msg("unterminated last line dropped")
		f.update(func(st *Stats) { st.Partial++ })
	}
	s.f.Close()
	if s.buf != nil {
		f.bufs = append(f.bufs, s.buf)
		s.buf = nil
	}
}

func (f *Follower) setPos(s *source) {
	p := s.pos()
	f.update(func(st *Stats) { st.Pos = p })
}

// seekEnd starts s at the start of the line that holds offset size: after
// the last "\n" before it. A line being written as Run starts is handed out
// whole once complete.
func (f *Follower) seekEnd(s *source, size int64) {
	window := min(size, int64(f.opts.MaxLine)+1)
	b := f.scratchBuf(int(window))
	n, _ := s.f.ReadAt(b, size-window)
	b = b[:n]
	switch i := bytes.LastIndexByte(b, '\n'); {
	case i >= 0:
		s.rd = size - window + int64(i) + 1
	case size == window:
		s.rd = 0
	default: // in a line already too long
		s.rd = size
		s.skipping = true
		f.update(func(st *Stats) { st.Long++ })
	}
	s.off = s.rd
}

// loadHead reads s's first line, the fingerprint, once it is complete.
func (f *Follower) loadHead(s *source) {
	if s.head != nil {
		return
	}
	var b [headMax]byte
	n, _ := s.f.ReadAt(b[:], 0)
	if h := firstLine(b[:n]); h != nil {
		s.head = bytes.Clone(h)
		s.fp = fingerprint(s.head)
	}
}

// firstLine returns the first line of b with its "\n", or its first headMax
// bytes; nil while neither is there.
func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	if len(b) >= headMax {
		return b[:headMax]
	}
	return nil
}

func fingerprint(head []byte) string {
	sum := sha256.Sum256(head)
	return hex.EncodeToString(sum[:16])
}

// headFingerprint returns the fingerprint of the file at name, "" if it
// has none.
func headFingerprint(name string) string {
	fh, _, err := openFile(name)
	if err != nil {
		return ""
	}
	defer fh.Close()
	var b [headMax]byte
	n, _ := fh.ReadAt(b[:], 0)
	if h := firstLine(b[:n]); h != nil {
		return fingerprint(h)
	}
	return ""
}

func (f *Follower) scratchBuf(n int) []byte {
	if cap(f.scratch) < n {
		f.scratch = make([]byte, n)
	}
	return f.scratch[:n]
}

// read hands out s's complete lines up to its end. With check it makes sure
// after each read that the file was not truncated meanwhile, and reports a
// truncation instead of handing out what the new content holds at the old
// offset.
func (f *Follower) read(ctx context.Context, s *source, emit func([]Line) error, check bool) (truncated bool, err error) {
	if s.buf == nil {
		if n := len(f.bufs); n > 0 {
			s.buf, f.bufs = f.bufs[n-1], f.bufs[:n-1]
		} else {
			s.buf = make([]byte, max(f.opts.MaxLine+1, minBuf))
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		start, free := s.rd, len(s.buf)-s.w
		n, err := s.f.ReadAt(s.buf[s.w:], start)
		if err != nil && !errors.Is(err, io.EOF) {
			if msg := Reason(err); msg != f.readErr {
				f.readErr = msg
				if ok, held := f.logs.allow("read: "+msg, time.Now()); ok {
					heldBack(f.log.Warn().Err(err).Str("file", s.name).Int64("offset", start), held).
						Msg("cannot read file; retrying")
				}
			}
			return false, nil
		}
		f.readErr = ""
		if check && f.changed(s, start+int64(n)) {
			// Bytes that the file holds at the same place now were read
			// from the new content: they are read again from its start.
			// Others were read before the truncation and are the old
			// file's, to hand out.
			if n == 0 || f.sameAt(s, start, s.buf[s.w:s.w+n]) {
				return true, nil
			}
			s.w += n
			s.rd += int64(n)
			return true, f.split(s, emit)
		}
		s.w += n
		s.rd += int64(n)
		if err := f.split(s, emit); err != nil {
			return false, err
		}
		if n < free {
			return false, nil
		}
	}
}

// changed tells whether s was truncated: it is shorter than what was read,
// or its first line is not the one it had.
func (f *Follower) changed(s *source, end int64) bool {
	st, err := statFile(s.f)
	if err != nil {
		return false
	}
	if st.size < end {
		return true
	}
	if s.head == nil {
		return false
	}
	b := f.scratchBuf(len(s.head))
	n, _ := s.f.ReadAt(b, 0)
	return !bytes.Equal(b[:n], s.head)
}

// sameAt tells whether s holds data at offset off.
func (f *Follower) sameAt(s *source, off int64, data []byte) bool {
	b := f.scratchBuf(len(data))
	n, _ := s.f.ReadAt(b, off)
	return n == len(data) && bytes.Equal(b, data)
}

// split hands out the complete lines in s's buffer as one batch.
func (f *Follower) split(s *source, emit func([]Line) error) error {
	f.loadHead(s)
	lines := f.batch[:0]
	var long int64
	from := s.off
	for {
		data := s.buf[s.r:s.w]
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		s.num++
		s.r += i + 1
		s.off = s.rd - int64(s.w-s.r)
		if s.skipping {
			s.skipping = false
			continue
		}
		if i > f.opts.MaxLine {
			long++
			continue
		}
		text := data[:i]
		if i > 0 && text[i-1] == '\r' {
			text = text[:i-1]
		}
		lines = append(lines, Line{Text: text, Num: s.num, Pos: s.pos()})
	}
	switch {
	case s.skipping:
		s.r = s.w
	case s.w-s.r > f.opts.MaxLine:
		s.skipping = true
		s.r = s.w
		long++
	}
	f.batch = lines
	if s.off == from && long == 0 {
		return nil
	}
	p := s.pos()
	now := time.Now()
	f.update(func(st *Stats) {
		st.Lines += int64(len(lines))
		st.Long += long
		st.Pos = p
		if len(lines) > 0 {
			st.LastLine = now
		}
	})
	if len(lines) == 0 {
		return nil
	}
	return emit(lines)
}

// dirWatch is the inotify watch on the file's directory.
type dirWatch struct {
	w      *fsnotify.Watcher
	dir    string
	on     bool
	events chan fsnotify.Event
	errors chan error
	failed string
}

func (f *Follower) newWatch() *dirWatch {
	d := &dirWatch{dir: f.dir}
	w, err := fsnotify.NewBufferedWatcher(64)
	if err != nil {
		f.log.Warn().Err(err).Dur("poll", f.opts.PollInterval).Msg("no inotify; polling")
		f.update(func(st *Stats) { st.Polling = true })
		return d
	}
	d.w, d.events, d.errors = w, w.Events, w.Errors
	f.ensureWatch(d)
	return d
}

// ensureWatch adds the watch on the directory when it is missing: the
// directory did not exist yet, or was removed or renamed.
func (f *Follower) ensureWatch(d *dirWatch) {
	if d.w == nil {
		return
	}
	if d.on && len(d.w.WatchList()) == 0 {
		d.on = false // removed by the kernel (unmount)
	}
	if d.on {
		return
	}
	err := d.w.Add(d.dir)
	if err == nil {
		d.on, d.failed = true, ""
		f.log.Debug().Str("dir", d.dir).Msg("watching directory")
		f.update(func(st *Stats) { st.Polling = false })
		return
	}
	if msg := err.Error(); msg != d.failed && !errors.Is(err, fs.ErrNotExist) {
		f.log.Warn().Err(err).Str("dir", d.dir).Msg("cannot watch directory; polling")
	}
	d.failed = err.Error()
	f.update(func(st *Stats) { st.Polling = true })
}

func (d *dirWatch) close() {
	if d.w != nil {
		d.w.Close()
	}
}

// wait blocks until something may have changed: an event about the file or
// its directory (any event while a rotated file drains), an event overflow,
// or a tick. force reports an event naming the file. ok is false when ctx is
// done.
func (f *Follower) wait(ctx context.Context, d *dirWatch, tick <-chan time.Time) (force, ok bool) {
	for {
		select {
		case <-ctx.Done():
			return false, false
		case ev, open := <-d.events:
			if !open {
				d.events, d.errors = nil, nil
				continue
			}
			wake, named := f.relevant(d, ev)
			for more := true; more; {
				select {
				case ev, open := <-d.events:
					if !open {
						d.events, d.errors, more = nil, nil, false
						break
					}
					w, n := f.relevant(d, ev)
					wake, named = wake || w, named || n
				default:
					more = false
				}
			}
			if wake {
				return named, true
			}
		case err, open := <-d.errors:
			if !open {
				d.events, d.errors = nil, nil
				continue
			}
			f.log.Debug().Err(err).Msg("inotify")
			return true, true // an overflow may have lost the event
		case <-tick:
			f.ensureWatch(d)
			return false, true
		}
	}
}

// relevant tells whether ev may concern the follower, and whether it names
// the file.
func (f *Follower) relevant(d *dirWatch, ev fsnotify.Event) (wake, named bool) {
	name := filepath.Clean(ev.Name)
	if name == d.dir {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			d.on = false
		}
		return true, false
	}
	if filepath.Base(name) == f.base {
		return true, true
	}
	return len(f.olds) > 0, false
}
