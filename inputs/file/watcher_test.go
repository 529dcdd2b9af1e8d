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
	defer func(old func(uint) (*fsnotify.Watcher, error)) { newInotify = old }(newInotify)
	newInotify = func(n uint) (*fsnotify.Watcher, error) {
		if fail.Load() {
			return nil, errors.New("too many open files")
		}
		instances.Add(1)
		return fsnotify.NewBufferedWatcher(n)
	}
	fail.Store(true)

	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wt := NewWatcher(true, log)
	wt.Open()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wt.Run(ctx)
	}()
	defer func() { cancel(); wg.Wait() }()

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
