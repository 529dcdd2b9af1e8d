// Package file is the file input: it finds the files matching an input's
// globs, reads each through one descriptor whatever happens to its name
// (rename and copytruncate rotation, removal), cuts what it reads into
// messages of whole lines and remembers, per file identity, the offset up
// to which every output has acknowledged.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// Config is one input, resolved and validated by the agent.
type Config struct {
	ID         string
	Paths      []string // absolute globs; ** matches any depth
	Exclude    []string // globs on the base name or the full path
	Category   string
	StartAtEnd bool // for files present at the input's very first start
	// IgnoreOlder, when > 0: a file without a checkpoint entry last
	// modified longer ago than this is started at its end.
	IgnoreOlder     time.Duration
	MaxMessageBytes int
	LinesPerMessage int
	Fields          map[string]string
	Host            string

	// Watcher is the agent's inotify instance, shared by its inputs; nil:
	// the input makes one of its own.
	Watcher *Watcher

	ScanInterval      time.Duration // rescan of the globs
	PollInterval      time.Duration // look at an idle file when fsnotify says nothing
	CloseInactive     time.Duration // close a file idle that long (reopened when it grows)
	CloseRemovedAfter time.Duration // close a removed file after that long even if unread
	MaxOpenFiles      int
	FingerprintBytes  int
	BlockBytes        int // read buffer size for backfill
	// FollowSymlinks reads the files symbolic links matched by the globs
	// point to, if the links' owners could read them (see openLog);
	// otherwise links are skipped.
	FollowSymlinks bool

	// OnBacklog, if set, is called when a file is found more than
	// backlogBlocks read blocks behind, at most once per block read. It
	// must not block.
	OnBacklog func()
}

// PublishFunc hands a chunk to the outputs. It blocks while they are
// behind, and returns an error only when ctx is done.
type PublishFunc func(ctx context.Context, c *logagent.Chunk) error

// Input harvests the files of one input.
type Input struct {
	cfg   Config
	log   *slog.Logger
	store *checkpoint.Store
	// env is what every harvester is given (newHarvester).
	env     harvestEnv
	metrics Metrics

	scanReq  chan struct{}
	firstRun bool // no checkpoint entry for this input at start: start_at applies

	mu       sync.Mutex
	byInode  map[devIno]*harvester
	byPath   map[string]*harvester
	reported map[string]bool // problems logged once per path
	// byPath holds harvesters by the name they were opened by, and by
	// their link's target. reported holds the problems a rescan retries
	// (a file that cannot be read); noted those that only a change of the
	// directory can mend (a link not followed, a FIFO). Both are logged
	// through problems, a summary per kind rather than a line per file.
	noted    map[string]bool
	problems problemLog
	// linkOf maps the target of a followed link (the file, existing or
	// not) to the link: an event naming the target opens the link.
	// linkDirs are the targets' directories, watched like the globs'.
	linkOf   map[string]string
	linkDirs map[string]bool
	// readDirs are those of linkDirs where a link's target was opened,
	// its owner allowed: a checkpoint entry may name a file there.
	readDirs map[string]bool
	watch    *dirWatch // the input's subscription to the agent's watcher; set before the first scan
	// watched holds the directories fsnotify watches: files there are
	// woken by events and polled only as a fallback, rarely; false once
	// events were seen not to come (deafen).
	watched   sync.Map // of string to bool; read on every park
	removedAt map[*harvester]time.Time
	// polls queues the next look at each parked harvester; stopping is
	// set once Run returns, when nothing may be unparked any more.
	polls pollQueue
	busy  map[*harvester]struct{} // the harvesters not parked
	// recent holds harvesters that parked soon after data: their
	// delivery rate is still sampled (see Reading).
	recent map[*harvester]struct{}
	// listing is what the directories the globs list looked like at the
	// last full scan; listingStale is set when a file was closed since.
	// A scan with neither a change nor a problem to retry skips listing
	// thousands of files again.
	listing      dirListing
	listingStale bool
	stopping     bool
	// wg counts the goroutines running harvesters, or waiting as idle
	// workers for one to run (see runHarvester).
	wg          sync.WaitGroup
	ctx         context.Context
	idleWorker  chan *harvester // unbuffered: a send succeeds only if a worker waits
	idleWorkers atomic.Int32
	// slotWanted is set when a file with unread bytes found no room
	// under max_open_files: Run scans again at every tick until every
	// such file got a slot. evictQ, Run's goroutine only, holds the
	// files to close to make room, least recently active first.
	slotWanted atomic.Bool
	evictQ     []*harvester

	// dirs are the directories of the globs at the last full scan
	// (guarded by mu); polling is set while one of them is not watched.
	dirs    []string
	polling atomic.Bool
	// seenInDir holds, per directory, the files under rotated names seen
	// at the last full scan (findUnseen). Owned by Run's goroutine.
	seenInDir map[string]map[devIno]struct{}
	// resumeSince is the latest time an offset of the input was
	// recorded before this start (zero at the first): files written
	// since under rotated names, and never seen, are read (findUnseen).
	resumeSince time.Time
}

type devIno struct{ dev, ino uint64 }

// watchDirectories is false in tests of polling alone, as where fsnotify
// is unavailable (out of inotify watches).
var watchDirectories = true

// Metrics counts what the input did. Safe for concurrent use.
type Metrics struct {
	Lines        atomic.Int64 // messages handed out
	Bytes        atomic.Int64 // bytes they cover
	truncations  atomic.Int64
	ClosedUnread atomic.Int64 // removed files closed before they were read to the end
}

func (m *Metrics) addRead(msgs, bytes int) {
	m.Lines.Add(int64(msgs))
	m.Bytes.Add(int64(bytes))
}

// Truncations returns how many times a file was seen truncated.
func (m *Metrics) Truncations() int64 { return m.truncations.Load() }

// New returns an input; it does nothing until Run.
func New(cfg Config, store *checkpoint.Store, budget *Budget, publish PublishFunc, log *slog.Logger) *Input {
	need := cfg.MaxMessageBytes + 1
	smallSize := max(64<<10, need+minRead)
	largeSize := max(cfg.BlockBytes, 2*smallSize)
	in := &Input{
		cfg:        cfg,
		log:        log.With("input", cfg.ID),
		store:      store,
		scanReq:    make(chan struct{}, 1),
		byInode:    make(map[devIno]*harvester),
		byPath:     make(map[string]*harvester),
		reported:   make(map[string]bool),
		noted:      make(map[string]bool),
		linkOf:     make(map[string]string),
		linkDirs:   make(map[string]bool),
		readDirs:   make(map[string]bool),
		removedAt:  make(map[*harvester]time.Time),
		busy:       make(map[*harvester]struct{}),
		recent:     make(map[*harvester]struct{}),
		idleWorker: make(chan *harvester),
	}
	in.env = harvestEnv{
		log:              in.log,
		mu:               &in.mu,
		chunker:          Chunker{MaxMessageBytes: cfg.MaxMessageBytes, LinesPerMessage: cfg.LinesPerMessage},
		small:            &blockPool{size: smallSize, budget: budget},
		large:            &blockPool{size: largeSize, budget: budget},
		publish:          publish,
		store:            store,
		metrics:          &in.metrics,
		pollInterval:     cfg.PollInterval,
		closeInactive:    cfg.CloseInactive,
		fingerprintBytes: cfg.FingerprintBytes,
		onBacklog:        cfg.OnBacklog,
	}
	return in
}

// Metrics returns the input's counters.
func (in *Input) Metrics() *Metrics { return &in.metrics }

// Run harvests until ctx is done, then waits for every harvester to stop.
func (in *Input) Run(ctx context.Context) error {
	in.ctx = ctx
	entries := in.store.Entries(in.cfg.ID)
	in.firstRun = len(entries) == 0
	for _, e := range entries {
		if e.Updated.After(in.resumeSince) {
			in.resumeSince = e.Updated
		}
	}
	watch := in.cfg.Watcher
	var watchWG sync.WaitGroup
	if watch == nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		watch = NewWatcher(watchDirectories, in.log)
		watch.Open()
		watchWG.Add(1)
		go func() {
			defer watchWG.Done()
			watch.Run(watchCtx)
		}()
		defer watchWG.Wait()
		defer stopWatch()
	}
	w := &dirWatch{w: watch, sub: watch.subscribe()}
	defer watch.unsubscribe(w.sub)
	in.watch = w
	in.scan(w, true)

	// One ticker for polls and scans: each timer channel in the select
	// costs timer-heap work every time the loop blocks and wakes, that is
	// at every event.
	tick := time.NewTicker(min(in.cfg.PollInterval, in.cfg.ScanInterval))
	defer tick.Stop()
	nextScan := time.Now().Add(in.cfg.ScanInterval)
	defer in.closeParked()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			in.pollDue(now)
			// A directory nothing watches is looked at every poll: a
			// file created there and renamed out of the globs before
			// the next look would never be opened (findUnseen finds
			// it, but only by chance once it moved again).
			if !now.Before(nextScan) || in.slotWanted.Load() {
				nextScan = now.Add(in.cfg.ScanInterval)
				in.scan(w, false)
			} else if in.polling.Load() {
				in.pollDirs(w)
			}
			in.flushProblems()
		case <-in.scanReq:
			in.scan(w, false)
		case ev := <-w.sub.events:
			in.handleEvent(w, ev)
			// Those queued behind it, without a select over every
			// channel each; at most a burst's worth, so that the ticker
			// and ctx are seen between bursts.
			for range eventBurst - 1 {
				ev, ok := queuedEvent(w.sub.events)
				if !ok {
					break
				}
				in.handleEvent(w, ev)
			}
		case <-w.sub.rescan:
			// Events were lost, or inotify became available: look
			// again, at every directory and file.
			in.mu.Lock()
			in.listingStale = true
			in.mu.Unlock()
			in.scan(w, false)
			in.signalAll()
		}
	}
}

// dirWatch is an input's subscription to the agent's watcher.
type dirWatch struct {
	w   *Watcher
	sub *watchSub
}

// eventBurst is the fsnotify watcher's event buffer, and how many events
// Run takes in a row.
const eventBurst = 256

// queuedEvent returns an event queued in events, if one is (ok).
func queuedEvent(events <-chan fsnotify.Event) (ev fsnotify.Event, ok bool) {
	select {
	case ev, ok = <-events:
		return ev, ok
	default:
		return ev, false
	}
}

func (in *Input) notifyScan() {
	select {
	case in.scanReq <- struct{}{}:
	default:
	}
}

func (in *Input) handleEvent(w *dirWatch, ev fsnotify.Event) {
	in.mu.Lock()
	h := in.byPath[ev.Name]
	in.mu.Unlock()
	if h != nil {
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
			h.nameEvent.Store(true) // before the wake that acts on it
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

// matches reports whether path is one of the input's files.
func (in *Input) matches(path string) bool {
	for _, p := range in.cfg.Paths {
		if ok, _ := doublestar.PathMatch(p, path); ok {
			return !Excluded(in.cfg.Exclude, path)
		}
	}
	return false
}

// Excluded reports whether path matches one of the exclude globs, on its
// base name or its full path.
func Excluded(exclude []string, path string) bool {
	base := filepath.Base(path)
	for _, x := range exclude {
		if ok, _ := doublestar.PathMatch(x, base); ok {
			return true
		}
		if ok, _ := doublestar.PathMatch(x, path); ok {
			return true
		}
	}
	return false
}

// Expand returns the files matching the globs (anything but directories:
// links and special files are told apart at open), minus exclusions,
// sorted and without duplicates, and the directories to watch.
func Expand(paths, exclude []string) (files, dirs []string) {
	x := expand(paths, exclude)
	return x.files, x.dirs
}

// expansion is what the globs match.
type expansion struct {
	files, dirs []string
	// unreadable holds the directories the globs reach but cannot list
	// (permission denied, I/O error): their files are not known.
	unreadable map[string]error
}

func expand(paths, exclude []string) expansion {
	seen := map[string]bool{}
	dirSet := map[string]bool{}
	x := expansion{unreadable: map[string]error{}}
	for _, p := range paths {
		base, _ := doublestar.SplitPattern(p)
		dirSet[base] = true
		matches := glob(p, x.unreadable)
		for _, m := range matches {
			if seen[m] || Excluded(exclude, m) {
				continue
			}
			seen[m] = true
			x.files = append(x.files, m)
			dirSet[filepath.Dir(m)] = true
		}
	}
	for d := range dirSet {
		x.dirs = append(x.dirs, d)
	}
	sort.Strings(x.files)
	sort.Strings(x.dirs)
	return x
}

// glob is doublestar.FilepathGlob (files only, symlinks to directories not
// followed), recording in unreadable the directories it could not list,
// which FilepathGlob skips without a word.
func glob(pattern string, unreadable map[string]error) []string {
	opts := []doublestar.GlobOption{doublestar.WithFilesOnly(), doublestar.WithNoFollow()}
	base, rest := doublestar.SplitPattern(filepath.ToSlash(filepath.Clean(pattern)))
	if rest == "" || rest == "." || rest == ".." {
		m, _ := doublestar.FilepathGlob(pattern, opts...)
		return m
	}
	fsys := listFS{base: base, fsys: os.DirFS(base), errs: unreadable}
	m, _ := doublestar.Glob(fsys, rest, opts...)
	for i := range m {
		m[i] = filepath.FromSlash(path.Join(base, m[i]))
	}
	return m
}

// listFS is an fs.FS that records the directories it fails to list.
type listFS struct {
	base string
	fsys fs.FS
	errs map[string]error
}

func (l listFS) Open(name string) (fs.File, error)     { return l.fsys.Open(name) }
func (l listFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(l.fsys, name) }

func (l listFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(l.fsys, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		dir := filepath.FromSlash(path.Join(l.base, name))
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is told apart
		}
		l.errs[dir] = err
	}
	return ents, err
}

// scan expands the globs, opens files not open yet, watches their
// directories, and looks for files of the checkpoint that were renamed
// while they were not open.
func (in *Input) scan(w *dirWatch, initial bool) {
	defer func() {
		in.recoverRenamed()
		in.closeRemoved()
		in.flushProblems()
	}()
	in.mu.Lock()
	// A followed link's target changes (rotation, a dangling link's file
	// made) without the link's directory changing: where links are
	// followed, the listing is not trusted.
	stale := in.listingStale || len(in.reported) > 0 || len(in.linkOf) > 0 ||
		in.slotWanted.Swap(false)
	in.listingStale = false
	in.mu.Unlock()
	// Candidates for closing are looked for afresh at each scan.
	in.evictQ = nil
	if !stale && in.listing.unchanged() { // never before the first record
		return
	}
	in.listing.record(in.cfg.Paths, time.Now()) // before listing: what changes after is seen next time
	x := expand(in.cfg.Paths, in.cfg.Exclude)
	files := x.files
	in.noteUnreadableDirs(x.unreadable)
	in.forgetLinks(files)
	existing := x.dirs[:0:0]
	for _, d := range x.dirs {
		if in.watchDir(d) {
			existing = append(existing, d)
		}
	}
	in.setDirs(existing)
	if !initial {
		files = in.notHeld(files)
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
	}
	in.findUnseen(x.dirs)
	if !in.slotWanted.Load() {
		// Every file with unread bytes got a slot: the listing need not
		// be done again at each scan for this, and the warning may come
		// again.
		in.clearReported("max_open_files")
	}
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
		if !seen || now.Sub(since) < in.cfg.CloseRemovedAfter || !h.forceClose.CompareAndSwap(false, true) {
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

// open starts a harvester for path unless its file is harvested already.
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

	f, _, real, err := openLog(path, follow)
	if err != nil {
		in.openFailed(path, real, err)
		return
	}
	id, fi, err := identify(f, in.cfg.FingerprintBytes)
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

	start := int64(0)
	entry, found := in.lookup(f, dev, ino)
	if found && entry.ID != id {
		// The tracker records the file under its identity of now (a
		// longer fingerprint); the entry of its shorter one goes.
		in.store.Delete(entry.Key())
	}
	switch {
	case found && entry.Offset <= fi.Size():
		start = entry.Offset
	case found:
		in.log.Warn("file is shorter than its checkpoint; reading it from the start", "path", path, "offset", entry.Offset, "size", fi.Size())
	case initial && in.firstRun && in.cfg.StartAtEnd:
		start = fi.Size()
	case tooOld(in.cfg, fi):
		start = fi.Size()
		in.log.Info("file older than ignore_older: only what is appended to it is read", "path", path, "modified", fi.ModTime(), "size", fi.Size())
	}
	// A new file next to files being read may be a copy made by
	// copytruncate (its first bytes are theirs, or it is still empty):
	// it is opened at once, so that a rename does not take it out of
	// reach, but read only once it is known not to be one (checkCopy).
	pending := !found && real == "" && in.originalOf(path) != nil
	in.startLinked(f, path, real, dev, ino, id, start, fi.Size(), stateActive, pending)
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

// knownDir reports whether a file in dir may be read: dir is where a glob
// of the input looks (the directory part of a glob matches it), or holds
// the target of a link followed (opened: a dangling link, or one refused,
// does not count). A checkpoint entry naming a file anywhere else is not
// read: the checkpoint is no list of files to ship.
func (in *Input) knownDir(dir string) bool {
	for _, p := range in.cfg.Paths {
		if ok, _ := doublestar.PathMatch(filepath.Dir(p), dir); ok {
			return true
		}
		if strings.Contains(p, "**") {
			// dir/** matches dir itself and every directory below.
			if ok, _ := doublestar.PathMatch(filepath.Dir(p), filepath.Join(dir, "x")); ok {
				return true
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.readDirs[dir]
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
		if !h.parked || h.state != stateActive || h.tr.inflight() > 0 || in.byInode[devIno{h.dev, h.ino}] != h {
			in.mu.Unlock()
			continue // woken, or done with, since
		}
		h.parked = false
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

// originalOf returns the harvester of the file a new file at path may be
// a copytruncate copy of: the file being read whose name is a prefix of
// path's (app.log for app.log.1 or app.log-20261122), or nil. A few map
// look-ups, so that opening many files stays linear.
func (in *Input) originalOf(path string) *harvester {
	dir, base := filepath.Dir(path), filepath.Base(path)
	in.mu.Lock()
	defer in.mu.Unlock()
	for i := len(base) - 1; i > 0; i-- {
		if h := in.byPath[filepath.Join(dir, base[:i])]; h != nil && !h.pending.Load() {
			return h
		}
	}
	return nil
}

// lookup finds the checkpoint entry of the open file f at dev:ino, and drops
// entries of a previous file with the same inode. Several entries can
// describe f: one per fingerprint length it had when a checkpoint was
// written, when the agent died before the entry of the longer one reached
// disk. The offset only grows, so the highest is the latest; the others
// are dropped, or a later open could resume from a stale offset.
func (in *Input) lookup(f io.ReaderAt, dev, ino uint64) (checkpoint.Entry, bool) {
	var best checkpoint.Entry
	found := false
	for _, e := range in.store.ByInode(in.cfg.ID, dev, ino) {
		ok, err := sameFile(f, dev, ino, e.ID)
		if err != nil {
			continue
		}
		if ok {
			switch {
			case !found:
				best, found = e, true
			case e.Offset > best.Offset:
				in.store.Delete(best.Key())
				best = e
			default:
				in.store.Delete(e.Key())
			}
			continue
		}
		// Another content at this inode: the file was truncated while it
		// was not open (copytruncate while the agent was down), or the
		// inode was reused by a new file.
		if !in.resumeCopy(e) {
			in.log.Info("inode reused by a new file; forgetting the old one", "path", e.Path, "inode", ino)
		}
		in.store.Delete(e.Key())
	}
	return best, found
}

// resumeCopy looks, in the directory of e's file, for a copy of e's file
// (same first bytes, another inode, at least e.Offset long): what
// copytruncate left when it truncated the file while it was not open. The
// copy is read from e.Offset. It reports whether a copy was found.
func (in *Input) resumeCopy(e checkpoint.Entry) bool {
	found := false
	in.siblings(filepath.Dir(e.Path), devIno{e.ID.Dev, e.ID.Ino}, func(sf sibling) (keep, stop bool) {
		if sf.fi.Size() < e.Offset {
			return false, false
		}
		if ok, _ := sameContent(sf.f, e.ID); !ok {
			return false, false
		}
		id, fi, err := identify(sf.f, in.cfg.FingerprintBytes)
		if err != nil {
			return false, false
		}
		// The copy may have a checkpoint entry of its own already.
		offset := e.Offset
		if ce, ok := in.lookup(sf.f, sf.key.dev, sf.key.ino); ok {
			if ce.ID != id {
				in.store.Delete(ce.Key())
			}
			offset = max(offset, ce.Offset)
		}
		in.log.Info("file was truncated while not open; reading the rest of its copy", "path", e.Path, "copy", sf.path, "from", offset, "size", fi.Size())
		in.start(sf.f, sf.path, sf.key.dev, sf.key.ino, id, offset, fi.Size(), stateRenamed, false)
		found = true
		return true, true
	})
	return found
}

// sibling is a regular file of a directory, opened for a look.
type sibling struct {
	name, path string
	f          *os.File
	fi         os.FileInfo
	key        devIno
}

// siblings calls visit for every regular file of dir that is not skip and
// not harvested yet, opened for reading. visit keeps the file (and closes
// it later) by returning keep; otherwise it is closed. stop ends the walk.
func (in *Input) siblings(dir string, skip devIno, visit func(sibling) (keep, stop bool)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // links are not followed here, nor FIFOs opened
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		dev, ino, _ := statID(fi)
		key := devIno{dev, ino}
		if key == skip || in.isOpen(key) {
			continue
		}
		f, fi, err := openRegular(p)
		if err != nil {
			continue
		}
		if d, i, _ := statID(fi); (devIno{d, i}) != key {
			f.Close() // replaced since the look
			continue
		}
		keep, stop := visit(sibling{name: e.Name(), path: p, f: f, fi: fi, key: key})
		if !keep {
			f.Close()
		}
		if stop {
			return
		}
	}
}

// copyCheck decides, for the pending harvester h of a new file, whether
// the file may be the copy made by copytruncate of a file being read in the
// same directory: its first bytes are that file's (all of them while it is
// shorter than a fingerprint, as while the copy is being written). Such a
// file is held: the original's harvester adopts it when it sees its
// truncation (adoptCopy), reading it from where the original was. It is
// released, to be read from the start as a file of its own, once the
// original has been seen intact for a scan interval after the copy
// appeared (however long the original's reading is paused).
func (in *Input) copyCheck(h *harvester, id logagent.FileID) (hold bool) {
	if id.FingerprintLen == 0 {
		return true // empty: nothing to read or compare yet
	}
	orig := in.originalOf(h.path)
	if orig == nil {
		return false
	}
	in.mu.Lock()
	origID := orig.id
	in.mu.Unlock()
	same := false
	if id.FingerprintLen == in.cfg.FingerprintBytes && origID.FingerprintLen == id.FingerprintLen {
		same = origID.Fingerprint == id.Fingerprint
	} else if fp, n, err := fingerprint(orig.f, id.FingerprintLen); err == nil && n == id.FingerprintLen {
		same = fp == id.Fingerprint
	}
	return same && time.Unix(0, orig.intactAt.Load()).Before(h.pendingSince.Add(in.cfg.ScanInterval))
}

// adoptCopy is called by the harvester of a truncated file. It finds, in
// the same directory, the copy of the content it was reading (same first
// bytes, another inode) and reads it from readPos, where reading was.
//
// When reading was paused (outputs behind) across more than one
// copytruncate rotation, the generations in between were copied away and
// truncated without this harvester ever seeing them: they are the rotated
// copies (names starting with the file's name) written since the content
// was last seen intact whose first bytes are no generation this harvester
// read, and which nothing reads yet. They are read from the start.
func (in *Input) adoptCopy(orig *harvester, readPos int64) {
	dir := filepath.Dir(orig.path)
	foundCopy := false
	// A copy opened when it appeared is held by a pending harvester.
	for _, h := range in.pendingIn(dir) {
		if ok, _ := sameContent(h.f, orig.id); ok {
			fi, err := h.f.Stat()
			if err != nil {
				continue
			}
			from := min(readPos, fi.Size())
			in.log.Info("reading the rest of a truncated file from its copy", "copy", h.path, "from", from, "size", fi.Size())
			in.adopt(h, from)
			foundCopy = true
			break
		}
	}
	base := filepath.Base(orig.path)
	in.siblings(dir, devIno{orig.dev, orig.ino}, func(sf sibling) (keep, stop bool) {
		start := int64(-1)
		if !foundCopy {
			if ok, _ := sameContent(sf.f, orig.id); ok {
				start = readPos
				foundCopy = true
			}
		}
		if start > sf.fi.Size() {
			// Everything the copy holds was read from the original
			// (and more: lines written between the copy and the
			// truncation). Record it as read, so that a glob matching
			// the copy does not read it again.
			if id, _, err := identify(sf.f, in.cfg.FingerprintBytes); err == nil {
				in.store.Set(checkpoint.Entry{Input: in.cfg.ID, ID: id, Path: sf.path, Offset: sf.fi.Size(), Updated: time.Now()})
			}
			return false, false
		}
		if start < 0 && in.missedGeneration(orig, sf.name, base, sf.f, sf.fi, sf.key.dev, sf.key.ino) {
			start = 0
		}
		if start < 0 {
			return false, false
		}
		id, fi, err := identify(sf.f, in.cfg.FingerprintBytes)
		if err != nil {
			return false, false
		}
		if start > 0 {
			in.log.Info("reading the rest of a truncated file from its copy", "copy", sf.path, "from", start, "size", fi.Size())
		} else {
			in.log.Warn("a copytruncate rotation happened while reading was paused; reading its copy", "copy", sf.path, "size", fi.Size())
		}
		in.start(sf.f, sf.path, sf.key.dev, sf.key.ino, id, start, fi.Size(), stateRenamed, false)
		return true, false
	})
	if !foundCopy {
		in.log.Warn("truncated file has no copy in its directory; lines written after the last read are lost", "path", orig.path, "read_offset", readPos)
	}
}

// adopt starts the pending harvester h at offset: it holds the copy of a
// truncated file, read up to there through the original.
func (in *Input) adopt(h *harvester, offset int64) {
	in.mu.Lock()
	h.adoptAt = offset
	in.mu.Unlock()
	in.signal(h)
}

// missedGeneration reports whether the file f (named name, in the
// directory of orig, whose base name is base) is the copy of a generation
// of orig's file that orig never saw.
func (in *Input) missedGeneration(orig *harvester, name, base string, f *os.File, fi os.FileInfo, dev, ino uint64) bool {
	if len(name) <= len(base) || name[:len(base)] != base || compressed(name) {
		return false
	}
	// Copies written before the last moment the content was seen intact
	// hold generations read through the original, or older than the agent.
	if fi.ModTime().Before(time.Unix(0, orig.intactAt.Load())) {
		return false
	}
	for _, g := range orig.seenGens {
		if ok, _ := sameContent(f, g); ok {
			return false
		}
	}
	if ok, _ := sameContent(f, orig.id); ok {
		return false
	}
	if len(in.store.ByInode(in.cfg.ID, dev, ino)) > 0 {
		return false // known: read, or being read, on its own
	}
	return fi.Size() > 0
}

// compressed reports whether name is a compressed rotated file, which is
// not text and never read unless a glob asks for it.
func compressed(name string) bool {
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// activeAtLocked reports whether a harvester reads the file named path
// under that name. in.mu is held.
func (in *Input) activeAtLocked(path string) bool {
	h := in.byPath[path]
	return h != nil && h.state == stateActive && h.path == path
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

// pendingIn returns the pending harvesters of files in dir.
func (in *Input) pendingIn(dir string) []*harvester {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*harvester
	for _, h := range in.byInode {
		if h.pending.Load() && filepath.Dir(h.path) == dir {
			out = append(out, h)
		}
	}
	return out
}

func (in *Input) isOpen(key devIno) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, open := in.byInode[key]
	return open
}

// recoverRenamed looks for the files of checkpoint entries that are not
// open and no longer under their last name: renamed while the agent was
// down or while the file was closed. Found with unread bytes, they are read
// to their end; not found, they are forgotten.
func (in *Input) recoverRenamed() {
	entries := in.store.Entries(in.cfg.ID)
	open := make([]*harvester, len(entries))
	in.mu.Lock()
	for i, e := range entries {
		open[i] = in.byInode[devIno{e.ID.Dev, e.ID.Ino}]
	}
	in.mu.Unlock()
	closed := entries[:0]
	for i, e := range entries {
		if h := open[i]; h != nil {
			// The open file's entry is its tracker's; another entry of
			// its inode is of an older fingerprint or an older content.
			if h.tr.committed().Key() != e.Key() {
				in.store.Delete(e.Key())
			}
			continue
		}
		closed = append(closed, e)
	}
	// Of several entries of one file, the one with the highest offset
	// is the latest: it is resumed, and the others are dropped below.
	sort.Slice(closed, func(i, j int) bool { return closed[i].Offset > closed[j].Offset })
	resolved := map[devIno]bool{}
	for _, e := range closed {
		key := devIno{e.ID.Dev, e.ID.Ino}
		path := e.Path
		dir := in.entryDir(e.Path)
		if dir == "" {
			in.note("entry:"+e.Path, slog.LevelWarn, "checkpoint entry names a file outside every glob of the input; not read, entry dropped", "path", e.Path)
			in.store.Delete(e.Key())
			continue
		}
		if in.underGlob(path, key) {
			// Still under its name, where the globs find it: opening it
			// (open, lookup) compares its content with the entry's.
			// Reading the first bytes of every closed file here, at
			// every scan, cost more than the scan with thousands of
			// files closed (max_open_files, close_inactive).
			if resolved[key] {
				in.store.Delete(e.Key())
			}
			resolved[key] = true
			continue
		}
		if !in.isFile(path, e.ID) {
			path = findByInode(dir, e.ID.Dev, e.ID.Ino)
			if path == "" || !in.isFile(path, e.ID) {
				if path != "" {
					// Its inode holds another content: truncated while
					// not open. A copy of it (copytruncate) is read
					// from e.Offset.
					in.resumeCopy(e)
				}
				in.store.Delete(e.Key())
				continue
			}
			e.Path = path
			in.store.Set(e)
		}
		if resolved[key] {
			in.store.Delete(e.Key()) // an older entry of a file resumed above
			continue
		}
		resolved[key] = true
		fi, err := os.Lstat(path)
		if err != nil || fi.Size() <= e.Offset || in.matches(path) {
			continue // nothing unread, or a file the globs open anyway
		}
		f, fi, err := openRegular(path)
		if err != nil {
			in.reportOnce(path, "cannot read rotated file", "path", path, "err", err)
			continue
		}
		if !in.isOpenFile(f, e.ID) {
			f.Close()
			continue
		}
		in.log.Info("reading the rest of a rotated file", "path", path, "from", e.Offset, "size", fi.Size())
		in.start(f, path, e.ID.Dev, e.ID.Ino, e.ID, e.Offset, fi.Size(), stateRenamed, false)
	}
}

// underGlob reports whether path names the inode key and the globs match
// it.
func (in *Input) underGlob(path string, key devIno) bool {
	fi, err := os.Lstat(path) // a link is not followed, as by isFile
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	dev, ino, ok := statID(fi)
	return ok && dev == key.dev && ino == key.ino && in.matches(path)
}

// isFile reports whether path holds the file id (a link is not followed).
func (in *Input) isFile(path string, id logagent.FileID) bool {
	f, _, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return in.isOpenFile(f, id)
}

// isOpenFile reports whether the open file f is the file id.
func (in *Input) isOpenFile(f *os.File, id logagent.FileID) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	dev, ino, _ := statID(fi)
	ok, _ := sameFile(f, dev, ino, id)
	return ok
}

// entryDir returns the directory where the file of a checkpoint entry
// recorded at path is looked for, or "" if the input may not read there
// (see knownDir). For a followed link, that is its target's directory,
// where the file went if it was rotated.
func (in *Input) entryDir(path string) string {
	if in.cfg.FollowSymlinks && in.matches(path) {
		if t, owners, err := resolveLinks(path); err == nil && len(owners) > 0 {
			return filepath.Dir(t)
		}
	}
	dir := filepath.Dir(path)
	if !in.knownDir(dir) {
		return ""
	}
	return dir
}

func (in *Input) start(f *os.File, path string, dev, ino uint64, id logagent.FileID, offset, size int64, state fileState, pending bool) {
	in.startLinked(f, path, "", dev, ino, id, offset, size, state, pending)
}

// startLinked starts a harvester of f, opened by path; real, if not "",
// is the file a followed link at path points to.
func (in *Input) startLinked(f *os.File, path, real string, dev, ino uint64, id logagent.FileID, offset, size int64, state fileState, pending bool) {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		in.log.Error("seek failed", "path", path, "err", err)
		return
	}
	in.mu.Lock()
	if _, dup := in.byInode[devIno{dev, ino}]; dup {
		// Opened meanwhile by another path (a scan and a copy adoption
		// racing): one harvester per file.
		in.mu.Unlock()
		f.Close()
		return
	}
	// A pending file has no checkpoint entry until it is known where it
	// starts: after a restart it is checked again.
	tr := newTracker(in.store, checkpoint.Entry{Input: in.cfg.ID, ID: id, Path: path, Offset: offset, Updated: time.Now()}, !pending)
	src := &logagent.Source{
		Input: in.cfg.ID, Category: in.cfg.Category, Path: path, ID: id,
		Host: in.cfg.Host, Fields: in.cfg.Fields,
	}
	h := newHarvester(in.ctx, &in.env, in, openedFile{
		f: f, path: path, real: real, dev: dev, ino: ino, id: id,
		offset: offset, size: size, state: state, pending: pending,
	}, src, tr)
	in.byInode[devIno{dev, ino}] = h
	in.busy[h] = struct{}{}
	if state == stateActive {
		in.byPath[path] = h
		h.watchPath = path
		if real != "" {
			in.byPath[real] = h
			h.watchReal = real
		}
	}
	in.mu.Unlock()
	in.log.Debug("harvesting", "path", path, "offset", offset, "size", size, "id", id.String())
	in.runHarvester(h)
}

// exited is called by a harvester as it stops.
func (in *Input) exited(h *harvester) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.byInode[devIno{h.dev, h.ino}] == h {
		delete(in.byInode, devIno{h.dev, h.ino})
	}
	delete(in.removedAt, h)
	delete(in.busy, h)
	delete(in.recent, h)
	in.listingStale = true // its name may be matched again
	if in.byPath[h.watchPath] == h {
		delete(in.byPath, h.watchPath)
	}
	if h.watchReal != "" && in.byPath[h.watchReal] == h {
		delete(in.byPath, h.watchReal)
	}
}

// reportOnce logs a problem that a rescan retries, once per key until
// clearReported; through the problem log, so that many files with the
// same problem make one line.
func (in *Input) reportOnce(key, msg string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.reported[key] {
		in.reported[key] = true
		in.problems.add(slog.LevelWarn, msg, args)
	}
}

// note logs, once per key, a problem that only a change of the file or
// its directory mends (a link not followed, a FIFO).
func (in *Input) note(key string, level slog.Level, msg string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.noted[key] {
		in.noted[key] = true
		in.problems.add(level, msg, args)
	}
}

// flushProblems logs the problems gathered since the last flush.
func (in *Input) flushProblems() {
	in.mu.Lock()
	groups := in.problems.take()
	in.mu.Unlock()
	for _, g := range groups {
		if g.count == 1 {
			in.log.Log(context.Background(), g.level, g.msg, g.args...)
			continue
		}
		args := []any{"count", g.count, "examples", g.examples}
		for i := 0; i+1 < len(g.args); i += 2 {
			if k, _ := g.args[i].(string); k != "path" && k != "dir" {
				args = append(args, "first_"+k, g.args[i+1])
			}
		}
		in.log.Log(context.Background(), g.level, g.msg, args...)
	}
}

// problemLog gathers problems of one kind (message) so that a scan
// meeting 20,000 looping links, or running out of inotify watches for
// 3,000 directories, logs one line for each kind: how many, and a few
// examples. Guarded by in.mu.
type problemLog struct {
	groups []*problemGroup
}

type problemGroup struct {
	level    slog.Level
	msg      string
	args     []any // of the first
	count    int
	examples []any // paths or directories, the first few
}

// maxProblemExamples is how many paths a summary names.
const maxProblemExamples = 5

func (p *problemLog) add(level slog.Level, msg string, args []any) {
	var g *problemGroup
	for _, x := range p.groups {
		if x.msg == msg {
			g = x
			break
		}
	}
	if g == nil {
		g = &problemGroup{level: level, msg: msg, args: args}
		p.groups = append(p.groups, g)
	}
	g.count++
	if len(g.examples) < maxProblemExamples {
		for i := 0; i+1 < len(args); i += 2 {
			if k, _ := args[i].(string); k == "path" || k == "dir" {
				g.examples = append(g.examples, args[i+1])
				break
			}
		}
	}
}

func (p *problemLog) take() []*problemGroup {
	g := p.groups
	p.groups = nil
	return g
}

func (in *Input) clearReported(key string) {
	in.mu.Lock()
	delete(in.reported, key)
	delete(in.noted, key)
	in.mu.Unlock()
}

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

// PlannedFile is what --dry-run says of one file.
type PlannedFile struct {
	Path      string
	Size      int64
	ID        logagent.FileID
	Committed int64 // -1 when the checkpoint does not know the file
	Start     int64
	// Old: the file has no checkpoint entry and is older than
	// ignore_older; it is started at its end.
	Old bool
	Err error
}

// tooOld reports whether a file without a checkpoint entry is skipped to
// its end by ignore_older. A file with an entry never is: that could lose
// lines.
func tooOld(cfg Config, fi os.FileInfo) bool {
	return cfg.IgnoreOlder > 0 && time.Since(fi.ModTime()) > cfg.IgnoreOlder
}

// Plan tells, without reading past fingerprints or changing anything, which
// files the input would read and from where, given the checkpoint entries.
// What it would skip is listed too, with Err set: a directory it cannot
// list, a link it does not follow, a FIFO. It never blocks on a FIFO.
func Plan(cfg Config, entries []checkpoint.Entry) []PlannedFile {
	x := expand(cfg.Paths, cfg.Exclude)
	files := x.files
	var out []PlannedFile
	for d, err := range x.unreadable {
		out = append(out, PlannedFile{Path: d, Committed: -1, Err: fmt.Errorf("cannot list directory, its files are not read: %w", err)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	firstRun := true
	for _, e := range entries {
		if e.Input == cfg.ID {
			firstRun = false
		}
	}
	for _, p := range files {
		pf := PlannedFile{Path: p, Committed: -1}
		f, _, _, err := openLog(p, cfg.FollowSymlinks)
		if err != nil {
			pf.Err = err
			out = append(out, pf)
			continue
		}
		id, fi, err := identify(f, cfg.FingerprintBytes)
		if err != nil {
			f.Close()
			pf.Err = err
			out = append(out, pf)
			continue
		}
		pf.ID, pf.Size = id, fi.Size()
		for _, e := range entries {
			if e.Input != cfg.ID {
				continue
			}
			if ok, _ := sameFile(f, id.Dev, id.Ino, e.ID); ok {
				pf.Committed = e.Offset
				if e.Offset <= fi.Size() {
					pf.Start = e.Offset
				}
				break
			}
		}
		if pf.Committed < 0 && firstRun && cfg.StartAtEnd {
			pf.Start = fi.Size()
		} else if pf.Committed < 0 && tooOld(cfg, fi) {
			pf.Start, pf.Old = fi.Size(), true
		}
		f.Close()
		out = append(out, pf)
	}
	return out
}

// Preview returns up to n messages of pf from its start, read with cfg's
// chunker, without changing anything.
func Preview(cfg Config, pf PlannedFile, n int) ([]logagent.Message, error) {
	f, _, _, err := openLog(pf.Path, cfg.FollowSymlinks)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max(64<<10, 2*(cfg.MaxMessageBytes+1)))
	got, err := f.ReadAt(buf, pf.Start)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", pf.Path, err)
	}
	src := &logagent.Source{Input: cfg.ID, Category: cfg.Category, Path: pf.Path, ID: pf.ID, Host: cfg.Host, Fields: cfg.Fields}
	c := Chunker{MaxMessageBytes: cfg.MaxMessageBytes, LinesPerMessage: cfg.LinesPerMessage}
	msgs, _ := c.Cut(buf[:got], pf.Start, src, time.Now(), nil, false)
	if len(msgs) > n {
		msgs = msgs[:n]
	}
	return msgs, nil
}
