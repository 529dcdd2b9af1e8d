package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/internal/testenv"
)

// filterKept says which lines of stream f the filters below ship: include
// keeps f's lines (not the DEBUG lines, from noiseFrom to noiseTo), exclude
// drops the odd ones and those ending in 0.
func filterKept(seq int64) bool {
	return seq%2 == 0 && seq%10 != 0 && (seq < noiseFrom || seq >= noiseTo)
}

const noiseFrom, noiseTo = 3000, 3200

// Issue 18: include_lines and exclude_lines. Dropped lines never arrive,
// kept ones all arrive exactly once, and the checkpoint moves past dropped
// lines, even past a write of nothing but dropped lines at the end of the
// file: a restart resends nothing.
func TestLineFilters(t *testing.T) {
	e := testenv.New(t)
	e.Config.Inputs[0].IncludeLines = []string{`^f `}
	e.Config.Inputs[0].ExcludeLines = []string{`^f \d*[13579] `, `^f \d*0 `}
	s := e.Stream("f", "app.log", testenv.NoRotation)
	c := e.Checker()
	// waitKept waits for every kept line below n.
	waitKept := func(n int64) {
		t.Helper()
		next := int64(0)
		if !testenv.WaitUntil(2*time.Minute, func() bool {
			c.Poll()
			for ; next < n; next++ {
				if filterKept(next) && !c.Has("f", next) {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("kept line %d not delivered", next)
		}
	}
	noise := func(seq int64) string { return "DEBUG noise " + strconv.FormatInt(seq, 10) }

	// committedAtEnd waits until the checkpoint (snapshot and journal, as
	// a restart reads them) holds the end of the file.
	committedAtEnd := func() {
		t.Helper()
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		var entries []checkpoint.Entry
		if !testenv.WaitUntil(2*time.Minute, func() bool {
			entries, err = checkpoint.Load(filepath.Join(e.Data, checkpoint.FileName))
			return err == nil && len(entries) == 1 && entries[0].Offset == fi.Size()
		}) {
			t.Fatalf("checkpoint %+v (%v), want the offset at the end of the file (%d): dropped lines are committed past", entries, err, fi.Size())
		}
	}

	e.Start()
	writeAll(t, []*testenv.Stream{s}, noiseFrom)
	waitKept(noiseFrom)
	committedAtEnd()
	// Once the file is read to its end, a write of nothing but dropped
	// lines: chunks of which every message is dropped.
	if err := s.WriteWith(noiseTo-noiseFrom, noise); err != nil {
		t.Fatal(err)
	}
	committedAtEnd()
	e.Stop()
	committedAtEnd()

	e.Start()
	writeAll(t, []*testenv.Stream{s}, 1000)
	waitKept(s.Written())
	e.Stop()

	res, stray, err := c.Results()
	if err != nil {
		t.Fatal(err)
	}
	if stray != 0 {
		t.Errorf("%d lines of no stream arrived (the DEBUG lines?):\n%s", stray, c.Samples())
	}
	for seq := int64(0); seq < s.Written(); seq++ {
		if !filterKept(seq) && c.Has("f", seq) {
			t.Fatalf("dropped line %d arrived", seq)
		}
	}
	r := res[0]
	kept := int64(0)
	for seq := int64(0); seq < s.Written(); seq++ {
		if filterKept(seq) {
			kept++
		}
	}
	if r.Delivered != kept || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Corrupted != 0 {
		t.Errorf("%v: want %d delivered once each", r, kept)
	}
}
