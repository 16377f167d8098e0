package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/engine"
)

func TestBansRoundTrip(t *testing.T) {
	now := time.UnixMilli(time.Now().UnixMilli())
	bans := []*banRecord{
		{Target: netip.MustParsePrefix("198.51.100.7/32"), Addr: "198.51.100.7", Rule: "burst", Since: now, Expires: now.Add(time.Hour),
			Count: 5, Offences: 2, Source: "pbx", Reason: "5 events in 40s, the last auth_failed"},
		{Target: netip.MustParsePrefix("2001:db8::/64"), Rule: "manual", Since: now, Expires: now.Add(time.Minute),
			Reason: "tab\\there \"quoted\"\nnewline ünïcode"},
	}
	offences := []engine.Offence{{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Count: 2, Last: now, Until: now.Add(time.Hour)}}
	lifted := map[netip.Prefix]clusterUnban{netip.MustParsePrefix("203.0.113.0/24"): {at: now, until: now.Add(time.Hour)}}
	gotBans, gotOff, gotLifted, err := decodeBans(encodeBans(bans, offences, lifted))
	if err != nil {
		t.Fatal(err)
	}
	if len(gotBans) != 2 || *gotBans[0] != *bans[0] || *gotBans[1] != *bans[1] {
		t.Errorf("bans %+v", gotBans)
	}
	if len(gotOff) != 1 || gotOff[0] != offences[0] {
		t.Errorf("offences %+v", gotOff)
	}
	if len(gotLifted) != 1 || gotLifted[netip.MustParsePrefix("203.0.113.0/24")] != lifted[netip.MustParsePrefix("203.0.113.0/24")] {
		t.Errorf("lifted %+v", gotLifted)
	}
	for _, bad := range []string{"", "# other\n", bansHeader + "\nban\tx\n", bansHeader + "\nban\t1.2.3.4/32\t\"r\"\t1\t2\t3\t4\t\"s\"\t\"a\"\tunquoted\n", bansHeader + "\nwhat\n"} {
		if _, _, _, err := decodeBans([]byte(bad)); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

func BenchmarkEncodeBans(b *testing.B) {
	now := time.Now()
	var bans []*banRecord
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		bans = append(bans, &banRecord{Target: netip.PrefixFrom(a, 32), Addr: a.String(), Rule: "burst", Since: now,
			Expires: now.Add(time.Hour), Count: 5, Source: "pbx", Reason: "5 events in 40s, the last auth_failed"})
	}
	var data []byte
	for b.Loop() {
		data = encodeBans(bans, nil, nil)
	}
	b.ReportMetric(float64(len(data))/(1<<20), "MiB")
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, _, err := decodeBans(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
