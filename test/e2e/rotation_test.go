package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
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

// Without inotify (as where no instance can be had), every rotation method
// at once, with and without SIGKILLs: nothing is lost. Files live about
// half a second, well under scan_interval: the directory is polled at
// poll_interval, and a file created and renamed out of the glob between
// two looks is found all the same. Before directories were polled, a
// rename rotation whose new file appeared after the rescan the rename
// caused was not opened until scan_interval later, when it had been
// renamed out of the glob: never.
func TestRotationWithoutInotify(t *testing.T) {
	for _, kills := range []int{0, 3} {
		t.Run(fmt.Sprintf("kills=%d", kills), func(t *testing.T) {
			e := testenv.New(t)
			e.Polling = true
			e.Config.Inputs[0].ScanInterval = 10 * time.Second
			e.Config.Inputs[0].PollInterval = 100 * time.Millisecond
			// killMu keeps a kill from coming while a file is being
			// deleted: a file removed while no process holds it open,
			// or whose lines die with the agent, is lost to anyone.
			var killMu sync.Mutex
			var pending []int64 // last lines of deleted files not yet seen delivered
			var deleteTag string
			for _, m := range testenv.Methods {
				s := &testenv.Stream{Tag: string(m), Dir: e.Logs, Name: string(m) + ".log", Method: m,
					CopyPause: 20 * time.Millisecond,
					BeforeDelete: func(path string) {
						killMu.Lock()
						if !testenv.WaitUntil(time.Minute, func() bool {
							pid := e.Agent.PID()
							return pid != 0 && testenv.HasOpen(pid, path)
						}) {
							t.Errorf("agent did not open %s within a minute", path)
						}
					},
					AfterDelete: func(path string, last int64) {
						pending = append(pending, last)
						killMu.Unlock()
					}}
				if m == testenv.DeleteRecreate {
					deleteTag = s.Tag
				}
				if err := s.Open(); err != nil {
					t.Fatal(err)
				}
				e.Streams = append(e.Streams, s)
			}
			check := e.Checker()
			e.Start()
			e.WaitReading()
			const run = 6 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), run)
			defer cancel()
			sc := &testenv.Scenario{Streams: e.Streams, Rate: 2000, RotateEvery: 500 * time.Millisecond}
			errc := make(chan error, 1)
			go func() { errc <- sc.Run(ctx) }()
			for k := range kills {
				time.Sleep(run / time.Duration(kills+1))
				killMu.Lock()
				for _, last := range pending {
					if !testenv.WaitUntil(time.Minute, func() bool { check.Poll(); return check.Has(deleteTag, last) }) {
						t.Errorf("deleted file (last line %d) not delivered within a minute", last)
					}
				}
				pending = nil
				e.Kill()
				if k%2 == 1 {
					time.Sleep(300 * time.Millisecond) // rotations while it is down
				}
				e.Start()
				killMu.Unlock()
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			e.WaitDelivered()
			e.Stop()
			if n := e.Agent.LogCount("polling"); n == 0 {
				t.Error("the agent did not say it polls")
			}
			// Duplicates: what was in flight at each kill.
			e.Check(int64(kills) * 2000)
		})
	}
}
