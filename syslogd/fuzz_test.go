package syslogd_test

import (
	"bytes"
	"net/netip"
	"testing"
	"testing/iotest"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/syslogd"
)

// FuzzParse checks, for any message, that parsing does not panic and that
// a Line it makes holds no line break, is bounded, starts with a timestamp
// logtime.Clock reads, and reads back as itself (a Line is a valid RFC 3164
// message: nothing in it is lost or reinterpreted on a second pass). Run
// longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 5m ./syslogd
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in), false)
	}
	f.Add([]byte("<29>Mar  2 09:50:01 s50 asterisk[812]: "+asteriskBody), true)
	clock := parsers.NewClock(parsers.Options{Location: time.UTC, Now: func() time.Time { return testReceived }})
	f.Fuzz(func(t *testing.T, in []byte, v6 bool) {
		from := testSender
		if v6 {
			from = netip.MustParseAddr("2001:db8::ffff:192.0.2.1")
		}
		line, pri, err := syslogd.Parse(in, from, testReceived)
		if err != nil {
			return
		}
		if pri < -1 || pri > 191 {
			t.Fatalf("pri %d from %q", pri, in)
		}
		if bytes.ContainsAny(line, "\n\r\x00") {
			t.Fatalf("line %q from %q holds a line break or NUL", line, in)
		}
		if len(line) > len(in)+syslogd.MaxHeader {
			t.Fatalf("line of %d bytes from a message of %d", len(line), len(in))
		}
		if _, n, ok := clock.Parse(line); !ok || n >= len(line) || line[n] != ' ' {
			t.Fatalf("logtime.Clock cannot read the timestamp of %q (from %q)", line, in)
		}
		again, pri, err := syslogd.Parse(line, netip.MustParseAddr("192.0.2.99"), testReceived.Add(time.Hour))
		if err != nil || pri != -1 || !bytes.Equal(again, line) {
			t.Fatalf("line %q (from %q) read again: %q, %v", line, in, again, err)
		}
	})
}

// FuzzFrames checks that the TCP framer does not panic, never returns a
// frame longer than the maximum, and splits a stream the same way however
// it arrives.
func FuzzFrames(f *testing.F) {
	for _, s := range []string{"5 hello3 abc", "<13>a\n<13>b", "0 5 hello", "2026-11-26T10:00:00Z h t: x\n", "10 abc", "\n\r\n", "999999999 x", "1234567890 x\n",
		"<13>Nov 26 10:00:00 pbx asterisk: from '<sip:x\n<13>Nov 26 10:00:00 pbx asterisk: failed for '203.0.113.44:5060'\n"} {
		f.Add([]byte(s))
	}
	const max = 1024
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, err := syslogd.Frames(bytes.NewReader(in), max)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range whole {
			if len(fr.Text) > max+1 { // a CR before the LF is left to trim
				t.Fatalf("frame of %d bytes", len(fr.Text))
			}
		}
		bytewise, err := syslogd.Frames(iotest.OneByteReader(bytes.NewReader(in)), max)
		if err != nil {
			t.Fatal(err)
		}
		if len(whole) != len(bytewise) {
			t.Fatalf("%d frames whole, %d bytewise", len(whole), len(bytewise))
		}
		for i := range whole {
			if whole[i] != bytewise[i] {
				t.Fatalf("frame %d: %q whole, %q bytewise", i, whole[i], bytewise[i])
			}
		}
	})
}
