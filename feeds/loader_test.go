package feeds_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/feeds"
)

// feedServer serves a list over HTTP, with an ETag or a Last-Modified
// when set, and records the requests it gets.
type feedServer struct {
	mu       sync.Mutex
	body     string
	etag     string
	modified string // Last-Modified
	status   int    // when not 0, every reply has it
	reqs     []http.Header
	block    bool // wait for the request to be cancelled
}

func newFeedServer(t *testing.T, body string) (*feedServer, *httptest.Server) {
	t.Helper()
	s := &feedServer{body: body}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r.Header.Clone())
	block := s.block
	s.mu.Unlock()
	if block {
		<-r.Context().Done()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != 0 {
		http.Error(w, http.StatusText(s.status), s.status)
		return
	}
	if s.etag != "" {
		w.Header().Set("ETag", s.etag)
		if r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if s.modified != "" {
		w.Header().Set("Last-Modified", s.modified)
		if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == s.modified {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	io.WriteString(w, s.body)
}

func (s *feedServer) set(f func(s *feedServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// last returns the headers of the last request, and the number of
// requests.
func (s *feedServer) last() (http.Header, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil, 0
	}
	return s.reqs[len(s.reqs)-1], len(s.reqs)
}

func newLoader(t *testing.T, f feeds.Feed, client *http.Client) *feeds.Loader {
	t.Helper()
	if f.Name == "" {
		f.Name = "test"
	}
	if f.Interval == 0 {
		f.Interval = time.Hour
	}
	l, err := feeds.NewLoader(f, client, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// load calls l.Load and checks its result: the prefixes and changed.
func load(t *testing.T, l *feeds.Loader, changed bool, want ...string) feeds.List {
	t.Helper()
	list, ch, err := l.Load(context.Background())
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	if ch != changed {
		t.Fatalf("got changed %v; want %v", ch, changed)
	}
	checkList(t, list, want)
	return list
}

func checkStats(t *testing.T, l *feeds.Loader, loads, failures int64, entries int, lastError string) feeds.Stats {
	t.Helper()
	s := l.Stats()
	if s.Loads != loads || s.Failures != failures || s.Entries != entries {
		t.Fatalf("got %d loads, %d failures, %d entries; want %d, %d, %d", s.Loads, s.Failures, s.Entries, loads, failures, entries)
	}
	if lastError == "" && s.LastError != "" || !strings.Contains(s.LastError, lastError) {
		t.Fatalf("got LastError %q; want %q", s.LastError, lastError)
	}
	return s
}

func TestLoader_Load_HTTP(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, ts := newFeedServer(t, "# v1\n192.0.2.1\n198.51.100.0/24\n")
		s.etag = `"v1"`
		l := newLoader(t, feeds.Feed{URL: ts.URL + "/drop.txt"}, nil)

		load(t, l, true, "192.0.2.1/32", "198.51.100.0/24")
		h, n := s.last()
		if ua := h.Get("User-Agent"); ua != "sipguard" {
			t.Fatalf("got User-Agent %q; want sipguard", ua)
		}
		if inm := h.Get("If-None-Match"); inm != "" {
			t.Fatalf("first request: got If-None-Match %q; want none", inm)
		}
		st := checkStats(t, l, 1, 0, 2, "")
		if st.LastChange.IsZero() || !st.LastOK.Equal(st.LastLoad) || !st.LastChange.Equal(st.LastOK) {
			t.Fatalf("got %+v; want LastLoad = LastOK = LastChange", st)
		}

		// 304: the server saw the ETag, the list is the same.
		load(t, l, false, "192.0.2.1/32", "198.51.100.0/24")
		h, n2 := s.last()
		if n2 != n+1 || h.Get("If-None-Match") != `"v1"` {
			t.Fatalf("got %d requests, If-None-Match %q; want %d, %q", n2, h.Get("If-None-Match"), n+1, `"v1"`)
		}
		st2 := checkStats(t, l, 2, 0, 2, "")
		if !st2.LastChange.Equal(st.LastChange) {
			t.Fatalf("LastChange moved from %v to %v on a 304", st.LastChange, st2.LastChange)
		}

		// Same entries, other comments: no change.
		s.set(func(s *feedServer) { s.body, s.etag = "# v2\n198.51.100.0/24 ; x\n192.0.2.1\n", `"v2"` })
		load(t, l, false, "192.0.2.1/32", "198.51.100.0/24")

		// New content.
		s.set(func(s *feedServer) { s.body, s.etag = "# v3\n192.0.2.1\n203.0.113.0/24\n", `"v3"` })
		load(t, l, true, "192.0.2.1/32", "203.0.113.0/24")
		if h, _ := s.last(); h.Get("If-None-Match") != `"v2"` {
			t.Fatalf("got If-None-Match %q; want %q", h.Get("If-None-Match"), `"v2"`)
		}
		checkStats(t, l, 4, 0, 2, "")
	})

	t.Run("LastModified", func(t *testing.T) {
		const lm = "Mon, 02 Mar 2026 09:00:00 GMT"
		s, ts := newFeedServer(t, "192.0.2.1\n")
		s.modified = lm
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		load(t, l, true, "192.0.2.1/32")
		load(t, l, false, "192.0.2.1/32")
		if h, n := s.last(); n != 2 || h.Get("If-Modified-Since") != lm || h.Get("If-None-Match") != "" {
			t.Fatalf("got %d requests, last %v; want 2, If-Modified-Since %q only", n, h, lm)
		}
	})

	t.Run("ErrStatus", func(t *testing.T) {
		s, ts := newFeedServer(t, "192.0.2.1\n")
		s.etag = `"v1"`
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		load(t, l, true, "192.0.2.1/32")

		s.set(func(s *feedServer) { s.status = http.StatusInternalServerError })
		list, changed, err := l.Load(context.Background())
		var se *feeds.StatusError
		if !errors.As(err, &se) || se.StatusCode != 500 || changed || list.Prefixes != nil {
			t.Fatalf("got %v, %v, %v; want a StatusError 500", list.Prefixes, changed, err)
		}
		st := checkStats(t, l, 2, 1, 1, "http status 500 Internal Server Error")
		if st.LastLoad.Before(st.LastOK) {
			t.Fatalf("got LastLoad %v, LastOK %v; want LastLoad not before", st.LastLoad, st.LastOK)
		}

		// Recovery: the ETag of the last good list is still sent.
		s.set(func(s *feedServer) { s.status = 0 })
		load(t, l, false, "192.0.2.1/32")
		if h, _ := s.last(); h.Get("If-None-Match") != `"v1"` {
			t.Fatalf("got If-None-Match %q; want %q", h.Get("If-None-Match"), `"v1"`)
		}
		checkStats(t, l, 3, 1, 1, "")
		s.set(func(s *feedServer) { s.body, s.etag = "192.0.2.2\n", `"v2"` })
		load(t, l, true, "192.0.2.2/32")
	})

	t.Run("ErrNotAList", func(t *testing.T) {
		s, ts := newFeedServer(t, "192.0.2.1\n")
		s.etag = `"v1"`
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		load(t, l, true, "192.0.2.1/32")
		html, err := os.ReadFile(filepath.Join("testdata", "error.html"))
		if err != nil {
			t.Fatal(err)
		}
		s.set(func(s *feedServer) { s.body, s.etag = string(html), `"html"` })
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrNotAList) {
			t.Fatalf("got %v; want ErrNotAList", err)
		}
		checkStats(t, l, 2, 1, 1, "not an address list")
		// The validators stay those of the last good list.
		s.set(func(s *feedServer) { s.body, s.etag = "192.0.2.1\n", `"v1"` })
		load(t, l, false, "192.0.2.1/32")
		if h, _ := s.last(); h.Get("If-None-Match") != `"v1"` {
			t.Fatalf("got If-None-Match %q; want %q", h.Get("If-None-Match"), `"v1"`)
		}
	})

	t.Run("ErrEmpty", func(t *testing.T) {
		s, ts := newFeedServer(t, "192.0.2.1\n")
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		load(t, l, true, "192.0.2.1/32")
		s.set(func(s *feedServer) { s.body = "" })
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrEmpty) {
			t.Fatalf("got %v; want ErrEmpty", err)
		}
		s.set(func(s *feedServer) { s.body = "# no entries\n" })
		load(t, l, true)
		checkStats(t, l, 3, 1, 0, "")
	})

	t.Run("ErrTooLarge", func(t *testing.T) {
		_, ts := newFeedServer(t, strings.Repeat("# comment\n", 200000))
		l := newLoader(t, feeds.Feed{URL: ts.URL, MaxEntries: 10}, nil)
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrTooLarge) {
			t.Fatalf("got %v; want ErrTooLarge", err)
		}
	})

	t.Run("ErrTooManyEntries", func(t *testing.T) {
		_, ts := newFeedServer(t, "192.0.2.1\n192.0.2.2\n192.0.2.3\n")
		l := newLoader(t, feeds.Feed{URL: ts.URL, MaxEntries: 2}, nil)
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrTooManyEntries) {
			t.Fatalf("got %v; want ErrTooManyEntries", err)
		}
	})

	t.Run("ErrUnconditional304", func(t *testing.T) {
		s, ts := newFeedServer(t, "")
		s.status = http.StatusNotModified
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		var se *feeds.StatusError
		if _, _, err := l.Load(context.Background()); !errors.As(err, &se) || se.StatusCode != 304 {
			t.Fatalf("got %v; want a StatusError 304", err)
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		s, ts := newFeedServer(t, "")
		s.block = true
		l := newLoader(t, feeds.Feed{URL: ts.URL, Timeout: 50 * time.Millisecond}, nil)
		if _, _, err := l.Load(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want context.DeadlineExceeded", err)
		}
		checkStats(t, l, 1, 1, 0, "deadline exceeded")
	})

	t.Run("Cancelled", func(t *testing.T) {
		s, ts := newFeedServer(t, "")
		s.block = true
		l := newLoader(t, feeds.Feed{URL: ts.URL}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		if _, _, err := l.Load(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want context.DeadlineExceeded", err)
		}
		checkStats(t, l, 0, 0, 0, "") // interrupted by the caller: not counted
	})
}

func TestLoader_Load_Redirect(t *testing.T) {
	t.Run("ErrInsecureRedirect", func(t *testing.T) {
		plain, plainTS := newFeedServer(t, "192.0.2.1\n")
		tlsTS := httptest.NewTLSServer(http.RedirectHandler(plainTS.URL+"/list", http.StatusFound))
		t.Cleanup(tlsTS.Close)
		l := newLoader(t, feeds.Feed{URL: tlsTS.URL}, tlsTS.Client())
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrInsecureRedirect) {
			t.Fatalf("got %v; want ErrInsecureRedirect", err)
		}
		if _, n := plain.last(); n != 0 {
			t.Fatalf("the plain server got %d requests; want 0", n)
		}
		checkStats(t, l, 1, 1, 0, "redirect from https to http refused")
	})

	t.Run("ErrInsecureRedirectLater", func(t *testing.T) {
		// http -> https -> http: once on https, the list must stay there.
		plain, plainTS := newFeedServer(t, "192.0.2.1\n")
		tlsTS := httptest.NewTLSServer(http.RedirectHandler(plainTS.URL+"/list", http.StatusFound))
		t.Cleanup(tlsTS.Close)
		startTS := httptest.NewServer(http.RedirectHandler(tlsTS.URL+"/hop", http.StatusFound))
		t.Cleanup(startTS.Close)
		l := newLoader(t, feeds.Feed{URL: startTS.URL}, tlsTS.Client())
		if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrInsecureRedirect) {
			t.Fatalf("got %v; want ErrInsecureRedirect", err)
		}
		if _, n := plain.last(); n != 0 {
			t.Fatalf("the plain server got %d requests; want 0", n)
		}
	})

	t.Run("OK", func(t *testing.T) {
		// http -> https and https -> https are followed.
		tlsTS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/list" {
				if ua := r.Header.Get("User-Agent"); ua != "sipguard" {
					http.Error(w, "bad user agent "+ua, http.StatusBadRequest)
					return
				}
				io.WriteString(w, "192.0.2.1\n")
				return
			}
			http.Redirect(w, r, "/list", http.StatusMovedPermanently)
		}))
		t.Cleanup(tlsTS.Close)
		plainTS := httptest.NewServer(http.RedirectHandler(tlsTS.URL+"/moved", http.StatusFound))
		t.Cleanup(plainTS.Close)
		l := newLoader(t, feeds.Feed{URL: plainTS.URL}, tlsTS.Client())
		load(t, l, true, "192.0.2.1/32")
	})

	t.Run("ClientPolicy", func(t *testing.T) {
		// The client's own redirect policy still applies.
		tlsTS := httptest.NewTLSServer(http.RedirectHandler("/elsewhere", http.StatusFound))
		t.Cleanup(tlsTS.Close)
		c := tlsTS.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		l := newLoader(t, feeds.Feed{URL: tlsTS.URL}, c)
		var se *feeds.StatusError
		if _, _, err := l.Load(context.Background()); !errors.As(err, &se) || se.StatusCode != http.StatusFound {
			t.Fatalf("got %v; want a StatusError 302", err)
		}
	})
}

// writeFile replaces path's content atomically, as feeds should be
// written.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestLoader_Load_File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	writeFile(t, path, "# v1\n192.0.2.1\n")
	l := newLoader(t, feeds.Feed{Path: path}, nil)
	list := load(t, l, true, "192.0.2.1/32")
	// The caller owns what it got: changing it changes nothing else.
	list.Prefixes[0] = netip.MustParsePrefix("203.0.113.0/24")
	list = load(t, l, false, "192.0.2.1/32")
	list.Prefixes[0] = netip.MustParsePrefix("203.0.113.0/24")

	writeFile(t, path, "# v2\n192.0.2.1\n2001:db8::/32\n")
	load(t, l, true, "192.0.2.1/32", "2001:db8::/32")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Load(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v; want fs.ErrNotExist", err)
	}
	checkStats(t, l, 4, 1, 2, "no such file")

	writeFile(t, path, "<html><body>Not Found</body></html>\n")
	if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrNotAList) {
		t.Fatalf("got %v; want ErrNotAList", err)
	}
	writeFile(t, path, "")
	if _, _, err := l.Load(context.Background()); !errors.Is(err, feeds.ErrEmpty) {
		t.Fatalf("got %v; want ErrEmpty", err)
	}
	checkStats(t, l, 6, 3, 2, "empty input")

	writeFile(t, path, "2001:db8::/32\n192.0.2.1\n")
	load(t, l, false, "192.0.2.1/32", "2001:db8::/32")
	checkStats(t, l, 7, 3, 2, "")

	t.Run("ErrNotRegular", func(t *testing.T) {
		l := newLoader(t, feeds.Feed{Path: t.TempDir()}, nil)
		if _, _, err := l.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v; want not a regular file", err)
		}
	})
}

func TestNewLoader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		feed  feeds.Feed
		err   string // "" for none; each line must appear
		field string // the Field of the first *FieldError, when set
	}{
		{name: "OKURL", feed: feeds.Feed{Name: "drop", URL: "https://example.com/drop.txt", Interval: time.Hour}},
		{name: "OKPath", feed: feeds.Feed{Name: "local_list-2.v4", Path: "/etc/sipguard/bad.txt", Interval: time.Minute,
			MaxEntries: feeds.MaxMaxEntries, Timeout: time.Second}},
		{name: "ErrNoName", feed: feeds.Feed{Path: "/x", Interval: time.Hour}, err: "name: empty", field: "name"},
		{name: "ErrName", feed: feeds.Feed{Name: "a b", Path: "/x", Interval: time.Hour}, err: `name: "a b" holds ' '`},
		{name: "ErrNameLong", feed: feeds.Feed{Name: strings.Repeat("a", 65), Path: "/x", Interval: time.Hour}, err: "longer than 64 bytes"},
		{name: "ErrNoLocation", feed: feeds.Feed{Name: "x", Interval: time.Hour}, err: "url: url and path: one of them is required", field: "url"},
		{name: "ErrBothLocations", feed: feeds.Feed{Name: "x", URL: "https://example.com/", Path: "/x", Interval: time.Hour},
			err: "url: url and path: only one of them may be set", field: "url"},
		{name: "ErrScheme", feed: feeds.Feed{Name: "x", URL: "ftp://example.com/x", Interval: time.Hour}, err: `url: scheme "ftp" is not http or https`, field: "url"},
		{name: "ErrRelativeURL", feed: feeds.Feed{Name: "x", URL: "example.com/x", Interval: time.Hour}, err: `url: scheme "" is not http or https`},
		{name: "ErrNoHost", feed: feeds.Feed{Name: "x", URL: "https:///x", Interval: time.Hour}, err: "url: no host"},
		{name: "ErrBadURL", feed: feeds.Feed{Name: "x", URL: "https://exa mple.com/", Interval: time.Hour}, err: "url: parse"},
		{name: "ErrInterval", feed: feeds.Feed{Name: "x", Path: "/x", Interval: 30 * time.Second}, err: "interval: 30s is shorter than 1m0s", field: "interval"},
		{name: "ErrMaxEntries", feed: feeds.Feed{Name: "x", Path: "/x", Interval: time.Hour, MaxEntries: -1}, err: "max_entries: -1 out of range [1, 1000000]", field: "max_entries"},
		{name: "ErrMaxEntriesHigh", feed: feeds.Feed{Name: "x", Path: "/x", Interval: time.Hour, MaxEntries: feeds.MaxMaxEntries + 1}, err: "max_entries: 1000001 out of range"},
		{name: "ErrTimeout", feed: feeds.Feed{Name: "x", Path: "/x", Interval: time.Hour, Timeout: -time.Second}, err: "timeout: -1s is negative", field: "timeout"},
		{name: "ErrAll", feed: feeds.Feed{Interval: time.Second, MaxEntries: -5, Timeout: -1},
			err: "name: empty\nurl: url and path: one of them is required\ninterval: 1s is shorter than 1m0s\nmax_entries: -5 out of range [1, 1000000]\ntimeout: -1ns is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := feeds.NewLoader(tc.feed, nil, zerolog.Nop())
			if tc.err == "" {
				if err != nil || l == nil {
					t.Fatalf("got %v; want no error", err)
				}
				if err := tc.feed.Validate(); err != nil {
					t.Fatalf("Validate: got %v; want no error", err)
				}
				return
			}
			if err == nil || l != nil {
				t.Fatalf("got no error; want %q", tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %q; want %q in it", err, tc.err)
			}
			if err := tc.feed.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate: got %v; want %q in it", err, tc.err)
			}
			var fe *feeds.FieldError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Fatalf("got %#v; want a *FieldError for %s", err, tc.field)
			}
		})
	}
}

func TestLoader_Stats(t *testing.T) {
	l, err := feeds.NewLoader(feeds.Feed{Name: "abuse", URL: "https://user:secret@example.com/list.txt?key=secret#frag", Interval: time.Hour},
		nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	want := feeds.Stats{Name: "abuse", Location: "https://user:xxxxx@example.com/list.txt?xxxxx"}
	if s != want {
		t.Fatalf("got %+v; want %+v", s, want)
	}
}
