package file

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDirListing(t *testing.T) {
	dir := realTempDir(t)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	app := filepath.Join(sub, "app.log")
	os.WriteFile(app, []byte("a\n"), 0o644)
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(sub, link); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	settle := func() {
		os.Chtimes(dir, old, old)
		os.Chtimes(sub, old, old)
	}
	for _, tc := range []struct {
		name     string
		globs    []string
		change   func()
		recent   bool // the directory changed just before the record
		trusted  bool // unchanged() after the change
		flatSeen bool // events can vouch for the listing (Input.eventsVouch)
	}{
		{name: "flat glob, nothing changed", globs: []string{dir + "/*.log"}, trusted: true, flatSeen: true},
		{name: "flat glob, file created", globs: []string{dir + "/*.log"},
			change: func() { os.WriteFile(filepath.Join(dir, "new.log"), nil, 0o644) }, flatSeen: true},
		{name: "flat glob, file renamed", globs: []string{dir + "/*.log"},
			change: func() { os.Rename(filepath.Join(dir, "new.log"), filepath.Join(dir, "new.log.1")) }, flatSeen: true},
		{name: "flat glob, file removed", globs: []string{dir + "/*.log"},
			change: func() { os.Remove(filepath.Join(dir, "new.log.1")) }, flatSeen: true},
		{name: "file appended to: the listing holds", globs: []string{dir + "/*.log", sub + "/*.log"},
			change: func() {
				f, _ := os.OpenFile(app, os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("b\n")
				f.Close()
			}, trusted: true, flatSeen: true},
		{name: "directory through a symbolic link", globs: []string{link + "/*.log"}, trusted: true},
		{name: "wildcard in a directory", globs: []string{dir + "/*/a.log"}},
		{name: "double star", globs: []string{dir + "/**/*.log"}},
		{name: "missing directory", globs: []string{dir + "/nope/*.log"}},
		{name: "changed within the racy window", globs: []string{dir + "/*.log"}, recent: true, flatSeen: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settle()
			if tc.recent {
				now := time.Now()
				os.Chtimes(dir, now, now)
			}
			var l dirListing
			l.record(tc.globs, time.Now(), throughLink)
			if tc.change != nil {
				tc.change()
			}
			if got := l.unchanged(); got != tc.trusted {
				t.Errorf("unchanged = %v, want %v", got, tc.trusted)
			}
			if l.flatSeen != tc.flatSeen {
				t.Errorf("flatSeen = %v, want %v", l.flatSeen, tc.flatSeen)
			}
		})
	}
}

// A periodic scan of a watched directory does not list it again when
// every change since the last listing raised an event: files created
// between scans are opened by their events, and the listing of thousands
// of names is not made every scan_interval. A scan an event asks for
// (a rename) lists. Events vouch once a listing was taken with the watch
// in place, or once the directory is seen unchanged since the first
// listing (taken before the watch was added).
func TestPeriodicScanTrustsEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		old    bool // the directory unchanged for an hour when the input starts
		link   bool // the glob names the directory through a symbolic link
		listed bool // the new files have the directory listed again
	}{
		{name: "directory changed at start"},
		{name: "directory unchanged since before start", old: true},
		// A link repointed raises no event: the directory's time is
		// compared at each scan, and moves with each new file.
		{name: "directory through a link", old: true, link: true, listed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := realTempDir(t)
			writeLines(t, filepath.Join(dir, "first.log"), 0, 1)
			if tc.old {
				old := time.Now().Add(-time.Hour)
				os.Chtimes(dir, old, old)
			}
			globDir := dir
			if tc.link {
				globDir = filepath.Join(t.TempDir(), "current")
				if err := os.Symlink(dir, globDir); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(globDir)
			cfg.ScanInterval = 10 * time.Millisecond
			s := &sink{}
			in, stop := runInput(t, cfg, openStore(t, t.TempDir()), 8<<20, s)
			defer stop()
			waitFor(t, "directory watched", func() bool { w, p := in.Dirs(); return w == 1 && p == 0 })
			waitFor(t, "first.log read", func() bool { return s.count() == 1 })
			// Settled: periodic scans that do not list (a directory's
			// time too recent to be trusted has it listed again).
			waitFor(t, "two periodic scans in a row without a listing", func() bool {
				listed, scans := in.listings.Load(), in.periodicScans.Load()
				waitFor(t, "two periodic scans", func() bool { return in.periodicScans.Load() >= scans+2 })
				return in.listings.Load() == listed
			})
			listed := in.listings.Load()
			for i := range 20 {
				// A new file changes the directory's time: without
				// events to vouch for it, the next scan lists the
				// directory again.
				writeLines(t, filepath.Join(dir, fmt.Sprintf("f%02d.log", i)), 0, 1)
				waitFor(t, "the new file read", func() bool { return s.count() == i+2 })
				scans := in.periodicScans.Load()
				waitFor(t, "two periodic scans", func() bool { return in.periodicScans.Load() >= scans+2 })
			}
			switch n := in.listings.Load() - listed; {
			case tc.listed && n == 0:
				t.Errorf("no listing in 20 changes of a directory named through a link; want one at least")
			case !tc.listed && n > 0:
				t.Errorf("%d listings in 20 changes of a watched directory; want 0 (its events tell)", n)
			}
			if err := os.Rename(filepath.Join(dir, "f00.log"), filepath.Join(dir, "f00.log.1")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a listing after a rename", func() bool { return in.listings.Load() > listed })
		})
	}
}

// A glob through a link a deploy repoints (current -> releases/N): the
// link moving raises no event, and the file now at the same path is found
// by the next scan, which looks at the names of such a directory's files
// as where no events come (the directory's time tells it to list).
func TestRepointedDirectoryLink(t *testing.T) {
	root := realTempDir(t)
	rel1, rel2 := filepath.Join(root, "rel1"), filepath.Join(root, "rel2")
	for _, d := range []string{rel1, rel2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(root, "current")
	if err := os.Symlink(rel1, current); err != nil {
		t.Fatal(err)
	}
	writeLines(t, filepath.Join(rel1, "app.log"), 0, 1)
	cfg := testConfig(current)
	cfg.PollInterval = time.Second // parked files poll minutes apart: only a scan finds the new file
	s := &sink{}
	in, stop := runInput(t, cfg, openStore(t, t.TempDir()), 8<<20, s)
	defer stop()
	waitFor(t, "the first release's line", func() bool { return s.count() == 1 })
	waitFor(t, "parked", func() bool { return parkedCount(in) == 1 })

	writeLines(t, filepath.Join(rel2, "app.log"), 1, 1)
	next := filepath.Join(root, "next")
	if err := os.Symlink(rel2, next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, current); err != nil { // the deploy: current -> rel2
		t.Fatal(err)
	}
	writeLines(t, filepath.Join(rel2, "app.log"), 2, 1)
	waitFor(t, "the second release's lines", func() bool { return s.count() == 3 })
}
