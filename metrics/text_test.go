package metrics

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sipguard/sipguard/control"
)

// parsed is a scrape as Prometheus' own parser (expfmt, in tests only)
// reads it: the type of each family, and each series as one line,
// `name{label="value",...} value`, labels sorted by name and values
// quoted by strconv.Quote, histograms as their _bucket, _sum and _count.
type parsed struct {
	types  map[string]string
	series []string
}

// parse parses text, and checks what client_golang's output always was:
// families sorted by name, each with a HELP, series sorted by their label
// values, none twice.
func parse(t *testing.T, text string) parsed {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("expfmt: %v\n%s", err, text)
	}
	var order []string
	for _, line := range strings.Split(text, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			order = append(order, name)
		}
	}
	if !slices.IsSorted(order) || len(order) != len(fams) {
		t.Errorf("families not sorted by name, or some without TYPE: %v", order)
	}
	out := parsed{types: map[string]string{}}
	for name, f := range fams {
		out.types[name] = strings.ToLower(f.GetType().String())
		if f.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
		var prev []string
		for _, m := range f.Metric {
			labels := m.GetLabel()
			if !slices.IsSortedFunc(labels, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }) {
				t.Errorf("%s: labels not sorted by name: %v", name, labels)
			}
			var values []string
			for _, l := range labels {
				values = append(values, l.GetValue())
			}
			if prev != nil && slices.Compare(prev, values) >= 0 {
				t.Errorf("%s: series %q after %q", name, values, prev)
			}
			prev = values
			line := func(suffix string, v float64, extra ...string) {
				var pairs []string
				for _, l := range labels {
					pairs = append(pairs, l.GetName()+"="+strconv.Quote(l.GetValue()))
				}
				pairs = append(pairs, extra...)
				s := name + suffix
				if len(pairs) > 0 {
					s += "{" + strings.Join(pairs, ",") + "}"
				}
				out.series = append(out.series, s+" "+strconv.FormatFloat(v, 'g', -1, 64))
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				line("", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				line("", m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					line("_bucket", float64(b.GetCumulativeCount()), "le="+strconv.Quote(strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))
				}
				line("_sum", h.GetSampleSum())
				line("_count", float64(h.GetSampleCount()))
			default:
				t.Errorf("%s: type %v", name, f.GetType())
			}
		}
	}
	slices.Sort(out.series)
	return out
}

// richStatus is a daemon's state with every family, label values that
// must be escaped, big and fractional values, and two series with the
// same labels (a peer named "" beside this node's clock skew).
var richStatus = control.Status{
	UptimeSeconds: 42.5, Bans: 1000000,
	BansByCountry: map[string]int{"DE": 3, "unknown": 1, "FR": 1234567},
	Sources: []control.SourceStatus{{
		Name: "pbx", Parser: "asterisk", Lines: 100, Events: 7,
		EventsBy: map[string]int64{"auth_failed": 5, "unknown_user": 2, "auth_succeeded": 1},
		DropBy:   map[string]int64{"malformed": 1, "injected": 0}, State: "reading",
	}, {Name: "gui\"x\\y\nz", Parser: "freepbx", Waiting: true, State: "missing"},
		{Name: "cdr", Parser: "asterisk", State: "permission denied", Waiting: true, Error: "x"},
		{Name: "a,b=c}", Parser: "p q", State: "reading", Lines: 1 << 53}},
	Engine: control.EngineStatus{Tracked: 9, Evicted: 4, Narrowed: 6},
	Fraud:  &control.FraudStatus{Calls: map[string]int64{"GB": 3, "non_geographic": 1, "national": 0}},
	Notify: []control.NotifyStatus{{Name: "ops", Kind: "webhook", Sent: 7, Failed: 1, Dropped: 2}, {Name: "zé\\", Kind: "command"}},
	Feeds:  []control.FeedStatus{{Name: "drop", Enforced: 1000, Failures: 3}, {Name: "edrop"}},
	Cluster: &control.ClusterStatus{Connected: true, Published: 12, Queued: 2, QueueDropped: 1, Received: 40, Applied: 30,
		Ignored: map[string]int64{"own": 8, "allowlisted": 2}, Malformed: 5, Oversize: 1, Expired: 3, PublishErrors: 9, PublishRetries: 4,
		ClockChecked: time.Unix(1, 0), ClockSkew: -0.25, PeerSkews: map[string]float64{"b": 31.5, "a": -45, "": 99}},
	Firewall: control.FirewallStatus{Bans: 3, Packets: 1234, Bytes: 99999, Errors: 2, Allowed: 77, WireCopied: 31, PolicyDropped: 5},
}

// TestScrape_Families: for a daemon's state, the scrape holds exactly the
// families and series that state implies, of the right types, as
// Prometheus' parser reads them. The list is what client_golang served
// for the same state (byte for byte the same text when it was replaced).
func TestScrape_Families(t *testing.T) {
	m := New(func(context.Context) (control.Status, error) { return richStatus, nil }, "1.2.3")
	m.Ban("burst", 700*time.Microsecond)
	m.Ban("burst", 3*time.Millisecond)
	m.Ban("feed:drop", 100*time.Microsecond) // on a bound: "le"
	m.Ban("slow", 5*time.Second)             // beyond the last bound
	m.Ban("manual", 0)
	m.Unban("burst", "expired")
	m.Unban("burst", "manual")
	m.Unban("a\"b", "feed")
	m.Compromise("pbx")
	m.Fraud("intl")
	m.DropSurge("pbx")
	m.DropSurge("pbx")
	got := parse(t, scrape(t, m))

	wantTypes := map[string]string{}
	for _, name := range []string{
		"sipguard_allowed_packets_total",
		"sipguard_bans_narrowed_total",
		"sipguard_bans_total",
		"sipguard_calls_total",
		"sipguard_cluster_applied_total",
		"sipguard_cluster_bad_messages_total",
		"sipguard_cluster_ignored_total",
		"sipguard_cluster_lost_total",
		"sipguard_cluster_publish_retries_total",
		"sipguard_cluster_published_total",
		"sipguard_cluster_received_total",
		"sipguard_compromises_total",
		"sipguard_drop_surges_total",
		"sipguard_dropped_bytes_total",
		"sipguard_dropped_lines_total",
		"sipguard_dropped_packets_total",
		"sipguard_engine_evictions_total",
		"sipguard_events_total",
		"sipguard_feed_failures_total",
		"sipguard_firewall_errors_total",
		"sipguard_fraud_alerts_total",
		"sipguard_lines_total",
		"sipguard_notifications_total",
		"sipguard_policy_dropped_packets_total",
		"sipguard_unbans_total",
		"sipguard_wire_copied_packets_total",
	} {
		wantTypes[name] = "counter"
	}
	for _, name := range []string{
		"sipguard_bans_by_country",
		"sipguard_bans_in_force",
		"sipguard_build_info",
		"sipguard_cluster_clock_skew_seconds",
		"sipguard_cluster_connected",
		"sipguard_cluster_queued",
		"sipguard_cluster_stream_ok",
		"sipguard_feed_entries",
		"sipguard_firewall_bans",
		"sipguard_source_up",
		"sipguard_source_waiting",
		"sipguard_tracked_addresses",
		"sipguard_up",
		"sipguard_uptime_seconds",
	} {
		wantTypes[name] = "gauge"
	}
	for _, name := range []string{
		"sipguard_ban_latency_seconds",
	} {
		wantTypes[name] = "histogram"
	}
	for name, typ := range got.types {
		if wantTypes[name] != typ {
			t.Errorf("%s: type %s, want %q", name, typ, wantTypes[name])
		}
	}
	for name, typ := range wantTypes {
		if _, ok := got.types[name]; !ok {
			t.Errorf("no family %s (%s)", name, typ)
		}
	}
	want := []string{
		`sipguard_allowed_packets_total 77`,
		`sipguard_ban_latency_seconds_bucket{le="+Inf"} 4`,
		`sipguard_ban_latency_seconds_bucket{le="0.0001"} 1`,
		`sipguard_ban_latency_seconds_bucket{le="0.0002"} 1`,
		`sipguard_ban_latency_seconds_bucket{le="0.0004"} 1`,
		`sipguard_ban_latency_seconds_bucket{le="0.0008"} 2`,
		`sipguard_ban_latency_seconds_bucket{le="0.0016"} 2`,
		`sipguard_ban_latency_seconds_bucket{le="0.0032"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.0064"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.0128"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.0256"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.0512"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.1024"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.2048"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.4096"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="0.8192"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="1.6384"} 3`,
		`sipguard_ban_latency_seconds_bucket{le="3.2768"} 3`,
		`sipguard_ban_latency_seconds_count 4`,
		`sipguard_ban_latency_seconds_sum 5.0038`,
		`sipguard_bans_by_country{country="DE"} 3`,
		`sipguard_bans_by_country{country="FR"} 1.234567e+06`,
		`sipguard_bans_by_country{country="unknown"} 1`,
		`sipguard_bans_in_force 1e+06`,
		`sipguard_bans_narrowed_total 6`,
		`sipguard_bans_total{rule="burst"} 2`,
		`sipguard_bans_total{rule="feed:drop"} 1`,
		`sipguard_bans_total{rule="manual"} 1`,
		`sipguard_bans_total{rule="slow"} 1`,
		`sipguard_build_info{version="1.2.3"} 1`,
		`sipguard_calls_total{destination="GB"} 3`,
		`sipguard_calls_total{destination="national"} 0`,
		`sipguard_calls_total{destination="non_geographic"} 1`,
		`sipguard_cluster_applied_total 30`,
		`sipguard_cluster_bad_messages_total{reason="malformed"} 5`,
		`sipguard_cluster_bad_messages_total{reason="oversize"} 1`,
		`sipguard_cluster_clock_skew_seconds{node=""} -0.25`,
		`sipguard_cluster_clock_skew_seconds{node="a"} -45`,
		`sipguard_cluster_clock_skew_seconds{node="b"} 31.5`,
		`sipguard_cluster_connected 1`,
		`sipguard_cluster_ignored_total{reason="allowlisted"} 2`,
		`sipguard_cluster_ignored_total{reason="own"} 8`,
		`sipguard_cluster_lost_total{reason="expired"} 3`,
		`sipguard_cluster_lost_total{reason="queue_full"} 1`,
		`sipguard_cluster_lost_total{reason="refused"} 9`,
		`sipguard_cluster_publish_retries_total 4`,
		`sipguard_cluster_published_total 12`,
		`sipguard_cluster_queued 2`,
		`sipguard_cluster_received_total 40`,
		`sipguard_cluster_stream_ok 1`,
		`sipguard_compromises_total{source="pbx"} 1`,
		`sipguard_drop_surges_total{source="pbx"} 2`,
		`sipguard_dropped_bytes_total 99999`,
		`sipguard_dropped_lines_total{parser="asterisk",reason="injected",source="pbx"} 0`,
		`sipguard_dropped_lines_total{parser="asterisk",reason="malformed",source="pbx"} 1`,
		`sipguard_dropped_packets_total 1234`,
		`sipguard_engine_evictions_total 4`,
		`sipguard_events_total{kind="auth_failed",parser="asterisk",source="pbx"} 5`,
		`sipguard_events_total{kind="auth_succeeded",parser="asterisk",source="pbx"} 1`,
		`sipguard_events_total{kind="unknown_user",parser="asterisk",source="pbx"} 2`,
		`sipguard_feed_entries{feed="drop"} 1000`,
		`sipguard_feed_entries{feed="edrop"} 0`,
		`sipguard_feed_failures_total{feed="drop"} 3`,
		`sipguard_feed_failures_total{feed="edrop"} 0`,
		`sipguard_firewall_bans 3`,
		`sipguard_firewall_errors_total 2`,
		`sipguard_fraud_alerts_total{rule="intl"} 1`,
		`sipguard_lines_total{parser="asterisk",source="cdr"} 0`,
		`sipguard_lines_total{parser="asterisk",source="pbx"} 100`,
		`sipguard_lines_total{parser="freepbx",source="gui\"x\\y\nz"} 0`,
		`sipguard_lines_total{parser="p q",source="a,b=c}"} 9.007199254740992e+15`,
		`sipguard_notifications_total{kind="command",result="dropped",target="zé\\"} 0`,
		`sipguard_notifications_total{kind="command",result="failed",target="zé\\"} 0`,
		`sipguard_notifications_total{kind="command",result="sent",target="zé\\"} 0`,
		`sipguard_notifications_total{kind="webhook",result="dropped",target="ops"} 2`,
		`sipguard_notifications_total{kind="webhook",result="failed",target="ops"} 1`,
		`sipguard_notifications_total{kind="webhook",result="sent",target="ops"} 7`,
		`sipguard_policy_dropped_packets_total 5`,
		`sipguard_source_up{source="a,b=c}"} 1`,
		`sipguard_source_up{source="cdr"} 0`,
		`sipguard_source_up{source="gui\"x\\y\nz"} 0`,
		`sipguard_source_up{source="pbx"} 1`,
		`sipguard_source_waiting{source="a,b=c}"} 0`,
		`sipguard_source_waiting{source="cdr"} 1`,
		`sipguard_source_waiting{source="gui\"x\\y\nz"} 1`,
		`sipguard_source_waiting{source="pbx"} 0`,
		`sipguard_tracked_addresses 9`,
		`sipguard_unbans_total{reason="expired",rule="burst"} 1`,
		`sipguard_unbans_total{reason="feed",rule="a\"b"} 1`,
		`sipguard_unbans_total{reason="manual",rule="burst"} 1`,
		`sipguard_up 1`,
		`sipguard_uptime_seconds 42.5`,
		`sipguard_wire_copied_packets_total 31`,
	}
	compareSeries(t, got.series, want)
}

// compareSeries reports the series missing from got and those in excess.
func compareSeries(t *testing.T, got, want []string) {
	t.Helper()
	slices.Sort(want)
	for _, s := range want {
		if _, found := slices.BinarySearch(got, s); !found {
			t.Errorf("missing %s", s)
		}
	}
	for _, s := range got {
		if _, found := slices.BinarySearch(want, s); !found {
			t.Errorf("unexpected %s", s)
		}
	}
}

// hostile are label values an attacker may have a hand in (source, feed,
// notify target and node names, rules): each must stay one label value on
// one line.
var hostile = []string{
	`a"b`, `a\b`, "a\nb", "a\r\nb", `\`, `"`, "\n", `\n`, `\"`, `a\`,
	`x"} 1` + "\n" + `sipguard_up 0`, "# HELP sipguard_up no", "a,b=\"c\"}",
	"zé ☃", "\x00", "bad \xff utf-8 \xc3", "",
}

// TestScrape_HostileLabels: whatever a label value holds, Prometheus'
// parser reads the scrape back with that value (invalid UTF-8 replaced:
// Prometheus would refuse the whole scrape), and no value adds a line.
func TestScrape_HostileLabels(t *testing.T) {
	st := control.Status{}
	for _, v := range hostile {
		st.Sources = append(st.Sources, control.SourceStatus{Name: v, Parser: v})
		st.Feeds = append(st.Feeds, control.FeedStatus{Name: v})
	}
	m := New(func(context.Context) (control.Status, error) { return st, nil }, "\n")
	var want []string
	for _, v := range hostile {
		m.DropSurge(v)
		m.Unban(v, v)
		q := strconv.Quote(strings.ToValidUTF8(v, "\uFFFD"))
		want = append(want,
			`sipguard_drop_surges_total{source=`+q+`} 1`,
			`sipguard_unbans_total{reason=`+q+`,rule=`+q+`} 1`,
			`sipguard_lines_total{parser=`+q+`,source=`+q+`} 0`,
			`sipguard_source_up{source=`+q+`} 0`,
			`sipguard_source_waiting{source=`+q+`} 0`,
			`sipguard_feed_entries{feed=`+q+`} 0`,
			`sipguard_feed_failures_total{feed=`+q+`} 0`)
	}
	want = append(want, `sipguard_build_info{version="\n"} 1`, "sipguard_up 1", "sipguard_uptime_seconds 0",
		"sipguard_bans_in_force 0", "sipguard_firewall_bans 0", "sipguard_tracked_addresses 0", "sipguard_engine_evictions_total 0",
		"sipguard_firewall_errors_total 0", "sipguard_dropped_packets_total 0", "sipguard_dropped_bytes_total 0",
		"sipguard_allowed_packets_total 0", "sipguard_wire_copied_packets_total 0", "sipguard_policy_dropped_packets_total 0",
		"sipguard_bans_narrowed_total 0")
	for _, b := range exponentialBuckets(0.0001, 2, 16) {
		want = append(want, `sipguard_ban_latency_seconds_bucket{le="`+strconv.FormatFloat(b, 'g', -1, 64)+`"} 0`)
	}
	want = append(want, `sipguard_ban_latency_seconds_bucket{le="+Inf"} 0`, "sipguard_ban_latency_seconds_sum 0", "sipguard_ban_latency_seconds_count 0")
	text := scrape(t, m)
	got := parse(t, text)
	compareSeries(t, got.series, want)
	// One line per series, and a HELP and a TYPE per family.
	if lines, n := strings.Count(text, "\n"), len(want)+2*len(got.types); lines != n {
		t.Errorf("%d lines for %d series and %d families:\n%s", lines, len(want), len(got.types), text)
	}
	if !utf8.ValidString(text) {
		t.Errorf("not UTF-8:\n%q", text)
	}
}

// FuzzLabelValue: any label value comes back as Prometheus' parser reads
// it, on its own line.
func FuzzLabelValue(f *testing.F) {
	for _, v := range hostile {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		m := New(func(context.Context) (control.Status, error) {
			return control.Status{Feeds: []control.FeedStatus{{Name: v, Enforced: 7}}}, nil
		}, v)
		m.Compromise(v)
		var b strings.Builder
		if err := m.gather().write(&b); err != nil {
			t.Fatal(err)
		}
		got := parse(t, b.String())
		q := strconv.Quote(strings.ToValidUTF8(v, "\uFFFD"))
		for _, want := range []string{`sipguard_feed_entries{feed=` + q + `} 7`, `sipguard_compromises_total{source=` + q + `} 1`, `sipguard_build_info{version=` + q + `} 1`} {
			if _, found := slices.BinarySearch(got.series, want); !found {
				t.Errorf("no %s in %q", want, got.series)
			}
		}
		if lines, n := strings.Count(b.String(), "\n"), len(got.series)+2*len(got.types); lines != n {
			t.Errorf("%q: %d lines for %d series and %d families", v, lines, len(got.series), len(got.types))
		}
	})
}

// TestScrape_Down: a daemon that does not answer leaves its version and
// sipguard_up 0, and what was counted as it happened.
func TestScrape_Down(t *testing.T) {
	m := New(func(context.Context) (control.Status, error) { return control.Status{}, context.DeadlineExceeded }, "v")
	m.Fraud("intl")
	got := parse(t, scrape(t, m))
	if want := []string{"sipguard_ban_latency_seconds", "sipguard_build_info", "sipguard_fraud_alerts_total", "sipguard_up"}; !slices.Equal(slices.Sorted(maps.Keys(got.types)), want) {
		t.Errorf("families %v, want %v", got.types, want)
	}
}

// TestHandler_Headers: the text format's Content-Type whatever was asked
// (Prometheus takes it), and no compression even when offered: a few
// kilobytes on a scrape every 15 s are not worth the daemon's CPU.
func TestHandler_Headers(t *testing.T) {
	m := New(func(context.Context) (control.Status, error) { return control.Status{}, nil }, "v")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, accept := range []string{"", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
		"application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"} {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Accept-Encoding", "gzip, zstd") // set by hand: the client does not decompress
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if ct, ce := res.Header.Get("Content-Type"), res.Header.Get("Content-Encoding"); ct != "text/plain; version=0.0.4; charset=utf-8" || ce != "" {
			t.Errorf("Accept %q: Content-Type %q, Content-Encoding %q", accept, ct, ce)
		}
		if !strings.HasPrefix(string(body), "# HELP ") {
			t.Errorf("Accept %q: %q", accept, body)
		}
	}
}

// TestCount_NoAlloc: counting a ban, an unban or a latency allocates
// nothing once the series exists: they are on the ban path.
func TestCount_NoAlloc(t *testing.T) {
	m := New(func(context.Context) (control.Status, error) { return control.Status{}, nil }, "v")
	m.Ban("burst", time.Millisecond)
	m.Unban("burst", "expired")
	if n := testing.AllocsPerRun(100, func() {
		m.Ban("burst", time.Millisecond)
		m.Unban("burst", "expired")
	}); n != 0 {
		t.Errorf("%v allocations per ban and unban", n)
	}
}
