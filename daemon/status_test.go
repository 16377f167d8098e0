package daemon_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// slowState is a backend whose State takes a while (a pass over 100,000
// bans, a round trip to the kernel), and counts its calls.
type slowState struct {
	firewall.Backend
	reads atomic.Int32
}

func (s *slowState) State(ctx context.Context) firewall.State {
	s.reads.Add(1)
	time.Sleep(300 * time.Millisecond)
	return s.Backend.State(ctx)
}

// TestStatusOffCore: the firewall's part of a status is read outside the
// core goroutine, which goes on answering meanwhile, and callers at once
// share reads: 16 statuses, at most two reads.
func TestStatusOffCore(t *testing.T) {
	e := newEnv(t)
	fw := &slowState{Backend: fwtest.New(nil)}
	r := start(t, e.config(), fw)

	before := fw.reads.Load()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if st, err := r.d.Status(context.Background()); err != nil || st.Firewall.Backend != "fake" {
				t.Errorf("Status: %v %+v", err, st.Firewall)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // a State under way
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.d.Alive(ctx); err != nil {
		t.Errorf("the core goroutine did not answer while the firewall's state was read: %v", err)
	}
	wg.Wait()
	if n := fw.reads.Load() - before; n < 1 || n > 2 {
		t.Errorf("16 statuses at once read the firewall's state %d times, want 1 or 2", n)
	}
}
