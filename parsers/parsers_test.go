package parsers_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

func TestParseAddrPort(t *testing.T) {
	tests := []struct {
		in     string
		v6Port bool
		addr   string // "" = refused
		port   uint16
	}{
		{"198.51.100.7", false, "198.51.100.7", 0},
		{"198.51.100.7:5060", false, "198.51.100.7", 5060},
		{"[2001:db8::1]:5060", false, "2001:db8::1", 5060},
		{"[2001:db8::1]", false, "2001:db8::1", 0},
		{"2001:db8::1", false, "2001:db8::1", 0},
		{"2001:db8::1:5060", false, "2001:db8::1:5060", 0}, // a whole address
		{"2001:db8::1:5060", true, "2001:db8::1", 5060},    // pjsip "%s:%d"
		{"[::ffff:198.51.100.7]:5060", false, "198.51.100.7", 5060},
		{"::ffff:198.51.100.7:5060", true, "198.51.100.7", 5060},
		{"::ffff:198.51.100.7", false, "198.51.100.7", 0},
		{"[198.51.100.7]:5060", false, "198.51.100.7", 5060},
		{"[fe80::1%eth0]:5060", false, "fe80::1", 5060},
		{"198.51.100.7:0", false, "", 0},
		{"198.51.100.7:65536", false, "", 0},
		{"198.51.100.7:05060", false, "", 0},
		{"198.51.100.7:", false, "", 0},
		{"198.51.100.7:50a", false, "", 0},
		{"198.051.100.7", false, "", 0},
		{"198.51.100", false, "", 0},
		{"198.51.100.256", false, "", 0},
		{"198.51.100.7.1", false, "", 0},
		{"pbx.example.com", false, "", 0},
		{"pbx.example.com:5060", false, "", 0},
		{"XX.XX.XX.XX", false, "", 0},
		{"YYYYYYYY:5062", false, "", 0},
		{"0.0.0.0", false, "", 0},
		{"::", false, "", 0},
		{"255.255.255.255", false, "", 0},
		{"224.0.0.1", false, "", 0},
		{"ff02::1", false, "", 0},
		{"[2001:db8::1]5060", false, "", 0},
		{"[2001:db8::1", false, "", 0},
		{"2001:db8::1", true, "", 0}, // "2001:db8:" + port 1: no address
		{"", false, "", 0},
		{" 198.51.100.7", false, "", 0},
		{"198.51.100.7 ", false, "", 0},
	}
	for _, tc := range tests {
		a, port, ok := parsers.ParseAddrPort([]byte(tc.in), tc.v6Port)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.addr || ok && port != tc.port {
			t.Errorf("ParseAddrPort(%q, %v) = %q, %d, %v; want %q, %d", tc.in, tc.v6Port, got, port, ok, tc.addr, tc.port)
		}
		if ok && (a.Is4In6() || a.Zone() != "") {
			t.Errorf("ParseAddrPort(%q) = %s: not unmapped and zoneless", tc.in, a)
		}
	}
}

func TestClock(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := parsers.NewClock(parsers.Options{Location: paris, Now: func() time.Time { return now }})
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

func TestKinds(t *testing.T) {
	want := "auth_failed,unknown_user,acl_denied,unknown_extension,admin_auth_failed,rejected_connection"
	var names []string
	for _, k := range parsers.Kinds() {
		names = append(names, k.String())
		got, err := parsers.ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
		if !parsers.AllKinds.Has(k) {
			t.Errorf("AllKinds lacks %v", k)
		}
	}
	if got := strings.Join(names, ","); got != want {
		t.Errorf("kinds = %s; want %s", got, want)
	}
	if parsers.AllKinds.String() != want {
		t.Errorf("AllKinds = %s", parsers.AllKinds)
	}
	if _, err := parsers.ParseKind("auth-failed"); err == nil {
		t.Error("ParseKind(auth-failed) accepted")
	}
	var s parsers.KindSet
	if s.With(parsers.AuthFailed).Has(parsers.UnknownUser) {
		t.Error("KindSet.Has: wrong kind")
	}
}

func TestRegistry(t *testing.T) {
	if _, err := parsers.New("nope", parsers.Options{}); err == nil || !strings.Contains(err.Error(), "unknown parser") {
		t.Errorf("New(nope) error = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Register with an empty name did not panic")
		}
	}()
	parsers.Register("", nil)
}

// TestStdlibOnly keeps the parsers free of dependencies, so they can be
// fuzzed and reused anywhere.
func TestStdlibOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/sipguard/sipguard/parsers") {
			t.Errorf("parsers depend on %s; parsers must use the standard library only", p)
		}
	}
}

func TestDropOutcomes(t *testing.T) {
	for _, o := range parsers.DropOutcomes() {
		if !o.Dropped() {
			t.Errorf("%v.Dropped() = false", o)
		}
	}
	for _, o := range []parsers.Outcome{parsers.Ignored, parsers.Matched} {
		if o.Dropped() {
			t.Errorf("%v.Dropped() = true", o)
		}
	}
}
