// Command daemonbench measures the running daemon against the kernel, in a
// network namespace of its own (run as root; bench/daemon.sh wraps it):
//
//   - ban latency: from the log line that completes a burst being written
//     to the attacker's element being committed to the nftables set, seen
//     through the nftables monitor (p50, p90, p99 over -n attackers);
//   - a burst: -burst distinct attackers, 5 lines each, written at once,
//     until the last of them is in the kernel;
//   - restore: -restore bans saved in the state, until the restarted daemon
//     has them all in the kernel (checked by reading the sets back).
//
// Numbers, not assertions: it fails only if bans never arrive.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"

	"github.com/sipguard/sipguard/control"
)

func main() {
	bin := flag.String("bin", "", "the sipguard binary (required)")
	n := flag.Int("n", 200, "attackers for the latency samples")
	burst := flag.Int("burst", 10000, "distinct attackers written at once")
	restore := flag.Int("restore", 100000, "bans saved, then restored by a restarted daemon")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: daemonbench -bin SIPGUARD [-n N] [-burst N] [-restore N]")
		os.Exit(2)
	}
	b, err := setup(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonbench:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; b.cleanup(); os.Exit(1) }()
	err = b.run(*n, *burst, *restore)
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemonbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, ns, dir, log, config string
	daemon                    *exec.Cmd
	daemonLog                 *os.File
	nsFile                    *os.File
	conn                      *nftables.Conn
	mon                       *nftables.Monitor

	mu   sync.Mutex
	seen map[netip.Addr]time.Time // first commit of each element
	wake chan struct{}
}

func setup(bin string) (*bench, error) {
	r := make([]byte, 4)
	rand.Read(r)
	b := &bench{bin: bin, ns: "sgbench-" + hex.EncodeToString(r), seen: map[netip.Addr]time.Time{}, wake: make(chan struct{}, 1)}
	if out, err := exec.Command("ip", "netns", "add", b.ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v %s", err, out)
	}
	exec.Command("ip", "-n", b.ns, "link", "set", "lo", "up").Run()
	var err error
	if b.dir, err = os.MkdirTemp("", "sgbench"); err != nil {
		b.cleanup()
		return nil, err
	}
	b.log = filepath.Join(b.dir, "messages.log")
	b.config = filepath.Join(b.dir, "rules.toml")
	os.WriteFile(b.log, nil, 0o644)
	cfg := fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
[[source]]
name = "pbx"
path = %q
parser = "asterisk"
[[rule]]
name = "burst"
max_retry = 5
find_time = "1m"
ban_time = "1h"
`, filepath.Join(b.dir, "state"), filepath.Join(b.dir, "sipguard.sock"), b.log)
	os.WriteFile(b.config, []byte(cfg), 0o644)
	return b, nil
}

func (b *bench) cleanup() {
	b.stopDaemon()
	if b.conn != nil {
		b.conn.CloseLasting()
	}
	if b.nsFile != nil {
		b.nsFile.Close()
	}
	exec.Command("ip", "netns", "del", b.ns).Run()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func (b *bench) startDaemon() error {
	f, err := os.OpenFile(filepath.Join(b.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b.daemonLog = f
	b.daemon = exec.Command("ip", "netns", "exec", b.ns, b.bin, "run", "-c", b.config)
	b.daemon.Stdout, b.daemon.Stderr = f, f
	if err := b.daemon.Start(); err != nil {
		return err
	}
	c := control.NewClient(filepath.Join(b.dir, "sipguard.sock"))
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := c.Status(context.Background()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("daemon did not start; see its log:\n%s", b.daemonLogText())
}

func (b *bench) daemonLogText() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "daemon.log"))
	return string(data)
}

func (b *bench) stopDaemon() {
	if b.daemon == nil || b.daemon.Process == nil {
		return
	}
	b.daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.daemon.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		b.daemon.Process.Kill()
		<-done
	}
	b.daemon = nil
	b.daemonLog.Close()
}

// monitor records when each element is committed to a set of the table.
func (b *bench) monitor() error {
	f, err := os.Open("/run/netns/" + b.ns)
	if err != nil {
		return err
	}
	b.nsFile = f
	// Reads on a lasting connection; the monitor on a socket of its own
	// (a lasting Conn would share one), with room for a burst of events.
	b.conn, err = nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		return err
	}
	monConn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetReadBuffer(64 << 20)
	}))
	if err != nil {
		return err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionNew), nftables.WithMonitorObject(nftables.MonitorObjectElements),
		nftables.WithMonitorEventBuffer(1<<16))
	b.mon = mon
	events, err := monConn.AddGenerationalMonitor(mon)
	if err != nil {
		return fmt.Errorf("nftables monitor: %w", err)
	}
	go func() {
		for gen := range events {
			now := time.Now()
			b.mu.Lock()
			for _, ev := range gen.Changes {
				elems, ok := ev.Data.([]nftables.SetElement)
				if !ok {
					continue
				}
				for _, e := range elems {
					if a, ok := netip.AddrFromSlice(e.Key); ok && !e.IntervalEnd {
						if _, dup := b.seen[a.Unmap()]; !dup {
							b.seen[a.Unmap()] = now
						}
					}
				}
			}
			b.mu.Unlock()
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
	}()
	return nil
}

// waitSeen waits until every address has been committed, and returns when
// the last one was.
func (b *bench) waitSeen(addrs []netip.Addr, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		var last time.Time
		missing := 0
		for _, a := range addrs {
			t, ok := b.seen[a]
			if !ok {
				missing++
			} else if t.After(last) {
				last = t
			}
		}
		b.mu.Unlock()
		if missing == 0 {
			return last, nil
		}
		select {
		case <-b.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return time.Time{}, fmt.Errorf("%d of %d bans never reached the kernel", missing, len(addrs))
		}
	}
}

func lines(a netip.Addr, n int) []byte {
	var buf bytes.Buffer
	ts := time.Now().Format(time.DateTime)
	for range n {
		fmt.Fprintf(&buf, "[%s] NOTICE[4121] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '%s:5060' - Wrong password\n", ts, a)
	}
	return buf.Bytes()
}

// attacker returns the i-th test address in 100.64.0.0/10 (shared space).
func attacker(base, i int) netip.Addr {
	v := base + i
	return netip.AddrFrom4([4]byte{100, byte(64 + v>>16&0x3f), byte(v >> 8), byte(v)})
}

func (b *bench) run(n, burst, restore int) error {
	if err := b.startDaemon(); err != nil {
		return err
	}
	if err := b.monitor(); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer logf.Close()

	// Latency: one attacker at a time.
	var lat []time.Duration
	for i := range n {
		a := attacker(0, i)
		data := lines(a, 5)
		t0 := time.Now()
		if _, err := logf.Write(data); err != nil {
			return err
		}
		at, err := b.waitSeen([]netip.Addr{a}, 10*time.Second)
		if err != nil {
			return fmt.Errorf("latency sample %d: %w\n%s", i, err, b.daemonLogText())
		}
		lat = append(lat, at.Sub(t0))
		time.Sleep(5 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("ban latency, log line written -> element committed (%d attackers): p50 %v  p90 %v  p99 %v  max %v\n",
		n, q(0.50).Round(10*time.Microsecond), q(0.90).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))

	// Burst: many attackers at once.
	var all bytes.Buffer
	addrs := make([]netip.Addr, burst)
	for i := range burst {
		addrs[i] = attacker(100000, i)
		all.Write(lines(addrs[i], 5))
	}
	t0 := time.Now()
	if _, err := logf.Write(all.Bytes()); err != nil {
		return err
	}
	last, err := b.waitSeen(addrs, 60*time.Second)
	if err != nil {
		// Missed monitor events (a full socket buffer) are no missing bans:
		// read the sets back before concluding.
		if n, _, cerr := b.count(); cerr == nil {
			return fmt.Errorf("burst: %w; %d elements in the kernel", err, n)
		}
		return fmt.Errorf("burst: %w", err)
	}
	fmt.Printf("burst: %d attackers (%d lines, %.1f MiB written at once) all in the kernel after %v\n",
		burst, 5*burst, float64(all.Len())/(1<<20), last.Sub(t0).Round(time.Millisecond))

	// Restore: stop, save many bans, restart. A subscribed monitor slows
	// big kernel writes several times: close ours first.
	b.mon.Close()
	b.stopDaemon()
	if err := b.writeBans(restore); err != nil {
		return err
	}
	// As after a reboot: nothing in the kernel.
	if out, err := exec.Command("ip", "netns", "exec", b.ns, "nft", "delete", "table", "inet", "sipguard").CombinedOutput(); err != nil {
		return fmt.Errorf("nft delete table: %v %s", err, out)
	}
	t0 = time.Now()
	if err := b.startDaemon(); err != nil {
		return err
	}
	up := time.Since(t0)
	count, readBack, err := b.count()
	if err != nil {
		return err
	}
	took := restoredTook(b.daemonLogText())
	fmt.Printf("restore: %d bans saved; %d in the kernel after restart (sets read back in %v); the daemon's restore took %s, start to answering %v\n",
		restore, count, readBack.Round(time.Millisecond), took, up.Round(time.Millisecond))
	if count != restore {
		return fmt.Errorf("%d bans in the kernel after restoring %d; the daemon's log:\n%s", count, restore, b.daemonLogText())
	}
	return nil
}

// writeBans replaces the saved bans with n one-hour bans, in the daemon's
// state format (daemon/state.go).
func (b *bench) writeBans(n int) error {
	now := time.Now()
	var buf bytes.Buffer
	buf.WriteString("# sipguard bans v1\n")
	for i := range n {
		fmt.Fprintf(&buf, "ban\t%s\t\"bench\"\t%d\t%d\t5\t0\t\"pbx\"\t\"\"\t\"bench\"\n",
			netip.PrefixFrom(attacker(200000, i), 32), now.UnixMilli(), now.Add(time.Hour).UnixMilli())
	}
	return os.WriteFile(filepath.Join(b.dir, "state", "bans.state"), buf.Bytes(), 0o600)
}

// count reads the table's ban sets back and counts their elements (not
// the allowlist's or the ports').
func (b *bench) count() (int, time.Duration, error) {
	t0 := time.Now()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sipguard"}
	sets, err := b.conn.GetSets(table)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, s := range sets {
		switch s.Name {
		case "ban4", "ban6", "net4", "net6":
		default:
			continue
		}
		els, err := b.conn.GetSetElements(s)
		if err != nil {
			return 0, 0, err
		}
		for _, e := range els {
			if !e.IntervalEnd {
				n++
			}
		}
	}
	return n, time.Since(t0), nil
}

// restoredTook finds the daemon's own measures of its restore in its log:
// the whole restore, and the firewall's load and read-back verification.
func restoredTook(log string) string {
	var took, load, verify float64
	for _, line := range strings.Split(log, "\n") {
		var v struct {
			Message string  `json:"message"`
			Took    float64 `json:"took"`
			Load    float64 `json:"load_seconds"`
			Verify  float64 `json:"verify_seconds"`
		}
		if json.Unmarshal([]byte(line), &v) != nil {
			continue
		}
		switch v.Message {
		case "bans restored":
			took = v.Took
		case "loaded bans":
			load = v.Load
		case "bans read back from the kernel: all present":
			verify = v.Verify
		}
	}
	return fmt.Sprintf("%.3fs (kernel load %.3fs; then, while running, read back and checked in %.3fs)", took, load, verify)
}
