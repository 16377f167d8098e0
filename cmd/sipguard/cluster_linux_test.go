package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
)

// The cluster tests run a real NATS server (embedded in this test binary,
// JetStream on, the users and permissions of contrib/nats/users.conf) in a
// network namespace of its own, and `sipguard run` daemons in others, each
// joined to the server's namespace by a veth pair and banning in its own
// kernel table.

// testCluster is a broker namespace and the nodes joined to it.
type testCluster struct {
	t      *testing.T
	id     string
	broker string // namespace
	dir    string
	conf   string // the server's config
	server *exec.Cmd
	done   chan struct{}
	nodes  int
}

func newTestCluster(t *testing.T) *testCluster {
	needRoot(t)
	b := make([]byte, 2)
	rand.Read(b)
	f := &testCluster{t: t, id: hex.EncodeToString(b), dir: t.TempDir()}
	f.broker = netns(t)
	js := filepath.Join(f.dir, "nats")
	os.MkdirAll(js, 0o700)
	conf := fmt.Sprintf("listen: \"0.0.0.0:4222\"\njetstream { store_dir: %q }\ninclude users.conf\n", filepath.Join(js, "js"))
	users, err := os.ReadFile(filepath.Join("..", "..", "contrib", "nats", "users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(js, "users.conf"), users, 0o600)
	f.conf = filepath.Join(js, "nats-server.conf")
	os.WriteFile(f.conf, []byte(conf), 0o600)
	f.startServer()
	t.Cleanup(f.stopServer)
	return f
}

// startServer runs this test binary as the NATS server, in the broker's
// namespace, and waits until it accepts clients.
func (f *testCluster) startServer() {
	f.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", f.broker, os.Args[0])
	// The operator creates the stream (nodes may not: users.conf).
	stream, _ := filepath.Abs(filepath.Join("..", "..", "contrib", "nats", "stream.json"))
	cmd.Env = append(os.Environ(), "SIPGUARD_NATS_SERVER="+f.conf, "SIPGUARD_NATS_STREAM="+stream)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.server, f.done = cmd, make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && strings.HasPrefix(sc.Text(), "ready ")
		ready <- ok
		for sc.Scan() {
		}
	}()
	go func(done chan struct{}) { cmd.Wait(); close(done) }(f.done)
	select {
	case ok := <-ready:
		if !ok {
			f.t.Fatal("nats server did not start")
		}
	case <-time.After(20 * time.Second):
		f.t.Fatal("nats server did not start in 20s")
	}
}

func (f *testCluster) stopServer() {
	if f.server == nil {
		return
	}
	f.server.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.server.Process.Kill()
		<-f.done
	}
	f.server = nil
}

// node is a sipguard daemon of the cluster.
type node struct {
	name, ns, config, log string
	d                     *daemonProc
}

// addNode creates a namespace joined to the broker's by a veth pair and
// writes a config for node name (a user of contrib/nats/users.conf);
// extra goes into its [cluster] section, allow into [allow].
func (f *testCluster) addNode(name, extra string, allow ...string) *node {
	t := f.t
	t.Helper()
	f.nodes++
	ns := netns(t)
	here, there := fmt.Sprintf("sgf%s%d", f.id, f.nodes), fmt.Sprintf("sgf%s%db", f.id, f.nodes)
	subnet := fmt.Sprintf("10.213.%d", f.nodes)
	for _, args := range [][]string{
		{"link", "add", here, "netns", ns, "type", "veth", "peer", "name", there, "netns", f.broker},
		{"-n", ns, "addr", "add", subnet + ".2/24", "dev", here},
		{"-n", ns, "link", "set", here, "up"},
		{"-n", f.broker, "addr", "add", subnet + ".1/24", "dev", there},
		{"-n", f.broker, "link", "set", there, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	dir := filepath.Join(f.dir, name)
	os.MkdirAll(dir, 0o700)
	n := &node{name: name, ns: ns, config: filepath.Join(dir, "rules.toml"), log: filepath.Join(dir, "messages.log")}
	appendLines(t, n.log, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	quoted := make([]string, len(allow))
	for i, a := range allow {
		quoted[i] = strconv.Quote(a)
	}
	os.WriteFile(n.config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q

[allow]
addresses = ["127.0.0.0/8", "::1/128", %s]

[[source]]
name = "pbx"
path = %q
parser = "asterisk"

[cluster]
servers = ["nats://%s.1:4222"]
name = %q
user = %q
password = "%s-secret"
%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "sipguard.sock"), strings.Join(quoted, ", "), n.log, subnet, name, name, name, extra)), 0o600)
	return n
}

// start runs the node's daemon and waits until it has read the cluster's
// bans in force.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.d = startDaemon(t, n.ns, n.config)
	if !waitFor(30*time.Second, func() bool { c := n.cluster(t); return c != nil && c.Connected && c.CaughtUp }) {
		t.Fatalf("%s did not join the cluster: %+v\n%s", n.name, n.cluster(t), n.d.stderr)
	}
}

func (n *node) cluster(t *testing.T) *control.ClusterStatus {
	out, _, err := ctl(t, "status", "--json", "-c", n.config)
	if err != nil {
		return nil
	}
	var st control.Status
	if json.Unmarshal([]byte(out), &st) != nil {
		return nil
	}
	return st.Cluster
}

func (n *node) has(t *testing.T, addr string) bool { return setHas(t, n.ns, "ban4", addr) }

// hasAll reads ban4 once and reports whether it holds every address; it
// fails t when nft fails.
func (n *node) hasAll(t *testing.T, addrs []string) bool {
	out := nft(t, n.ns, "-j", "list", "set", "inet", "sipguard", "ban4")
	for _, a := range addrs {
		if !strings.Contains(out, `"`+a+`"`) {
			return false
		}
	}
	return true
}

// waitAll waits until cond holds for every node, and returns when it
// first held for each.
func waitAll(d time.Duration, nodes []*node, cond func(*node) bool) ([]time.Duration, bool) {
	start := time.Now()
	took := make([]time.Duration, len(nodes))
	left := len(nodes)
	for time.Since(start) < d && left > 0 {
		for i, n := range nodes {
			if took[i] == 0 && cond(n) {
				took[i] = time.Since(start)
				left--
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return took, left == 0
}

// propagation bounds how long a ban or unban may take to reach the other
// nodes' kernels in TestCluster: tens of ms on an idle machine, but under a
// load of 30 on two cores (CI beside other work) polling four namespaces
// with nft took up to 6 s. A bound, not a figure: the cluster benchmark
// measures propagation.
const propagation = 15 * time.Second

// TestCluster: a ban decided on A is in B's and C's kernels;
// C's allowlist wins; with the server down A keeps banning and B and C
// catch up once it is back; a node started later, read-only, gets the bans
// in force; a cluster unban clears every node.
func TestCluster(t *testing.T) {
	f := newTestCluster(t)
	a := f.addNode("pbx-a", "")
	b := f.addNode("pbx-b", "")
	c := f.addNode("pbx-c", "", "198.51.100.10/32")
	for _, n := range []*node{a, b, c} {
		n.start(t)
	}

	// An attack on A: two addresses, one of them allowed on C.
	appendLines(t, a.log, failures("198.51.100.10", 5)...)
	appendLines(t, a.log, failures("198.51.100.11", 5)...)
	took, ok := waitAll(propagation, []*node{a, b, c}, func(n *node) bool { return n.has(t, "198.51.100.11") })
	if !ok {
		t.Fatalf("198.51.100.11 not banned on every node: %v\nA:\n%s\nB:\n%s", took, a.d.stderr, b.d.stderr)
	}
	// Measured, not asserted beyond propagation: tens of ms on an idle
	// machine, but this test runs beside others on two loaded cores. The
	// propagation figure is the cluster benchmark's (test.sh runs it).
	t.Logf("log line on A -> kernel set: A %v, B %v, C %v (polling nft every 2 ms)", took[0], took[1], took[2])
	if !waitFor(propagation, func() bool { return b.has(t, "198.51.100.10") }) {
		t.Fatal("198.51.100.10 not banned on B")
	}
	// C has had A's ban of it once it counts it ignored: only then does
	// its absence from C's kernel say anything.
	if !waitFor(propagation, func() bool { st := c.cluster(t); return st != nil && st.Ignored["allowlisted"] == 1 }) {
		t.Errorf("C's status does not count the allowlisted ban: %+v", c.cluster(t))
	}
	if c.has(t, "198.51.100.10") {
		t.Fatal("C banned an address it allowlists")
	}
	out, _, _ := ctl(t, "list", "-c", b.config)
	if !strings.Contains(out, "pbx-a") || !strings.Contains(out, "198.51.100.11") {
		t.Errorf("B's list does not show the origin:\n%s", out)
	}

	// The server stops; A, attacked again, bans as fast as with it up.
	before, latUp := attackDuring(t, a, 2*time.Second, "up")
	f.stopServer()
	if !waitFor(10*time.Second, func() bool { st := a.cluster(t); return st != nil && !st.Connected }) {
		t.Fatal("A did not notice the server stopped")
	}
	outage := 3 * time.Second
	if s := os.Getenv("SIPGUARD_CLUSTER_OUTAGE"); s != "" {
		outage, _ = time.ParseDuration(s)
	}
	during, latDown := attackDuring(t, a, outage, "down")
	// As fast: the median and the slowest within twice (thrice) those with
	// the server up, plus the granularity of polling nft on a loaded
	// machine. A core waiting on the server would take seconds.
	if up, down := latUp[len(latUp)/2], latDown[len(latDown)/2]; down > 2*up+50*time.Millisecond {
		t.Errorf("line to kernel with the server down: p50 %v; with it up %v", down, up)
	}
	if up, down := latUp[len(latUp)-1], latDown[len(latDown)-1]; down > 3*up+250*time.Millisecond {
		t.Errorf("line to kernel with the server down: max %v; with it up %v", down, up)
	}
	if st := a.cluster(t); st.Queued != len(during) {
		t.Errorf("A's queue while the server is down: %d, want %d", st.Queued, len(during))
	}
	for _, addr := range during[:min(3, len(during))] {
		if b.has(t, addr) {
			t.Fatalf("B has %s, banned while the server was down", addr)
		}
	}

	// Back: B and C catch up.
	f.startServer()
	last := during[len(during)-1]
	took, ok = waitAll(30*time.Second, []*node{b, c}, func(n *node) bool { return n.hasAll(t, during) })
	if !ok {
		t.Fatalf("B and C did not catch up after the server came back (%s missing?): %v\n%s", last, took, b.d.stderr)
	}
	t.Logf("server back: the %d bans A made meanwhile in B's kernel after %v, in C's after %v", len(during), took[0], took[1])
	if st := a.cluster(t); st.Queued != 0 {
		t.Errorf("A's queue after the server came back: %+v", st)
	}

	// A fourth node, started now and allowed only to read, gets the bans
	// in force.
	d := f.addNode("pbx-d", "share = false")
	d.start(t)
	want := append(append([]string{"198.51.100.10", "198.51.100.11"}, before...), during...)
	if !waitFor(propagation, func() bool { return d.hasAll(t, want) }) {
		t.Fatalf("D lacks some of %v", want)
	}
	if st := d.cluster(t); st.Published != 0 || st.PublishErrors != 0 {
		t.Errorf("read-only D published: %+v", st)
	}

	// A cluster unban from B clears every node.
	out, _, err := ctl(t, "unban", "--cluster", "-c", b.config, "198.51.100.11")
	if err != nil || !strings.Contains(out, "queued for the cluster") {
		t.Fatalf("unban --cluster: %v %s", err, out)
	}
	took, ok = waitAll(propagation, []*node{a, b, c, d}, func(n *node) bool { return !n.has(t, "198.51.100.11") })
	if !ok {
		t.Fatalf("cluster unban did not reach every node: %v", took)
	}
	t.Logf("cluster unban from B: gone from A %v, B %v, C %v, D %v", took[0], took[1], took[2], took[3])
	out, _, _ = ctl(t, "status", "-c", c.config)
	t.Logf("C's status:\n%s", out)
	if !a.has(t, "198.51.100.10") || !d.has(t, during[0]) {
		t.Error("a cluster unban of one address lifted others")
	}
	// A plain unban stays local. Anything C published for it would reach
	// A and B before a ban C decides after it (one stream, read in
	// order): once that ban is there, the unban would have been too.
	if _, errOut, err := ctl(t, "unban", "-c", c.config, during[0]); err != nil {
		t.Fatalf("unban on C: %v %s", err, errOut)
	}
	appendLines(t, c.log, failures("198.51.100.12", 5)...)
	if took, ok := waitAll(propagation, []*node{a, b}, func(n *node) bool { return n.has(t, "198.51.100.12") }); !ok {
		t.Fatalf("C's ban after its plain unban did not reach A and B: %v", took)
	}
	if c.has(t, during[0]) || !a.has(t, during[0]) || !b.has(t, during[0]) {
		t.Error("a plain unban was not local")
	}
}

// attackDuring attacks n with a new address every 100 ms for d, waiting
// for each to be banned, and returns the addresses and the times from
// their log lines to their bans in the kernel, sorted. server says whether
// the NATS server is "up" or "down" (their addresses differ).
func attackDuring(t *testing.T, n *node, d time.Duration, server string) ([]string, []time.Duration) {
	t.Helper()
	var addrs []string
	var lat []time.Duration
	end := time.Now().Add(d)
	base := 113
	if server == "up" {
		base = 60
	}
	for i := 0; time.Now().Before(end); i++ {
		addr := fmt.Sprintf("203.0.%d.%d", base+i/250, 1+i%250)
		start := time.Now()
		appendLines(t, n.log, failures(addr, 5)...)
		if !waitFor(5*time.Second, func() bool { return n.has(t, addr) }) {
			t.Fatalf("%s: %s not banned while the server is down:\n%s", n.name, addr, n.d.stderr)
		}
		lat = append(lat, time.Since(start))
		addrs = append(addrs, addr)
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(lat)
	t.Logf("server %s %v: %s banned %d attackers, line to kernel p50 %v, p99 %v, max %v (polling nft)", server, d, n.name, len(lat),
		lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	return addrs, lat
}
