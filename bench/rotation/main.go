// Command rotation runs one rotation scenario per method through logagent
// and through github.com/nxadm/tail (Follow, ReOpen, CompleteLines), and
// prints, per method, the lines written, lost and duplicated by each. It is
// the number behind "why not nxadm/tail" in issue 3; nxadm/tail is only a
// baseline here.
//
//	go run ./bench/rotation [-rotations 20] [-lines 5000] [-methods rename,copytruncate] [-inotify=false] [-kills 3]
//
// The scenario: a writer at full speed writes -lines lines, rotates the file
// by the method, and does that -rotations times. rename-write-after keeps
// writing to the renamed file for -write-after before reopening; copytruncate
// pauses -copy-pause between its copy and its truncation (the lines written
// meanwhile are lost by the rotation itself and counted apart). Then both
// readers get up to -settle of quiet to catch up. -write-after must stay
// below the time between rotations (lines/rate): a file created and
// renamed to a name no glob matches before any reader saw it cannot be
// read by anyone. -inotify=false runs the agent without inotify (polling,
// as where no inotify instance can be had); -kills N kills it with SIGKILL
// N times while the writer runs, evenly spread, and restarts it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nxadm/tail"

	"github.com/logagent/logagent/internal/testenv"
)

func main() {
	rotations := flag.Int("rotations", 20, "rotations per method")
	lines := flag.Int("lines", 5000, "lines written between two rotations")
	methods := flag.String("methods", "", "comma-separated methods (default: all)")
	writeAfter := flag.Duration("write-after", 50*time.Millisecond, "rename-write-after: how long the renamed file is still written")
	copyPause := flag.Duration("copy-pause", 0, "copytruncate: pause between copy and truncation")
	rate := flag.Int("rate", 50000, "lines per second written")
	settle := flag.Duration("settle", 10*time.Second, "how long a reader may stay without progress before its count is final")
	inotify := flag.Bool("inotify", true, "let the agent use inotify (false: it polls)")
	withTail := flag.Bool("tail", true, "run nxadm/tail too")
	kills := flag.Int("kills", 0, "SIGKILLs of the agent while the writer runs (nxadm/tail is not killed)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "bench-rotation-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	bin, err := testenv.Build(dir)
	if err != nil {
		fail(err)
	}
	list := testenv.Methods
	if *methods != "" {
		list = nil
		for _, m := range strings.Split(*methods, ",") {
			list = append(list, testenv.Method(m))
		}
	}
	sc := scenario{rate: *rate, rotations: *rotations, lines: *lines, writeAfter: *writeAfter, copyPause: *copyPause, settle: *settle,
		inotify: *inotify, kills: *kills}
	fmt.Printf("%d rotations of %d lines per method, writer at %d lines/s; logagent inotify=%v, %d SIGKILLs\n\n",
		sc.rotations, sc.lines, sc.rate, sc.inotify, sc.kills)
	fmt.Printf("%-19s %9s | %-26s | %-26s\n", "method", "written", "logagent lost / duplicated", "nxadm/tail lost / duplicated")
	for _, m := range list {
		a, err := sc.agent(bin, filepath.Join(dir, "agent-"+string(m)), m)
		if err != nil {
			fail(fmt.Errorf("%s: logagent: %w", m, err))
		}
		var t testenv.Result
		if *withTail {
			if t, err = sc.tail(filepath.Join(dir, "tail-"+string(m)), m); err != nil {
				fail(fmt.Errorf("%s: nxadm/tail: %w", m, err))
			}
		}
		fmt.Printf("%-19s %9d | %-26s | %-26s", m, a.Written, lossDup(a), lossDup(t))
		if a.Window > 0 || t.Window > 0 {
			fmt.Printf("  (copytruncate window: %d / %d lines, counted as lost by the rotation, not by the reader)", a.Window, t.Window)
		}
		fmt.Println()
	}
}

func lossDup(r testenv.Result) string {
	return fmt.Sprintf("%7d (%5.2f%%) / %7d", r.Missing, 100*float64(r.Missing)/float64(max(r.Written, 1)), r.Duplicated)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/rotation:", err)
	os.Exit(1)
}

type scenario struct {
	rate, rotations, lines int
	writeAfter, copyPause  time.Duration
	settle                 time.Duration
	inotify                bool
	kills                  int
}

// write runs the writer: lines, rotate, lines, rotate... at sc.rate lines
// per second, in writes of 10 lines.
func (sc *scenario) write(s *testenv.Stream) error {
	start := time.Now()
	total := 0
	for r := 0; r < sc.rotations; r++ {
		for done := 0; done < sc.lines; done += 10 {
			if err := s.Write(min(10, sc.lines-done)); err != nil {
				return err
			}
			total += min(10, sc.lines-done)
			if ahead := time.Duration(float64(total)/float64(sc.rate)*float64(time.Second)) - time.Since(start); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		if err := s.Rotate(); err != nil {
			return err
		}
	}
	return s.Write(1) // a last line in the newest file
}

func (sc *scenario) stream(dir string, m testenv.Method) (*testenv.Stream, error) {
	s := &testenv.Stream{Tag: string(m), Dir: filepath.Join(dir, "logs"), Name: "app.log", Method: m,
		WriteAfter: sc.writeAfter, CopyPause: sc.copyPause}
	return s, s.Open()
}

// settleDone waits until the checker has everything or makes no progress
// for sc.settle.
func (sc *scenario) settleDone(c *testenv.Checker, s *testenv.Stream) {
	last, since := int64(-1), time.Now()
	for time.Since(since) < sc.settle && !c.Delivered() {
		res, _, _ := c.Results()
		if n := res[0].Delivered + res[0].Duplicated; n != last {
			last, since = n, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (sc *scenario) agent(bin, dir string, m testenv.Method) (testenv.Result, error) {
	s, err := sc.stream(dir, m)
	if err != nil {
		return testenv.Result{}, err
	}
	cfg := &testenv.Config{
		DataDir:       filepath.Join(dir, "data"),
		OutputPath:    filepath.Join(dir, "out", "{category}.log"),
		FlushInterval: 50 * time.Millisecond,
		LogLevel:      "warn",
		Inputs: []testenv.Input{{ID: "bench", Paths: []string{filepath.Join(dir, "logs", "*.log")},
			ScanInterval: time.Second, CloseInactive: 5 * time.Second}},
	}
	a, err := testenv.NewAgent(bin, dir, cfg)
	if err != nil {
		return testenv.Result{}, err
	}
	if !sc.inotify {
		a.Env = append(a.Env, testenv.NoInotify)
	}
	if err := a.Start(); err != nil {
		return testenv.Result{}, err
	}
	c := testenv.NewChecker(filepath.Join(dir, "out", "*.log"), s)
	if !testenv.WaitUntil(time.Minute, func() bool { return testenv.HasOpen(a.PID(), s.Path()) }) {
		return testenv.Result{}, fmt.Errorf("agent did not open %s:\n%s", s.Path(), a.Log())
	}
	stopKills := sc.killer(a)
	werr := sc.write(s)
	if err := stopKills(); err != nil {
		return testenv.Result{}, err
	}
	sc.settleDone(c, s)
	if err := a.Stop(time.Minute); err != nil {
		return testenv.Result{}, fmt.Errorf("stop: %v\n%s", err, a.Log())
	}
	s.Close()
	res, _, err := c.Results()
	if werr != nil {
		err = werr
	}
	return res[0], err
}

// killer kills the agent sc.kills times, evenly spread over the time the
// writer takes, restarting it 100 ms later, until the returned stop is
// called.
func (sc *scenario) killer(a *testenv.Agent) (stop func() error) {
	if sc.kills == 0 {
		return func() error { return nil }
	}
	total := time.Duration(float64(sc.rotations*sc.lines) / float64(sc.rate) * float64(time.Second))
	every := total / time.Duration(sc.kills+1)
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		var err error
		defer func() { errc <- err }()
		for range sc.kills {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			if err = a.Kill(); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			if err = a.Start(); err != nil {
				return
			}
		}
	}()
	return func() error {
		close(done)
		return <-errc
	}
}

func (sc *scenario) tail(dir string, m testenv.Method) (testenv.Result, error) {
	s, err := sc.stream(dir, m)
	if err != nil {
		return testenv.Result{}, err
	}
	out := filepath.Join(dir, "out.log")
	f, err := os.Create(out)
	if err != nil {
		return testenv.Result{}, err
	}
	t, err := tail.TailFile(s.Path(), tail.Config{Follow: true, ReOpen: true, CompleteLines: true,
		Logger: tail.DiscardingLogger})
	if err != nil {
		return testenv.Result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case l, ok := <-t.Lines:
				if !ok {
					return
				}
				if l.Err == nil {
					f.WriteString(l.Text + "\n")
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	c := testenv.NewChecker(out, s)
	time.Sleep(200 * time.Millisecond) // let it open the file and set its watch
	werr := sc.write(s)
	sc.settleDone(c, s)
	cancel()
	<-done
	t.Stop()
	t.Cleanup()
	f.Close()
	s.Close()
	res, _, err := c.Results()
	if werr != nil {
		err = werr
	}
	return res[0], err
}
