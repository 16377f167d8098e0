package logtime_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sipguard/sipguard/logtime"
)

// TestClock reads every form Read knows into a time, in a zone with
// summer time, with the year inferred for BSD dates.
func TestClock(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := logtime.NewClock(paris, func() time.Time { return now })
	tests := []struct {
		in   string
		want string // RFC 3339, "" = refused
		n    int
	}{
		{"2026-03-02 09:14:07", "2026-03-02T09:14:07+01:00", 19},
		{"2026-07-02 09:14:07", "2026-07-02T09:14:07+02:00", 19},
		{"2024-10-27 16:16:45.339", "2024-10-27T16:16:45.339+01:00", 23},
		{"2024-10-27 16:16:45.339123456789", "2024-10-27T16:16:45.339123456+01:00", 32},
		{"2019-09-27T06:20:59.498+0200", "2019-09-27T06:20:59.498+02:00", 28},
		{"2024-09-14T07:31:05.227+02:00 host", "2024-09-14T07:31:05.227+02:00", 29},
		{"2024-09-14T07:31:05Z", "2024-09-14T07:31:05Z", 20},
		{"Mar  2 09:14:07", "2026-03-02T09:14:07+01:00", 15},
		{"Mar 02 09:14:07", "2026-03-02T09:14:07+01:00", 15},
		{"Mar 2 09:14:07", "2026-03-02T09:14:07+01:00", 14},
		{"Nov 26 10:00:00.250", "2026-11-26T10:00:00.25+01:00", 19},
		// A date more than a day ahead belongs to last year.
		{"Nov 28 10:00:00", "2025-11-28T10:00:00+01:00", 15},
		{"Dec 31 23:59:59", "2025-12-31T23:59:59+01:00", 15},
		{"Nov 27 10:00:00", "2026-11-27T10:00:00+01:00", 15},
		{"2026-02-30 10:00:00", "", 0},
		{"2026-13-01 10:00:00", "", 0},
		{"2026-11-26 24:00:00", "", 0},
		{"2026-11-26 10:61:00", "", 0},
		{"Foo 26 10:00:00", "", 0},
		{"Nov 26 1:00:00", "", 0},
		{"26/11/2026 10:00:00", "", 0},
		{"0001-01-01 00:00:00", "", 0}, // the zero time (found by FuzzParse in parsers/freepbx)
		{"1969-12-31 23:59:59", "", 0},
		{"", "", 0},
	}
	for _, tc := range tests {
		got, n, ok := c.Parse([]byte(tc.in))
		if tc.want == "" {
			if ok {
				t.Errorf("Parse(%q) = %v; want refused", tc.in, got)
			}
			continue
		}
		if !ok || got.Format(time.RFC3339Nano) != tc.want || n != tc.n {
			t.Errorf("Parse(%q) = %v, %d, %v; want %s, %d", tc.in, got.Format(time.RFC3339Nano), n, ok, tc.want, tc.n)
		}
	}
	// Feb 29 in 2026 (not a leap year) goes back to the last leap year.
	if got, _, ok := c.Parse([]byte("Feb 29 10:00:00")); !ok || got.Format(time.DateTime) != "2024-02-29 10:00:00" {
		t.Errorf("Parse(Feb 29) = %v, %v; want 2024-02-29 10:00:00", got, ok)
	}
}

// TestReadSyslog checks what a syslog message's timestamp may be, against
// what a log file's may be, and the canonical BSD form syslogd writes.
func TestReadSyslog(t *testing.T) {
	tests := []struct {
		in     string
		syslog int    // ReadSyslog's length, 0 = refused
		file   int    // Read's length, 0 = refused
		bsd    string // AppendBSD, for a BSD date
	}{
		{"Nov 26 10:00:00 pbx", 15, 15, "Nov 26 10:00:00"},
		{"Nov  6 10:00:00 pbx", 15, 15, "Nov  6 10:00:00"},
		{"Nov 06 10:00:00 pbx", 15, 15, "Nov  6 10:00:00"},
		{"Nov 6 10:00:00 pbx", 14, 14, "Nov  6 10:00:00"},
		{"Nov 26 10:00:00.0120 pbx", 20, 20, "Nov 26 10:00:00.0120"},
		{"Nov 26 10:00:00.123456789 pbx", 25, 25, "Nov 26 10:00:00.123456789"},
		{"Nov 26 10:00:00.1234567890 pbx", 0, 26, ""},
		{"Dec 31 23:59:60 pbx", 15, 15, "Dec 31 23:59:60"},
		{"Feb 29 10:00:00", 15, 15, "Feb 29 10:00:00"},
		{"Feb 30 10:00:00", 0, 0, ""},
		{"Nov 26 24:00:00", 0, 0, ""},
		{"Nov 26 10:00", 0, 0, ""},
		{"nov 26 10:00:00", 0, 0, ""},
		{"2026-11-26T10:00:00.123+01:00 pbx", 29, 29, ""},
		{"2026-11-26t10:00:00z pbx", 20, 0, ""},
		{"2026-11-26T10:00:00Z pbx", 20, 20, ""},
		{"2026-11-26T10:00:00 pbx", 19, 19, ""},
		{"2026-11-26 10:00:00 pbx", 0, 19, ""},
		{"2026-11-26T10:00:00+0100 pbx", 0, 24, ""},
		{"2026-11-26T10:00:00+01 pbx", 0, 22, ""},
		{"2026-11-26T10:00:00+25:00 pbx", 0, 19, ""}, // a file's line: text after the time
		{"2026-11-26T10:00:00.123456789-05:30", 35, 35, ""},
		{"2026-11-26T10:00:00.1234567890Z", 0, 31, ""},
		{"2026-02-29T10:00:00Z", 0, 0, ""},
		{"2024-02-29T10:00:00Z", 20, 20, ""},
		{"1969-12-31T23:59:59Z", 0, 0, ""},
	}
	for _, tc := range tests {
		s, n := logtime.ReadSyslog([]byte(tc.in))
		if n != tc.syslog {
			t.Errorf("ReadSyslog(%q) = %d; want %d", tc.in, n, tc.syslog)
		}
		if n > 0 && s.BSD() != (tc.bsd != "") {
			t.Errorf("ReadSyslog(%q).BSD() = %v", tc.in, s.BSD())
		}
		if n > 0 && s.BSD() {
			if got := string(s.AppendBSD(nil)); got != tc.bsd {
				t.Errorf("ReadSyslog(%q).AppendBSD = %q; want %q", tc.in, got, tc.bsd)
			}
		}
		if _, n := logtime.Read([]byte(tc.in)); n != tc.file {
			t.Errorf("Read(%q) = %d; want %d", tc.in, n, tc.file)
		}
		if n > 0 && !logtime.Looks([]byte(tc.in)) {
			t.Errorf("Looks(%q) = false", tc.in)
		}
	}
	for _, in := range []string{"pbx asterisk: x", "2026/11/26", "Nov26", "1234", ""} {
		if logtime.Looks([]byte(in)) {
			t.Errorf("Looks(%q) = true", in)
		}
	}
}

// TestCache checks that the cache gives what the Clock gives, and reads
// only whole timestamps.
func TestCache(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := logtime.Cache{Clock: logtime.NewClock(time.UTC, func() time.Time { return now })}
	want := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{"2026-11-26 10:00:00", "2026-11-26 10:00:00", "Nov 26 10:00:00", "2026-11-26 10:00:00"} {
		if got, ok := c.Parse([]byte(in)); !ok || !got.Equal(want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"2026-11-26 10:00:00 x", "2026-11-26 10:00", "", "2026-11-26 10:00:00"[:0]} {
		if got, ok := c.Parse([]byte(in)); ok {
			t.Errorf("Parse(%q) = %v; want refused", in, got)
		}
	}
	if got, ok := c.Parse([]byte("2026-11-26 10:00:01")); !ok || !got.Equal(want.Add(time.Second)) {
		t.Errorf("after a refusal: %v, %v", got, ok)
	}
}

// TestCacheMinute: stamps of the minute last read (in a zone of one offset
// forever) are placed from that minute's time; every stamp gets exactly the
// time the Clock gives it, in zones with summer time too, leap seconds,
// fractions and explicit zones included.
func TestCacheMinute(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	stamps := []string{
		"2026-11-26 10:00:00", "2026-11-26 10:00:07", "2026-11-26 10:00:59", "2026-11-26 10:00:60",
		"2026-11-26 10:00:07.250", "2026-11-26T10:00:07.123456789Z", "2026-11-26T10:00:08Z",
		"2026-11-26T10:00:09+00:00", "2026-11-26T10:00:10+02:00", "2026-11-26T10:00:11+02:00",
		"2026-11-26 10:01:30", "2026-11-27 10:01:31", "Nov 26 10:01:32", "2026-11-26 10:01:33",
		// Summer time ends in Berlin at 03:00 on 25 Oct 2026, begins at
		// 02:00 on 29 Mar: the hour is read twice, or never.
		"2026-10-25 02:30:00", "2026-10-25 02:30:40", "2026-03-29 02:30:00", "2026-03-29 02:30:40",
		"2026-02-29 10:00:00", "2026-02-28 10:00:00", "1969-12-31 23:59:59",
	}
	for _, loc := range []*time.Location{time.UTC, time.FixedZone("", 5*3600), berlin} {
		clock := logtime.NewClock(loc, now)
		c := logtime.Cache{Clock: clock}
		for _, in := range stamps {
			want, n, wantOK := clock.Parse([]byte(in))
			wantOK = wantOK && n == len(in)
			got, ok := c.Parse([]byte(in))
			if ok != wantOK || ok && (!got.Equal(want) || got.Location().String() != want.Location().String() || got.Format(time.RFC3339Nano) != want.Format(time.RFC3339Nano)) {
				t.Errorf("%s: Parse(%q) = %v, %v; want %v, %v", loc, in, got, ok, want, wantOK)
			}
		}
	}
}

// TestCacheSeconds: a Cache reading stamps that mostly differ from the
// one before in their seconds (as a log's lines do) gives every one of
// them what the Clock gives, whatever the seconds hold (a leap second,
// numbers too big, bytes that are no digits) and whatever comes between
// (other minutes, forms and zones, refused stamps).
func TestCacheSeconds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	minutes := []string{"2026-11-26 10:00:", "2026-11-26 10:01:", "2026-10-25 02:30:", "2026-03-29 02:30:", "2026-02-29 10:00:", "1969-12-31 23:59:", "2026-11-26T10:00:", "2026-11-26 10-00:"}
	seconds := []string{"00", "07", "59", "60", "61", "99", "0x", "x0", " 1", "5", "07.250", "07Z", "07+02:00", "07+00:00", "07 "}
	r := rand.New(rand.NewPCG(3, 4))
	for _, loc := range []*time.Location{time.UTC, time.FixedZone("", 5*3600), berlin} {
		clock := logtime.NewClock(loc, now)
		c := logtime.Cache{Clock: clock}
		minute := minutes[0]
		for range 20000 {
			var in string
			switch x := r.IntN(20); {
			case x == 0:
				minute = minutes[r.IntN(len(minutes))]
				fallthrough
			case x < 17:
				in = minute + seconds[r.IntN(len(seconds))]
			case x < 19:
				in = fmt.Sprintf("%s%02d", minute, r.IntN(60))
			default:
				in = "Nov 26 10:00:" + seconds[r.IntN(len(seconds))]
			}
			want, n, wantOK := clock.Parse([]byte(in))
			wantOK = wantOK && n == len(in)
			got, ok := c.Parse([]byte(in))
			if ok != wantOK || ok && (!got.Equal(want) || got.Location().String() != want.Location().String() || got.Format(time.RFC3339Nano) != want.Format(time.RFC3339Nano)) {
				t.Fatalf("%s: Parse(%q) = %v, %v; want %v, %v", loc, in, got, ok, want, wantOK)
			}
		}
	}
}
