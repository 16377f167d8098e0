package daemon

import (
	"net/netip"

	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

// TestStopSourceStuck: a source whose goroutine does not stop (held in a
// system call by a file system that does not answer) holds the core
// goroutine stopWait at most; the batches it sends afterwards are dropped,
// so that its replacement, reading on from the last position handled,
// counts no line twice.
func TestStopSourceStuck(t *testing.T) {
	d, err := New(Config{Engine: engine.Options{
		Rules: []engine.Rule{{Name: "r", Kinds: parsers.AllKinds, MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour, Factor: 1}},
	}}, fwtest.New(nil), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stuck := &runner{src: Source{Name: "pbx", Path: "/mnt/nfs/messages"}, cancel: func() {}, done: make(chan struct{})}
	d.runners["pbx"] = stuck
	began := time.Now()
	d.stopSource("pbx")
	if took := time.Since(began); took < stopWait || took > stopWait+time.Second {
		t.Errorf("stopSource took %v; want %v", took, stopWait)
	}
	if _, ok := d.runners["pbx"]; ok {
		t.Error("the stuck runner is still a source")
	}
	fresh := &runner{src: stuck.src, done: make(chan struct{})}
	d.runners["pbx"] = fresh
	d.handle(batch{source: "pbx", from: stuck, pos: watchers.Position{Inode: 1, Offset: 100}})
	if p, ok := d.pendingPos["pbx"]; ok {
		t.Errorf("position %+v taken from the runner left behind", p)
	}
	d.handle(batch{source: "pbx", from: fresh, pos: watchers.Position{Inode: 1, Offset: 50}})
	if p := d.pendingPos["pbx"]; p.Position.Offset != 50 {
		t.Errorf("position %+v; want its replacement's", p)
	}
}

// TestDrainQueuedBounded: the core handles at most a queue's worth of
// batches before it flushes the bans they made, however fast a source
// (the wire sensor under a flood of refusals to an allowlisted address: a
// batch a packet) fills the queue again.
func TestDrainQueuedBounded(t *testing.T) {
	fw := fwtest.New(nil)
	d, err := New(Config{Engine: engine.Options{
		Rules: []engine.Rule{{Name: "r", Kinds: parsers.KindSet(0).With(parsers.AuthFailed), MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour, Factor: 1}},
	}}, fw, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{src: Source{Name: WireSource}, done: make(chan struct{})}
	d.runners[WireSource] = r
	flood := []parsers.Event{{Addr: netip.MustParseAddr("192.0.2.1"), Kind: parsers.AuthSucceeded, Time: time.Now()}}
	stop, sent := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for {
			select {
			case d.batches <- batch{source: WireSource, from: r, events: flood, texts: []string{""}}:
				n++
			case <-stop:
				return
			}
		}
	}()
	for len(d.batches) < cap(d.batches) {
		time.Sleep(time.Millisecond)
	}
	// Hold the core back as a slow handler would: the sender refills.
	d.drainQueued()
	close(stop)
	handled := <-sent - len(d.batches)
	if handled > cap(d.batches) {
		t.Errorf("drainQueued handled %d batches; want at most the queue's %d", handled, cap(d.batches))
	}
}
