// Package zktest runs Debian's ZooKeeper (package zookeeper) for tests: a
// standalone server on 127.0.0.1, a free port and a temporary data dir,
// stopped (by its PID) when the test ends. Without Java or the ZooKeeper jar
// a test is skipped, unless CI is set, when it fails.
package zktest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// Jar is where Debian's zookeeper package installs the server.
const Jar = "/usr/share/java/zookeeper.jar"

// Server is a running ZooKeeper.
type Server struct {
	Addr string
	t    testing.TB
	dir  string
	java string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a ZooKeeper on a free port of 127.0.0.1 and waits until it
// answers.
func Start(t testing.TB) *Server {
	t.Helper()
	java, err := exec.LookPath("java")
	if _, serr := os.Stat(Jar); err != nil || serr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ZooKeeper tests need Debian's zookeeper package (java and %s)", Jar)
		}
		t.Skipf("ZooKeeper tests need Debian's zookeeper package (java and %s)", Jar)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`tickTime=500
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
minSessionTimeout=1000
maxSessionTimeout=60000
4lw.commands.whitelist=*
`, filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, dir: dir, java: java}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again on the same port and data dir (after
// Stop) and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("zookeeper already running")
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.java, "-Xmx128m", "-XX:+UseSerialGC", "-cp", Jar+":"+s.dir,
		"-Dzookeeper.log.dir="+s.dir, "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start zookeeper: %v", err)
	}
	logf.Close()
	s.cmd = cmd
	s.mu.Unlock()
	// A bound for a hung start, not a timing check.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("ruok"))
			b := make([]byte, 4)
			n, _ := c.Read(b)
			c.Close()
			if string(b[:n]) == "imok" {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "zookeeper.log"))
			s.t.Fatalf("zookeeper did not start on %s:\n%s", s.Addr, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Proxy is a TCP proxy to the server that can cut its clients off: with
// the server up and its clients unable to reach it for longer than their
// session timeout, their sessions expire, as after a network partition.
type Proxy struct {
	Addr string
	ln   net.Listener

	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
	wg      sync.WaitGroup
}

// Proxy starts a proxy to s, stopped when the test ends.
func (s *Server) Proxy(t testing.TB) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.blocked {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", s.Addr)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.wg.Add(2)
			p.mu.Unlock()
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.Block(true)
		p.wg.Wait()
	})
	return p
}

// Block cuts every client off and refuses new ones (true), or lets them
// through again (false).
func (p *Proxy) Block(b bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = b
	if b {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// Conn returns a client session, closed when the test ends.
func (s *Server) Conn(t testing.TB) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{s.Addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.Now().Add(2 * time.Minute)
	for c.State() != zk.StateHasSession {
		if time.Now().After(deadline) {
			t.Fatalf("no ZooKeeper session with %s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// MkdirAll creates path and its parents as persistent nodes.
func MkdirAll(t testing.TB, c *zk.Conn, path string) {
	t.Helper()
	p := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		p += "/" + part
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
	}
}
