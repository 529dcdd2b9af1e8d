package file

import (
	"context"
	"sync/atomic"
	"time"
)

// harvestCtx is a harvester's context: it ends when the harvester's
// cancel is called, which its input does for every harvester as it stops
// (Input.closeParked), and starts none after; the input's context gives it
// its values. A file held open holds one: unlike a child of the input's
// context (context.WithCancel: a context, a closure and an entry in the
// input's context, about 150 bytes a file), it holds two pointers: to
// the input's context, and to a channel, nil until something waits on it
// (Done). Nothing may derive a context from it:
// context.WithCancel would start a goroutine to watch it.
type harvestCtx struct {
	// parent is the input's context (Input.ctx, set before its first
	// harvester and never changed after): Deadline, Value. A pointer to
	// it, not a copy: a harvester is held per open file.
	parent *context.Context
	// done is nil until Done or cancel; then Done's channel, or
	// cancelled once cancel swapped it in (and closed the channel it
	// replaced).
	done atomic.Pointer[chan struct{}]
}

// cancelled is the done of every harvestCtx cancelled: a closed channel.
var cancelled = func() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}()

// Deadline returns the input's context's.
func (c *harvestCtx) Deadline() (time.Time, bool) { return (*c.parent).Deadline() }

// Value returns the input's context's.
func (c *harvestCtx) Value(key any) any { return (*c.parent).Value(key) }

// Done returns a channel closed once c is cancelled.
func (c *harvestCtx) Done() <-chan struct{} {
	for {
		if p := c.done.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if c.done.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// Err returns context.Canceled once c is cancelled, nil before.
func (c *harvestCtx) Err() error {
	if c.done.Load() == cancelled {
		return context.Canceled
	}
	return nil
}

// cancel ends c. It may be called more than once, from any goroutine.
func (c *harvestCtx) cancel() {
	if p := c.done.Swap(cancelled); p != nil && p != cancelled {
		close(*p)
	}
}
