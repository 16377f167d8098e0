package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/feeds"
)

// TestCoveredSequencePortsFeeds (issue 20) is TestCoveredSequence with
// what it leaves out: a rule with ports of its own (portsConfig) banning
// addresses and IPv6 networks in its profile, reloads changing the IPv6
// prefix (nested network bans of the same origin, the rules'), a feed
// whose network entries come and go around other origins' bans, and the
// allowlist. Every ports profile is checked (outOfStep). SEQ_SEED picks
// another sequence.
func TestCoveredSequencePortsFeeds(t *testing.T) {
	seed := uint64(7)
	if v, err := strconv.ParseUint(os.Getenv("SEQ_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	e := newEnv(t)
	fw, down := failingFW()
	feed := filepath.Join(e.dir, "drop.txt")
	writeFeed(t, feed, "")
	prefix6, allow, feedRound := 64, false, 0
	config := func() daemon.Config {
		cfg := e.portsConfig()
		cfg.Engine.Rules[0].BanTime = 4 * time.Second // gui: its bans end within the test
		cfg.Engine.IPv6Prefix = prefix6
		if allow {
			cfg.Engine.Allow = append(cfg.Engine.Allow, netip.MustParsePrefix("100.64.2.9/32"), netip.MustParsePrefix("2001:db8:7:2::9/128"))
		}
		// A new interval: a new loader, which reads the feed at once.
		cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour + time.Duration(feedRound)*time.Second}, Expire: time.Hour}}
		return cfg
	}
	r := startWith(t, config(), fw, joined)
	ctx := context.Background()
	targets := []string{
		"100.64.0.0/16", "100.64.0.0/20", "100.64.1.0/24", "100.64.2.0/24", "100.64.1.7/32",
		"2001:db8:7::/48", "2001:db8:7::/56", "2001:db8:7:1::/64", "2001:db8:7:1::9/128",
	}
	feedNets := []string{"100.64.0.0/16", "100.64.1.0/24", "100.64.3.0/24", "2001:db8:7::/48", "2001:db8:7:1::/64", "2001:db8:7:300::/56"}
	addrs := []string{"100.64.1.9", "100.64.2.9", "100.64.1.7", "100.64.3.5", "2001:db8:7:1::9", "2001:db8:7:2::9", "2001:db8:7:1:5::1", "2001:db8:7:301::1"}
	origins := []string{"pbx-m", "pbx-n"}
	durs := []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond, time.Hour}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	since := map[string]time.Time{}
	var steps []string
	for step := range 100 {
		target, origin, d := pick(targets), pick(origins), durs[rng.IntN(len(durs))]
		down.Store(rng.IntN(8) == 0)
		var what string
		switch k := rng.IntN(13); {
		case k < 2:
			what = seqPeerBan(r, since, origin, target, d)
		case k < 3:
			what = seqPeerLift(r, since, origin, target)
		case k < 4:
			what = seqManualBan(r, target, d)
		case k < 5:
			addr := pick(addrs)
			_, err := r.client.Unban(ctx, control.UnbanRequest{Target: addr})
			what = fmt.Sprintf("a person unbans %s: %v", addr, err)
		case k < 6:
			res, _ := r.d.Apply(ctx, []cluster.Update{{Kind: cluster.UpdateUnban, Unban: cluster.Unban{
				Target: netip.MustParsePrefix(target), Time: time.Now().Add(-time.Duration(rng.IntN(2000)) * time.Millisecond),
				Until: time.Now().Add(time.Second), Origin: "pbx-p",
			}}})
			what = fmt.Sprintf("pbx-p unbans %s: %v", target, res)
		case k < 8:
			addr := pick(addrs)
			appendLines(t, e.log, amiFailures(addr, 3, time.Now())...)
			what = fmt.Sprintf("AMI failures of %s (gui)", addr)
		case k < 9:
			addr := pick(addrs)
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]" // as Asterisk writes it before its port
			}
			appendLines(t, e.log, failures(addr, 5, time.Now())...)
			what = fmt.Sprintf("SIP failures of %s", addr)
		case k < 11:
			var list []string
			for _, n := range feedNets {
				if rng.IntN(2) == 0 {
					list = append(list, n)
				}
			}
			writeFeed(t, feed, strings.Join(list, "\n")+"\n")
			feedRound++
			if rng.IntN(3) == 0 {
				prefix6 = 56 + 8*rng.IntN(2)
			}
			allow = rng.IntN(4) == 0
			what = fmt.Sprintf("feed %v, ipv6 prefix /%d, allow %v: %v", list, prefix6, allow, r.d.Reload(ctx, config()))
		case k < 12 && rng.IntN(3) == 0:
			r.stop(t)
			r = startWith(t, config(), fw, joined)
			what = "restart"
		default:
			pause := time.Duration(rng.IntN(800)) * time.Millisecond
			time.Sleep(pause)
			what = fmt.Sprintf("%v pass", pause)
		}
		settle(t, r, rng, down, &steps, step, what)
	}
	if testing.Verbose() {
		for _, s := range steps {
			t.Log(s)
		}
		t.Log(r.logs)
	}
}
