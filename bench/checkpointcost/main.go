// Command checkpointcost measures what committing offsets costs the disk:
// the agent's fdatasyncs (logagent_checkpoint_syncs_total) and the bytes
// it has written to storage (write_bytes of /proc/PID/io) a second, while
// files are written at a given rate, or idle. The output is stdout, sent
// to /dev/null, so that the checkpoint is all the agent writes.
//
//	go run ./bench/checkpointcost [-files 4] [-rate 100000] [-seconds 20] [-checkpoint-interval 5ms]
//
// -rate 0 leaves the files idle; -rate R with -files N spreads R lines a
// second over the N files in turn (-files 10000 -rate 167: a line a minute
// each).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

func main() {
	files := flag.Int("files", 4, "files the input reads")
	rate := flag.Int("rate", 100000, "lines a second written, over the files in turn (0: idle)")
	seconds := flag.Int("seconds", 20, "measured time, after 5 s of warming up")
	interval := flag.String("checkpoint-interval", "", "checkpoint_interval (default: the agent's)")
	flag.Parse()
	if err := run(*files, *rate, time.Duration(*seconds)*time.Second, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "checkpointcost:", err)
		os.Exit(1)
	}
}

func run(files, rate int, d time.Duration, interval string) error {
	dir, err := os.MkdirTemp("", "bench-checkpointcost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := testenv.Build(dir)
	if err != nil {
		return err
	}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	paths := make([]string, files)
	for i := range paths {
		paths[i] = filepath.Join(logs, fmt.Sprintf("f%05d.log", i))
		if err := os.WriteFile(paths[i], []byte("first line\n"), 0o644); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("data_dir: %s\nlog_level: warn\nhttp: {listen: %q}\n", filepath.Join(dir, "data"), addr)
	if interval != "" {
		cfg += "checkpoint_interval: " + interval + "\n"
	}
	cfg += fmt.Sprintf("inputs:\n  - id: in\n    paths: [%q]\n    max_open_files: %d\noutputs:\n  - id: out\n    type: stdout\n",
		filepath.Join(logs, "*.log"), files+100)
	cfgPath := filepath.Join(dir, "logagent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-c", cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	if !testenv.WaitUntil(5*time.Minute, func() bool { return metric(addr, "logagent_output_messages_total") >= float64(files) }) {
		return fmt.Errorf("the first lines were not delivered")
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- write(paths, rate, stop) }()
	time.Sleep(5 * time.Second)
	m0, s0, w0, t0 := metric(addr, "logagent_output_messages_total"), metric(addr, "logagent_checkpoint_syncs_total"), writeBytes(cmd.Process.Pid), time.Now()
	time.Sleep(d)
	m1, s1, w1, t1 := metric(addr, "logagent_output_messages_total"), metric(addr, "logagent_checkpoint_syncs_total"), writeBytes(cmd.Process.Pid), time.Now()
	close(stop)
	if err := <-done; err != nil {
		return err
	}
	sec := t1.Sub(t0).Seconds()
	fmt.Printf("%d files, %d lines/s written: %.0f lines/s delivered, %.1f fdatasyncs/s, %.1f KiB/s written to storage\n",
		files, rate, (m1-m0)/sec, (s1-s0)/sec, float64(w1-w0)/sec/1024)
	return nil
}

// write appends rate lines a second to paths in turn, in writes of up to
// 100 lines, until stop is closed.
func write(paths []string, rate int, stop chan struct{}) error {
	if rate == 0 {
		<-stop
		return nil
	}
	start := time.Now()
	var n, k int
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		for due := int(time.Since(start).Seconds()*float64(rate)) - n; due > 0; {
			c := min(due, max(1, rate/len(paths)/200), 100)
			f, err := os.OpenFile(paths[k%len(paths)], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			var b strings.Builder
			for j := range c {
				fmt.Fprintf(&b, "line %d padding padding padding padding padding\n", n+j)
			}
			_, err = f.WriteString(b.String())
			f.Close()
			if err != nil {
				return err
			}
			n, due, k = n+c, due-c, k+1
		}
	}
}

// metric returns the value of an unlabelled metric, or 0.
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// writeBytes returns write_bytes of /proc/pid/io.
func writeBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
