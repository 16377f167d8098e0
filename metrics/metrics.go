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

	"github.com/sipguard/sipguard/control"
)

// StatusFunc returns the daemon's status.
type StatusFunc func(context.Context) (control.Status, error)

// Metrics holds sipguard's metrics.
type Metrics struct {
	bans        *counterVec
	unbans      *counterVec
	compromises *counterVec
	fraud       *counterVec
	surges      *counterVec
	latency     *histogram
	status      *statusCollector

	testPart func(*snapshot) // a test's part of each scrape
}

// New returns the metrics of a daemon whose status is read through status
// on each scrape.
func New(status StatusFunc, version string) *Metrics {
	return &Metrics{
		bans:        newCounterVec("sipguard_bans_total", "Bans decided, by rule (\"manual\" for sipguard ban).", "rule"),
		unbans:      newCounterVec("sipguard_unbans_total", "Bans lifted, by rule and reason (expired, manual, replaced, feed).", "rule", "reason"),
		compromises: newCounterVec("sipguard_compromises_total", "Successful logins from addresses that had just failed: guessed passwords?", "source"),
		fraud:       newCounterVec("sipguard_fraud_alerts_total", "Toll-fraud alerts, by the [fraud] rule that fired.", "rule"),
		surges:      newCounterVec("sipguard_drop_surges_total", "Surges of a log source's lines dropped as malformed or injected: someone writing into the log on purpose.", "source"),
		latency: newHistogram("sipguard_ban_latency_seconds",
			"Time from receiving the log line that completes a rule to the ban being in the firewall.",
			exponentialBuckets(0.0001, 2, 16)), // 100 µs to ~3 s
		status: &statusCollector{status: status, version: version},
	}
}

// Ban counts a ban; latency is zero for bans not decided on a log line.
func (m *Metrics) Ban(rule string, latency time.Duration) {
	m.bans.inc(rule)
	if latency > 0 {
		m.latency.observe(latency.Seconds())
	}
}

// Unban counts a ban lifted.
func (m *Metrics) Unban(rule, reason string) { m.unbans.inc(rule, reason) }

// Compromise counts a successful login after failures.
func (m *Metrics) Compromise(source string) { m.compromises.inc(source) }

// Fraud counts a toll-fraud alert of rule.
func (m *Metrics) Fraud(rule string) { m.fraud.inc(rule) }

// DropSurge counts a surge of a source's lines dropped as malformed or
// injected.
func (m *Metrics) DropSurge(source string) { m.surges.inc(source) }

// Handler serves the metrics in Prometheus' text format. Scrapes are
// answered one at a time, at most one per ScrapeGap, the others waiting
// their turn: scrapers in a loop, however many, take little of the
// daemon's CPU. A scrape that takes longer than ScrapeTimeout is answered
// 503 (as promhttp's Timeout did). The text is not compressed: a few
// kilobytes, scraped every 15 s or so, are not worth gzip's CPU (promhttp
// compressed when asked; Prometheus does not need it).
func (m *Metrics) Handler() http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		m.gather().write(w) // an error: the scraper went away
	})
	return paced(http.TimeoutHandler(h, ScrapeTimeout, fmt.Sprintf("Exceeded configured timeout of %v.\n", ScrapeTimeout)), ScrapeGap)
}

// ScrapeTimeout bounds a scrape.
const ScrapeTimeout = 10 * time.Second

// gather collects a scrape's values. Its parts do not fail one another: a
// status that cannot be read is sipguard_up 0 beside the other values.
func (m *Metrics) gather() *snapshot {
	s := newSnapshot()
	for _, c := range []*counterVec{m.bans, m.unbans, m.compromises, m.fraud, m.surges} {
		c.collect(s)
	}
	m.latency.collect(s)
	m.status.collect(s)
	if m.testPart != nil {
		m.testPart(s)
	}
	return s
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
	descUp         = &desc{"sipguard_up", "1 when the daemon answered the scrape.", "gauge", nil}
	descBuild      = &desc{"sipguard_build_info", "sipguard's version.", "gauge", []string{"version"}}
	descUptime     = &desc{"sipguard_uptime_seconds", "Seconds since the daemon started.", "gauge", nil}
	descLines      = &desc{"sipguard_lines_total", "Log lines read, by source.", "counter", []string{"source", "parser"}}
	descEvents     = &desc{"sipguard_events_total", "Events parsed, by source and kind.", "counter", []string{"source", "parser", "kind"}}
	descDropped    = &desc{"sipguard_dropped_lines_total", "Lines skipped as unreadable or unsafe, by reason.", "counter", []string{"source", "parser", "reason"}}
	descCalls      = &desc{"sipguard_calls_total", "Calls to public numbers the toll-fraud rules saw, by destination: an ISO country code, \"non_geographic\" (satellite, international networks) or \"national\".", "counter", []string{"destination"}}
	descInForce    = &desc{"sipguard_bans_in_force", "Bans the daemon holds now.", "gauge", nil}
	descByCountry  = &desc{"sipguard_bans_by_country", "Bans in force by the ISO code of their address's country (\"unknown\" when the database does not know it); only with a [geoip] database.", "gauge", []string{"country"}}
	descFwBans     = &desc{"sipguard_firewall_bans", "Elements in the firewall's ban sets.", "gauge", nil}
	descTracked    = &desc{"sipguard_tracked_addresses", "Addresses with counters in the rate engine.", "gauge", nil}
	descEvicted    = &desc{"sipguard_engine_evictions_total", "Addresses forgotten to stay within max_tracked.", "counter", nil}
	descFwErrors   = &desc{"sipguard_firewall_errors_total", "Ban or unban calls the firewall refused.", "counter", nil}
	descPackets    = &desc{"sipguard_dropped_packets_total", "Packets dropped from banned sources.", "counter", nil}
	descBytes      = &desc{"sipguard_dropped_bytes_total", "Bytes dropped from banned sources.", "counter", nil}
	descAllowedPk  = &desc{"sipguard_allowed_packets_total", "Packets of allowlisted sources let through ahead of the bans.", "counter", nil}
	descWireCopied = &desc{"sipguard_wire_copied_packets_total", "SIP responses the wire sensor's rules copied to its NFLOG group (source \"wire\" counts those read).", "counter", nil}
	descPolicyPk   = &desc{"sipguard_policy_dropped_packets_total", "Packets to the SIP ports dropped by the access policy (strict, responsive).", "counter", nil}
	descNarrowed   = &desc{"sipguard_bans_narrowed_total", "IPv6 bans narrowed to the address: its network holds an allowlisted address.", "counter", nil}
	descSourceUp   = &desc{"sipguard_source_up", "1 while a source is read; 0 while its file is missing or unreadable, or its syslog listener failed.", "gauge", []string{"source"}}
	descSourceDown = &desc{"sipguard_source_waiting", "1 when a source's file does not exist (yet) or it stopped with an error.", "gauge", []string{"source"}}
	descNotify     = &desc{"sipguard_notifications_total", "Notifications by target and result (sent, failed, dropped).", "counter", []string{"target", "kind", "result"}}
	descFeed       = &desc{"sipguard_feed_entries", "Entries of a blocklist feed in the firewall.", "gauge", []string{"feed"}}
	descFeedFail   = &desc{"sipguard_feed_failures_total", "Failed loads of a blocklist feed (its last good list stays).", "counter", []string{"feed"}}
	descClConn     = &desc{"sipguard_cluster_connected", "1 while connected to the cluster's NATS server.", "gauge", nil}
	descClPub      = &desc{"sipguard_cluster_published_total", "This node's bans and cluster unbans stored in the cluster's stream.", "counter", nil}
	descClQueued   = &desc{"sipguard_cluster_queued", "Messages to the cluster waiting for the server.", "gauge", nil}
	descClLost     = &desc{"sipguard_cluster_lost_total", "Messages to the cluster never published, by reason (queue_full, refused, expired).", "counter", []string{"reason"}}
	descClRecv     = &desc{"sipguard_cluster_received_total", "Messages of other nodes read from the cluster's stream.", "counter", nil}
	descClApplied  = &desc{"sipguard_cluster_applied_total", "Other nodes' bans and unbans enforced here.", "counter", nil}
	descClIgnored  = &desc{"sipguard_cluster_ignored_total", "Cluster messages not enforced here, by reason.", "counter", []string{"reason"}}
	descClBad      = &desc{"sipguard_cluster_bad_messages_total", "Cluster messages dropped as malformed or oversize.", "counter", []string{"reason"}}
	descClStream   = &desc{"sipguard_cluster_stream_ok", "1 while the cluster's stream is there and as sipguard expects; 0: neither shared nor received.", "gauge", nil}
	descClRetries  = &desc{"sipguard_cluster_publish_retries_total", "This node's messages the server could not store at once (storage full, stream away), tried again.", "counter", nil}
	descClSkew     = &desc{"sipguard_cluster_clock_skew_seconds", "A node's clock minus the NATS server's: this node's (node=\"\"), and other nodes' beyond 30 s.", "gauge", []string{"node"}}
)

// collect adds the status's values to s.
func (c *statusCollector) collect(s *snapshot) {
	s.add(descBuild, 1, c.version)
	st, err := c.read()
	if err != nil {
		s.add(descUp, 0)
		return
	}
	s.add(descUp, 1)
	s.add(descUptime, st.UptimeSeconds)
	for _, src := range st.Sources {
		s.add(descLines, float64(src.Lines), src.Name, src.Parser)
		for kind, n := range src.EventsBy {
			s.add(descEvents, float64(n), src.Name, src.Parser, kind)
		}
		for reason, n := range src.DropBy {
			s.add(descDropped, float64(n), src.Name, src.Parser, reason)
		}
		down, up := 0.0, 0.0
		if src.Waiting || src.Error != "" {
			down = 1
		}
		if src.State == control.SourceReading {
			up = 1
		}
		s.add(descSourceDown, down, src.Name)
		s.add(descSourceUp, up, src.Name)
	}
	if f := st.Fraud; f != nil {
		for dest, n := range f.Calls {
			s.add(descCalls, float64(n), dest)
		}
	}
	s.add(descInForce, float64(st.Bans))
	for country, n := range st.BansByCountry {
		s.add(descByCountry, float64(n), country)
	}
	s.add(descFwBans, float64(st.Firewall.Bans))
	s.add(descTracked, float64(st.Engine.Tracked))
	s.add(descEvicted, float64(st.Engine.Evicted))
	s.add(descFwErrors, float64(st.Firewall.Errors))
	s.add(descPackets, float64(st.Firewall.Packets))
	s.add(descBytes, float64(st.Firewall.Bytes))
	s.add(descAllowedPk, float64(st.Firewall.Allowed))
	s.add(descWireCopied, float64(st.Firewall.WireCopied))
	s.add(descPolicyPk, float64(st.Firewall.PolicyDropped))
	s.add(descNarrowed, float64(st.Engine.Narrowed))
	for _, n := range st.Notify {
		s.add(descNotify, float64(n.Sent), n.Name, n.Kind, "sent")
		s.add(descNotify, float64(n.Failed), n.Name, n.Kind, "failed")
		s.add(descNotify, float64(n.Dropped), n.Name, n.Kind, "dropped")
	}
	for _, f := range st.Feeds {
		s.add(descFeed, float64(f.Enforced), f.Name)
		s.add(descFeedFail, float64(f.Failures), f.Name)
	}
	if c := st.Cluster; c != nil {
		conn := 0.0
		if c.Connected {
			conn = 1
		}
		s.add(descClConn, conn)
		s.add(descClPub, float64(c.Published))
		s.add(descClQueued, float64(c.Queued))
		s.add(descClLost, float64(c.QueueDropped), "queue_full")
		s.add(descClLost, float64(c.PublishErrors), "refused")
		s.add(descClLost, float64(c.Expired), "expired")
		s.add(descClRecv, float64(c.Received))
		s.add(descClApplied, float64(c.Applied))
		for reason, n := range c.Ignored {
			s.add(descClIgnored, float64(n), reason)
		}
		s.add(descClBad, float64(c.Malformed), "malformed")
		s.add(descClBad, float64(c.Oversize), "oversize")
		streamOK := 0.0
		if c.Connected && c.StreamError == "" {
			streamOK = 1
		}
		s.add(descClStream, streamOK)
		s.add(descClRetries, float64(c.PublishRetries))
		if !c.ClockChecked.IsZero() {
			s.add(descClSkew, c.ClockSkew, "")
		}
		for node, skew := range c.PeerSkews {
			s.add(descClSkew, skew, node)
		}
	}
}
