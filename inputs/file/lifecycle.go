package file

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// The input's harvesters: started (start), registered by inode and by
// name, woken (signal), closed once removed for close_removed_after
// (closeRemoved), forgotten when they end (exited).

// start starts a harvester of f, opened by path (see startLinked), at
// once, not by a batch of runOpened: adoptCopy calls it from a harvester's
// goroutine, which may not touch in.opened (Run's).
func (in *Input) start(f *os.File, path string, id logagent.FileID, offset, size int64, state fileState, pending bool) {
	if h := in.startLinked(f, path, "", id, offset, size, state, pending, false); h != nil {
		in.runHarvester(h)
	}
}

// startLinked makes the harvester of f, for the caller to run (nil if
// none is to be: f is closed then), opened by path; real, if not "",
// is the file a followed link at path points to. recorded: the checkpoint
// has on disk an entry that finds the file at path (see Input.open), and
// the harvester need not flush it before its first lines go out (emit).
func (in *Input) startLinked(f *os.File, path, real string, id logagent.FileID, offset, size int64, state fileState, pending, recorded bool) *harvester {
	key := devIno{id.Dev, id.Ino} // the descriptor's
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		in.log.Error("seek failed", "path", path, "err", err)
		return nil
	}
	in.mu.Lock()
	if _, dup := in.byInode[key]; dup {
		// Opened meanwhile by another path (a scan and a copy adoption
		// racing): one harvester per file.
		in.mu.Unlock()
		f.Close()
		return nil
	}
	// A pending file has no checkpoint entry until it is known where it
	// starts: after a restart it is checked again.
	tr := newTracker(&in.ckpt, checkpoint.Entry{ID: id, Path: path, Offset: offset, Updated: time.Now()}, !pending)
	if in.stopping {
		// The input stops, and cancelled every harvester it had
		// (closeParked): this one would read nothing. Its checkpoint
		// entry, just recorded, has the next start read it from offset
		// (a copy adopted as the input stops).
		in.mu.Unlock()
		f.Close()
		return nil
	}
	src := &logagent.Source{
		Input: in.cfg.ID, Category: in.cfg.Category, Path: path, ID: id,
		Host: in.cfg.Host, Fields: in.cfg.Fields,
	}
	h := newHarvester(&in.ctx, &in.env, in, openedFile{
		f: f, path: path, real: real, id: id,
		offset: offset, size: size, state: state, pending: pending,
		recorded: recorded,
	}, src, tr)
	in.byInode[key] = h
	in.busy[h] = struct{}{}
	if state == stateActive {
		in.byPath[path] = h
		h.watchPath = path
		if real != "" {
			in.byPath[real] = h
			h.more().watchReal = real
		}
	}
	in.mu.Unlock()
	if in.log.Enabled(in.ctx, slog.LevelDebug) { // id.String formats at once
		in.log.Debug("harvesting", "path", path, "offset", offset, "size", size, "id", id.String())
	}
	return h
}

// startBatch is how many harvesters a scan opens before it runs them: the
// checkpoint entries of the batch go to disk in one flush first (see
// runOpened). A burst of events (eventBurst, no more than this) opens at
// most one file each.
const startBatch = 256

// runOpened runs the harvesters that open made (in.opened; Run's goroutine
// only): those of a batch of a scan, or of a burst of events. Their
// entries, set in the store as they were opened (newTracker), are flushed
// first, once for them all, so that none of them waits for a flush of its
// own before its first lines go out (emit): otherwise, with thousands of
// files opened at once (a start-up), most of them would wait together,
// each on a goroutine grown to the depth of a read, and the scan would
// open more meanwhile. A file opened again whose entry is on disk
// (recorded) needs no flush. A failed flush leaves each to try again
// (emit).
func (in *Input) runOpened() {
	hs := in.opened
	if len(hs) == 0 {
		return
	}
	in.opened = hs[:0]
	flush := false
	for _, h := range hs {
		flush = flush || (!h.recorded && !h.flag(flagPending))
	}
	if flush && in.store.Sync() == nil {
		for _, h := range hs {
			if !h.flag(flagPending) {
				h.recorded = true // not running yet: this goroutine owns it
			}
		}
	}
	for i, h := range hs {
		in.runHarvester(h)
		hs[i] = nil
	}
}

// exited is called by a harvester as it stops.
func (in *Input) exited(h *harvester) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.byInode[h.key()] == h {
		delete(in.byInode, h.key())
	}
	in.dropWakeLocked(h)
	delete(in.removedAt, h)
	delete(in.busy, h)
	delete(in.recent, h)
	if h.evicted {
		// Parked, read to its end, closed by Run's goroutine, which
		// handles the events too: a write after the close raises an
		// event that opens it again, where events vouch (scan).
		in.evictedSince = true
	} else {
		in.listingStale = true // its name may be matched again
	}
	if in.byPath[h.watchPath] == h {
		delete(in.byPath, h.watchPath)
	}
	if h.rare != nil && h.rare.watchReal != "" && in.byPath[h.rare.watchReal] == h {
		delete(in.byPath, h.rare.watchReal)
	}
}

// closeRemoved force-closes files removed more than close_removed_after
// ago that are still open, read to their end or not: an open removed file
// holds its disk space, and a reader paused by outputs that are down
// would hold it for as long as they are. What was not delivered of it is
// lost; that is counted and logged.
func (in *Input) closeRemoved() {
	in.mu.Lock()
	var hs []*harvester
	for _, h := range in.byInode {
		// A parked file is read to its end; if it is removed, the
		// event or its next poll finds out. Those at work may be held
		// by outputs that are down.
		if !h.parked {
			hs = append(hs, h)
		}
	}
	in.mu.Unlock()
	now := time.Now()
	for _, h := range hs {
		fi, err := h.f.Stat()
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Nlink > 0 {
			continue
		}
		in.mu.Lock()
		since, seen := in.removedAt[h]
		if !seen {
			in.removedAt[h] = now
		}
		in.mu.Unlock()
		if !seen || now.Sub(since) < in.cfg.CloseRemovedAfter || h.setFlag(flagForceClose, true) {
			continue
		}
		unread := fi.Size() - h.tr.committed().Offset
		in.metrics.ClosedUnread.Add(1)
		in.log.Warn("closing removed file after close_removed_after; its undelivered lines are lost",
			"path", h.path, "close_removed_after", in.cfg.CloseRemovedAfter, "undelivered_bytes", unread)
		h.tr.forget()
		h.cancel()
		in.signal(h) // a parked harvester runs to see it is cancelled
	}
}

// activeAtLocked reports whether a harvester reads the file named path
// under that name. in.mu is held.
func (in *Input) activeAtLocked(path string) bool {
	h := in.byPath[path]
	return h != nil && h.state == stateActive && h.path == path
}

func (in *Input) isOpen(key devIno) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, open := in.byInode[key]
	return open
}

// signal wakes h: it looks at its file again at once. Under in.mu, so that
// a harvester about to park cannot miss it (see park).
func (in *Input) signal(h *harvester) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if h.parked {
		in.unparkLocked(h)
		return
	}
	select {
	case in.wakeLocked(h) <- struct{}{}:
	default:
	}
}

// signalAll wakes every harvester, to look at its name too, after fsnotify
// lost events.
func (in *Input) signalAll() { in.nameEventsIn("") }

// nameEventsIn wakes the harvesters of the files in dir ("": every one),
// to look at their names too: dir moved or went, or events were lost.
func (in *Input) nameEventsIn(dir string) {
	var hs []*harvester
	in.mu.Lock()
	for _, h := range in.byInode {
		if dir == "" || filepath.Dir(h.path) == dir {
			hs = append(hs, h)
		}
	}
	in.mu.Unlock()
	for _, h := range hs {
		h.setFlag(flagNameEvent, true)
		in.signal(h)
	}
}
