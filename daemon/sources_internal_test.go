package daemon

import (
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
