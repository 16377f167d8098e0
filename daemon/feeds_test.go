package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
)

func writeFeed(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func feedStatus(t *testing.T, r *running) control.FeedStatus {
	t.Helper()
	st, err := r.client.Status(context.Background())
	if err != nil || len(st.Feeds) != 1 {
		t.Fatalf("status: %v %+v", err, st.Feeds)
	}
	return st.Feeds[0]
}

func TestFeeds(t *testing.T) {
	e := newEnv(t)
	feed := filepath.Join(e.dir, "drop.txt")
	writeFeed(t, feed, "# a blocklist\n198.51.100.0/24\n203.0.113.7 ; one host\n192.0.2.0/25\n10.0.0.0/8\n")
	cfg := e.config()
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour}, Expire: 2 * time.Second}}
	fw := firewall.NewDryRun(zerolog.Nop(), nil)
	var n notices
	// A manual ban inside 10.0.0.0/8 is there first: the feed's network,
	// which would overlap it, stays out.
	r := start(t, e.config(), fw)
	ctx := context.Background()
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "10.1.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	r = start(t, cfg, fw, &n)
	if !eventually(func() bool { return feedStatus(t, r).Enforced == 2 }) {
		t.Fatalf("feed not enforced: %+v\n%s", feedStatus(t, r), r.logs)
	}
	fs := feedStatus(t, r)
	if fs.Listed != 4 || fs.Skipped != 2 || fs.Loads != 1 || fs.Failures != 0 || fs.Location != feed {
		t.Errorf("status %+v", fs)
	}
	for _, p := range []string{"198.51.100.0/24", "203.0.113.7/32"} {
		if _, ok := banned(fw, p); !ok {
			t.Errorf("%s not in the firewall", p)
		}
	}
	for _, p := range []string{"192.0.2.0/25", "10.0.0.0/8"} {
		if _, ok := banned(fw, p); ok {
			t.Errorf("%s in the firewall: allowlisted or overlapping", p)
		}
	}
	bans, _ := r.client.List(ctx)
	rules := map[string]string{}
	for _, b := range bans {
		rules[b.Target] = b.Rule
	}
	if rules["198.51.100.0/24"] != "feed:drop" || rules["10.1.0.0/16"] != "manual" {
		t.Errorf("list %v", rules)
	}
	// The entries' kernel timeouts are refreshed while the daemon runs.
	time.Sleep(2500 * time.Millisecond)
	if ent, ok := banned(fw, "198.51.100.0/24"); !ok || time.Until(ent.Expires) < 500*time.Millisecond {
		t.Errorf("not refreshed: %v %v", ent, ok)
	}

	// A new list: 203.0.113.7 is gone, 198.18.0.0/15 comes. (A changed
	// interval restarts the loader, which loads at once.)
	writeFeed(t, feed, "198.51.100.0/24\n198.18.0.0/15\n")
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: 2 * time.Hour}, Expire: 2 * time.Second}}
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { _, ok := banned(fw, "198.18.0.0/15"); return ok }) {
		t.Fatalf("new entry not enforced:\n%s", r.logs)
	}
	if !eventually(func() bool { _, ok := banned(fw, "203.0.113.7/32"); return !ok }) {
		t.Errorf("entry gone from the feed still banned")
	}
	// Nobody is notified of each feed entry.
	if len(n.of(daemon.NoticeBan)) != 0 || len(n.of(daemon.NoticeUnban)) != 0 {
		t.Errorf("notices for feed entries: %+v", n.list)
	}

	// A broken feed (an HTML page) keeps the last good list.
	writeFeed(t, feed, "<html>\n<body>502 Bad Gateway</body>\n</html>\n")
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: 3 * time.Hour}, Expire: 2 * time.Second}}
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return feedStatus(t, r).Failures == 1 }) {
		t.Fatalf("broken feed not seen: %+v", feedStatus(t, r))
	}
	ticked(t, r)
	for _, p := range []string{"198.51.100.0/24", "198.18.0.0/15"} {
		if _, ok := banned(fw, p); !ok {
			t.Errorf("%s lifted by a broken feed", p)
		}
	}
	if fs := feedStatus(t, r); fs.Error == "" || fs.Enforced != 2 {
		t.Errorf("status after a broken load: %+v", fs)
	}

	// `sipguard unban` of a feed entry keeps it out.
	if _, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.18.1.1"}); err != nil {
		t.Fatal(err)
	}
	ticked(t, r)
	if _, ok := banned(fw, "198.18.0.0/15"); ok {
		t.Error("a manually unbanned feed entry came back")
	}

	// A restart without the feed lifts its entries.
	r.stop(t)
	r = start(t, e.config(), fw)
	if _, ok := banned(fw, "198.51.100.0/24"); ok {
		t.Errorf("entries of a feed no longer configured stay:\n%s", r.logs)
	}
	if _, ok := banned(fw, "10.1.0.0/16"); !ok {
		t.Error("the manual ban was lifted with the feed")
	}
}
