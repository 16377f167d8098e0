package asterisk

import (
	"bytes"
	"testing"
)

// TestLastByte: lastByte finds what bytes.LastIndexByte finds, at every
// position and past every word boundary, with bytes that differ from the
// one sought only in their top bit or low bits around it.
func TestLastByte(t *testing.T) {
	for n := range 40 {
		for at := -1; at < n; at++ {
			b := bytes.Repeat([]byte{'\'' ^ 0x80}, n)
			for i := range b {
				if i%3 == 0 {
					b[i] = '\'' + 1
				}
			}
			if at >= 0 {
				b[at] = '\''
				if at > 2 {
					b[at-2] = '\''
				}
			}
			if got, want := lastByte(b, '\''), bytes.LastIndexByte(b, '\''); got != want {
				t.Fatalf("%q: %d; want %d", b, got, want)
			}
		}
	}
}
