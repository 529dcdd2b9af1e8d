package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// With -perf, the measured window of the steady and many-files scenarios
// is also counted by perf stat attached to the agent's process: the
// instructions it ran (user and kernel) and its context switches. CPU time
// on a shared machine moves with the neighbours (caches, SMT siblings,
// clock speed) by more than a change under test; the instructions a line
// costs do not, so a before/after difference of a few percent shows there
// first. perf's counting costs time of its own at each of the agent's
// context switches (steady 50 files: 9% of a core instead of 5%), so with
// -perf compare the instructions, not the CPU %.

// perfEvents are counted; perf names them so in its output.
var perfEvents = []string{"instructions:u", "instructions:k", "context-switches"}

// perfCounts is what perf counted over a window.
type perfCounts struct {
	instrUser, instrKernel, ctxSwitches float64
}

// perfRun is a perf stat attached to a process.
type perfRun struct {
	cmd    *exec.Cmd
	out    string
	stderr *tailBuffer
	done   chan error
}

// startPerf attaches perf stat to pid (and every thread it has or starts),
// writing its counts to out when stopped.
func startPerf(pid int, out string) (*perfRun, error) {
	path, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("-perf needs perf (Debian: apt-get install linux-perf)")
	}
	cmd := exec.Command(path, "stat", "-x", ",", "-e", strings.Join(perfEvents, ","),
		"-p", strconv.Itoa(pid), "-o", out)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &perfRun{cmd: cmd, out: out, stderr: &stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// stop ends the count (perf stat prints on SIGINT) and reads it.
func (p *perfRun) stop() (perfCounts, error) {
	select {
	case err := <-p.done:
		// Not attached (no permission: perf needs root, or
		// kernel.perf_event_paranoid at most 0), or the agent exited.
		return perfCounts{}, fmt.Errorf("perf stat exited before the window's end: %v\n%s", err, p.stderr.String())
	default:
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		return perfCounts{}, errors.New("perf stat did not stop within 10s of SIGINT")
	}
	f, err := os.Open(p.out)
	if err != nil {
		return perfCounts{}, err
	}
	defer f.Close()
	return parsePerf(f)
}

// kill kills perf stat and waits for it.
func (p *perfRun) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// parsePerf reads perf stat -x , output: value,unit,event,... per line.
func parsePerf(f *os.File) (perfCounts, error) {
	var c perfCounts
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return c, fmt.Errorf("perf: %s %s (no hardware counters here?)", fields[2], fields[0])
		}
		switch fields[2] {
		case "instructions:u":
			c.instrUser = v
		case "instructions:k":
			c.instrKernel = v
		case "context-switches":
			c.ctxSwitches = v
		default:
			continue
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	if found != len(perfEvents) {
		return c, fmt.Errorf("perf: %d of the %d counts in %s", found, len(perfEvents), f.Name())
	}
	return c, nil
}

// perLine adds the counts per line to r: as metrics for -benchfmt and in
// its notes.
func (c perfCounts) perLine(r *row, lines int64) {
	if lines <= 0 {
		return
	}
	n := float64(lines)
	r.more = append(r.more,
		metric{(c.instrUser + c.instrKernel) / n, "instr/line"},
		metric{c.instrUser / n, "instr-user/line"},
		metric{c.ctxSwitches / n, "ctxsw/line"})
	r.extra += fmt.Sprintf("; CPU %% raised by perf's counting; perf: %.2f k instructions a line (%.2f k user), %.2f context switches a line",
		(c.instrUser+c.instrKernel)/n/1e3, c.instrUser/n/1e3, c.ctxSwitches/n)
}
