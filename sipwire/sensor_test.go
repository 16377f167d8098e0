package sipwire_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/sipwire"
)

var (
	pbx      = netip.MustParseAddr("198.18.0.1")
	attacker = netip.MustParseAddr("198.18.0.2")
	friend   = netip.MustParseAddr("198.18.0.3")
	t0       = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
)

// resp is one response of a test sequence.
type resp struct {
	status int
	cseq   string // "1 REGISTER"
	branch string
	at     time.Duration // after t0
	via    string        // the top Via; default: the client's, as Kamailio writes it
	extra  string        // more header lines
	dst    netip.Addr    // default: the client
}

// client is one address talking to the PBX.
type client struct {
	addr   netip.Addr
	port   uint16
	callID string
	user   string
}

func (c client) packet(r resp) sipwire.Packet {
	via := r.via
	if via == "" {
		via = fmt.Sprintf("SIP/2.0/UDP %s;branch=%s;rport=%d;received=%s", hostport(c.addr, c.port), r.branch, c.port, c.addr)
	}
	dst := r.dst
	if !dst.IsValid() {
		dst = c.addr
	}
	msg := fmt.Sprintf("SIP/2.0 %d Reason\r\nVia: %s\r\nFrom: <sip:%s@pbx>;tag=1\r\nTo: <sip:%s@pbx>\r\nCall-ID: %s\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n",
		r.status, via, c.user, c.user, c.callID, r.cseq, r.extra)
	src := pbx
	if dst.Is6() {
		src = netip.MustParseAddr("2001:db8::1")
	}
	return sipwire.Packet{Time: t0.Add(r.at), Src: src, Dst: dst, SrcPort: 5060, DstPort: c.port, Payload: []byte(msg)}
}

func hostport(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// run hands rs to a new sensor, calls Expire at each response's time and
// at the end, and returns the events as "kind user addr port +seconds".
func run(t *testing.T, s *sipwire.Sensor, c client, end time.Duration, rs ...resp) []string {
	t.Helper()
	var got []string
	add := func(evs []parsers.Event) {
		for _, ev := range evs {
			if ev.Service != parsers.SIP || ev.Parser != "sipwire" || ev.Source != "wire" {
				t.Errorf("event %+v: want service sip, parser sipwire, source wire", ev)
			}
			got = append(got, fmt.Sprintf("%s %s %s %d +%s", ev.Kind, ev.User, ev.Addr, ev.Port, ev.Time.Sub(t0)))
		}
	}
	for _, r := range rs {
		p := c.packet(r)
		add(s.Expire(p.Time))
		add(s.Handle(p))
	}
	add(s.Expire(t0.Add(end)))
	return got
}

func check(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var phone = client{addr: attacker, port: 5072, callID: "c1", user: "100"}

const stale = "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\", stale=true\r\n"

func TestSensor_Rules(t *testing.T) {
	tests := []struct {
		name string
		c    client
		rs   []resp
		want []string
	}{
		{"right password", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 200, cseq: "2 REGISTER", branch: "b2", at: time.Second},
		}, []string{"auth_succeeded 100 198.18.0.2 5072 +1s"}},
		{"wrong password", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "2 REGISTER", branch: "b2", at: time.Second},
		}, []string{"auth_failed 100 198.18.0.2 5072 +1s"}},
		{"svcrack: every guess CSeq 2 on one Call-ID", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "2 REGISTER", branch: "b2", at: 10 * time.Millisecond},
			{status: 401, cseq: "2 REGISTER", branch: "b3", at: 20 * time.Millisecond},
			{status: 401, cseq: "2 REGISTER", branch: "b4", at: 30 * time.Millisecond},
		}, []string{
			"auth_failed 100 198.18.0.2 5072 +10ms",
			"auth_failed 100 198.18.0.2 5072 +20ms",
			"auth_failed 100 198.18.0.2 5072 +30ms",
		}},
		{"the challenge sent again", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "1 REGISTER", branch: "b1", at: 500 * time.Millisecond},
			{status: 401, cseq: "1 REGISTER", branch: "b1", at: 1500 * time.Millisecond, extra: "WWW-Authenticate: Digest nonce=\"new\"\r\n"},
			{status: 200, cseq: "2 REGISTER", branch: "b2", at: 2 * time.Second},
		}, []string{"auth_succeeded 100 198.18.0.2 5072 +2s"}},
		{"stale nonce", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "2 REGISTER", branch: "b2", at: time.Second, extra: stale},
			{status: 200, cseq: "3 REGISTER", branch: "b3", at: 2 * time.Second},
		}, []string{"auth_succeeded 100 198.18.0.2 5072 +2s"}},
		{"stale, then a wrong password", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "2 REGISTER", branch: "b2", at: time.Second, extra: stale},
			{status: 401, cseq: "3 REGISTER", branch: "b3", at: 2 * time.Second},
		}, []string{"auth_failed 100 198.18.0.2 5072 +2s"}},
		{"phone refreshing on its Call-ID", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 200, cseq: "2 REGISTER", branch: "b2", at: time.Second},
			{status: 401, cseq: "3 REGISTER", branch: "b3", at: 30 * time.Second},
			{status: 200, cseq: "4 REGISTER", branch: "b4", at: 31 * time.Second},
		}, []string{"auth_succeeded 100 198.18.0.2 5072 +1s", "auth_succeeded 100 198.18.0.2 5072 +31s"}},
		{"404 to REGISTER", client{attacker, 5060, "w1", "101"}, []resp{
			{status: 404, cseq: "1 REGISTER", branch: "b1"},
		}, []string{"unknown_user 101 198.18.0.2 5060 +0s"}},
		{"403 to REGISTER after a challenge", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 403, cseq: "2 REGISTER", branch: "b2", at: time.Second},
		}, []string{"unknown_user 100 198.18.0.2 5072 +1s"}},
		{"404 to an INVITE never challenged", client{attacker, 5060, "i1", "0044123"}, []resp{
			{status: 100, cseq: "1 INVITE", branch: "b1"},
			{status: 404, cseq: "1 INVITE", branch: "b1"},
			{status: 404, cseq: "1 INVITE", branch: "b1", at: 500 * time.Millisecond}, // until the ACK
		}, []string{"unknown_extension 0044123 198.18.0.2 5060 +0s"}},
		{"404 to an INVITE after a challenge: a user misdialling", client{attacker, 5060, "i2", "999"}, []resp{
			{status: 407, cseq: "1 INVITE", branch: "b1"},
			{status: 407, cseq: "1 INVITE", branch: "b1", at: 500 * time.Millisecond},
			{status: 100, cseq: "2 INVITE", branch: "b2", at: time.Second},
			{status: 404, cseq: "2 INVITE", branch: "b2", at: time.Second},
		}, nil},
		{"INVITE with the right password", client{attacker, 5060, "i4", "201"}, []resp{
			{status: 100, cseq: "1 INVITE", branch: "b1"},
			{status: 407, cseq: "1 INVITE", branch: "b1"},
			{status: 100, cseq: "2 INVITE", branch: "b2", at: time.Second},
			{status: 180, cseq: "2 INVITE", branch: "b2", at: time.Second},
			{status: 200, cseq: "2 INVITE", branch: "b2", at: 2 * time.Second},
			{status: 200, cseq: "2 INVITE", branch: "b2", at: 3 * time.Second}, // until the ACK
		}, []string{"auth_succeeded 201 198.18.0.2 5060 +2s"}},
		{"403 to OPTIONS", phone, []resp{{status: 403, cseq: "1 OPTIONS", branch: "b1"}}, nil},
		// The PBX answers OPTIONS (or MESSAGE, SUBSCRIBE) without a
		// password: on the Call-ID of a challenged REGISTER, its 200 is no
		// login, nor an answer to the challenge. Taken for one, it would
		// have the address learned without a password.
		{"200 to OPTIONS after a challenge", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 200, cseq: "2 OPTIONS", branch: "b2", at: time.Second},
		}, []string{"challenge_unanswered 100 198.18.0.2 5072 +32s"}},
		{"200 to OPTIONS, then the right password", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 200, cseq: "2 OPTIONS", branch: "b2", at: time.Second},
			{status: 200, cseq: "3 REGISTER", branch: "b3", at: 2 * time.Second},
		}, []string{"auth_succeeded 100 198.18.0.2 5072 +2s"}},
		// Only a success is judged by its method: passwords guessed by
		// INVITE on the Call-ID of a challenged REGISTER still fail.
		{"wrong passwords by INVITE after a challenged REGISTER", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 407, cseq: "2 INVITE", branch: "b2", at: time.Second},
			{status: 407, cseq: "3 INVITE", branch: "b3", at: 2 * time.Second},
		}, []string{"auth_failed 100 198.18.0.2 5072 +1s", "auth_failed 100 198.18.0.2 5072 +2s"}},
		{"200 to CANCEL after a challenged INVITE", client{attacker, 5060, "i5", "201"}, []resp{
			{status: 407, cseq: "1 INVITE", branch: "b1"},
			{status: 200, cseq: "1 CANCEL", branch: "b1", at: time.Second},
		}, []string{"challenge_unanswered 201 198.18.0.2 5060 +32s"}},
		{"unanswered challenge", client{attacker, 5060, "w2", "100"}, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
		}, []string{"challenge_unanswered 100 198.18.0.2 5060 +32s"}},
		{"answered by a request the PBX ignored", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 100, cseq: "2 REGISTER", branch: "b2", at: time.Second},
		}, nil},
		{"a late 100 of the challenged request is no answer", client{attacker, 5060, "i3", "200"}, []resp{
			{status: 407, cseq: "1 INVITE", branch: "b1"},
			{status: 100, cseq: "1 INVITE", branch: "b1", at: time.Second},
		}, []string{"challenge_unanswered 200 198.18.0.2 5060 +32s"}},
		{"forgotten after its lifetime", phone, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 200, cseq: "2 REGISTER", branch: "b2", at: time.Second},
			{status: 401, cseq: "3 REGISTER", branch: "b3", at: 100 * time.Second},
			{status: 401, cseq: "4 REGISTER", branch: "b4", at: 200 * time.Second}, // a new dialog: a first challenge
		}, []string{
			"auth_succeeded 100 198.18.0.2 5072 +1s",
			"challenge_unanswered 100 198.18.0.2 5072 +2m12s",
			"challenge_unanswered 100 198.18.0.2 5072 +3m52s",
		}},
		{"IPv6", client{netip.MustParseAddr("2001:db8::2"), 5060, "v6", "100"}, []resp{
			{status: 401, cseq: "1 REGISTER", branch: "b1"},
			{status: 401, cseq: "2 REGISTER", branch: "b2", at: time.Second},
			{status: 200, cseq: "3 REGISTER", branch: "b3", at: 2 * time.Second},
		}, []string{"auth_failed 100 2001:db8::2 5060 +1s", "auth_succeeded 100 2001:db8::2 5060 +2s"}},
		{"IPv4-mapped destination, no received", client{attacker, 5060, "m", "100"}, []resp{
			{status: 404, cseq: "1 REGISTER", branch: "b1", via: "SIP/2.0/UDP 198.18.0.2;branch=b1", dst: netip.MustParseAddr("::ffff:198.18.0.2")},
		}, []string{"unknown_user 100 198.18.0.2 5060 +0s"}},
		{"port: not the Via's", client{attacker, 40000, "p", "100"}, []resp{
			{status: 404, cseq: "1 REGISTER", branch: "b1", via: "SIP/2.0/UDP 198.18.0.2:5080;branch=b1"},
		}, []string{"unknown_user 100 198.18.0.2 0 +0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sipwire.NewSensor(sipwire.Options{})
			check(t, run(t, s, tc.c, 5*time.Minute, tc.rs...), tc.want...)
			st := s.Stats()
			if st.Responses != uint64(len(tc.rs)) || st.Events != uint64(len(tc.want)) {
				t.Errorf("stats %+v; want %d responses, %d events", st, len(tc.rs), len(tc.want))
			}
		})
	}
}

// TestSensor_Diverted: a response that does not go where the top Via
// says the request came from is never an event, whatever it says.
func TestSensor_Diverted(t *testing.T) {
	tests := []struct {
		name string
		r    resp
	}{
		// The attacker's Via names the friend as sent-by and maddr; the
		// PBX adds received (the attacker) and answers to maddr.
		{"maddr pointing at a friend", resp{via: "SIP/2.0/UDP 198.18.0.3:5060;maddr=198.18.0.3;received=198.18.0.2;branch=b", dst: friend}},
		// An ICMP fallback: the PBX answers sent-by (the friend) although it
		// saw the request come from the attacker.
		{"fallback to sent-by", resp{via: "SIP/2.0/UDP 198.18.0.3:5060;received=198.18.0.2;branch=b", dst: friend}},
		{"sent-by elsewhere, no received", resp{via: "SIP/2.0/UDP 198.18.0.3:5060;branch=b", dst: attacker}},
		{"host name, no received", resp{via: "SIP/2.0/UDP friend.example:5060;branch=b", dst: friend}},
		{"received not an address", resp{via: "SIP/2.0/UDP 198.18.0.3;received=friend.example;branch=b", dst: friend}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sipwire.NewSensor(sipwire.Options{})
			c := client{friend, 5060, "d", "100"}
			var rs []resp
			for i := range 6 { // a challenge, then five refused guesses
				r := tc.r
				r.status, r.cseq, r.at = 401, fmt.Sprintf("%d REGISTER", i+1), time.Duration(i)*time.Second
				r.via = strings.Replace(r.via, "branch=b", fmt.Sprintf("branch=b%d", i), 1)
				rs = append(rs, r)
			}
			rs = append(rs, resp{status: 404, cseq: "9 REGISTER", branch: "x", via: tc.r.via, dst: tc.r.dst})
			check(t, run(t, s, c, 5*time.Minute, rs...))
			if st := s.Stats(); st.Dropped[sipwire.ReasonDiverted] != uint64(len(rs)) || st.Tracked != 0 {
				t.Errorf("stats %+v; want %d diverted, none tracked", st, len(rs))
			}
		})
	}
}

// TestSensor_CallIDPerAddress: a Call-ID written by one address does not
// touch another's dialog: the attacker's challenge on the friend's Call-ID
// makes the friend's own first challenge no failure.
func TestSensor_CallIDPerAddress(t *testing.T) {
	s := sipwire.NewSensor(sipwire.Options{})
	evil := client{attacker, 5060, "shared", "100"}
	good := client{friend, 5060, "shared", "100"}
	var evs []parsers.Event
	evs = append(evs, s.Handle(evil.packet(resp{status: 401, cseq: "1 REGISTER", branch: "e1"}))...)
	evs = append(evs, s.Handle(good.packet(resp{status: 401, cseq: "1 REGISTER", branch: "g1", at: time.Second}))...)
	evs = append(evs, s.Handle(good.packet(resp{status: 200, cseq: "2 REGISTER", branch: "g2", at: 2 * time.Second}))...)
	if len(evs) != 1 || evs[0].Kind != parsers.AuthSucceeded || evs[0].Addr != friend {
		t.Errorf("events %+v; want the friend's auth_succeeded only", evs)
	}
}

// TestSensor_TCP: several responses in one segment are read one after
// another; a response split across segments is dropped, never guessed.
func TestSensor_TCP(t *testing.T) {
	s := sipwire.NewSensor(sipwire.Options{})
	c := client{attacker, 5060, "t", "100"}
	seg := func(rs ...resp) sipwire.Packet {
		p := c.packet(rs[0])
		p.TCP = true
		p.Payload = nil
		for _, r := range rs {
			r.via = fmt.Sprintf("SIP/2.0/TCP 198.18.0.2:5060;branch=%s;received=198.18.0.2", r.branch)
			p.Payload = append(p.Payload, c.packet(r).Payload...)
		}
		return p
	}
	two := seg(resp{status: 401, cseq: "1 REGISTER", branch: "b1"}, resp{status: 401, cseq: "2 REGISTER", branch: "b2"})
	two.Payload = append([]byte("\r\n\r\n"), two.Payload...) // a keep-alive first
	evs := s.Handle(two)
	if len(evs) != 1 || evs[0].Kind != parsers.AuthFailed || evs[0].Port != 5060 {
		t.Errorf("two responses in one segment: %+v; want one auth_failed", evs)
	}
	// Three failures, the last split across two segments.
	three := seg(resp{status: 401, cseq: "3 REGISTER", branch: "b3"}, resp{status: 401, cseq: "4 REGISTER", branch: "b4"},
		resp{status: 401, cseq: "5 REGISTER", branch: "b5"})
	cut := len(three.Payload) - 40
	first, second := three, three
	first.Payload, second.Payload = three.Payload[:cut], three.Payload[cut:]
	if evs := s.Handle(first); len(evs) != 2 {
		t.Errorf("segment with 2 whole responses and a cut one: %d events; want 2", len(evs))
	}
	if evs := s.Handle(second); len(evs) != 0 {
		t.Errorf("the rest of a cut response: %d events; want 0", len(evs))
	}
	st := s.Stats()
	if st.Packets != 3 || st.Responses != 4 || st.Events != 3 || st.Dropped[sipwire.ReasonTruncated] != 1 || st.Dropped[sipwire.ReasonNotSIP] != 1 {
		t.Errorf("stats %+v", st)
	}
	// A segment of many tiny responses stops at the bound.
	var many []resp
	for i := range 70 {
		many = append(many, resp{status: 180, cseq: "9 INVITE", branch: fmt.Sprint("r", i)})
	}
	s.Handle(seg(many...))
	if st := s.Stats(); st.Responses != 4+64 || st.Dropped[sipwire.ReasonTooLong] != 1 {
		t.Errorf("70 responses in a segment: stats %+v; want 64 read, 1 too_long", st)
	}
}

// TestSensor_Bounded: the table holds at most MaxDialogs Call-IDs; the
// least recently seen goes first, and its pending challenge with it.
func TestSensor_Bounded(t *testing.T) {
	s := sipwire.NewSensor(sipwire.Options{MaxDialogs: 10})
	for i := range 25 {
		c := client{attacker, 5060, fmt.Sprint("call", i), "100"}
		s.Handle(c.packet(resp{status: 401, cseq: "1 REGISTER", branch: "b", at: time.Duration(i) * time.Millisecond}))
	}
	st := s.Stats()
	if st.Tracked != 10 || st.Evicted != 15 {
		t.Errorf("stats %+v; want 10 tracked, 15 evicted", st)
	}
	evs := s.Expire(t0.Add(time.Minute))
	if len(evs) != 10 {
		t.Errorf("%d challenge_unanswered; want 10 (those still held)", len(evs))
	}
	if st := s.Stats(); st.Tracked != 10 {
		t.Errorf("tracked %d before the lifetime; want 10", st.Tracked)
	}
	if s.Expire(t0.Add(2 * time.Minute)); s.Stats().Tracked != 0 {
		t.Errorf("tracked %d after the lifetime; want 0", s.Stats().Tracked)
	}
}

// TestSensor_LRU: when full, the least recently seen Call-ID goes, not
// the oldest: a dialog seen again stays.
func TestSensor_LRU(t *testing.T) {
	s := sipwire.NewSensor(sipwire.Options{MaxDialogs: 3})
	c := func(id string) client { return client{attacker, 5060, id, id} }
	challenge := resp{status: 401, cseq: "1 REGISTER", branch: "b1"}
	guess := func(n int) resp {
		return resp{status: 401, cseq: "2 REGISTER", branch: fmt.Sprint("g", n), at: time.Second}
	}
	for _, id := range []string{"A", "B", "C"} {
		s.Handle(c(id).packet(challenge))
	}
	if evs := s.Handle(c("A").packet(guess(1))); len(evs) != 1 {
		t.Fatalf("A's guess: %+v", evs)
	}
	s.Handle(c("D").packet(challenge)) // evicts B, the least recently seen
	if evs := s.Handle(c("A").packet(guess(2))); len(evs) != 1 || evs[0].User != "A" {
		t.Errorf("A after D: %+v; want A's auth_failed (A was seen after B)", evs)
	}
	if evs := s.Handle(c("B").packet(guess(3))); len(evs) != 0 {
		t.Errorf("B after D: %+v; want none (B was forgotten: a first challenge)", evs)
	}
}

func TestSensor_BadAddress(t *testing.T) {
	s := sipwire.NewSensor(sipwire.Options{})
	for _, dst := range []string{"0.0.0.0", "224.0.0.1", "::"} {
		a := netip.MustParseAddr(dst)
		c := client{a, 5060, "x", "100"}
		if evs := s.Handle(c.packet(resp{status: 404, cseq: "1 REGISTER", branch: "b", via: "SIP/2.0/UDP " + hostport(a, 5060)})); len(evs) != 0 {
			t.Errorf("%s: %+v", dst, evs)
		}
	}
	var zero sipwire.Packet
	zero.Payload = []byte(kamailio401)
	s.Handle(zero)
	if st := s.Stats(); st.Dropped[sipwire.ReasonBadAddress] != 4 {
		t.Errorf("stats %+v; want 4 bad_address", st)
	}
}
