// Package testenv is the one end-to-end harness of logagent's tests and
// benchmarks: it builds the binary once, writes a configuration, starts,
// stops (SIGTERM) and kills (SIGKILL) the agent by PID, writes
// sequence-numbered lines to log files and rotates them in every way logs
// are rotated, and checks the file output for missing, duplicated,
// corrupted and out-of-order lines.
//
// Nothing here asserts on time: waits poll with generous limits and fail
// only when the limit is reached.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModuleRoot returns the root of the logagent module.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles ./cmd/logagent into dir and returns the binary's path.
// LOGAGENT_TEST_RACE=1 builds it with the race detector.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "logagent")
	args := []string{"build", "-o", bin}
	if os.Getenv("LOGAGENT_TEST_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/logagent")
	cmd := exec.Command("go", args...)
	cmd.Dir = ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

var (
	binOnce sync.Once
	binPath string
	binDir  string
	binErr  error
)

// Binary builds the agent once per test binary and returns its path. Call
// Main from TestMain to remove it afterwards.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "logagent-bin-")
		if binErr == nil {
			os.Chmod(binDir, 0o755) // tests may run the agent as another user
			binPath, binErr = Build(binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Main runs the tests and removes the binary Binary built.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Config is the agent configuration the harness writes: one file output
// and any number of inputs. Zero values leave the agent's defaults.
type Config struct {
	DataDir            string
	OutputPath         string // file output path; {category} expands
	ShutdownTimeout    time.Duration
	CheckpointInterval time.Duration
	MaxInflightBytes   string
	LogLevel           string
	BatchMaxEvents     int
	FlushInterval      time.Duration
	MinBackoff         time.Duration
	MaxBackoff         time.Duration
	Format             string // the file output's format: raw (default) or json
	Inputs             []Input
}

// Input is one input of Config.
type Input struct {
	ID                string
	Paths             []string
	Exclude           []string
	StartAt           string
	MaxMessageBytes   string
	ScanInterval      time.Duration
	PollInterval      time.Duration
	CloseInactive     time.Duration
	CloseRemovedAfter time.Duration
	MaxOpenFiles      int
	FollowSymlinks    bool
	IncludeLines      []string
	ExcludeLines      []string
	Multiline         *Multiline
}

// Multiline is an input's multiline key; zero values leave the defaults.
type Multiline struct {
	Start, Continue string
	MaxLines        int
	Timeout         time.Duration
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// YAML renders c.
func (c *Config) YAML() string {
	var b strings.Builder
	kv := func(indent, k string, v any) {
		switch v := v.(type) {
		case string:
			if v == "" {
				return
			}
			fmt.Fprintf(&b, "%s%s: %q\n", indent, k, v)
		case int:
			if v == 0 {
				return
			}
			fmt.Fprintf(&b, "%s%s: %d\n", indent, k, v)
		case time.Duration:
			if v == 0 {
				return
			}
			fmt.Fprintf(&b, "%s%s: %s\n", indent, k, v)
		}
	}
	kv("", "data_dir", c.DataDir)
	kv("", "shutdown_timeout", c.ShutdownTimeout)
	kv("", "checkpoint_interval", c.CheckpointInterval)
	kv("", "max_inflight_bytes", c.MaxInflightBytes)
	kv("", "log_level", c.LogLevel)
	b.WriteString("inputs:\n")
	for _, in := range c.Inputs {
		fmt.Fprintf(&b, "  - id: %q\n", in.ID)
		fmt.Fprintf(&b, "    paths: %s\n", quoteList(in.Paths))
		if len(in.Exclude) > 0 {
			fmt.Fprintf(&b, "    exclude: %s\n", quoteList(in.Exclude))
		}
		kv("    ", "start_at", in.StartAt)
		kv("    ", "max_message_bytes", in.MaxMessageBytes)
		kv("    ", "scan_interval", in.ScanInterval)
		kv("    ", "poll_interval", in.PollInterval)
		kv("    ", "close_inactive", in.CloseInactive)
		kv("    ", "close_removed_after", in.CloseRemovedAfter)
		kv("    ", "max_open_files", in.MaxOpenFiles)
		if in.FollowSymlinks {
			b.WriteString("    follow_symlinks: true\n")
		}
		if len(in.IncludeLines) > 0 {
			fmt.Fprintf(&b, "    include_lines: %s\n", quoteList(in.IncludeLines))
		}
		if len(in.ExcludeLines) > 0 {
			fmt.Fprintf(&b, "    exclude_lines: %s\n", quoteList(in.ExcludeLines))
		}
		if m := in.Multiline; m != nil {
			b.WriteString("    multiline:\n")
			kv("      ", "start", m.Start)
			kv("      ", "continue", m.Continue)
			kv("      ", "max_lines", m.MaxLines)
			kv("      ", "timeout", m.Timeout)
		}
	}
	b.WriteString("outputs:\n  - id: out\n    type: file\n")
	fmt.Fprintf(&b, "    path: %q\n", c.OutputPath)
	kv("    ", "format", c.Format)
	kv("    ", "min_backoff", c.MinBackoff)
	kv("    ", "max_backoff", c.MaxBackoff)
	if c.BatchMaxEvents != 0 || c.FlushInterval != 0 {
		b.WriteString("    batch:\n")
		kv("      ", "max_events", c.BatchMaxEvents)
		kv("      ", "flush_interval", c.FlushInterval)
	}
	return b.String()
}

// Agent is one agent process, started and stopped as many times as a test
// needs, always with the same configuration file. Its stderr (the log) is
// appended to LogPath across restarts.
type Agent struct {
	Bin        string
	ConfigPath string
	LogPath    string
	// Cred, when set, runs the agent as another user (tests running as
	// root use it where permissions must matter).
	Cred *syscall.Credential
	// Env is added to the agent's environment.
	Env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	starts int
}

// NewAgent writes cfg to dir/logagent.yaml and returns an agent, not
// started, logging to dir/agent.log.
func NewAgent(bin, dir string, cfg *Config) (*Agent, error) {
	path := filepath.Join(dir, "logagent.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o644); err != nil {
		return nil, err
	}
	return &Agent{Bin: bin, ConfigPath: path, LogPath: filepath.Join(dir, "agent.log")}, nil
}

// Start starts the agent.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return errors.New("agent already running")
	}
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.starts++
	fmt.Fprintf(logf, "=== start %d at %s\n", a.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(a.Bin, "-c", a.ConfigPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.Cred}
	if len(a.Env) > 0 {
		cmd.Env = append(os.Environ(), a.Env...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	a.cmd, a.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		close(done)
	}()
	return nil
}

// PID returns the process id of the running agent, or 0.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	select {
	case <-a.done:
		return 0
	default:
	}
	return a.cmd.Process.Pid
}

// Running reports whether the agent process is alive.
func (a *Agent) Running() bool { return a.PID() != 0 }

// Starts returns how many times the agent was started.
func (a *Agent) Starts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.starts
}

// NoInotify is the environment that has the agent poll, as where it cannot
// get an inotify instance.
const NoInotify = "LOGAGENT_INOTIFY=off"

// Stop sends SIGTERM and waits up to timeout for the agent to exit. It
// returns the exit error (nil for exit status 0). The signal is sent once
// the agent has started (or exited): a SIGTERM that comes before the Go
// runtime has even run main kills the process by the default action, which
// is not the graceful stop a test of stopping means to check.
func (a *Agent) Stop(timeout time.Duration) error {
	starts := a.Starts()
	WaitUntil(timeout, func() bool {
		return !a.Running() || a.LogCount("logagent started") >= starts
	})
	return a.signal(syscall.SIGTERM, timeout)
}

// Kill sends SIGKILL and waits for the agent to die.
func (a *Agent) Kill() error {
	err := a.signal(syscall.SIGKILL, time.Minute)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed, as asked
	}
	return err
}

// Wait waits up to timeout for the agent to exit by itself.
func (a *Agent) Wait(timeout time.Duration) error {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return errors.New("agent not running")
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("agent still running after %s", timeout)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmd = nil
	return a.err
}

func (a *Agent) signal(sig syscall.Signal, timeout time.Duration) error {
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if cmd == nil {
		return errors.New("agent not running")
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return a.Wait(timeout)
}

// Log returns the agent's log so far.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.LogPath)
	return string(b)
}

// LogCount returns how many lines of the log contain s.
func (a *Agent) LogCount(s string) int {
	return bytes.Count([]byte(a.Log()), []byte(s))
}

// WaitUntil polls cond every 20ms until it is true or limit has passed; it
// returns false in that case. Limits are generous on purpose: a test must
// never fail because a machine is slow.
func WaitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
