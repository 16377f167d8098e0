// Package parsertest holds what every parser package's tests share: their
// testdata lines, the golden files, the rule that no address comes from
// attacker text, and the fuzz seeds.
package parsertest

import (
	"bytes"
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

// Lines returns the log lines of a testdata file with their line numbers,
// skipping comments and blank lines.
func Lines(t testing.TB, path string) (nums []int, lines [][]byte) {
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

// Golden parses every testdata/*.log file with one parser each and
// compares the outcome of each line with testdata/*.golden; update
// rewrites the golden files instead (review the diff).
func Golden(t *testing.T, newParser func(testing.TB) parsers.Parser, update bool) {
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
			if update {
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

// Seed adds every testdata/*.log line to the fuzz corpus.
func Seed(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, file := range files {
		_, lines := Lines(f, file)
		for _, l := range lines {
			f.Add(l)
		}
	}
}

// AddrInLine reports whether some part of a run of address characters in
// line (such as the address in "D:198.51.100.7:5060") parses to a.
func AddrInLine(line []byte, a netip.Addr) bool {
	isAddrChar := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.' || c == '%'
	}
	for i := 0; i < len(line); {
		if !isAddrChar(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isAddrChar(line[j]) {
			j++
		}
		tok := line[i:j]
		for s := range tok {
			// An address is at most 45 characters ("ffff:...:255.255.255.255").
			for e := min(len(tok), s+45); e > s; e-- {
				if b, err := netip.ParseAddr(string(tok[s:e])); err == nil && b.Unmap().WithZone("") == a {
					return true
				}
			}
		}
		i = j
	}
	return false
}
