// Package e2e runs the logagent binary on real files and checks the file
// output line by line (internal/testenv). Nothing here asserts on time.
package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// writeAll writes n lines to every stream, in writes of up to 50 lines.
func writeAll(t *testing.T, streams []*testenv.Stream, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(50, n-done)
		for _, s := range streams {
			if err := s.Write(k); err != nil {
				t.Fatal(err)
			}
		}
		done += k
	}
}

func fourStreams(e *testenv.Env) []*testenv.Stream {
	var out []*testenv.Stream
	for i := 0; i < 4; i++ {
		out = append(out, e.Stream(fmt.Sprintf("f%d", i), fmt.Sprintf("app%d.log", i), testenv.NoRotation))
	}
	return out
}

// Issue 2: 100,000 lines over several files, SIGTERM, restart, more lines:
// every line arrives exactly once, in order per file.
func TestRestartDeliversExactlyOnce(t *testing.T) {
	e := testenv.New(t)
	streams := fourStreams(e)
	e.Start()
	writeAll(t, streams, 25_000) // 100,000 lines
	e.WaitDelivered()
	e.Stop()

	writeAll(t, streams, 5_000) // written while stopped
	e.Start()
	writeAll(t, streams, 5_000)
	e.WaitDelivered()
	e.Stop()
	e.Check(0)
}

// Issue 2: SIGTERM while the agent is still catching up: what was read but
// not delivered is delivered at the next start, nothing twice.
func TestStopWhileBusyDeliversExactlyOnce(t *testing.T) {
	e := testenv.New(t)
	streams := fourStreams(e)
	writeAll(t, streams, 25_000)
	e.Start()
	writeAll(t, streams, 25_000)
	e.Stop() // at once, most likely in the middle of the backlog
	e.Start()
	writeAll(t, streams, 1_000)
	e.WaitDelivered()
	e.Stop()
	e.Check(0)
}

// Issue 2: kill -9 in the middle: nothing lost; duplicates only of what
// was in flight.
func TestKillRestartLosesNothing(t *testing.T) {
	e := testenv.New(t)
	e.Config.MaxInflightBytes = "1MiB"
	streams := fourStreams(e)
	e.Start()
	const kills = 3
	for i := 0; i < kills; i++ {
		writeAll(t, streams, 25_000)
		e.Kill()
		writeAll(t, streams, 1_000)
		e.Start()
	}
	writeAll(t, streams, 1_000)
	e.WaitDelivered()
	e.Stop()
	// Duplicates are what was in flight at each kill (offsets reach the
	// journal within milliseconds of their acknowledgement): at most
	// max_inflight_bytes of lines of at least 30 bytes.
	res := e.Check(kills * (1 << 20) / 30)
	var dup int64
	for _, r := range res {
		dup += r.Duplicated
	}
	t.Logf("duplicated after %d kills: %d lines of %d", kills, dup, 4*(kills*26_000+1_000))
}

// A file's identity is on disk from the moment it is opened, before
// anything of it is delivered: the agent is killed after it delivered
// part of a new file and before any offset of it was committed
// (checkpoint_interval of an hour), the file is renamed out of the glob
// while the agent is down, and the restarted agent finds it by identity
// and reads the rest. Before, nothing knew the file after the restart.
func TestKillAfterOpenRenamedOutOfGlob(t *testing.T) {
	for _, polling := range []bool{false, true} {
		t.Run(fmt.Sprintf("polling=%v", polling), func(t *testing.T) {
			e := testenv.New(t)
			e.Polling = polling
			e.Config.CheckpointInterval = time.Hour
			e.Start()
			if !testenv.WaitUntil(time.Minute, func() bool { return strings.Contains(e.Agent.Log(), "logagent started") }) {
				t.Fatal("agent did not start")
			}
			// The writer goes on writing to the renamed file.
			s := &testenv.Stream{Tag: "new", Dir: e.Logs, Name: "app0.log", Method: testenv.RenameWriteAfter, WriteAfter: time.Hour}
			if err := s.Open(); err != nil {
				t.Fatal(err)
			}
			e.Streams = append(e.Streams, s)
			s.Write(1000)
			c := e.Checker()
			if !testenv.WaitUntil(time.Minute, func() bool { c.Poll(); return c.Has("new", 0) }) {
				t.Fatal("no line of the new file delivered")
			}
			e.Kill()
			if err := s.Rotate(); err != nil { // app0.log → app0.log.1, out of the glob
				t.Fatal(err)
			}
			s.Write(1000) // to app0.log.1
			e.Start()
			e.WaitDelivered()
			e.Stop()
			e.Check(1000) // the lines delivered before the kill come again
		})
	}
}
