// Package tcptest is a TCP server for tests on 127.0.0.1 that can be
// stopped and started again on the same port, to test how clients survive
// servers that die. The protocol is the caller's: a function serving one
// connection.
package tcptest

import (
	"net"
	"sync"
	"testing"
)

// Server accepts connections and serves each in its own goroutine.
type Server struct {
	t     testing.TB
	serve func(net.Conn)
	addr  string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// Start listens on a free port of 127.0.0.1, serves each connection with
// serve (which returns when it is done with it; the connection is then
// closed), and stops when the test ends.
func Start(t testing.TB, serve func(net.Conn)) *Server {
	s := &Server{t: t, serve: serve, addr: "127.0.0.1:0"}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Restart listens again on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("tcptest: listen %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.ln, s.addr, s.conns = ln, ln.Addr().String(), map[net.Conn]bool{}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
}

// Stop closes the listener and every connection, and waits for the
// connections' goroutines.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.serve(c)
		}()
	}
}
