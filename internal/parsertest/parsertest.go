// Package parsertest holds what every parser package's tests share, so
// that a parser package only wires itself in: the parser under test (New),
// its testdata lines, the testdata checks (Testdata: the golden files with
// their -update flag, and the rule that no address comes from attacker
// text), the fuzz test (Fuzz, its seeds and the checks every event must
// pass) and the benchmark (Bench).
package parsertest

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// update is the -update flag of every parser package's tests.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Now is the usual fixed "current time" of the parser tests: dates without
// a year resolve against it.
var Now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// New returns the function a parser package's tests make their parser
// with: the parser registered as name, reading timestamps without a zone
// in UTC and those without a year against now (usually Now).
func New(name string, now time.Time) func(testing.TB) parsers.Parser {
	return func(t testing.TB) parsers.Parser {
		t.Helper()
		p, err := parsers.New(name, parsers.Options{Location: time.UTC, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

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
