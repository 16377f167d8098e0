package threecx

import (
	"bytes"

	"github.com/sipguard/sipguard/parsers"
)

func init() { parsers.Register("3cx", New) }

// cm102001 is the message 3CX writes for a failed SIP authentication; the
// code, when the line carries it, is "[CM102001]".
const (
	cm102001Code = "[CM102001]"
	cm102001Text = "Authentication failed for SipReq:"
)

// Parser reads 3CX log lines. It keeps no state.
type Parser struct{}

// New returns a 3CX parser.
func New(parsers.Options) (parsers.Parser, error) { return Parser{}, nil }

// Idle reports true: each line is read alone (parsers.Resumable).
func (Parser) Idle() bool { return true }

// Parse reads one 3CX log line. No 3CX line is known to carry the packet
// source of a failure (see doc.go), so Parse never reports Matched: a
// failed SIP authentication ([CM102001]) is counted as a dropped line
// (bad_address: its only addresses are SIP header text), everything else
// is ignored.
func (Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	*ev = parsers.Event{}
	if isCM102001(line) {
		return parsers.DropAddress
	}
	return parsers.Ignored
}

// isCM102001 reports whether line is a [CM102001] message: its text at the
// start of the line (as 3CX's documentation prints it) or right after the
// code, whatever prefix precedes the code (3CX's log line prefix has not
// been published).
func isCM102001(line []byte) bool {
	if bytes.HasPrefix(line, []byte(cm102001Text)) {
		return true
	}
	k := bytes.Index(line, []byte(cm102001Code))
	if k < 0 {
		return false
	}
	rest := bytes.TrimPrefix(line[k+len(cm102001Code):], []byte(":"))
	rest = bytes.TrimLeft(rest, " ")
	return bytes.HasPrefix(rest, []byte(cm102001Text))
}
