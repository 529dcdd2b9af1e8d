package file

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// sink collects what an input publishes and acknowledges it, unless it is
// held (an output that is down).
type sink struct {
	mu    sync.Mutex
	lines []string
	hold  chan struct{} // while open and non-nil, publish waits
}

func (s *sink) publish(ctx context.Context, c *logagent.Chunk) error {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.Expect(1)
	s.mu.Lock()
	for _, m := range c.Messages {
		s.lines = append(s.lines, string(m.Body))
	}
	s.mu.Unlock()
	go c.Ack(len(c.Messages)) // acknowledged from another goroutine, as outputs do
	return nil
}

// release lets publish go on, and every chunk held go out.
func (s *sink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.hold)
	s.hold = nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func testConfig(dir string) Config {
	return Config{
		ID: "t", Paths: []string{filepath.Join(dir, "*.log")}, MaxMessageBytes: 1024, LinesPerMessage: 1,
		ScanInterval: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond, CloseInactive: time.Minute,
		CloseRemovedAfter: time.Hour, MaxOpenFiles: 100, FingerprintBytes: DefaultFingerprintBytes, BlockBytes: 1 << 20,
	}
}

// runInput runs an input on store until the returned stop is called.
func runInput(t *testing.T, cfg Config, store *checkpoint.Store, budget int64, s *sink) (*Input, func()) {
	t.Helper()
	return runInputOn(t, cfg, store, NewBudget(budget), s)
}

// runInputOn is runInput with a budget the test can look at.
func runInputOn(t *testing.T, cfg Config, store *checkpoint.Store, budget *Budget, s *sink) (*Input, func()) {
	t.Helper()
	in := New(cfg, store, budget, s.publish, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return in, stop
}

// realTempDir returns t.TempDir() with its symbolic links resolved:
// TMPDIR may be under a link, and a directory named through one is watched
// differently (Input.throughLink).
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func openStore(t *testing.T, dir string) *checkpoint.Store {
	t.Helper()
	st, err := checkpoint.Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeLines(t *testing.T, path string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "line %06d %s\n", i, strings.Repeat("x", 40))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds. The limit bounds a hung test only: a
// wait may cover reading megabytes under the race detector on a quarter of
// a CPU.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	const limit = 3 * time.Minute
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With a budget of one large block, or every harvester holding a block,
// a harvester waiting for budget while holding its block waited forever.
func TestBudgetSmallerThanTwoBlocksDoesNotDeadlock(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 4; i++ {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%d.log", i)), 0, 50_000) // ~2.5MB each
	}
	s := &sink{}
	_, stop := runInput(t, testConfig(dir), openStore(t, filepath.Join(dir, "data")), 1<<20, s)
	waitFor(t, "200,000 lines read", func() bool { return s.count() == 200_000 })
	stop()
}

// A removed file that cannot be read to its end (outputs down) is closed
// after close_removed_after, counted, and forgotten by the checkpoint.
func TestCloseRemovedAfterClosesUnreadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 50_000)
	cfg := testConfig(dir)
	cfg.CloseRemovedAfter = 300 * time.Millisecond
	s := &sink{hold: make(chan struct{})}
	store := openStore(t, filepath.Join(dir, "data"))
	in, _ := runInput(t, cfg, store, 1<<20, s)
	waitFor(t, "file open", func() bool { return len(in.Files()) == 1 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removed file closed unread", func() bool { return in.Metrics().ClosedUnread.Load() == 1 })
	waitFor(t, "harvester gone", func() bool { return len(in.Files()) == 0 })
	if e := store.Entries("t"); len(e) != 0 {
		t.Errorf("checkpoint still has %v", e)
	}
}

// Files renamed while the agent was stopped are found by identity at the
// next start and read from their checkpointed offset, including lines
// appended after the rename.
func TestRestartFindsFilesRenamedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 1000)
	data := filepath.Join(dir, "data")
	s := &sink{}
	store := openStore(t, data)
	_, stop := runInput(t, testConfig(dir), store, 8<<20, s)
	waitFor(t, "1000 lines", func() bool { return s.count() == 1000 })
	stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	writeLines(t, path, 1000, 500) // unread when the agent stops
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(t, path+".1", 1500, 500) // the writer still had it open
	writeLines(t, path, 0, 10)          // the new file

	s2 := &sink{}
	_, stop2 := runInput(t, testConfig(dir), openStore(t, data), 8<<20, s2)
	waitFor(t, "1010 lines", func() bool { return s2.count() == 1010 })
	time.Sleep(200 * time.Millisecond) // nothing more may come
	stop2()
	s2.mu.Lock()
	defer s2.mu.Unlock()
	if len(s2.lines) != 1010 {
		t.Fatalf("got %d lines after restart, want 1010", len(s2.lines))
	}
	seen := map[string]bool{}
	for _, l := range s2.lines {
		seen[l[:11]] = true
	}
	for i := 1000; i < 2000; i++ {
		if !seen[fmt.Sprintf("line %06d", i)] {
			t.Fatalf("line %d of the renamed file not read", i)
		}
	}
}

// A file shorter than a fingerprint, written a line at a time, moves its
// checkpoint entry to a longer fingerprint only when the fingerprint doubled
// or is complete; after a restart, the shorter fingerprint recorded still
// resumes the file where it was.
func TestSmallFileFingerprintRecordedAtDoublings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	const lineLen = 53 // writeLines' lines
	data := filepath.Join(dir, "data")
	s := &sink{}
	store := openStore(t, data)
	_, stop := runInput(t, testConfig(dir), store, 8<<20, s)
	recorded := func() int {
		es := store.Entries("t")
		if len(es) != 1 {
			return -1
		}
		return es[0].ID.FingerprintLen
	}
	var lens []int
	for i := 0; i < 17; i++ {
		writeLines(t, path, i, 1)
		waitFor(t, fmt.Sprintf("line %d", i), func() bool { return s.count() == i+1 })
		waitFor(t, "the offset committed", func() bool {
			es := store.Entries("t")
			return len(es) == 1 && es[0].Offset == int64((i+1)*lineLen)
		})
		if n := recorded(); len(lens) == 0 || lens[len(lens)-1] != n {
			lens = append(lens, n)
		}
	}
	want := []int{lineLen, 2 * lineLen, 4 * lineLen, 8 * lineLen, 16 * lineLen}
	if fmt.Sprint(lens) != fmt.Sprint(want) {
		t.Errorf("fingerprint lengths recorded: %v, want %v", lens, want)
	}
	stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Recorded: the first 16 lines' fingerprint, offset after 17 lines.
	writeLines(t, path, 17, 1)
	s2 := &sink{}
	store2 := openStore(t, data)
	_, stop2 := runInput(t, testConfig(dir), store2, 8<<20, s2)
	// Read in order: once the file's end is committed, whatever this run
	// read of it has come, line 17 alone or the file again.
	waitFor(t, "the file's end committed", func() bool {
		es := store2.Entries("t")
		return len(es) == 1 && es[0].Offset == 18*lineLen
	})
	stop2()
	s2.mu.Lock()
	defer s2.mu.Unlock()
	if len(s2.lines) != 1 || !strings.HasPrefix(s2.lines[0], "line 000017") {
		t.Fatalf("after restart got %q, want line 17 alone", s2.lines)
	}
}

// A watched directory moved away and made again is watched again: lines
// written to a file in the new directory come by events, not by polls
// (which this test makes an hour apart).
func TestWatchedDirectoryMovedAndMadeAgain(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logs, "a.log")
	writeLines(t, path, 0, 1)
	cfg := testConfig(logs)
	cfg.PollInterval = time.Hour
	s := &sink{}
	runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 8<<20, s)
	waitFor(t, "line 0", func() bool { return s.count() == 1 })
	writeLines(t, path, 1, 1)
	waitFor(t, "line 1", func() bool { return s.count() == 2 })

	if err := os.Rename(logs, logs+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLines(t, path, 2, 1)
	waitFor(t, "line 2, of a file in the new directory", func() bool { return s.count() == 3 })
	writeLines(t, path, 3, 1)
	waitFor(t, "line 3, woken by an event", func() bool { return s.count() == 4 })
}

// A file found more than backlogBlocks read blocks behind tells
// OnBacklog (the agent then runs more threads); one a block or so behind,
// or written as it is read, does not.
func TestOnBacklogForFilesFarBehind(t *testing.T) {
	tests := []struct {
		name   string
		writes []int // lines per write; the first before start, the rest once read
		want   bool
	}{
		{"a backfill", []int{100_000}, true}, // 5.3 MB (writeLines: 53 B a line), 5 blocks of 1 MiB
		{"a block behind", []int{20_000}, false},
		{"tailed as written", []int{100, 10_000, 10_000, 10_000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.log")
			writeLines(t, path, 0, tt.writes[0])
			var told atomic.Int64
			cfg := testConfig(dir)
			cfg.OnBacklog = func() { told.Add(1) }
			s := &sink{}
			_, stop := runInput(t, cfg, openStore(t, filepath.Join(dir, "data")), 64<<20, s)
			total := tt.writes[0]
			waitFor(t, "the first write read", func() bool { return s.count() == total })
			for _, n := range tt.writes[1:] {
				writeLines(t, path, total, n)
				total += n
				waitFor(t, "a write read", func() bool { return s.count() == total })
			}
			stop()
			if got := told.Load() > 0; got != tt.want {
				t.Errorf("OnBacklog called %d times, want called: %v", told.Load(), tt.want)
			}
		})
	}
}

// More files than max_open_files: every file with unread lines gets read,
// the files read to their end making room (closed least recently active
// first, opened again by identity when they grow), none starved.
func TestMoreFilesThanMaxOpenFiles(t *testing.T) {
	dir := t.TempDir()
	const files, lines, limit = 500, 10, 20
	for i := range files {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), 0, lines)
	}
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = limit
	s := &sink{}
	in, stop := runInput(t, cfg, openStore(t, t.TempDir()), 8<<20, s)
	waitFor(t, "every line of every file", func() bool { return s.count() >= files*lines })
	if n := len(in.Files()); n > limit {
		t.Errorf("%d files open, max_open_files %d", n, limit)
	}

	// Files written again, closed meanwhile or not, are read from where
	// they were: the first and the last in order.
	for _, i := range []int{0, 1, files - 2, files - 1} {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), lines, lines)
	}
	waitFor(t, "the lines appended", func() bool { return s.count() >= files*lines+4*lines })
	stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) != files*lines+4*lines {
		t.Errorf("%d lines, want %d: some read twice", len(s.lines), files*lines+4*lines)
	}
}

// A file closed to make room under max_open_files and written again is
// opened again by its directory's event, from its checkpoint offset: a
// periodic scan does not list the directory for it (events vouch for a
// watched one), and its harvester does not flush the checkpoint before
// its first line goes out when its entry is on disk already under its
// identity and name.
func TestEvictedFileReopenedCheaply(t *testing.T) {
	dir := realTempDir(t)
	const files, limit, rounds = 6, 2, 3
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("f%d.log", i)) }
	for i := range files {
		writeLines(t, name(i), i*1000, 1) // a file's lines are numbered from i*1000
	}
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = limit
	cfg.ScanInterval = 10 * time.Millisecond
	store := openStore(t, t.TempDir()) // flushed by the test only (no Store.Run)
	s := &sink{}
	in, stop := runInput(t, cfg, store, 8<<20, s)
	waitFor(t, "a line of every file", func() bool { return s.count() == files })
	idle := func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		for _, h := range in.byInode {
			if !h.parked || h.tr.inflight() > 0 {
				return false
			}
		}
		return true
	}
	twoScans := func() {
		scans := in.periodicScans.Load()
		waitFor(t, "two periodic scans", func() bool { return in.periodicScans.Load() >= scans+2 })
	}
	waitFor(t, "two periodic scans in a row without a listing", func() bool {
		listed := in.listings.Load()
		twoScans()
		return in.listings.Load() == listed
	})
	want := files
	for r := 1; r <= rounds; r++ {
		for i := range files {
			// Each write is to a file closed two writes ago.
			waitFor(t, "every open file idle", idle)
			if err := store.Flush(); err != nil { // as Store.Run does within checkpoint_max_delay
				t.Fatal(err)
			}
			listed, syncs := in.listings.Load(), store.Syncs()
			writeLines(t, name(i), i*1000+r, 1)
			want++
			waitFor(t, "the line written", func() bool { return s.count() == want })
			twoScans()
			if n := in.listings.Load() - listed; n > 0 {
				t.Errorf("round %d, f%d.log: %d listings; want none (its write's event opened it)", r, i, n)
			}
			if n := store.Syncs() - syncs; n > 0 {
				t.Errorf("round %d, f%d.log: %d checkpoint flushes; want none (its entry was on disk)", r, i, n)
			}
			if n := len(in.Files()); n > limit {
				t.Errorf("%d files open, max_open_files %d", n, limit)
			}
		}
	}
	stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, l := range s.lines {
		if seen[l] {
			t.Errorf("line read twice: %q", l)
		}
		seen[l] = true
	}
}

// The files a scan opens have their checkpoint entries flushed once per
// batch (runOpened), before their harvesters run: none waits for a flush
// of its own before its first line goes out, and every file's identity is
// on disk by then.
func TestScanFlushesOncePerBatch(t *testing.T) {
	dir := realTempDir(t)
	const files = 2*startBatch + 10
	for i := range files {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), i, 1)
	}
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = files + 10
	stateDir := t.TempDir()
	store := openStore(t, stateDir) // flushed by Sync only (no Store.Run)
	s := &sink{}
	in, _ := runInput(t, cfg, store, 8<<20, s)
	waitFor(t, "a line of every file", func() bool { return s.count() == files })
	if n := in.metrics.ownFlushes.Load(); n > 0 {
		t.Errorf("%d harvesters flushed the checkpoint before their first line; want none (the scan flushes per batch)", n)
	}
	if n, max := store.Syncs(), int64(files/startBatch+1); n > max {
		t.Errorf("%d checkpoint flushes for %d files opened; want at most %d", n, files, max)
	}
	if n := len(afterCrash(t, stateDir).Entries(cfg.ID)); n != files {
		t.Errorf("%d entries on disk, want %d", n, files)
	}
}

// Files that events open, a burst of them at once, are run as a scan's are
// (runOpened): none flushes the checkpoint itself before its first line,
// the burst's flush has put its entry on disk. (How many events a burst
// holds is up to the scheduler: the flushes are not counted.)
func TestEventOpenedFilesShareBurstFlush(t *testing.T) {
	dir := realTempDir(t)
	const files = 300
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = files + 10
	cfg.ScanInterval = time.Hour // what is opened, events open
	stateDir := t.TempDir()
	store := openStore(t, stateDir) // flushed by Sync only (no Store.Run)
	s := &sink{}
	in, _ := runInput(t, cfg, store, 8<<20, s)
	waitFor(t, "the directory watched", func() bool { return in.isWatched(dir) })
	for i := range files {
		writeLines(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), i, 1)
	}
	waitFor(t, "a line of every file", func() bool { return s.count() == files })
	if n := in.metrics.ownFlushes.Load(); n > 0 {
		t.Errorf("%d harvesters flushed the checkpoint before their first line; want none (each burst of events is flushed once)", n)
	}
	if n := len(afterCrash(t, stateDir).Entries(cfg.ID)); n != files {
		t.Errorf("%d entries on disk, want %d", n, files)
	}
}

// afterCrash opens a copy of the data_dir stateDir of a running store, less
// the lock it holds: what a crash now would leave.
func afterCrash(t *testing.T, stateDir string) *checkpoint.Store {
	t.Helper()
	crashed := t.TempDir()
	names, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if e.Name() == ".lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(stateDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := openStore(t, crashed)
	t.Cleanup(func() { st.Close() })
	return st
}

// A file read to its end a moment ago is still listed by Reading, so that
// its delivery rate is sampled between writes, not only while a read is
// under way.
func TestReadingListsFilesReadLately(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 100)
	s := &sink{}
	in, _ := runInput(t, testConfig(dir), openStore(t, t.TempDir()), 8<<20, s)
	waitFor(t, "the lines", func() bool { return s.count() >= 100 })
	waitFor(t, "the file delivered and parked", func() bool {
		in.mu.Lock()
		busy := len(in.busy)
		in.mu.Unlock()
		return busy == 0 && len(in.Behind()) == 0
	})
	got := in.Reading()
	if len(got) != 1 || got[0].Path != path || got[0].Committed == 0 {
		t.Fatalf("Reading() = %+v, want %s", got, path)
	}
}

// ignore_older: a file never seen before and older than it is started at
// its end (what is appended later is read); a file with a checkpoint entry
// is resumed however old; a recent new file is read whole.
func TestIgnoreOlder(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ck, old, recent := filepath.Join(dir, "ck.log"), filepath.Join(dir, "old.log"), filepath.Join(dir, "recent.log")
	writeLines(t, ck, 0, 100)
	s := &sink{}
	store := openStore(t, data)
	_, stop := runInput(t, testConfig(dir), store, 8<<20, s)
	waitFor(t, "100 lines", func() bool { return s.count() == 100 })
	stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	writeLines(t, ck, 100, 50)
	writeLines(t, old, 10000, 1000)
	writeLines(t, recent, 20000, 10)
	long := time.Now().Add(-100 * time.Hour)
	for _, p := range []string{ck, old} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(dir)
	cfg.IgnoreOlder = 72 * time.Hour
	entries, err := checkpoint.Load(filepath.Join(data, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	plan := map[string]PlannedFile{}
	for _, pf := range Plan(cfg, entries) {
		plan[filepath.Base(pf.Path)] = pf
	}
	if pf := plan["old.log"]; pf.Reason != StartTooOld || pf.Start != pf.Size {
		t.Errorf("plan of old.log: %+v, want StartTooOld and Start at its size", pf)
	}
	if pf := plan["ck.log"]; pf.Reason != StartResume || pf.Start == 0 {
		t.Errorf("plan of ck.log: %+v, want resumed", pf)
	}
	if pf := plan["recent.log"]; pf.Reason != StartNew || pf.Start != 0 {
		t.Errorf("plan of recent.log: %+v, want from the beginning", pf)
	}

	s2 := &sink{}
	in, stop2 := runInput(t, cfg, openStore(t, data), 8<<20, s2)
	waitFor(t, "60 lines", func() bool { return s2.count() >= 60 })
	waitFor(t, "old.log open", func() bool {
		for _, f := range in.Files() {
			if f.Path == old {
				return true
			}
		}
		return false
	})
	writeLines(t, old, 11000, 5)
	waitFor(t, "65 lines", func() bool { return s2.count() >= 65 })
	stop2()
	s2.mu.Lock()
	defer s2.mu.Unlock()
	want := map[int]bool{}
	for i := 100; i < 150; i++ {
		want[i] = true
	}
	for i := 11000; i < 11005; i++ {
		want[i] = true
	}
	for i := 20000; i < 20010; i++ {
		want[i] = true
	}
	for _, l := range s2.lines {
		var n int
		fmt.Sscanf(l, "line %d", &n)
		if !want[n] {
			t.Fatalf("line %d read (old.log's lines before the start must be skipped, ck.log resumed)", n)
		}
		delete(want, n)
	}
	if len(want) > 0 {
		t.Fatalf("%d lines missing", len(want))
	}
}
