package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
// once, under one name, whether links are followed or not (then it is
// skipped, with a warning).
func TestExcludeGzAndSymlinkReadOnce(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprint("follow_symlinks=", follow), func(t *testing.T) {
			e := testenv.New(t)
			e.Config.LogLevel = "info"
			e.Config.Inputs[0].Paths = []string{filepath.Join(e.Logs, "*.log*")}
			e.Config.Inputs[0].Exclude = []string{"*.gz"}
			e.Config.Inputs[0].FollowSymlinks = follow
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
			if skipped := e.Agent.LogCount("symbolic link skipped"); follow && skipped != 0 || !follow && skipped != 1 {
				t.Errorf("%d warnings of a skipped link", skipped)
			}
		})
	}
}

// A directory a */ glob reaches but the agent's user cannot list is
// warned about once, by the agent and by --dry-run, and read once it can be
// listed (at a rescan).
func TestUnreadableDirectoryWarnedAndRetried(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the agent as nobody")
	}
	e := testenv.New(t)
	e.AsNobody()
	e.Config.Inputs[0].Paths = []string{filepath.Join(e.Logs, "*", "*.log")}
	e.Config.Inputs[0].ScanInterval = 100 * time.Millisecond
	for _, d := range []string{"open", "closed"} {
		if err := os.Mkdir(filepath.Join(e.Logs, d), 0o777); err != nil {
			t.Fatal(err)
		}
		s := e.Stream(d, filepath.Join(d, "x.log"), testenv.NoRotation)
		s.Write(100)
		os.Chmod(s.Path(), 0o644)
	}
	closed := filepath.Join(e.Logs, "closed")
	os.Chmod(closed, 0o700) // root's: nobody cannot list it

	e.Start()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testenv.WaitUntil(2*time.Minute, cond) {
			t.Fatalf("not within 2 minutes: %s\n%s", what, e.Agent.Log())
		}
	}
	waitFor("a warning", func() bool { return e.Agent.LogCount("cannot list directory") > 0 })
	waitFor("open's lines", func() bool { return e.Checker().Poll() == nil && e.Checker().Has("open", 99) })

	cmd := exec.Command(testenv.Binary(t), "-c", e.Agent.ConfigPath, "--dry-run")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if !strings.Contains(string(out), closed+" cannot be read by") || !strings.Contains(string(out), "cannot list directory") {
		t.Errorf("--dry-run (%v) does not tell of %s:\n%s", err, closed, out)
	}

	os.Chmod(closed, 0o755)
	e.WaitDelivered()
	e.Stop()
	e.Check(0)
	if n := e.Agent.LogCount("cannot list directory"); n != 1 {
		t.Errorf("%d warnings of the unreadable directory, want 1", n)
	}
}
