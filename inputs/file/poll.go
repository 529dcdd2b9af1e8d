package file

import (
	"os"
	"path/filepath"
	"slices"
)

// Polling. Where no inotify watch tells of new files (none could be had,
// or a directory's events do not come), Run looks at the directories of
// the globs at every poll_interval rather than every scan_interval: a
// look costs one stat per directory while nothing changed. Between two
// looks a file can still be created, written and renamed to a name no
// glob matches (app.log to app.log.1); findUnseen reads such files.

// setDirs records the directories the globs list, and whether any of them
// is polled.
func (in *Input) setDirs(dirs []string) {
	in.mu.Lock()
	in.dirs = append(in.dirs[:0], dirs...)
	in.mu.Unlock()
	in.updatePolling()
}

// updatePolling sets in.polling: whether a directory of the globs is not
// watched, or its events do not come.
func (in *Input) updatePolling() {
	watched, polled := in.Dirs()
	in.polling.Store(polled > 0 || watched == 0)
}

// Dirs returns how many directories of the input's globs inotify watches,
// and how many are polled.
func (in *Input) Dirs() (watched, polled int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, d := range in.dirs {
		if in.isWatched(d) {
			watched++
		} else {
			polled++
		}
	}
	return watched, polled
}

// pollDirs scans if a directory of the globs changed since the last scan
// (or cannot be vouched for: see dirListing).
func (in *Input) pollDirs(w *dirWatch) {
	in.mu.Lock()
	stale := in.listingStale || in.evictedSince
	in.mu.Unlock()
	if stale || !in.listing.unchanged() {
		in.scan(w, scanAsked)
	}
}

// notHeld returns the files not read under their name already. A file
// read under its name is left alone, unless, in a directory nothing
// watches, the name now holds another file (removed and created again, or
// renamed and created again, since its harvester last looked): then the
// harvester is woken to notice, and the new file is opened now rather
// than after that, when it may be gone or renamed out of the globs. (In a
// watched directory, the new file's event opens it.)
//
// dirs holds the directory of every file (the expansion's).
func (in *Input) notHeld(files, dirs []string) []string {
	type held struct {
		path string
		h    *harvester
	}
	// A directory named through a link is as one nothing watches: the
	// link repointed (a deploy's current -> releases/N) raises no event,
	// and its names hold other files at once. Each directory is resolved
	// (in.throughLink, cached) before in.mu is taken.
	for _, d := range dirs {
		in.throughLink(d)
	}
	var hs []held
	n := 0
	in.mu.Lock()
	for _, f := range files {
		if in.activeAtLocked(f) {
			if d := filepath.Dir(f); !in.isWatched(d) || in.throughLink(d) {
				hs = append(hs, held{f, in.byPath[f]})
			}
			continue
		}
		files[n] = f
		n++
	}
	in.mu.Unlock()
	files = files[:n]
	for _, x := range hs {
		fi, err := os.Stat(x.path)
		if err != nil {
			continue
		}
		if dev, ino, _ := statID(fi); (devIno{dev, ino}) == x.h.key() {
			continue
		}
		x.h.setFlag(flagNameEvent, true)
		in.signal(x.h)
		files = append(files, x.path)
	}
	return files
}

// findUnseen reads the files of dirs that no glob matches, under a name
// that is a rotated name of one that does (app.log.1, app.log-2026...),
// and that appeared since the last look without the input ever seeing
// them: created and renamed between two looks. They are read from the
// start. The first look at a directory, at start, reads those written
// after the last offset the input recorded before (resumeSince): created
// while the agent was down, or just before it died; at the very first
// start, none.
// Files known by identity (open, or in the checkpoint: not merely their
// inode, which a removed file may have left) are left alone,
// and so is the copy of a file being read (copytruncate: its harvester
// adopts it when it sees the truncation).
func (in *Input) findUnseen(dirs []string) {
	if in.seenInDir == nil {
		in.seenInDir = map[string]map[devIno]struct{}{}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		seen, looked := in.seenInDir[dir]
		now := map[devIno]struct{}{}
		for _, e := range entries {
			if !e.Type().IsRegular() || compressed(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if in.matches(p) || !in.rotatedName(dir, e.Name()) {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			dev, ino, _ := statID(fi)
			key := devIno{dev, ino}
			if _, ok := seen[key]; ok || !looked && !in.writtenSinceResume(fi) {
				now[key] = struct{}{}
				continue
			}
			if in.isOpen(key) || in.readUnseen(p, key) {
				now[key] = struct{}{}
			}
		}
		in.seenInDir[dir] = now
	}
	for dir := range in.seenInDir {
		if !slices.Contains(dirs, dir) {
			delete(in.seenInDir, dir)
		}
	}
}

// readUnseen starts reading the file at path, found by findUnseen, from
// its start, unless the checkpoint knows it. It reports whether the file
// is settled: known, read, or a copy of a file being read. An empty file
// is not: it is looked at again.
func (in *Input) readUnseen(path string, key devIno) (settled bool) {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	id, fi, err := identify(f, in.cfg.FingerprintBytes)
	if err != nil || id.Dev != key.dev || id.Ino != key.ino || id.FingerprintLen == 0 {
		f.Close()
		return false
	}
	for _, e := range in.store.ByInode(in.cfg.ID, key.dev, key.ino) {
		// Known, unless the entry is of an earlier file at a reused
		// inode (or of this one while it was empty: it starts at 0).
		if ok, _ := sameFile(f, key.dev, key.ino, e.ID); ok && e.ID.FingerprintLen > 0 {
			f.Close()
			return true
		}
	}
	for _, h := range in.openIn(filepath.Dir(path)) {
		if ok, _ := sameContent(f, h.tr.committed().ID); ok {
			f.Close()
			return true // a copy: adopted when the original is seen truncated
		}
	}
	in.log.Info("reading a file created and renamed out of the globs between two looks", "path", path, "size", fi.Size())
	in.start(f, path, id, 0, fi.Size(), stateRenamed, false)
	return true
}

// writtenSinceResume reports whether fi was modified after the input last
// recorded an offset before this start.
func (in *Input) writtenSinceResume(fi os.FileInfo) bool {
	return !in.resumeSince.IsZero() && fi.ModTime().After(in.resumeSince)
}

// rotatedName reports whether name, in dir, starts with the name of a
// file the globs match.
func (in *Input) rotatedName(dir, name string) bool {
	for i := len(name) - 1; i > 0; i-- {
		if in.matches(filepath.Join(dir, name[:i])) {
			return true
		}
	}
	return false
}

// openIn returns the harvesters of the files read under a name in dir.
func (in *Input) openIn(dir string) []*harvester {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*harvester
	for p, h := range in.byPath {
		if filepath.Dir(p) == dir {
			out = append(out, h)
		}
	}
	return out
}

// throughLink reports whether the path dir goes through a symbolic link,
// as of the last listing or since.
func (in *Input) throughLink(dir string) bool {
	if v, ok := in.linked.Load(dir); ok {
		return v.(bool)
	}
	l := throughLink(dir)
	in.linked.Store(dir, l)
	return l
}

// isWatched reports whether fsnotify watches dir and its events come.
func (in *Input) isWatched(dir string) bool {
	v, ok := in.watched.Load(dir)
	return ok && v.(bool)
}

// hasWatch reports whether fsnotify watches dir, whether or not its events
// come.
func (in *Input) hasWatch(dir string) bool {
	_, ok := in.watched.Load(dir)
	return ok
}

// deafen has dir's files polled as where nothing watches it: a poll found
// one of them grown with no event for missedEventAfter. So it goes on
// network and FUSE file systems, where a watch succeeds but writes of
// other machines or processes raise no event.
func (in *Input) deafen(dir string) {
	if in.isWatched(dir) {
		in.watched.Store(dir, false)
		in.updatePolling()
		in.log.Warn("fsnotify events do not come for this directory (a network or FUSE file system?); polling its files", "dir", dir, "poll_interval", in.cfg.PollInterval)
	}
}
