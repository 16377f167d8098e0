// Package calls reads what Asterisk writes about calls as they happen and
// after they end: CEL events from cel_custom with sipguard's mapping
// (contrib/asterisk/cel_custom.conf) and CDRs from cdr_csv's Master.csv.
// It turns them into calls: who placed one (the account), what was
// dialled, when it started, was answered and ended. It is pure: the caller
// feeds it lines and a clock-free stream of records; the toll-fraud rules
// (package fraud) decide what is suspicious.
//
// Callers write several of the fields (the dialled number, caller ID): a
// field is never searched for other fields, and a record that does not
// read exactly as the mapping writes it is dropped and counted.
package calls

import (
	"strings"
	"time"
)

// Call is an outbound or internal call as far as it is known.
type Call struct {
	ID      string // the linked ID (CEL) or unique ID (CDR): one per call
	Account string // the endpoint that placed it ("1001" of PJSIP/1001-0000002a)
	Tech    string // its channel technology ("PJSIP", "SIP", "IAX2")
	Dialled string // the number or extension dialled: caller-written
	Context string // the dialplan context it was placed in
	Start   time.Time
	Answer  time.Time // zero when not answered (yet)
	End     time.Time // zero while the call goes on
}

// Billed is how long the call was answered, once it ended.
func (c *Call) Billed() time.Duration {
	if c.Answer.IsZero() || c.End.IsZero() || c.End.Before(c.Answer) {
		return 0
	}
	return c.End.Sub(c.Answer)
}

// Outcome says what became of a line.
type Outcome uint8

// Outcomes; every one from DropMalformed on is a line dropped.
const (
	Pending       Outcome = iota // part of a record that goes on in the next line
	Ignored                      // a record that says nothing about a call's progress
	Matched                      // a record that started, answered or ended a call
	DropMalformed                // not as the mapping writes it
	DropTooLong                  // longer than the mapping can write: reading starts again at the next line
	DropTime                     // a time that cannot be read
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Ignored:
		return "ignored"
	case Matched:
		return "matched"
	case DropMalformed:
		return "malformed"
	case DropTooLong:
		return "too_long"
	case DropTime:
		return "bad_time"
	}
	return "outcome?"
}

// Account reads the endpoint out of a channel name: "PJSIP/1001-0000002a"
// is PJSIP's endpoint 1001. Local channels (Local/100@ctx-00000003;1) and
// names not of that shape have none. The name itself comes from the
// PBX's configuration, except for chan_sip's guest calls (SIP/<address>-n),
// which are still the caller's address, not text it wrote.
//
// chan_sip and chan_pjsip end the name with eight or more hex digits
// ("%08x"); chan_iax2 with the call number in decimal ("IAX2/%s-%d",
// "IAX2/1004-4567"): without that case an IAX2 account's calls would have
// no account, and no rule would ever check them.
func Account(channel string) (tech, account string) {
	slash := strings.IndexByte(channel, '/')
	dash := strings.LastIndexByte(channel, '-')
	if slash <= 0 || dash <= slash+1 {
		return "", ""
	}
	tech, account = channel[:slash], channel[slash+1:dash]
	suffix := channel[dash+1:]
	switch {
	case tech == "Local":
		return "", ""
	case tech == "IAX2" && isDigits(suffix):
	case len(suffix) < 8 || !isHex(suffix):
		return "", ""
	}
	return tech, account
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}
