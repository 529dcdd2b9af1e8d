// Package relay is the Thrift server under the relay inputs (inputs/scribe,
// inputs/flume): it accepts framed calls within the limits of a server that
// faces a network, hands each call to a processor, and turns the messages
// a call carries into one chunk whose acknowledgement by every routed
// output is the call's answer.
//
// A call's life: serveConn reads one frame (idle_timeout for its first
// byte, read_timeout for the rest, max_frame_bytes at most), the processor
// decodes it and calls the input's handler, which calls Deliver. Deliver
// answers "try later" at once when the relay is stopping, a routed output is
// failing or max_inflight_bytes are already in flight; otherwise it
// publishes the messages as one chunk and waits for its OnDone: the answer
// "delivered" is sent only then, so a client's OK means every routed output
// has the messages, and a relay killed at any point loses nothing a client
// was told was taken.
package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"golang.org/x/sync/semaphore"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/internal/zookeeper"
)

// Options are a relay server's limits, resolved and validated by the input
// type's package.
type Options struct {
	Listen string
	// Compact selects Thrift's compact protocol; binary otherwise (read
	// strict or not, written strict).
	Compact          bool
	MaxConnections   int
	MaxFrameBytes    int
	IdleTimeout      time.Duration // wait for the first byte of a call
	ReadTimeout      time.Duration // wait for the rest of a call once begun
	WriteTimeout     time.Duration // write of an answer
	MaxInflightBytes int64         // message bytes waiting for acknowledgement
	// Register, when set, keeps a node for the server in ZooKeeper
	// while it serves.
	Register *Register
}

// Result is what Deliver tells a handler to answer.
type Result int

const (
	Delivered Result = iota // every routed output acknowledged
	TryLater                // nothing was taken for good: send again later
)

// Status is the fb303 status of the relay.
type Status int

const (
	Alive    Status = iota // accepting
	Warning                // an output is failing: calls are answered try later
	Stopping               // shut down begun
)

// Counters count what the relay did. Safe for concurrent use.
type Counters struct {
	Calls         atomic.Int64 // calls that carried messages
	Received      atomic.Int64 // messages in calls answered delivered
	ReceivedBytes atomic.Int64 // their bytes
	TryLater      atomic.Int64 // calls answered try later
	Connections   atomic.Int64 // connections accepted
	Open          atomic.Int64 // connections open now
	Rejected      atomic.Int64 // connections closed at once: max_connections reached
	Oversized     atomic.Int64 // connections closed: a frame over max_frame_bytes
	Slow          atomic.Int64 // connections closed: a frame begun, not finished within read_timeout
	Idle          atomic.Int64 // connections closed: idle for idle_timeout
	Broken        atomic.Int64 // connections closed: a frame that could not be decoded
}

// Map returns the counters by name, for fb303's getCounters.
func (c *Counters) Map() map[string]int64 {
	return map[string]int64{
		"calls":                  c.Calls.Load(),
		"received":               c.Received.Load(),
		"received_bytes":         c.ReceivedBytes.Load(),
		"try_later":              c.TryLater.Load(),
		"connections":            c.Connections.Load(),
		"connections_open":       c.Open.Load(),
		"connections_rejected":   c.Rejected.Load(),
		"closed_frame_too_large": c.Oversized.Load(),
		"closed_read_timeout":    c.Slow.Load(),
		"closed_idle":            c.Idle.Load(),
		"closed_bad_frame":       c.Broken.Load(),
	}
}

// Server is one relay listener.
type Server struct {
	// immutable after New
	opt      Options
	env      inputs.Env
	proc     thrift.TProcessor
	ln       net.Listener
	inflight *semaphore.Weighted
	started  time.Time
	// abortCtx is done when the drain after a stop is given up: calls
	// still waiting answer try later. Handlers run under it.
	abortCtx context.Context
	abort    context.CancelFunc

	// atomic
	stopping atomic.Bool
	counters Counters

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
	calls sync.WaitGroup // Deliver calls under way
	wg    sync.WaitGroup // connection goroutines
}

// Listen binds opt.Listen; the server serves nothing until Run.
func Listen(opt Options, env inputs.Env) (*Server, error) {
	ln, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", opt.Listen, err)
	}
	s := &Server{
		opt:      opt,
		env:      env,
		ln:       ln,
		inflight: semaphore.NewWeighted(opt.MaxInflightBytes),
		conns:    map[net.Conn]struct{}{},
		started:  time.Now(),
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s, nil
}

// SetProcessor sets the processor of the calls; called once, before Run.
func (s *Server) SetProcessor(p thrift.TProcessor) { s.proc = p }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Counters returns the server's counters.
func (s *Server) Counters() *Counters { return &s.counters }

// AliveSince is when the server started listening.
func (s *Server) AliveSince() time.Time { return s.started }

// Status is the fb303 status: Stopping once Run's ctx is done, Warning
// while a routed output fails, Alive otherwise.
func (s *Server) Status() (Status, string) {
	if s.stopping.Load() {
		return Stopping, "stopping"
	}
	if why := s.env.Failing(); why != "" {
		return Warning, why
	}
	return Alive, ""
}

// Close closes the listener of a server whose Run was never called.
func (s *Server) Close() error { return s.ln.Close() }

// Run serves until ctx is done. Then it removes its node from ZooKeeper
// (so that no client is sent to a relay that no longer listens), closes the
// listener, waits up to env.DrainTimeout for calls being delivered (new
// calls on open connections are answered try later meanwhile), answers try
// later to those still waiting, and closes every connection.
func (s *Server) Run(ctx context.Context) error {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.accept()
	}()
	regCtx, unregister := context.WithCancel(context.Background())
	registered := make(chan struct{})
	if r := s.opt.Register; r != nil {
		reg := zookeeper.NewRegistration(r.ZooKeeper, r.advertised(s.ln.Addr()), s.env.Log)
		go func() {
			defer close(registered)
			reg.Run(regCtx)
		}()
	} else {
		close(registered)
	}
	<-ctx.Done()
	s.stopping.Store(true)
	unregister()
	<-registered
	s.ln.Close()
	drained := make(chan struct{})
	go func() {
		s.calls.Wait()
		close(drained)
	}()
	timer := time.NewTimer(s.env.DrainTimeout)
	select {
	case <-drained:
		timer.Stop()
	case <-timer.C:
		s.env.Log.Warn("relay: calls still waiting for delivery when the drain timed out; answered try later")
	}
	s.abort()
	<-drained
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) accept() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait a little, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.env.Log.Warn("relay: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		if len(s.conns) >= s.opt.MaxConnections || s.stopping.Load() {
			s.mu.Unlock()
			s.counters.Rejected.Add(1)
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.counters.Connections.Add(1)
		s.counters.Open.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.counters.Open.Add(-1)
			c.Close()
		}()
	}
}

// conf is the Thrift configuration of decoding: binary read non-strict
// (old Scribe clients send the old message header), written strict.
func (s *Server) conf() *thrift.TConfiguration {
	f, t := false, true
	return &thrift.TConfiguration{
		MaxMessageSize:     int32(min(s.opt.MaxFrameBytes, 1<<31-1)),
		MaxFrameSize:       int32(min(s.opt.MaxFrameBytes, 1<<31-1)),
		TBinaryStrictRead:  &f,
		TBinaryStrictWrite: &t,
	}
}

// serveConn reads frames and answers them, one call at a time, until the
// client closes, breaks a limit, or the server stops.
func (s *Server) serveConn(c net.Conn) {
	log := s.env.Log.With("client", c.RemoteAddr().String())
	conf := s.conf()
	in := thrift.NewTMemoryBuffer()
	out := thrift.NewTMemoryBuffer()
	var iprot, oprot thrift.TProtocol
	if s.opt.Compact {
		iprot, oprot = thrift.NewTCompactProtocolConf(in, conf), thrift.NewTCompactProtocolConf(out, conf)
	} else {
		iprot, oprot = thrift.NewTBinaryProtocolConf(in, conf), thrift.NewTBinaryProtocolConf(out, conf)
	}
	var hdr [4]byte
	for {
		c.SetReadDeadline(time.Now().Add(s.opt.IdleTimeout))
		if _, err := io.ReadFull(c, hdr[:1]); err != nil {
			if isTimeout(err) {
				s.counters.Idle.Add(1)
			}
			return
		}
		c.SetReadDeadline(time.Now().Add(s.opt.ReadTimeout))
		if _, err := io.ReadFull(c, hdr[1:]); err != nil {
			s.slow(err, log)
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size > uint32(s.opt.MaxFrameBytes) {
			s.counters.Oversized.Add(1)
			log.Warn("relay: frame larger than max_frame_bytes; connection closed", "bytes", size, "max_frame_bytes", s.opt.MaxFrameBytes)
			return
		}
		// Decoding copies strings out of the frame: the buffer is reused.
		in.Reset()
		in.Grow(int(size))
		if _, err := io.CopyN(in.Buffer, c, int64(size)); err != nil {
			s.slow(err, log)
			return
		}
		out.Reset()
		ok, err := s.proc.Process(s.abortCtx, iprot, oprot)
		if out.Len() > 0 {
			binary.BigEndian.PutUint32(hdr[:], uint32(out.Len()))
			c.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
			if _, werr := (&net.Buffers{hdr[:], out.Bytes()}).WriteTo(c); werr != nil {
				return
			}
		}
		if !ok {
			s.counters.Broken.Add(1)
			log.Warn("relay: call could not be decoded; connection closed", "err", err)
			return
		}
	}
}

func (s *Server) slow(err error, log *slog.Logger) {
	if isTimeout(err) {
		s.counters.Slow.Add(1)
		log.Warn("relay: a frame begun was not finished within read_timeout; connection closed", "read_timeout", s.opt.ReadTimeout)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Deliver hands msgs, of size bytes in all, to the routed outputs as one
// chunk and waits until every one has acknowledged them. It returns
// TryLater at once, taking nothing, while the server is stopping, an output
// fails, or max_inflight_bytes are in flight; and TryLater if the drain
// after a stop gave up waiting (the messages may then arrive twice).
func (s *Server) Deliver(msgs []logagent.Message, size int64) (Result, string) {
	if len(msgs) == 0 {
		return Delivered, ""
	}
	s.calls.Add(1)
	defer s.calls.Done()
	r, why := s.deliver(msgs, size)
	if r == TryLater {
		s.counters.TryLater.Add(1)
	} else {
		s.counters.Calls.Add(1)
		s.counters.Received.Add(int64(len(msgs)))
		s.counters.ReceivedBytes.Add(size)
	}
	return r, why
}

func (s *Server) deliver(msgs []logagent.Message, size int64) (Result, string) {
	if s.stopping.Load() {
		return TryLater, "stopping"
	}
	if why := s.env.Failing(); why != "" {
		return TryLater, why
	}
	// A call larger than the whole bound still gets through, alone.
	charge := min(size, s.opt.MaxInflightBytes)
	if !s.inflight.TryAcquire(charge) {
		return TryLater, "max_inflight_bytes reached"
	}
	defer s.inflight.Release(charge)
	done := make(chan struct{})
	c := &logagent.Chunk{Messages: msgs, OnDone: func() { close(done) }, CaughtUp: true}
	if err := s.env.Publish(s.abortCtx, c); err != nil {
		return TryLater, "stopping"
	}
	select {
	case <-done:
		return Delivered, ""
	case <-s.abortCtx.Done():
		return TryLater, "stopping"
	}
}
