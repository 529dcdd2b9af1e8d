package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A shipper is what a scenario measures: the agent, or a baseline
// pipeline doing the same job (tail -F FILES | cat > out). The figures are
// sampled from /proc while it runs, never from its exit: what a shipper
// spends stopping is not part of the job.
type shipper interface {
	pids() []int
	exited() bool
	// fail describes an early exit.
	fail() error
}

func (a *agentProc) pids() []int { return []int{a.cmd.Process.Pid} }

func (a *agentProc) fail() error { return fmt.Errorf("agent exited early: %v%s", a.err, a.stderr()) }

// stopShipper stops s (SIGTERM, and waits) and returns its peak RSS up to
// the stop, not the stop's own.
func stopShipper(s shipper) (peak int64, err error) {
	peak = sample(s).peak
	switch s := s.(type) {
	case *agentProc:
		_, err = s.stop()
	case *pipeline:
		err = s.stop()
	default:
		err = fmt.Errorf("cannot stop a %T", s)
	}
	return peak, err
}

// windowRow returns the row of a measured window from the samples at its
// start and end: its wall, the CPU used (of a core) and the wake-ups a
// second in it.
func windowRow(u0, u1 usage) row {
	span := u1.at.Sub(u0.at)
	cpu := (u1.cpu - u0.cpu).Seconds()
	return row{
		wall:    span,
		cpu:     cpu,
		cpuPct:  cpu / span.Seconds() * 100,
		perCore: true,
		wakeups: float64(u1.wakeups-u0.wakeups) / span.Seconds(),
	}
}

// usage is a sample of a shipper's processes, summed over them.
type usage struct {
	at      time.Time
	cpu     time.Duration // user+sys
	rss     int64         // resident now
	peak    int64         // VmHWM
	wakeups int64         // voluntary + involuntary context switches of every thread
}

func sample(s shipper) usage {
	u := usage{at: time.Now()}
	for _, pid := range s.pids() {
		u.cpu += procCPU(pid)
		cur, peak := procRSS(pid)
		u.rss += cur
		u.peak += peak
		u.wakeups += procWakeups(pid)
	}
	return u
}

// procCPU returns the user+sys CPU time of pid so far, every thread
// (living or gone) included, from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procRSS returns the resident and peak resident set of pid.
func procRSS(pid int) (cur, peak int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			cur = kb * 1024
		}
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			peak = kb * 1024
		}
	}
	return cur, peak
}

// procWakeups returns the context switches, voluntary and involuntary, of
// every living thread of pid. /proc/PID/status counts the main thread
// only, hence the walk over /proc/PID/task (the agent's threads live as
// long as it does: the Go runtime does not end its threads).
func procWakeups(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// openFilesUnder counts pid's descriptors open on files in dir.
func openFilesUnder(pid int, dir string) int {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	n := 0
	for _, fd := range fds {
		if t, err := os.Readlink(fd); err == nil && strings.HasPrefix(t, dir+"/") {
			n++
		}
	}
	return n
}

// pipeline is a baseline: a command whose standard output goes through
// cat into a file, as `CMD | cat > out`.
type pipeline struct {
	cmds    []*exec.Cmd
	started time.Time
	done    chan struct{}
	err     error
}

// startTailF starts tail -F over paths, piped into cat > out: the baseline
// of the steady and many-files scenarios. tail holds every file open: its
// descriptor limit is set to what they need.
func startTailF(out string, paths []string) (*pipeline, error) {
	script := fmt.Sprintf(`ulimit -n %d && exec tail -q -F -n +1 "$@"`, len(paths)+100)
	return startPipeline(out, append([]string{"sh", "-c", script, "sh"}, paths...)...)
}

// startPipeline starts args[0] with args[1:], piped into cat > out.
func startPipeline(out string, args ...string) (*pipeline, error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	defer w.Close()
	src := exec.Command(args[0], args[1:]...)
	src.Stdout, src.Stderr = w, os.Stderr
	cat := exec.Command("cat")
	cat.Stdin, cat.Stdout, cat.Stderr = r, f, os.Stderr
	p := &pipeline{cmds: []*exec.Cmd{src, cat}, done: make(chan struct{})}
	p.started = time.Now()
	if err := cat.Start(); err != nil {
		return nil, err
	}
	if err := src.Start(); err != nil {
		cat.Process.Kill()
		cat.Wait()
		return nil, err
	}
	go func() {
		err := src.Wait()
		if cerr := cat.Wait(); err == nil {
			err = cerr
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

func (p *pipeline) pids() []int {
	return []int{p.cmds[0].Process.Pid, p.cmds[1].Process.Pid}
}

func (p *pipeline) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *pipeline) fail() error {
	return fmt.Errorf("%s exited early: %v", strings.Join(p.cmds[0].Args, " "), p.err)
}

// stop ends the source with SIGTERM (cat then reads to the end of the
// pipe and exits) and waits for both.
func (p *pipeline) stop() error {
	p.cmds[0].Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute):
		for _, c := range p.cmds {
			c.Process.Kill()
		}
		<-p.done
		return errors.New("baseline did not stop within 1m of SIGTERM")
	}
}
