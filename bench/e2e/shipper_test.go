package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The sink samples a shipper once, the moment the count reaches the
// target, however the lines arrive in reads.
func TestCountedFiresOnceAtTarget(t *testing.T) {
	for _, reads := range [][]int64{{10}, {4, 7, 5}, {9, 1, 1}, {3, 3, 3, 3}} {
		fired := 0
		var at int64
		o := &outputReader{target: 10}
		o.onTarget = func() { fired++; at = o.lines.Load() }
		for _, n := range reads {
			o.counted(n)
		}
		if fired != 1 || at < 10 {
			t.Errorf("reads %v: onTarget called %d times, at %d lines; want once, at 10 or more", reads, fired, at)
		}
	}
}

func appendLines(t *testing.T, path string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The backfill baseline does a shipper's job: it is still following when
// the sink has counted every line, and it delivers lines written after.
func TestTailBaselineKeepsFollowing(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.log"), filepath.Join(dir, "out", "tail.out")
	appendLines(t, in, 0, 1000)
	p, err := startPipeline(out, "tail", "-F", "-c", "+1", in)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	u, err := untilLines(p, out, 1000, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if u.peak <= 0 || u.at.IsZero() {
		t.Errorf("sample at the last line: %+v; want a peak RSS and a time", u)
	}
	appendLines(t, in, 1000, 500)
	if _, err := untilLines(p, out, 1500, 2*time.Minute); err != nil {
		t.Fatalf("lines written after the first count: %v", err)
	}
}

func TestProcFigures(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pid := os.Getpid()
	if n := openFilesUnder(pid, dir); n != 1 {
		t.Errorf("openFilesUnder: %d, want 1", n)
	}
	if w := procWakeups(pid); w <= 0 {
		t.Errorf("procWakeups: %d, want > 0", w)
	}
	if cur, peak := procRSS(pid); cur <= 0 || peak < cur {
		t.Errorf("procRSS: %d, %d", cur, peak)
	}
}
