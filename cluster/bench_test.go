package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// arrivals is a simulated node: it records when each ban arrives.
type arrivals struct {
	sent []time.Time // when ban i was published, by index (set before publishing)
	mu   sync.Mutex
	lat  []time.Duration
}

func (a *arrivals) Apply(_ context.Context, us []Update) (map[string]int, error) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range us {
		if u.Kind != UpdateBan {
			continue
		}
		b := u.Ban.Target.Addr().As4()
		i := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		a.lat = append(a.lat, now.Sub(a.sent[i]))
	}
	return map[string]int{"applied": len(us)}, nil
}

func (a *arrivals) Own(context.Context) ([]Ban, error) { return nil, nil }

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lat)
}

// BenchmarkCluster: one node publishes bans, 100 simulated nodes (each its
// own connection and consumer, as real nodes) receive them, through a
// real NATS server on loopback. Two shapes: 10,000 bans at once (a
// distributed attack), and one ban at a time (the usual case). It reports
// the propagation latency (publish call to the receiving node's Apply)
// over every delivery, and the rate of messages the broker delivered.
//
//	go test -run '^$' -bench Cluster -benchtime 1x ./cluster
func BenchmarkCluster(b *testing.B) {
	const subscribers = 100
	const burst = 10000
	const singles = 200
	url := newBroker(b).url
	sent := make([]time.Time, burst*(b.N+1)+singles*(b.N+1))
	pub := runNode(b, Config{Servers: []string{url}, Name: "publisher", Queue: DefaultQueue, Share: true, CreateStream: true}, &arrivals{sent: sent})
	subs := make([]*arrivals, subscribers)
	nodes := make([]*Node, subscribers)
	for i := range subs {
		subs[i] = &arrivals{sent: sent}
		nodes[i] = runNode(b, Config{Servers: []string{url}, Name: fmt.Sprintf("node-%d", i), Queue: DefaultQueue, Accept: true}, subs[i])
	}
	eventually(b, time.Minute, "every node caught up", func() bool {
		for _, n := range append(nodes, pub) {
			if !n.Stats().CaughtUp {
				return false
			}
		}
		return true
	})
	ban := func(i int) Ban {
		now := time.Now()
		return Ban{Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			Rule: "burst", Reason: "bench", Since: now, Expires: now.Add(time.Hour), Count: 5}
	}
	total := func() int {
		n := 0
		for _, s := range subs {
			n += s.count()
		}
		return n
	}
	reset := func() {
		for _, s := range subs {
			s.mu.Lock()
			s.lat = s.lat[:0]
			s.mu.Unlock()
		}
	}
	merged := func() []time.Duration {
		var all []time.Duration
		for _, s := range subs {
			s.mu.Lock()
			all = append(all, s.lat...)
			s.mu.Unlock()
		}
		slices.Sort(all)
		return all
	}
	next := 0
	b.ResetTimer()
	for range b.N {
		// A burst.
		reset()
		published := pub.Stats().Published
		start := time.Now()
		for range burst {
			sent[next] = time.Now()
			pub.Publish(ban(next))
			next++
		}
		stored := eventually(b, 5*time.Minute, "the stream has every ban", func() bool { return pub.Stats().Published == published+burst })
		eventually(b, 5*time.Minute, "every node has every ban", func() bool { return total() == burst*subscribers })
		took := time.Since(start)
		st := pub.Stats()
		b.Logf("burst: the publisher had the stream's acks for all %d bans after %v (%d retried, %d refused)",
			burst, stored.Round(time.Millisecond), st.PublishRetries, st.PublishErrors)
		all := merged()
		b.ReportMetric(float64(all[len(all)/2])/1e6, "burst-p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100])/1e6, "burst-p99-ms")
		b.ReportMetric(float64(all[len(all)-1])/1e6, "burst-max-ms")
		b.ReportMetric(float64(len(all))/took.Seconds(), "deliveries/s")
		b.Logf("burst: %d bans to %d nodes: %d deliveries in %v (%.0f/s); latency p50 %v p99 %v max %v",
			burst, subscribers, len(all), took.Round(time.Millisecond), float64(len(all))/took.Seconds(), all[len(all)/2], all[len(all)*99/100], all[len(all)-1])

		// One at a time.
		reset()
		for i := range singles {
			sent[next] = time.Now()
			pub.Publish(ban(next))
			next++
			want := (i + 1) * subscribers
			eventually(b, 10*time.Second, "every node has the ban", func() bool { return total() == want })
		}
		all = merged()
		b.ReportMetric(float64(all[len(all)/2])/1e6, "single-p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100])/1e6, "single-p99-ms")
		b.Logf("one at a time: %d bans to %d nodes: latency p50 %v p99 %v max %v", singles, subscribers, all[len(all)/2], all[len(all)*99/100], all[len(all)-1])
	}
}
