package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	benchQuietFiles  = 10000
	benchActiveFiles = 1700
)

var (
	benchDirOnce sync.Once
	benchDir     string
)

// quietAgent runs an agent with benchQuietFiles files open and parked, of
// which benchActiveFiles had a line a moment ago (file.RecentlyActive): the
// setting of many quiet files, each written a line now and then. It
// returns once every line is delivered.
func quietAgent(b *testing.B) *Agent {
	b.Helper()
	benchDirOnce.Do(func() {
		d, err := os.MkdirTemp("", "logagent-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
		for i := range benchQuietFiles {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.log", i)), []byte("first\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	state := b.TempDir()
	path := filepath.Join(state, "logagent.yaml")
	text := strings.NewReplacer("{logs}", benchDir, "{dir}", state).Replace(`
data_dir: {dir}/state
inputs:
  - id: app
    paths: ["{logs}/*.log"]
    max_open_files: 20000
outputs:
  - id: local
    type: file
    path: {dir}/out.log
`)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	delivered := func() int64 {
		_, _, runners := a.running()
		if len(runners) == 0 {
			return 0
		}
		return runners[0].metrics.Messages.Load()
	}
	// Every file once (its first line, or what earlier runs appended).
	var want int64
	for i := range benchQuietFiles {
		b, _ := os.ReadFile(filepath.Join(benchDir, fmt.Sprintf("f%05d.log", i)))
		want += int64(strings.Count(string(b), "\n"))
	}
	waitBench(b, "every file read", func() bool { return delivered() == want })
	_, inputs, _ := a.running()
	waitBench(b, "every file quiet", func() bool { return len(inputs[0].in.Reading()) == 0 })
	for i := range benchActiveFiles {
		f, err := os.OpenFile(filepath.Join(benchDir, fmt.Sprintf("f%05d.log", i*benchQuietFiles/benchActiveFiles)), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.WriteString("again\n")
		f.Close()
	}
	waitBench(b, "the active files read", func() bool { return delivered() == want+benchActiveFiles })
	return a
}

func waitBench(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkSample measures the once-a-second sampling of the agent's rates
// with 10,000 files open, 1,700 of them read within the last
// file.RecentlyActive: quiet, nobody asking for the status; and status,
// the status asked for a moment ago (the live view of logagent status).
// It must run within file.RecentlyActive of quietAgent's writes
// (-benchtime=1000x); it fails if the active files were forgotten.
func BenchmarkSample(b *testing.B) {
	for _, look := range []string{"quiet", "status"} {
		b.Run("look="+look, func(b *testing.B) {
			a := quietAgent(b)
			_, inputs, _ := a.running()
			if look == "status" {
				a.Status()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				a.sample(time.Now())
			}
			b.StopTimer()
			if n := len(inputs[0].in.Reading()); n != benchActiveFiles {
				b.Fatalf("%d files recently active, want %d: the benchmark ran too long", n, benchActiveFiles)
			}
		})
	}
}
