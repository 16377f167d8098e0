package syslogd_test

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sipguard/sipguard/syslogd"
)

func TestFrames(t *testing.T) {
	const max = 1024
	long := strings.Repeat("x", max+1)
	maxed := strings.Repeat("y", max)
	ok := func(s string) syslogd.Frame { return syslogd.Frame{Text: s, Kind: "ok"} }
	over := syslogd.Frame{Kind: "oversize"}
	partial := syslogd.Frame{Kind: "cut short"}
	for _, tc := range []struct {
		name string
		in   string
		want []syslogd.Frame
	}{
		{"octet counting", "5 hello3 abc", []syslogd.Frame{ok("hello"), ok("abc")}},
		{"octet counting with LF inside", "11 hello\nworld2 ab", []syslogd.Frame{ok("hello\nworld"), ok("ab")}},
		{"LF", "<13>a\n<13>b\n", []syslogd.Frame{ok("<13>a"), ok("<13>b")}},
		{"CRLF", "<13>a\r\n<13>b\r\n", []syslogd.Frame{ok("<13>a\r"), ok("<13>b\r")}},
		{"mixed", "5 hello<13>b\n3 abc", []syslogd.Frame{ok("hello"), ok("<13>b"), ok("abc")}},
		{"LF frame starting with digits", "2026-11-26T10:00:00Z h t: x\n", []syslogd.Frame{ok("2026-11-26T10:00:00Z h t: x")}},
		{"LF frame of digits", "1234567890123 x\n", []syslogd.Frame{ok("1234567890123 x")}},
		{"empty lines skipped", "\n\r\n<13>a\n\n", []syslogd.Frame{ok("<13>a")}},
		{"zero length", "0 5 hello", []syslogd.Frame{{Kind: "zero length"}, ok("hello")}},
		{"max octet", "1024 " + maxed + "2 ab", []syslogd.Frame{ok(maxed), ok("ab")}},
		{"max LF", maxed + "\r\n<13>b\n", []syslogd.Frame{ok(maxed + "\r"), ok("<13>b")}},
		{"oversize octet", "1025 " + long + "2 ab", []syslogd.Frame{over, ok("ab")}},
		{"oversize octet huge", "999999999 " + long, []syslogd.Frame{over}},
		{"oversize LF", long + "x\n<13>b\n", []syslogd.Frame{over, ok("<13>b")}},
		{"oversize LF at end", long + long, []syslogd.Frame{over}},
		{"partial octet", "5 hello10 abc", []syslogd.Frame{ok("hello"), partial}},
		{"partial length", "5 hello10", []syslogd.Frame{ok("hello"), partial}},
		{"partial LF", "<13>a\n<13>b", []syslogd.Frame{ok("<13>a"), partial}},
		{"trailing NUL at end", "<13>a\n\x00", []syslogd.Frame{ok("<13>a")}},
		{"empty", "", nil},
	} {
		for _, rd := range []struct {
			name string
			mk   func(string) io.Reader
		}{
			{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
			{"bytewise", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
			{"halves", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
			{"data with EOF", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
		} {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				got, err := syslogd.Frames(rd.mk(tc.in), max)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %q; want %q", got, tc.want)
				}
			})
		}
	}
}

func TestFrames_Error(t *testing.T) {
	got, err := syslogd.Frames(io.MultiReader(strings.NewReader("5 hello3 a"), iotest.ErrReader(iotest.ErrTimeout)), 1024)
	if err != iotest.ErrTimeout {
		t.Errorf("error: got %v; want %v", err, iotest.ErrTimeout)
	}
	want := []syslogd.Frame{{Text: "hello", Kind: "ok"}, {Kind: "cut short"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}
