package file

import (
	"sort"
	"time"

	"github.com/logagent/logagent"
)

// Status: what the input tells of its open files (the agent's /status,
// metrics and shutdown report). It reads harvester fields only under
// Input.mu or atomically.

// FileStatus is what the input knows of one open file.
type FileStatus struct {
	Path      string
	ID        logagent.FileID
	State     string
	Size      int64 // last size seen
	Read      int64 // end of the last message handed out
	Committed int64 // every byte before it is delivered
}

// Behind returns the status of the open files not delivered to their end,
// in no order: those being read, and parked ones whose chunks are not all
// acknowledged (outputs down). It looks at every open file.
func (in *Input) Behind() []FileStatus {
	var out []FileStatus
	behind := func(hs []lookedAt) []lookedAt {
		for _, h := range in.byInode {
			// A parked file is read to its end: behind only while
			// its chunks are not all acknowledged. The size of the
			// others is looked up.
			if !h.parked || h.tr.committedOffset() < h.size.Load() {
				hs = append(hs, lookedAt{h, h.state, h.parked})
			}
		}
		return hs
	}
	for _, f := range in.status(behind) {
		if f.Committed < f.Size {
			out = append(out, f)
		}
	}
	return out
}

// Reading is the status of the files being read and of those that had
// data within the last RecentlyActive, whether behind or not: the files
// whose delivery rate is worth sampling. With thousands of files idle,
// cheap enough for every second.
func (in *Input) Reading() []FileStatus {
	return in.status(in.recentlyActive)
}

// RecentlyActive is how long after its last data a file counts as being
// read, for Reading.
const RecentlyActive = 10 * time.Second

// Files returns the status of every open file, sorted by path.
func (in *Input) Files() []FileStatus {
	out := in.status(in.openFiles)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// lookedAt is a harvester and what of it is read under in.mu.
type lookedAt struct {
	h      *harvester
	state  fileState
	parked bool
}

// openFiles appends every open file to hs; in.mu is held.
func (in *Input) openFiles(hs []lookedAt) []lookedAt {
	for _, h := range in.byInode {
		hs = append(hs, lookedAt{h, h.state, h.parked})
	}
	return hs
}

// recentlyActive appends the files being read, and those parked with
// data within RecentlyActive, to hs; in.mu is held.
func (in *Input) recentlyActive(hs []lookedAt) []lookedAt {
	for h := range in.busy {
		hs = append(hs, lookedAt{h, h.state, false})
	}
	now := time.Now()
	for h := range in.recent {
		switch {
		case !h.parked:
			// busy (listed above), or closing
		case now.Sub(h.lastData) > RecentlyActive: // parked: its goroutine wrote lastData before in.mu
			delete(in.recent, h)
		default:
			hs = append(hs, lookedAt{h, h.state, true})
		}
	}
	return hs
}

// status returns the status of the files pick chooses. The size of a file
// not parked is looked up now (fstat): a harvester paused by its outputs
// looks at its file's end only once it reads again, and the status must
// tell how far behind the file is meanwhile. A parked file was read to its
// end, and an event or poll wakes it when it grows.
func (in *Input) status(pick func([]lookedAt) []lookedAt) []FileStatus {
	in.mu.Lock()
	hs := pick(nil)
	in.mu.Unlock()
	out := make([]FileStatus, 0, len(hs))
	for _, l := range hs {
		h := l.h
		if !l.parked {
			if fi, err := h.f.Stat(); err == nil && fi.Size() > h.size.Load() {
				// Grown: what a harvester stores itself
				// (truncations) it learns by reading.
				h.size.Store(fi.Size())
			}
		}
		e := h.tr.committed()
		out = append(out, FileStatus{
			Path: e.Path, ID: e.ID, State: l.state.String(),
			Size: h.size.Load(), Read: h.readPos.Load(), Committed: e.Offset,
		})
	}
	return out
}
