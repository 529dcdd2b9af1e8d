package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/outputs/file"
	"github.com/logagent/logagent/outputs/outputtest"
)

// TestOneFileFailingRepeatsNothing runs the file output, writing each
// category to a file of its own, under its runner while one category's file
// cannot be written: the runner retries, and the other category's lines are
// in their file once each, however many retries there were.
func TestOneFileFailingRepeatsNothing(t *testing.T) {
	dir := t.TempDir()
	fc := file.DefaultConfig()
	fc.Path = filepath.Join(dir, "{category}", "out.log")
	if err := fc.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := file.New("file", fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A regular file where the directory of the "bad" category's file
	// goes: that file cannot be opened until it is removed.
	blocker := filepath.Join(dir, "bad")
	if err := os.WriteFile(blocker, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := OutputConfig{ID: "file"}
	cfg.setDefaults()
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 2*time.Millisecond
	r := startRunner(t, cfg, out)

	good := &logagent.Source{Input: "t", Category: "good"}
	bad := &logagent.Source{Input: "t", Category: "bad"}
	const n = 100
	c := &logagent.Chunk{CaughtUp: true}
	for k := range n {
		src := good
		if k%2 == 1 {
			src = bad
		}
		c.Messages = append(c.Messages, logagent.Message{Body: fmt.Appendf(nil, "seq=%08d", k), Source: src})
	}
	var acked atomic.Int64
	c.OnDone = func() { acked.Add(n) }
	c.Expect(1)
	r.queue <- c

	// Retries while the bad file cannot be written, then it can.
	if !testenv.WaitUntil(outputtest.Hang, func() bool { return r.metrics.Retries.Load() >= 5 }) {
		t.Fatalf("%d retries after %s, want 5", r.metrics.Retries.Load(), outputtest.Hang)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, &acked, n, "the batch")

	for _, f := range []struct {
		category string
		first    int
	}{{"good", 0}, {"bad", 1}} {
		data, err := os.ReadFile(filepath.Join(dir, f.category, "out.log"))
		if err != nil {
			t.Fatal(err)
		}
		for k := f.first; k < n; k += 2 {
			if got := bytes.Count(data, fmt.Appendf(nil, "seq=%08d\n", k)); got != 1 {
				t.Errorf("%s: line %d written %d times, want once", f.category, k, got)
			}
		}
		if lines := bytes.Count(data, []byte("\n")); lines != n/2 {
			t.Errorf("%s: %d lines, want %d", f.category, lines, n/2)
		}
	}
}
