//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/wirecap"
)

// fakeReader stands in for package sipwire's Sensor: every 401 is a
// failure of the address it goes to, every 200 a success; anything else
// is dropped as not_sip.
type fakeReader struct {
	mu      sync.Mutex
	expires int
	notSIP  int64
	inCall  bool // Handle or Expire running: they must never overlap
	overlap bool
}

func (f *fakeReader) enter() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overlap = f.overlap || f.inCall
	f.inCall = true
}

func (f *fakeReader) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inCall = false
}

func (f *fakeReader) Handle(p wirecap.Packet) []parsers.Event {
	f.enter()
	defer f.leave()
	ev := parsers.Event{Addr: p.Dst, Port: p.DstPort, User: "100"}
	switch {
	case bytes.HasPrefix(p.Payload, []byte("SIP/2.0 401 ")):
		ev.Kind = parsers.AuthFailed
	case bytes.HasPrefix(p.Payload, []byte("SIP/2.0 200 ")):
		ev.Kind = parsers.AuthSucceeded
	default:
		f.mu.Lock()
		f.notSIP++
		f.mu.Unlock()
		return nil
	}
	return []parsers.Event{ev}
}

func (f *fakeReader) Expire(time.Time) []parsers.Event {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	f.expires++
	f.mu.Unlock()
	return nil
}

func (f *fakeReader) drops() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]int64{"not_sip": f.notSIP}
}

// TestWireSensor: with [wire] on, the PBX's responses leaving its port
// are captured in the kernel (a namespace), read, and their events ban
// the client in the kernel like a log's lines would, as source "wire";
// status shows the sensor's counters; Expire runs every second, never at
// once with Handle; a second daemon on the same group refuses to start,
// naming it; once stopped, responses still flow.
func TestWireSensor(t *testing.T) {
	testutil.NeedRoot(t, "the wire sensor captures in a throw-away network namespace")
	testutil.NeedCommands(t, "apt-get install iproute2 nftables", "ip", "nft")
	pbxNS, clientNS := testutil.NewNetNS(t, "sgdw"), testutil.NewNetNS(t, "sgdw")
	testutil.Run(t, "ip", "-n", pbxNS, "link", "add", "sgdw-pbx", "type", "veth", "peer", "name", "sgdw-cli", "netns", clientNS)
	testutil.Run(t, "ip", "-n", pbxNS, "addr", "add", "198.18.0.1/24", "dev", "sgdw-pbx")
	testutil.Run(t, "ip", "-n", clientNS, "addr", "add", "198.18.0.2/24", "dev", "sgdw-cli")
	testutil.Run(t, "ip", "-n", pbxNS, "link", "set", "sgdw-pbx", "up")
	testutil.Run(t, "ip", "-n", clientNS, "link", "set", "sgdw-cli", "up")

	port, _ := firewall.ParsePort("5060/udp")
	fw, err := firewall.NewNFT(firewall.NFTOptions{
		NetNS: "/run/netns/" + pbxNS, Logger: zerolog.Nop(), Ports: []firewall.Port{port},
		Wire: &firewall.Wire{Hooks: []string{"output"}, Ports: []firewall.Port{port}, Group: 5160},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()

	reader := &fakeReader{}
	wire := &daemon.Wire{
		Capture: wirecap.Options{Group: 5160, NetNS: "/run/netns/" + pbxNS},
		Hooks:   []string{"output"}, Reader: reader, Drops: reader.drops,
	}
	e := newEnv(t)
	cfg := e.config()
	cfg.Wire = wire
	r := start(t, cfg, fw)

	var pbx, client *net.UDPConn
	testutil.InNetNS(t, pbxNS, func() {
		pbx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 5060})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	testutil.InNetNS(t, clientNS, func() {
		client, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 5062})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	send := func(payload string) {
		t.Helper()
		if _, err := pbx.WriteToUDP([]byte(payload), client.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	received := func(n int) {
		t.Helper()
		buf := make([]byte, 2048)
		for range n {
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := client.ReadFromUDP(buf); err != nil {
				t.Fatalf("the client did not get a response: %v", err)
			}
		}
	}

	send("SIP/2.0 200 OK\r\nCall-ID: a\r\n\r\n")
	for range 4 {
		send("SIP/2.0 401 Unauthorized\r\nCall-ID: b\r\n\r\n")
	}
	received(5)
	handled(t, r, 4)
	if _, ok := banned(fw, "198.18.0.2/32"); ok {
		t.Fatal("banned after 4 failures; the rule wants 5")
	}
	send("SIP/2.0 401 Unauthorized\r\nCall-ID: c\r\n\r\n")
	received(1)
	testutil.WaitFor(t, 5*time.Second, "the client's ban", func() bool { _, ok := banned(fw, "198.18.0.2/32"); return ok })
	if out := testutil.Run(t, "ip", "netns", "exec", pbxNS, "nft", "list", "set", "inet", "sipguard", "ban4"); !strings.Contains(out, "198.18.0.2") {
		t.Errorf("not in the kernel's ban set:\n%s", out)
	}

	var ws control.SourceStatus
	testutil.WaitFor(t, 5*time.Second, "the wire source in status with Expire called", func() bool {
		for _, s := range status(t, r).Sources {
			if s.Name == daemon.WireSource {
				ws = s
			}
		}
		reader.mu.Lock()
		defer reader.mu.Unlock()
		return ws.Name != "" && reader.expires >= 2
	})
	if ws.Lines != 6 || ws.Events != 5 || ws.Successes != 1 || ws.EventsBy["auth_failed"] != 5 || ws.State != "reading" ||
		!strings.Contains(ws.Path, "nflog group 5160") || ws.Parser != "sipwire" {
		t.Errorf("wire source: %+v", ws)
	}
	for _, reason := range []string{"nflog_lost", "nflog_overruns", "not_sip", "malformed"} {
		if n, ok := ws.DropBy[reason]; !ok || n != 0 {
			t.Errorf("drop reason %s: %d, present %v; want 0", reason, n, ok)
		}
	}
	if fst := fw.State(context.Background()); fst.WireCopied != 6 {
		t.Errorf("the kernel copied %d responses; want 6", fst.WireCopied)
	}
	reader.mu.Lock()
	if reader.overlap {
		t.Error("Handle and Expire ran at once")
	}
	reader.mu.Unlock()

	// A second daemon on the same group does not start.
	e2 := newEnv(t)
	cfg2 := e2.config()
	cfg2.Wire = &daemon.Wire{Capture: wire.Capture, Hooks: wire.Hooks, Reader: &fakeReader{}}
	d2, err := daemon.New(cfg2, firewall.NewDryRun(zerolog.Nop(), nil), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d2.Run(ctx); !errors.Is(err, wirecap.ErrGroupBusy) || !strings.Contains(err.Error(), "5160") {
		t.Errorf("second daemon: %v; want ErrGroupBusy naming group 5160", err)
	}

	// Stopped: the rules stay, responses flow.
	r.stop(t)
	for range 50 {
		send("SIP/2.0 401 Unauthorized\r\nCall-ID: d\r\n\r\n")
	}
	received(50)
}
