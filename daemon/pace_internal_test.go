package daemon

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPace: after a turn of other nodes' work, the next waits peerRest
// times as long as the turn took, maxRest at most, and no longer than the
// context.
func TestPace(t *testing.T) {
	var p pace
	ctx := context.Background()
	start := time.Now()
	if err := p.wait(ctx); err != nil || time.Since(start) > 5*time.Millisecond {
		t.Fatalf("the first turn waited %v (%v)", time.Since(start), err)
	}
	p.rest(time.Millisecond)
	start = time.Now()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < peerRest*time.Millisecond-100*time.Microsecond {
		t.Errorf("after a turn of 1 ms, the next waited %v; want %v", took, peerRest*time.Millisecond)
	}
	// A turn made long by a slow firewall: the rest is bounded.
	p.rest(time.Second)
	start = time.Now()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < maxRest-time.Millisecond || took > maxRest+50*time.Millisecond {
		t.Errorf("after a turn of 1 s, the next waited %v; want %v", took, maxRest)
	}
	p.rest(time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := p.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait, the context ending first: %v", err)
	}
}
