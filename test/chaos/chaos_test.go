// Package chaos runs the agent through everything at once: a writer at
// 50,000 lines/s over ten files, each rotated every few seconds by one of
// the rotation methods, while the agent is killed with SIGKILL and
// restarted at random moments and its output fails for seconds at a time.
// The checker then requires, for every file, 0 missing and 0 corrupted
// lines, except the lines a copytruncate rotation loses by itself (written
// between the copy and the truncation), which it counts separately.
//
// It runs for LOGAGENT_CHAOS_DURATION (default 40s, 15s with -short), so
// that `make test` runs it; set a longer duration for a soak.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logagent/logagent/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func duration(t *testing.T) time.Duration {
	if s := os.Getenv("LOGAGENT_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("LOGAGENT_CHAOS_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 15 * time.Second
	}
	return 40 * time.Second
}

// hang bounds each wait for the agent. It fails a hung test only: the
// writers keep their rate however slow the machine, so a starved agent
// falls behind them, and its backlog may take minutes to deliver.
const hang = 3 * time.Minute

// dupPerKill bounds the lines a SIGKILL has delivered again: what was in
// flight, read but not acknowledged, which is what the writers wrote in
// the last fraction of a second while the agent keeps up. 10,000 lines is
// a fifth of a second at 50,000 lines/s. Offsets written once a second
// repeated up to a second of delivery more, 25,000 lines a kill on
// average.
const dupPerKill = 10_000

// chaos is the state shared by the controller and the delete rotations.
type chaos struct {
	t     *testing.T
	e     *testenv.Env
	check *testenv.Checker

	// killMu is held while a file is being deleted and while the agent is
	// killed: a file deleted while no process holds it open is gone, and
	// a deleted file whose lines were not delivered is gone if the agent
	// dies. Neither is a loss the agent could prevent, so the test does not
	// create those situations; everything else is fair game.
	killMu  sync.Mutex
	pending []deleted

	kills, stops, outages int
}

type deleted struct {
	tag  string
	last int64
}

// TestChaos runs half its time with inotify and half without (the agent
// polls, as where no inotify instance can be had).
func TestChaos(t *testing.T) {
	d := duration(t) / 2
	for _, polling := range []bool{false, true} {
		t.Run(fmt.Sprintf("polling=%v", polling), func(t *testing.T) { runChaos(t, d, polling) })
	}
}

func runChaos(t *testing.T, d time.Duration, polling bool) {
	e := testenv.New(t)
	e.Polling = polling
	e.Config.LogLevel = "info"
	e.Config.MaxInflightBytes = "4MiB"
	e.Config.MaxBackoff = 300 * time.Millisecond
	dirA, dirB := filepath.Join(e.Logs, "a"), filepath.Join(e.Logs, "b")
	e.Config.Inputs = []testenv.Input{
		// Rotated names (x.log.1) do not match: they are followed by
		// descriptor, and found by identity after a restart.
		{ID: "a", Paths: []string{filepath.Join(dirA, "*.log")}, Exclude: []string{"*.gz"},
			ScanInterval: time.Second, PollInterval: 50 * time.Millisecond, CloseInactive: 2 * time.Second},
		// Rotated names match too: each file must be read once, by identity.
		{ID: "b", Paths: []string{filepath.Join(dirB, "*.log*")}, Exclude: []string{"*.gz"},
			ScanInterval: time.Second, PollInterval: 50 * time.Millisecond, CloseInactive: 2 * time.Second},
	}
	c := &chaos{t: t, e: e}
	for _, dir := range []string{dirA, dirB} {
		for _, m := range testenv.Methods {
			s := &testenv.Stream{Tag: filepath.Base(dir) + "-" + string(m), Dir: dir, Name: string(m) + ".log", Method: m,
				BeforeDelete: c.beforeDelete, AfterDelete: c.afterDelete, CopyPause: 20 * time.Millisecond}
			if err := s.Open(); err != nil {
				t.Fatal(err)
			}
			e.Streams = append(e.Streams, s)
		}
	}
	c.check = e.Checker()
	sc := &testenv.Scenario{Streams: e.Streams, Rate: 5000, RotateEvery: 3 * time.Second}

	e.Start()
	e.WaitReading()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeErr = sc.Run(ctx)
	}()
	start := time.Now()
	c.control(ctx)
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if !e.Agent.Running() {
		e.Start()
	}
	testenv.WaitUntil(hang, c.check.Delivered)
	e.Stop()

	res, stray, err := c.check.Results()
	if err != nil {
		t.Fatal(err)
	}
	var written, window, dup int64
	for _, r := range res {
		t.Log(r)
		written += r.Written
		window += r.Window
		dup += r.Duplicated
		if r.Missing != 0 || r.Corrupted != 0 {
			t.Errorf("%s: %d missing, %d corrupted; want 0 and 0 (e.g. missing %v)", r.Tag, r.Missing, r.Corrupted, c.check.MissingSample(r.Tag, 10))
		}
		if r.Method != testenv.CopyTruncate && r.Window != 0 {
			t.Errorf("%s: window %d outside copytruncate", r.Tag, r.Window)
		}
	}
	if stray != 0 {
		t.Errorf("%d corrupted lines of no stream:\n%s", stray, c.check.Samples())
	}
	t.Logf("%s: %d lines written (%.0f/s), %d SIGKILLs, %d SIGTERMs, %d output outages; copytruncate window %d lines; %d duplicated (%.2f%%)",
		time.Since(start).Round(time.Second), written, float64(written)/d.Seconds(), c.kills, c.stops, c.outages, window,
		dup, 100*float64(dup)/float64(max(written, 1)))
	// A kill repeats what was in flight, no more: offsets reach the
	// journal within milliseconds of their acknowledgement. And a copy
	// the agent could not pair with its truncated file, which it logs, is
	// read again from its start where the glob matches it (input b).
	unpaired := unpairedCopyLines(e.Agent.Log())
	if bound := int64(c.kills)*dupPerKill + unpaired; dup > bound {
		t.Errorf("%d lines duplicated after %d SIGKILLs and copies of %d lines unpaired; want at most %d (%d a kill)", dup, c.kills, unpaired, bound, dupPerKill)
	}
}

// unpairedLog matches the agent's warning that it found no copy of a
// truncated file of input b (see unpairedCopyLines).
var unpairedLog = regexp.MustCompile(`msg="truncated file has no copy in its directory[^"]*" input=b .*read_offset=(\d+)`)

// unpairedCopyLines bounds the lines read twice because the agent found no
// copy of a truncated file: it does when it is more than a rotation
// behind the writer, which depends on the machine's speed. The copy, whose
// name input b's glob matches, is then read as a new file, from its start:
// the read_offset bytes already read from the original come again, a line
// being at least minLineBytes.
func unpairedCopyLines(log string) int64 {
	const minLineBytes = 34 // "b-copytruncate 0 " and 16 bytes of padding, newline
	var n int64
	for _, m := range unpairedLog.FindAllStringSubmatch(log, -1) {
		off, _ := strconv.ParseInt(m[1], 10, 64)
		n += off / minLineBytes
	}
	return n
}

// control kills, stops and starves the agent at random moments until ctx
// is done.
func (c *chaos) control(ctx context.Context) {
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(1000+rand.IntN(3000)) * time.Millisecond):
		}
		// The first two are kills: every run has some.
		switch r := rand.IntN(10); {
		case n < 2 || r < 5:
			c.kill(ctx)
		case r < 6:
			c.stop()
		default:
			c.outage(ctx, time.Duration(1000+rand.IntN(3000))*time.Millisecond)
		}
	}
}

// kill SIGKILLs the agent and restarts it after up to a second, once the
// deleted files' lines are delivered (see killMu). How long that takes
// depends on the machine (the writers keep their rate, a starved agent
// falls behind): a kill still waiting when the run ends is skipped, and a
// line never delivered is found missing at the end.
func (c *chaos) kill(ctx context.Context) {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	for _, p := range c.pending {
		for c.check.Poll(); !c.check.Has(p.tag, p.last); c.check.Poll() {
			select {
			case <-ctx.Done():
				c.t.Logf("kill skipped: the run ended before %s's deleted file (last line %d) was delivered", p.tag, p.last)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	c.pending = nil
	c.e.Kill()
	c.kills++
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
	c.e.Start()
}

// stop stops the agent with SIGTERM and restarts it.
func (c *chaos) stop() {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	c.e.Stop()
	c.stops++
	c.e.Start()
}

// outage makes every write of the agent beyond the current output size
// fail (EFBIG, through RLIMIT_FSIZE) for d, as a full disk would.
func (c *chaos) outage(ctx context.Context, d time.Duration) {
	pid := c.e.Agent.PID()
	if pid == 0 {
		return
	}
	var size int64
	files, _ := filepath.Glob(filepath.Join(c.e.Out, "*.log"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size = max(size, fi.Size())
		}
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: uint64(size), Max: unix.RLIM_INFINITY}, &old); err != nil {
		c.t.Logf("prlimit: %v (no outage)", err)
		return
	}
	c.outages++
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil); err != nil && c.e.Agent.PID() == pid {
		c.t.Errorf("prlimit restore: %v", err)
	}
}

// beforeDelete waits until the agent holds path open, and keeps it from
// being killed until the file's lines are delivered (afterDelete).
func (c *chaos) beforeDelete(path string) {
	c.killMu.Lock()
	if !testenv.WaitUntil(hang, func() bool {
		pid := c.e.Agent.PID()
		return pid != 0 && testenv.HasOpen(pid, path)
	}) {
		c.t.Errorf("agent did not open %s within %s", path, hang)
	}
}

func (c *chaos) afterDelete(path string, last int64) {
	c.pending = append(c.pending, deleted{tag: tagOf(c.e.Streams, path), last: last})
	c.killMu.Unlock()
}

func tagOf(streams []*testenv.Stream, path string) string {
	for _, s := range streams {
		if s.Dir == filepath.Dir(path) && s.Name == filepath.Base(path) {
			return s.Tag
		}
	}
	panic(fmt.Sprintf("no stream writes %s", path))
}
