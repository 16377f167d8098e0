package parsertest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

type goldenEvent struct {
	Time    string `json:"time"`
	IP      string `json:"ip"`
	Port    uint16 `json:"port"`
	Kind    string `json:"kind"`
	Service string `json:"service"`
	User    string `json:"user"`
}

// Describe is a line's outcome as the golden files write it.
func Describe(o parsers.Outcome, ev *parsers.Event) string {
	if o != parsers.Matched {
		if o.Dropped() {
			return "drop " + o.String()
		}
		return o.String()
	}
	t := "none"
	if !ev.Time.IsZero() {
		t = ev.Time.Format(time.RFC3339Nano)
	}
	j, _ := json.Marshal(goldenEvent{t, ev.Addr.String(), ev.Port, ev.Kind.String(), ev.Service.String(), ev.User})
	return "matched " + string(j)
}

// Testdata runs the tests every parser's testdata passes: Golden, and
// NeverAttackerText with minMatched and except.
func Testdata(t *testing.T, newParser func(testing.TB) parsers.Parser, minMatched int, except func(file string, line []byte) bool) {
	t.Run("golden", func(t *testing.T) { Golden(t, newParser) })
	t.Run("attacker_text", func(t *testing.T) { NeverAttackerText(t, newParser, minMatched, except) })
}

// Golden parses every testdata/*.log file with one parser each and
// compares the outcome of each line with testdata/*.golden; with -update
// ("go test -update") it rewrites the golden files instead (review the
// diff).
func Golden(t *testing.T, newParser func(testing.TB) parsers.Parser) {
	files, err := filepath.Glob("testdata/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := newParser(t)
			nums, lines := Lines(t, file)
			var out strings.Builder
			for i, l := range lines {
				var ev parsers.Event
				fmt.Fprintf(&out, "%d: %s\n", nums[i], Describe(p.Parse(l, &ev), &ev))
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
			gotLines, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
			for i := range max(len(gotLines), len(wantLines)) {
				var g, w string
				if i < len(gotLines) {
					g = gotLines[i]
				}
				if i < len(wantLines) {
					w = wantLines[i]
				}
				if g != w {
					t.Errorf("got  %s\nwant %s", g, w)
				}
			}
		})
	}
}

// Victims holds the addresses that appear in the testdata only inside
// attacker-written text or as the PBX's own address: no line may ever
// produce one of them.
var Victims = netip.MustParsePrefix("203.0.113.0/24")

// NeverAttackerText checks, over every testdata/*.log line, the rule that
// matters most: no event carries an address of Victims. except exempts a
// line (a documented limit); at least minMatched lines must match, so the
// testdata keeps its positive cases.
func NeverAttackerText(t *testing.T, newParser func(testing.TB) parsers.Parser, minMatched int, except func(file string, line []byte) bool) {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.log")
	matched := 0
	for _, file := range files {
		p := newParser(t)
		nums, lines := Lines(t, file)
		for i, l := range lines {
			var ev parsers.Event
			if p.Parse(l, &ev) != parsers.Matched {
				continue
			}
			matched++
			if Victims.Contains(ev.Addr) && (except == nil || !except(file, l)) {
				t.Errorf("%s:%d: banned %s, an address from attacker text", file, nums[i], ev.Addr)
			}
		}
	}
	if matched < minMatched {
		t.Errorf("only %d lines matched: the testdata lost its positive cases", matched)
	}
}
