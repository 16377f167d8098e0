package notify_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipguard/sipguard/notify"
)

var (
	fixedTime = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	expires   = fixedTime.Add(time.Hour)
)

func TestWebhook_OK(t *testing.T) {
	rec := newRecorder(t, nil)
	d := newDispatcher(t, []notify.Webhook{
		{Name: "all", URL: rec.URL + "/all", Headers: map[string]string{"authorization": "Bearer s3cret", "X-Sipguard-Node": "pbx1"}},
		{Name: "bans", URL: rec.URL + "/bans", Events: []string{"ban", "compromise"}},
	}, nil)
	run(t, d)

	host, _ := os.Hostname()
	jsonHost, _ := json.Marshal(host)
	events := []struct {
		ev   notify.Event
		want string // the exact body
	}{
		{
			notify.Event{Type: "ban", Target: "198.51.100.7", Addr: "198.51.100.7", Rule: "asterisk", Reason: "5 failed REGISTER in 60s",
				Source: "pbx-security", Count: 5, Offences: 2, Time: fixedTime, Expires: expires, Host: "pbx1"},
			`{"type":"ban","target":"198.51.100.7","addr":"198.51.100.7","rule":"asterisk","reason":"5 failed REGISTER in 60s",` +
				`"source":"pbx-security","count":5,"offences":2,"time":"2026-11-26T10:00:00Z","expires":"2026-11-26T11:00:00Z","host":"pbx1"}`,
		},
		{
			// Host filled in, Expires left out.
			notify.Event{Type: "unban", Target: "2001:db8::/64", Rule: "manual", Time: fixedTime},
			`{"type":"unban","target":"2001:db8::/64","rule":"manual","time":"2026-11-26T10:00:00Z","host":` + string(jsonHost) + `}`,
		},
		{
			notify.Event{Type: "compromise", Target: "203.0.113.9", Addr: "203.0.113.9", Rule: "asterisk", Source: "pbx-security",
				User: `1001"; DROP`, Count: 3, Time: fixedTime, Host: "pbx1"},
			`{"type":"compromise","target":"203.0.113.9","addr":"203.0.113.9","rule":"asterisk","source":"pbx-security",` +
				`"user":"1001\"; DROP","count":3,"time":"2026-11-26T10:00:00Z","host":"pbx1"}`,
		},
	}
	for _, e := range events {
		d.Notify(e.ev)
	}
	waitDone(t, d, "all", 3)
	waitDone(t, d, "bans", 2)

	all, bans := rec.byPath("/all"), rec.byPath("/bans")
	if len(all) != 3 {
		t.Fatalf("/all got %d requests; want 3", len(all))
	}
	for i, e := range events {
		if all[i] != e.want {
			t.Errorf("%s body:\ngot  %s\nwant %s", e.ev.Type, all[i], e.want)
		}
	}
	if want := []string{events[0].want, events[2].want}; strings.Join(bans, "\n") != strings.Join(want, "\n") {
		t.Errorf("/bans (ban, compromise only) got:\n%s\nwant:\n%s", strings.Join(bans, "\n"), strings.Join(want, "\n"))
	}

	for _, q := range rec.requests() {
		for k, want := range map[string]string{
			"Content-Type": "application/json",
			"User-Agent":   "sipguard",
		} {
			if got := q.Header.Get(k); got != want {
				t.Errorf("%s %s: got %s %q; want %q", q.Method, q.Path, k, got, want)
			}
		}
		if q.Method != http.MethodPost {
			t.Errorf("got method %s; want POST", q.Method)
		}
		auth, node := q.Header.Get("Authorization"), q.Header.Get("X-Sipguard-Node")
		if q.Path == "/all" && (auth != "Bearer s3cret" || node != "pbx1") {
			t.Errorf("/all: got Authorization %q, X-Sipguard-Node %q; want the configured headers", auth, node)
		}
		if q.Path == "/bans" && auth != "" {
			t.Errorf("/bans got another webhook's Authorization %q", auth)
		}
	}
	for _, s := range d.Stats() {
		if s.Failed != 0 || s.Dropped != 0 || s.LastError != "" {
			t.Errorf("%s: %+v; want no failure", s.Name, s)
		}
	}
}

func TestWebhook_Order(t *testing.T) {
	rec := newRecorder(t, nil)
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: rec.URL}}, nil)
	run(t, d)
	const n = 50
	for i := range n {
		d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1", Count: i + 1})
	}
	waitDone(t, d, "w", n)
	for i, q := range rec.requests() {
		var ev notify.Event
		if err := json.Unmarshal([]byte(q.Body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Count != i+1 {
			t.Fatalf("request %d is Event %d; want them in order", i+1, ev.Count)
		}
	}
}

func TestWebhook_Retry(t *testing.T) {
	rec := newRecorder(t, func(n int) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: rec.URL, Retries: 3}}, nil)
	d.SetBackoff(time.Millisecond, 5*time.Millisecond)
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1", Time: fixedTime})
	s := waitDone(t, d, "w", 1)
	if s.Sent != 1 || s.Failed != 0 {
		t.Errorf("got %+v; want Sent 1, Failed 0", s)
	}
	reqs := rec.requests()
	if len(reqs) != 3 {
		t.Fatalf("server got %d requests; want 3 (500, 500, 200)", len(reqs))
	}
	for _, q := range reqs[1:] {
		if q.Body != reqs[0].Body {
			t.Errorf("retry body %q; want the first one %q", q.Body, reqs[0].Body)
		}
	}
}

func TestWebhook_Status(t *testing.T) {
	for _, tc := range []struct {
		status   int
		attempts int // with Retries 2
	}{
		{http.StatusOK, 1},
		{http.StatusAccepted, 1},
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusNotFound, 1},
		{http.StatusFound, 1},
		{http.StatusRequestTimeout, 3},
		{http.StatusTooManyRequests, 3},
		{http.StatusInternalServerError, 3},
		{http.StatusServiceUnavailable, 3},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rec := newRecorder(t, func(int) int { return tc.status })
			d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: rec.URL, Retries: 2}}, nil)
			d.SetBackoff(time.Millisecond, time.Millisecond)
			run(t, d)
			d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
			s := waitDone(t, d, "w", 1)
			if n := len(rec.requests()); n != tc.attempts {
				t.Errorf("%d attempts; want %d", n, tc.attempts)
			}
			ok := tc.status < 300
			if ok && (s.Sent != 1 || s.LastError != "") || !ok && s.Failed != 1 {
				t.Errorf("got %+v; want delivered %v", s, ok)
			}
			if !ok {
				want := fmt.Sprintf("attempt %d of 3: status %d %s", tc.attempts, tc.status, http.StatusText(tc.status))
				if !strings.HasPrefix(s.LastError, want) || s.LastErrorTime.IsZero() {
					t.Errorf("LastError %q at %v; want %q", s.LastError, s.LastErrorTime, want)
				}
			}
		})
	}
}

func TestWebhook_NoRedirect(t *testing.T) {
	other := newRecorder(t, nil)
	redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/stolen", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: redirect.URL, Retries: 2,
		Headers: map[string]string{"Authorization": "Bearer s3cret"}}}, nil)
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	s := waitDone(t, d, "w", 1)
	if s.Failed != 1 || !strings.Contains(s.LastError, "307") {
		t.Errorf("got %+v; want a failed 307", s)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests; want none", n)
	}
}

func TestWebhook_Timeout(t *testing.T) {
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: deadEndpoint(t), Timeout: 50 * time.Millisecond, Retries: 1}}, nil)
	d.SetBackoff(time.Millisecond, time.Millisecond)
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	s := waitDone(t, d, "w", 1)
	if want := "attempt 2 of 2: no answer within 50ms"; s.Failed != 1 || s.LastError != want {
		t.Errorf("got %+v; want Failed 1, LastError %q", s, want)
	}
}

func TestWebhook_ClosedPort(t *testing.T) {
	u := closedPort(t) + "/services/T0/B0/secret-token"
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: u, Retries: 2}}, nil)
	d.SetBackoff(time.Millisecond, time.Millisecond)
	run(t, d)
	for range 10 {
		d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	}
	s := waitDone(t, d, "w", 10)
	if s.Failed != 10 || s.Sent != 0 || !strings.HasPrefix(s.LastError, "attempt 3 of 3: dial tcp") ||
		!strings.Contains(s.LastError, "refused") {
		t.Errorf("got %+v; want 10 failed after 3 refused attempts", s)
	}
	// The URL's path is often the webhook's secret.
	if strings.Contains(s.LastError, "secret-token") {
		t.Errorf("LastError %q shows the URL", s.LastError)
	}
}

// TestWebhook_LongResponse checks that a never-ending response body does
// not keep the worker reading.
func TestWebhook_LongResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: srv.URL, Timeout: patience}}, nil)
	run(t, d)
	start := time.Now()
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	if s := waitDone(t, d, "w", 1); s.Sent != 1 {
		t.Errorf("got %+v; want Sent 1", s)
	}
	t.Logf("delivered in %v", time.Since(start))
}

// TestRun_StuckRequest checks that cancelling Run aborts a request in
// progress at once, rather than after its Timeout.
func TestRun_StuckRequest(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-r.Context().Done(): // the client went away
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for handlers
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: srv.URL, Timeout: time.Hour, Retries: 10}}, nil)
	r := run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	d.Notify(notify.Event{Type: "unban", Target: "192.0.2.1"})
	select {
	case <-started:
	case <-time.After(patience):
		t.Fatal("no request arrived")
	}
	took := r.stop(t)
	t.Logf("Run returned %v after cancel", took)
	if took > 5*time.Second {
		t.Errorf("Run took %v to return; want prompt", took)
	}
	if s := stats(t, d, "w"); s.Dropped != 2 || s.Failed != 0 || s.LastError != "" {
		t.Errorf("got %+v; want both Dropped, no failure", s)
	}
}
