package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Two inputs share the agent's one inotify instance, watching the same
// directory: each gets its events. When no instance could be had at
// start, both poll (counted as polled), the watcher tries again, and once
// it gets one they watch.
func TestWatcherSharedAndRetried(t *testing.T) {
	defer func(old time.Duration) { watchRetry = old }(watchRetry)
	watchRetry = 50 * time.Millisecond
	var fail atomic.Bool
	var instances atomic.Int32
	defer func(old func() (*fsnotify.Watcher, error)) { newInotify = old }(newInotify)
	newInotify = func() (*fsnotify.Watcher, error) {
		if fail.Load() {
			return nil, errors.New("too many open files")
		}
		instances.Add(1)
		return fsnotify.NewWatcher()
	}
	fail.Store(true)

	dir := t.TempDir()
	wt := runWatcher(t)

	store := openStore(t, filepath.Join(dir, "data"))
	var ins []*Input
	var sinks []*sink
	for i := range 2 {
		cfg := testConfig(dir)
		cfg.ID = fmt.Sprintf("in%d", i)
		cfg.Watcher = wt
		cfg.ScanInterval = time.Hour // new files are found by events, or by polling the directory
		s := &sink{}
		in, stop := runInput(t, cfg, store, 8<<20, s)
		defer stop()
		ins = append(ins, in)
		sinks = append(sinks, s)
	}
	for _, in := range ins {
		waitFor(t, "directory counted as polled", func() bool { w, p := in.Dirs(); return w == 0 && p == 1 })
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.log") // found by polling the directory
	for i, s := range sinks {
		waitFor(t, fmt.Sprintf("input %d reads a.log", i), func() bool { return s.count() == 1 })
	}

	fail.Store(false)
	for _, in := range ins {
		waitFor(t, "directory watched once inotify is had", func() bool { w, p := in.Dirs(); return w == 1 && p == 0 })
	}
	write("b.log") // found by its event: nothing scans for an hour, nothing polls
	for i, s := range sinks {
		waitFor(t, fmt.Sprintf("input %d reads b.log", i), func() bool { return s.count() == 2 })
	}
	if n := instances.Load(); n != 1 {
		t.Errorf("%d inotify instances, want 1 for the agent", n)
	}
}

// The Watcher hands an input the events of the directories it watches,
// as fsnotify tells them: creations (and moves in), writes, renames
// (moves out), removals, each named by the directory's path and the
// file's name; a watched directory that moves away is told as a Rename
// of its path, and watched no more.
func TestWatcherEvents(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wt := runWatcher(t)
	if !wt.Available() {
		t.Fatal("no inotify instance")
	}
	sub := wt.subscribe()
	defer wt.unsubscribe(sub)
	if err := wt.add(sub, dir); err != nil {
		t.Fatal(err)
	}

	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	f, err := os.Create(a)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x\n")
	f.Close()
	os.Rename(a, b)
	os.Remove(b)
	os.Rename(dir, filepath.Join(root, "moved"))
	want := []fsnotify.Event{
		{Name: a, Op: fsnotify.Create}, {Name: a, Op: fsnotify.Write},
		{Name: a, Op: fsnotify.Rename}, {Name: b, Op: fsnotify.Create},
		{Name: b, Op: fsnotify.Remove}, {Name: dir, Op: fsnotify.Rename},
	}
	var got []fsnotify.Event
	for len(got) < len(want) {
		select {
		case ev := <-sub.events:
			if ev.Op != fsnotify.Chmod { // a close may tell of one
				got = append(got, fsnotify.Event{Name: ev.Name, Op: ev.Op})
			}
		case <-sub.rescan:
			t.Fatalf("told to rescan after %v", got)
		case <-time.After(time.Minute):
			t.Fatalf("after %v: no more events", got)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events\n%v\nwant\n%v", got, want)
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if l := wt.w.WatchList(); len(l) != 0 {
		t.Errorf("the moved directory is still watched: %v", l)
	}
}

// runWatcher opens a Watcher and runs it until t ends.
func runWatcher(t *testing.T) *Watcher {
	t.Helper()
	wt := NewWatcher(true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	wt.Open()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wt.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return wt
}
