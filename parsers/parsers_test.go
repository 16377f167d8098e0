package parsers_test

import (
	"os/exec"
	"strings"
	"testing"

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

func TestKinds(t *testing.T) {
	want := "auth_failed,unknown_user,acl_denied,unknown_extension,admin_auth_failed,rejected_connection,injection,challenge_unanswered"
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
// fuzzed and reused anywhere: the standard library and logtime, a leaf of
// the standard library only, are all they may import.
func TestStdlibOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/sipguard/sipguard/parsers") && p != "github.com/sipguard/sipguard/logtime" {
			t.Errorf("parsers depend on %s; parsers must use the standard library and logtime only", p)
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
