package sipwire_test

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/sipwire"
	"github.com/sipguard/sipguard/sipwire/pcapfile"
)

// seed adds the reader's test responses and every response of the
// recorded captures (testdata/*.pcap) to the corpus.
func seed(f *testing.F) {
	f.Add([]byte(kamailio401))
	f.Add([]byte(kamailio401 + kamailio401))
	f.Add([]byte(strings.Replace(kamailio401, "Via: SIP/2.0/UDP 198.18.0.2:5072", "v: SIP/2.0/UDP [2001:db8::2]:5072;maddr=[2001:db8::9]", 1)))
	f.Add([]byte(strings.Replace(kamailio401, "qop=\"auth\"", "stale=\"TRUE\"", 1)))
	files, _ := filepath.Glob("testdata/*.pcap")
	for _, file := range files {
		fd, err := os.Open(file)
		if err != nil {
			f.Fatal(err)
		}
		r, err := pcapfile.NewReader(fd)
		if err != nil {
			f.Fatal(err)
		}
		for {
			p, _, err := r.Next()
			if err != nil {
				break
			}
			f.Add(p.Payload)
		}
		fd.Close()
	}
}

// FuzzRead: Read never panics, and what it reads lies within its input.
func FuzzRead(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, stream := range []bool{false, true} {
			r, reason := sipwire.Read(b, stream)
			if reason != "" {
				continue
			}
			if r.Len <= 0 || r.Len > len(b) || r.Status < 100 || r.Status > 699 || len(r.CallID) == 0 || len(r.ToUser) > 128 {
				t.Fatalf("Read(%q) = %+v", b, r)
			}
			for _, part := range [][]byte{r.CallID, r.Method, r.ToUser, r.Via.Host, r.Via.Received, r.Via.MAddr} {
				if len(part) > 0 && !bytes.Contains(b, part) {
					t.Fatalf("Read(%q): %q is not in the input", b, part)
				}
			}
		}
	})
}

// FuzzSensor: whatever the payloads, the sensor never panics, and every
// event goes to the packet's destination, the address the top Via names.
func FuzzSensor(f *testing.F) {
	seed(f)
	dst := netip.MustParseAddr("198.18.0.2")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := sipwire.NewSensor(sipwire.Options{MaxDialogs: 4})
		for i, tcp := range []bool{false, true, false, true} {
			// Twice each: the second time the dialog exists.
			p := sipwire.Packet{Time: t0.Add(time.Duration(i) * time.Second), Src: pbx, Dst: dst, SrcPort: 5060, DstPort: 5060, TCP: tcp, Payload: b}
			evs := append(s.Handle(p), s.Expire(p.Time.Add(time.Minute))...)
			for _, ev := range evs {
				parsertest.CheckEvent(t, b, &ev)
				if ev.Addr != dst || !parsertest.AddrInLine(b, dst) {
					t.Fatalf("event %+v for %q", ev, b)
				}
			}
		}
		st := s.Stats()
		if st.Packets != 4 || st.Tracked > 4 {
			t.Fatalf("stats %+v", st)
		}
	})
}
