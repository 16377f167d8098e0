// Package failjson reads fail2ban's filter test files
// (tests/files/logs/* of fail2ban, installed with Debian's fail2ban): log
// lines from real systems, each after a "# failJSON:" comment giving the
// address fail2ban's filter must find in it. sipguard's tests run its
// parsers on them, which were not written against them.
package failjson

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Dir is where Debian's fail2ban installs the files.
const Dir = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs"

// Sample is one log line and what fail2ban expects of it.
type Sample struct {
	N     int    // line number in the file
	Line  string // the log line
	Match bool   // fail2ban's filter must match the line
	Host  string // the address it must find
}

// Read returns the samples of a file: the lines that follow a failJSON
// comment. Lines without one (and comments) are not samples.
func Read(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out    []Sample
		expect *Sample
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# failJSON:"); ok {
			var j struct {
				Match bool   `json:"match"`
				Host  string `json:"host"`
			}
			if err := json.Unmarshal([]byte(rest), &j); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			expect = &Sample{Match: j.Match, Host: j.Host}
			continue
		}
		if line == "" || line[0] == '#' || expect == nil {
			continue
		}
		expect.N, expect.Line = n, line
		out = append(out, *expect)
		expect = nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Check compares a parser's reading of the sample with fail2ban's
// expectation: "" when they agree, otherwise what is wrong.
func (s Sample) Check(matched bool, addr string) string {
	switch {
	case s.Match && !matched:
		return fmt.Sprintf("line %d: not matched; want %s\n%s", s.N, s.Host, s.Line)
	case s.Match && addr != s.Host:
		return fmt.Sprintf("line %d: address %s; want %s\n%s", s.N, addr, s.Host, s.Line)
	case !s.Match && matched:
		return fmt.Sprintf("line %d: matched %s; want no match\n%s", s.N, addr, s.Line)
	}
	return ""
}
