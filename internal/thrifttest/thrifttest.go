// Package thrifttest runs a Thrift server for tests: a generated processor
// from internal/thriftgen behind the apache/thrift framed transport
// and binary or compact protocol, on 127.0.0.1. It can be stopped and
// started again on the same port, and a handler can drop the connection of
// the call it is serving, to test how clients survive servers that die.
package thrifttest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

// Server is a Thrift server on 127.0.0.1.
type Server struct {
	t         testing.TB
	processor thrift.TProcessor
	compact   bool
	addr      string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// Start starts a server for processor on a free port of 127.0.0.1 and stops
// it when the test ends.
func Start(t testing.TB, processor thrift.TProcessor, compact bool) *Server {
	s := &Server{t: t, processor: processor, compact: compact, addr: "127.0.0.1:0"}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Restart starts listening again on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("thrifttest: listen %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.addr = ln.Addr().String()
	s.conns = map[net.Conn]bool{}
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
		go s.serve(c)
	}
}

type connKey struct{}

// Drop closes the connection of the call that ctx belongs to: the reply of
// the call is never sent. For use inside handlers.
func Drop(ctx context.Context) {
	if c, ok := ctx.Value(connKey{}).(net.Conn); ok {
		c.Close()
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	cfg := &thrift.TConfiguration{}
	trans := thrift.NewTFramedTransportConf(thrift.NewStreamTransportRW(c), cfg)
	var proto thrift.TProtocol
	if s.compact {
		proto = thrift.NewTCompactProtocolConf(trans, cfg)
	} else {
		proto = thrift.NewTBinaryProtocolConf(trans, cfg)
	}
	ctx := context.WithValue(context.Background(), connKey{}, c)
	for {
		ok, err := s.processor.Process(ctx, proto, proto)
		if err != nil {
			var te thrift.TTransportException
			if errors.As(err, &te) || !ok {
				return
			}
		}
		if !ok {
			return
		}
	}
}
