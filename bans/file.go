package bans

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
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
//	ban	<target>	<label>	<since ms>	<expires ms>	<count>	<offences>	"<source>"	"<addr>"	"<reason>"	["<node>"]
//	lifted	<target>	<at ms>	<until ms>
//	offence	<prefix>	<count>	<last ms>	<until ms>
//
// <label> is Record.Label; the node is written only for peers' bans, and
// lifted records exist only in a cluster: the files of a daemon without
// [cluster] still read with older versions.
func Encode(s Snapshot) []byte {
	b := make([]byte, 0, 64+len(s.Bans)*120+len(s.Offences)*60)
	b = append(b, fileHeader...)
	b = append(b, '\n')
	for _, r := range s.Bans {
		b = append(b, "ban\t"...)
		b = r.Target.AppendTo(b)
		b = append(b, '\t')
		b = strconv.AppendQuote(b, r.Label())
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
			b = strconv.AppendQuote(b, s)
		}
		if node := r.Node(); node != "" {
			b = append(b, '\t')
			b = strconv.AppendQuote(b, node)
		}
		b = append(b, '\n')
	}
	for p, u := range s.Lifts {
		b = append(b, "lifted\t"...)
		b = p.AppendTo(b)
		// At rounded up: a ban of the same millisecond stays lifted.
		for _, n := range []int64{(u.At.UnixNano() + 999_999) / 1e6, u.Until.UnixMilli()} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '\n')
	}
	for _, o := range s.Offences {
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

// Decode reads what Encode wrote. An error names the line.
func Decode(data []byte) (Snapshot, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text() != fileHeader {
		return Snapshot{}, fmt.Errorf("not a sipguard bans file (want %q first)", fileHeader)
	}
	s := Snapshot{Lifts: map[netip.Prefix]Lift{}}
	for n := 2; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		var err error
		switch {
		case f[0] == "ban" && (len(f) == 10 || len(f) == 11):
			var r *Record
			r, err = decodeBan(f)
			s.Bans = append(s.Bans, r)
		case f[0] == "offence" && len(f) == 5:
			var o engine.Offence
			var nums [3]int64
			o.Prefix, err = netip.ParsePrefix(f[1])
			if err == nil {
				err = ints(nums[:], f[2:])
			}
			o.Count, o.Last, o.Until = int(nums[0]), time.UnixMilli(nums[1]), time.UnixMilli(nums[2])
			s.Offences = append(s.Offences, o)
		case f[0] == "lifted" && len(f) == 4:
			var p netip.Prefix
			var nums [2]int64
			p, err = netip.ParsePrefix(f[1])
			if err == nil {
				err = ints(nums[:], f[2:])
			}
			s.Lifts[p] = Lift{At: time.UnixMilli(nums[0]), Until: time.UnixMilli(nums[1])}
		default:
			err = fmt.Errorf("unknown record %q", f[0])
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("line %d: %w", n, err)
		}
	}
	return s, sc.Err()
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
	if len(f) == 11 {
		texts = append(texts, &node)
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
