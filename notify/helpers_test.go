package notify_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/notify"
)

// patience bounds every wait for something that should happen soon, so
// that a loaded CI machine is slow, not failing. Only a broken test waits
// that long.
const patience = 30 * time.Second

// newDispatcher calls New and fails the test on an error.
func newDispatcher(t *testing.T, hooks []notify.Webhook, cmds []notify.Command) *notify.Dispatcher {
	t.Helper()
	d, err := notify.New(hooks, cmds, zerolog.Nop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// running is a Dispatcher whose Run is in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// run starts d.Run; the test's cleanup stops it and waits for it.
// Register servers before calling run, so they are closed after it.
func run(t *testing.T, d *notify.Dispatcher) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		d.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns how long it took to return.
func (r *running) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(patience):
		t.Fatalf("Run still running %v after cancel", patience)
	}
	return time.Since(start)
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, patience, what, cond)
}

// stats returns the counters of the target named name.
func stats(t *testing.T, d *notify.Dispatcher, name string) notify.TargetStats {
	t.Helper()
	for _, s := range d.Stats() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no target %q in Stats", name)
	return notify.TargetStats{}
}

// waitDone waits until name has finished n Events (sent or failed) and
// returns its counters.
func waitDone(t *testing.T, d *notify.Dispatcher, name string, n int64) notify.TargetStats {
	t.Helper()
	var s notify.TargetStats
	waitFor(t, name+" to finish its events", func() bool {
		s = stats(t, d, name)
		return s.Sent+s.Failed >= n
	})
	return s
}

// request is what a test server received.
type request struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// recorder is an HTTP server that records requests and answers with
// status(n) for the n-th request (0-based), 204 when status is nil.
type recorder struct {
	URL    string
	status func(n int) int

	mu   sync.Mutex
	reqs []request
}

func newRecorder(t *testing.T, status func(n int) int) *recorder {
	t.Helper()
	r := &recorder{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, request{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: string(body)})
		r.mu.Unlock()
		code := http.StatusNoContent
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// byPath returns the bodies received on path, in order.
func (r *recorder) byPath(path string) []string {
	var out []string
	for _, q := range r.requests() {
		if q.Path == path {
			out = append(out, q.Body)
		}
	}
	return out
}

// deadEndpoint is a TCP listener that accepts connections and never
// answers: a hung webhook. It returns the URL to reach it.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/hook"
}

// closedPort returns a URL on a port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/hook"
}
