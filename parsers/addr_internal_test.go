package parsers

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// ipv4PrefixLoop is ipv4Prefix as it was before it read 16 bytes at once:
// the plain reading, kept as the reference the fast one must agree with.
func ipv4PrefixLoop(b []byte) (netip.Addr, int, bool) {
	var ip [4]byte
	i := 0
	for f := range 4 {
		if f > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, 0, false
			}
			i++
		}
		v, next, ok := octetLoop(b, i)
		if !ok {
			return netip.Addr{}, 0, false
		}
		ip[f], i = v, next
	}
	return netip.AddrFrom4(ip), i, true
}

// octetLoop reads the number of 1 to 3 digits at b[i:], without a leading
// zero, up to 255.
func octetLoop(b []byte, i int) (byte, int, bool) {
	if i >= len(b) || b[i]-'0' > 9 {
		return 0, 0, false
	}
	v := uint(b[i] - '0')
	if i+1 >= len(b) || b[i+1]-'0' > 9 {
		return byte(v), i + 1, true
	}
	if v == 0 {
		return 0, 0, false
	}
	v = v*10 + uint(b[i+1]-'0')
	if i+2 >= len(b) || b[i+2]-'0' > 9 {
		return byte(v), i + 2, true
	}
	v = v*10 + uint(b[i+2]-'0')
	return byte(v), i + 3, v <= 255
}

// checkIPv4Prefix fails t unless ipv4Prefix reads b as ipv4PrefixLoop does.
func checkIPv4Prefix(t testing.TB, b []byte) {
	t.Helper()
	a, n, ok := ipv4Prefix(b)
	wa, wn, wok := ipv4PrefixLoop(b)
	if ok != wok || ok && (a != wa || n != wn) {
		t.Fatalf("ipv4Prefix(%q) = %v, %d, %v; want %v, %d, %v", b, a, n, ok, wa, wn, wok)
	}
}

// ipv4Cases are the edges of the dotted-decimal form: lengths of each
// number, leading zeros, 255 and 256, the bytes next to the digits and the
// dot in ASCII, high bytes, and (in TestIPv4Prefix) each cut anywhere.
var ipv4Cases = []string{
	"", "1", "1.", "1.2.3", "1.2.3.", "1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.256.1.1",
	"1.1.1.256", "1.1.1.2555", "1.1.1.25:5", "01.1.1.1", "1.01.1.1", "1.1.1.01", "1.1.1.00", "1.1.1.0",
	"10.0.0.1", "100.100.100.100", "1000.1.1.1", "1.1000.1.1", "1.2.3.4.5", "1..2.3", ".1.2.3.4",
	"1.2.3.4/", "1.2.3.4:", "1.2.3.4\x00", "1.2.3.4\xb0", "\xb1.2.3.4", "1.2\xae3.4", "1/2.3.4",
	"1.2.3.4 5", "199.199.199.1999", "249.250.251.252", "192.0.2.1:5060", "82.169.11.91:36274",
	"999.1.1.1", "300.1.1.1", "260.1.1.1", "1.2.3.4567890123456789", "0.0.0.00", "100.0.10.0:1",
}

func TestIPv4Prefix(t *testing.T) {
	for _, c := range ipv4Cases {
		for i := 0; i <= len(c); i++ {
			checkIPv4Prefix(t, []byte(c[:i]))
		}
	}
	// Random strings of the bytes that matter, of every length up to 20.
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789.......:/\x00\xae\xb0"
	var b strings.Builder
	for range 1_000_000 {
		b.Reset()
		for range r.IntN(21) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		checkIPv4Prefix(t, []byte(b.String()))
	}
}

// FuzzIPv4Prefix checks ipv4Prefix against the plain reading for any
// input. Run it longer with
//
//	go test -run '^$' -fuzz '^FuzzIPv4Prefix$' -fuzztime 1m ./parsers
func FuzzIPv4Prefix(f *testing.F) {
	for _, c := range ipv4Cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkIPv4Prefix(t, b) })
}

// BenchmarkIPv4Prefix reads addresses of random numbers, of 1 to 3 digits
// each, with a port.
func BenchmarkIPv4Prefix(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var in [][]byte
	for range 1 << 16 {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		in = append(in, []byte(a.String()+":36274"))
	}
	for _, f := range []struct {
		name string
		f    func([]byte) (netip.Addr, int, bool)
	}{{"fast", ipv4Prefix}, {"loop", ipv4PrefixLoop}} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				for _, x := range in {
					f.f(x)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/addr")
		})
	}
}
