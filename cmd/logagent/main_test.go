package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/logagent/logagent/agent"
	"github.com/logagent/logagent/internal/testenv"
)

// TestRunCommandLine runs the command in process with the command lines a
// user or a unit file gives it, and checks the exit codes the usage
// promises: 0 done or --dry-run clean, 1 invalid config or --dry-run found
// an error, 2 bad command line.
func TestRunCommandLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, fmt.Sprintf("data_dir: %s/state\ninputs:\n  - id: app\n    paths: [%q]\noutputs:\n  - id: out\n    type: file\n    path: %s/out.log\n", dir, filepath.Join(dir, "*.log"), dir))
	writeFile(t, filepath.Join(dir, "app.log"), numbered("app", 0, 3))
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, fmt.Sprintf("data_dir: %s/state\ninputs:\n  - id: app\n    paths: [x]\n    max_message_bytes: -5\noutputs:\n  - {id: out, type: stdout}\n", dir))
	// Valid, but the output's host cannot be resolved: --dry-run says so.
	unresolvable := filepath.Join(dir, "unresolvable.yaml")
	writeFile(t, unresolvable, fmt.Sprintf("data_dir: %s/state\ninputs:\n  - id: app\n    paths: [%q]\noutputs:\n  - {id: q, type: scribe, hosts: [no-such-host.invalid]}\n", dir, filepath.Join(dir, "*.log")))

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // each must appear
		stderr     []string
		noStdout   bool
		notWritten bool // the dry run must not write the output or the checkpoint
	}{
		{name: "version", args: []string{"--version"}, code: 0, stdout: []string{"logagent dev (commit none, go"}},
		{name: "help", args: []string{"-h"}, code: 0, stderr: []string{"Usage:", "Exit codes:", "-dry-run"}},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "argument", args: []string{"-c", good, "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`, "Usage:"}},
		{name: "no config", args: []string{"-c", filepath.Join(dir, "missing.yaml"), "--dry-run"}, code: 1, stderr: []string{"missing.yaml"}},
		{name: "invalid config", args: []string{"-c", bad}, code: 1, stderr: []string{"bad.yaml:5: inputs[0].max_message_bytes: must be > 0, got -5"}},
		{name: "invalid config, dry run", args: []string{"--config", bad, "--dry-run"}, code: 1, stderr: []string{"bad.yaml:5:"}},
		{name: "dry run", args: []string{"-c", good, "--dry-run", "--messages", "2"}, code: 0, stdout: []string{"input app", "app 0000000", "app 0000001"}, notWritten: true},
		{name: "dry run, quiet", args: []string{"-c", good, "--dry-run", "--quiet"}, code: 0, noStdout: true, notWritten: true},
		{name: "dry run finds an error", args: []string{"-c", unresolvable, "--dry-run"}, code: 1, stdout: []string{"no-such-host.invalid"}, notWritten: true},
		{name: "status, bad flag", args: []string{"status", "--bogus"}, code: 2},
		{name: "status, argument", args: []string{"status", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "status, help", args: []string{"status", "-h"}, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("stdout: %s, want nothing", stdout.String())
			}
			if tt.notWritten {
				for _, p := range []string{filepath.Join(dir, "out.log"), filepath.Join(dir, "state")} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("the dry run created %s", p)
					}
				}
			}
		})
	}
}

// TestStatusCommand runs `logagent status --once` against a stand-in for
// the agent's /status: what it serves is rendered; an agent that answers
// an error, or none at all, exits 1.
func TestStatusCommand(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "status", "backfill.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			w.Write(fixture)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	// The address can come from the config's http.listen.
	cfg := filepath.Join(t.TempDir(), "logagent.yaml")
	writeFile(t, cfg, fmt.Sprintf("data_dir: /tmp/x\nhttp:\n  listen: %s\ninputs:\n  - {id: a, paths: [x]}\noutputs:\n  - {id: o, type: stdout}\n", srv.Listener.Addr()))

	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"served", []string{"--addr", srv.Listener.Addr().String(), "--once"}, 0, "OUTPUT   TYPE", ""},
		{"from the config", []string{"-c", cfg}, 0, "OUTPUT   TYPE", ""},
		{"error answer", []string{"--addr", failing.Listener.Addr().String()}, 1, "", "503 Service Unavailable: starting"},
		{"nothing listening", []string{"--addr", dead, "--once"}, 1, "", "cannot reach the agent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"status"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout %q, stderr %q", code, tt.code, stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

// logRecords returns the JSON log records written to log so far.
func logRecords(log *testenv.SyncBuffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// countMsg returns how many records written to log have message msg.
func countMsg(log *testenv.SyncBuffer, msg string) int {
	n := 0
	for _, r := range logRecords(log) {
		if r["msg"] == msg {
			n++
		}
	}
	return n
}

// TestServiceSignals runs the service in process, its signals fed through
// its channel, through the paths of a reload: an invalid config refused,
// a change applied in place, one that needs a restart, one that cannot
// start (the previous one runs again), then a SIGTERM that drains and
// exits 0. Lines appended meanwhile all arrive.
func TestServiceSignals(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "logagent.yaml")
	config := func(dataDir, level string, inputs ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "data_dir: %s\nlog_format: json\nlog_level: %s\nhttp:\n  listen: 127.0.0.1:0\ninputs:\n", dataDir, level)
		for _, in := range inputs {
			fmt.Fprintf(&b, "  - id: %s\n    paths: [%q]\n    scan_interval: 50ms\n", in, filepath.Join(dir, "logs", in+".log"))
		}
		fmt.Fprintf(&b, "outputs:\n  - id: out\n    type: file\n    path: %s\n", filepath.Join(dir, "out", "{category}.log"))
		return b.String()
	}
	state := filepath.Join(dir, "state")
	writeFile(t, cfgPath, config(state, "info", "a"))
	writeFile(t, filepath.Join(dir, "logs", "a.log"), numbered("a", 0, 100))
	outA, outB := filepath.Join(dir, "out", "a.log"), filepath.Join(dir, "out", "b.log")
	written := 100
	appendA := func(n int) {
		f, err := os.OpenFile(filepath.Join(dir, "logs", "a.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(numbered("a", written, written+n))
		f.Close()
		written += n
		want := written
		waitFor(t, fmt.Sprintf("%d lines of a", want), func() bool { return len(lineCounts(outA)) >= want })
	}

	cfg, err := agent.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var log testenv.SyncBuffer
	sigs := make(chan os.Signal, 4)
	s := &service{path: cfgPath, stderr: &log, lim: newLimiter(5, 60e9), sigs: sigs}
	code := make(chan int, 1)
	go func() { code <- s.run(cfg) }()
	exited := false
	defer func() {
		if !exited {
			sigs <- syscall.SIGTERM
			<-code
		}
	}()
	waitFor(t, "the first 100 lines", func() bool { return len(lineCounts(outA)) >= 100 })
	var addr string
	for _, r := range logRecords(&log) {
		if r["msg"] == "serving /metrics, /healthz and /status" {
			addr, _ = r["addr"].(string)
		}
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	hup := func(text, msg string) {
		t.Helper()
		before := countMsg(&log, msg)
		writeFile(t, cfgPath, text)
		sigs <- syscall.SIGHUP
		waitFor(t, "log: "+msg, func() bool { return countMsg(&log, msg) > before })
	}
	hup(config(state, "info", "a")+"    bogus_key: 1\n", "reload refused: invalid configuration; the running one stays")
	appendA(100)

	hup(config(state, "info", "a", "b"), "reload: configuration is valid")
	writeFile(t, filepath.Join(dir, "logs", "b.log"), numbered("b", 0, 50))
	waitFor(t, "the lines of the new input", func() bool { return len(lineCounts(outB)) >= 50 })
	appendA(100)

	// log_level cannot change in place: the agent restarts.
	hup(config(state, "debug", "a", "b"), "reload: starting the new configuration")
	appendA(100)

	// A data_dir that is a file: valid, but the agent cannot start on it.
	blocked := filepath.Join(dir, "blocked")
	writeFile(t, blocked, "")
	hup(config(blocked, "debug", "a", "b"), "reload: the new configuration cannot start; starting the previous one again")
	appendA(100)

	sigs <- syscall.SIGTERM
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", c, log.String())
	}
	exited = true
	checkLines(t, outA, "a", written)
	checkLines(t, outB, "b", 50)
	if countMsg(&log, "stopping on signal") != 1 {
		t.Errorf("no record of the SIGTERM")
	}
}

// TestSwitchHandler checks that /status and the others answer 503 until an
// agent is running.
func TestSwitchHandler(t *testing.T) {
	var sw switchHandler
	rec := httptest.NewRecorder()
	sw.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before an agent: %d, want 503", rec.Code)
	}
	sw.set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	rec = httptest.NewRecorder()
	sw.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("with an agent: %d, want the agent's answer", rec.Code)
	}
}

// TestStopSignal checks how a SIGTERM that comes during a reload or a
// drain is taken: the first stops, a copy right after it (timeout(1) signals
// the process group too) is only logged. A later one exits the process:
// TestSecondSignal runs the binary for that.
func TestStopSignal(t *testing.T) {
	var log testenv.SyncBuffer
	s := &service{log: slog.New(slog.NewJSONHandler(&log, nil)), lim: newLimiter(5, 60e9)}
	if !s.stopSignal(syscall.SIGTERM) || !s.stopping {
		t.Fatal("the first SIGTERM does not stop")
	}
	if s.stopSignal(syscall.SIGINT) {
		t.Fatal("a second signal within the grace period counts as a first")
	}
	if countMsg(&log, "signal repeated right after the first (as timeout(1) sends it to the process group too): still delivering; send it again to exit at once") != 1 {
		t.Errorf("the repeated signal is not logged: %s", log.String())
	}
}
