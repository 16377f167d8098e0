package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logWriter appends failure lines the way Asterisk does: one O_APPEND
// descriptor, reopened on request after a rotation. It counts lines per
// attacker.
type logWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
	sent map[string]int
	n    int
}

func newLogWriter(t *testing.T, path string) *logWriter {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return &logWriter{path: path, f: f, sent: map[string]int{}}
}

func (w *logWriter) write(addr string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := time.Now().Format("2006-01-02 15:04:05.000")
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "[%s] NOTICE[4121] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '%s:5060' - Wrong password\n", ts, addr)
	}
	w.f.WriteString(b.String())
	w.sent[addr] += n
	w.n += n
}

// reopen makes the writer write to the path again (Asterisk's "logger
// reload" after logrotate's rename).
func (w *logWriter) reopen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Close()
	w.f, _ = os.OpenFile(w.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
}

func (w *logWriter) close() { w.mu.Lock(); w.f.Close(); w.mu.Unlock() }

// kernelSet reads the addresses in a set of the namespace's sipguard table.
func kernelSet(t *testing.T, ns, set string) map[string]bool {
	t.Helper()
	out := []byte(nft(t, ns, "-j", "list", "set", "inet", "sipguard", set))
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	json.Unmarshal(out, &doc)
	got := map[string]bool{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			var s string
			if json.Unmarshal(e, &s) == nil {
				got[s] = true
				continue
			}
			var el struct {
				Elem struct {
					Val string `json:"val"`
				} `json:"elem"`
			}
			json.Unmarshal(e, &el)
			got[el.Elem.Val] = true
		}
	}
	return got
}

type statusJSON struct {
	PID     int `json:"pid"`
	Sources []struct {
		Offset int64 `json:"offset"`
		Lines  int64 `json:"lines"`
		Events int64 `json:"events"`
	} `json:"sources"`
	Engine struct {
		Events int64 `json:"events"`
	} `json:"engine"`
}

func status(t *testing.T, config string) (statusJSON, error) {
	out, _, err := ctl(t, "status", "--json", "-c", config)
	var st statusJSON
	if err == nil {
		err = json.Unmarshal([]byte(out), &st)
	}
	return st, err
}

func rssKiB(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func soakConfig(t *testing.T, dir, logPath string) string {
	config := filepath.Join(dir, "rules.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[allow]
self = false
addresses = ["127.0.0.0/8"]
[[source]]
name = "pbx"
path = %q
parser = "asterisk"
start = "beginning"
[[rule]]
name = "r"
max_retry = 3
find_time = "1h"
ban_time = "1h"
`, filepath.Join(dir, "state"), filepath.Join(dir, "sock"), logPath)), 0o644)
	return config
}

// TestSoakRotation writes failures from many addresses at a high rate for
// SIPGUARD_SOAK (default 60s; shorter for a quick local run) while the log is
// rotated every 2 s, alternating rename+create and copytruncate: every line
// is seen exactly once, every address past the threshold is in the kernel,
// and memory stays flat.
func TestSoakRotation(t *testing.T) {
	needRoot(t)
	soak := 60 * time.Second
	if v := os.Getenv("SIPGUARD_SOAK"); v != "" {
		var err error
		if soak, err = time.ParseDuration(v); err != nil || soak < 5*time.Second {
			t.Fatalf("SIPGUARD_SOAK=%q: want a duration of at least 5s", v)
		}
	}
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	w := newLogWriter(t, logPath)
	defer w.close()
	config := soakConfig(t, dir, logPath)
	d := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { _, err := status(t, config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	st, _ := status(t, config)
	pid := st.PID

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // thousands of lines/s from 5,000 addresses, seen within a second
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a := 1000 + i%5000
			w.write(fmt.Sprintf("10.%d.%d.%d", 90+a/65536, a/256%256, a%256), 1+i%3)
			if i%50 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	rotations := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			rotations++
			old := fmt.Sprintf("%s.%d", logPath, rotations)
			if rotations%2 == 1 {
				// rename + create; the writer goes on writing to the old
				// file for a moment before it reopens.
				os.Rename(logPath, old)
				os.WriteFile(logPath, nil, 0o644)
				time.Sleep(50 * time.Millisecond)
				w.reopen()
			} else {
				// copytruncate, with the writer held between copy and
				// truncate (lines written there are in neither file).
				w.mu.Lock()
				data, _ := os.ReadFile(logPath)
				os.WriteFile(old, data, 0o644)
				os.Truncate(logPath, 0)
				w.mu.Unlock()
			}
		}
	}()
	var samples, fds []int
	deadline := time.Now().Add(soak)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		samples = append(samples, rssKiB(pid))
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		fds = append(fds, len(ents))
	}
	close(stop)
	wg.Wait()

	written := w.n
	if !waitFor(30*time.Second, func() bool { st, err := status(t, config); return err == nil && st.Sources[0].Events == int64(written) }) {
		st, _ := status(t, config)
		t.Fatalf("wrote %d lines; the daemon saw %d:\n%s", written, st.Sources[0].Events, d.stderr)
	}
	banned := kernelSet(t, ns, "ban4")
	missing, want := 0, 0
	for a, n := range w.sent {
		if n >= 3 {
			want++
			if !banned[a] {
				missing++
			}
		}
	}
	if missing > 0 || want == 0 {
		t.Errorf("%d of %d addresses past the threshold are not in the kernel", missing, want)
	}
	third := samples[len(samples)/3]
	last := samples[len(samples)-1]
	t.Logf("soak %v: %d lines written, %d seen, %d rotations, %d addresses banned (all in ban4); RSS %d KiB after a third, %d KiB at the end; open files %d then %d",
		soak, written, written, rotations, want, third, last, fds[len(fds)/3], fds[len(fds)-1])
	if last > third*3/2+8*1024 {
		t.Errorf("memory grew from %d KiB to %d KiB", third, last)
	}
	if fds[len(fds)-1] > fds[len(fds)/3]+2 {
		t.Errorf("open files grew from %d to %d: rotated files not closed", fds[len(fds)/3], fds[len(fds)-1])
	}
}

// TestCrashRestart kills the daemon with SIGKILL at random moments, ten
// times, while it follows a log being written and saves its state: every
// restart finds its state readable, no ban in force is lost, and no line
// is lost (the lines read again after a crash are counted).
func TestCrashRestart(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	w := newLogWriter(t, logPath)
	defer w.close()
	config := soakConfig(t, dir, logPath)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a := 1000 + i
			w.write(fmt.Sprintf("10.%d.%d.%d", 100+a/65536, a/256%256, a%256), 1+i%3)
			time.Sleep(time.Millisecond)
		}
	}()
	var reread []int64
	manual := 0
	for cycle := range 10 {
		d := startDaemon(t, ns, config)
		if !waitFor(20*time.Second, func() bool { _, err := status(t, config); return err == nil }) {
			t.Fatalf("cycle %d: daemon did not start:\n%s", cycle, d.stderr)
		}
		if s := d.stderr.String(); strings.Contains(s, "unreadable") || strings.Contains(s, "corrupt") {
			t.Fatalf("cycle %d: state damaged:\n%s", cycle, s)
		}
		// A manual ban now and then: its save is waited for.
		manual++
		target := fmt.Sprintf("198.18.%d.0/24", manual)
		if _, errOut, err := ctl(t, "ban", "-c", config, "--for", "1h", target); err != nil {
			t.Fatalf("manual ban: %v %s", err, errOut)
		}
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		before, _, _ := ctl(t, "list", "--json", "-c", config)
		st, _ := status(t, config)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done

		var listed []struct {
			Target string `json:"target"`
		}
		json.Unmarshal([]byte(before), &listed)
		d2 := startDaemon(t, ns, config)
		if !waitFor(20*time.Second, func() bool { _, err := status(t, config); return err == nil }) {
			t.Fatalf("cycle %d: daemon did not restart:\n%s", cycle, d2.stderr)
		}
		after, _, _ := ctl(t, "list", "--json", "-c", config)
		for _, b := range listed {
			if !strings.Contains(after, `"`+b.Target+`"`) {
				t.Errorf("cycle %d: ban %s lost in the crash", cycle, b.Target)
			}
		}
		// How far back the restart resumed: the lines read again.
		if st.Sources != nil {
			if resumed := resumeOffset(d2.stderr.String()); resumed >= 0 {
				reread = append(reread, max(st.Sources[0].Offset-resumed, 0))
			}
		}
		d2.cmd.Process.Signal(syscall.SIGKILL)
		<-d2.done
	}
	close(stop)
	<-done

	// A last run catches up: every address past the threshold is banned.
	d := startDaemon(t, ns, config)
	if !waitFor(30*time.Second, func() bool {
		st, err := status(t, config)
		fi, _ := os.Stat(logPath)
		return err == nil && fi != nil && st.Sources[0].Offset == fi.Size()
	}) {
		t.Fatalf("did not catch up:\n%s", d.stderr)
	}
	banned := kernelSet(t, ns, "ban4")
	missing, want := 0, 0
	for a, n := range w.sent {
		if n >= 3 {
			want++
			if !banned[a] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d addresses past the threshold not banned after 10 crashes", missing, want)
	}
	var maxRe int64
	for _, r := range reread {
		maxRe = max(maxRe, r)
	}
	t.Logf("10 kill -9 cycles: %d lines written, %d addresses banned, %d manual bans kept; bytes read again per crash: %v (max %d, about %d lines)",
		w.n, want, manual, reread, maxRe, maxRe/130)
}

// resumeOffset finds the offset the follower resumed at in a daemon's log.
func resumeOffset(log string) int64 {
	for _, l := range strings.Split(log, "\n") {
		var v struct {
			Resume string `json:"resume"`
			Offset int64  `json:"offset"`
		}
		if json.Unmarshal([]byte(l), &v) == nil && v.Resume != "" {
			return v.Offset
		}
	}
	return -1
}

func jsonInto(s string, v any) bool { return json.Unmarshal([]byte(s), v) == nil }
