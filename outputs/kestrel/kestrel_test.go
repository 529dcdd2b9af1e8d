package kestrel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/sinkpeer"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/outputs/kestrel/kestreltest"
	"github.com/logagent/logagent/outputs/outputtest"
)

// peer is a running Kestrel stand-in, memcache or Thrift, over Q.
type peer struct {
	Q       *kestreltest.Queues
	addr    func() string
	stop    func()
	restart func()
	// got counts what Received drained from the queues.
	got *outputtest.Counter
}

func startPeer(t testing.TB, protocol string) *peer {
	q := kestreltest.NewQueues()
	if protocol == "thrift" {
		s := kestreltest.StartThrift(t, q)
		return &peer{Q: q, addr: s.Addr, stop: s.Stop, restart: s.Restart, got: outputtest.NewCounter()}
	}
	s := kestreltest.Start(t, q)
	return &peer{Q: q, addr: s.Addr, stop: s.Stop, restart: s.Restart, got: outputtest.NewCounter()}
}

// The methods of an outputtest.Peer.

func (p *peer) Addr() string { return p.addr() }
func (p *peer) Stop()        { p.stop() }
func (p *peer) Restart()     { p.restart() }

// Received drains every queue into the count of what the peer received.
func (p *peer) Received() *outputtest.Counter {
	for _, q := range p.Q.Names() {
		p.count(p.got, q)
	}
	return p.got
}

// Hold makes the next item offered wait, holding the queues, until
// release.
func (p *peer) Hold() (<-chan struct{}, func()) {
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p.Q.Set(func(q *kestreltest.Queues) {
		prev := q.Fault
		q.Fault = func(queue string, n int) kestreltest.Answer {
			once.Do(func() {
				close(held)
				<-release
			})
			if prev != nil {
				return prev(queue, n)
			}
			return kestreltest.Store
		}
	})
	return held, func() { close(release) }
}

// faultEvery returns a Fault answering a every nth item.
func faultEvery(nth int, a kestreltest.Answer) func(string, int) kestreltest.Answer {
	return func(_ string, n int) kestreltest.Answer {
		if n%nth == 0 {
			return a
		}
		return kestreltest.Store
	}
}

// TestConformance runs the tests every network output passes against
// kestreltest's server, in each protocol.
func TestConformance(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			set := func(f func(string, int) kestreltest.Answer) func(outputtest.Peer) {
				return func(p outputtest.Peer) {
					p.(*peer).Q.Set(func(q *kestreltest.Queues) { q.Fault = f })
				}
			}
			faults := []outputtest.Fault{
				{Name: "not stored", Set: set(func(_ string, n int) kestreltest.Answer {
					if n >= 1050 && n < 1100 {
						return kestreltest.NotStored
					}
					return kestreltest.Store
				})},
				{Name: "drop mid-batch", Set: set(faultEvery(650, kestreltest.Drop))},
			}
			if proto == "memcache" {
				faults = append(faults, outputtest.Fault{Name: "server error", Set: set(faultEvery(700, kestreltest.ServerError))})
			}
			outputtest.Conformance(t, outputtest.Harness{
				Start:  func(t testing.TB) outputtest.Peer { return startPeer(t, proto) },
				New:    func(t testing.TB, addrs ...string) outputtest.Output { return newOutput(t, proto, addrs...) },
				Faults: faults,
				Delivered: func(t *testing.T, sp outputtest.Peer, msgs []logagent.Message) {
					p := sp.(*peer)
					if p.Q.Len("web") != len(msgs)/2 || p.Q.Len("db") != len(msgs)/2 {
						t.Errorf("queues web %d, db %d", p.Q.Len("web"), p.Q.Len("db"))
					}
					want := int64(90)
					if proto == "thrift" {
						want = 90000
					}
					if p.Q.Expiry != want {
						t.Errorf("expiry %d, want %d", p.Q.Expiry, want)
					}
				},
			})
		})
	}
}

// count drains queue into a new Counter.
func (p *peer) count(c *outputtest.Counter, queue string) {
	for _, it := range p.Q.Drain(queue) {
		c.Add(it)
	}
}

func newOutput(t testing.TB, protocol string, hosts ...string) *Output {
	t.Helper()
	c := DefaultConfig()
	c.Hosts = hosts
	c.Protocol = protocol
	c.Expiry = 90 * time.Second
	c.Timeout = outputtest.CallTimeout
	o, err := New("kestrel-test", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.th != nil {
		o.th.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	} else {
		o.mc.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func testContext(t testing.TB) context.Context { return outputtest.Context(t) }

var protocols = []string{"memcache", "thrift"}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		fields []string
	}{
		{"ok", Config{Hosts: []string{"k1", "k2:22134"}, Protocol: "memcache", Timeout: time.Second}, nil},
		{"thrift", Config{Hosts: []string{"k1"}, Protocol: "thrift", Expiry: time.Hour, Timeout: time.Second}, nil},
		{"no hosts", Config{Protocol: "memcache", Timeout: time.Second}, []string{"hosts"}},
		{"protocol", Config{Hosts: []string{"k"}, Protocol: "text", Timeout: time.Second}, []string{"protocol"}},
		{"expiry 300h", Config{Hosts: []string{"k"}, Protocol: "memcache", Expiry: 300 * time.Hour, Timeout: time.Second}, nil},
		{"expiry past 2038", Config{Hosts: []string{"k"}, Protocol: "memcache", Expiry: 20 * 365 * 24 * time.Hour, Timeout: time.Second}, []string{"expiry"}},
		{"thrift expiry 596h", Config{Hosts: []string{"k"}, Protocol: "thrift", Expiry: 596 * time.Hour, Timeout: time.Second}, nil},
		{"thrift expiry 597h", Config{Hosts: []string{"k"}, Protocol: "thrift", Expiry: 597 * time.Hour, Timeout: time.Second}, []string{"expiry"}},
		{"negative expiry", Config{Hosts: []string{"k"}, Protocol: "memcache", Expiry: -time.Second, Timeout: time.Second}, []string{"expiry"}},
		{"max_item_bytes", Config{Hosts: []string{"k"}, Protocol: "memcache", MaxItemBytes: -1, Timeout: time.Second}, []string{"max_item_bytes"}},
		{"timeout", Config{Hosts: []string{"k", ""}, Protocol: "memcache"}, []string{"hosts[1]", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			got := outputtest.FieldsOf(t, err)
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestValidQueue(t *testing.T) {
	tests := []struct {
		q  string
		ok bool
	}{
		{"nginx", true}, {"nginx.access", true}, {"a-b_c+fanout", true},
		{"", false}, {"a b", false}, {"a\tb", false}, {"a\r\nb", false}, {"a/b", false}, {"~tmp", false},
		{string(make([]byte, 251)), false},
	}
	for _, tt := range tests {
		if got := ValidQueue(tt.q); got != tt.ok {
			t.Errorf("ValidQueue(%q) = %v", tt.q, got)
		}
	}
}

func TestDescribe(t *testing.T) {
	o := newOutput(t, "memcache", "127.0.0.1", "localhost:1")
	if got, want := o.Describe(), "hosts 127.0.0.1:22133, localhost:1 (kestrel: memcache)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	th := newOutput(t, "thrift", "127.0.0.1")
	if got, want := th.Describe(), "hosts 127.0.0.1:2229 (kestrel: thrift framed, binary)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	m := outputtest.Messages(outputtest.Source("jobs"), 0, 1, 0)[0]
	if got := o.Destination(&m); got != "queue jobs" {
		t.Errorf("Destination = %q", got)
	}
	if err := o.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestAnswers checks how one Send maps per-message answers: a full queue,
// an item over max_item_bytes, and a category that cannot name a queue.
func TestAnswers(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			p := startPeer(t, proto)
			p.Q.Set(func(q *kestreltest.Queues) { q.MaxItems = 6; q.MaxItemBytes = 1000 })
			o := newOutput(t, proto, p.addr())
			o.maxItem = 1000
			msgs := outputtest.Messages(outputtest.Source("web"), 0, 10, 20)
			msgs[2].Source = outputtest.Source("bad queue")
			msgs[4].Body = make([]byte, 1001) // over max_item_bytes: never sent
			err := o.Send(testContext(t), msgs)
			var pe *logagent.PartialError
			if !errors.As(err, &pe) {
				t.Fatalf("Send = %v, want a PartialError", err)
			}
			if fmt.Sprint(pe.Retry) != "[8 9]" || fmt.Sprint(pe.Permanent) != "[2 4]" {
				t.Errorf("retry %v permanent %v, want [8 9] [2 4] (%v)", pe.Retry, pe.Permanent, err)
			}
			if !errors.Is(err, ErrNotStored) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadQueue) {
				t.Errorf("error %v", err)
			}
		})
	}
}

// TestOversizedWithoutLimit shows why max_item_bytes exists: Kestrel
// answers an item over its maxItemSize NOT_STORED, as for a full queue, so
// without the limit the output can only send it again.
func TestOversizedWithoutLimit(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			p := startPeer(t, proto)
			p.Q.Set(func(q *kestreltest.Queues) { q.MaxItemBytes = 1000 })
			o := newOutput(t, proto, p.addr())
			msgs := outputtest.Messages(outputtest.Source("web"), 0, 3, 20)
			msgs[1].Body = make([]byte, 1001)
			err := o.Send(testContext(t), msgs)
			var pe *logagent.PartialError
			if !errors.As(err, &pe) || !errors.Is(err, ErrNotStored) || len(pe.Permanent) != 0 || !slices.Contains(pe.Retry, 1) {
				t.Fatalf("Send = %#v (%v), want item 1 retried after NOT_STORED", pe, err)
			}
		})
	}
}

// TestExpiry checks that an item keeps for the configured expiry on a
// server that reads it as Kestrel does: a memcache expiry of 1,000,000 s or
// more is a Unix time there.
func TestExpiry(t *testing.T) {
	tests := []struct {
		proto  string
		expiry time.Duration
	}{
		{"memcache", 90 * time.Second},
		{"memcache", 277*time.Hour + 46*time.Minute + 39*time.Second}, // 999,999 s: relative
		{"memcache", 300 * time.Hour},                                 // absolute
		{"memcache", 8000 * time.Hour},
		{"thrift", 90 * time.Second},
		{"thrift", 300 * time.Hour},
		{"thrift", maxThriftExpiry},
		{"memcache", 0},
		{"thrift", 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.proto, tt.expiry), func(t *testing.T) {
			p := startPeer(t, tt.proto)
			c := DefaultConfig()
			c.Hosts, c.Protocol, c.Expiry = []string{p.addr()}, tt.proto, tt.expiry
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			o, err := New("kestrel-test", c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			before := time.Now()
			if err := o.Send(testContext(t), outputtest.Messages(outputtest.Source("web"), 0, 1, 20)); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			items := p.Q.Items("web")
			if len(items) != 1 {
				t.Fatalf("%d items kept, want 1 (expiry field sent: %d)", len(items), p.Q.Expiry)
			}
			exp := items[0].Expires
			if tt.expiry == 0 {
				if !exp.IsZero() {
					t.Fatalf("item expires at %s, want never", exp)
				}
				return
			}
			// Memcache sends whole seconds, an absolute time truncated.
			lo, hi := before.Add(tt.expiry-time.Second), after.Add(tt.expiry+time.Second)
			if exp.Before(lo) || exp.After(hi) {
				t.Fatalf("item expires at %s, want between %s and %s (expiry field sent: %d)", exp, lo, hi, p.Q.Expiry)
			}
			// The server drops it once that time has passed.
			p.Q.Set(func(q *kestreltest.Queues) { q.Now = func() time.Time { return hi.Add(time.Second) } })
			if n := p.Q.Len("web"); n != 0 {
				t.Fatalf("%d items after their expiry", n)
			}
		})
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

func BenchmarkEncodeMemcache(b *testing.B) {
	msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
	size := 0
	for _, m := range msgs {
		size += len(m.Body)
	}
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for i := range msgs {
			writeSet(w, msgs[i].Source.Category, 90, msgs[i].Body)
		}
		w.Flush()
	}
}

func BenchmarkEncodeThrift(b *testing.B) {
	msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
	idx := make([]int, len(msgs))
	size := 0
	for i := range idx {
		idx[i] = i
		size += len(msgs[i].Body)
	}
	c := thriftrpc.New(discardConn{}, thriftrpc.Binary)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := writePutArgs(ctx, c.Proto, "web", msgs, idx, 90000); err != nil {
			b.Fatal(err)
		}
		c.Framed.Flush(ctx)
	}
}

// TestPeerProcess is the peer of BenchmarkSend in a child process (see
// sinkpeer); in an ordinary test run it does nothing. Peer "real/PROTO" is
// kestreltest's server, its queue drained every 10ms; "sink/PROTO" a
// server that answers every set STORED, every put with its item count,
// and keeps nothing.
func TestPeerProcess(t *testing.T) {
	sinkpeer.Serve(t, func(kind string) string {
		peer, proto, _ := strings.Cut(kind, "/")
		switch {
		case peer == "real":
			p := startPeer(t, proto)
			done := make(chan struct{})
			t.Cleanup(func() { close(done) })
			go func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
						p.Q.Drain("web")
					}
				}
			}()
			return p.addr()
		case peer == "sink" && proto == "memcache":
			return sinkpeer.StartMemcache(t).Addr()
		case peer == "sink" && proto == "thrift":
			return sinkpeer.StartThrift(t, false, func(method string, args []byte) (int32, error) {
				if method != "put" {
					return 0, fmt.Errorf("unexpected call %s", method)
				}
				n, err := sinkpeer.ThriftListLen(args, false, 2)
				return int32(n), err
			}).Addr()
		}
		t.Fatalf("unknown peer %q", kind)
		return ""
	})
}

// BenchmarkSend ships batches of 500 messages of 200 bytes to a peer in a
// child process, so that agent-cpu-ms/MB is this process's alone.
func BenchmarkSend(b *testing.B) {
	for _, proto := range protocols {
		for _, peer := range []string{"real", "sink"} {
			b.Run("proto="+proto+"/peer="+peer, func(b *testing.B) {
				p := sinkpeer.StartChild(b, "TestPeerProcess", peer+"/"+proto)
				o := newOutput(b, proto, p.Addr)
				msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
				sinkpeer.BenchSend(b, p, o, msgs)
			})
		}
	}
}
