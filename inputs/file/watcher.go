package file

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher is the agent's one inotify instance, shared by all its inputs:
// instances are few (128 a user by default), and one per input used them
// up. While none can be had, every directory is polled (Input.scan, every
// poll_interval) and Run tries again every watchRetry; when it gets one,
// every input is told to scan, which watches its directories.
//
// Events are dispatched to the inputs that watch the directory they name
// (or the directory itself, when it moves or goes). An input that does
// not take its events fast enough loses them and is told to look again at
// everything, as after an inotify queue overflow.
type Watcher struct {
	log     *slog.Logger
	enabled bool // false: never watch, poll everything

	mu   sync.Mutex
	w    *fsnotify.Watcher // nil while unavailable
	subs map[*watchSub]struct{}
	dirs map[string]map[*watchSub]struct{} // the inputs watching each directory

	// lastOp is dispatchAll's scratch (Run's goroutine only).
	lastOp map[string]fsnotify.Op
}

// watchSub is one input's subscription.
type watchSub struct {
	events chan fsnotify.Event
	// rescan has the input look again at its directories and files:
	// events were dropped, or the watcher became available.
	rescan chan struct{}
}

// watchRetry is how long the agent polls before it tries again to get an
// inotify instance (tests shorten it).
var watchRetry = 10 * time.Second

// newInotify gets an inotify instance (tests make it fail).
// Its events are unbuffered: between passes fsnotify's reader waits to
// hand one over, and reads no more (see Run).
var newInotify = fsnotify.NewWatcher

// errNoWatcher is returned by add while the watcher is unavailable.
var errNoWatcher = errors.New("no inotify instance; polling")

// NewWatcher returns a watcher, without an inotify instance until Open.
// If enabled is false, it never gets one and everything is polled, as
// where inotify is unavailable (a switch for tests).
func NewWatcher(enabled bool, log *slog.Logger) *Watcher {
	return &Watcher{log: log, enabled: enabled, subs: map[*watchSub]struct{}{},
		dirs: map[string]map[*watchSub]struct{}{}}
}

// Open tries to get the inotify instance, before the inputs start, so
// that they watch from their first scan. Run, which must follow, closes
// it.
func (wt *Watcher) Open() {
	if !wt.enabled {
		wt.log.Info("inotify disabled; polling directories and files")
		return
	}
	wt.tryOpen()
}

// tryOpen tries to get an inotify instance, once.
func (wt *Watcher) tryOpen() bool {
	w, err := newInotify()
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if err != nil {
		if wt.w == nil {
			wt.log.Warn("inotify unavailable; polling directories and files, trying again later", "err", err, "retry", watchRetry)
		}
		return false
	}
	wt.w = w
	return true
}

// Available reports whether the watcher holds an inotify instance.
func (wt *Watcher) Available() bool {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.w != nil
}

// Run dispatches events until ctx is done, trying again every watchRetry
// to get an inotify instance while there is none; then it closes the
// instance.
func (wt *Watcher) Run(ctx context.Context) {
	retry := time.NewTicker(watchRetry)
	defer retry.Stop()
	var w *fsnotify.Watcher
	for {
		wt.mu.Lock()
		w = wt.w
		wt.mu.Unlock()
		if w != nil {
			break
		}
		if !wt.enabled {
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			if wt.tryOpen() {
				wt.log.Info("inotify available again; watching directories")
				wt.rescanAll()
			}
		}
	}
	retry.Stop()
	defer w.Close()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	batch := make([]fsnotify.Event, 0, eventBurst)
	failing := false
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			batch, err = take(w, append(batch[:0], ev))
		case e, ok := <-w.Errors:
			if !ok {
				return
			}
			batch, err = batch[:0], e
		}
		names := 0
		if len(batch) > 0 {
			failing = false
			names = wt.dispatchAll(batch)
			clear(batch) // let go of the names
		}
		switch {
		case err == nil:
		case errors.Is(err, fsnotify.ErrEventOverflow):
			// Events were lost: look again.
			wt.log.Warn("inotify event queue overflowed; looking at every directory and file again")
			wt.rescanAll()
		default:
			if !failing {
				wt.log.Error("cannot read inotify events; looking at every directory and file again", "err", err)
			}
			failing = true
			wt.rescanAll()
			if !wait(ctx, pace, watchRetry) {
				return
			}
			continue
		}
		// The writes of the next coalesceEvery wait in the kernel's
		// queue, merged there when they follow each other, and are
		// taken in the next pass: fsnotify's reader, its channel
		// unbuffered, waits to hand over the first of them and reads
		// nothing meanwhile. Not after a pass of one file's events:
		// its writes in a row are merged by the kernel already, and a
		// wait would cost a wake-up of its own.
		if names > 1 && !wait(ctx, pace, coalesceEvery) {
			return
		}
	}
}

// take appends to evs the events fsnotify's reader holds and those the
// kernel queued, up to eventBurst in all, or until an error (returned
// after the events before it). The reader hands them over one by one and
// reads the kernel's queue when it has handed over what it read: each
// time none is ready, take yields once to let it go on, and stops when
// it has nothing more (it waits for the kernel's next event, or runs
// elsewhere: then what it hands over is taken in the next pass).
func take(w *fsnotify.Watcher, evs []fsnotify.Event) ([]fsnotify.Event, error) {
	yielded := false
	for len(evs) < eventBurst {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return evs, nil // closed: Run's next select sees it
			}
			evs = append(evs, ev)
			yielded = false
			continue
		case err, ok := <-w.Errors:
			if ok {
				return evs, err
			}
			return evs, nil
		default:
		}
		if yielded {
			break
		}
		runtime.Gosched()
		yielded = true
	}
	return evs, nil
}

// wait waits d on t, a stopped timer, or less if ctx ends first (then it
// returns false).
func wait(ctx context.Context, t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// coalesceEvery is the least time between two passes over the events
// while they keep coming: a file written every few milliseconds is read
// once per pass, with the writes of the pass, rather than at every write
// (and so are fifty such files, in one pass over their events), at the
// cost of up to this much delay; the writes in between wake nothing. The
// first event after a quiet spell is taken at once, and so are the events
// of one file alone (see Run).
const coalesceEvery = 10 * time.Millisecond

// dispatchAll dispatches the events of one pass. A write to a file that
// the pass told of a write already, with no other event of its name in
// between, is left out: the inputs are told of both writes before they
// read the file. (Creations, renames and removals are all told, in order.)
// It returns how many names the events were of.
func (wt *Watcher) dispatchAll(evs []fsnotify.Event) (names int) {
	names = len(evs)
	if len(evs) > 1 {
		if wt.lastOp == nil {
			wt.lastOp = map[string]fsnotify.Op{}
		}
		n := 0
		for _, ev := range evs {
			if ev.Op == fsnotify.Write && wt.lastOp[ev.Name] == fsnotify.Write {
				continue
			}
			wt.lastOp[ev.Name] = ev.Op
			evs[n] = ev
			n++
		}
		names = len(wt.lastOp)
		clear(wt.lastOp)
		evs = evs[:n] // Run clears the whole batch once dispatched
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for _, ev := range evs {
		wt.dispatchLocked(ev)
	}
	return names
}

// dispatchLocked hands ev to the inputs watching its directory, or the
// directory it names. wt.mu is held.
func (wt *Watcher) dispatchLocked(ev fsnotify.Event) {
	for s := range wt.dirs[filepath.Dir(ev.Name)] {
		s.send(ev)
	}
	for s := range wt.dirs[ev.Name] {
		s.send(ev)
	}
}

func (s *watchSub) send(ev fsnotify.Event) {
	select {
	case s.events <- ev:
	default:
		s.signalRescan()
	}
}

func (s *watchSub) signalRescan() {
	select {
	case s.rescan <- struct{}{}:
	default:
	}
}

func (wt *Watcher) rescanAll() {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for s := range wt.subs {
		s.signalRescan()
	}
}

// subscribe registers an input.
func (wt *Watcher) subscribe() *watchSub {
	s := &watchSub{events: make(chan fsnotify.Event, eventBurst), rescan: make(chan struct{}, 1)}
	wt.mu.Lock()
	wt.subs[s] = struct{}{}
	wt.mu.Unlock()
	return s
}

// unsubscribe removes s and its watches.
func (wt *Watcher) unsubscribe(s *watchSub) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	delete(wt.subs, s)
	for dir, subs := range wt.dirs {
		if _, ok := subs[s]; ok {
			wt.removeLocked(s, dir)
		}
	}
}

// add has s told of the events of dir.
func (wt *Watcher) add(s *watchSub, dir string) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.w == nil {
		return errNoWatcher
	}
	subs := wt.dirs[dir]
	if subs == nil {
		if err := wt.w.Add(dir); err != nil {
			return err
		}
		subs = map[*watchSub]struct{}{}
		wt.dirs[dir] = subs
	}
	subs[s] = struct{}{}
	return nil
}

// remove stops telling s of dir's events; the watch goes with the last
// input watching dir.
func (wt *Watcher) remove(s *watchSub, dir string) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	wt.removeLocked(s, dir)
}

func (wt *Watcher) removeLocked(s *watchSub, dir string) {
	subs := wt.dirs[dir]
	if subs == nil {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(wt.dirs, dir)
		if wt.w != nil {
			wt.w.Remove(dir) // already gone, usually
		}
	}
}

// queuedEvent returns an event queued in events, if one is (ok).
func queuedEvent(events <-chan fsnotify.Event) (ev fsnotify.Event, ok bool) {
	select {
	case ev, ok = <-events:
		return ev, ok
	default:
		return ev, false
	}
}
