package asterisk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"unsafe"

	"github.com/sipguard/sipguard/parsers"
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

// searchAlphabet makes texts of the bytes the searches below look for,
// the bytes next to them in ASCII, the same with the top bit set, and
// pieces of the frames.
var searchAlphabet = []string{"'", ":", " ", "@", ">", ";", ",", "&", "9", "?", "=", "<", "+", "-", "\xa7", "\xba", "\xa0", "\xc0", "x",
	"' failed for '", "' (callid: ", `,RemoteAddress="`, "' - ", "password", "' - Wrong password", "sip:"}

// searchTexts returns n texts of up to 60 bytes, from a fixed seed.
func searchTexts(n int) [][]byte {
	r := rand.New(rand.NewPCG(5, 6))
	texts := make([][]byte, n)
	for i := range texts {
		var b []byte
		for n := r.IntN(61); len(b) < n; {
			b = append(b, searchAlphabet[r.IntN(len(searchAlphabet))]...)
		}
		texts[i] = b
	}
	return texts
}

// checkSearches fails t unless each search that looks at words at a time
// finds what its plain form finds in b.
func checkSearches(t testing.TB, b []byte) {
	t.Helper()
	for _, sep := range []string{"' failed for '", "' (callid: ", `,RemoteAddress="`, ") to extension '", ": Call (", "' (", "'"} {
		if got, want := startsWith(b, []byte(sep)), bytes.HasPrefix(b, []byte(sep)); got != want {
			t.Fatalf("startsWith(%q, %q) = %v; want %v", b, sep, got, want)
		}
		if got, want := index(b, []byte(sep)), bytes.Index(b, []byte(sep)); got != want {
			t.Fatalf("index(%q, %q) = %d; want %d", b, sep, got, want)
		}
		if got, want := lastIndex(b, []byte(sep)), bytes.LastIndex(b, []byte(sep)); got != want {
			t.Fatalf("lastIndex(%q, %q) = %d; want %d", b, sep, got, want)
		}
	}
	if got, want := colonOrSpace(b), bytes.IndexAny(b, ": "); got != want {
		t.Fatalf("colonOrSpace(%q) = %d; want %d", b, got, want)
	}
	if got, want := userEnd(b), bytes.IndexAny(b, "@>;"); got != want {
		t.Fatalf("userEnd(%q) = %d; want %d", b, got, want)
	}
	// sipReason: the quote before the reason is the last one, and the
	// reason is one chan_sip writes (the plain reading it replaced).
	wantAt, wantKind := -1, parsers.Kind(0)
	if r := bytes.LastIndexByte(b, '\''); r >= 0 && bytes.HasPrefix(b[r:], []byte("' - ")) {
		if kind := sipReasons[string(b[r+len("' - "):])]; kind != 0 {
			wantAt, wantKind = r, kind
		}
	}
	if at, kind := sipReason(b); at != wantAt || kind != wantKind {
		t.Fatalf("sipReason(%q) = %d, %v; want %d, %v", b, at, kind, wantAt, wantKind)
	}
}

// sipReasons are chan_sip's registration failure reasons.
var sipReasons = map[string]parsers.Kind{
	"Wrong password": parsers.AuthFailed, "Username/auth name mismatch": parsers.AuthFailed,
	"No matching peer found": parsers.UnknownUser, "Device does not match ACL": parsers.ACLDenied,
	"Not a local domain": parsers.ACLDenied, "Peer is not supposed to register": parsers.ACLDenied,
	"Device not configured to use this transport type": parsers.ACLDenied, "ACL error (permit/deny)": parsers.ACLDenied,
	"RTP initialization failed": parsers.RejectedConnection, "Unknown failure": parsers.RejectedConnection,
}

// TestSearches: the searches that read words at a time find what the
// plain searches find, in texts of the bytes they look for and their
// neighbours, and each chan_sip reason is read at the end of a line.
func TestSearches(t *testing.T) {
	for _, b := range searchTexts(200_000) {
		checkSearches(t, b)
	}
	for reason := range sipReasons {
		for _, end := range []string{"' - " + reason, "x' - " + reason, "'' - " + reason, "' - " + reason + "'", "' - x" + reason, "' -  " + reason, reason} {
			checkSearches(t, []byte("Registration from 'a' failed for '1.2.3.4:5'"+end))
		}
	}
}

// FuzzSearches is TestSearches for any text. Run it with
//
//	go test -run '^$' -fuzz '^FuzzSearches$' -fuzztime 1m ./parsers/asterisk
func FuzzSearches(f *testing.F) {
	for _, b := range searchTexts(100) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSearches(t, b) })
}

// TestQuotedFrame: the frame the pjsip distributor passes to uniqueFrame
// as quoted holds its stop byte at its two ends and nowhere else, which
// frames relies on to skip searching between them.
func TestQuotedFrame(t *testing.T) {
	left := []byte("' failed for '")
	if len(left) < 2 || left[0] != '\'' || left[len(left)-1] != '\'' || bytes.Count(left, []byte("'")) != 2 {
		t.Fatalf("%q is no quoted frame", left)
	}
	src, err := os.ReadFile("messages.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("left, right := []byte(\"' failed for '\"), []byte(\"' (callid: \")")) ||
		bytes.Count(src, []byte("'\\'', true, right, parse)")) != 1 {
		t.Fatal("the distributor's frame or its call of uniqueFrame changed: check it is quoted")
	}
}
