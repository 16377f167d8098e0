package feeds_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/feeds"
)

// BenchmarkParse reads lists of n entries, IPv4 and IPv6, addresses and
// networks, in random order, with comments.
func BenchmarkParse(b *testing.B) {
	for _, n := range []int{1000, feeds.DefaultMaxEntries} {
		r := rand.New(rand.NewPCG(1, 2))
		var sb strings.Builder
		sb.WriteString("# benchmark list\n")
		for i := range n {
			switch i % 4 {
			case 0:
				fmt.Fprintf(&sb, "%d.%d.%d.%d\n", 11+r.IntN(200), r.IntN(256), r.IntN(256), r.IntN(256))
			case 1:
				fmt.Fprintf(&sb, "%d.%d.%d.0/24 ; SBL%d\n", 11+r.IntN(200), r.IntN(256), r.IntN(256), i)
			case 2:
				fmt.Fprintf(&sb, "2001:db8:%x:%x::%x\n", r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16))
			default:
				fmt.Fprintf(&sb, "2001:db8:%x::/48 # net\n", r.IntN(1<<16))
			}
		}
		in := sb.String()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := feeds.Parse(strings.NewReader(in), 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
