// Package kestreltest is a Kestrel-compatible queue server for tests: named
// FIFO queues in memory, served over Kestrel's memcache text protocol (set,
// get, version, quit) and, through Handler, over its Thrift put. A Fault
// hook makes it answer NOT_STORED, CLIENT_ERROR or SERVER_ERROR, or drop
// the connection, as a real Kestrel can.
package kestreltest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/logagent/logagent/internal/tcptest"
	gen "github.com/logagent/logagent/internal/thriftgen/kestrel"
	"github.com/logagent/logagent/internal/thrifttest"
)

// Answer is what the server does with one item.
type Answer int

const (
	Store       Answer = iota // store it (or NOT_STORED if the queue is full)
	NotStored                 // answer NOT_STORED
	ClientError               // answer CLIENT_ERROR
	ServerError               // answer SERVER_ERROR and close the connection
	Drop                      // close the connection without answering
)

// Queues holds the queues, shared by the memcache and Thrift front ends.
type Queues struct {
	mu     sync.Mutex
	queues map[string][][]byte
	// MaxItems is how many items a queue holds before it refuses more
	// (0: no limit). Set before use.
	MaxItems int
	// MaxItemBytes is the largest item accepted; larger ones get
	// CLIENT_ERROR (0: no limit). Set before use.
	MaxItemBytes int
	// Fault, if set, is asked about each item before it is stored; n
	// counts the items offered so far, from 1.
	Fault func(queue string, n int) Answer
	n     int
	// Expiry records the last expiry seen (seconds or ms, as sent).
	Expiry int64
}

// NewQueues returns empty queues.
func NewQueues() *Queues { return &Queues{queues: map[string][][]byte{}} }

// offer decides and, for Store, stores item in queue.
func (q *Queues) offer(queue string, item []byte, expiry int64) Answer {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	q.Expiry = expiry
	a := Store
	if q.Fault != nil {
		a = q.Fault(queue, q.n)
	}
	if a != Store {
		return a
	}
	if q.MaxItemBytes > 0 && len(item) > q.MaxItemBytes {
		return ClientError
	}
	if q.MaxItems > 0 && len(q.queues[queue]) >= q.MaxItems {
		return NotStored
	}
	q.queues[queue] = append(q.queues[queue], bytes.Clone(item))
	return Store
}

// Get removes and returns the head of queue.
func (q *Queues) Get(queue string) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.queues[queue]
	if len(items) == 0 {
		return nil, false
	}
	q.queues[queue] = items[1:]
	return items[0], true
}

// Drain removes and returns every item of queue.
func (q *Queues) Drain(queue string) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.queues[queue]
	delete(q.queues, queue)
	return items
}

// Len returns how many items queue holds.
func (q *Queues) Len(queue string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queues[queue])
}

// Set runs f with the queues locked, to change MaxItems or Fault while
// serving.
func (q *Queues) Set(f func(q *Queues)) {
	q.mu.Lock()
	f(q)
	q.mu.Unlock()
}

// Handler serves Kestrel's Thrift put from q: it puts items until the first
// one refused and returns how many it put. A Drop or ServerError answer
// drops the connection.
type Handler struct{ Q *Queues }

func (h Handler) Put(ctx context.Context, queue string, items [][]byte, expirationMsec int32) (int32, error) {
	for k, it := range items {
		switch h.Q.offer(queue, it, int64(expirationMsec)) {
		case Store:
		case Drop, ServerError:
			thrifttest.Drop(ctx)
			return 0, nil
		default:
			return int32(k), nil
		}
	}
	return int32(len(items)), nil
}

// StartThrift starts a Kestrel Thrift server (framed, binary) over q.
func StartThrift(t testing.TB, q *Queues) *thrifttest.Server {
	return thrifttest.Start(t, gen.NewKestrelProcessor(Handler{Q: q}), false)
}

// Server is a memcache-protocol Kestrel server on 127.0.0.1: Addr, Stop
// and Restart are tcptest.Server's.
type Server struct {
	*tcptest.Server
	Q *Queues
}

// Start starts a memcache server over q on a free port and stops it when
// the test ends.
func Start(t testing.TB, q *Queues) *Server {
	s := &Server{Q: q}
	s.Server = tcptest.Start(t, s.serve)
	return s
}

func (s *Server) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		if r.Buffered() == 0 {
			// Answer what is pipelined before waiting for more.
			if w.Flush() != nil {
				return
			}
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		f := bytes.Fields(line)
		if len(f) == 0 {
			w.WriteString("ERROR\r\n")
			continue
		}
		switch string(f[0]) {
		case "set":
			if len(f) < 5 {
				w.WriteString("CLIENT_ERROR bad command line format\r\n")
				continue
			}
			queue := string(f[1])
			exp, err1 := strconv.ParseInt(string(f[3]), 10, 64)
			n, err2 := strconv.Atoi(string(f[4]))
			if err1 != nil || err2 != nil || n < 0 {
				w.WriteString("CLIENT_ERROR bad command line format\r\n")
				return
			}
			data := make([]byte, n+2)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if !bytes.HasSuffix(data, []byte("\r\n")) {
				w.WriteString("CLIENT_ERROR bad data chunk\r\n")
				w.Flush()
				return
			}
			switch s.Q.offer(queue, data[:n], exp) {
			case Store:
				w.WriteString("STORED\r\n")
			case NotStored:
				w.WriteString("NOT_STORED\r\n")
			case ClientError:
				w.WriteString("CLIENT_ERROR item too large\r\n")
			case ServerError:
				w.WriteString("SERVER_ERROR journal write failed\r\n")
				w.Flush()
				return
			case Drop:
				return
			}
		case "get":
			if len(f) < 2 {
				w.WriteString("ERROR\r\n")
				continue
			}
			queue := string(f[1])
			if item, ok := s.Q.Get(queue); ok {
				fmt.Fprintf(w, "VALUE %s 0 %d\r\n", queue, len(item))
				w.Write(item)
				w.WriteString("\r\n")
			}
			w.WriteString("END\r\n")
		case "version":
			w.WriteString("VERSION kestreltest\r\n")
		case "quit":
			w.Flush()
			return
		default:
			w.WriteString("ERROR\r\n")
		}
	}
}
