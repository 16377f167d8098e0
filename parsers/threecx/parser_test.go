package threecx_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func newParser(t testing.TB) parsers.Parser {
	t.Helper()
	p, err := parsers.New("3cx", parsers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testLines returns the log lines of a testdata file with their line
// numbers, skipping comments and blank lines.
func testLines(t testing.TB, path string) (nums []int, lines [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		nums, lines = append(nums, i+1), append(lines, l)
	}
	return nums, lines
}

func describe(o parsers.Outcome) string {
	if o.Dropped() {
		return "drop " + o.String()
	}
	return o.String()
}

// TestGolden parses every testdata/*.log file and compares the outcome of
// each line with testdata/*.golden ("go test -update" rewrites them).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := newParser(t)
			nums, lines := testLines(t, file)
			var out strings.Builder
			for i, l := range lines {
				var ev parsers.Event
				fmt.Fprintf(&out, "%d: %s\n", nums[i], describe(p.Parse(l, &ev)))
			}
			golden := strings.TrimSuffix(file, ".log") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if out.String() != string(want) {
				t.Errorf("got\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
}

// TestNeverAnEvent: the [CM102001] lines, whose addresses are SIP header
// text, are counted and never become events.
func TestNeverAnEvent(t *testing.T) {
	p := newParser(t)
	_, lines := testLines(t, "testdata/3cx.log")
	dropped := 0
	for _, l := range lines {
		var ev parsers.Event
		switch o := p.Parse(l, &ev); {
		case o == parsers.Matched:
			t.Errorf("%q: matched %v; 3CX lines carry no packet source", l, ev.Addr)
		case o == parsers.DropAddress:
			dropped++
		}
	}
	if dropped != 4 {
		t.Errorf("%d [CM102001] lines counted; want 4", dropped)
	}
}
