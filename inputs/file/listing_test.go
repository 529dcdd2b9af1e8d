package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDirListing(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	app := filepath.Join(sub, "app.log")
	os.WriteFile(app, []byte("a\n"), 0o644)
	old := time.Now().Add(-time.Hour)
	settle := func() {
		os.Chtimes(dir, old, old)
		os.Chtimes(sub, old, old)
	}
	for _, tc := range []struct {
		name    string
		globs   []string
		change  func()
		recent  bool // the directory changed just before the record
		trusted bool // unchanged() after the change
	}{
		{name: "flat glob, nothing changed", globs: []string{dir + "/*.log"}, trusted: true},
		{name: "flat glob, file created", globs: []string{dir + "/*.log"},
			change: func() { os.WriteFile(filepath.Join(dir, "new.log"), nil, 0o644) }},
		{name: "flat glob, file renamed", globs: []string{dir + "/*.log"},
			change: func() { os.Rename(filepath.Join(dir, "new.log"), filepath.Join(dir, "new.log.1")) }},
		{name: "flat glob, file removed", globs: []string{dir + "/*.log"},
			change: func() { os.Remove(filepath.Join(dir, "new.log.1")) }},
		{name: "file appended to: the listing holds", globs: []string{dir + "/*.log", sub + "/*.log"},
			change: func() {
				f, _ := os.OpenFile(app, os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("b\n")
				f.Close()
			}, trusted: true},
		{name: "wildcard in a directory", globs: []string{dir + "/*/a.log"}},
		{name: "double star", globs: []string{dir + "/**/*.log"}},
		{name: "missing directory", globs: []string{dir + "/nope/*.log"}},
		{name: "changed within the racy window", globs: []string{dir + "/*.log"}, recent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settle()
			if tc.recent {
				now := time.Now()
				os.Chtimes(dir, now, now)
			}
			var l dirListing
			l.record(tc.globs, time.Now())
			if tc.change != nil {
				tc.change()
			}
			if got := l.unchanged(); got != tc.trusted {
				t.Errorf("unchanged = %v, want %v", got, tc.trusted)
			}
		})
	}
}
