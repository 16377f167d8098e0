package bans

import (
	"unicode"
	"unicode/utf8"
)

// MaxReason is the longest reason a ban keeps, in bytes. Reasons come from
// people (ban, import), peers and feeds, and go to logs, tables, the bans
// file, notifications and the cluster: one of a megabyte made the bans
// file unreadable.
const MaxReason = 256

// ellipsis ends a reason that was cut.
const ellipsis = "…"

// CleanReason returns s as a ban keeps it: valid UTF-8 (a byte that is not
// becomes U+FFFD), every character that is not printable (control
// characters, line breaks, tabs, bidirectional overrides) a space, so that
// a reason can forge no log line or table row, and at most MaxReason bytes,
// cut at a character and ended with "…".
func CleanReason(s string) string {
	if len(s) <= MaxReason && printable(s) {
		return s
	}
	b := make([]byte, 0, min(len(s), MaxReason)+utf8.UTFMax)
	cut := 0 // where to cut, leaving room for the ellipsis
	for _, r := range s {
		if !unicode.IsPrint(r) {
			r = ' '
		}
		if len(b)+utf8.RuneLen(r) > MaxReason {
			return string(append(b[:cut], ellipsis...))
		}
		b = utf8.AppendRune(b, r)
		if len(b) <= MaxReason-len(ellipsis) {
			cut = len(b)
		}
	}
	return string(b)
}

// printable tells whether s is valid UTF-8 of printable characters only.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
