package scribe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/pypeer"
	"github.com/logagent/logagent/internal/sinkpeer"
	gen "github.com/logagent/logagent/internal/thriftgen/scribe"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/internal/thrifttest"
	"github.com/logagent/logagent/outputs/outputtest"
)

// peer is a Scribe server handler that counts what it accepts and can
// misbehave for a number of calls.
type peer struct {
	count *outputtest.Counter

	mu         sync.Mutex
	calls      int
	tryLater   int // next calls answered TRY_LATER
	refuse     int // next calls answered answer
	answer     gen.ResultCode
	drop       int // next calls whose connection is closed before answering
	categories map[string]int
	badEntries int
	// Gate holds a call for Hold (outputtest.Peer).
	outputtest.Gate
}

func newPeer() *peer { return &peer{count: outputtest.NewCounter(), categories: map[string]int{}} }

func (p *peer) Log(ctx context.Context, msgs []*gen.LogEntry) (gen.ResultCode, error) {
	p.Pass()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.drop > 0 {
		p.drop--
		thrifttest.Drop(ctx)
		return gen.ResultCode_OK, nil
	}
	if p.tryLater > 0 {
		p.tryLater--
		return gen.ResultCode_TRY_LATER, nil
	}
	if p.refuse > 0 {
		p.refuse--
		return p.answer, nil
	}
	for _, m := range msgs {
		if !strings.HasSuffix(m.Message, "\n") || strings.Count(m.Message, "\n") != 1 {
			p.badEntries++
		}
		p.categories[m.Category]++
		p.count.Add([]byte(m.Message))
	}
	return gen.ResultCode_OK, nil
}

func (p *peer) set(f func(p *peer)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

func startPeer(t testing.TB) (*peer, *thrifttest.Server) {
	p := newPeer()
	return p, thrifttest.Start(t, gen.NewScribeProcessor(p), false)
}

// suitePeer is a peer for outputtest.Conformance.
type suitePeer struct {
	*peer
	*thrifttest.Server
}

func (p suitePeer) Received() *outputtest.Counter { return p.count }

// TestConformance runs the tests every network output passes against an
// apache/thrift Scribe server.
func TestConformance(t *testing.T) {
	outputtest.Conformance(t, outputtest.Harness{
		Start: func(t testing.TB) outputtest.Peer {
			p, srv := startPeer(t)
			return suitePeer{p, srv}
		},
		New: func(t testing.TB, addrs ...string) outputtest.Output { return newOutput(t, addrs...) },
		Faults: []outputtest.Fault{
			{Name: "try later", Set: func(p outputtest.Peer) { p.(suitePeer).set(func(p *peer) { p.tryLater = 5 }) }},
			{Name: "drop mid-call", Set: func(p outputtest.Peer) { p.(suitePeer).set(func(p *peer) { p.drop = 3 }) }},
		},
		Delivered: func(t *testing.T, sp outputtest.Peer, msgs []logagent.Message) {
			p := sp.(suitePeer).peer
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.categories["web"] != len(msgs)/2 || p.categories["db"] != len(msgs)/2 || p.badEntries != 0 {
				t.Errorf("categories %v, bad entries %d", p.categories, p.badEntries)
			}
		},
	})
}

func newOutput(t testing.TB, hosts ...string) *Output {
	t.Helper()
	c := DefaultConfig()
	c.Hosts = hosts
	c.Timeout = outputtest.CallTimeout
	o, err := New("scribe-test", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Short host backoff, so that a host that comes back is used again
	// within the test.
	o.pool.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	t.Cleanup(func() { o.Close() })
	return o
}

func testContext(t testing.TB) context.Context { return outputtest.Context(t) }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		hosts  []string
		tmo    time.Duration
		fields []string
	}{
		{"ok", []string{"127.0.0.1:1463", "scribe.example.com", "[::1]:1464"}, time.Second, nil},
		{"no hosts", nil, time.Second, []string{"hosts"}},
		{"bad port", []string{"a:1463", "b:0", "c:x"}, time.Second, []string{"hosts[1]", "hosts[2]"}},
		{"duplicate", []string{"a", "a:1463"}, time.Second, []string{"hosts[1]"}},
		{"bad name", []string{"a b"}, time.Second, []string{"hosts[0]"}},
		{"timeout", []string{"a"}, 0, []string{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Hosts: tt.hosts, Timeout: tt.tmo}
			err := c.Validate()
			got := outputtest.FieldsOf(t, err)
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	o := newOutput(t, "127.0.0.1", "localhost:1500")
	if got, want := o.Describe(), "hosts 127.0.0.1:1463, localhost:1500 (scribe: thrift framed, binary)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	m := outputtest.Messages(outputtest.Source("nginx"), 0, 1, 0)[0]
	if got := o.Destination(&m); got != "category nginx" {
		t.Errorf("Destination = %q", got)
	}
	if err := o.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	bad := newOutput(t, "no-such-host.invalid")
	if err := bad.Check(context.Background()); err == nil {
		t.Error("Check of an unresolvable host succeeded")
	}
}

func TestEmptyCategoryIsPermanent(t *testing.T) {
	p, srv := startPeer(t)
	o := newOutput(t, srv.Addr())
	msgs := outputtest.Messages(outputtest.Source("web"), 0, 4, 10)
	msgs[1].Source = outputtest.Source("")
	err := o.Send(testContext(t), msgs)
	var pe *logagent.PartialError
	if !errors.As(err, &pe) || fmt.Sprint(pe.Permanent) != "[1]" || len(pe.Retry) != 0 {
		t.Fatalf("Send = %v, want permanent [1]", err)
	}
	if p.count.Total() != 3 {
		t.Errorf("peer got %d, want 3", p.count.Total())
	}
}

// TestInteropPython ships to a Scribe server generated by Debian's thrift
// compiler and run by Debian's python3-thrift.
func TestInteropPython(t *testing.T) {
	py := pypeer.Start(t, "scribe", "binary")
	o := newOutput(t, py.Addr)
	const n = 2000
	msgs := outputtest.Messages(outputtest.Source("interop"), 0, n, 80)
	msgs[7].Body = []byte(outputtest.Line(7) + " two\nlines")
	outputtest.DeliverBatches(testContext(t), t, o, msgs, 300)
	var recs []map[string]any
	outputtest.WaitFor(t, outputtest.Hang, "python server to write every entry", func() bool {
		recs = py.Records(t)
		return len(recs) >= n
	})
	got := outputtest.NewCounter()
	for _, r := range recs {
		msg, _ := r["message"].(string)
		if r["category"] != "interop" || !strings.HasSuffix(msg, "\n") {
			t.Fatalf("bad entry %v", r)
		}
		got.Add([]byte(msg))
	}
	if missing, dups := got.Check(0, n); len(missing) > 0 || dups > 0 {
		t.Fatalf("missing %v, duplicates %d", missing, dups)
	}
	for _, r := range recs {
		if strings.HasPrefix(r["message"].(string), outputtest.Line(7)) && r["message"] != outputtest.Line(7)+" two\nlines\n" {
			t.Errorf("multi-line message arrived as %q", r["message"])
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
	idx := make([]int, len(msgs))
	for i := range idx {
		idx[i] = i
	}
	c := newDiscardClient()
	ctx := context.Background()
	size := 0
	for _, m := range msgs {
		size += len(m.Body) + 1
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := writeLogArgs(ctx, c.Proto, c.Framed, msgs, idx); err != nil {
			b.Fatal(err)
		}
		c.Framed.Flush(ctx)
	}
}

// captureConn is a net.Conn whose writes are kept.
type captureConn struct {
	net.Conn
	buf *bytes.Buffer
}

func (c captureConn) Write(b []byte) (int, error) { return c.buf.Write(b) }

// refWriteLogArgs writes the arguments of Log with the protocol API, field
// by field: the reference writeLogArgs's bytes are compared with.
func refWriteLogArgs(ctx context.Context, p thrift.TProtocol, batch []logagent.Message, idx []int) error {
	p.WriteFieldBegin(ctx, "messages", thrift.LIST, 1)
	p.WriteListBegin(ctx, thrift.STRUCT, len(idx))
	for _, i := range idx {
		m := &batch[i]
		p.WriteStructBegin(ctx, "LogEntry")
		p.WriteFieldBegin(ctx, "category", thrift.STRING, 1)
		p.WriteString(ctx, m.Source.Category)
		p.WriteFieldEnd(ctx)
		p.WriteFieldBegin(ctx, "message", thrift.STRING, 2)
		p.WriteString(ctx, string(m.Body)+"\n")
		p.WriteFieldEnd(ctx)
		p.WriteFieldStop(ctx)
		p.WriteStructEnd(ctx)
	}
	p.WriteListEnd(ctx)
	return p.WriteFieldEnd(ctx)
}

// TestEncode compares writeLogArgs's bytes with the protocol API's, for
// entries of several categories, empty and large bodies, and a subset of
// the batch.
func TestEncode(t *testing.T) {
	msgs := append(outputtest.Messages(outputtest.Source("web"), 0, 10, 50), outputtest.Messages(outputtest.Source("db"), 10, 10, 50)...)
	msgs = append(msgs, outputtest.Messages(outputtest.Source(strings.Repeat("c", 300)), 20, 3, 70000)...)
	msgs = append(msgs, outputtest.Messages(outputtest.Source("web"), 23, 3, 10)...)
	msgs[4].Body = nil
	for _, idx := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24, 25}, {3, 12, 13, 12, 22}, {}} {
		var got, want bytes.Buffer
		ctx := context.Background()
		for _, c := range []struct {
			buf *bytes.Buffer
			ref bool
		}{{&got, false}, {&want, true}} {
			cl := thriftrpc.New(captureConn{buf: c.buf}, thriftrpc.Binary)
			var err error
			if c.ref {
				err = refWriteLogArgs(ctx, cl.Proto, msgs, idx)
			} else {
				err = writeLogArgs(ctx, cl.Proto, cl.Framed, msgs, idx)
			}
			if err != nil {
				t.Fatal(err)
			}
			cl.Framed.Flush(ctx)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("entries %v: %d bytes, the protocol API's %d, differing", idx, got.Len(), want.Len())
		}
	}
}

// discardConn is a net.Conn whose writes go nowhere, to measure encoding.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

func newDiscardClient() *thriftrpc.Client { return thriftrpc.New(discardConn{}, thriftrpc.Binary) }

// TestPeerProcess is the peer of BenchmarkSend in a child process (see
// sinkpeer); in an ordinary test run it does nothing. Peer "real" is the
// apache/thrift server of the tests, "sink" a server that answers OK
// without decoding the entries.
func TestPeerProcess(t *testing.T) {
	sinkpeer.Serve(t, func(kind string) string {
		switch kind {
		case "real":
			_, srv := startPeer(t)
			return srv.Addr()
		case "sink":
			return sinkpeer.StartThrift(t, false, sinkpeer.OK).Addr()
		}
		t.Fatalf("unknown peer %q", kind)
		return ""
	})
}

// BenchmarkSend ships batches of 500 messages of 200 bytes to a peer in a
// child process, so that agent-cpu-ms/MB is this process's alone.
func BenchmarkSend(b *testing.B) {
	for _, peer := range []string{"real", "sink"} {
		b.Run("peer="+peer, func(b *testing.B) {
			p := sinkpeer.StartChild(b, "TestPeerProcess", peer)
			o := newOutput(b, p.Addr)
			msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
			sinkpeer.BenchSend(b, p, o, msgs)
		})
	}
}

// TestRefusingHostIsMarked checks that a host answering TRY_LATER, or a
// result code Scribe does not define, is marked failing (for status,
// metrics and the choice of host) and that another host takes the batch.
func TestRefusingHostIsMarked(t *testing.T) {
	for _, code := range []gen.ResultCode{gen.ResultCode_TRY_LATER, 7} {
		t.Run(fmt.Sprintf("code=%d", code), func(t *testing.T) {
			pa, a := startPeer(t)
			pb, b := startPeer(t)
			pa.set(func(p *peer) { p.answer = code; p.refuse = 1 << 30 })
			o := newOutput(t, a.Addr(), b.Addr())
			o.pool.SetBackoff(time.Hour, time.Hour) // a stays out once marked
			src := outputtest.Source("web")
			for k := 0; k < 4; k++ {
				if err := o.Send(testContext(t), outputtest.Messages(src, k*10, 10, 20)); err != nil {
					t.Fatalf("Send %d: %v", k, err)
				}
			}
			h := o.Hosts()
			if h[0].Healthy || h[0].LastError == "" || !h[1].Healthy {
				t.Errorf("hosts %+v, want a failing, b up", h)
			}
			if pa.count.Total() != 0 || pb.count.Total() != 40 {
				t.Errorf("a took %d, b %d; want 0 and 40", pa.count.Total(), pb.count.Total())
			}
			// a was asked once, then left alone during its backoff.
			pa.mu.Lock()
			calls := pa.calls
			pa.mu.Unlock()
			if calls != 1 {
				t.Errorf("a called %d times, want 1", calls)
			}
		})
	}
}
