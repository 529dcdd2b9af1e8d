package file

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Discovery: which files the input reads. A scan (at start, every
// scan_interval, and when an event asks for one) expands the globs, watches
// their directories and opens the files not read yet (open); fsnotify events
// between scans open new files at once (handleEvent). Both run what they
// opened by batches (runOpened). open decides where a
// file starts (startOffset), whether it may be a copytruncate copy to hold
// (see copytruncate.go), and makes room under max_open_files (evictIdle).
// Where directories are polled rather than watched, see poll.go.

func (in *Input) handleEvent(w *dirWatch, ev fsnotify.Event) {
	in.mu.Lock()
	h := in.byPath[ev.Name]
	in.mu.Unlock()
	if h != nil {
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
			h.setFlag(flagNameEvent, true) // before the wake that acts on it
		}
		in.signal(h)
	}
	switch {
	case ev.Has(fsnotify.Create):
		if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
			in.notifyScan() // a new directory may hold matching files
			return
		}
		if in.matches(ev.Name) {
			in.open(ev.Name, false)
		} else if link := in.linkTo(ev.Name); link != "" {
			in.open(link, false) // a link's target made (again)
		}
	case ev.Has(fsnotify.Write):
		if h == nil && in.matches(ev.Name) {
			in.open(ev.Name, false) // closed while inactive, or not seen yet
		} else if h == nil {
			if link := in.linkTo(ev.Name); link != "" {
				in.open(link, false)
			}
		}
	case ev.Has(fsnotify.Rename), ev.Has(fsnotify.Remove):
		if in.hasWatch(ev.Name) {
			// A watched directory moved or went, and its watch with it
			// (fsnotify drops it): the scan watches whatever takes its
			// path. Its files' names hold them no more.
			in.watched.Delete(ev.Name)
			w.w.remove(w.sub, ev.Name)
			in.mu.Lock()
			in.listingStale = true
			in.mu.Unlock()
			in.nameEventsIn(ev.Name)
		}
		in.notifyScan()
	}
}

// scanKind is why a scan runs.
type scanKind int

const (
	scanInitial  scanKind = iota // at start: files are read from their checkpoint offsets
	scanPeriodic                 // every scan_interval
	scanAsked                    // an event or a poll asked for it: the directories are listed
)

// listAnywayEvery bounds how long a periodic scan trusts events over a
// listing (eventsVouch): should the kernel's events ever miss a file, it
// is found this late, and a listing of thousands of files is made that
// rarely rather than every scan_interval.
const listAnywayEvery = 5 * time.Minute

// scan expands the globs, opens files not open yet, watches their
// directories, and looks for files of the checkpoint that were renamed
// while they were not open.
func (in *Input) scan(w *dirWatch, kind scanKind) {
	initial := kind == scanInitial
	listed := false
	defer func() {
		// The files of checkpoint entries not open, looked for only
		// after a listing: a closed file renamed or removed changes its
		// directory's time or raises an event, and either has the scan
		// list; with thousands of files closed (max_open_files), this
		// is a stat of each.
		if listed {
			in.recoverRenamed()
		}
		in.closeRemoved()
		in.flushProblems()
	}()
	in.mu.Lock()
	// A followed link's target changes (rotation, a dangling link's file
	// made) without the link's directory changing: where links are
	// followed, the listing is not trusted.
	// slotWanted is taken whatever else makes the listing stale: left
	// set, it would keep the max_open_files report, and with it a
	// listing at every tick, forever.
	wanted := in.slotWanted.Swap(false)
	stale := wanted || in.listingStale || len(in.reported) > 0 || len(in.linkOf) > 0
	in.listingStale = false
	evicted := in.evictedSince
	in.mu.Unlock()
	// Candidates for closing are looked for afresh at each scan.
	in.evictQ = nil
	if kind == scanPeriodic {
		in.periodicScans.Add(1)
	}
	now := time.Now()
	vouch := (evicted || kind == scanPeriodic) && in.eventsVouch(now)
	if evicted && !vouch {
		// Without events to tell, only a listing finds that a file
		// closed for room was written since.
		stale = true
	}
	// Before unchanged, which stats every glob directory: events
	// vouching, vouchedSince is set and unchanged would only return.
	if !stale && kind == scanPeriodic && vouch {
		return
	}
	if !stale && in.listing.unchanged() { // never before the first record
		// Nothing changed since the listing, and whatever changes from
		// now on raises an event if every directory is watched: events
		// vouch from now on (the listing was taken before the watches
		// were added: at the first scan).
		if in.vouchedSince.IsZero() && in.listing.flatSeen && in.allWatched() {
			in.vouchedSince = now
		}
		return
	}
	in.linked.Clear()                                    // a directory may have become a link, or one no more
	in.listing.record(in.cfg.Paths, now, in.throughLink) // before listing: what changes after is seen next time
	in.listings.Add(1)
	listed = true
	in.mu.Lock()
	in.evictedSince = false // the listing finds them
	in.mu.Unlock()
	x := expand(in.cfg.Paths, in.cfg.Exclude)
	files := x.files
	in.noteUnreadableDirs(x.unreadable)
	in.forgetLinks(files)
	existing := x.dirs[:0:0]
	watchedBefore := true // every directory was watched before the listing
	for _, d := range x.dirs {
		was := in.hasWatch(d)
		if in.watchDir(d) {
			existing = append(existing, d)
			watchedBefore = watchedBefore && was
		}
	}
	in.setDirs(existing)
	in.vouchedSince = time.Time{}
	if watchedBefore && in.listing.flatSeen && len(existing) == len(x.dirs) && len(existing) > 0 {
		in.vouchedSince = now
	}
	if !initial {
		files = in.notHeld(files, x.dirs)
	}
	// The directories of links' targets are watched before the links are
	// opened: a target made in between raises an event.
	in.mu.Lock()
	var dirs []string
	for d := range in.linkDirs {
		dirs = append(dirs, d)
	}
	in.mu.Unlock()
	for _, d := range dirs {
		in.watchLinkDir(d)
	}
	for _, f := range files {
		in.open(f, initial)
		if len(in.opened) >= startBatch {
			in.runOpened()
		}
	}
	in.runOpened()
	in.findUnseen(x.dirs)
	if !in.slotWanted.Load() {
		// Every file with unread bytes got a slot: the listing need not
		// be done again at each scan for this, and the warning may come
		// again.
		in.clearReported("max_open_files")
	}
}

// eventsVouch reports whether a periodic scan can do without listing the
// directories: the last listing was taken with each of them watched
// already (a file made before a watch was added raises no event: the
// listing after it finds the file), every glob is flat (dir/*.log: a new
// directory raises an event in a watched one only) with its directory
// there (one made later raises no event we see) and named without a
// symbolic link (one repointed raises none either), and each directory is
// still watched with its events coming (Input.deafen). Then every file
// created, renamed or removed since raised an event, which opened it or
// asked for a scan (notifyScan); lost events ask for one too. A file
// closed as inactive (close_inactive) marks the listing stale; one closed
// for room (max_open_files, evictIdle) only where events do not vouch: a
// write to it raises an event, which opens it again. The listing is made
// anyway every listAnywayEvery.
func (in *Input) eventsVouch(now time.Time) bool {
	// vouchedSince is set only with flatSeen, and reset by every listing
	// that records flatSeen anew.
	if in.vouchedSince.IsZero() || now.Sub(in.vouchedSince) >= listAnywayEvery {
		return false
	}
	return in.allWatched()
}

// allWatched reports whether inotify watches every directory of the globs.
func (in *Input) allWatched() bool {
	watched, polled := in.Dirs()
	return polled == 0 && watched > 0
}

// watchDir has the agent's watcher watch dir, unless it does already. It
// reports whether dir exists: then it is watched, or polled.
func (in *Input) watchDir(d string) bool {
	if in.hasWatch(d) {
		return true
	}
	err := in.watch.w.add(in.watch.sub, d)
	switch {
	case err == nil:
		in.watched.Store(d, true)
		in.clearReported("watch:" + d)
	case errors.Is(err, fs.ErrNotExist):
		return false
	case errors.Is(err, errNoWatcher):
	default:
		hint := ""
		if errors.Is(err, syscall.ENOSPC) {
			hint = " (out of inotify watches: see fs.inotify.max_user_watches)"
		}
		in.reportOnce("watch:"+d, "cannot watch directory; polling it"+hint, "dir", d, "err", err)
	}
	return true
}

// noteUnreadableDirs reports the directories the globs reach but cannot
// list, once each until they can be listed again; a scan retries them.
func (in *Input) noteUnreadableDirs(unreadable map[string]error) {
	for d, err := range unreadable {
		in.reportOnce("list:"+d, "cannot list directory; its files are not read until it can be (retried on every scan)", "dir", d, "err", err)
	}
	in.mu.Lock()
	for k := range in.reported {
		if d, ok := strings.CutPrefix(k, "list:"); ok && unreadable[d] == nil {
			delete(in.reported, k)
		}
	}
	in.mu.Unlock()
}

// open makes a harvester for path unless its file is harvested already,
// and leaves it in in.opened for the caller to run (runOpened) once it has
// opened what it had to: Run's goroutine only.
func (in *Input) open(path string, initial bool) {
	if in.ctx.Err() != nil {
		return
	}
	follow := in.cfg.FollowSymlinks
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	// A look before opening, so that a file read already is not opened
	// again; what is opened is checked on its descriptor (openLog).
	if fi, err := stat(path); err == nil && fi.Mode().IsRegular() {
		dev, ino, _ := statID(fi)
		key := devIno{dev, ino}
		in.mu.Lock()
		if h := in.byInode[key]; h != nil {
			// Another name of a file we read (a rotated name the glob
			// matches too, or a symlink): the same file, read once.
			if _, ok := in.byPath[path]; !ok && h.state == stateActive && h.path == path {
				in.byPath[path] = h
			}
			in.mu.Unlock()
			return
		}
		full := in.cfg.MaxOpenFiles > 0 && len(in.byInode) >= in.cfg.MaxOpenFiles
		in.mu.Unlock()
		if full {
			// A file read to its end holds no slot it does not need:
			// it is opened again, by identity, when it grows.
			if in.caughtUp(path, dev, ino, fi.Size()) {
				return
			}
			if !in.evictIdle() {
				in.slotWanted.Store(true)
				in.reportOnce("max_open_files", "max_open_files reached; files with unread lines are opened as others are read to their end", "limit", in.cfg.MaxOpenFiles)
				return
			}
		}
	} else if err != nil && errors.Is(err, fs.ErrNotExist) && !follow {
		return
	}

	f, fi, real, err := openLog(path, follow)
	if err != nil {
		in.openFailed(path, real, err)
		return
	}
	id, err := identifyAs(f, fi, in.cfg.FingerprintBytes)
	if err != nil {
		f.Close()
		in.reportOnce(path, "cannot read file; retried on every scan", "path", path, "err", err)
		return
	}
	dev, ino := id.Dev, id.Ino
	in.clearReported(path)
	if real != path {
		in.addLink(real, path)
		in.mu.Lock()
		in.readDirs[filepath.Dir(real)] = true
		in.mu.Unlock()
	} else {
		real = ""
	}

	entry, found := in.lookup(f, dev, ino)
	start, why := startOffset(in.cfg, fi, entry.Offset, found, initial && in.firstRun)
	switch why {
	case StartShorter:
		in.log.Warn("file is shorter than its checkpoint; reading it from the start", "path", path, "offset", entry.Offset, "size", fi.Size())
	case StartTooOld:
		in.log.Info("file older than ignore_older: only what is appended to it is read", "path", path, "modified", fi.ModTime(), "size", fi.Size())
	}
	// A new file next to files being read may be a copy made by
	// copytruncate (its first bytes are theirs, or it is still empty):
	// it is opened at once, so that a rename does not take it out of
	// reach, but read only once it is known not to be one (checkCopy).
	pending := !found && real == "" && in.originalOf(path) != nil
	// A file opened again (closed as idle or for room, or after a
	// restart) whose entry is on disk under this name, at the offset it
	// starts from, is found by it should the agent crash now, even if its
	// fingerprint has grown since (the entry's is a prefix of this one:
	// see matchEntries): its harvester sends its first lines without
	// waiting for a flush (emit).
	recorded := found && entry.Path == path && real == "" && start == entry.Offset &&
		in.store.OnDisk(entry.Key())
	h := in.startLinked(f, path, real, id, start, fi.Size(), stateActive, pending, recorded)
	if h != nil {
		in.opened = append(in.opened, h)
	}
	if found && entry.ID != id {
		// The tracker records the file under its identity of now (a
		// longer fingerprint); the entry of its shorter one goes, after
		// that one is recorded: a flush in between leaves an entry that
		// finds the file.
		in.store.Delete(entry.Key())
	}
}

// openFailed reports why path could not be opened, with real what a link
// there points to.
func (in *Input) openFailed(path, real string, err error) {
	var denied *linkDeniedError
	switch {
	case errors.Is(err, errDangling):
		in.addLink(real, path)
		in.note(path, slog.LevelInfo, "symbolic link to a file that does not exist (yet); read once it does", "path", path, "target", real)
	case errors.Is(err, fs.ErrNotExist):
		// Gone since it was listed.
	case errors.Is(err, errSymlink):
		in.note(path, slog.LevelWarn, "symbolic link skipped: follow_symlinks is off for this input", "path", path)
	case errors.Is(err, errNotRegular):
		in.note(path, slog.LevelWarn, "not a regular file; skipped", "path", path, "err", err)
	case errors.As(err, &denied):
		in.note(path, slog.LevelWarn, "symbolic link refused: its owner could not read its target", "path", path, "err", err)
	case errors.Is(err, syscall.ELOOP):
		in.note(path, slog.LevelWarn, "symbolic link loop; skipped", "path", path, "err", err)
	default:
		in.reportOnce(path, "cannot read file; retried on every scan", "path", path, "err", err)
	}
}

// addLink records that the followed link at link points to target, and
// watches the target's directory: events there wake the link's file.
func (in *Input) addLink(target, link string) {
	dir := filepath.Dir(target)
	in.mu.Lock()
	in.linkOf[target] = link
	newDir := !in.linkDirs[dir]
	in.linkDirs[dir] = true
	in.mu.Unlock()
	if newDir {
		in.watchLinkDir(dir)
	}
}

// watchLinkDir watches dir, the directory of a link's target; if it is not
// made yet (a pod's, before its container starts), its nearest existing
// parent, whose events about new directories ask for a scan.
func (in *Input) watchLinkDir(dir string) {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			in.watchDir(d)
			return
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// forgetLinks forgets the links no longer among the files the globs
// match (a pod's link removed with the pod), and the directories of their
// targets: they are read no more than any other file outside the globs.
func (in *Input) forgetLinks(files []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.linkOf) == 0 {
		return
	}
	matched := make(map[string]bool, len(files))
	for _, f := range files {
		matched[f] = true
	}
	clear(in.linkDirs)
	for target, link := range in.linkOf {
		if !matched[link] {
			delete(in.linkOf, target)
			continue
		}
		in.linkDirs[filepath.Dir(target)] = true
	}
	for d := range in.readDirs {
		if !in.linkDirs[d] {
			delete(in.readDirs, d)
		}
	}
}

// linkTo returns the followed link that points to path, or "".
func (in *Input) linkTo(path string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.linkOf[path]
}

// caughtUp reports whether the checkpoint has the file at path, dev:ino,
// read to size: nothing to read in it now.
func (in *Input) caughtUp(path string, dev, ino uint64, size int64) bool {
	for _, e := range in.store.ByInode(in.cfg.ID, dev, ino) {
		if e.Path == path && e.Offset == size {
			return true
		}
	}
	return false
}

// evictIdle closes the least recently active file that is read to its end
// and delivered (parked, nothing in flight), to make room under
// max_open_files for a file with unread bytes, and reports whether it
// did. The file is opened again by identity, from its checkpoint, when it
// grows. Called from Run's goroutine only.
func (in *Input) evictIdle() bool {
	for {
		if len(in.evictQ) == 0 {
			in.evictQ = in.evictCandidates()
			if len(in.evictQ) == 0 {
				return false
			}
		}
		h := in.evictQ[0]
		in.evictQ = in.evictQ[1:]
		in.mu.Lock()
		if !h.parked || h.state != stateActive || h.tr.inflight() > 0 || h.flag(flagHolding) || in.byInode[h.key()] != h {
			in.mu.Unlock()
			continue // woken, or done with, since
		}
		h.parked = false
		h.evicted = true
		in.polls.remove(h)
		in.mu.Unlock()
		in.log.Debug("closing an idle file to make room under max_open_files", "path", h.path)
		h.cancel()
		h.close()
		return true
	}
}

// evictCandidates returns the parked files that could be closed, least
// recently active first.
func (in *Input) evictCandidates() []*harvester {
	in.mu.Lock()
	defer in.mu.Unlock()
	type cand struct {
		h    *harvester
		last time.Time
	}
	var cs []cand
	for _, e := range in.polls {
		if h := e.h; h.parked && h.state == stateActive {
			cs = append(cs, cand{h, h.lastData}) // parked: its goroutine wrote lastData before in.mu
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].last.Before(cs[j].last) })
	out := make([]*harvester, len(cs))
	for i, c := range cs {
		out[i] = c.h
	}
	return out
}

func (in *Input) notifyScan() {
	select {
	case in.scanReq <- struct{}{}:
	default:
	}
}
