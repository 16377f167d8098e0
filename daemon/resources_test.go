package daemon_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/internal/testutil"
)

// cpuTime is the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSourceNotRegular: a log path that names a FIFO (the open waited for
// a writer, for good) or a symbolic link to /dev/zero (read without end:
// a core at 100%, ~85,000 log lines a second) is a source error shown in
// status; the daemon answers, bans from its other sources, reloads a
// configuration touching those sources, and stops when asked.
func TestSourceNotRegular(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	fifo := filepath.Join(e.dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(e.dir, "zero.log")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	pbx := cfg.Sources[0]
	fifoSrc, zeroSrc := pbx, pbx
	fifoSrc.Name, fifoSrc.Path = "fifo", fifo
	zeroSrc.Name, zeroSrc.Path = "zero", zero
	cfg.Sources = append(cfg.Sources, fifoSrc, zeroSrc)
	r := start(t, cfg, nil)

	states := func() map[string]control.SourceStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := r.client.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		m := map[string]control.SourceStatus{}
		for _, s := range st.Sources {
			m[s.Name] = s
		}
		return m
	}
	want := map[string]string{"pbx": "reading", "fifo": "not a regular file (a FIFO)", "zero": "not a regular file (a device)"}
	check := func(when string) {
		t.Helper()
		got := states()
		for name, state := range want {
			if s := got[name]; s.State != state || s.Lines != 0 {
				t.Errorf("%s: %s: state %q, %d lines; want %q, none", when, name, s.State, s.Lines, state)
			}
		}
	}
	check("at start")

	cpu, logs := cpuTime(t), len(r.logs.String())
	time.Sleep(time.Second)
	if used := cpuTime(t) - cpu; used > 300*time.Millisecond {
		t.Errorf("%v of CPU in a second; want a few ms", used)
	}
	if n := len(r.logs.String()) - logs; n > 4096 {
		t.Errorf("%d bytes logged in a second:\n%s", n, r.logs.String()[logs:])
	}

	// A reload touching both (stop and start them) returns at once.
	fifoSrc.Parser, zeroSrc.Parser = "freepbx", "freepbx"
	cfg.Sources = []daemon.Source{pbx, fifoSrc, zeroSrc}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("reload took %v", took)
	}
	check("after the reload")

	// Bans go on from the other source.
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	// And the daemon stops when asked (r.stop fails the test otherwise).
	r.stop(t)
}

// TestImportLongReason: an imported ban with a reason of a megabyte (the
// next start set the whole state aside as corrupt: "token too long") is
// kept with its reason cut and cleaned; after a restart into an empty
// firewall every ban is back, and so is the offence history.
func TestImportLongReason(t *testing.T) {
	e := newEnv(t)
	cfg, r, rule := firstOffence(t, e)
	long := "line one\nforged line\x1b[2J" + strings.Repeat("x", 1<<20)
	res, err := r.client.Import(context.Background(), control.ImportRequest{Bans: []control.BanRequest{
		{Target: "203.0.113.5", Reason: long}, {Target: "203.0.113.6", Reason: "second"},
	}})
	if err != nil || res.Banned != 2 {
		t.Fatalf("import: %+v %v", res, err)
	}
	time.Sleep(1100 * time.Millisecond) // the rule's ban (1s) ends: an offence remains
	r.stop(t)

	fw2 := fwtest.New(nil) // as after a reboot
	r2 := start(t, cfg, fw2)
	for _, p := range []string{"203.0.113.5/32", "203.0.113.6/32"} {
		if !fw2.Has(netip.MustParsePrefix(p)) {
			t.Errorf("%s not restored:\n%s", p, r2.logs)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(e.state, "bans.state.corrupt-*")); len(m) != 0 {
		t.Errorf("state set aside: %v", m)
	}
	list, _ := r2.client.List(context.Background())
	for _, b := range list {
		if b.Target != "203.0.113.5" {
			continue
		}
		if len(b.Reason) > bans.MaxReason || !strings.HasPrefix(b.Reason, "line one forged line [2Jxxx") || !strings.HasSuffix(b.Reason, "…") {
			t.Errorf("reason kept: %d bytes %.60q; want it cut and cleaned", len(b.Reason), b.Reason)
		}
	}
	// The offence history is back: the next ban lasts 4 times longer.
	wantEscalated(t, e, fw2, rule)
}

// TestStateDamagedLine: a bans file with one damaged line among good ones
// restores the good ones, logs how many lines were skipped, and is not set
// aside; one where no line can be read is.
func TestStateDamagedLine(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(e.state, 0o700)
	now := time.Now()
	good := bans.Encode(bans.Snapshot{Bans: []*bans.Record{
		{Target: netip.MustParsePrefix("203.0.113.5/32"), Origin: bans.ByHand, Since: now, Expires: now.Add(time.Hour), Reason: "a"},
		{Target: netip.MustParsePrefix("203.0.113.6/32"), Origin: bans.ByHand, Since: now, Expires: now.Add(time.Hour), Reason: "b"},
	}})
	lines := strings.SplitAfter(string(good), "\n")
	damaged := lines[0] + lines[1] + "ban\t203.0.113.7/32\t\"manual\"\t12\x00\xff\n" + lines[2]
	path := filepath.Join(e.state, "bans.state")
	os.WriteFile(path, []byte(damaged), 0o600)
	fw := fwtest.New(nil)
	r := start(t, e.config(), fw)
	for _, p := range []string{"203.0.113.5/32", "203.0.113.6/32"} {
		if !fw.Has(netip.MustParsePrefix(p)) {
			t.Errorf("%s not restored", p)
		}
	}
	if n := r.logs.Count(`"level":"error"`, `"skipped_lines":1`, "line 3", "lines skipped, the others restored"); n != 1 {
		t.Errorf("%d log lines counting the skipped line; want 1\n%s", n, r.logs)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("state set aside: %v", m)
	}
	r.stop(t)

	// Nothing readable but the header: set aside.
	os.WriteFile(path, []byte(lines[0]+"garbage\n"), 0o600)
	r = start(t, e.config(), fwtest.New(nil))
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Errorf("unreadable state not set aside: %v\n%s", m, r.logs)
	}
}

// rss is this process's resident memory.
func rss(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		testutil.Missing(t, "no /proc: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestStateNotRegular: state files that are links to /dev/zero (read to
// the end: memory exhausted) or FIFOs (the open waited for a writer) are
// refused with an error; the daemon starts without them at once, without
// growing, and saves regular files in their place.
func TestStateNotRegular(t *testing.T) {
	for _, tc := range []struct{ name, bans, positions string }{
		{"bans /dev/zero, positions FIFO", "zero", "fifo"},
		{"bans FIFO, positions /dev/zero", "fifo", "zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			os.MkdirAll(e.state, 0o700)
			mk := map[string]func(string) error{
				"zero": func(p string) error { return os.Symlink("/dev/zero", p) },
				"fifo": func(p string) error { return syscall.Mkfifo(p, 0o600) },
			}
			bansPath, posPath := filepath.Join(e.state, "bans.state"), filepath.Join(e.state, "positions.json")
			if err := mk[tc.bans](bansPath); err != nil {
				t.Fatal(err)
			}
			if err := mk[tc.positions](posPath); err != nil {
				t.Fatal(err)
			}
			before := rss(t)
			began := time.Now()
			r := start(t, e.config(), nil)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("start took %v", took)
			}
			if grew := rss(t) - before; grew > 64<<20 {
				t.Errorf("resident memory grew %d MiB at start", grew>>20)
			}
			if n := r.logs.Count(`"level":"error"`, "saved bans unreadable", "not a regular file"); n != 1 {
				t.Errorf("%d errors for the bans file; want 1\n%s", n, r.logs)
			}
			if n := r.logs.Count(`"level":"error"`, "saved log positions unreadable", "not a regular file"); n != 1 {
				t.Errorf("%d errors for the positions file; want 1\n%s", n, r.logs)
			}
			appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
			if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
				t.Fatal("not banned")
			}
			if !eventually(func() bool {
				a, err1 := os.Lstat(bansPath)
				b, err2 := os.Lstat(posPath)
				return err1 == nil && err2 == nil && a.Mode().IsRegular() && b.Mode().IsRegular()
			}) {
				t.Error("state files not saved as regular files")
			}
		})
	}
}
