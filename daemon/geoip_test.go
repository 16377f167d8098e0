package daemon_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

// TestGeoIP_BadDatabase: a daemon does not start on a missing or corrupt
// country database, and says which file and why.
func TestGeoIP_BadDatabase(t *testing.T) {
	e := newEnv(t)
	corrupt := filepath.Join(e.dir, "corrupt.mmdb")
	os.WriteFile(corrupt, []byte("\xab\xcd\xefMaxMind.com garbage"), 0o644)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(e.dir, "none.mmdb"), "no such file"},
		{corrupt, "MaxMind DB"},
	} {
		cfg := e.config()
		cfg.GeoIP = c.path
		log := zerolog.Nop()
		_, err := daemon.New(cfg, firewall.NewDryRun(log, nil), log, nil)
		if err == nil || !strings.Contains(err.Error(), "[geoip]") || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with %s: %v; want [geoip], the path and %q", c.path, err, c.want)
		}
	}
}

// TestGeoIP_Bans: with a country database, ban log lines, ban notices
// and list carry the banned address's country; a reload re-opens the
// database (an updated file), and a reload with a corrupt one changes
// nothing.
func TestGeoIP_Bans(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.GeoIP = geoiptest.Write(t, e.dir, map[string]string{"198.51.100.0/25": "DE", "2001:db8::/32": "NL"})
	var n notices
	r := start(t, cfg, nil, &n)
	ctx := context.Background()
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	appendLines(t, e.log, failures("198.51.100.200", 5, time.Now())...) // not in the database
	if !eventually(func() bool { return len(n.of(daemon.NoticeBan)) == 2 }) {
		t.Fatalf("no ban notices:\n%s", r.logs)
	}
	for _, b := range n.of(daemon.NoticeBan) {
		want := map[string]string{"198.51.100.7": "DE", "198.51.100.200": ""}[b.Addr.String()]
		if b.Country != want {
			t.Errorf("ban notice of %s: country %q; want %q", b.Addr, b.Country, want)
		}
	}
	if !strings.Contains(r.logs.String(), `"country":"DE","ip":"198.51.100.7"`) {
		t.Errorf("no country in the ban log line:\n%s", r.logs)
	}
	if strings.Contains(r.logs.String(), `"country":"","ip":"198.51.100.200"`) {
		t.Errorf("an empty country logged:\n%s", r.logs)
	}
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "2001:db8:5::/48"}); err != nil {
		t.Fatal(err)
	}
	countries := func() map[string]string {
		bans, err := r.client.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, b := range bans {
			out[b.Target] = b.Country
		}
		return out
	}
	want := map[string]string{"198.51.100.7": "DE", "198.51.100.200": "", "2001:db8:5::/48": "NL"}
	if got := countries(); !maps.Equal(got, want) {
		t.Errorf("list countries %v; want %v", got, want)
	}

	// The database is updated in place: a reload takes it.
	os.WriteFile(cfg.GeoIP, geoiptest.Bytes(t, geoiptest.DBIP, map[string]string{"198.51.100.0/24": "FR"}), 0o644)
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"198.51.100.7": "FR", "198.51.100.200": "FR", "2001:db8:5::/48": ""}
	if got := countries(); !maps.Equal(got, want) {
		t.Errorf("after reload: list countries %v; want %v", got, want)
	}
	// A corrupt one is refused, and the one in use stays.
	os.WriteFile(cfg.GeoIP, []byte("broken"), 0o644)
	if err := r.d.Reload(ctx, cfg); err == nil || !strings.Contains(err.Error(), "[geoip]") {
		t.Errorf("reload with a corrupt database: %v", err)
	}
	if got := countries(); !maps.Equal(got, want) {
		t.Errorf("after a failed reload: list countries %v; want %v", got, want)
	}
}
