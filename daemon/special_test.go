package daemon_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// TestSpecialNeverBanned: special-purpose addresses (loopback,
// link-local, multicast, ...) are never banned by any path: restored from
// the state, decided by a rule, banned or imported by hand, shared by the
// cluster. Each refusal is counted or explained.
func TestSpecialNeverBanned(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	// Bans of an older sipguard, restored at start: the special ones are
	// lifted, not restored.
	old := []*bans.Record{
		{Target: netip.MustParsePrefix("fe80::/64"), Origin: bans.ByRule, Rule: "burst", Addr: netip.MustParseAddr("fe80::1")},
		{Target: netip.MustParsePrefix("::/64"), Origin: bans.ByRule, Rule: "burst", Addr: netip.MustParseAddr("::1")},
		{Target: netip.MustParsePrefix("0.0.0.0/8"), Origin: bans.FromFeed("gone")},
		{Target: netip.MustParsePrefix("198.51.100.9/32"), Origin: bans.ByHand},
	}
	for _, r := range old {
		r.Since, r.Expires = now, now.Add(time.Hour)
	}
	os.MkdirAll(e.state, 0o700)
	if err := os.WriteFile(filepath.Join(e.state, "bans.state"), bans.Encode(bans.Snapshot{Bans: old}), 0o600); err != nil {
		t.Fatal(err)
	}
	fw := fwtest.New(nil)
	r := start(t, e.config(), fw)
	ctx := context.Background()
	onlyBanned := func(want ...string) {
		t.Helper()
		var got []string
		for _, e := range fw.Entries() {
			got = append(got, bans.String(e.Prefix))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("the firewall holds %v; want %v", got, want)
		}
	}
	onlyBanned("198.51.100.9")
	if st := status(t, r); st.Unbans["special"] != 3 {
		t.Errorf("unbans %v; want 3 special", st.Unbans)
	}

	// A rule: the events of special addresses (the zone of a link-local
	// one stripped, ::1.2.3.4 counted by ::/64, which holds ::1) are
	// dropped and counted; 198.51.100.7 marks the end of the lines.
	var lines []string
	for _, a := range []string{"[fe80::1%eth0]", "[::1]", "[::102:304]", "169.254.169.254", "[fe80::2]", "198.51.100.7"} {
		lines = append(lines, failures(a, 5, now)...)
	}
	appendLines(t, e.log, lines...)
	if !eventually(func() bool { _, ok := banned(fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("198.51.100.7 not banned:\n%s", r.logs)
	}
	onlyBanned("198.51.100.7", "198.51.100.9")
	if st := status(t, r); st.Engine.Special != 25 {
		t.Errorf("%d events of special addresses dropped; want 25", st.Engine.Special)
	}

	// By hand: refused, with why.
	for _, tc := range []struct{ target, why string }{
		{"0.0.0.0", `0.0.0.0 is "this network" (0.0.0.0/8): never banned`},
		{"224.0.0.1", "224.0.0.1 is multicast (224.0.0.0/4): never banned"},
		{"255.255.255.255", "the broadcast address"},
		{"fe80::1", "fe80::1 is link-local (fe80::/10): never banned"},
		{"fe80::1%eth0", "not an IP address"},
		{"::/64", "::/64 is a network holding loopback (::1): never banned"},
		{"169.254.0.0/16", "link-local"},
		{"::ffff:169.254.1.1", "169.254.1.1 is link-local"},
	} {
		_, err := r.client.Ban(ctx, control.BanRequest{Target: tc.target, Force: true})
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ban %s: %v; want %q", tc.target, err, tc.why)
		}
	}
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.8", For: "100000d"}); err == nil ||
		!strings.Contains(err.Error(), "100000d is longer than the longest ban, 3650d") {
		t.Errorf("ban --for 100000d: %v", err)
	}
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.8", For: "3650d"}); err != nil {
		t.Errorf("ban --for 3650d: %v", err)
	}
	res, err := r.client.Import(ctx, control.ImportRequest{Bans: []control.BanRequest{
		{Target: "ff02::1"}, {Target: "255.255.255.0/24"}, {Target: "198.51.100.10", For: "100001d"}, {Target: "198.51.100.11"},
	}})
	if err != nil || res.Banned != 1 || len(res.Refused) != 3 ||
		!strings.Contains(res.Refused[0], "ff02::1: multicast (ff00::/8), never banned") ||
		!strings.Contains(res.Refused[1], "255.255.255.0/24: a network holding the broadcast address") ||
		!strings.Contains(res.Refused[2], "198.51.100.10: 100001d is longer than the longest ban") {
		t.Errorf("import: %v %+v", err, res)
	}
	onlyBanned("198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.11")

	// Another node's bans: ignored, counted.
	got, err := r.d.Apply(ctx, []cluster.Update{
		remote("fe80::/64", "b", now, time.Hour), remote("224.0.0.0/16", "b", now, time.Hour), remote("203.0.113.5/32", "b", now, time.Hour),
	})
	if err != nil || got["special"] != 2 || got["applied"] != 1 {
		t.Errorf("cluster: %v %v", got, err)
	}
	onlyBanned("198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.11", "203.0.113.5")
	if st := status(t, r); st.Firewall.RefusedSpecial != 0 {
		t.Errorf("%d bans reached the last guard; every origin refuses them first", st.Firewall.RefusedSpecial)
	}
}
