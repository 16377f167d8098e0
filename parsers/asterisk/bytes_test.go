package asterisk

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
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

// TestIntern: a name is the same string when read again, and always its
// own text, whatever other names took slots in between.
func TestIntern(t *testing.T) {
	for i := range 5000 {
		name := []byte(fmt.Sprintf("user%d", i%300))
		a := intern(name)
		b := intern(name)
		if a != string(name) || b != string(name) {
			t.Fatalf("intern(%q) = %q, %q", name, a, b)
		}
		if unsafe.StringData(a) != unsafe.StringData(b) {
			t.Fatalf("intern(%q) twice: two strings", name)
		}
	}
	if intern(nil) != "" {
		t.Fatal("intern(nil) is not empty")
	}
}
