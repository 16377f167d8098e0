package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/notify"
)

func TestNew(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		d, err := notify.New(
			[]notify.Webhook{
				{Name: "slack", URL: "https://hooks.example.com/services/T0/B0/xyz", Events: []string{"ban", "compromise"},
					Headers: map[string]string{"authorization": "Bearer x", "X-Tag": "a\tb"}},
				{Name: "plain", URL: "http://[2001:db8::1]:8080/"},
			},
			[]notify.Command{
				{Name: "mail", Argv: []string{"/usr/local/bin/mail-admin", "{type}", "--target={target}", `{"json":1}`, "{}", "{ x }", ""}},
			},
			zerolog.Nop())
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		var got []string
		for _, s := range d.Stats() {
			got = append(got, s.Kind+":"+s.Name)
		}
		if want := "webhook:slack webhook:plain command:mail"; strings.Join(got, " ") != want {
			t.Errorf("targets %q; want %q", got, want)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		d, err := notify.New(nil, nil, zerolog.Nop())
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
		if s := d.Stats(); len(s) != 0 {
			t.Errorf("Stats() = %v; want none", s)
		}
	})

	hook := func(f func(*notify.Webhook)) []notify.Webhook {
		h := notify.Webhook{Name: "h", URL: "https://example.com/hook"}
		f(&h)
		return []notify.Webhook{h}
	}
	cmd := func(f func(*notify.Command)) []notify.Command {
		c := notify.Command{Name: "c", Argv: []string{"/bin/true", "{target}"}}
		f(&c)
		return []notify.Command{c}
	}
	for _, tc := range []struct {
		name  string
		hooks []notify.Webhook
		cmds  []notify.Command
		want  string // in the error
		is    error  // errors.Is, when set
	}{
		{name: "WebhookNoName", hooks: hook(func(h *notify.Webhook) { h.Name = "" }), want: "webhook[0]: name: empty"},
		{name: "CommandNoName", cmds: cmd(func(c *notify.Command) { c.Name = "" }), want: "command[0]: name: empty"},
		{name: "DuplicateName", hooks: hook(func(*notify.Webhook) {}), cmds: cmd(func(c *notify.Command) { c.Name = "h" }),
			want: `command "h": name: used twice`},
		{name: "NoURL", hooks: hook(func(h *notify.Webhook) { h.URL = "" }), want: `webhook "h": url: empty`},
		{name: "BadScheme", hooks: hook(func(h *notify.Webhook) { h.URL = "ftp://example.com/x" }),
			want: `webhook "h": url: scheme "ftp": must be http or https`},
		{name: "NoScheme", hooks: hook(func(h *notify.Webhook) { h.URL = "example.com/hook" }),
			want: `webhook "h": url: scheme "": must be http or https`},
		{name: "NoHost", hooks: hook(func(h *notify.Webhook) { h.URL = "https:///hook" }), want: `webhook "h": url: no host`},
		{name: "Opaque", hooks: hook(func(h *notify.Webhook) { h.URL = "http:example.com" }), want: `webhook "h": url: no host`},
		{name: "Unparseable", hooks: hook(func(h *notify.Webhook) { h.URL = "https://exa mple.com/secret-token" }), want: `webhook "h": url: invalid character`},
		{name: "WebhookUnknownEvent", hooks: hook(func(h *notify.Webhook) { h.Events = []string{"ban", "bann"} }),
			want: `webhook "h": events: unknown event type "bann"`, is: notify.ErrUnknownEvent},
		{name: "NegativeRetries", hooks: hook(func(h *notify.Webhook) { h.Retries = -1 }), want: `webhook "h": retries: must be >= 0`},
		{name: "NegativeTimeout", hooks: hook(func(h *notify.Webhook) { h.Timeout = -time.Second }), want: `webhook "h": timeout: must be >= 0`},
		{name: "NegativeQueue", hooks: hook(func(h *notify.Webhook) { h.Queue = -1 }), want: `webhook "h": queue: must be >= 0`},
		{name: "HeaderName", hooks: hook(func(h *notify.Webhook) { h.Headers = map[string]string{"X Bad": "1"} }),
			want: `webhook "h": headers: invalid name "X Bad"`},
		{name: "HeaderValue", hooks: hook(func(h *notify.Webhook) { h.Headers = map[string]string{"X-A": "1\r\nEvil: 1"} }),
			want: `webhook "h": headers: value of "X-A" holds a control character`},
		{name: "HeaderReserved", hooks: hook(func(h *notify.Webhook) { h.Headers = map[string]string{"content-type": "text/plain"} }),
			want: `webhook "h": headers: "Content-Type" is set by sipguard`},
		{name: "NoArgv", cmds: cmd(func(c *notify.Command) { c.Argv = nil }), want: `command "c": argv: empty`},
		{name: "RelativeProgram", cmds: cmd(func(c *notify.Command) { c.Argv[0] = "notify-send" }),
			want: `command "c": argv[0]: "notify-send" is not an absolute path`},
		{name: "PlaceholderProgram", cmds: cmd(func(c *notify.Command) { c.Argv[0] = "/usr/bin/{user}" }),
			want: `command "c": argv[0]: "/usr/bin/{user}": placeholders are not allowed in the program`},
		{name: "UnknownPlaceholder", cmds: cmd(func(c *notify.Command) { c.Argv = append(c.Argv, "--ip={adress}") }),
			want: `command "c": argv[2]: unknown placeholder {adress}`, is: notify.ErrUnknownPlaceholder},
		{name: "CapitalPlaceholder", cmds: cmd(func(c *notify.Command) { c.Argv = append(c.Argv, "{Target}") }),
			want: `command "c": argv[2]: unknown placeholder {Target}`, is: notify.ErrUnknownPlaceholder},
		{name: "NULInArgv", cmds: cmd(func(c *notify.Command) { c.Argv = append(c.Argv, "a\x00b") }), want: `command "c": argv[2]: holds a NUL byte`},
		{name: "CommandUnknownEvent", cmds: cmd(func(c *notify.Command) { c.Events = []string{"Ban"} }),
			want: `command "c": events: unknown event type "Ban"`, is: notify.ErrUnknownEvent},
		{name: "CommandNegativeTimeout", cmds: cmd(func(c *notify.Command) { c.Timeout = -1 }), want: `command "c": timeout: must be >= 0`},
		{name: "CommandNegativeQueue", cmds: cmd(func(c *notify.Command) { c.Queue = -5 }), want: `command "c": queue: must be >= 0 (got -5)`},
	} {
		t.Run("Err"+tc.name, func(t *testing.T) {
			d, err := notify.New(tc.hooks, tc.cmds, zerolog.Nop())
			if err == nil {
				t.Fatalf("New succeeded (%d targets); want error %q", len(d.Stats()), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q; want it to contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got error %q; want errors.Is %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error %q quotes the URL", err)
			}
		})
	}

	t.Run("ErrAll", func(t *testing.T) {
		// Every problem is reported at once, each on its own line with
		// its target.
		_, err := notify.New(
			[]notify.Webhook{{Name: "a", URL: "ftp://x", Retries: -1}},
			[]notify.Command{{Name: "b", Argv: []string{"rel", "{nope}"}}},
			zerolog.Nop())
		if err == nil {
			t.Fatal("New succeeded")
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != 4 {
			t.Fatalf("got %d lines %q; want 4", len(lines), lines)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, `webhook "a": `) && !strings.HasPrefix(l, `command "b": `) {
				t.Errorf("line %q does not name its target", l)
			}
		}
	})
}

func TestDispatcher_Backoff(t *testing.T) {
	d := newDispatcher(t, nil, nil)
	var got []string
	for n := range 8 {
		got = append(got, d.Backoff(n).String())
	}
	if want := "1s 2s 4s 8s 16s 30s 30s 30s"; strings.Join(got, " ") != want {
		t.Errorf("got %v; want %v", got, want)
	}
}

func TestDispatcher_Nil(t *testing.T) {
	var d *notify.Dispatcher
	d.Notify(notify.Event{Type: "ban"})
	if s := d.Stats(); s != nil {
		t.Errorf("Stats() = %v; want nil", s)
	}
}

// TestNotify_DeadEndpoint checks that a webhook that never completes slows
// nothing down, and that its queue stays bounded with every Event counted.
func TestNotify_DeadEndpoint(t *testing.T) {
	const (
		queue = 100
		calls = 10_000
	)
	for _, tc := range []struct {
		name string
		url  func(*testing.T) string
		hook func(*notify.Webhook)
	}{
		// Stuck in the request until its Timeout, far beyond the test.
		{"NeverAnswers", deadEndpoint, func(h *notify.Webhook) { h.Timeout = time.Hour }},
		// Refused at once, then stuck waiting for the retry.
		{"ClosedPort", closedPort, func(h *notify.Webhook) { h.Retries = 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := notify.Webhook{Name: "dead", URL: tc.url(t), Queue: queue}
			tc.hook(&h)
			d := newDispatcher(t, []notify.Webhook{h}, nil)
			d.SetBackoff(time.Hour, time.Hour)
			r := run(t, d)

			// The worker takes the first Event and stays busy with it.
			d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
			waitFor(t, "the worker to be busy", func() bool { return stats(t, d, "dead").InFlight == 1 })

			evs := make([]notify.Event, 250)
			for i := range evs {
				evs[i] = notify.Event{Type: "ban", Target: fmt.Sprintf("192.0.2.%d", i+2), Time: time.Now()}
			}
			start := time.Now()
			for i := range calls {
				d.Notify(evs[i%len(evs)])
			}
			elapsed := time.Since(start)
			// Typically 1-2ms, tens of ms under -race, a few hundred on an
			// overloaded machine; a Notify that waited for the endpoint
			// would take an hour.
			if elapsed > time.Second {
				t.Errorf("%d Notify calls took %v; want well under 1s", calls, elapsed)
			}
			t.Logf("%d Notify calls with the worker stuck: %v (%v per call)", calls, elapsed, elapsed/calls)

			s := stats(t, d, "dead")
			if s.Queued != queue || s.InFlight != 1 || s.Dropped != calls+1-queue-1 || s.Sent != 0 || s.Failed != 0 {
				t.Errorf("got %+v; want Queued %d, InFlight 1, Dropped %d, nothing sent or failed", s, queue, calls+1-queue-1)
			}

			// Shutdown does not wait for the stuck delivery, and counts
			// what it leaves undelivered.
			if took := r.stop(t); took > 5*time.Second {
				t.Errorf("Run took %v to return after cancel; want prompt", took)
			} else {
				t.Logf("Run returned %v after cancel", took)
			}
			s = stats(t, d, "dead")
			if s.Dropped != calls+1 || s.Queued != 0 || s.InFlight != 0 || s.Failed != 0 {
				t.Errorf("after Run: got %+v; want all %d Dropped", s, calls+1)
			}

			// After Run, Notify still returns at once and counts.
			d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
			if s := stats(t, d, "dead"); s.Dropped != calls+2 || s.Queued != 0 {
				t.Errorf("Notify after Run: got %+v; want Dropped %d", s, calls+2)
			}
		})
	}
}

func TestNotify_DropWarning(t *testing.T) {
	var logs testutil.Buffer
	d, err := notify.New([]notify.Webhook{
		{Name: "dead", URL: deadEndpoint(t), Queue: 1, Timeout: time.Hour},
		{Name: "dead2", URL: deadEndpoint(t), Queue: 1, Timeout: time.Hour},
	}, nil, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	// Not run: the queues hold one Event each and drop the rest.
	for range 1000 {
		d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	}
	if n := logs.Count("notification queue full"); n != 2 {
		t.Errorf("%d warnings for 2×999 drops; want 1 per target\n%s", n, logs.String())
	}
	if n := logs.Count(`"dropped_total":1,`); n != 2 {
		t.Errorf("warnings do not report the first drop\n%s", logs.String())
	}
	for _, s := range d.Stats() {
		if s.Dropped != 999 || s.Queued != 1 {
			t.Errorf("%s: got %+v; want Dropped 999, Queued 1", s.Name, s)
		}
	}
	// After the interval the next drop warns again, with the count since.
	d.SetWarnEvery(0)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	if n := logs.Count("notification queue full"); n != 4 {
		t.Errorf("%d warnings; want 4", n)
	}
	if n := logs.Count(`"dropped":999,"dropped_total":1000`); n != 2 {
		t.Errorf("second warnings do not count the drops since the first\n%s", logs.String())
	}
}

// TestNotify_Concurrent notifies from many goroutines while reading Stats,
// for the race detector, and checks that every Event is counted once.
func TestNotify_Concurrent(t *testing.T) {
	rec := newRecorder(t, nil)
	d := newDispatcher(t, []notify.Webhook{{Name: "w", URL: rec.URL, Queue: 50}}, nil)
	run(t, d)
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				d.Notify(notify.Event{Type: "ban", Target: fmt.Sprintf("198.51.100.%d", g), Count: i})
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			s := stats(t, d, "w")
			if n := s.Sent + s.Failed + s.Dropped + int64(s.Queued) + int64(s.InFlight); n > goroutines*each {
				t.Errorf("%+v counts %d events; only %d were notified", s, n, goroutines*each)
				return
			}
		}
	})
	wg.Wait()
	var s notify.TargetStats
	waitFor(t, "the queue to drain", func() bool {
		s = stats(t, d, "w")
		return s.Queued == 0 && s.InFlight == 0
	})
	if s.Sent+s.Dropped != goroutines*each || s.Failed != 0 {
		t.Errorf("got %+v; want Sent+Dropped = %d", s, goroutines*each)
	}
	if got := len(rec.requests()); int64(got) != s.Sent {
		t.Errorf("server got %d requests; Sent is %d", got, s.Sent)
	}
}

func TestDispatcher_RunTwice(t *testing.T) {
	d := newDispatcher(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx) // returns at once: ctx is done
	defer func() {
		if recover() == nil {
			t.Error("second Run did not panic")
		}
	}()
	d.Run(ctx)
}

// TestValidate: Validate names the field at fault (for the config to
// point at its key), and accepts a valid target.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		field string
		index int
	}{
		{"WebhookName", notify.Webhook{URL: "https://example.com/"}.Validate(), "name", -1},
		{"WebhookURL", notify.Webhook{Name: "h", URL: "ftp://example.com/"}.Validate(), "url", -1},
		{"WebhookHeaders", notify.Webhook{Name: "h", URL: "https://example.com/", Headers: map[string]string{"host": "x"}}.Validate(), "headers", -1},
		{"WebhookRetries", notify.Webhook{Name: "h", URL: "https://example.com/", Retries: -1}.Validate(), "retries", -1},
		{"CommandArgv", notify.Command{Name: "c", Argv: []string{"/bin/true", "{nope}"}}.Validate(), "argv", 1},
		{"CommandNoArgv", notify.Command{Name: "c"}.Validate(), "argv", -1},
		{"CommandEvents", notify.Command{Name: "c", Argv: []string{"/bin/true"}, Events: []string{"bans"}}.Validate(), "events", -1},
	} {
		t.Run("Err"+tc.name, func(t *testing.T) {
			var fe *notify.FieldError
			if !errors.As(tc.err, &fe) || fe.Field != tc.field || fe.Index != tc.index {
				t.Fatalf("got %#v; want a *FieldError for %s[%d]", tc.err, tc.field, tc.index)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		if err := (notify.Webhook{Name: "h", URL: "https://example.com/", Headers: map[string]string{"Authorization": "Bearer x"}}).Validate(); err != nil {
			t.Errorf("webhook: %v", err)
		}
		if err := (notify.Command{Name: "c", Argv: []string{"/bin/echo", "{target}"}}).Validate(); err != nil {
			t.Errorf("command: %v", err)
		}
	})
}
