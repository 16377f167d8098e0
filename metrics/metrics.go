// Package metrics exposes sipguard's counters to Prometheus, on an opt-in
// HTTP listener ([metrics] listen in rules.toml).
//
// Most values are read from the daemon's status when Prometheus scrapes
// (lines, events, drops, bans in force, tracked addresses, the firewall's
// packet and byte counters), so the hot path pays nothing for them. What a
// status cannot tell afterwards is pushed as it happens: bans and unbans
// by rule and reason, compromises, and the ban latency histogram.
//
// The listener is open to whoever can connect, so scrapes must never
// delay banning: the status is read at most once per StatusMaxAge (the
// scrapes meanwhile, however many, share it), and scrapes are answered
// one at a time, at most one per ScrapeGap.
//
// Metric names are a contract (contrib/grafana uses them):
//
//	sipguard_up                                     1 while the daemon answers
//	sipguard_build_info{version}                    1
//	sipguard_lines_total{source,parser}             lines read
//	sipguard_events_total{source,parser,kind}       events, by kind (auth_succeeded included)
//	sipguard_dropped_lines_total{source,parser,reason}
//	sipguard_bans_total{rule}                       bans decided (rules, "manual", "compromise", "feed:NAME")
//	sipguard_unbans_total{rule,reason}              reason: expired, manual, replaced, feed, allowlisted
//	sipguard_compromises_total{source}              successful logins after failures
//	sipguard_fraud_alerts_total{rule}               toll-fraud rules that fired
//	sipguard_calls_total{destination}               calls to public numbers the [fraud] rules saw
//	sipguard_drop_surges_total{source}              surges of lines dropped as malformed or injected
//	sipguard_bans_in_force                          bans the daemon holds now
//	sipguard_bans_by_country{country}               bans in force by ISO country code ("unknown"); with a [geoip] database only
//	sipguard_firewall_bans                          elements in the kernel sets
//	sipguard_tracked_addresses                      addresses with counters in the rate engine
//	sipguard_engine_evictions_total                 addresses forgotten to stay within max_tracked
//	sipguard_firewall_errors_total                  ban or unban calls the firewall refused
//	sipguard_dropped_packets_total                  packets dropped by the ban rule (nftables counter)
//	sipguard_dropped_bytes_total
//	sipguard_allowed_packets_total                  packets of allowlisted sources let through ahead of the bans
//	sipguard_wire_copied_packets_total              SIP responses the wire sensor's rules copied to its NFLOG group ([wire]; the source "wire" counts those read)
//	sipguard_policy_dropped_packets_total           packets to the SIP ports dropped by [policy] strict or responsive
//	sipguard_bans_narrowed_total                    IPv6 bans narrowed to the address: its network holds an allowlisted one
//	sipguard_ban_latency_seconds                    histogram: line received to ban in the kernel
//	sipguard_uptime_seconds
//	sipguard_source_up{source}                      1 while a source is read (its file open, its syslog listener up)
//	sipguard_source_waiting{source}                 1 while a source's file is missing or it failed
//	sipguard_notifications_total{target,kind,result} result: sent, failed, dropped
//	sipguard_feed_entries{feed}                     entries of a blocklist feed in the firewall
//	sipguard_feed_failures_total{feed}              failed loads (the last good list stays)
//	sipguard_cluster_connected                      1 while connected to the cluster's NATS server
//	sipguard_cluster_published_total                this node's bans and unbans in the stream
//	sipguard_cluster_queued                         waiting for the server
//	sipguard_cluster_lost_total{reason}             not published: queue_full, refused, expired
//	sipguard_cluster_received_total                 other nodes' messages
//	sipguard_cluster_applied_total                  of those, enforced
//	sipguard_cluster_ignored_total{reason}          own, allowlisted, known, unbanned, expired, ...
//	sipguard_cluster_bad_messages_total{reason}     malformed, oversize
//	sipguard_cluster_stream_ok                      1 while the stream is there and as expected
//	sipguard_cluster_publish_retries_total          this node's messages the server could not store at once
//	sipguard_cluster_clock_skew_seconds{node}       this node's clock ("" ) and others' beyond 30 s, minus the server's
//
// Other nodes' bans count in sipguard_bans_total and sipguard_unbans_total
// under rule="cluster".
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipguard/sipguard/control"
)

// StatusFunc returns the daemon's status.
type StatusFunc func(context.Context) (control.Status, error)

// Metrics holds sipguard's metrics.
type Metrics struct {
	reg         *prometheus.Registry
	bans        *prometheus.CounterVec
	unbans      *prometheus.CounterVec
	compromises *prometheus.CounterVec
	fraud       *prometheus.CounterVec
	surges      *prometheus.CounterVec
	latency     prometheus.Histogram
}

// New returns the metrics of a daemon whose status is read through status
// on each scrape; extra collectors (notifications, feeds) are added as
// they are.
func New(status StatusFunc, version string, extra ...prometheus.Collector) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipguard_bans_total", Help: "Bans decided, by rule (\"manual\" for sipguard ban).",
		}, []string{"rule"}),
		unbans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipguard_unbans_total", Help: "Bans lifted, by rule and reason (expired, manual, replaced, feed).",
		}, []string{"rule", "reason"}),
		compromises: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipguard_compromises_total", Help: "Successful logins from addresses that had just failed: guessed passwords?",
		}, []string{"source"}),
		surges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipguard_drop_surges_total", Help: "Surges of a log source's lines dropped as malformed or injected: someone writing into the log on purpose.",
		}, []string{"source"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sipguard_ban_latency_seconds",
			Help: "Time from receiving the log line that completes a rule to the ban being in the firewall.",
			// 100 µs to ~3 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.fraud = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipguard_fraud_alerts_total", Help: "Toll-fraud alerts, by the [fraud] rule that fired.",
	}, []string{"rule"})
	m.reg.MustRegister(m.bans, m.unbans, m.compromises, m.fraud, m.surges, m.latency, &statusCollector{status: status, version: version})
	for _, c := range extra {
		m.reg.MustRegister(c)
	}
	return m
}

// Ban counts a ban; latency is zero for bans not decided on a log line.
func (m *Metrics) Ban(rule string, latency time.Duration) {
	m.bans.WithLabelValues(rule).Inc()
	if latency > 0 {
		m.latency.Observe(latency.Seconds())
	}
}

// Unban counts a ban lifted.
func (m *Metrics) Unban(rule, reason string) { m.unbans.WithLabelValues(rule, reason).Inc() }

// Compromise counts a successful login after failures.
func (m *Metrics) Compromise(source string) { m.compromises.WithLabelValues(source).Inc() }

// Fraud counts a toll-fraud alert of rule.
func (m *Metrics) Fraud(rule string) { m.fraud.WithLabelValues(rule).Inc() }

// DropSurge counts a surge of a source's lines dropped as malformed or
// injected.
func (m *Metrics) DropSurge(source string) { m.surges.WithLabelValues(source).Inc() }

// Handler serves the metrics in Prometheus' exposition formats.
// Scrapes are answered one at a time, at most one per ScrapeGap, the
// others waiting their turn: scrapers in a loop, however many, take
// little of the daemon's CPU.
func (m *Metrics) Handler() http.Handler {
	return paced(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second}), ScrapeGap)
}

// ScrapeGap is the least time between the starts of two scrapes: at most
// 100 a second (Prometheus scrapes every 15 s or so).
const ScrapeGap = 10 * time.Millisecond

// paced serves one request at a time, starting at most one per gap; the
// others wait, until their client goes away.
func paced(h http.Handler, gap time.Duration) http.Handler {
	turn := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case turn <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		start := time.Now()
		defer func() { time.AfterFunc(gap-time.Since(start), func() { <-turn }) }()
		h.ServeHTTP(w, r)
	})
}

// Listen opens the metrics listener: done before the daemon starts, so a
// bad or busy address is an error at start, not a log line later.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return l, nil
}

// Serve answers GET /metrics on l until ctx is done.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "sipguard: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// StatusMaxAge is how old the status a scrape reports may be.
const StatusMaxAge = time.Second

// statusCollector turns a status into metrics at scrape time.
type statusCollector struct {
	status  StatusFunc
	version string

	mu   sync.Mutex // held while the status is read: scrapes at once share a read
	at   time.Time  // when last read
	last control.Status
	err  error
}

// read returns the status, read anew when the last one is StatusMaxAge
// old.
func (c *statusCollector) read() (control.Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= StatusMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.last, c.err = c.status(ctx)
		c.at = time.Now()
	}
	return c.last, c.err
}

var (
	descUp         = prometheus.NewDesc("sipguard_up", "1 when the daemon answered the scrape.", nil, nil)
	descBuild      = prometheus.NewDesc("sipguard_build_info", "sipguard's version.", []string{"version"}, nil)
	descUptime     = prometheus.NewDesc("sipguard_uptime_seconds", "Seconds since the daemon started.", nil, nil)
	descLines      = prometheus.NewDesc("sipguard_lines_total", "Log lines read, by source.", []string{"source", "parser"}, nil)
	descEvents     = prometheus.NewDesc("sipguard_events_total", "Events parsed, by source and kind.", []string{"source", "parser", "kind"}, nil)
	descDropped    = prometheus.NewDesc("sipguard_dropped_lines_total", "Lines skipped as unreadable or unsafe, by reason.", []string{"source", "parser", "reason"}, nil)
	descCalls      = prometheus.NewDesc("sipguard_calls_total", "Calls to public numbers the toll-fraud rules saw, by destination: an ISO country code, \"non_geographic\" (satellite, international networks) or \"national\".", []string{"destination"}, nil)
	descInForce    = prometheus.NewDesc("sipguard_bans_in_force", "Bans the daemon holds now.", nil, nil)
	descByCountry  = prometheus.NewDesc("sipguard_bans_by_country", "Bans in force by the ISO code of their address's country (\"unknown\" when the database does not know it); only with a [geoip] database.", []string{"country"}, nil)
	descFwBans     = prometheus.NewDesc("sipguard_firewall_bans", "Elements in the firewall's ban sets.", nil, nil)
	descTracked    = prometheus.NewDesc("sipguard_tracked_addresses", "Addresses with counters in the rate engine.", nil, nil)
	descEvicted    = prometheus.NewDesc("sipguard_engine_evictions_total", "Addresses forgotten to stay within max_tracked.", nil, nil)
	descFwErrors   = prometheus.NewDesc("sipguard_firewall_errors_total", "Ban or unban calls the firewall refused.", nil, nil)
	descPackets    = prometheus.NewDesc("sipguard_dropped_packets_total", "Packets dropped from banned sources.", nil, nil)
	descBytes      = prometheus.NewDesc("sipguard_dropped_bytes_total", "Bytes dropped from banned sources.", nil, nil)
	descAllowedPk  = prometheus.NewDesc("sipguard_allowed_packets_total", "Packets of allowlisted sources let through ahead of the bans.", nil, nil)
	descWireCopied = prometheus.NewDesc("sipguard_wire_copied_packets_total", "SIP responses the wire sensor's rules copied to its NFLOG group (source \"wire\" counts those read).", nil, nil)
	descPolicyPk   = prometheus.NewDesc("sipguard_policy_dropped_packets_total", "Packets to the SIP ports dropped by the access policy (strict, responsive).", nil, nil)
	descNarrowed   = prometheus.NewDesc("sipguard_bans_narrowed_total", "IPv6 bans narrowed to the address: its network holds an allowlisted address.", nil, nil)
	descSourceUp   = prometheus.NewDesc("sipguard_source_up", "1 while a source is read; 0 while its file is missing or unreadable, or its syslog listener failed.", []string{"source"}, nil)
	descSourceDown = prometheus.NewDesc("sipguard_source_waiting", "1 when a source's file does not exist (yet) or it stopped with an error.", []string{"source"}, nil)
	descNotify     = prometheus.NewDesc("sipguard_notifications_total", "Notifications by target and result (sent, failed, dropped).", []string{"target", "kind", "result"}, nil)
	descFeed       = prometheus.NewDesc("sipguard_feed_entries", "Entries of a blocklist feed in the firewall.", []string{"feed"}, nil)
	descFeedFail   = prometheus.NewDesc("sipguard_feed_failures_total", "Failed loads of a blocklist feed (its last good list stays).", []string{"feed"}, nil)
	descClConn     = prometheus.NewDesc("sipguard_cluster_connected", "1 while connected to the cluster's NATS server.", nil, nil)
	descClPub      = prometheus.NewDesc("sipguard_cluster_published_total", "This node's bans and cluster unbans stored in the cluster's stream.", nil, nil)
	descClQueued   = prometheus.NewDesc("sipguard_cluster_queued", "Messages to the cluster waiting for the server.", nil, nil)
	descClLost     = prometheus.NewDesc("sipguard_cluster_lost_total", "Messages to the cluster never published, by reason (queue_full, refused, expired).", []string{"reason"}, nil)
	descClRecv     = prometheus.NewDesc("sipguard_cluster_received_total", "Messages of other nodes read from the cluster's stream.", nil, nil)
	descClApplied  = prometheus.NewDesc("sipguard_cluster_applied_total", "Other nodes' bans and unbans enforced here.", nil, nil)
	descClIgnored  = prometheus.NewDesc("sipguard_cluster_ignored_total", "Cluster messages not enforced here, by reason.", []string{"reason"}, nil)
	descClBad      = prometheus.NewDesc("sipguard_cluster_bad_messages_total", "Cluster messages dropped as malformed or oversize.", []string{"reason"}, nil)
	descClStream   = prometheus.NewDesc("sipguard_cluster_stream_ok", "1 while the cluster's stream is there and as sipguard expects; 0: neither shared nor received.", nil, nil)
	descClRetries  = prometheus.NewDesc("sipguard_cluster_publish_retries_total", "This node's messages the server could not store at once (storage full, stream away), tried again.", nil, nil)
	descClSkew     = prometheus.NewDesc("sipguard_cluster_clock_skew_seconds", "A node's clock minus the NATS server's: this node's (node=\"\"), and other nodes' beyond 30 s.", []string{"node"}, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descBuild, descUptime, descLines, descEvents, descDropped, descInForce, descByCountry,
		descFwBans, descTracked, descEvicted, descFwErrors, descPackets, descBytes, descAllowedPk, descWireCopied, descPolicyPk, descNarrowed, descSourceUp, descSourceDown, descNotify, descFeed, descFeedFail,
		descClConn, descClPub, descClQueued, descClLost, descClRecv, descClApplied, descClIgnored, descClBad,
		descClStream, descClRetries, descClSkew, descCalls} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, c.version)
	st, err := c.read()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descUptime, prometheus.GaugeValue, st.UptimeSeconds)
	for _, s := range st.Sources {
		ch <- prometheus.MustNewConstMetric(descLines, prometheus.CounterValue, float64(s.Lines), s.Name, s.Parser)
		for kind, n := range s.EventsBy {
			ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(n), s.Name, s.Parser, kind)
		}
		for reason, n := range s.DropBy {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), s.Name, s.Parser, reason)
		}
		down, up := 0.0, 0.0
		if s.Waiting || s.Error != "" {
			down = 1
		}
		if s.State == control.SourceReading {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSourceDown, prometheus.GaugeValue, down, s.Name)
		ch <- prometheus.MustNewConstMetric(descSourceUp, prometheus.GaugeValue, up, s.Name)
	}
	if f := st.Fraud; f != nil {
		for dest, n := range f.Calls {
			ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(n), dest)
		}
	}
	ch <- prometheus.MustNewConstMetric(descInForce, prometheus.GaugeValue, float64(st.Bans))
	for country, n := range st.BansByCountry {
		ch <- prometheus.MustNewConstMetric(descByCountry, prometheus.GaugeValue, float64(n), country)
	}
	ch <- prometheus.MustNewConstMetric(descFwBans, prometheus.GaugeValue, float64(st.Firewall.Bans))
	ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(st.Engine.Tracked))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(st.Engine.Evicted))
	ch <- prometheus.MustNewConstMetric(descFwErrors, prometheus.CounterValue, float64(st.Firewall.Errors))
	ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(st.Firewall.Packets))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.Firewall.Bytes))
	ch <- prometheus.MustNewConstMetric(descAllowedPk, prometheus.CounterValue, float64(st.Firewall.Allowed))
	ch <- prometheus.MustNewConstMetric(descWireCopied, prometheus.CounterValue, float64(st.Firewall.WireCopied))
	ch <- prometheus.MustNewConstMetric(descPolicyPk, prometheus.CounterValue, float64(st.Firewall.PolicyDropped))
	ch <- prometheus.MustNewConstMetric(descNarrowed, prometheus.CounterValue, float64(st.Engine.Narrowed))
	for _, n := range st.Notify {
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Sent), n.Name, n.Kind, "sent")
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Failed), n.Name, n.Kind, "failed")
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Dropped), n.Name, n.Kind, "dropped")
	}
	for _, f := range st.Feeds {
		ch <- prometheus.MustNewConstMetric(descFeed, prometheus.GaugeValue, float64(f.Enforced), f.Name)
		ch <- prometheus.MustNewConstMetric(descFeedFail, prometheus.CounterValue, float64(f.Failures), f.Name)
	}
	if c := st.Cluster; c != nil {
		conn := 0.0
		if c.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(descClConn, prometheus.GaugeValue, conn)
		ch <- prometheus.MustNewConstMetric(descClPub, prometheus.CounterValue, float64(c.Published))
		ch <- prometheus.MustNewConstMetric(descClQueued, prometheus.GaugeValue, float64(c.Queued))
		ch <- prometheus.MustNewConstMetric(descClLost, prometheus.CounterValue, float64(c.QueueDropped), "queue_full")
		ch <- prometheus.MustNewConstMetric(descClLost, prometheus.CounterValue, float64(c.PublishErrors), "refused")
		ch <- prometheus.MustNewConstMetric(descClLost, prometheus.CounterValue, float64(c.Expired), "expired")
		ch <- prometheus.MustNewConstMetric(descClRecv, prometheus.CounterValue, float64(c.Received))
		ch <- prometheus.MustNewConstMetric(descClApplied, prometheus.CounterValue, float64(c.Applied))
		for reason, n := range c.Ignored {
			ch <- prometheus.MustNewConstMetric(descClIgnored, prometheus.CounterValue, float64(n), reason)
		}
		ch <- prometheus.MustNewConstMetric(descClBad, prometheus.CounterValue, float64(c.Malformed), "malformed")
		ch <- prometheus.MustNewConstMetric(descClBad, prometheus.CounterValue, float64(c.Oversize), "oversize")
		streamOK := 0.0
		if c.Connected && c.StreamError == "" {
			streamOK = 1
		}
		ch <- prometheus.MustNewConstMetric(descClStream, prometheus.GaugeValue, streamOK)
		ch <- prometheus.MustNewConstMetric(descClRetries, prometheus.CounterValue, float64(c.PublishRetries))
		if !c.ClockChecked.IsZero() {
			ch <- prometheus.MustNewConstMetric(descClSkew, prometheus.GaugeValue, c.ClockSkew, "")
		}
		for node, skew := range c.PeerSkews {
			ch <- prometheus.MustNewConstMetric(descClSkew, prometheus.GaugeValue, skew, node)
		}
	}
}
