package file

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// tracker commits the offset of one file as its chunks are acknowledged:
// the committed offset is the end of the longest run of chunks, in reading
// order, that every routed output has delivered.
type tracker struct {
	store *checkpoint.Store

	mu        sync.Mutex
	entry     checkpoint.Entry
	offset    atomic.Int64    // entry.Offset, read without mu
	pending   []*trackedChunk // in reading order
	forgotten bool
	idle      chan struct{} // closed and replaced when pending becomes empty
}

type trackedChunk struct {
	end  int64
	done bool
}

// newTracker tracks the file of e, recorded in store unless register is
// false (then restart records it).
func newTracker(store *checkpoint.Store, e checkpoint.Entry, register bool) *tracker {
	t := &tracker{store: store, entry: e}
	t.offset.Store(e.Offset)
	if register {
		store.Set(e)
	}
	return t
}

// add registers a chunk ending at end, to be reported to done once
// delivered.
func (t *tracker) add(end int64) *trackedChunk {
	tc := &trackedChunk{end: end}
	t.mu.Lock()
	t.pending = append(t.pending, tc)
	t.mu.Unlock()
	return tc
}

func (t *tracker) done(tc *trackedChunk) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc.done = true
	n := 0
	for n < len(t.pending) && t.pending[n].done {
		n++
	}
	if n == 0 {
		return
	}
	t.entry.Offset = t.pending[n-1].end
	t.offset.Store(t.entry.Offset)
	t.entry.Updated = time.Now()
	clear(t.pending[:n])
	t.pending = t.pending[n:]
	if !t.forgotten {
		t.store.Set(t.entry)
	}
	if len(t.pending) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// inflight returns the number of chunks not yet acknowledged.
func (t *tracker) inflight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// committedOffset returns the committed offset.
func (t *tracker) committedOffset() int64 {
	return t.offset.Load()
}

// committed returns the committed entry.
func (t *tracker) committed() checkpoint.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entry
}

// rename records the file's new path and, when its fingerprint was
// extended, its new identity.
func (t *tracker) update(path string, id logagent.FileID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.entry.Key()
	t.entry.Path = path
	t.entry.ID = id
	if !t.forgotten {
		t.store.Rekey(old, t.entry)
	}
}

// reset starts the file over at offset 0 under a new identity, after it was
// truncated. Chunks still in flight no longer move the offset.
func (t *tracker) reset(id logagent.FileID) {
	t.mu.Lock()
	for _, p := range t.pending {
		p.end = 0
	}
	t.mu.Unlock()
	t.restart(id, 0)
}

// restart sets where the file starts (or starts over), under its identity of
// now.
func (t *tracker) restart(id logagent.FileID, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.entry.Key()
	t.entry.ID = id
	t.entry.Offset = offset
	t.offset.Store(offset)
	t.entry.Updated = time.Now()
	if !t.forgotten {
		t.store.Rekey(old, t.entry)
	}
}

// forget drops the file from the checkpoint: it is gone and fully read.
func (t *tracker) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgotten = true
	t.store.Delete(t.entry.Key())
}
