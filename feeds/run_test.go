package feeds_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/internal/testutil"
)

// recorder records the Results Run gives.
type recorder struct {
	mu      sync.Mutex
	results []feeds.Result
}

func (r *recorder) update(res feeds.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

// check checks that there were n updates, the last one with want, loaded
// at loaded.
func (r *recorder) check(t *testing.T, n int, loaded time.Time, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.results) != n {
		t.Fatalf("got %d updates; want %d", len(r.results), n)
	}
	if n == 0 {
		return
	}
	res := r.results[n-1]
	if res.Feed != "local" || !res.Loaded.Equal(loaded) {
		t.Fatalf("got update of %q loaded at %v; want %q at %v", res.Feed, res.Loaded, "local", loaded)
	}
	checkList(t, res.List, want)
}

// run starts l.Run, and returns a function that stops it and a channel
// closed once it returned. The test's cleanup stops it too.
func run(t *testing.T, l *feeds.Loader, update func(feeds.Result)) (cancel func(), done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		l.Run(ctx, update)
	}()
	t.Cleanup(func() {
		cancel()
		<-ch
	})
	return cancel, ch
}

// TestLoader_Run follows a file feed through changes and failures, on the
// fake clock of a synctest bubble, with the real one-minute interval.
func TestLoader_Run(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "list.txt")
		writeFile(t, path, "# v1\n192.0.2.1\n")
		var logs testutil.Buffer
		l, err := feeds.NewLoader(feeds.Feed{Name: "local", Path: path, Interval: time.Minute}, nil, zerolog.New(&logs))
		if err != nil {
			t.Fatal(err)
		}
		feeds.SetTiming(l, time.Minute, 15*time.Second, false)
		var rec recorder
		start := time.Now()
		cancel, done := run(t, l, rec.update)
		at := func(d time.Duration) time.Time { return start.Add(d) }
		// sleepTo waits until 1s after d, when the load due at d is done.
		sleepTo := func(d time.Duration) {
			t.Helper()
			time.Sleep(time.Until(at(d + time.Second)))
			synctest.Wait()
		}

		synctest.Wait()
		rec.check(t, 1, at(0), "192.0.2.1/32")
		checkStats(t, l, 1, 0, 1, "")

		sleepTo(time.Minute) // unchanged
		rec.check(t, 1, at(0), "192.0.2.1/32")
		checkStats(t, l, 2, 0, 1, "")

		writeFile(t, path, "# v1, other comments\n192.0.2.1 ; still\n")
		sleepTo(2 * time.Minute) // same entries
		rec.check(t, 1, at(0), "192.0.2.1/32")
		checkStats(t, l, 3, 0, 1, "")

		writeFile(t, path, "# v2\n192.0.2.1\n198.51.100.0/24\n")
		sleepTo(3 * time.Minute)
		rec.check(t, 2, at(3*time.Minute), "192.0.2.1/32", "198.51.100.0/24")

		// Missing: retried after 15s, then 30s.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		sleepTo(4 * time.Minute)
		checkStats(t, l, 5, 1, 2, "no such file")
		if s := logs.String(); !strings.Contains(s, `"level":"warn"`) || !strings.Contains(s, "no such file") ||
			!strings.Contains(s, `"retry_seconds":15`) {
			t.Fatalf("got logs %s; want a warning with the error and the retry delay", s)
		}
		sleepTo(4*time.Minute + 15*time.Second)
		checkStats(t, l, 6, 2, 2, "no such file")

		// Garbage: retried after 60s, the interval, from then on.
		writeFile(t, path, "<html>\n<h1>Moved</h1>\n</html>\n")
		sleepTo(4*time.Minute + 45*time.Second)
		checkStats(t, l, 7, 3, 2, "not an address list")
		sleepTo(5*time.Minute + 45*time.Second)
		checkStats(t, l, 8, 4, 2, "not an address list")
		rec.check(t, 2, at(3*time.Minute), "192.0.2.1/32", "198.51.100.0/24")

		// Back, as it was: no update.
		writeFile(t, path, "198.51.100.0/24\n192.0.2.1\n")
		sleepTo(6*time.Minute + 45*time.Second)
		checkStats(t, l, 9, 4, 2, "")
		rec.check(t, 2, at(3*time.Minute), "192.0.2.1/32", "198.51.100.0/24")
		if s := logs.String(); !strings.Contains(s, "feed loaded again") {
			t.Fatalf("got logs %s; want the recovery logged", s)
		}

		writeFile(t, path, "# v3\n2001:db8::/32\n")
		sleepTo(7*time.Minute + 45*time.Second)
		rec.check(t, 3, at(7*time.Minute+45*time.Second), "2001:db8::/32")
		checkStats(t, l, 10, 4, 1, "")

		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return when its context was cancelled")
		}
		if !time.Now().Equal(at(7*time.Minute + 46*time.Second)) {
			t.Fatalf("Run returned at %v; want at once", time.Since(start))
		}
	})
}

// TestLoader_Run_FirstSuccess checks that the first successful load
// updates, after failures, or after a Load made before Run.
func TestLoader_Run_FirstSuccess(t *testing.T) {
	t.Run("AfterFailure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			l := newLoader(t, feeds.Feed{Name: "local", Path: path, Interval: time.Hour}, nil)
			var rec recorder
			start := time.Now()
			run(t, l, rec.update)
			synctest.Wait()
			rec.check(t, 0, time.Time{})
			checkStats(t, l, 1, 1, 0, "no such file")

			writeFile(t, path, "# nothing yet\n")
			time.Sleep(15 * time.Second)
			synctest.Wait()
			rec.check(t, 1, start.Add(15*time.Second))
			checkStats(t, l, 2, 1, 0, "")
		})
	})

	t.Run("AfterLoad", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			writeFile(t, path, "192.0.2.1\n")
			l := newLoader(t, feeds.Feed{Name: "local", Path: path, Interval: time.Hour}, nil)
			load(t, l, true, "192.0.2.1/32")
			var rec recorder
			start := time.Now()
			run(t, l, rec.update)
			synctest.Wait()
			rec.check(t, 1, start, "192.0.2.1/32")
			time.Sleep(time.Hour + time.Hour/10 + time.Second) // jitter on
			synctest.Wait()
			rec.check(t, 1, start, "192.0.2.1/32")
			checkStats(t, l, 3, 0, 1, "")
		})
	})
}

// TestLoader_Run_HTTP runs a Loader against a real HTTP server, on the real
// clock, with a short interval.
func TestLoader_Run_HTTP(t *testing.T) {
	s, ts := newFeedServer(t, "192.0.2.1\n")
	s.etag = `"v1"`
	l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
	feeds.SetTiming(l, 5*time.Millisecond, 2*time.Millisecond, true)
	updates := make(chan feeds.Result, 100)
	cancel, done := run(t, l, func(r feeds.Result) { updates <- r })

	next := func(want ...string) {
		t.Helper()
		select {
		case r := <-updates:
			if r.Feed != "test" {
				t.Fatalf("got update of feed %q; want test", r.Feed)
			}
			checkList(t, r.List, want)
		case <-time.After(10 * time.Second):
			t.Fatalf("no update; want %v", want)
		}
	}
	none := func() {
		t.Helper()
		select {
		case r := <-updates:
			t.Fatalf("got update %v; want none", r.List.Prefixes)
		default:
		}
	}
	waitFor := func(what string, cond func(feeds.Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(l.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 10s for %s; got %+v", what, l.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}

	next("192.0.2.1/32")
	waitFor("304s", func(st feeds.Stats) bool { return st.Loads >= 5 })
	if h, _ := s.last(); h.Get("If-None-Match") != `"v1"` {
		t.Fatalf("got If-None-Match %q; want %q", h.Get("If-None-Match"), `"v1"`)
	}
	none()

	s.set(func(s *feedServer) { s.body, s.etag = "192.0.2.2\n", `"v2"` })
	next("192.0.2.2/32")

	s.set(func(s *feedServer) { s.status = http.StatusInternalServerError })
	waitFor("failures", func(st feeds.Stats) bool { return st.Failures >= 3 })
	if st := l.Stats(); st.Entries != 1 || !strings.Contains(st.LastError, "500") {
		t.Fatalf("got %+v; want the last list kept and the error", st)
	}
	none()

	s.set(func(s *feedServer) { s.status = 0 })
	loads := l.Stats().Loads
	waitFor("recovery", func(st feeds.Stats) bool { return st.LastError == "" && st.Loads > loads+2 })
	none()

	s.set(func(s *feedServer) { s.body, s.etag = "192.0.2.3\n", `"v3"` })
	next("192.0.2.3/32")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context was cancelled")
	}
	none()
}

// TestLoader_Run_Cancel checks that Run returns promptly when cancelled
// during a load, and that the interrupted load is neither counted nor
// logged.
func TestLoader_Run_Cancel(t *testing.T) {
	s, ts := newFeedServer(t, "")
	s.block = true
	var logs testutil.Buffer
	l, err := feeds.NewLoader(feeds.Feed{Name: "slow", URL: ts.URL, Interval: time.Hour}, nil, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	cancel, done := run(t, l, rec.update)
	for {
		if _, n := s.last(); n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context was cancelled")
	}
	rec.check(t, 0, time.Time{})
	checkStats(t, l, 0, 0, 0, "")
	if s := logs.String(); s != "" {
		t.Fatalf("got logs %s; want none", s)
	}
}
