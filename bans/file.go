package bans

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sipguard/sipguard/engine"
)

// The bans file (bans.state in the daemon's state directory) holds the
// bans in force, the unbans remembered for the cluster and the engine's
// offence history. It is a line format rather than JSON: 100,000 bans
// encode in tens of milliseconds instead of half a second, and decode as
// fast.
const fileHeader = "# sipguard bans v1"

// Snapshot is what the bans file holds.
type Snapshot struct {
	Bans     []*Record
	Lifts    map[netip.Prefix]Lift
	Offences []engine.Offence
}

// Encode writes s, one record per line, tab-separated, text fields quoted:
//
//	ban	<target>	<label>	<since ms>	<expires ms>	<count>	<offences>	"<source>"	"<addr>"	"<reason>"	["<node>"	["<ports>"]]
//	lifted	<target>	<at ms>	<until ms>	["<node>"]
//	offence	<prefix>	<count>	<last ms>	<until ms>
//
// <label> is Record.Label; the node is written only for peers' bans (or
// empty before the ports), the ports only for a ban of a rule's own ports
// (Record.Ports): files without them read as the default ports; and
// lifted records exist only in a cluster: the files of a daemon without
// [cluster] still read with older versions.
func Encode(s Snapshot) []byte {
	// Sized once: the file of 100,000 bans with long reasons is tens of
	// megabytes, and growing it copies it.
	size := 64 + len(s.Lifts)*80 + len(s.Offences)*80
	for _, r := range s.Bans {
		size += 160 + len(r.Rule) + len(r.Source) + len(r.Reason) + len(r.Origin.Name) + len(r.Ports)
	}
	b := make([]byte, 0, size)
	b = append(b, fileHeader...)
	b = append(b, '\n')
	for _, r := range s.Bans {
		b = append(b, "ban\t"...)
		b = r.Target.AppendTo(b)
		b = append(b, '\t')
		b = appendQuote(b, r.Label())
		for _, n := range []int64{r.Since.UnixMilli(), r.Expires.UnixMilli(), int64(r.Count), int64(r.Offences)} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		addr := ""
		if r.Addr.IsValid() {
			addr = r.Addr.String()
		}
		for _, s := range []string{r.Source, addr, r.Reason} {
			b = append(b, '\t')
			b = appendQuote(b, s)
		}
		if node := r.Node(); node != "" || r.Ports != "" {
			b = append(b, '\t')
			b = appendQuote(b, node)
		}
		if r.Ports != "" {
			b = append(b, '\t')
			b = appendQuote(b, r.Ports)
		}
		b = append(b, '\n')
	}
	// Lifts and offences come from maps: sorted, the same state writes
	// the same file (a diff of two saves shows what changed).
	lifted := make([]netip.Prefix, 0, len(s.Lifts))
	for p := range s.Lifts {
		lifted = append(lifted, p)
	}
	sortPrefixes(lifted)
	for _, p := range lifted {
		u := s.Lifts[p]
		b = append(b, "lifted\t"...)
		b = p.AppendTo(b)
		// At rounded up: a ban of the same millisecond stays lifted. (In
		// milliseconds: nanoseconds overflow in 2262.)
		at := u.At.UnixMilli()
		if u.At.Nanosecond()%1e6 != 0 {
			at++
		}
		for _, n := range []int64{at, u.Until.UnixMilli()} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		if u.Origin != "" {
			b = append(b, '\t')
			b = appendQuote(b, u.Origin)
		}
		b = append(b, '\n')
	}
	offences := slices.Clone(s.Offences)
	slices.SortFunc(offences, func(a, b engine.Offence) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	for _, o := range offences {
		b = append(b, "offence\t"...)
		b = o.Prefix.AppendTo(b)
		for _, n := range []int64{int64(o.Count), o.Last.UnixMilli(), o.Until.UnixMilli()} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '\n')
	}
	return b
}

// Skipped is what Decode could not read. A bad line costs only itself:
// the records around it are kept.
type Skipped struct {
	Lines int   // lines skipped
	First error // why the first one was, naming its line
}

// Decode reads what Encode wrote. A line it cannot read is skipped and
// counted in Skipped; an error means that data is not a bans file at all.
// Lines may be of any length (a reason of a megabyte written by an older
// version reads back; the daemon cuts it with CleanReason).
func Decode(data []byte) (Snapshot, Skipped, error) {
	first, data, _ := bytes.Cut(data, []byte{'\n'})
	if string(first) != fileHeader {
		return Snapshot{}, Skipped{}, fmt.Errorf("not a sipguard bans file (want %q first)", fileHeader)
	}
	s := Snapshot{Lifts: map[netip.Prefix]Lift{}}
	var skipped Skipped
	for n := 2; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if err := s.decodeLine(string(line)); err != nil {
			if skipped.Lines++; skipped.First == nil {
				// Errors quote the field: a damaged one may be long.
				skipped.First = fmt.Errorf("line %d: %s", n, clip(err.Error(), 200))
			}
		}
	}
	return s, skipped, nil
}

// decodeLine adds the record of one line to s.
func (s *Snapshot) decodeLine(line string) error {
	f := strings.Split(line, "\t")
	switch {
	case f[0] == "ban" && len(f) >= 10 && len(f) <= 12:
		r, err := decodeBan(f)
		if err != nil {
			return err
		}
		s.Bans = append(s.Bans, r)
	case f[0] == "offence" && len(f) == 5:
		var o engine.Offence
		var nums [3]int64
		var err error
		if o.Prefix, err = netip.ParsePrefix(f[1]); err != nil {
			return err
		}
		if err := ints(nums[:], f[2:]); err != nil {
			return err
		}
		o.Count, o.Last, o.Until = int(nums[0]), time.UnixMilli(nums[1]), time.UnixMilli(nums[2])
		s.Offences = append(s.Offences, o)
	case f[0] == "lifted" && (len(f) == 4 || len(f) == 5):
		var nums [2]int64
		p, err := netip.ParsePrefix(f[1])
		if err != nil {
			return err
		}
		if err := ints(nums[:], f[2:4]); err != nil {
			return err
		}
		u := Lift{At: time.UnixMilli(nums[0]), Until: time.UnixMilli(nums[1])}
		if len(f) == 5 {
			if u.Origin, err = strconv.Unquote(f[4]); err != nil {
				return fmt.Errorf("origin: %w", err)
			}
		}
		s.Lifts[p] = u
	default:
		return fmt.Errorf("unknown record %q", clip(f[0], 32))
	}
	return nil
}

// appendQuote is strconv.AppendQuote, faster for the common text that
// needs no escape (printable ASCII without quote or backslash), and with
// room made first: AppendQuote grows a full buffer by just the quoted
// string's length, copying it whole.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(slices.Grow(b, len(s)+2), s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// clip shortens what an error quotes of a damaged line to n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func decodeBan(f []string) (*Record, error) {
	r := &Record{}
	var nums [4]int64
	var label, addr, node string
	var err error
	r.Target, err = netip.ParsePrefix(f[1])
	if err == nil {
		label, err = strconv.Unquote(f[2])
	}
	if err == nil {
		err = ints(nums[:], f[3:7])
	}
	texts := []*string{&r.Source, &addr, &r.Reason}
	if len(f) >= 11 {
		texts = append(texts, &node)
	}
	if len(f) == 12 {
		texts = append(texts, &r.Ports)
	}
	for i, dst := range texts {
		if err == nil {
			*dst, err = strconv.Unquote(f[7+i])
		}
	}
	if err == nil && addr != "" {
		r.Addr, err = netip.ParseAddr(addr)
	}
	r.Origin, r.Rule = originOf(label, node)
	r.Since, r.Expires = time.UnixMilli(nums[0]), time.UnixMilli(nums[1])
	r.Count, r.Offences = int(nums[2]), int(nums[3])
	return r, err
}

// ints parses decimal fields into dst.
func ints(dst []int64, fields []string) error {
	for i := range dst {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return err
		}
		dst[i] = n
	}
	return nil
}
