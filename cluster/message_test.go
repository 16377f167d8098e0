package cluster

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestKeyIsUnique(t *testing.T) {
	// The cases where a careless encoding collides: an address and a
	// network written with the same characters.
	targets := []string{"1::2:0/112", "1::2:0:112/128", "192.0.2.0/24", "192.0.2.0/32", "2001:db8::/64", "2001:db8::/128",
		"2001:db8::64/128", "10.0.0.0/16", "10.0.0.16/32"}
	seen := map[string]string{}
	for _, s := range targets {
		p := netip.MustParsePrefix(s)
		k := key(p)
		if strings.ContainsAny(k, ".*> \t") {
			t.Errorf("key(%s) = %q is not one subject token", p, k)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("key(%s) = key(%s) = %q", p, other, k)
		}
		seen[k] = s
	}
}

func TestDecode(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ban := Ban{Target: netip.MustParsePrefix("198.51.100.7/32"), Rule: "burst", Reason: "5 events in 2s", Origin: "pbx-a",
		Since: now, Expires: now.Add(time.Hour), Count: 5}
	good := encodeBan(ban, typeBan)
	subj := banSubject("sipguard", "pbx-a", ban.Target)

	msg, err := decode("sipguard", subj, good)
	if err != nil || msg.typ != typeBan || msg.ban.Target != ban.Target || msg.ban.Origin != "pbx-a" || !msg.ban.Expires.Equal(ban.Expires) || msg.ban.Count != 5 {
		t.Fatalf("round trip: %+v %v", msg, err)
	}
	u := Unban{Target: netip.MustParsePrefix("2001:db8::/64"), Origin: "pbx-b", Time: now, Until: now.Add(24 * time.Hour)}
	msg, err = decode("sipguard", unbanSubject("sipguard", "pbx-b", u.Target), encodeUnban(u))
	if err != nil || msg.typ != typeUnban || msg.unban.Target != u.Target || !msg.unban.Until.Equal(u.Until) {
		t.Fatalf("unban round trip: %+v %v", msg, err)
	}

	with := func(f func(b *Ban)) []byte {
		b := ban
		f(&b)
		return encodeBan(b, typeBan)
	}
	bad := []struct {
		name, subject string
		data          []byte
		want          error
	}{
		{"another node's subject", banSubject("sipguard", "pbx-b", ban.Target), good, errMalformed},
		{"another target's subject", banSubject("sipguard", "pbx-a", netip.MustParsePrefix("198.51.100.8/32")), good, errMalformed},
		{"unban body on a ban subject", banSubject("sipguard", "pbx-b", u.Target), encodeUnban(u), errMalformed},
		{"ban body on an unban subject", unbanSubject("sipguard", "pbx-a", ban.Target), good, errMalformed},
		{"other prefix", banSubject("other", "pbx-a", ban.Target), good, errMalformed},
		{"extra token", subj + ".x", good, errMalformed},
		{"too wide v4", banSubject("sipguard", "pbx-a", netip.MustParsePrefix("10.0.0.0/8")), with(func(b *Ban) { b.Target = netip.MustParsePrefix("10.0.0.0/8") }), errMalformed},
		{"too wide v6", banSubject("sipguard", "pbx-a", netip.MustParsePrefix("2000::/3")), with(func(b *Ban) { b.Target = netip.MustParsePrefix("2000::/3") }), errMalformed},
		{"no expiry", subj, with(func(b *Ban) { b.Expires = time.Time{} }), errMalformed},
		{"expires before since", subj, with(func(b *Ban) { b.Expires = b.Since.Add(-time.Second) }), errMalformed},
		{"no rule", subj, with(func(b *Ban) { b.Rule = "" }), errMalformed},
		{"rule with a newline", subj, with(func(b *Ban) { b.Rule = "a\nb" }), errMalformed},
		{"not JSON", subj, []byte("ban 198.51.100.7"), errMalformed},
		{"two objects", subj, append(append([]byte{}, good...), good...), errMalformed},
		{"version 2", subj, []byte(strings.Replace(string(good), `"v":1`, `"v":2`, 1)), errMalformed},
		{"host bits", subj, []byte(strings.Replace(string(good), `198.51.100.7/32`, `198.51.100.7/24`, 1)), errMalformed},
		{"key in capitals", subj, []byte(strings.Replace(string(good), `"origin"`, `"ORIGIN"`, 1)), errMalformed},
		{"key twice, case apart", subj, []byte(strings.Replace(string(good), `"origin":"pbx-a"`, `"origin":"pbx-a","Origin":"pbx-a"`, 1)), errMalformed},
		{"key twice", subj, []byte(strings.Replace(string(good), `"origin":"pbx-a"`, `"origin":"pbx-a","origin":"pbx-a"`, 1)), errMalformed},
		{"unknown key", subj, []byte(strings.Replace(string(good), `"v":1`, `"v":1,"priority":9`, 1)), errMalformed},
		{"nested value", subj, []byte(strings.Replace(string(good), `"reason":"5 events in 2s"`, `"reason":{"a":1}`, 1)), errMalformed},
		{"an array", subj, []byte("[" + string(good) + "]"), errMalformed},
		{"rule of a feed", subj, with(func(b *Ban) { b.Rule = "feed:spamhaus" }), errMalformed},
		{"rule adopted", subj, with(func(b *Ban) { b.Rule = "adopted" }), errMalformed},
		{"oversize", subj, []byte(`{"v":1,"reason":"` + strings.Repeat("x", MaxMessage) + `"}`), errOversize},
	}
	for _, c := range bad {
		if _, err := decode("sipguard", c.subject, c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}

	// A manual ban of a peer is shared as such.
	if msg, err := decode("sipguard", subj, with(func(b *Ban) { b.Rule = "manual" })); err != nil || msg.ban.Rule != "manual" {
		t.Fatalf("a peer's manual ban: %+v %v", msg, err)
	}
	// A reason that would forge log lines or table rows is cleaned.
	msg, err = decode("sipguard", subj, with(func(b *Ban) { b.Reason = "x\nfake line\x1b[31m" }))
	if err != nil || strings.ContainsAny(msg.ban.Reason, "\n\x1b") {
		t.Fatalf("reason not cleaned: %q %v", msg.ban.Reason, err)
	}
}

// FuzzDecode: no input panics, and what is accepted is what the subject
// says, no wider than allowed, with an expiry after its start.
func FuzzDecode(f *testing.F) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b := Ban{Target: netip.MustParsePrefix("2001:db8::/64"), Rule: "burst", Origin: "pbx-a", Since: now, Expires: now.Add(time.Hour)}
	f.Add(banSubject("sipguard", "pbx-a", b.Target), encodeBan(b, typeBan))
	f.Add(banSubject("sipguard", "pbx-a", b.Target), encodeBan(b, typeLifted))
	u := Unban{Target: netip.MustParsePrefix("203.0.113.9/32"), Origin: "pbx-b", Time: now, Until: now.Add(time.Hour)}
	f.Add(unbanSubject("sipguard", "pbx-b", u.Target), encodeUnban(u))
	f.Add("sipguard.ban.x.1-2-3-4", []byte(`{"v":1,"type":"ban","target":"1.2.3.4/32","origin":"x"}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		m, err := decode("sipguard", subject, data)
		if err != nil {
			return
		}
		_, node, k, _ := splitSubject("sipguard", subject)
		target, origin := m.ban.Target, m.ban.Origin
		if m.typ == typeUnban {
			target, origin = m.unban.Target, m.unban.Origin
			if !m.unban.Until.After(m.unban.Time) {
				t.Fatalf("unban until %v before %v", m.unban.Until, m.unban.Time)
			}
		} else if !m.ban.Expires.After(m.ban.Since) || strings.ContainsFunc(m.ban.Reason, func(r rune) bool { return r < ' ' }) {
			t.Fatalf("accepted %+v", m.ban)
		}
		if origin != node || key(target) != k || tooWide(target) || target.Masked() != target {
			t.Fatalf("accepted %s from %s on %s", target, origin, subject)
		}
	})
}
