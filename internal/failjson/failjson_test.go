package failjson

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	content := `# filterOptions: [{}]
a line without expectation
# failJSON: { "time": "2013-12-31T17:39:54", "match": true, "host": "192.0.2.1" }
first
# a comment between is not a sample

# failJSON: { "match": false }
second
third
`
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{{N: 4, Line: "first", Match: true, Host: "192.0.2.1"}, {N: 8, Line: "second"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v; want %+v", got, want)
	}
	if err := os.WriteFile(p, []byte("# failJSON: {bad\nx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil {
		t.Error("bad JSON: no error")
	}
}

func TestCheck(t *testing.T) {
	m := Sample{N: 1, Line: "l", Match: true, Host: "192.0.2.1"}
	n := Sample{N: 2, Line: "l"}
	for _, c := range []struct {
		s       Sample
		matched bool
		addr    string
		ok      bool
	}{
		{m, true, "192.0.2.1", true},
		{m, true, "192.0.2.2", false},
		{m, false, "", false},
		{n, false, "", true},
		{n, true, "192.0.2.1", false},
	} {
		if got := c.s.Check(c.matched, c.addr); (got == "") != c.ok {
			t.Errorf("%+v %v %s: %q", c.s, c.matched, c.addr, got)
		}
	}
}
