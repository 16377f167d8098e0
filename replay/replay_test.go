package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/parsers"
	_ "github.com/sipguard/sipguard/parsers/all"
	"github.com/sipguard/sipguard/replay"
	"github.com/sipguard/sipguard/watchers"
)

var clock = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func now() time.Time { return clock }

func factory(name string) parsers.Factory {
	return func(o parsers.Options) (parsers.Parser, error) { return parsers.New(name, o) }
}

// sequential is what replay must equal: one parser reading the log from
// its first line to its last, as the daemon's follower does.
func sequential(t testing.TB, parser string, data []byte, maxLine int) ([]parsers.Event, parsers.Counts) {
	t.Helper()
	st, err := parsers.NewStreamFrom("log", parser, factory(parser), parsers.Options{Location: time.UTC, Now: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	lr := watchers.NewLineReader(bytes.NewReader(data), maxLine)
	var out []parsers.Event
	for {
		line, num, err := lr.Next()
		if err != nil {
			break
		}
		var ev parsers.Event
		if st.Line(line, num, &ev) {
			out = append(out, ev)
		}
	}
	st.TooLong(lr.Long())
	return out, st.Counts()
}

// replayed replays data as one source.
func replayed(t testing.TB, parser string, data []byte, opts replay.Options) ([]parsers.Event, replay.Stats) {
	t.Helper()
	opts.Now = now
	r, err := replay.Start(context.Background(), []replay.Source{{
		Name: "log", Parser: parser, Factory: factory(parser), Location: time.UTC, Reader: bytes.NewReader(data),
	}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []parsers.Event
	for ev := r.Next(); ev != nil; ev = r.Next() {
		out = append(out, *ev)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out, r.Stats()[0]
}

func same(t testing.TB, what string, data []byte, got, want []parsers.Event, gotC, wantC parsers.Counts) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events; want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: event %d\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
	if !reflect.DeepEqual(gotC, wantC) {
		t.Fatalf("%s: counts\n got %+v\nwant %+v", what, gotC, wantC)
	}
}

// testdata concatenates the testdata logs of a parser package: every
// message type, hostile lines, injected newlines.
func testdata(t testing.TB, pkg string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "parsers", pkg, "testdata", "*.log"))
	if len(files) == 0 {
		t.Fatalf("no testdata for %s", pkg)
	}
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}

// TestSameAsSequential cuts logs into chunks of many sizes: the events,
// their line numbers and times, and the counts are those of one parser
// reading in order, wherever the cuts fall (inside a broken message, at a
// line without a timestamp, inside a line too long to keep).
func TestSameAsSequential(t *testing.T) {
	var mix bytes.Buffer
	if _, err := logmix.Generate(&mix, logmix.Options{Lines: 20_000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		parser string
		data   []byte
	}{
		{"asterisk", mix.Bytes()},
		{"asterisk", testdata(t, "asterisk")},
		{"asterisk", bytes.Repeat(testdata(t, "asterisk"), 3)},
		{"freepbx", testdata(t, "freepbx")},
		{"kamailio", testdata(t, "kamailio")},
		{"yeastar", testdata(t, "yeastar")},
		{"3cx", testdata(t, "threecx")},
		// Lines too long to keep, one longer than a chunk, CRLF, no
		// newline at the end.
		{"asterisk", []byte("[2026-11-27 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.7:5060' - Wrong password\r\n" +
			long + "\n" + strings.Repeat(long, 40) + "\n" +
			"[2026-11-27 10:00:01] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.8:5060' - Wrong password")},
	} {
		for _, maxLine := range []int{200, 0} {
			want, wantC := sequential(t, tc.parser, tc.data, maxLine)
			for _, size := range []int{1, 450, 1000, 4096, 0} {
				for _, workers := range []int{1, 3} {
					what := fmt.Sprintf("%s (%d bytes) max line %d, chunks %d, %d workers", tc.parser, len(tc.data), maxLine, size, workers)
					got, st := replayed(t, tc.parser, tc.data, replay.Options{ChunkSize: size, Workers: workers, MaxLine: maxLine})
					same(t, what, tc.data, got, want, st.Counts, wantC)
					if st.Bytes != int64(len(tc.data)) {
						t.Fatalf("%s: %d bytes; want %d", what, st.Bytes, len(tc.data))
					}
				}
			}
		}
	}
}

// TestTimeOfLinesWithout: journal copies have no timestamp; their events
// take the time of the source's previous event, or now, whichever chunk
// they fall in.
func TestTimeOfLinesWithout(t *testing.T) {
	bare := "NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.7:5060' - Wrong password\n"
	stamped := "[2026-11-27 10:00:00] " + bare
	data := []byte(strings.Repeat(bare, 50) + stamped + strings.Repeat(bare, 50))
	got, _ := replayed(t, "asterisk", data, replay.Options{ChunkSize: 1, MaxLine: 200, Workers: 2})
	if len(got) != 101 {
		t.Fatalf("%d events", len(got))
	}
	for i, ev := range got {
		want := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		if i < 50 {
			want = clock
		}
		if !ev.Time.Equal(want) || ev.Line != int64(i+1) {
			t.Fatalf("event %d: time %v line %d; want %v, %d", i, ev.Time, ev.Line, want, i+1)
		}
	}
}

// TestMerge: several sources come out in time order, the first source
// first on equal times.
func TestMerge(t *testing.T) {
	line := func(sec int, addr string) string {
		return fmt.Sprintf("[2026-11-27 10:00:%02d] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '%s:5060' - Wrong password\n", sec, addr)
	}
	a := line(1, "198.51.100.1") + line(3, "198.51.100.1") + line(5, "198.51.100.1")
	b := line(0, "198.51.100.2") + line(3, "198.51.100.2") + line(9, "198.51.100.2")
	r, err := replay.Start(context.Background(), []replay.Source{
		{Name: "a", Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: strings.NewReader(a)},
		{Name: "b", Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: strings.NewReader(b)},
	}, replay.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for ev := r.Next(); ev != nil; ev = r.Next() {
		got = append(got, fmt.Sprintf("%s:%d", ev.Source, ev.Time.Second()))
	}
	if want := "b:0 a:1 a:3 b:3 a:5 b:9"; strings.Join(got, " ") != want {
		t.Errorf("order %q; want %q", strings.Join(got, " "), want)
	}
	if st := r.Stats(); len(st) != 2 || st[0].Counts.Events != 3 || st[1].Counts.Events != 3 || st[1].Name != "b" {
		t.Errorf("stats %+v", st)
	}
}

// TestClose: stopping early ends every goroutine.
func TestClose(t *testing.T) {
	var mix bytes.Buffer
	logmix.Generate(&mix, logmix.Options{Lines: 50_000, Seed: 1, Mix: logmix.Failures})
	r, err := replay.Start(context.Background(), []replay.Source{
		{Name: "a", Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: bytes.NewReader(mix.Bytes())},
	}, replay.Options{Now: now, ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if r.Next() == nil {
		t.Fatal("no event")
	}
	r.Close() // returns: the goroutines ended
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(p, "[2026-11-27 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.7:5060' - Wrong password\n"), nil
	}
	return 0, io.ErrClosedPipe
}

func TestReadError(t *testing.T) {
	r, err := replay.Start(context.Background(), []replay.Source{
		{Name: "a", Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: &failingReader{n: 3}},
	}, replay.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() != nil {
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "read a") {
		t.Errorf("error %v", err)
	}
}

func TestOpenGzip(t *testing.T) {
	dir := t.TempDir()
	text := "[2026-11-27 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.7:5060' - Wrong password\n"
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(text))
	w.Close()
	for name, data := range map[string][]byte{"plain.log": []byte(text), "packed.log.gz": gz.Bytes()} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		r, c, err := replay.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		c.Close()
		if string(got) != text {
			t.Errorf("%s: %q", name, got)
		}
	}
	r, c, err := replay.Open("-", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, _ := io.ReadAll(r); string(got) != text {
		t.Errorf("stdin: %q", got)
	}
	if _, _, err := replay.Open(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("opened a missing file")
	}
}

// FuzzReplay: for any log and any cut, replay equals one parser reading in
// order. Run longer with
//
//	go test -run '^$' -fuzz FuzzReplay -fuzztime 10m ./replay
func FuzzReplay(f *testing.F) {
	names := []string{"asterisk", "freepbx", "kamailio", "yeastar"}
	for i, name := range names {
		// Small seeds: the fuzzer mutates small inputs best.
		for data := testdata(f, name); len(data) > 0; data = data[min(len(data), 2048):] {
			f.Add(data[:min(len(data), 2048)], uint16(300), uint8(2), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint16, workers, which uint8) {
		parser := names[int(which)%len(names)]
		want, wantC := sequential(t, parser, data, 100)
		got, st := replayed(t, parser, data, replay.Options{ChunkSize: int(size), Workers: int(workers%4) + 1, MaxLine: 100})
		same(t, "fuzz", data, got, want, st.Counts, wantC)
	})
}

// BenchmarkReplay: the mix sipguard scan is compared on (200,000 lines
// of it), parsed by 1 worker and by GOMAXPROCS.
func BenchmarkReplay(b *testing.B) {
	var mix bytes.Buffer
	logmix.Generate(&mix, logmix.Options{Lines: 200_000, Seed: 1})
	for _, workers := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(mix.Len()))
			for b.Loop() {
				r, _ := replay.Start(context.Background(), []replay.Source{
					{Name: "a", Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: bytes.NewReader(mix.Bytes())},
				}, replay.Options{Now: now, Workers: workers})
				for r.Next() != nil {
				}
				r.Close()
			}
			b.ReportMetric(200_000*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// TestTruncatedGzip: a gzip file cut short is a read error, not a log
// that ends early with its cut last line parsed as whole (a line cut
// after "203.0.113.10" of "203.0.113.102" names another address).
func TestTruncatedGzip(t *testing.T) {
	var text strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&text, "[2026-11-27 10:00:%02d] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.%d:5060' - Wrong password\n", i%60, i%250)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(text.String()))
	w.Close()
	path := filepath.Join(t.TempDir(), "messages.1.gz")
	os.WriteFile(path, gz.Bytes()[:gz.Len()/2], 0o644)
	rd, c, err := replay.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := replayErr(t, path, rd); err == nil || !strings.Contains(err.Error(), "read "+path+": cut short") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v; want the file cut short", err)
	}
}

// TestDirectoryError: the error names the path once.
func TestDirectoryError(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := replayErr(t, dir, f); err == nil || strings.Count(err.Error(), dir) != 1 {
		t.Errorf("error %v; want %s named once", err, dir)
	}
}

// replayErr replays rd as an Asterisk log to its end and returns the error.
func replayErr(t *testing.T, name string, rd io.Reader) error {
	t.Helper()
	r, err := replay.Start(context.Background(), []replay.Source{
		{Name: name, Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: rd},
	}, replay.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() != nil {
	}
	return r.Err()
}

// countingReader is an endless log of failures that counts what was read.
type countingReader struct {
	n    atomic.Int64
	line []byte
	off  int // into line
}

func (c *countingReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.line[c.off:])
		n, c.off = n+k, (c.off+k)%len(c.line)
	}
	c.n.Add(int64(n))
	return n, nil
}

// TestManySourcesReadAhead: logs share the read-ahead. The merge takes
// from one log at a time, so every other log stands on the chunks it read
// ahead: with each reading as far ahead as one log alone, 300 files of
// 3 MB took 1 GB.
func TestManySourcesReadAhead(t *testing.T) {
	const sources, chunk = 40, 8 << 10
	var readers []*countingReader
	var srcs []replay.Source
	for i := range sources {
		cr := &countingReader{line: fmt.Appendf(nil, "[2026-11-27 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '198.51.100.%d:5060' - Wrong password\n", i+1)}
		readers = append(readers, cr)
		srcs = append(srcs, replay.Source{Name: fmt.Sprint(i), Parser: "asterisk", Factory: factory("asterisk"), Location: time.UTC, Reader: cr})
	}
	r, err := replay.Start(context.Background(), srcs, replay.Options{Now: now, Workers: 2, ChunkSize: chunk, MaxLine: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Next() == nil {
		t.Fatal("no event")
	}
	// Wait until the readers stop: every log has read as far ahead as it may.
	total := func() (n int64) {
		for _, cr := range readers {
			n += cr.n.Load()
		}
		return n
	}
	last, still := int64(-1), 0
	for still < 5 {
		time.Sleep(20 * time.Millisecond)
		if n := total(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	// Each log: its chunks in flight (2) and those waiting as parsed
	// batches (2), and the one its reader holds. One log alone reads 14
	// and 8 ahead.
	if limit := int64(sources * 6 * chunk); last > limit {
		t.Errorf("%d logs read %d KiB ahead; want at most %d KiB", sources, last>>10, limit>>10)
	}
	t.Logf("%d logs read %d KiB ahead (%d KiB each)", sources, last>>10, last>>10/sources)
}
