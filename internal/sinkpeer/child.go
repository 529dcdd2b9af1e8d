// Package sinkpeer runs the peers of the outputs' throughput benchmarks in a
// child process, so that the benchmark process's CPU time is the agent's
// alone, and provides sink peers: servers that speak an output's wire
// protocol correctly but as cheaply as they can (Thrift framed calls,
// memcache sets, Kafka produce requests), to show what the agent side can
// reach when the peer is not the bottleneck.
//
// The child is the test binary itself, run again with -test.run naming the
// package's peer test and an environment variable naming the peer to start
// (the usual Go pattern for helper processes):
//
//	// TestPeerProcess is the peer of BenchmarkSend in a child process
//	// (see sinkpeer); in an ordinary test run it does nothing.
//	func TestPeerProcess(t *testing.T) {
//		sinkpeer.Serve(t, func(kind string) string { ... start it, return its address })
//	}
//
//	func BenchmarkSend(b *testing.B) {
//		peer := sinkpeer.StartChild(b, "TestPeerProcess", "sink")
//		... an output sending to peer.Addr
//		m := sinkpeer.Measure(b, peer)
//		for b.Loop() { ... }
//		m.Report(bytesPerOp)
//	}
//
// Report adds agent-cpu-ms/MB (this process's user and system CPU time over
// the loop, per 10^6 bytes shipped) and peer-cpu-ms/MB (the child's).
package sinkpeer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envKind names the peer a child process is to start.
const envKind = "LOGAGENT_SINKPEER"

// Serve is the body of a package's peer test. In an ordinary test run (the
// environment does not name a peer) it returns at once. In a child started
// by StartChild it starts the peer with start, which returns the address
// (or comma-separated addresses) to send to, tells it to the parent, and
// serves until the parent closes the child's standard input, answering its
// requests for the child's CPU time meanwhile.
func Serve(t *testing.T, start func(kind string) string) {
	kind := os.Getenv(envKind)
	if kind == "" {
		return
	}
	addr := start(kind)
	fmt.Fprintf(os.Stdout, "sinkpeer addr %s\n", addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "cpu":
			fmt.Fprintf(os.Stdout, "sinkpeer cpu %d\n", int64(CPUTime()))
		default:
			t.Fatalf("sinkpeer: unknown request %q", in.Text())
		}
	}
}

// Child is a peer running in a child process.
type Child struct {
	// Addr is the address (or comma-separated addresses) the peer listens
	// on.
	Addr string

	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

// StartChild runs the test binary again as a child process whose test
// named test (which calls Serve) starts the peer named kind, and stops it
// when tb ends.
func StartChild(tb testing.TB, test, kind string) *Child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envKind+"="+kind)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("sinkpeer: start child: %v", err)
	}
	c := &Child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(func() { c.stop(tb) })
	addr, err := c.line("addr")
	if err != nil {
		tb.Fatalf("sinkpeer: peer %q did not start: %v", kind, err)
	}
	c.Addr = addr
	return c
}

// line reads the child's next line with the given prefix, skipping the
// test framework's own output.
func (c *Child) line(what string) (string, error) {
	prefix := "sinkpeer " + what + " "
	for {
		s, err := c.out.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("child output ended (%v) before its %s", err, what)
		}
		if v, ok := strings.CutPrefix(strings.TrimRight(s, "\n"), prefix); ok {
			return v, nil
		}
	}
}

// CPU returns the user and system CPU time the child has used so far.
func (c *Child) CPU() (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, "cpu\n"); err != nil {
		return 0, err
	}
	s, err := c.line("cpu")
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	return time.Duration(ns), err
}

func (c *Child) stop(tb testing.TB) {
	c.in.Close()
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, c.out)
		done <- c.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			tb.Errorf("sinkpeer: child: %v", err)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
		tb.Errorf("sinkpeer: child did not exit; killed")
	}
}

// Meter measures a benchmark loop's CPU time, in this process and in the
// peer's.
type Meter struct {
	b     *testing.B
	peer  *Child
	agent time.Duration
	child time.Duration
}

// Measure starts measuring: call it just before the benchmark loop. peer
// may be nil for a peer in this process: only agent-cpu-ms/MB is reported
// then, and it includes the peer's.
func Measure(b *testing.B, peer *Child) *Meter {
	m := &Meter{b: b, peer: peer, agent: CPUTime()}
	if peer != nil {
		var err error
		if m.child, err = peer.CPU(); err != nil {
			b.Fatalf("sinkpeer: peer CPU: %v", err)
		}
	}
	return m
}

// Report stops measuring, just after the loop, and reports the CPU time
// per 10^6 bytes (the unit of the MB/s that b.SetBytes gives), for
// bytesPerOp bytes shipped by each of the b.N iterations.
func (m *Meter) Report(bytesPerOp int64) {
	agent := CPUTime() - m.agent
	mb := float64(bytesPerOp) * float64(m.b.N) / 1e6
	if mb == 0 {
		return
	}
	m.b.ReportMetric(float64(agent)/1e6/mb, "agent-cpu-ms/MB")
	if m.peer != nil {
		child, err := m.peer.CPU()
		if err != nil {
			m.b.Fatalf("sinkpeer: peer CPU: %v", err)
		}
		m.b.ReportMetric(float64(child-m.child)/1e6/mb, "peer-cpu-ms/MB")
	}
}
