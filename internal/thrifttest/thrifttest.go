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
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent/internal/tcptest"
)

// Server is a Thrift server on 127.0.0.1: Addr, Stop and Restart are
// tcptest.Server's.
type Server struct {
	*tcptest.Server
	processor thrift.TProcessor
	compact   bool
	maxFrame  int32
}

// Start starts a server for processor on a free port of 127.0.0.1 and stops
// it when the test ends. It reads frames of up to Thrift's default maximum,
// 16,384,000 bytes.
func Start(t testing.TB, processor thrift.TProcessor, compact bool) *Server {
	return StartMaxFrame(t, processor, compact, 0)
}

// StartMaxFrame is Start with a server that refuses (closes the connection
// on) a frame larger than maxFrame bytes; 0 for Thrift's default.
func StartMaxFrame(t testing.TB, processor thrift.TProcessor, compact bool, maxFrame int32) *Server {
	s := &Server{processor: processor, compact: compact, maxFrame: maxFrame}
	s.Server = tcptest.Start(t, s.serve)
	return s
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
	cfg := &thrift.TConfiguration{MaxFrameSize: s.maxFrame}
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
