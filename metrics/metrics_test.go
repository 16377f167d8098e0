package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
)

// scrape serves m on a loopback port and returns one scrape's text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	res, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	return string(b)
}

func TestScrape(t *testing.T) {
	st := control.Status{
		UptimeSeconds: 42, Bans: 3,
		Sources: []control.SourceStatus{{
			Name: "pbx", Parser: "asterisk", Lines: 100, Events: 7,
			EventsBy: map[string]int64{"auth_failed": 5, "unknown_user": 2, "auth_succeeded": 1},
			DropBy:   map[string]int64{"malformed": 1, "injected": 0}, State: "reading",
		}, {Name: "gui", Parser: "freepbx", Waiting: true, State: "missing"},
			{Name: "cdr", Parser: "asterisk", State: "permission denied", Waiting: true}},
		Engine: control.EngineStatus{Tracked: 9, Evicted: 4, Narrowed: 6},
		Notify: []control.NotifyStatus{{Name: "ops", Kind: "webhook", Sent: 7, Failed: 1, Dropped: 2}},
		Feeds:  []control.FeedStatus{{Name: "drop", Enforced: 1000, Failures: 3}},
		Cluster: &control.ClusterStatus{Connected: true, Published: 12, Queued: 2, QueueDropped: 1, Received: 40, Applied: 30,
			Ignored: map[string]int64{"own": 8, "allowlisted": 2}, Malformed: 5},
		Firewall: control.FirewallStatus{Bans: 3, Packets: 1234, Bytes: 99999, Errors: 2, Allowed: 77, WireCopied: 31},
	}
	m := New(func(context.Context) (control.Status, error) { return st, nil }, "1.2.3")
	m.Ban("burst", 700*time.Microsecond)
	m.Ban("burst", 3*time.Millisecond)
	m.Ban("manual", 0)
	m.Unban("burst", "expired")
	m.Compromise("pbx")
	m.DropSurge("pbx")
	m.DropSurge("pbx")
	out := scrape(t, m)
	for _, want := range []string{
		"sipguard_up 1",
		`sipguard_build_info{version="1.2.3"} 1`,
		"sipguard_uptime_seconds 42",
		`sipguard_lines_total{parser="asterisk",source="pbx"} 100`,
		`sipguard_events_total{kind="auth_failed",parser="asterisk",source="pbx"} 5`,
		`sipguard_events_total{kind="auth_succeeded",parser="asterisk",source="pbx"} 1`,
		`sipguard_dropped_lines_total{parser="asterisk",reason="malformed",source="pbx"} 1`,
		`sipguard_source_waiting{source="gui"} 1`,
		`sipguard_source_waiting{source="pbx"} 0`,
		`sipguard_source_up{source="pbx"} 1`,
		`sipguard_source_up{source="gui"} 0`,
		`sipguard_source_up{source="cdr"} 0`,
		"sipguard_bans_in_force 3",
		"sipguard_firewall_bans 3",
		"sipguard_tracked_addresses 9",
		"sipguard_engine_evictions_total 4",
		"sipguard_firewall_errors_total 2",
		"sipguard_dropped_packets_total 1234",
		"sipguard_dropped_bytes_total 99999",
		"sipguard_allowed_packets_total 77",
		"sipguard_wire_copied_packets_total 31",
		"sipguard_bans_narrowed_total 6",
		`sipguard_bans_total{rule="burst"} 2`,
		`sipguard_bans_total{rule="manual"} 1`,
		`sipguard_unbans_total{reason="expired",rule="burst"} 1`,
		`sipguard_compromises_total{source="pbx"} 1`,
		`sipguard_drop_surges_total{source="pbx"} 2`,
		"sipguard_ban_latency_seconds_count 2", // the manual ban has no latency
		`sipguard_notifications_total{kind="webhook",result="sent",target="ops"} 7`,
		`sipguard_notifications_total{kind="webhook",result="dropped",target="ops"} 2`,
		`sipguard_feed_entries{feed="drop"} 1000`,
		`sipguard_feed_failures_total{feed="drop"} 3`,
		"sipguard_cluster_connected 1",
		"sipguard_cluster_published_total 12",
		"sipguard_cluster_queued 2",
		`sipguard_cluster_lost_total{reason="queue_full"} 1`,
		"sipguard_cluster_received_total 40",
		"sipguard_cluster_applied_total 30",
		`sipguard_cluster_ignored_total{reason="allowlisted"} 2`,
		`sipguard_cluster_bad_messages_total{reason="malformed"} 5`,
		`sipguard_ban_latency_seconds_bucket{le="0.0008"} 1`,
		`sipguard_ban_latency_seconds_bucket{le="0.0032"} 2`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestDaemonDown: a daemon that does not answer is sipguard_up 0, and the
// scrape still succeeds.
func TestDaemonDown(t *testing.T) {
	m := New(func(context.Context) (control.Status, error) { return control.Status{}, errors.New("down") }, "x")
	out := scrape(t, m)
	if !strings.Contains(out, "sipguard_up 0\n") || strings.Contains(out, "sipguard_lines_total") {
		t.Errorf("got:\n%s", out)
	}
}

// busy is a part of a scrape that notes how many of its collects run at
// once.
type busy struct{ now, most atomic.Int32 }

func (b *busy) collect(*snapshot) {
	n := b.now.Add(1)
	defer b.now.Add(-1)
	for m := b.most.Load(); n > m && !b.most.CompareAndSwap(m, n); m = b.most.Load() {
	}
	time.Sleep(5 * time.Millisecond)
}

// TestScrapesShareStatus: 16 scrapers at once read the daemon's status
// once, and are answered one at a time, one per ScrapeGap at most:
// scrapers in a loop can neither keep the daemon's core goroutine busy
// nor take much of its CPU. After StatusMaxAge the status is read anew.
func TestScrapesShareStatus(t *testing.T) {
	var reads atomic.Int32
	b := &busy{}
	m := New(func(context.Context) (control.Status, error) {
		reads.Add(1)
		time.Sleep(20 * time.Millisecond) // a slow status: the others arrive meanwhile
		return control.Status{Bans: int(reads.Load())}, nil
	}, "x")
	m.testPart = b.collect
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func() string {
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Error(err)
			return ""
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return string(out)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			if out := get(); !strings.Contains(out, "sipguard_bans_in_force 1\n") {
				t.Errorf("scrape:\n%s", out)
			}
		})
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("16 scrapes at once read the status %d times, want 1", n)
	}
	if n := b.most.Load(); n != 1 {
		t.Errorf("%d scrapes answered at once, want 1", n)
	}
	if took := time.Since(start); took < 15*ScrapeGap {
		t.Errorf("16 scrapes took %v; want at least 15 gaps of %v", took, ScrapeGap)
	}
	time.Sleep(StatusMaxAge)
	if out := get(); !strings.Contains(out, "sipguard_bans_in_force 2\n") || reads.Load() != 2 {
		t.Errorf("after StatusMaxAge, %d reads:\n%s", reads.Load(), out)
	}
}

func TestListenError(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(l.Addr().String()); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Errorf("a busy address: %v", err)
	}
}

// TestGrafanaDashboard: the dashboard in contrib/grafana is valid JSON and
// queries only metrics this package exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../contrib/grafana/sipguard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	st := control.Status{Sources: []control.SourceStatus{{Name: "s", Parser: "p", EventsBy: map[string]int64{"x": 1}, DropBy: map[string]int64{"y": 1}}},
		Cluster: &control.ClusterStatus{Ignored: map[string]int64{"own": 1}}}
	m := New(func(context.Context) (control.Status, error) { return st, nil }, "v")
	m.Ban("r", time.Millisecond)
	m.Unban("r", "expired")
	m.Compromise("s")
	exported := map[string]bool{}
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && strings.HasPrefix(line, "sipguard_") {
			name, _, _ = strings.Cut(name, "{")
			exported[name] = true
		}
	}
	used := regexp.MustCompile(`sipguard_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range used.FindAllString(tg.Expr, -1) {
				n++
				if !exported[name] {
					t.Errorf("panel %q uses %s, which sipguard does not export", p.Title, name)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d metric uses in the dashboard", n)
	}
}

// TestBansByCountry: the status's bans by country become one gauge per
// country, and none at all without a database (a nil map).
func TestBansByCountry(t *testing.T) {
	st := control.Status{Bans: 4, BansByCountry: map[string]int{"DE": 3, "unknown": 1}}
	out := scrape(t, New(func(context.Context) (control.Status, error) { return st, nil }, "x"))
	for _, want := range []string{`sipguard_bans_by_country{country="DE"} 3`, `sipguard_bans_by_country{country="unknown"} 1`} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	out = scrape(t, New(func(context.Context) (control.Status, error) { return control.Status{Bans: 4}, nil }, "x"))
	if strings.Contains(out, "sipguard_bans_by_country") {
		t.Errorf("bans by country without a database:\n%s", out)
	}
}
