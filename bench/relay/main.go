// Command relay measures, in one run, a backfill shipped to Kafka directly
// (agent: file → kafka) and through a Scribe relay (agent: file → scribe →
// relay → kafka): lines per second and CPU seconds per MB of each process.
// The broker is kfake, in this process; its CPU is not counted.
//
//	go run ./bench/relay [-lines 1000000] [-bin bin/logagent]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	bin   = flag.String("bin", "bin/logagent", "logagent `binary`")
	lines = flag.Int("lines", 1_000_000, "lines in the backfill (200 bytes each)")
	dir   = flag.String("dir", "", "work `dir` (default: a temporary one, removed)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay bench:", err)
		os.Exit(1)
	}
}

type proc struct {
	name string
	cmd  *exec.Cmd
}

func start(name, work, cfg string) (*proc, error) {
	path := filepath.Join(work, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(*bin, "-c", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{name: name, cmd: cmd}, nil
}

// stop ends the process with SIGTERM and returns its CPU time.
func (p *proc) stop() time.Duration {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// records returns the end offset of topic's partition 0.
func records(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition, p.Timestamp = 0, -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
		return 0, nil
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode == 0 {
		return p.Offset, nil
	}
	return 0, nil // not created yet
}

func writeInput(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	pad := strings.Repeat("x", 200)
	for i := range n {
		l := "bench " + strconv.Itoa(i) + " "
		w.WriteString(l + pad[:199-len(l)] + "\n")
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

type result struct {
	name  string
	wall  time.Duration
	cpu   map[string]time.Duration
	order []string
}

func run() error {
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "logagent-relay-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	in := filepath.Join(work, "in", "app.log")
	os.MkdirAll(filepath.Dir(in), 0o755)
	size, err := writeInput(in, *lines)
	if err != nil {
		return err
	}
	mb := float64(size) / 1e6
	var results []result
	for _, mode := range []string{"direct", "relay"} {
		r, err := once(work, mode, in)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		results = append(results, r)
	}
	fmt.Printf("%d lines, %.0f MB, to Kafka (kfake, in the bench process)\n\n", *lines, mb)
	fmt.Printf("%-8s %10s %12s   %s\n", "path", "wall", "lines/s", "CPU s per MB")
	for _, r := range results {
		var parts []string
		var total time.Duration
		for _, n := range r.order {
			parts = append(parts, fmt.Sprintf("%s %.4f", n, r.cpu[n].Seconds()/mb))
			total += r.cpu[n]
		}
		parts = append(parts, fmt.Sprintf("total %.4f", total.Seconds()/mb))
		fmt.Printf("%-8s %10s %12.0f   %s\n", r.name, r.wall.Round(time.Millisecond), float64(*lines)/r.wall.Seconds(), strings.Join(parts, ", "))
	}
	return nil
}

func once(work, mode, in string) (result, error) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bench"))
	if err != nil {
		return result{}, err
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	d := filepath.Join(work, mode)
	os.RemoveAll(d)
	os.MkdirAll(d, 0o755)
	kafkaOut := fmt.Sprintf("  - id: kafka\n    type: kafka\n    brokers: [%q]\n", kc.ListenAddrs()[0])
	res := result{name: mode, cpu: map[string]time.Duration{}}
	var procs []*proc
	var agentOut string
	if mode == "relay" {
		addr := freeAddr()
		relay, err := start("relay", d, fmt.Sprintf("data_dir: %s\ninputs:\n  - id: r\n    type: scribe\n    listen: %s\noutputs:\n%s",
			filepath.Join(d, "relay-data"), addr, kafkaOut))
		if err != nil {
			return res, err
		}
		procs = append(procs, relay)
		for deadline := time.Now().Add(time.Minute); ; {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return res, errors.New("relay does not listen")
			}
			time.Sleep(20 * time.Millisecond)
		}
		agentOut = fmt.Sprintf("  - id: relay\n    type: scribe\n    hosts: [%q]\n", addr)
	} else {
		agentOut = kafkaOut
	}
	t0 := time.Now()
	agent, err := start("agent", d, fmt.Sprintf("data_dir: %s\ninputs:\n  - id: app\n    paths: [%q]\n    category: bench\noutputs:\n%s",
		filepath.Join(d, "agent-data"), in, agentOut))
	if err != nil {
		return res, err
	}
	procs = append([]*proc{agent}, procs...)
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
	}()
	ctx := context.Background()
	for {
		n, err := records(ctx, cl, "bench")
		if err == nil && n >= int64(*lines) {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return res, fmt.Errorf("only %d of %d records after 10 minutes", n, *lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.wall = time.Since(t0)
	for _, p := range procs {
		res.cpu[p.name] = p.stop()
		res.order = append(res.order, p.name)
	}
	return res, nil
}
