// Package kestreltest is a Kestrel-compatible queue server for tests: named
// FIFO queues in memory, served over Kestrel's memcache text protocol (set,
// get, version, quit) and, through Handler, over its Thrift put.
//
// It follows Kestrel's rules (net.lag.kestrel MemcacheHandler, ThriftHandler
// and PersistentQueue.add, Kestrel 2.4):
//   - a memcache set's expiry is whole seconds: 0 never expires, below
//     1,000,000 counts from now, 1,000,000 or more is an absolute Unix time;
//     it is read as a 32-bit integer. A Thrift put's expiration_msec counts
//     milliseconds from now (0: never). An expired item is never returned.
//   - an item larger than MaxItemBytes, or offered to a full queue, is
//     refused: NOT_STORED (memcache), or put stops counting there (Thrift).
//   - a malformed set is answered CLIENT_ERROR, bare.
//
// A Fault hook makes it answer NOT_STORED, CLIENT_ERROR or SERVER_ERROR (which
// Kestrel sends when it refuses writes, and then disconnects), or drop the
// connection, as a real Kestrel can.
package kestreltest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/tcptest"
	gen "github.com/logagent/logagent/internal/thriftgen/kestrel"
	"github.com/logagent/logagent/internal/thrifttest"
)

// Answer is what the server does with one item.
type Answer int

const (
	Store       Answer = iota // store it (or NOT_STORED if it is too large or the queue is full)
	NotStored                 // answer NOT_STORED
	ClientError               // answer CLIENT_ERROR
	ServerError               // answer SERVER_ERROR and close the connection
	Drop                      // close the connection without answering
)

// Item is one item held in a queue.
type Item struct {
	Data []byte
	// Expires is when Kestrel drops the item unread; zero: never.
	Expires time.Time
}

// Queues holds the queues, shared by the memcache and Thrift front ends.
type Queues struct {
	mu     sync.Mutex
	queues map[string][]Item
	// MaxItems is how many items a queue holds before it refuses more
	// (0: no limit). Set before use.
	MaxItems int
	// MaxItemBytes is Kestrel's maxItemSize: a larger item is refused
	// with NOT_STORED (0: no limit). Set before use.
	MaxItemBytes int
	// Fault, if set, is asked about each item before it is stored; n
	// counts the items offered so far, from 1.
	Fault func(queue string, n int) Answer
	// Now is the server's clock (time.Now when nil): a test moves it on
	// to see items expire.
	Now func() time.Time
	n   int
	// Expiry records the last expiry seen, as sent (seconds or ms).
	Expiry int64
}

// NewQueues returns empty queues.
func NewQueues() *Queues { return &Queues{queues: map[string][]Item{}} }

func (q *Queues) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

// memcacheExpiry is when an item set with expiry (the memcache field)
// expires, the way Kestrel reads it.
func memcacheExpiry(now time.Time, expiry int64) time.Time {
	switch {
	case expiry == 0:
		return time.Time{}
	case expiry < 1000000:
		return now.Add(time.Duration(expiry) * time.Second)
	default:
		return time.Unix(expiry, 0)
	}
}

// offer decides and, for Store, stores item in queue. expires computes the
// item's expiry from the server's clock.
func (q *Queues) offer(queue string, item []byte, sent int64, expires func(now time.Time) time.Time) Answer {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	q.Expiry = sent
	a := Store
	if q.Fault != nil {
		a = q.Fault(queue, q.n)
	}
	if a != Store {
		return a
	}
	if q.MaxItemBytes > 0 && len(item) > q.MaxItemBytes {
		return NotStored
	}
	q.expireHead(queue)
	if q.MaxItems > 0 && len(q.queues[queue]) >= q.MaxItems {
		return NotStored
	}
	q.queues[queue] = append(q.queues[queue], Item{Data: bytes.Clone(item), Expires: expires(q.now())})
	return Store
}

// expireHead drops the expired items at the head of queue, as Kestrel does
// before it adds or removes an item: an expired item further back goes
// when it reaches the head, so none is ever returned.
func (q *Queues) expireHead(queue string) {
	items := q.queues[queue]
	now := q.now()
	k := 0
	for k < len(items) && !items[k].Expires.IsZero() && !now.Before(items[k].Expires) {
		k++
	}
	if k > 0 {
		clear(items[:k])
		q.queues[queue] = items[k:]
	}
}

// expire drops every expired item of queue, wherever it is: what a reader
// would get, for Len, Drain and Items.
func (q *Queues) expire(queue string) {
	items := q.queues[queue]
	now := q.now()
	kept := items[:0]
	for _, it := range items {
		if it.Expires.IsZero() || now.Before(it.Expires) {
			kept = append(kept, it)
		}
	}
	clear(items[len(kept):])
	q.queues[queue] = kept
}

// Get removes and returns the head of queue.
func (q *Queues) Get(queue string) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.queues[queue]
	for len(items) > 0 && !items[0].Expires.IsZero() && !q.now().Before(items[0].Expires) {
		items = items[1:]
	}
	if len(items) == 0 {
		q.queues[queue] = items
		return nil, false
	}
	q.queues[queue] = items[1:]
	return items[0].Data, true
}

// Drain removes and returns every item of queue.
func (q *Queues) Drain(queue string) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expire(queue)
	items := q.queues[queue]
	delete(q.queues, queue)
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it.Data
	}
	return out
}

// Names returns the names of the queues that hold items, sorted.
func (q *Queues) Names() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var names []string
	for name, items := range q.queues {
		if len(items) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Items returns the items of queue that have not expired, leaving them
// there.
func (q *Queues) Items(queue string) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expire(queue)
	return append([]Item(nil), q.queues[queue]...)
}

// Len returns how many items queue holds.
func (q *Queues) Len(queue string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expire(queue)
	return len(q.queues[queue])
}

// Set runs f with the queues locked, to change MaxItems, Fault or Now
// while serving.
func (q *Queues) Set(f func(q *Queues)) {
	q.mu.Lock()
	f(q)
	q.mu.Unlock()
}

// Handler serves Kestrel's Thrift put from q: it puts items until the first
// one refused and returns how many it put. expiration_msec counts from now
// (0: never). A Drop or ServerError answer drops the connection.
type Handler struct{ Q *Queues }

func (h Handler) Put(ctx context.Context, queue string, items [][]byte, expirationMsec int32) (int32, error) {
	expires := func(now time.Time) time.Time {
		if expirationMsec == 0 {
			return time.Time{}
		}
		return now.Add(time.Duration(expirationMsec) * time.Millisecond)
	}
	for k, it := range items {
		switch h.Q.offer(queue, it, int64(expirationMsec), expires) {
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
				w.WriteString("CLIENT_ERROR\r\n")
				continue
			}
			queue := string(f[1])
			// Kestrel parses flags and expiry as Java ints.
			_, err0 := strconv.ParseInt(string(f[2]), 10, 32)
			exp, err1 := strconv.ParseInt(string(f[3]), 10, 32)
			n, err2 := strconv.Atoi(string(f[4]))
			if err0 != nil || err1 != nil || err2 != nil || n < 0 || n > math.MaxInt32 {
				w.WriteString("CLIENT_ERROR\r\n")
				w.Flush()
				return
			}
			data := make([]byte, n+2)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if !bytes.HasSuffix(data, []byte("\r\n")) {
				w.WriteString("CLIENT_ERROR\r\n")
				w.Flush()
				return
			}
			expires := func(now time.Time) time.Time { return memcacheExpiry(now, exp) }
			switch s.Q.offer(queue, data[:n], exp, expires) {
			case Store:
				w.WriteString("STORED\r\n")
			case NotStored:
				w.WriteString("NOT_STORED\r\n")
			case ClientError:
				w.WriteString("CLIENT_ERROR\r\n")
			case ServerError:
				w.WriteString("SERVER_ERROR\r\n")
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
