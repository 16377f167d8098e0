package cluster

import (
	"testing"
	"time"
)

// BenchmarkCluster: one node publishes bans, simulated nodes (100, or
// -cluster.nodes; each its own connection and ordered consumer, as real
// nodes) receive them, through a real NATS server on loopback. It
// measures how long the fleet takes to catch up when it starts, what it
// costs the server while idle (the stream checks every 5 s, pull requests
// and heartbeats), then two shapes: 10,000 bans at once (-cluster.burst:
// a distributed attack), and one ban at a time (the usual case). It
// reports the propagation latency (publish call to the receiving node's
// Apply) over every delivery, and the rate of messages the broker
// delivered.
//
//	go test -run '^$' -bench Cluster -benchtime 1x ./cluster
//	go test -run '^$' -bench Cluster -benchtime 1x ./cluster -args -cluster.nodes 1500
func BenchmarkCluster(b *testing.B) {
	size, burst := fleetSize(100), *fleetBurst
	const singles = 200
	start := time.Now()
	f := newFleet(b, size, (burst+singles)*(b.N+1))
	eventually(b, 5*time.Minute, "every node caught up", f.caughtUp)
	st := f.serverStats()
	b.Logf("start: %d nodes connected and caught up in %v; the server has %d connections (%d made), %d consumers; RSS %.0f MiB (server and nodes); load %s",
		size, time.Since(start).Round(time.Millisecond), st.connections, st.everConnected, st.consumers, rss(b), loadavg())
	b.ReportMetric(time.Since(start).Seconds(), "start-s")
	api, in, out := f.idleRates(10 * time.Second)
	b.Logf("idle: the server handles %.0f JetStream API requests/s (%.1f per node every 5 s), %.0f messages/s in, %.0f out",
		api, api*5/float64(size+1), in, out)
	b.ReportMetric(api, "idle-api/s")

	b.ResetTimer()
	for range b.N {
		// A burst.
		f.reset()
		published := f.pub.Stats().Published
		start := time.Now()
		f.publish(burst)
		stored := eventually(b, 5*time.Minute, "the stream has every ban", func() bool { return f.pub.Stats().Published == published+int64(burst) })
		eventually(b, 10*time.Minute, "every node has every ban", func() bool { return f.total() == burst*size })
		took := time.Since(start)
		st := f.pub.Stats()
		b.Logf("burst: the publisher had the stream's acks for all %d bans after %v (%d retried, %d refused)",
			burst, stored.Round(time.Millisecond), st.PublishRetries, st.PublishErrors)
		all := f.latencies()
		b.ReportMetric(float64(all[len(all)/2])/1e6, "burst-p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100])/1e6, "burst-p99-ms")
		b.ReportMetric(float64(all[len(all)-1])/1e6, "burst-max-ms")
		b.ReportMetric(float64(len(all))/took.Seconds(), "deliveries/s")
		b.Logf("burst: %d bans to %d nodes: %d deliveries in %v (%.0f/s); latency p50 %v p99 %v max %v; RSS %.0f MiB; load %s",
			burst, size, len(all), took.Round(time.Millisecond), float64(len(all))/took.Seconds(), all[len(all)/2], all[len(all)*99/100], all[len(all)-1], rss(b), loadavg())

		// One at a time.
		f.reset()
		for i := range singles {
			f.publish(1)
			want := (i + 1) * size
			eventually(b, time.Minute, "every node has the ban", func() bool { return f.total() == want })
		}
		all = f.latencies()
		b.ReportMetric(float64(all[len(all)/2])/1e6, "single-p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100])/1e6, "single-p99-ms")
		b.Logf("one at a time: %d bans to %d nodes: latency p50 %v p99 %v max %v", singles, size, all[len(all)/2], all[len(all)*99/100], all[len(all)-1])
	}
}
