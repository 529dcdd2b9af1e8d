package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/logagent/logagent/agent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/internal/testenv"
)

func outFile(e *testenv.Env) string { return filepath.Join(e.Out, "logs.log") }

func waitOutput(t *testing.T, path string, size int) []byte {
	t.Helper()
	var b []byte
	if !testenv.WaitUntil(2*time.Minute, func() bool {
		b, _ = os.ReadFile(path)
		return len(b) >= size
	}) {
		t.Fatalf("%s: %d bytes, want %d", path, len(b), size)
	}
	return b
}

// A 100 MB line is delivered in pieces of max_message_bytes, in order,
// nothing lost.
func TestHundredMegabyteLine(t *testing.T) {
	e := testenv.New(t)
	e.Config.Inputs[0].MaxMessageBytes = "1MiB"
	e.Config.LogLevel = "info"
	long := make([]byte, 100<<20)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	in := append(append([]byte("head\n"), long...), "\ntail\n"...)
	if err := os.WriteFile(filepath.Join(e.Logs, "big.log"), in, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Start()
	out := waitOutput(t, outFile(e), len(in)+99) // 100 pieces: 99 more newlines
	e.Stop()
	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if string(lines[0]) != "head" || string(lines[len(lines)-1]) != "tail" {
		t.Fatalf("first %q, last %q", lines[0][:min(10, len(lines[0]))], lines[len(lines)-1][:min(10, len(lines[len(lines)-1]))])
	}
	pieces := lines[1 : len(lines)-1]
	for i, p := range pieces {
		if len(p) > 1<<20 {
			t.Fatalf("piece %d is %d bytes, more than max_message_bytes", i, len(p))
		}
	}
	if !bytes.Equal(bytes.Join(pieces, nil), long) {
		t.Fatal("pieces joined are not the line")
	}
	t.Logf("100 MiB line delivered in %d pieces", len(pieces))
}

// Bytes are passed through as read: invalid UTF-8, NUL, CR, high bytes.
func TestBinaryDataPassedThrough(t *testing.T) {
	e := testenv.New(t)
	var in []byte
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		n := 1 + r.IntN(200)
		for j := 0; j < n; j++ {
			b := byte(r.IntN(256))
			if b == '\n' {
				b = 0xff
			}
			in = append(in, b)
		}
		in = append(in, '\n')
	}
	in = append(in, "\xc3\x28 invalid\r\n\x00nul\n"...)
	if err := os.WriteFile(filepath.Join(e.Logs, "bin.log"), in, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Start()
	out := waitOutput(t, outFile(e), len(in))
	e.Stop()
	if !bytes.Equal(out, in) {
		t.Fatal("output differs from input")
	}
}

// A file the agent cannot read is reported once, with its path, and read
// once its permissions are fixed.
func TestUnreadableFileReportedOnceThenRead(t *testing.T) {
	e := testenv.New(t)
	e.Config.Inputs[0].ScanInterval = 100 * time.Millisecond
	e.AsNobody()
	path := filepath.Join(e.Logs, "secret.log")
	if err := os.WriteFile(path, []byte("hidden line\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	e.Start()
	if !testenv.WaitUntil(time.Minute, func() bool { return e.Agent.LogCount("cannot read file") > 0 }) {
		t.Fatal("unreadable file not reported")
	}
	time.Sleep(time.Second) // ten scans
	if n := e.Agent.LogCount("cannot read file"); n != 1 {
		t.Errorf("reported %d times, want once", n)
	}
	if !strings.Contains(e.Agent.Log(), path) {
		t.Error("report does not name the file")
	}
	os.Chmod(path, 0o644)
	waitOutput(t, outFile(e), len("hidden line\n"))
	e.Stop()
}

// A checkpoint file cut in half stops the agent with an error naming it.
func TestCorruptCheckpointStopsAgent(t *testing.T) {
	e := testenv.New(t)
	s := e.Stream("a", "a.log", testenv.NoRotation)
	s.Write(100)
	e.Start()
	e.WaitDelivered()
	e.Stop()
	path := filepath.Join(e.Data, checkpoint.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, data[:len(data)/2], 0o640)
	e.Start()
	err = e.Agent.Wait(time.Minute)
	if err == nil {
		t.Fatal("agent started on a torn checkpoint")
	}
	if log := e.Agent.Log(); !strings.Contains(log, path) || !strings.Contains(log, "cannot be read") {
		t.Errorf("error does not name %s:\n%s", path, log)
	}
	if after, _ := os.ReadFile(path); len(after) != len(data)/2 {
		t.Error("the torn checkpoint was changed")
	}
}

// Stopping the agent leaves no goroutine behind.
func TestStopLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := testenv.New(t)
	s := e.Stream("a", "a.log", testenv.NoRotation)
	s.Write(10_000)
	cfgPath := filepath.Join(e.Dir, "inproc.yaml")
	os.WriteFile(cfgPath, []byte(e.Config.YAML()), 0o644)
	cfg, err := agent.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	e.WaitDelivered()
	os.Rename(filepath.Join(e.Logs, "a.log"), filepath.Join(e.Logs, "a.log.1")) // a renamed file open too
	s.Write(10)
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// exclude keeps compressed rotated files out; a symlink to a log is read
// once, under one name.
func TestExcludeGzAndSymlinkReadOnce(t *testing.T) {
	e := testenv.New(t)
	e.Config.Inputs[0].Paths = []string{filepath.Join(e.Logs, "*.log*")}
	e.Config.Inputs[0].Exclude = []string{"*.gz"}
	s := e.Stream("a", "a.log", testenv.NoRotation)
	s.Write(1000)
	os.WriteFile(filepath.Join(e.Logs, "a.log.2.gz"), []byte("a 999999 compressed\n"), 0o644)
	os.Symlink(filepath.Join(e.Logs, "a.log"), filepath.Join(e.Logs, "link.log"))
	e.Start()
	e.WaitDelivered()
	s.Write(1000)
	e.WaitDelivered()
	time.Sleep(time.Second)
	e.Stop()
	e.Check(0)
}
