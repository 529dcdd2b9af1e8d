package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

// TestCopyTruncateGlobMatchesCopies rotates by copytruncate while the glob
// matches the copies too (app.log*): each copy holds lines already read
// from the original and must not be read again from its start. Before
// copies were recognised (held while being written, recorded as read when
// the original was read past their end), most lines arrived twice.
func TestCopyTruncateGlobMatchesCopies(t *testing.T) {
	e := testenv.New(t)
	dir := filepath.Join(e.Logs, "ct")
	e.Config.Inputs = []testenv.Input{{ID: "ct", Paths: []string{filepath.Join(dir, "*.log*")},
		ScanInterval: time.Second, PollInterval: 50 * time.Millisecond, CloseInactive: 2 * time.Second}}
	s := &testenv.Stream{Tag: "ct", Dir: dir, Name: "app.log", Method: testenv.CopyTruncate, CopyPause: 20 * time.Millisecond}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	e.Streams = append(e.Streams, s)
	e.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc := &testenv.Scenario{Streams: e.Streams, Rate: 5000, RotateEvery: 2 * time.Second}
	if err := sc.Run(ctx); err != nil {
		t.Fatal(err)
	}
	e.WaitDelivered()
	e.Stop()
	// Missing lines and corruption fail the check outright; duplicates are
	// allowed only for a rare race, far below one rotation's worth.
	e.Check(s.Written() / 100)
}
