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
//
// One is held per open file: it keeps of the file's checkpoint entry only
// what differs from file to file (what all of an input's share is in
// fileCheckpoint), and the offset once (offset), so that it fits the
// 112-byte size class.
type tracker struct {
	ck *fileCheckpoint

	mu sync.Mutex
	// the file's checkpoint entry, but for its input (ck.input) and its
	// offset: under mu
	id      logagent.FileID
	path    string
	updated int64 // unix nanos; 0: the zero time
	// offset is the entry's Offset: written under mu, read without it.
	offset    atomic.Int64
	pending   []*trackedChunk // in reading order; under mu
	forgotten bool            // under mu
}

// fileCheckpoint is what the trackers of an input's files share: where
// their entries are recorded, and the input they are of.
type fileCheckpoint struct {
	store *checkpoint.Store
	input string
}

type trackedChunk struct {
	end  int64
	done bool
}

// newTracker tracks the file of e, whose Input is ck.input, recorded in
// ck.store unless register is false (then restart records it).
func newTracker(ck *fileCheckpoint, e checkpoint.Entry, register bool) *tracker {
	t := &tracker{ck: ck, id: e.ID, path: e.Path}
	t.setUpdated(e.Updated)
	t.offset.Store(e.Offset)
	if register {
		ck.store.Set(t.entryLocked())
	}
	return t
}

// entryLocked returns the file's checkpoint entry. t.mu is held, or t is
// not shared yet.
func (t *tracker) entryLocked() checkpoint.Entry {
	e := checkpoint.Entry{Input: t.ck.input, ID: t.id, Path: t.path, Offset: t.offset.Load()}
	if t.updated != 0 {
		e.Updated = time.Unix(0, t.updated)
	}
	return e
}

// keyLocked returns the key of the file's checkpoint entry. t.mu is held.
func (t *tracker) keyLocked() checkpoint.Key {
	return checkpoint.Key{Input: t.ck.input, ID: t.id}
}

func (t *tracker) setUpdated(at time.Time) {
	t.updated = 0
	if !at.IsZero() {
		t.updated = at.UnixNano()
	}
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
	t.offset.Store(t.pending[n-1].end)
	t.setUpdated(time.Now())
	clear(t.pending[:n])
	t.pending = t.pending[n:]
	if !t.forgotten {
		t.ck.store.Set(t.entryLocked())
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
	return t.entryLocked()
}

// update records the file's new path and, when its fingerprint was
// extended, its new identity.
func (t *tracker) update(path string, id logagent.FileID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.keyLocked()
	t.path = path
	t.id = id
	if !t.forgotten {
		t.ck.store.Rekey(old, t.entryLocked())
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
	old := t.keyLocked()
	t.id = id
	t.offset.Store(offset)
	t.setUpdated(time.Now())
	if !t.forgotten {
		t.ck.store.Rekey(old, t.entryLocked())
	}
}

// forget drops the file from the checkpoint: it is gone and fully read.
func (t *tracker) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgotten = true
	t.ck.store.Delete(t.keyLocked())
}
