package file

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/logagent/logagent/checkpoint"
)

func TestStartOffset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	if err := os.WriteFile(path, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-100 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name        string
		startAtEnd  bool
		ignoreOlder time.Duration
		committed   int64
		found       bool
		firstScan   bool
		want        int64
		why         StartReason
	}{
		{name: "new", want: 0, why: StartNew},
		{name: "resumed", committed: 40, found: true, want: 40, why: StartResume},
		{name: "resumed at its end", committed: 100, found: true, firstScan: true, startAtEnd: true, want: 100, why: StartResume},
		{name: "shorter than its entry", committed: 140, found: true, want: 0, why: StartShorter},
		{name: "start_at end, first scan", startAtEnd: true, firstScan: true, want: 100, why: StartAtEnd},
		{name: "start_at end, later scan", startAtEnd: true, want: 0, why: StartNew},
		{name: "older than ignore_older", ignoreOlder: time.Hour, want: 100, why: StartTooOld},
		{name: "old but known", ignoreOlder: time.Hour, committed: 10, found: true, want: 10, why: StartResume},
		{name: "younger than ignore_older", ignoreOlder: 200 * time.Hour, want: 0, why: StartNew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{StartAtEnd: tt.startAtEnd, IgnoreOlder: tt.ignoreOlder}
			got, why := startOffset(cfg, fi, tt.committed, tt.found, tt.firstScan)
			if got != tt.want || why != tt.why {
				t.Errorf("startOffset = %d (%v), want %d (%v)", got, why, tt.want, tt.why)
			}
		})
	}
}

// The plan of --dry-run lists a file once, under the name the input reads
// it by, however many names the globs match of it (a followed link, a hard
// link), and resumes it from the entry the input resumes it from.
func TestPlanAgreesWithInput(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	target := filepath.Join(dir, "b.log")
	writeLines(t, target, 0, 100)
	for _, link := range []string{"a.log", "c.log"} { // one sorted before its target, one after
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(target, filepath.Join(dir, "d.log")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.FollowSymlinks = true

	var read []PlannedFile
	for _, pf := range Plan(cfg, nil) {
		if pf.Err != nil {
			t.Fatalf("plan: %s: %v", pf.Path, pf.Err)
		}
		read = append(read, pf)
	}
	want := []string{filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log"), filepath.Join(dir, "d.log")}
	if len(read) != 1 || read[0].Path != filepath.Join(dir, "a.log") || !slices.Equal(read[0].Also, want) {
		t.Fatalf("plan lists %+v, want a.log once, also matched as %v", read, want)
	}

	s := &sink{}
	store := openStore(t, data)
	in, stop := runInput(t, cfg, store, 8<<20, s)
	waitFor(t, "100 lines", func() bool { return s.count() >= 100 })
	files := in.Files()
	if len(files) != 1 || files[0].Path != read[0].Path {
		t.Fatalf("the input reads %+v; the plan said %s", files, read[0].Path)
	}
	stop()
	if s.count() != 100 {
		t.Errorf("read %d lines, want 100", s.count())
	}

	// Two entries of the file, of two fingerprint lengths (the agent died
	// before the longer one's reached disk): the latest, the highest
	// offset, is resumed; listed first or not.
	f, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, _, err := identify(f, cfg.FingerprintBytes)
	if err != nil {
		t.Fatal(err)
	}
	short := id
	short.FingerprintLen = 10
	if short.Fingerprint, _, err = fingerprint(f, 10); err != nil {
		t.Fatal(err)
	}
	entries := []checkpoint.Entry{
		{Input: cfg.ID, ID: short, Path: target, Offset: 500},
		{Input: cfg.ID, ID: id, Path: target, Offset: 900},
	}
	for _, es := range [][]checkpoint.Entry{entries, {entries[1], entries[0]}} {
		pf := Plan(cfg, es)
		if len(pf) != 1 || pf[0].Start != 900 || pf[0].Reason != StartResume {
			t.Errorf("plan with entries %v: %+v, want start 900 (resume)", es, pf)
		}
		best, found, older, _ := matchEntries(f, id.Dev, id.Ino, es)
		if !found || best.Offset != 900 || len(older) != 1 {
			t.Errorf("matchEntries(%v) = %v %v, older %v", es, best, found, older)
		}
	}
}
