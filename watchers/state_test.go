//go:build linux

package watchers_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/watchers"
)

// dropRoot prepares a test that needs file modes to hold when it runs as
// root, which reads any file: it opens the directories from dir up to the
// temporary directory to everyone and returns toNobody, which makes the
// process nobody (effective user id 65534), and asRoot, which runs fn as
// root. Go sets the effective user id on every thread of the process, so
// the follower's goroutines are nobody too, and the test must not be
// parallel. The process is root again when the test ends. Without root
// both are nil: the test's user is already subject to file modes.
func dropRoot(t *testing.T, dir string) (toNobody func(), asRoot func(fn func())) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		chmod(t, d, 0o755)
	}
	const nobody = 65534
	seteuid := func(uid int) {
		if err := syscall.Seteuid(uid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { syscall.Seteuid(0) })
	return func() { seteuid(nobody) }, func(fn func()) { seteuid(0); fn(); seteuid(nobody) }
}

// waitState waits until f is in state want with Err why.
func waitState(t *testing.T, f *watchers.Follower, want watchers.State, why string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("state %v %q", want, why), 5*time.Second, func() bool {
		st := f.Stats()
		return st.State == want && st.Err == why
	})
}

// TestFollower_States: a follower tells a missing file (or a missing
// directory on its path) from one it cannot open, says why, keeps trying,
// and reads the file once the path is fixed.
func TestFollower_States(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		state watchers.State
		why   string
		spoil func(t *testing.T, path string) // makes path unreadable
		fix   func(t *testing.T, path string) // makes it a readable log
	}{{
		name: "missing file", state: watchers.Missing,
		spoil: func(*testing.T, string) {},
		fix:   func(t *testing.T, path string) { appendLines(t, path, 1, 10) },
	}, {
		name: "missing directory", state: watchers.Missing,
		spoil: func(t *testing.T, path string) { remove(t, filepath.Dir(path)) },
		fix: func(t *testing.T, path string) {
			os.Mkdir(filepath.Dir(path), 0o755)
			appendLines(t, path, 1, 10)
		},
	}, {
		// It opens, but a read fails: refused at open.
		name: "directory", state: watchers.Failing, why: "is a directory",
		spoil: func(t *testing.T, path string) { os.Mkdir(path, 0o755) },
		fix: func(t *testing.T, path string) {
			remove(t, path)
			appendLines(t, path, 1, 10)
		},
	}, {
		name: "through a file", state: watchers.Failing, why: "not a directory",
		spoil: func(t *testing.T, path string) {
			remove(t, filepath.Dir(path))
			os.WriteFile(filepath.Dir(path), []byte("a file\n"), 0o644)
		},
		fix: func(t *testing.T, path string) {
			remove(t, filepath.Dir(path))
			os.Mkdir(filepath.Dir(path), 0o755)
			appendLines(t, path, 1, 10)
		},
	}, {
		// Opening it would wait for a writer, and block Run for good.
		name: "FIFO", state: watchers.Failing, why: "not a regular file (a FIFO)",
		spoil: func(t *testing.T, path string) { mkfifo(t, path) },
		fix: func(t *testing.T, path string) {
			remove(t, path)
			appendLines(t, path, 1, 10)
		},
	}, {
		// Reading it never ends: it spun a core and logged a truncation
		// per read.
		name: "symlink to /dev/zero", state: watchers.Failing, why: "not a regular file (a device)",
		spoil: func(t *testing.T, path string) { os.Symlink("/dev/zero", path) },
		fix: func(t *testing.T, path string) {
			remove(t, path)
			appendLines(t, path, 1, 10)
		},
	}, {
		// Size 0, content made as it is read: it seemed truncated at
		// every read (a core at 100%, a log line per read).
		name: "symlink to /proc/self/environ", state: watchers.Failing, why: "not a regular file (size 0 with data: a /proc or /sys file)",
		spoil: func(t *testing.T, path string) { os.Symlink("/proc/self/environ", path) },
		fix: func(t *testing.T, path string) {
			remove(t, path)
			appendLines(t, path, 1, 10)
		},
	}, {
		name: "symlink loop", state: watchers.Failing, why: "too many levels of symbolic links",
		spoil: func(t *testing.T, path string) { os.Symlink(filepath.Base(path), path) },
		fix: func(t *testing.T, path string) {
			remove(t, path)
			appendLines(t, path, 1, 10)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "asterisk")
			os.Mkdir(dir, 0o755)
			path := filepath.Join(dir, "messages")
			tc.spoil(t, path)
			log, _ := testLogger(t)
			f := watchers.NewFollower(path, watchers.Options{Start: watchers.StartBeginning, Logger: log, PollInterval: 20 * time.Millisecond})
			if st := f.Stats().State; st != watchers.Starting {
				t.Errorf("before Run: %v; want starting", st)
			}
			c := newCollector()
			start(t, f, c.emit)
			select {
			case <-f.Looked():
			case <-time.After(5 * time.Second):
				t.Fatal("Looked not closed")
			}
			// Looked means the state is known: no waiting for it.
			if st := f.Stats(); st.State != tc.state || st.Err != tc.why || !st.Waiting {
				t.Fatalf("state %v %q waiting %v; want %v %q waiting", st.State, st.Err, st.Waiting, tc.state, tc.why)
			}
			time.Sleep(50 * time.Millisecond) // retried meanwhile: the same
			if st := f.Stats(); st.State != tc.state || st.Err != tc.why {
				t.Fatalf("later: state %v %q; want %v %q", st.State, st.Err, tc.state, tc.why)
			}
			tc.fix(t, path)
			c.wait(10, 10*time.Second)
			if lost := c.lost(1, 10); len(lost) != 0 || c.dup != 0 {
				t.Errorf("lost %v, duplicated %d", lost, c.dup)
			}
			if st := f.Stats(); st.State != watchers.Reading || st.Err != "" || st.Waiting {
				t.Errorf("fixed: state %v %q waiting %v; want reading", st.State, st.Err, st.Waiting)
			}
		})
	}
}

// TestFollower_StateRotation: while the path is missing in a rotation the
// rotated file is still read (the writer may write to it until it
// reopens); a directory put at the path meanwhile is reported at once.
func TestFollower_StateRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "messages")
	appendLines(t, path, 1, 10)
	log, _ := testLogger(t)
	f := watchers.NewFollower(path, watchers.Options{Start: watchers.StartBeginning, Logger: log, PollInterval: 20 * time.Millisecond})
	c := newCollector()
	start(t, f, c.emit)
	c.wait(10, 5*time.Second)
	rename(t, path, path+".1")
	waitFor(t, "the rename", 5*time.Second, func() bool { return f.Stats().Waiting })
	if st := f.Stats(); st.State != watchers.Reading || !st.Draining {
		t.Errorf("renamed away: state %v draining %v; want reading the rotated file", st.State, st.Draining)
	}
	appendLines(t, path+".1", 11, 20) // the writer has not reopened yet
	c.wait(20, 5*time.Second)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	waitState(t, f, watchers.Failing, "is a directory")
	remove(t, path)
	appendLines(t, path, 21, 30)
	c.wait(30, 5*time.Second)
	waitState(t, f, watchers.Reading, "")
	if lost := c.lost(1, 30); len(lost) != 0 || c.dup != 0 {
		t.Errorf("lost %v, duplicated %d", lost, c.dup)
	}
}

// TestFollower_Unreadable: a log the follower's user may not read, a
// 0640 file of another user or one in a directory it may not search, is
// "permission denied" until that changes. As root the test runs as nobody
// (dropRoot): root opens any file whatever its mode.
func TestFollower_Unreadable(t *testing.T) {
	// Not parallel: dropRoot changes the user of the whole process.
	dir := t.TempDir()
	closed := filepath.Join(dir, "closed") // a directory without x for the follower
	open := filepath.Join(dir, "open")
	for _, d := range []string{closed, open} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inClosed, private := filepath.Join(closed, "messages"), filepath.Join(open, "messages")
	appendLines(t, inClosed, 1, 10)
	appendLines(t, private, 1, 10)
	deny := func() { chmod(t, closed, 0o600); chmod(t, private, 0) }
	allow := func() { chmod(t, closed, 0o755); chmod(t, private, 0o644) }
	if toNobody, asRoot := dropRoot(t, dir); toNobody != nil {
		// The directory root's, 0700; the log another user's, 0640, as
		// Asterisk's (nobody keeps root's groups: not root's file).
		chmod(t, closed, 0o700)
		if err := os.Chown(private, 1, 1); err != nil {
			t.Fatal(err)
		}
		chmod(t, private, 0o640)
		deny, allow = toNobody, func() { asRoot(func() { chmod(t, closed, 0o755); chmod(t, private, 0o644) }) }
	}
	deny()
	for _, p := range []string{inClosed, private} {
		if err := watchers.Probe(p); err == nil || watchers.Reason(err) != "permission denied" {
			t.Errorf("Probe(%s) = %v; want permission denied", p, err)
		}
	}
	var fols []*watchers.Follower
	var cs []*collector
	for _, p := range []string{inClosed, private} {
		log, _ := testLogger(t)
		f := watchers.NewFollower(p, watchers.Options{Start: watchers.StartBeginning, Logger: log, PollInterval: 20 * time.Millisecond})
		c := newCollector()
		start(t, f, c.emit)
		fols, cs = append(fols, f), append(cs, c)
	}
	for _, f := range fols {
		waitState(t, f, watchers.Failing, "permission denied")
	}
	allow()
	for i, f := range fols {
		cs[i].wait(10, 10*time.Second) // retried every 2 s
		if lost := cs[i].lost(1, 10); len(lost) != 0 {
			t.Errorf("%s: lost %v", f.Stats().Path, lost)
		}
		waitState(t, f, watchers.Reading, "")
	}
	for _, p := range []string{inClosed, private} {
		if err := watchers.Probe(p); err != nil {
			t.Errorf("Probe(%s) after the fix = %v", p, err)
		}
	}
}

// TestProbe: what `sipguard check` reports of a source's path. Files that
// are not regular are refused without being opened: a FIFO would block.
func TestProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "messages")
	appendLines(t, file, 1, 1)
	fifo := filepath.Join(dir, "fifo")
	mkfifo(t, fifo)
	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	link := filepath.Join(dir, "link")
	os.Symlink("messages", link)
	zero := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", zero)
	for _, tc := range []struct {
		path, why string
		notExist  bool
	}{
		{file, "", false},
		{link, "", false},
		{filepath.Join(dir, "absent"), "missing", true},
		{filepath.Join(dir, "absent", "messages"), "missing", true},
		{dir, "is a directory", false},
		{filepath.Join(file, "messages"), "not a directory", false},
		{loop, "too many levels of symbolic links", false},
		{fifo, "not a regular file (a FIFO)", false},
		{"/dev/null", "not a regular file (a device)", false},
		{zero, "not a regular file (a device)", false},
		{"/proc/self/environ", "not a regular file (size 0 with data: a /proc or /sys file)", false},
	} {
		done := make(chan error, 1)
		go func() { done <- watchers.Probe(tc.path) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Probe(%s) blocks", tc.path)
		}
		switch {
		case tc.why == "" && err != nil:
			t.Errorf("Probe(%s) = %v; want nil", tc.path, err)
		case tc.why != "" && (err == nil || watchers.Reason(err) != tc.why):
			t.Errorf("Probe(%s) = %v; want %q", tc.path, err, tc.why)
		case errors.Is(err, fs.ErrNotExist) != tc.notExist:
			t.Errorf("Probe(%s) = %v; not exist %v, want %v", tc.path, err, !tc.notExist, tc.notExist)
		}
	}
	os.Symlink("nowhere", filepath.Join(dir, "dangling"))
	if err := watchers.Probe(filepath.Join(dir, "dangling")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling symlink: %v; want missing", err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFollower_NotRegular: a path that an attacker flips between a FIFO,
// a symbolic link to /dev/zero and nothing is never opened in a way that
// blocks or read: the follower stays failing or missing, reads nothing,
// logs each reason once a minute at most (it logged ~85,000 lines a second
// reading /dev/zero), stops when asked, and reads the log put there at
// last. Resuming at a saved position on such a path is refused the same.
func TestFollower_NotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "messages")
	mkfifo(t, path)
	log, buf := testLogger(t)
	resume := &watchers.Position{Dev: 1, Inode: 2, Offset: 3}
	f := watchers.NewFollower(path, watchers.Options{Resume: resume, Logger: log, PollInterval: 5 * time.Millisecond})
	c := newCollector()
	stop := start(t, f, c.emit)
	select {
	case <-f.Looked():
	case <-time.After(5 * time.Second):
		t.Fatal("Looked not closed: the open of the FIFO blocks")
	}
	if st := f.Stats(); st.State != watchers.Failing || st.Err != "not a regular file (a FIFO)" {
		t.Fatalf("FIFO: state %v %q; want failing, not a regular file (a FIFO)", st.State, st.Err)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		os.Remove(path)
		switch i % 3 {
		case 0:
			os.Symlink("/dev/zero", path)
		case 1:
		case 2:
			mkfifo(t, path)
		}
		time.Sleep(15 * time.Millisecond) // a few polls
		st := f.Stats()
		seen[st.State.String()+" "+st.Err] = true
	}
	for _, want := range []string{"failing not a regular file (a FIFO)", "failing not a regular file (a device)", "missing "} {
		if !seen[want] {
			t.Errorf("state %q never seen; saw %v", want, seen)
		}
	}
	for _, why := range []string{"a FIFO", "a device"} {
		if n := buf.Count("cannot open file", why); n != 1 {
			t.Errorf("%d \"cannot open file\" lines for %s; want 1 (one a minute)", n, why)
		}
	}
	if n := buf.Count("waiting for file to appear"); n > 1 {
		t.Errorf("%d \"waiting\" lines; want at most 1 (one a minute)", n)
	}
	if n := strings.Count(buf.String(), "\n"); n > 10 {
		t.Errorf("%d log lines; want a few", n)
	}
	if st := f.Stats(); st.Lines != 0 || st.Long != 0 || st.Truncations != 0 || c.count() != 0 {
		t.Errorf("read from a FIFO or a device: %+v, %d lines handed out", st, c.count())
	}

	os.Remove(path)
	appendLines(t, path, 1, 10)
	c.wait(10, 5*time.Second)
	waitState(t, f, watchers.Reading, "")
	stop()
}
