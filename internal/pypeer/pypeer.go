// Package pypeer runs, for interop tests, a Scribe or Flume server that is
// not ours: Debian's python3-thrift, with Python code generated at test time
// by Debian's thrift compiler from the IDL in thrift/. The tests need the
// Debian packages thrift-compiler and python3-thrift; without them a test is
// skipped, unless CI is set, when it fails.
package pypeer

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/server.py
var script []byte

// Peer is a running Python Thrift server.
type Peer struct {
	Addr string
	out  string
}

// Start starts the server for service ("scribe" or "flume") speaking
// protocol ("binary" or "compact") on a free port of 127.0.0.1, and kills it
// (by its PID) when the test ends.
func Start(t testing.TB, service, protocol string) *Peer {
	t.Helper()
	python, dir, gen, scriptPath := prepare(t, service, "server.py", script)
	port := freePort(t)
	p := &Peer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out: filepath.Join(dir, "received.jsonl")}
	cmd := exec.Command(python, scriptPath, "--gen", gen, "--service", service,
		"--port", strconv.Itoa(port), "--protocol", protocol, "--out", p.out)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start python server: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // by its PID, not yet waited for
		}
		<-exited
	})
	// Wait until it listens, or exits. Python starting and importing the
	// generated code takes a while on a slow machine: the limit bounds a
	// hung start only.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", p.Addr, 10*time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("python %s server exited before it listened on %s: %v", service, p.Addr, waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("python %s server did not listen on %s: %v", service, p.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Records returns the entries received so far, one decoded JSON object
// each: {"category", "message"} for Scribe, {"headers", "body"} for Flume.
func (p *Peer) Records(t testing.TB) []map[string]any {
	t.Helper()
	f, err := os.Open(p.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A line being written: read again later.
			break
		}
		recs = append(recs, r)
	}
	return recs
}

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("interop test needs %s", what)
	}
	t.Skipf("interop test needs %s", what)
}

// findPython returns a python3 that can import thrift: Debian's first, as
// python3-thrift installs for it, then the one on PATH.
func findPython() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(p, "-c", "import thrift.protocol.TCompactProtocol").Run(); err == nil {
			return p
		}
	}
	return ""
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	// this file is internal/pypeer/pypeer.go
	return filepath.Join(filepath.Dir(file), "..", "..")
}

//go:embed testdata/client.py
var clientScript []byte

// Client is a running Python Scribe client (testdata/client.py).
type Client struct {
	acked string
	done  chan error
}

// StartClient starts a Python Scribe client sending count entries of
// category to addr, each message testenv.Line(tag, seq) and a newline, in
// calls of batch entries; each call is sent again until answered OK. The
// process is killed (by its PID) when the test ends.
func StartClient(t testing.TB, addr, category, tag string, count, batch int) *Client {
	t.Helper()
	python, dir, gen, scriptPath := prepare(t, "scribe", "client.py", clientScript)
	host, port, _ := net.SplitHostPort(addr)
	c := &Client{acked: filepath.Join(dir, "acked"), done: make(chan error, 1)}
	cmd := exec.Command(python, scriptPath, "--gen", gen, "--host", host, "--port", port,
		"--category", category, "--tag", tag, "--count", strconv.Itoa(count),
		"--batch", strconv.Itoa(batch), "--acked", c.acked)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start python client: %v", err)
	}
	go func() { c.done <- cmd.Wait() }()
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if proc, err := os.FindProcess(pid); err == nil {
			proc.Kill()
		}
	})
	return c
}

// Done is sent the client's exit once it has sent everything.
func (c *Client) Done() <-chan error { return c.done }

// Acked returns the sequence numbers answered OK so far.
func (c *Client) Acked(t testing.TB) []int64 {
	t.Helper()
	b, err := os.ReadFile(c.acked)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []int64
	for _, l := range strings.Split(string(b), "\n") {
		if n, err := strconv.ParseInt(l, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// prepare finds python3 and Thrift's compiler (skipping the test, or
// failing it under CI, when one is missing), generates service's Python
// code into dir/gen and writes script as dir/name: what a Python peer
// runs.
func prepare(t testing.TB, service, name string, script []byte) (python, dir, gen, scriptPath string) {
	t.Helper()
	thriftBin, err := exec.LookPath("thrift")
	if err != nil {
		missing(t, "the thrift compiler (Debian package thrift-compiler)")
	}
	python = findPython()
	if python == "" {
		missing(t, "python3 with the thrift module (Debian package python3-thrift)")
	}
	dir = t.TempDir()
	gen = filepath.Join(dir, "gen")
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	idl := filepath.Join(repoRoot(t), "thrift", service+".thrift")
	if out, err := exec.Command(thriftBin, "--gen", "py", "-out", gen, idl).CombinedOutput(); err != nil {
		t.Fatalf("thrift --gen py %s: %v\n%s", idl, err, out)
	}
	scriptPath = filepath.Join(dir, name)
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatal(err)
	}
	return python, dir, gen, scriptPath
}
