package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/internal/testenv"
)

// runInputLogged is runInput with the input's log kept.
func runInputLogged(t *testing.T, cfg Config, store *checkpoint.Store, s *sink) (*Input, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	in := New(cfg, store, NewBudget(8<<20), s.publish, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return in, logs
}

// has reports whether s received a line starting with prefix.
func (s *sink) has(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// countPrefix counts the lines received starting with prefix.
func (s *sink) countPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func writeTagged(t *testing.T, path, tag string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < from+n; i++ {
		fmt.Fprintf(f, "%s %06d\n", tag, i)
	}
}

// Symbolic links are skipped unless the input follows them, with one
// warning for all of them; followed, the file is read once.
func TestSymlinksFollowedOnlyWhenAsked(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprint("follow=", follow), func(t *testing.T) {
			dir := t.TempDir()
			logs := filepath.Join(dir, "logs")
			other := filepath.Join(dir, "other")
			os.Mkdir(logs, 0o755)
			os.Mkdir(other, 0o755)
			writeTagged(t, filepath.Join(logs, "a.log"), "a", 0, 10)
			writeTagged(t, filepath.Join(other, "secret"), "secret", 0, 10)
			for i := range 50 {
				if err := os.Symlink(filepath.Join(other, "secret"), filepath.Join(logs, fmt.Sprintf("link%02d.log", i))); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(logs)
			cfg.FollowSymlinks = follow
			s := &sink{}
			in, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
			waitFor(t, "a's lines", func() bool { return s.countPrefix("a ") == 10 })
			if follow {
				waitFor(t, "the link's target read once", func() bool { return s.countPrefix("secret ") == 10 })
				waitFor(t, "the checkpoint says so", func() bool { return len(in.Files()) == 2 })
				return
			}
			waitFor(t, "a warning", func() bool { return strings.Contains(logbuf.String(), "follow_symlinks is off") })
			// A few more scans: nothing more is read, and the 50 links make
			// one line.
			deadline := time.Now().Add(5 * cfg.ScanInterval)
			for time.Now().Before(deadline) {
				time.Sleep(cfg.ScanInterval)
			}
			if n := s.countPrefix("secret "); n != 0 {
				t.Fatalf("%d lines of a linked file read with follow_symlinks off", n)
			}
			if n := strings.Count(logbuf.String(), "symbolic link skipped"); n != 1 {
				t.Fatalf("%d warnings for 50 links, want one summary:\n%s", n, logbuf)
			}
			if !strings.Contains(logbuf.String(), "count=50") {
				t.Fatalf("summary does not count 50 links:\n%s", logbuf)
			}
		})
	}
}

// A followed link is read only if its owner could read the target: a user
// who can write into a log directory cannot make the agent (root, or
// holding CAP_DAC_READ_SEARCH) ship a root-only file.
func TestSymlinkToFileItsOwnerCannotRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to own links as another user")
	}
	const nobody = 65534
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	other := filepath.Join(dir, "other")
	os.Mkdir(logs, 0o777)
	os.Mkdir(other, 0o755)
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent
	secret := filepath.Join(other, "secret")
	public := filepath.Join(other, "public")
	writeTagged(t, secret, "secret", 0, 10)
	writeTagged(t, public, "public", 0, 10)
	os.Chmod(secret, 0o600)
	os.Chmod(public, 0o644)
	link := func(target, name string, uid int) {
		p := filepath.Join(logs, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	link(secret, "evil.log", nobody)   // refused
	link(public, "public.log", nobody) // nobody may read it: read
	link(secret, "root.log", 0)        // root's link: read
	cfg := testConfig(logs)
	cfg.FollowSymlinks = true
	s := &sink{}
	_, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
	waitFor(t, "public.log and root.log read", func() bool {
		return s.countPrefix("public ") == 10 && s.countPrefix("secret ") == 10
	})
	waitFor(t, "evil.log refused", func() bool { return strings.Contains(logbuf.String(), "symbolic link refused") })
	if n := s.countPrefix("secret "); n != 10 {
		t.Fatalf("the root-only file was read %d lines, want 10 (through root's link alone)", n)
	}
	if !strings.Contains(logbuf.String(), "evil.log") {
		t.Fatalf("the refusal does not name the link:\n%s", logbuf)
	}
}

// The rule itself: mode bits for the owner, a group of the user, others;
// search permission on the directories above.
func TestMayRead(t *testing.T) {
	st := func(uid, gid, mode uint32) *syscall.Stat_t {
		return &syscall.Stat_t{Uid: uid, Gid: gid, Mode: syscall.S_IFREG | mode}
	}
	groups := map[uint32]bool{100: true}
	tests := []struct {
		st   *syscall.Stat_t
		want bool
	}{
		{st(1000, 0, 0o600), true},  // owner
		{st(0, 0, 0o600), false},    // root-only
		{st(0, 100, 0o640), true},   // through a group of the user
		{st(0, 200, 0o640), false},  // another group
		{st(0, 200, 0o644), true},   // others
		{st(1000, 0, 0o044), false}, // owner without read: no
	}
	for i, tt := range tests {
		if got := permits(1000, groups, tt.st, 4); got != tt.want {
			t.Errorf("%d: permits(mode %#o) = %v, want %v", i, tt.st.Mode&0o777, got, tt.want)
		}
	}
}

// Kubernetes: /var/log/containers/*.log are links to
// /var/log/pods/<pod>/<container>/0.log. Followed, lines come at once (the
// target's directory is watched: the poll is an hour away here), nothing is
// lost through rotations in the target's directory, no "network or FUSE"
// warning, and a dangling link is read once its target appears.
func TestFollowedLinksToAnotherDirectory(t *testing.T) {
	dir := t.TempDir()
	containers := filepath.Join(dir, "containers")
	pod := filepath.Join(dir, "pods", "ns_pod", "app")
	pod2 := filepath.Join(dir, "pods", "ns_pod2", "app")
	for _, d := range []string{containers, pod, pod2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(pod, "0.log")
	writeTagged(t, target, "g0", 0, 5)
	os.Symlink(target, filepath.Join(containers, "pod_ns_app.log"))
	os.Symlink(filepath.Join(pod2, "0.log"), filepath.Join(containers, "pod2_ns_app.log")) // dangling
	pod3 := filepath.Join(dir, "pods", "ns_pod3", "app")                                   // made later
	os.Symlink(filepath.Join(pod3, "0.log"), filepath.Join(containers, "pod3_ns_app.log"))
	cfg := testConfig(containers)
	cfg.FollowSymlinks = true
	cfg.PollInterval = time.Hour / 512 // parked files poll every hour
	cfg.ScanInterval = time.Hour
	cfg.CloseInactive = time.Hour
	s := &sink{}
	_, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
	waitFor(t, "the first lines", func() bool { return s.countPrefix("g0 ") == 5 })
	writeTagged(t, target, "g0", 5, 5)
	waitFor(t, "lines appended, woken by an event", func() bool { return s.countPrefix("g0 ") == 10 })

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logbuf)
		}
	})
	// Rotation as the kubelet does it: rename, the writer appends to the
	// renamed file a little more, a new 0.log; twice.
	for g := 1; g <= 2; g++ {
		rotated := filepath.Join(pod, fmt.Sprintf("0.log.%d", g))
		if err := os.Rename(target, rotated); err != nil {
			t.Fatal(err)
		}
		writeTagged(t, rotated, fmt.Sprintf("g%d", g-1), 10, 2)
		writeTagged(t, target, fmt.Sprintf("g%d", g), 0, 10)
		waitFor(t, fmt.Sprintf("generation %d and the end of %d", g, g-1), func() bool {
			return s.countPrefix(fmt.Sprintf("g%d ", g-1)) == 12 && s.countPrefix(fmt.Sprintf("g%d ", g)) == 10
		})
	}

	writeTagged(t, filepath.Join(pod2, "0.log"), "late", 0, 3)
	waitFor(t, "the dangling link's target, once made", func() bool { return s.countPrefix("late ") == 3 })
	if err := os.MkdirAll(pod3, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTagged(t, filepath.Join(pod3, "0.log"), "later", 0, 3)
	waitFor(t, "the target of a link to a directory made later", func() bool { return s.countPrefix("later ") == 3 })
	if strings.Contains(logbuf.String(), "FUSE") {
		t.Fatalf("misleading warning:\n%s", logbuf)
	}
	for g, want := range []int{12, 12, 10} {
		if n := s.countPrefix(fmt.Sprintf("g%d ", g)); n != want {
			t.Fatalf("g%d: %d lines, want %d exactly", g, n, want)
		}
	}
}

// A FIFO, socket or device matched by a glob is skipped with one warning,
// by the input and by Plan (--dry-run), without blocking on it.
func TestFIFONotOpened(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.Mkdir(logs, 0o755)
	writeTagged(t, filepath.Join(logs, "a.log"), "a", 0, 10)
	fifo := filepath.Join(logs, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(logs)

	planned := make(chan []PlannedFile, 1)
	go func() { planned <- Plan(cfg, nil) }()
	var pfs []PlannedFile
	select {
	case pfs = <-planned:
	case <-time.After(time.Minute):
		t.Fatal("Plan blocks on a FIFO")
	}
	found := false
	for _, pf := range pfs {
		if pf.Path == fifo {
			found = true
			if !errors.Is(pf.Err, errNotRegular) {
				t.Errorf("Plan of the FIFO: err %v, want not a regular file", pf.Err)
			}
		}
	}
	if !found {
		t.Errorf("Plan does not list the FIFO: %+v", pfs)
	}

	// The swap between a look and the open: openRegular on the FIFO
	// itself returns at once.
	opened := make(chan error, 1)
	go func() {
		f, _, err := openRegular(fifo)
		if f != nil {
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if !errors.Is(err, errNotRegular) {
			t.Errorf("openRegular(FIFO): %v, want not a regular file", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("openRegular blocks on a FIFO")
	}

	s := &sink{}
	_, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
	waitFor(t, "a's lines", func() bool { return s.countPrefix("a ") == 10 })
	waitFor(t, "a warning", func() bool { return strings.Contains(logbuf.String(), "not a regular file") })
	writeTagged(t, filepath.Join(logs, "a.log"), "a", 10, 10)
	waitFor(t, "the input goes on", func() bool { return s.countPrefix("a ") == 20 })
	if n := strings.Count(logbuf.String(), `msg="not a regular file`); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logbuf)
	}
}

// A file rewritten in place, its first bytes the same: to the same size
// while the agent waits at its end, or truncated and written past the read
// offset while reading was paused. The new content is read in full.
func TestRewrittenInPlaceIsReadAgain(t *testing.T) {
	header := strings.Repeat("h", 2047) + "\n" // the first 2 KiB never change
	line := func(tag string, i int) string { return fmt.Sprintf("%s %06d %s\n", tag, i, strings.Repeat("x", 40)) }
	content := func(tag string, n int) []byte {
		var b strings.Builder
		b.WriteString(header)
		for i := range n {
			b.WriteString(line(tag, i))
		}
		return []byte(b.String())
	}

	// parkedOn runs an input on a file of n old lines, parked polls an
	// hour apart (only events wake it), until it has read them and
	// parked.
	parkedOn := func(t *testing.T, n int) (path string, s *sink, in *Input) {
		dir := t.TempDir()
		path = filepath.Join(dir, "a.log")
		os.WriteFile(path, content("old", n), 0o644)
		cfg := testConfig(dir)
		cfg.PollInterval = time.Hour / 512
		s = &sink{}
		in, _ = runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
		waitFor(t, "the old lines", func() bool { return s.countPrefix("old ") == n })
		waitFor(t, "parked", func() bool { return parkedCount(in) == 1 })
		return path, s, in
	}

	t.Run("same size", func(t *testing.T) {
		path, s, _ := parkedOn(t, 1000)
		time.Sleep(20 * time.Millisecond) // a later modification time than the last write
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(content("new", 1000), 0) // in place: never shorter
		f.Close()
		waitFor(t, "the new lines", func() bool { return s.countPrefix("new ") == 1000 })
	})

	// Parked after the short read of an append, which does not look at
	// the inode (parkAfterShortRead), then rewritten to the same size:
	// the next look at the end takes the modification since that read for
	// a possible rewrite.
	t.Run("same size after an append", func(t *testing.T) {
		path, s, in := parkedOn(t, 999)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line("old", 999))
		f.Close()
		waitFor(t, "the appended line", func() bool { return s.countPrefix("old ") == 1000 })
		waitFor(t, "parked", func() bool { return parkedCount(in) == 1 })
		time.Sleep(20 * time.Millisecond) // a later modification time than the last write
		f, err = os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(content("new", 1000), 0) // in place: never shorter
		f.Close()
		waitFor(t, "the new lines", func() bool { return s.countPrefix("new ") == 1000 })
	})

	t.Run("truncated and written past the offset", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "a.log")
		os.WriteFile(path, content("old", 1000), 0o644)
		cfg := testConfig(dir)
		s := &sink{hold: make(chan struct{})}
		in, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(dir, "data")), s)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("got %d old, %d new; log:\n%s", s.countPrefix("old "), s.countPrefix("new "), logbuf)
			}
		})
		// Read to its end and held in publish (outputs down).
		waitFor(t, "read to the end", func() bool {
			fs := in.Files()
			return len(fs) == 1 && fs[0].Read == int64(len(content("old", 1000)))
		})
		// Reading paused for longer than recheckAfter: what the harvester
		// reads next is checked (a pause shorter than that is taken for
		// a writer's pace, and not looked at).
		time.Sleep(2 * recheckAfter)
		if err := os.WriteFile(path, content("new", 3000), 0o644); err != nil {
			t.Fatal(err)
		}
		s.release()
		waitFor(t, "every new line", func() bool { return s.countPrefix("new ") == 3000 })
	})
}

// A checkpoint entry naming a file outside every glob (a forged one, or of
// a glob since removed) is never read, even when it names the file exactly.
func TestCheckpointEntryOutsideGlobsNotRead(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	other := filepath.Join(dir, "other")
	os.Mkdir(logs, 0o755)
	os.Mkdir(other, 0o755)
	writeTagged(t, filepath.Join(logs, "a.log"), "a", 0, 10)
	secret := filepath.Join(other, "shadow")
	writeTagged(t, secret, "secret", 0, 10)
	f, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := identify(f, DefaultFingerprintBytes)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	store := openStore(t, data)
	store.Set(checkpoint.Entry{Input: "t", ID: id, Path: secret, Offset: 0, Updated: time.Now()})
	s := &sink{}
	runInputLogged(t, testConfig(logs), store, s)
	waitFor(t, "a's lines", func() bool { return s.countPrefix("a ") == 10 })
	waitFor(t, "the forged entry dropped, or the file read", func() bool {
		if s.has("secret ") {
			return true
		}
		for _, e := range store.Entries("t") {
			if e.Path == secret {
				return false
			}
		}
		return true
	})
	if s.has("secret ") {
		t.Fatal("a file named by a checkpoint entry alone was read")
	}
}

// A directory a */ glob reaches but cannot list is reported by Plan, and
// listed again once it can be. Permissions are checked as user nobody, on
// a thread of its own: root reads every directory.
func TestUnreadableDirectoryReported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to look as another user")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent
	for _, d := range []string{"a", "b"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
		writeTagged(t, filepath.Join(dir, d, "x.log"), d, 0, 1)
	}
	os.Chmod(filepath.Join(dir, "b"), 0o700)
	cfg := testConfig(dir)
	cfg.Paths = []string{filepath.Join(dir, "*", "x.log")}
	asNobody := func() (pfs []PlannedFile) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			syscall.Setfsuid(65534)
			pfs = Plan(cfg, nil)
		}()
		<-done
		return pfs
	}
	pfs := asNobody()
	var bad []string
	for _, pf := range pfs {
		if pf.Err != nil {
			bad = append(bad, pf.Path)
		}
	}
	if len(bad) != 1 || bad[0] != filepath.Join(dir, "b") || len(pfs) != 2 {
		t.Fatalf("Plan as nobody: %+v, want a/x.log and b unreadable", pfs)
	}
	os.Chmod(filepath.Join(dir, "b"), 0o755)
	pfs = asNobody()
	if len(pfs) != 2 || pfs[0].Err != nil || pfs[1].Err != nil {
		t.Fatalf("Plan once b is readable: %+v", pfs)
	}
}

// Thousands of directories that cannot be watched (inotify watches run
// out) make one summary line, then nothing until a new one fails.
func TestWatchFailuresSummarised(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	in := New(testConfig(t.TempDir()), nil, NewBudget(1<<20), nil, slog.New(slog.NewTextHandler(logs, nil)))
	for range 2 { // the second scan finds them again
		for i := range 2901 {
			d := fmt.Sprintf("/var/log/app/%d", i)
			in.reportOnce("watch:"+d, "cannot watch directory; polling it", "dir", d, "err", syscall.ENOSPC)
		}
		in.flushProblems()
	}
	out := logs.String()
	if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, "count=2901") {
		t.Fatalf("want one summary of 2901 directories, got %d lines:\n%.2000s", n, out)
	}
}

// Links that loop, followed, are skipped with one summary for all.
func TestLoopingLinksSummarised(t *testing.T) {
	dir := t.TempDir()
	for i := range 200 {
		a, b := filepath.Join(dir, fmt.Sprintf("a%03d.log", i)), filepath.Join(dir, fmt.Sprintf("b%03d.log", i))
		os.Symlink(b, a)
		os.Symlink(a, b)
	}
	writeTagged(t, filepath.Join(dir, "z.log"), "z", 0, 10)
	cfg := testConfig(dir)
	cfg.FollowSymlinks = true
	s := &sink{}
	_, logbuf := runInputLogged(t, cfg, openStore(t, filepath.Join(t.TempDir(), "data")), s)
	waitFor(t, "z's lines", func() bool { return s.countPrefix("z ") == 10 })
	waitFor(t, "the summary", func() bool { return strings.Contains(logbuf.String(), "symbolic link loop") })
	if n := strings.Count(logbuf.String(), "symbolic link loop"); n != 1 || !strings.Contains(logbuf.String(), "count=400") {
		t.Fatalf("%d lines for 400 looping links, want one summary of 400:\n%.3000s", n, logbuf)
	}
}

// A followed link's target rotated while the agent was stopped: at the
// next start the rotated file is found in the target's directory and read
// to its end, and the new one from its start.
func TestFollowedLinkTargetRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	containers := filepath.Join(dir, "containers")
	pod := filepath.Join(dir, "pods", "ns_pod", "app")
	os.MkdirAll(containers, 0o755)
	os.MkdirAll(pod, 0o755)
	target := filepath.Join(pod, "0.log")
	writeTagged(t, target, "g0", 0, 10)
	os.Symlink(target, filepath.Join(containers, "pod_ns_app.log"))
	cfg := testConfig(containers)
	cfg.FollowSymlinks = true
	data := filepath.Join(dir, "data")

	store := openStore(t, data)
	s := &sink{}
	_, stop := runInput(t, cfg, store, 8<<20, s)
	waitFor(t, "g0's lines", func() bool { return s.countPrefix("g0 ") == 10 })
	waitFor(t, "committed", func() bool {
		es := store.Entries("t")
		return len(es) == 1 && es[0].Offset == 10*10
	})
	stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	writeTagged(t, target, "g0", 10, 5)
	os.Rename(target, target+".1")
	writeTagged(t, target, "g1", 0, 3)

	s2 := &sink{}
	runInput(t, cfg, openStore(t, data), 8<<20, s2)
	waitFor(t, "the rest of g0 and g1", func() bool { return s2.countPrefix("g0 ") == 5 && s2.countPrefix("g1 ") == 3 })
}
