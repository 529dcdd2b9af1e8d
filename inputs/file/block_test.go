package file

import (
	"context"
	"testing"
	"time"
)

// One input holding all it can of the pool (its outputs never acknowledge)
// leaves every other input its reserve; the common half goes to whoever
// asks first; a waiter is served by its own input's releases.
func TestPoolReserves(t *testing.T) {
	for _, tc := range []struct {
		name             string
		inputs           int
		wantReserve      int64
		stuckCanHold     int64 // reserve + common
		othersCanHoldNow int64 // their reserve, once the stuck one holds all it can
	}{
		{"one input", 1, 512, 1024, 0},
		{"two inputs", 2, 256, 768, 256},
		{"four inputs", 4, 128, 640, 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool(1024)
			var bs []*Budget
			for range tc.inputs {
				bs = append(bs, p.Budget("x"))
			}
			if got := p.Reserve(); got != tc.wantReserve {
				t.Fatalf("reserve %d, want %d", got, tc.wantReserve)
			}
			stuck := bs[0]
			held := int64(0)
			for stuck.tryAcquire(64) {
				held += 64
			}
			if held != tc.stuckCanHold {
				t.Errorf("the stuck input holds %d, want %d", held, tc.stuckCanHold)
			}
			for _, b := range bs[1:] {
				got := int64(0)
				for b.tryAcquire(64) {
					got += 64
				}
				if got != tc.othersCanHoldNow {
					t.Errorf("another input got %d, want its reserve %d", got, tc.othersCanHoldNow)
				}
				// Waiting, it is served by its own release.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				done := make(chan error, 1)
				go func() { done <- b.acquire(ctx, 64) }()
				for b.WaitingSince().IsZero() {
					time.Sleep(time.Millisecond)
				}
				b.release(64)
				if err := <-done; err != nil {
					t.Errorf("waiter not served by its input's release: %v", err)
				}
				cancel()
			}
			// The stuck input goes (a reload removes it): its bytes are
			// free for the others.
			p.Remove(stuck)
			if len(bs) > 1 && !bs[1].tryAcquire(256) {
				t.Error("the removed input's bytes were not freed")
			}
		})
	}
}

// Blocks let go of are used again while reads keep taking them; those not
// taken again within idleBlockLife are let go of, so that a start-up that
// filled max_inflight_bytes with blocks does not keep them.
func TestBlockPoolKeepsOnlyRecentBlocks(t *testing.T) {
	p := &blockPool{size: 1024, budget: NewBudget(1 << 20)}
	var held []*block
	for range 100 {
		held = append(held, p.tryGet())
	}
	first := held[0]
	for _, b := range held {
		b.release()
	}
	if got := p.tryGet(); got != held[len(held)-1] {
		t.Error("the block let go of last is not the one used again")
	} else {
		got.release()
	}
	p.mu.Lock()
	n := len(p.idle)
	p.trimLocked(time.Now().Add(idleBlockLife).UnixNano())
	left := len(p.idle)
	p.mu.Unlock()
	if n != 100 || left != 0 {
		t.Errorf("%d blocks kept, %d after idleBlockLife; want 100, 0", n, left)
	}
	if b := p.tryGet(); b == first {
		t.Error("a block idle for idleBlockLife was used again")
	}
	if used := p.budget.Used(); used != 1024 {
		t.Errorf("budget holds %d, want the one block's 1024", used)
	}
}
