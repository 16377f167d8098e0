package feeds_test

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/feeds"
)

type parseCase struct {
	name    string
	in      string
	max     int
	want    []string // prefixes
	invalid int
	tooWide int
	special int
	masked  int
	first   string // FirstInvalid, when set
	firstTW string // FirstTooWide, when set
	firstSp string // FirstSpecial, when set
	err     error
}

var parseCases = []parseCase{
	{name: "Addresses", in: "192.0.2.1\n2001:db8::1\n198.51.100.7\n",
		want: []string{"192.0.2.1/32", "198.51.100.7/32", "2001:db8::1/128"}},
	{name: "CIDRs", in: "192.0.2.0/24\n2001:db8::/32\n198.51.100.4/30\n10.0.0.0/8\n2001:db8:ffff::/48\n",
		want: []string{"10.0.0.0/8", "192.0.2.0/24", "198.51.100.4/30", "2001:db8::/32"}},
	{name: "IPv6", in: "2001:DB8::1\n2001:db8:0:0:0:0:0:2\n::1\n2001:db8:1::/64\n",
		want: []string{"2001:db8::1/128", "2001:db8::2/128", "2001:db8:1::/64"}, special: 1, firstSp: `line 3: "::1"`},
	// What feeds were seen to pass: never banned, skipped and counted.
	{name: "Special", in: "0.0.0.0/8\nfe80::/19\nff02::/19\n224.0.0.0/8\n255.255.255.255\n127.0.0.1\n::/64\n169.254.0.0/16\n" +
		"::ffff:127.0.0.1\n" + strings.Repeat("192.0.2.1\n", 10),
		want: []string{"192.0.2.1/32"}, special: 9, firstSp: `line 1: "0.0.0.0/8"`},
	{name: "Mapped", in: "::ffff:192.0.2.1\n::ffff:198.51.100.0/120\n::ffff:c000:0203\n",
		want: []string{"192.0.2.1/32", "192.0.2.3/32", "198.51.100.0/24"}},
	{name: "MappedTooWide", in: "::ffff:0.0.0.0/96\n192.0.2.1\n",
		want: []string{"192.0.2.1/32"}, tooWide: 1, firstTW: `line 1: "::ffff:0.0.0.0/96"`},
	{name: "Comments",
		in: "# header\n; header\n   # indented\n\t; tabbed\n192.0.2.1 # after\n192.0.2.2\t; after tab\n" +
			"192.0.2.3  #\n192.0.2.4;x y\n192.0.2.5 ;; # ;\n#192.0.2.6\n;192.0.2.7\n",
		want:    []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.5/32"},
		invalid: 1, first: `line 8: "192.0.2.4;x y"`},
	{name: "CommentWithoutSpace", in: "192.0.2.1#x\n192.0.2.2\n192.0.2.3\n",
		want: []string{"192.0.2.2/32", "192.0.2.3/32"}, invalid: 1, first: `line 1: "192.0.2.1#x"`},
	{name: "Blank", in: "\n\n  \t\n192.0.2.1\n\n\t\n   192.0.2.2   \n\n",
		want: []string{"192.0.2.1/32", "192.0.2.2/32"}},
	{name: "CRLF", in: "# list\r\n192.0.2.1\r\n\r\n198.51.100.0/24 ; x\r\n2001:db8::1\r\n",
		want: []string{"192.0.2.1/32", "198.51.100.0/24", "2001:db8::1/128"}},
	{name: "NoFinalNewline", in: "192.0.2.1\n192.0.2.2",
		want: []string{"192.0.2.1/32", "192.0.2.2/32"}},
	{name: "BOM", in: "\xef\xbb\xbf192.0.2.1\r\n192.0.2.2\r\n",
		want: []string{"192.0.2.1/32", "192.0.2.2/32"}},
	{name: "BOMComment", in: "\xef\xbb\xbf# list\n192.0.2.1\n",
		want: []string{"192.0.2.1/32"}},
	{name: "BOMNotFirst", in: "192.0.2.1\n\xef\xbb\xbf192.0.2.2\n192.0.2.3\n",
		want: []string{"192.0.2.1/32", "192.0.2.3/32"}, invalid: 1},
	{name: "Aggregated",
		in: "10.1.2.3\n10.0.0.0/8\n10.0.0.0/8\n192.0.2.1\n192.0.2.1/32\n192.0.2.1\n" +
			"2001:db8::/32\n2001:db8:1::1\n192.0.2.0/24\n10.255.255.255\n11.0.0.1\n2001:db8::/32\n",
		want: []string{"10.0.0.0/8", "11.0.0.1/32", "192.0.2.0/24", "2001:db8::/32"}},
	{name: "Adjacent", in: "192.0.2.0/25\n192.0.2.128/25\n",
		want: []string{"192.0.2.0/25", "192.0.2.128/25"}},
	{name: "Sorted", in: "2001:db8::2\n198.51.100.1\n2001:db8::1\n192.0.2.9\n192.0.2.10\n",
		want: []string{"192.0.2.9/32", "192.0.2.10/32", "198.51.100.1/32", "2001:db8::1/128", "2001:db8::2/128"}},
	{name: "HostBits", in: "192.0.2.1/24\n2001:db8::1/32\n198.51.100.0/24\n",
		want: []string{"192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"}, masked: 2},
	{name: "TooWide",
		in:      "0.0.0.0/0\n::/0\n1.0.0.0/7\n2000::/18\n1.0.0.0/8\n2000::/19\n192.0.2.1\n192.0.2.2\n",
		want:    []string{"1.0.0.0/8", "192.0.2.1/32", "192.0.2.2/32", "2000::/19"},
		tooWide: 4, masked: 1, firstTW: `line 1: "0.0.0.0/0"`},
	{name: "TooWideMasked", in: "1.2.3.4/7\n192.0.2.1\n",
		want: []string{"192.0.2.1/32"}, tooWide: 1, masked: 1},
	{name: "Invalid",
		in: "192.0.2.1\n192.0.2.2\nfe80::1%eth0\nexample.com\n192.0.2.3\n" +
			"192.0.2.0-192.0.2.9\n 192.0.2.4\n192.0.2.5/33\n192.0.2.6\n010.0.0.1\n192.0.2.7\n192.0.2.8\n",
		want: []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32",
			"192.0.2.6/32", "192.0.2.7/32", "192.0.2.8/32"},
		invalid: 5, first: `line 3: "fe80::1%eth0"`},
	{name: "ZoneInPrefix", in: "fe80::1%eth0/64\n2001:db8::1\n2001:db8::2\n",
		want: []string{"2001:db8::1/128", "2001:db8::2/128"}, invalid: 1},
	{name: "HalfInvalid", in: "192.0.2.1\nxx\n",
		want: []string{"192.0.2.1/32"}, invalid: 1},
	{name: "OnlyComments", in: "# no entries today\n;\n\n", want: []string{}},
	{name: "LongLine", in: strings.Repeat("1", 5000) + "\n192.0.2.1\n192.0.2.2\n",
		want: []string{"192.0.2.1/32", "192.0.2.2/32"}, invalid: 1,
		first: `line 1: "` + strings.Repeat("1", 64) + `..."`},
	{name: "LineAtMax", in: "192.0.2.1" + strings.Repeat(" ", feeds.MaxLine-9) + "\r\n",
		want: []string{"192.0.2.1/32"}},
	{name: "LineOverMax", in: "192.0.2.1" + strings.Repeat(" ", feeds.MaxLine-8) + "\n192.0.2.2\n",
		want: []string{"192.0.2.2/32"}, invalid: 1},
	{name: "LongLineLast", in: "192.0.2.1\n" + strings.Repeat("#", 3*feeds.MaxLine),
		want: []string{"192.0.2.1/32"}, invalid: 1},
	{name: "MaxEntries", in: "192.0.2.1\n192.0.2.2\n192.0.2.2\n", max: 3,
		want: []string{"192.0.2.1/32", "192.0.2.2/32"}},

	{name: "ErrTooManyEntries", in: "192.0.2.1\n192.0.2.2\n192.0.2.2\n", max: 2, err: feeds.ErrTooManyEntries},
	{name: "ErrTooManyEntriesTooWide", in: "192.0.2.1\n0.0.0.0/0\n192.0.2.2\n", max: 2, err: feeds.ErrTooManyEntries},
	{name: "ErrNotAListMostlyInvalid", in: "192.0.2.1\nxx\nyy\n", err: feeds.ErrNotAList},
	{name: "ErrNotAListMostlyTooWide", in: "0.0.0.0/0\n192.0.2.1\n::/0\n", err: feeds.ErrNotAList},
	{name: "ErrNotAListOnlyTooWide", in: "# everything\n0.0.0.0/0\n", err: feeds.ErrNotAList},
	{name: "ErrNotAListMostlySpecial", in: "127.0.0.1\n192.0.2.1\nfe80::1\n", err: feeds.ErrNotAList},
	{name: "ErrNotAListTrailingText", in: "192.0.2.1 example\n192.0.2.2 example\n", err: feeds.ErrNotAList},
	{name: "ErrNotAListLongLine", in: strings.Repeat("x", 100000), err: feeds.ErrNotAList},
	{name: "ErrEmpty", in: "", err: feeds.ErrEmpty},
	{name: "ErrEmptyBlank", in: " \n\t\r\n\n", err: feeds.ErrEmpty},
	{name: "ErrEmptyBOM", in: "\xef\xbb\xbf\n", err: feeds.ErrEmpty},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := feeds.Parse(strings.NewReader(tc.in), tc.max)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got error %v; want %v", err, tc.err)
				}
				if l.Prefixes != nil {
					t.Fatalf("got prefixes %v with the error", l.Prefixes)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			checkList(t, l, tc.want)
			if l.Invalid != tc.invalid || l.TooWide != tc.tooWide || l.Masked != tc.masked || l.Special != tc.special {
				t.Fatalf("got invalid %d, too wide %d, masked %d, special %d; want %d, %d, %d, %d",
					l.Invalid, l.TooWide, l.Masked, l.Special, tc.invalid, tc.tooWide, tc.masked, tc.special)
			}
			if tc.firstSp != "" && l.FirstSpecial != tc.firstSp {
				t.Fatalf("got FirstSpecial %s; want %s", l.FirstSpecial, tc.firstSp)
			}
			if tc.first != "" && l.FirstInvalid != tc.first {
				t.Fatalf("got FirstInvalid %s; want %s", l.FirstInvalid, tc.first)
			}
			if (l.Invalid == 0) != (l.FirstInvalid == "") {
				t.Fatalf("got FirstInvalid %q with %d invalid", l.FirstInvalid, l.Invalid)
			}
			if tc.firstTW != "" && l.FirstTooWide != tc.firstTW {
				t.Fatalf("got FirstTooWide %s; want %s", l.FirstTooWide, tc.firstTW)
			}
			if (l.TooWide == 0) != (l.FirstTooWide == "") {
				t.Fatalf("got FirstTooWide %q with %d too wide", l.FirstTooWide, l.TooWide)
			}
		})
	}
}

// TestParse_Testdata reads lists in the formats of real feeds, and what a
// feed URL returns when something is wrong.
func TestParse_Testdata(t *testing.T) {
	for _, tc := range []struct {
		file    string
		entries int
		want    []string
		err     error
	}{
		{file: "drop.txt", entries: 6,
			want: []string{"100.64.0.0/10", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25", "203.0.113.128/25"}},
		{file: "firehol.netset", entries: 7,
			want: []string{"192.0.2.7/32", "192.0.2.9/32", "198.18.0.0/15", "203.0.113.77/32", "2001:db8:bad::/48"}},
		{file: "error.html", err: feeds.ErrNotAList},
		{file: "dshield.txt", err: feeds.ErrNotAList},
		{file: "json.txt", err: feeds.ErrNotAList},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			l, err := feeds.Parse(f, 0)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v; want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			checkList(t, l, tc.want)
			if l.Entries != tc.entries || l.Invalid != 0 {
				t.Fatalf("got %d entries, %d invalid; want %d, 0", l.Entries, l.Invalid, tc.entries)
			}
		})
	}
}

func TestParse_ErrNotAList(t *testing.T) {
	_, err := feeds.Parse(strings.NewReader("<html>\n<body>x</body>\n192.0.2.1\n</html>\n"), 0)
	want := `not an address list: 3 of 4 lines invalid, too wide or special-purpose, first line 1: "<html>"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v; want %s", err, want)
	}
}

// TestParse_DefaultMax checks that max <= 0 means DefaultMaxEntries.
func TestParse_DefaultMax(t *testing.T) {
	in := entries(feeds.DefaultMaxEntries)
	for _, max := range []int{0, -1} {
		l, err := feeds.Parse(strings.NewReader(in), max)
		if err != nil || len(l.Prefixes) != feeds.DefaultMaxEntries {
			t.Fatalf("max %d: got %d prefixes, %v; want %d", max, len(l.Prefixes), err, feeds.DefaultMaxEntries)
		}
		_, err = feeds.Parse(strings.NewReader(in+"10.255.255.255\n"), max)
		if !errors.Is(err, feeds.ErrTooManyEntries) {
			t.Fatalf("max %d: got %v; want ErrTooManyEntries", max, err)
		}
	}
}

// TestParse_ErrTooLarge checks the input cap: max*128 bytes + 1 MiB.
func TestParse_ErrTooLarge(t *testing.T) {
	const max = 10
	limit := max*128 + 1<<20
	comments := func(n int) string {
		line := "# " + strings.Repeat("x", 61) + "\n" // 64 bytes
		return "192.0.2.1\n" + strings.Repeat(line, n/len(line)+1)[:n-10]
	}
	if _, err := feeds.Parse(strings.NewReader(comments(limit)), max); err != nil {
		t.Fatalf("%d bytes: got %v; want no error", limit, err)
	}
	if _, err := feeds.Parse(strings.NewReader(comments(limit+1)), max); !errors.Is(err, feeds.ErrTooLarge) {
		t.Fatalf("%d bytes: got %v; want ErrTooLarge", limit+1, err)
	}
}

// endless is an io.Reader of the same byte forever, and counts what it
// gave.
type endless struct {
	b byte
	n int64
}

func (r *endless) Read(p []byte) (int, error) {
	if len(p) > 0 {
		p[0] = r.b
		for i := 1; i < len(p); i *= 2 {
			copy(p[i:], p[:i])
		}
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestParse_HugeLine checks that one endless line fails after the cap is
// read, without keeping it in memory.
func TestParse_HugeLine(t *testing.T) {
	const max = 200000 // a cap of 26.6 MB
	r := &endless{b: 'a'}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := feeds.Parse(r, max)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, feeds.ErrTooLarge) {
		t.Fatalf("got %v; want ErrTooLarge", err)
	}
	if limit := int64(max*128 + 1<<20); r.n < limit || r.n > limit+1<<20 {
		t.Fatalf("read %d bytes; want about %d", r.n, limit)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("allocated %d bytes reading a %d-byte line; want < 1 MiB", got, r.n)
	}

	// A long line that ends before the cap is one invalid line.
	r = &endless{b: '1'}
	runtime.ReadMemStats(&before)
	_, err = feeds.Parse(io.LimitReader(r, 8<<20), 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, feeds.ErrNotAList) {
		t.Fatalf("got %v; want ErrNotAList", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("allocated %d bytes reading a %d-byte line; want < 1 MiB", got, r.n)
	}
}

// TestParse_ReadError checks that an error reading is returned, and no list.
func TestParse_ReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("192.0.2.1\n"), errReader{boom})
	l, err := feeds.Parse(r, 0)
	if !errors.Is(err, boom) || l.Prefixes != nil {
		t.Fatalf("got %v, %v; want %v and no list", l.Prefixes, err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// entries returns n distinct IPv4 addresses, one a line, in 10.0.0.0/8.
func entries(n int) string {
	var b strings.Builder
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// checkList checks l's prefixes against want, and the aggregation
// invariants.
func checkList(t *testing.T, l feeds.List, want []string) {
	t.Helper()
	got := make([]string, len(l.Prefixes))
	for i, p := range l.Prefixes {
		got[i] = p.String()
	}
	if want != nil && !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
	if err := checkAggregated(l.Prefixes); err != nil {
		t.Fatal(err)
	}
}
