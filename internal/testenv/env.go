package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Env is one test's world: a directory with logs/, out/ and data/, an
// agent configured on them, and the streams that write the logs.
type Env struct {
	T       testing.TB
	Dir     string
	Logs    string // where the streams write
	Out     string // the file output's directory
	Data    string // the agent's data_dir
	Config  Config
	Agent   *Agent
	Streams []*Stream
	checker *Checker
	nobody  bool
	// Polling, set before the first Start, runs the agent without
	// inotify (NoInotify).
	Polling bool
}

// New returns an environment with one input reading logs/*.log (change
// e.Config before Start) and a file output to out/{category}.log.
func New(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	e := &Env{T: t, Dir: dir, Logs: filepath.Join(dir, "logs"), Out: filepath.Join(dir, "out"), Data: filepath.Join(dir, "data")}
	for _, d := range []string{e.Logs, e.Out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.Config = Config{
		DataDir:         e.Data,
		OutputPath:      filepath.Join(e.Out, "{category}.log"),
		ShutdownTimeout: 30 * time.Second,
		LogLevel:        "debug",
		FlushInterval:   50 * time.Millisecond,
		MinBackoff:      50 * time.Millisecond,
		MaxBackoff:      500 * time.Millisecond,
		Inputs: []Input{{
			ID:            "logs",
			Paths:         []string{filepath.Join(e.Logs, "*.log")},
			ScanInterval:  500 * time.Millisecond,
			PollInterval:  50 * time.Millisecond,
			CloseInactive: 2 * time.Second,
		}},
	}
	t.Cleanup(func() {
		if e.Agent != nil && e.Agent.Running() {
			e.Agent.Kill()
		}
		for _, s := range e.Streams {
			s.Close()
		}
		if t.Failed() && e.Agent != nil {
			log := e.Agent.Log()
			if d := os.Getenv("LOGAGENT_TEST_LOGDIR"); d != "" {
				name := filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_")+".log")
				if err := os.WriteFile(name, []byte(log), 0o644); err == nil {
					t.Logf("agent log kept in %s", name)
				}
			}
			if len(log) > 20000 {
				log = "...\n" + log[len(log)-20000:]
			}
			t.Logf("agent log:\n%s", log)
		}
	})
	return e
}

// AsNobody makes the agent run as user nobody when the test runs as root,
// so that file permissions apply to it; the environment's directories are
// opened up for it.
func (e *Env) AsNobody() {
	if os.Geteuid() != 0 {
		return
	}
	for d := e.Dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()) && d != os.TempDir() {
			os.Chmod(d, 0o777)
		}
	}
	for _, d := range []string{e.Logs, e.Out} {
		os.Chmod(d, 0o777)
	}
	e.nobody = true
}

// Stream adds a stream writing logs/<name> tagged tag.
func (e *Env) Stream(tag, name string, m Method) *Stream {
	e.T.Helper()
	s := &Stream{Tag: tag, Dir: e.Logs, Name: name, Method: m}
	if err := s.Open(); err != nil {
		e.T.Fatal(err)
	}
	e.Streams = append(e.Streams, s)
	e.checker = nil
	return s
}

// Start writes the configuration (the first time) and starts the agent.
func (e *Env) Start() {
	e.T.Helper()
	if e.Agent == nil {
		a, err := NewAgent(Binary(e.T), e.Dir, &e.Config)
		if err != nil {
			e.T.Fatal(err)
		}
		if e.nobody {
			a.Cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		}
		if e.Polling {
			a.Env = append(a.Env, NoInotify)
		}
		e.Agent = a
	}
	if err := e.Agent.Start(); err != nil {
		e.T.Fatal(err)
	}
}

// WaitReading waits until the agent holds every stream's file open. A
// scenario that rotates names out of the globs starts after it: a file
// renamed out of them before the agent's first look at its directory is
// one the agent never knew (at a first start, rotated files are not read),
// and how soon that first look comes depends on the machine's speed.
func (e *Env) WaitReading() {
	e.T.Helper()
	for _, s := range e.Streams {
		if !WaitUntil(2*time.Minute, func() bool {
			pid := e.Agent.PID()
			return pid != 0 && HasOpen(pid, s.Path())
		}) {
			e.T.Fatalf("the agent did not open %s within 2 minutes", s.Path())
		}
	}
}

// Stop stops the agent with SIGTERM and fails the test unless it exits 0.
func (e *Env) Stop() {
	e.T.Helper()
	if err := e.Agent.Stop(time.Minute); err != nil {
		e.T.Fatalf("agent exit after SIGTERM: %v", err)
	}
}

// Kill kills the agent with SIGKILL.
func (e *Env) Kill() {
	e.T.Helper()
	if err := e.Agent.Kill(); err != nil {
		e.T.Fatal(err)
	}
}

// Checker returns the checker of the output for the streams added so far.
func (e *Env) Checker() *Checker {
	if e.checker == nil {
		e.checker = NewChecker(filepath.Join(e.Out, "*.log"), e.Streams...)
		e.checker.JSON = e.Config.Format == "json"
	}
	return e.checker
}

// WaitDelivered waits (generously) until every line written so far is in
// the output, and fails the test with the missing lines otherwise.
func (e *Env) WaitDelivered() {
	e.T.Helper()
	c := e.Checker()
	if WaitUntil(2*time.Minute, c.Delivered) {
		return
	}
	for _, s := range e.Streams {
		if m := c.MissingSample(s.Tag, 10); len(m) > 0 {
			e.T.Errorf("%s: lines not delivered, e.g. %v", s.Tag, m)
		}
	}
	e.T.FailNow()
}

// Check fails the test unless every stream's lines arrived exactly once,
// whole and in order, allowing up to dupes duplicates per stream.
func (e *Env) Check(dupes int64) []Result {
	e.T.Helper()
	c := e.Checker()
	res, stray, err := c.Results()
	if err != nil {
		e.T.Fatal(err)
	}
	for _, r := range res {
		e.T.Log(r)
		if r.Missing != 0 || r.Corrupted != 0 || r.OutOfOrder != 0 || r.Duplicated > dupes {
			e.T.Errorf("%s: want 0 missing, 0 corrupted, 0 out of order, at most %d duplicated", r.Tag, dupes)
			if m := c.MissingSample(r.Tag, 10); len(m) > 0 {
				e.T.Errorf("%s: missing e.g. %v", r.Tag, m)
			}
		}
	}
	if stray != 0 {
		e.T.Errorf("%d lines in the output belong to no stream:\n%s", stray, c.Samples())
	}
	return res
}
