package file

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Files idle between writes park; whether fsnotify wakes them or polls
// alone find what changed (appends, rename and copytruncate rotations,
// removal), every line arrives, once.
func TestParkedFilesMissNothing(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("fsnotify=%v", watch), func(t *testing.T) {
			defer func(old bool) { watchDirectories = old }(watchDirectories)
			watchDirectories = watch
			dir := t.TempDir()
			const files = 20
			name := func(k int) string { return filepath.Join(dir, fmt.Sprintf("f%02d.log", k)) }
			next := make([]int, files) // next sequence number per file
			write := func(k, n int) {
				t.Helper()
				f, err := os.OpenFile(name(k), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "f%02d %06d\n", k, next[k])
					next[k]++
				}
				if _, err := f.WriteString(b.String()); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			total := func() int {
				n := 0
				for _, c := range next {
					n += c
				}
				return n
			}
			for k := 0; k < files; k++ {
				write(k, 10)
			}
			s := &sink{}
			cfg := testConfig(dir)
			in, stop := runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 8<<20, s)
			waitFor(t, "first lines", func() bool { return s.count() == total() })
			waitFor(t, "all parked", func() bool { return parkedCount(in) == files })

			for round := 0; round < 6; round++ {
				// Let the files park and some polls find nothing.
				time.Sleep(4 * cfg.PollInterval << 3)
				for k := round % 3; k < files; k += 3 {
					write(k, 5)
				}
				switch round {
				case 1: // rename rotation, the writer goes on in a new file
					if err := os.Rename(name(1), name(1)+".1"); err != nil {
						t.Fatal(err)
					}
					write(1, 5)
				case 2: // copytruncate
					data, err := os.ReadFile(name(2))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(name(2)+".1", data, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(name(2), 0); err != nil {
						t.Fatal(err)
					}
					write(2, 5)
				case 3: // removed once read
					waitFor(t, "lines of round 3", func() bool { return s.count() == total() })
					if err := os.Remove(name(4)); err != nil {
						t.Fatal(err)
					}
				}
				want := total()
				waitFor(t, fmt.Sprintf("round %d: %d lines", round, want), func() bool { return s.count() >= want })
			}
			time.Sleep(2 * cfg.PollInterval << 3) // nothing more may come
			stop()

			s.mu.Lock()
			defer s.mu.Unlock()
			seen := map[string]int{}
			for _, l := range s.lines {
				seen[l]++
			}
			for k := 0; k < files; k++ {
				for i := 0; i < next[k]; i++ {
					l := fmt.Sprintf("f%02d %06d", k, i)
					if seen[l] != 1 {
						t.Errorf("%s arrived %d times", l, seen[l])
					}
				}
			}
			if len(s.lines) != total() {
				t.Errorf("%d lines arrived, %d written", len(s.lines), total())
			}
		})
	}
}

// Idle files hold no goroutine each, nor a wake channel. (300 files, more
// than maxIdleWorkers.)
func TestIdleFilesHoldNoGoroutine(t *testing.T) {
	dir := t.TempDir()
	const files = 300
	for k := 0; k < files; k++ {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%03d.log", k)), 0, 3)
	}
	before := runtime.NumGoroutine()
	s := &sink{}
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = files
	in, stop := runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 8<<20, s)
	waitFor(t, "all lines", func() bool { return s.count() == 3*files })
	waitFor(t, "all parked", func() bool { return parkedCount(in) == files })
	// At most the idle workers kept for the next wake-ups, however many
	// files.
	if n := runtime.NumGoroutine() - before; n > maxIdleWorkers+20 {
		t.Errorf("%d goroutines for %d idle files", n, files)
	}
	if n := len(in.Files()); n != files {
		t.Errorf("%d files open, want %d", n, files)
	}
	in.mu.Lock()
	woken := 0
	for _, h := range in.byInode {
		if h.parked && h.wake != nil {
			woken++
		}
	}
	if woken > 0 {
		t.Errorf("%d parked files hold a wake channel", woken)
	}
	in.mu.Unlock()
	stop()
}

func parkedCount(in *Input) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, h := range in.byInode {
		if h.parked {
			n++
		}
	}
	return n
}

// A file truncated and written again at once may come as one fsnotify
// event: the harvester that finds it truncated reads the new content then,
// without waiting for another event or its poll (minutes away here), even
// when the new content is as long as the old.
func TestTruncatedAndRewrittenIsReadAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 100)
	cfg := testConfig(dir)
	cfg.PollInterval = time.Second // parked files poll every 128 s
	cfg.ScanInterval = time.Hour
	s := &sink{}
	in, _ := runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 8<<20, s)
	waitFor(t, "100 lines", func() bool { return s.count() == 100 })
	want := 100
	for round := 0; round < 20; round++ {
		deadline := time.Now().Add(10 * time.Second)
		for parkedCount(in) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not parked: %+v", round, in.Files())
			}
			time.Sleep(5 * time.Millisecond)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Round 0 is shorter than the file was: the harvester finds its
		// offset past the end. The others are as long as the one
		// before: only the content tells.
		fmt.Fprintf(f, "round %02d %s\n", round, strings.Repeat("x", 30))
		f.Close()
		want++
		deadline = time.Now().Add(10 * time.Second)
		for s.count() < want {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the line written after the truncation was not read (%d of %d lines; parked %d)", round, s.count(), want, parkedCount(in))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// The poll queue hands out harvesters in the order of their polls, through
// schedules, reschedules and removals in any order.
func TestPollQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q pollQueue
	hs := make([]*harvester, 200)
	due := map[*harvester]int64{}
	for i := range hs {
		hs[i] = &harvester{pollIdx: -1}
	}
	base := time.Unix(1_000_000, 0)
	for step := 0; step < 20_000; step++ {
		h := hs[r.IntN(len(hs))]
		switch r.IntN(3) {
		case 0, 1:
			at := base.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
			q.schedule(h, at)
			due[h] = at.UnixNano()
		case 2:
			q.remove(h)
			delete(due, h)
		}
		for i, e := range q {
			if int(e.h.pollIdx) != i {
				t.Fatalf("step %d: entry %d has pollIdx %d", step, i, e.h.pollIdx)
			}
		}
	}
	last := int64(0)
	for len(due) > 0 {
		h := q.popDue(base.Add(time.Hour))
		if h == nil {
			t.Fatalf("%d queued harvesters not handed out", len(due))
		}
		d, ok := due[h]
		if !ok || d < last {
			t.Fatalf("handed out at %d after %d (queued %v)", d, last, ok)
		}
		last = d
		delete(due, h)
	}
	if h := q.popDue(base.Add(time.Hour)); h != nil || len(q) != 0 {
		t.Fatalf("queue not empty: %d", len(q))
	}
}

// Where a watch succeeds but its events never come (network and FUSE file
// systems), a poll that finds a file grown long ago with no event deafens
// the directory: its files are polled as if nothing watched it.
func TestPollDeafensDirectoryWithoutEvents(t *testing.T) {
	defer func(old bool) { watchDirectories = old }(watchDirectories)
	watchDirectories = false // no events, as on NFS
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 1)
	cfg := testConfig(dir)
	cfg.PollInterval = 5 * time.Millisecond // watched: a poll each 2.56 s
	s := &sink{}
	in, _ := runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 8<<20, s)
	waitFor(t, "line 0", func() bool { return s.count() == 1 })
	in.watched.Store(dir, true) // as if a watch had succeeded
	writeLines(t, path, 1, 1)
	waitFor(t, "line 1", func() bool { return s.count() == 2 })
	waitFor(t, "parked", func() bool { return parkedCount(in) == 1 })
	if !in.isWatched(dir) {
		t.Fatal("deafened by a line read at once")
	}

	writeLines(t, path, 2, 1)
	old := time.Now().Add(-2 * missedEventAfter)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "line 2, by a poll", func() bool { return s.count() == 3 })
	if in.isWatched(dir) {
		t.Fatal("a line found by a poll long after it was written, and no event: the directory is still taken as watched")
	}
}

// A file woken from idle for a line reads it into a tiny block: what it
// holds of max_inflight_bytes until the line is delivered follows the
// bytes, not the 64 KiB of a full block.
func TestWokenFileReadsIntoTinyBlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 1)
	budget := NewBudget(8 << 20)
	s := &sink{}
	in, _ := runInputOn(t, testConfig(dir), openStore(t, t.TempDir()), budget, s)
	waitFor(t, "the first line read", func() bool { return s.count() == 1 })
	waitFor(t, "parked, holding nothing", func() bool { return parkedCount(in) == 1 && budget.Used() == 0 })

	s.mu.Lock()
	s.hold = make(chan struct{}) // the line's block stays held until released
	s.mu.Unlock()
	writeLines(t, path, 1, 1)
	waitFor(t, "the woken file's block charged", func() bool { return budget.Used() > 0 })
	if used := budget.Used(); used != tinyBlock {
		t.Errorf("a woken file's line holds %d bytes of the budget, want %d (a tiny block)", used, tinyBlock)
	}
	s.release()
	waitFor(t, "the second line delivered", func() bool { return s.count() == 2 })
}

// A signal to a harvester at work leaves a token, which keeps it from
// parking until taken; parked, it holds no wake channel (a signal unparks
// it instead), and the channel is kept for the next harvester.
func TestParkLetsGoOfWake(t *testing.T) {
	dir := t.TempDir()
	in := New(testConfig(dir), openStore(t, filepath.Join(dir, "data")), NewBudget(1<<20), nil, slog.New(slog.DiscardHandler))
	h := &harvester{pollIdx: -1}
	in.mu.Lock()
	in.busy[h] = struct{}{}
	in.mu.Unlock()
	in.signal(h)
	if h.wake == nil || len(h.wake) != 1 {
		t.Fatal("a signal to a harvester at work left no token")
	}
	if in.park(h, time.Hour) {
		t.Fatal("parked with a signal not taken")
	}
	<-in.wakeChan(h) // as run's wait takes it
	if !in.park(h, time.Hour) {
		t.Fatal("not parked")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if h.wake != nil {
		t.Error("a parked harvester holds its wake channel")
	}
	if len(in.wakes) != 1 {
		t.Errorf("%d wake channels kept for reuse, want the one let go of", len(in.wakes))
	}
}

// A file opened with a line unread reads it into a block of its size, not a
// tiny one: at a start, thousands of quiet files each hold theirs until
// their lines are delivered.
func TestShortFileReadsIntoMiniBlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 1)
	budget := NewBudget(8 << 20)
	s := &sink{hold: make(chan struct{})} // the line's block stays held until released
	runInputOn(t, testConfig(dir), openStore(t, t.TempDir()), budget, s)
	waitFor(t, "the line's block charged", func() bool { return budget.Used() > 0 })
	if used := budget.Used(); used != miniBlock {
		t.Errorf("a line of a file just opened holds %d bytes of the budget, want %d (a mini block)", used, miniBlock)
	}
	s.release()
	waitFor(t, "the line delivered", func() bool { return s.count() == 1 })
}
