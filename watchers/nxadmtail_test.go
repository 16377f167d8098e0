//go:build linux

package watchers_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nxadm/tail"

	"github.com/sipguard/sipguard/internal/testutil"
)

// These tests measure github.com/nxadm/tail v1.4.11, configured as
// libraries.md §2.4 recommends (Follow, ReOpen, CompleteLines, inotify,
// DiscardingLogger), on the scenarios the Follower is tested on. They are
// why the watchers package follows files with its own reader: see doc.go.

// nxadm reads path from its beginning with nxadm/tail.
func nxadm(t *testing.T, path string) *handle {
	t.Helper()
	tl, err := tail.TailFile(path, tail.Config{
		Follow:        true,
		ReOpen:        true,
		CompleteLines: true,
		Logger:        tail.DiscardingLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range tl.Lines {
			if l.Err == nil {
				c.add([]byte(l.Text))
			}
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			tl.Stop() // no Cleanup: it would break a later tail of the same path (#18)
			<-done
		}
	}
	t.Cleanup(stop)
	return &handle{c: c, stop: stop, stats: func() string { return "" }, giveUp: time.Second}
}

// rotationScenarios are run on nxadm/tail here and on the Follower in
// follow_test.go.
var rotationScenarios = []scenario{
	{name: "rename, writer recreates at once", kind: "rename", lines: 20000, rotations: 5},
	{name: "rename, logrotate creates, writer reopens at once", kind: "create", lines: 20000, rotations: 5},
	{name: "rename, writer writes 50 lines to the old file first", kind: "rename", lines: 20000, rotations: 5, late: 50},
	{name: "rename, logrotate creates, writer writes 50 lines to the old file first", kind: "create", lines: 20000, rotations: 5, late: 50},
	{name: "delete, writer writes 50 lines to the deleted file, then recreates", kind: "delete", lines: 20000, rotations: 5, late: 50},
	{name: "copytruncate, writer paused from copy to truncate", kind: "copytruncate", lines: 20000, rotations: 5, pause: true},
	{name: "copytruncate, writer not paused", kind: "copytruncate", lines: 20000, rotations: 5},
}

// TestNxadmTail measures nxadm/tail in the scenarios the Follower is
// tested in: it loses lines written to a renamed file before the writer
// reopens (the scenario the Follower exists for). How many depends on how
// its goroutines and the writer interleave, a race in its code, not ours,
// so the result is logged, never asserted; what is asserted is that the
// Follower loses none (TestFollower_Rotation).
func TestNxadmTail(t *testing.T) {
	testutil.SkipShort(t, "a measurement of nxadm/tail, not of sipguard")
	t.Parallel()
	for _, sc := range rotationScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			o, _ := sc.run(t, nxadm)
			t.Logf("nxadm/tail, %s: %s", sc.name, o)
			if sc.late > 0 && sc.kind != "delete" && len(o.lost) == 0 {
				t.Logf("nxadm/tail lost no line of the %d written to renamed files this time", sc.late*sc.rotations)
			}
		})
	}
}

// TestNxadmTail_TailAgain measures nxadm/tail#18: a path tailed again after
// Stop and Cleanup in the same process gets nothing, which breaks
// re-following a recreated file with a new Tail.
func TestNxadmTail_TailAgain(t *testing.T) {
	testutil.SkipShort(t, "a measurement of nxadm/tail, not of sipguard")
	t.Parallel()
	path := filepath.Join(t.TempDir(), "messages")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tail.Config{Follow: true, ReOpen: true, CompleteLines: true, Logger: tail.DiscardingLogger}
	got := func(tl *tail.Tail, c *collector) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for l := range tl.Lines {
				c.add([]byte(l.Text))
			}
		}()
		return done
	}
	tl, err := tail.TailFile(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c1 := newCollector()
	done := got(tl, c1)
	appendLines(t, path, 1, 100)
	c1.wait(100, 5*time.Second)
	tl.Stop()
	tl.Cleanup()
	<-done

	tl, err = tail.TailFile(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2 := newCollector()
	done = got(tl, c2)
	c2.wait(100, 5*time.Second) // the lines already there
	time.Sleep(20 * time.Millisecond)
	appendLines(t, path, 101, 200) // then new ones
	c2.waitIdle(200, 5*time.Second, 500*time.Millisecond)
	tl.Stop()
	<-done
	t.Logf("nxadm/tail: first tail got %d/100 lines; after its Stop+Cleanup a new tail of the same path got %d of the 100 lines already there and %d of the 100 appended then",
		c1.count(), min(c2.count(), 100), c2.count()-min(c2.count(), 100))
}
