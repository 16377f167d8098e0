package feeds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

const (
	// MinInterval is the shortest Feed.Interval: feeds are published
	// for many users, and most change a few times a day at most.
	MinInterval = time.Minute
	// DefaultTimeout bounds one load of a Feed without Timeout.
	DefaultTimeout = 30 * time.Second
	// MaxName is the longest Feed.Name, in bytes.
	MaxName = 64

	userAgent    = "sipguard"
	maxRedirects = 10
	// retryMin is the first delay before retrying a failed load; it
	// doubles at each further failure, up to the interval.
	retryMin = 15 * time.Second
	// drainMax bounds what is read of an error reply's body so that its
	// connection can be reused.
	drainMax = 64 << 10
)

// Log field names.
const (
	fieldFeed     = "feed"
	fieldLocation = "location"
	fieldEntries  = "entries"
	fieldFailures = "failures"
	fieldRetry    = "retry_seconds"
	fieldMasked   = "masked"
	fieldInvalid  = "invalid"
	fieldTooWide  = "too_wide"
	fieldFirstBad = "first_invalid"
	fieldFirstTW  = "first_too_wide"
	fieldSpecial  = "special"
	fieldFirstSp  = "first_special"
)

// ErrInsecureRedirect is returned for a feed redirected from https to
// http: whoever is on the path could then replace the list.
var ErrInsecureRedirect = errors.New("redirect from https to http refused")

// StatusError is returned for an HTTP reply whose status is neither 200
// nor 203, nor a 304 to a conditional request.
type StatusError struct {
	StatusCode int
	Status     string // "500 Internal Server Error"
}

func (e *StatusError) Error() string {
	return "http status " + e.Status
}

// Feed is a blocklist feed, as configured.
type Feed struct {
	// Name identifies the feed in logs, status and results: 1 to MaxName
	// letters, digits, '-', '_' and '.'.
	Name string
	// URL (http:// or https://) or Path (a local file) is where the list
	// is: exactly one of them is set.
	URL  string
	Path string
	// Interval is how often the list is loaded again, at least
	// MinInterval.
	Interval time.Duration
	// MaxEntries caps the entries of the list (0: DefaultMaxEntries, at
	// most MaxMaxEntries). A longer list fails to load; it also caps the
	// bytes read, at MaxEntries*128 + 1 MiB.
	MaxEntries int
	// Timeout bounds one HTTP load, reading the body included (0:
	// DefaultTimeout).
	Timeout time.Duration
}

// Result is a list loaded by Run.
type Result struct {
	Feed   string // Feed.Name
	List   List
	Loaded time.Time
}

// Stats describe a Loader.
type Stats struct {
	Name string
	// Location is the URL, its password and query redacted, or the path.
	Location string
	// Entries, Invalid, TooWide and Special are those of the last good
	// list (its Prefixes, and the lines it skipped).
	Entries    int
	Invalid    int
	TooWide    int
	Special    int
	LastLoad   time.Time // the last attempt ended
	LastOK     time.Time // the last successful attempt ended, changed or not
	LastChange time.Time // the list last changed
	// LastError is the error of the last attempt; empty when it
	// succeeded.
	LastError string
	// Loads counts attempts, Failures the failed ones. An attempt
	// interrupted by its caller's context is not counted.
	Loads    int64
	Failures int64
}

// Loader loads one Feed. Its methods are safe for concurrent use.
type Loader struct {
	feed   Feed
	loc    string
	client *http.Client // nil for a file
	log    zerolog.Logger

	// Timing, changed only by tests before Run.
	interval time.Duration
	retryMin time.Duration
	jitter   bool

	load sync.Mutex // held through Load; guards the validators
	// etag and modified are the validators of the last good HTTP reply.
	etag     string
	modified string

	mu    sync.Mutex
	list  List // the last good list
	have  bool // list was loaded
	stats Stats
}

// FieldError is a problem with one field of a Feed. Field names it as
// rules.toml's [[feed]] does: "name", "url", "interval", "max_entries",
// "timeout"; a feed with both or neither of url and path is a problem of
// "url".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every problem of f, each a *FieldError, joined.
func (f Feed) Validate() error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &FieldError{Field: field, Err: err}) }
	if err := checkName(f.Name); err != nil {
		bad("name", err)
	}
	switch {
	case f.URL == "" && f.Path == "":
		bad("url", errors.New("url and path: one of them is required"))
	case f.URL != "" && f.Path != "":
		bad("url", errors.New("url and path: only one of them may be set"))
	case f.URL != "":
		u, err := url.Parse(f.URL)
		switch {
		case err != nil:
			bad("url", err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("url", fmt.Errorf("scheme %q is not http or https", u.Scheme))
		case u.Host == "":
			bad("url", errors.New("no host"))
		}
	}
	if f.Interval < MinInterval {
		bad("interval", fmt.Errorf("%v is shorter than %v", f.Interval, MinInterval))
	}
	if m := f.MaxEntries; m < 0 || m > MaxMaxEntries {
		bad("max_entries", fmt.Errorf("%d out of range [1, %d]", m, MaxMaxEntries))
	}
	if f.Timeout < 0 {
		bad("timeout", fmt.Errorf("%v is negative", f.Timeout))
	}
	return errors.Join(errs...)
}

// NewLoader validates f (Feed.Validate) and returns its Loader.
//
// Client is used for HTTP feeds; nil uses http.DefaultTransport. The
// Loader works on a copy of it whose redirect policy refuses https to
// http (ErrInsecureRedirect) before applying client's own; Feed.Timeout
// is applied to each load through its context, whatever client.Timeout.
func NewLoader(f Feed, client *http.Client, log zerolog.Logger) (*Loader, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	loc := f.Path
	if f.URL != "" {
		u, _ := url.Parse(f.URL)
		loc = redact(u)
	}
	if f.MaxEntries == 0 {
		f.MaxEntries = DefaultMaxEntries
	}
	if f.Timeout == 0 {
		f.Timeout = DefaultTimeout
	}
	l := &Loader{
		feed:     f,
		loc:      loc,
		log:      log.With().Str(fieldFeed, f.Name).Str(fieldLocation, loc).Logger(),
		interval: f.Interval,
		retryMin: retryMin,
		jitter:   true,
		stats:    Stats{Name: f.Name, Location: loc},
	}
	if f.URL != "" {
		l.client = safeClient(client)
	}
	return l, nil
}

func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxName {
		return fmt.Errorf("%q is longer than %d bytes", s, MaxName)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%q holds %q: use letters, digits, '-', '_' and '.'", s, c)
		}
	}
	return nil
}

// redact returns u for logs and status: an API key in its password or
// query must not end up there.
func redact(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "xxxxx"
	}
	c.Fragment, c.RawFragment = "", ""
	return c.Redacted()
}

// safeClient returns a copy of c (nil: a default client) that refuses
// redirects from https to http.
func safeClient(c *http.Client) *http.Client {
	var s http.Client
	if c != nil {
		s = *c
	}
	next := s.CheckRedirect
	s.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			for _, v := range via {
				if v.URL.Scheme == "https" {
					return fmt.Errorf("%w: to %s", ErrInsecureRedirect, redact(req.URL))
				}
			}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &s
}

// Stats returns the Loader's state.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Load makes one attempt to load the list. It returns the list and
// whether it changed, that is its Prefixes differ from the last good
// list's (always true on the first success). An HTTP 304 Not Modified
// returns the last good list, unchanged. On error, the last good list
// stays, and is what a later unchanged load returns. The List returned
// is the caller's: the Loader keeps its own copy.
func (l *Loader) Load(ctx context.Context) (List, bool, error) {
	l.load.Lock()
	defer l.load.Unlock()
	var (
		list     List
		modified bool
		v        validators
		err      error
	)
	if l.client != nil {
		list, modified, v, err = l.get(ctx)
	} else {
		list, err = l.read()
		modified = true
	}
	if err != nil && ctx.Err() != nil {
		return List{}, false, err
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Loads++
	l.stats.LastLoad = now
	if err != nil {
		l.stats.Failures++
		l.stats.LastError = err.Error()
		return List{}, false, err
	}
	l.stats.LastOK = now
	l.stats.LastError = ""
	if !modified {
		return l.copyList(), false, nil
	}
	l.etag, l.modified = v.etag, v.modified
	changed := !l.have || !slices.Equal(list.Prefixes, l.list.Prefixes)
	if changed {
		l.stats.LastChange = now
	}
	// Keep a copy: callers may filter their Prefixes in place.
	l.list, l.have = list, true
	l.list.Prefixes = slices.Clone(list.Prefixes)
	l.stats.Entries = len(list.Prefixes)
	l.stats.Invalid = list.Invalid
	l.stats.TooWide = list.TooWide
	l.stats.Special = list.Special
	return list, changed, nil
}

// copyList returns the last good list, its Prefixes copied.
func (l *Loader) copyList() List {
	c := l.list
	c.Prefixes = slices.Clone(c.Prefixes)
	return c
}

// validators are an HTTP reply's, sent back in the next request.
type validators struct {
	etag     string
	modified string
}

// get fetches the list over HTTP. modified is false for a 304 reply.
func (l *Loader) get(ctx context.Context) (list List, modified bool, v validators, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.feed.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.feed.URL, nil)
	if err != nil {
		return List{}, false, v, err
	}
	req.Header.Set("User-Agent", userAgent)
	if l.etag != "" {
		req.Header.Set("If-None-Match", l.etag)
	}
	if l.modified != "" {
		req.Header.Set("If-Modified-Since", l.modified)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return List{}, false, v, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNonAuthoritativeInfo:
	case http.StatusNotModified:
		if l.etag != "" || l.modified != "" {
			return List{}, false, v, nil
		}
		fallthrough // a 304 to an unconditional request holds no list
	default:
		_, _ = io.CopyN(io.Discard, resp.Body, drainMax)
		return List{}, false, v, &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	list, err = Parse(resp.Body, l.feed.MaxEntries)
	if err != nil {
		return List{}, false, v, fmt.Errorf("read list: %w", err)
	}
	v = validators{etag: resp.Header.Get("ETag"), modified: resp.Header.Get("Last-Modified")}
	return list, true, v, nil
}

// read reads the list from its file.
func (l *Loader) read() (List, error) {
	// Stat before opening: opening a FIFO would wait for a writer.
	if fi, err := os.Stat(l.feed.Path); err != nil {
		return List{}, err
	} else if !fi.Mode().IsRegular() {
		return List{}, fmt.Errorf("%s: not a regular file", l.feed.Path)
	}
	f, err := os.Open(l.feed.Path)
	if err != nil {
		return List{}, err
	}
	defer f.Close()
	list, err := Parse(f, l.feed.MaxEntries)
	if err != nil {
		return List{}, fmt.Errorf("read %s: %w", l.feed.Path, err)
	}
	return list, nil
}

// Run loads the list at once, then every interval, until ctx is done. It
// calls update, from Run's goroutine, after each load that changed the
// list, and after its first successful one whatever Load said; update
// should return soon, since the next load waits for it. A failed load
// keeps the last good list: it is logged as a warning and retried after
// 15s, then 30s, 1m and so on, doubling up to the interval. After a
// successful load, the next one is due after the interval plus a random
// delay of up to a tenth of it, so that hosts started together do not
// fetch a feed together.
func (l *Loader) Run(ctx context.Context, update func(Result)) {
	delivered := false
	failures := 0
	for {
		list, changed, err := l.Load(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			failures++
			wait = l.retryAfter(failures)
			l.log.Warn().Err(err).Int(fieldFailures, failures).Float64(fieldRetry, wait.Seconds()).
				Msg("feed not loaded; keeping its last list")
		} else {
			if failures > 0 {
				l.log.Info().Int(fieldFailures, failures).Msg("feed loaded again")
			}
			failures = 0
			if changed || !delivered {
				delivered = true
				l.logList(list)
				if update != nil {
					update(Result{Feed: l.feed.Name, List: list, Loaded: time.Now()})
				}
			} else {
				l.log.Debug().Int(fieldEntries, len(list.Prefixes)).Msg("feed unchanged")
			}
			wait = l.interval
			if l.jitter && wait >= 10 {
				wait += rand.N(wait / 10)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// retryAfter is the delay before the attempt following n failures in a
// row.
func (l *Loader) retryAfter(n int) time.Duration {
	d := l.retryMin
	for i := 1; i < n && d < l.interval; i++ {
		d *= 2
	}
	return min(d, l.interval)
}

func (l *Loader) logList(list List) {
	e := l.log.Info()
	if list.TooWide > 0 || list.Special > 0 {
		e = l.log.Warn()
	}
	e = e.Int(fieldEntries, len(list.Prefixes))
	if list.Masked > 0 {
		e = e.Int(fieldMasked, list.Masked)
	}
	if list.Invalid > 0 {
		e = e.Int(fieldInvalid, list.Invalid).Str(fieldFirstBad, list.FirstInvalid)
	}
	if list.TooWide > 0 {
		e = e.Int(fieldTooWide, list.TooWide).Str(fieldFirstTW, list.FirstTooWide)
	}
	if list.Special > 0 {
		e = e.Int(fieldSpecial, list.Special).Str(fieldFirstSp, list.FirstSpecial)
	}
	e.Msg("feed list loaded")
}
