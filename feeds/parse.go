package feeds

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"

	"github.com/sipguard/sipguard/bans"
)

const (
	// DefaultMaxEntries is the entry cap of a feed without MaxEntries.
	DefaultMaxEntries = 100000
	// MaxMaxEntries is the largest MaxEntries a Feed may set.
	MaxMaxEntries = 1000000
	// MaxLine is the longest line read, in bytes, line ending excluded.
	// A longer line is invalid.
	MaxLine = 4096
	// MinBits4 and MinBits6 are the shortest prefixes kept (the limits of
	// package bans): a wider entry is skipped and counted in List.TooWide.
	MinBits4 = bans.MinBits4
	MinBits6 = bans.MinBits6

	// bytesPerEntry and slackBytes make the input cap: an entry line
	// with a comment rarely takes more than 128 bytes, and 1 MiB leaves
	// room for a header and comment lines.
	bytesPerEntry = 128
	slackBytes    = 1 << 20
	// quoteMax bounds the text of a line quoted in FirstInvalid.
	quoteMax = 64
)

var (
	// ErrTooManyEntries is returned for a list of more entries than
	// allowed.
	ErrTooManyEntries = errors.New("too many entries")
	// ErrTooLarge is returned for an input larger than its cap
	// (max*128 bytes + 1 MiB).
	ErrTooLarge = errors.New("too large")
	// ErrNotAList is returned when more than half of the lines that are
	// neither blank nor comments are invalid or too wide.
	ErrNotAList = errors.New("not an address list")
	// ErrEmpty is returned for an input with nothing but whitespace in
	// it. A list without entries holds at least a comment.
	ErrEmpty = errors.New("empty input")
)

// List is a parsed feed.
type List struct {
	// Prefixes are the entries, aggregated: masked, IPv4-mapped
	// addresses unmapped, sorted (IPv4 first, then by address), without
	// duplicates and without a prefix contained in another.
	Prefixes []netip.Prefix
	// Entries counts the lines read as an entry, before aggregation,
	// TooWide ones included.
	Entries int
	// Masked counts the entries whose host bits were set, and cleared
	// (192.0.2.1/24 read as 192.0.2.0/24).
	Masked int
	// Invalid counts the lines skipped because they were neither blank,
	// a comment nor an entry; FirstInvalid quotes the first one, as
	// `line 7: "<html>"`.
	Invalid      int
	FirstInvalid string
	// TooWide counts the entries skipped because they were shorter than
	// MinBits4 or MinBits6; FirstTooWide quotes the first one.
	TooWide      int
	FirstTooWide string
}

// Parse reads a list in the format described in the package documentation,
// with at most max entries (DefaultMaxEntries when max <= 0). It reads at
// most max*128 bytes + 1 MiB and one line at a time, so memory stays
// bounded whatever r holds. It returns an error, and no list, for an input
// that breaks a safety rule: ErrTooManyEntries, ErrTooLarge, ErrNotAList or
// ErrEmpty; or for an error reading r.
func Parse(r io.Reader, max int) (List, error) {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	limit := inputCap(max)
	lr := &io.LimitedReader{R: r, N: limit + 1}
	br := bufio.NewReaderSize(lr, MaxLine+2) // a MaxLine line and its CRLF
	var (
		l        List
		prefixes []netip.Prefix
		text     bool // a line that is not blank
	)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		long := false
		var quote []byte
		for err == bufio.ErrBufferFull {
			if !long {
				long = true
				quote = bytes.Clone(line[:quoteMax+1])
			}
			if lr.N == 0 {
				break
			}
			line, err = br.ReadSlice('\n')
		}
		if lr.N == 0 {
			return List{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		if err != nil && err != io.EOF {
			return List{}, fmt.Errorf("read line %d: %w", n, err)
		}
		if len(line) == 0 && !long && err == io.EOF {
			break
		}
		switch {
		case long:
			text = true
			l.invalid(n, quote)
		default:
			if n == 1 {
				line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
			}
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) > MaxLine {
				text = true
				l.invalid(n, line)
				break
			}
			s := trimBlank(line)
			if len(s) == 0 {
				break
			}
			text = true
			if s[0] == '#' || s[0] == ';' {
				break
			}
			p, masked, ok := parseEntry(s)
			if !ok {
				l.invalid(n, line)
				break
			}
			l.Entries++
			if l.Entries > max {
				return List{}, fmt.Errorf("%w: more than %d", ErrTooManyEntries, max)
			}
			if masked {
				l.Masked++
			}
			if bans.TooWide(p) {
				l.TooWide++
				if l.FirstTooWide == "" {
					l.FirstTooWide = quoteLine(n, s)
				}
				break
			}
			prefixes = append(prefixes, p)
		}
		if err == io.EOF {
			break
		}
	}
	if !text {
		return List{}, ErrEmpty
	}
	if bad := l.Invalid + l.TooWide; bad > 0 && bad*2 > l.Invalid+l.Entries {
		first := l.FirstInvalid
		if first == "" {
			first = l.FirstTooWide
		}
		return List{}, fmt.Errorf("%w: %d of %d lines invalid or too wide, first %s",
			ErrNotAList, bad, l.Invalid+l.Entries, first)
	}
	l.Prefixes = aggregate(prefixes)
	return l, nil
}

// inputCap is the most bytes Parse reads for max entries.
func inputCap(max int) int64 {
	if int64(max) > (math.MaxInt64-slackBytes)/bytesPerEntry {
		return math.MaxInt64 - 1
	}
	return int64(max)*bytesPerEntry + slackBytes
}

func (l *List) invalid(n int, line []byte) {
	l.Invalid++
	if l.FirstInvalid == "" {
		l.FirstInvalid = quoteLine(n, line)
	}
}

// quoteLine formats line n for the log: `line 7: "<html>"`, cut short.
func quoteLine(n int, line []byte) string {
	s := string(line)
	if len(s) > quoteMax {
		s = s[:quoteMax] + "..."
	}
	return fmt.Sprintf("line %d: %q", n, s)
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func trimBlank(b []byte) []byte {
	for len(b) > 0 && isBlank(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// parseEntry reads a trimmed, non-comment line: an address or prefix,
// optionally followed by whitespace and a comment. It returns the prefix
// unmapped (bans.ParseTarget) and, unlike a typed ban, masked: a list's
// 192.0.2.1/24 is read as 192.0.2.0/24, reporting that host bits were set.
func parseEntry(s []byte) (p netip.Prefix, masked, ok bool) {
	field := s
	if i := bytes.IndexAny(s, " \t"); i >= 0 {
		field = s[:i]
		rest := trimBlank(s[i:])
		if len(rest) > 0 && rest[0] != '#' && rest[0] != ';' {
			return netip.Prefix{}, false, false
		}
	}
	p, err := bans.ParseTarget(string(field))
	if err == nil {
		return p, false, true
	}
	var hostBits *bans.HostBitsError
	if errors.As(err, &hostBits) {
		return hostBits.Masked, true, true
	}
	return netip.Prefix{}, false, false
}

// aggregate sorts ps and drops duplicates and prefixes contained in
// another. ps are masked. It reuses ps.
func aggregate(ps []netip.Prefix) []netip.Prefix {
	// Masked prefixes sort by family, address, then length (as
	// netip.Prefix.Compare, without masking again): a prefix comes after
	// every prefix containing it, and since the prefixes kept do not
	// overlap, only the last one kept can contain the next.
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}
