package flume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/pypeer"
	"github.com/logagent/logagent/internal/sinkpeer"
	gen "github.com/logagent/logagent/internal/thriftgen/flume"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/internal/thrifttest"
	"github.com/logagent/logagent/outputs/outputtest"
)

// peer is a Flume Thrift source handler that counts the events it commits
// and can misbehave.
type peer struct {
	count *outputtest.Counter

	mu     sync.Mutex
	calls  int
	sizes  []int // events per committed call
	failed int   // next calls answered FAILED
	drop   int   // next calls whose connection is closed before answering
	// fault, if set, decides the answer of each call by its number:
	// "ok", "failed" or "drop".
	fault func(call int) string
	last  map[string]string // headers of the last event
	// Gate holds a call for Hold (outputtest.Peer).
	outputtest.Gate
}

func newPeer() *peer { return &peer{count: outputtest.NewCounter()} }

func (p *peer) Append(ctx context.Context, e *gen.ThriftFlumeEvent) (gen.Status, error) {
	return p.AppendBatch(ctx, []*gen.ThriftFlumeEvent{e})
}

func (p *peer) AppendBatch(ctx context.Context, events []*gen.ThriftFlumeEvent) (gen.Status, error) {
	p.Pass()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	what := "ok"
	switch {
	case p.fault != nil:
		what = p.fault(p.calls)
	case p.drop > 0:
		p.drop--
		what = "drop"
	case p.failed > 0:
		p.failed--
		what = "failed"
	}
	switch what {
	case "drop":
		thrifttest.Drop(ctx)
		return gen.Status_OK, nil
	case "failed":
		return gen.Status_FAILED, nil
	}
	for _, e := range events {
		p.count.Add(e.Body)
		p.last = e.Headers
	}
	p.sizes = append(p.sizes, len(events))
	return gen.Status_OK, nil
}

func (p *peer) set(f func(p *peer)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

func startPeer(t testing.TB, protocol string) (*peer, *thrifttest.Server) {
	p := newPeer()
	return p, thrifttest.Start(t, gen.NewThriftSourceProtocolProcessor(p), protocol == "compact")
}

func newOutput(t testing.TB, protocol string, hosts ...string) *Output {
	t.Helper()
	c := DefaultConfig()
	c.Hosts = hosts
	c.Protocol = protocol
	c.Timeout = outputtest.CallTimeout
	o, err := New("flume-test", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.pool.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	t.Cleanup(func() { o.Close() })
	return o
}

func testContext(t testing.TB) context.Context { return outputtest.Context(t) }

// suitePeer is a peer for outputtest.Conformance.
type suitePeer struct {
	*peer
	*thrifttest.Server
}

func (p suitePeer) Received() *outputtest.Counter { return p.count }

// TestConformance runs the tests every network output passes against an
// apache/thrift Flume Thrift source, in each protocol.
func TestConformance(t *testing.T) {
	for _, proto := range []string{"compact", "binary"} {
		t.Run(proto, func(t *testing.T) {
			outputtest.Conformance(t, outputtest.Harness{
				Start: func(t testing.TB) outputtest.Peer {
					p, srv := startPeer(t, proto)
					return suitePeer{p, srv}
				},
				New: func(t testing.TB, addrs ...string) outputtest.Output { return newOutput(t, proto, addrs...) },
				Faults: []outputtest.Fault{
					{Name: "failed", Set: func(p outputtest.Peer) { p.(suitePeer).set(func(p *peer) { p.failed = 5 }) }},
					{Name: "drop mid-call", Set: func(p outputtest.Peer) { p.(suitePeer).set(func(p *peer) { p.drop = 3 }) }},
				},
				Delivered: func(t *testing.T, sp outputtest.Peer, msgs []logagent.Message) {
					p := sp.(suitePeer).peer
					p.mu.Lock()
					defer p.mu.Unlock()
					want := fixedHeaders(&msgs[len(msgs)-1])
					want["env"], want["dc"] = "prod", "eu1"
					if fmt.Sprint(p.last) != fmt.Sprint(want) {
						t.Errorf("headers %v, want %v", p.last, want)
					}
				},
			})
		})
	}
}

// fixedHeaders returns the headers every event of m carries, whatever its
// fields, as the test expects them.
func fixedHeaders(m *logagent.Message) map[string]string {
	return map[string]string{
		"timestamp": strconv.FormatInt(m.ReadNano/int64(time.Millisecond), 10),
		"host":      m.Source.Host,
		"path":      m.Source.Path,
		"offset":    strconv.FormatInt(m.Offset, 10),
		"category":  m.Source.Category,
		"input":     m.Source.Input,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		fields []string
	}{
		{"ok", Config{Hosts: []string{"127.0.0.1:4141", "flume:4142"}, Protocol: "compact", Timeout: time.Second}, nil},
		{"binary", Config{Hosts: []string{"flume:4141"}, Protocol: "binary", Timeout: time.Second}, nil},
		{"no port", Config{Hosts: []string{"flume:4141", "flume"}, Protocol: "compact", Timeout: time.Second}, []string{"hosts[1]"}},
		{"no hosts", Config{Protocol: "compact", Timeout: time.Second}, []string{"hosts"}},
		{"protocol", Config{Hosts: []string{"f:1"}, Protocol: "json", Timeout: time.Second}, []string{"protocol"}},
		{"timeout", Config{Hosts: []string{"f:1"}, Protocol: "binary"}, []string{"timeout"}},
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
	if d := DefaultConfig(); d.Protocol != "compact" || d.MaxMessageBytes() >= MaxFrameBytes {
		t.Errorf("defaults %+v, max message %d", d, d.MaxMessageBytes())
	}
}

// testFrame is the frame limit of TestSplit and TestPartial, on both sides:
// Flume's own would have them move tens of megabytes, which takes minutes
// under the race detector on a slow machine, for the same check. That the
// output counts the bytes of a frame right is TestEncode's.
const testFrame = 1 << 20

// startSmallFrames starts a peer that refuses frames over testFrame, and an
// output that sends frames of up to testFrame.
func startSmallFrames(t *testing.T, protocol string) (*peer, *Output) {
	p := newPeer()
	srv := thrifttest.StartMaxFrame(t, gen.NewThriftSourceProtocolProcessor(p), protocol == "compact", testFrame)
	o := newOutput(t, protocol, srv.Addr())
	o.maxFrame = testFrame
	return p, o
}

// TestSplit sends a batch larger than one Flume frame: it goes in several
// calls, each accepted by a server enforcing the frame limit.
func TestSplit(t *testing.T) {
	p, o := startSmallFrames(t, "compact")
	const n = 40
	msgs := outputtest.Messages(outputtest.Source("big"), 0, n, testFrame/16)
	if err := o.Send(testContext(t), msgs); err != nil {
		t.Fatal(err)
	}
	if missing, _ := p.count.Check(0, n); len(missing) > 0 {
		t.Fatalf("missing %v", missing)
	}
	if len(p.sizes) < 3 {
		t.Errorf("calls of %v events, want at least 3 calls", p.sizes)
	}
}

// TestPartial fails the second call of a split batch: only its events and
// the ones after it are to be retried.
func TestPartial(t *testing.T) {
	p, o := startSmallFrames(t, "binary")
	p.set(func(p *peer) {
		p.fault = func(call int) string {
			if call == 2 {
				return "failed"
			}
			return "ok"
		}
	})
	const n = 40
	msgs := outputtest.Messages(outputtest.Source("big"), 0, n, testFrame/16)
	msgs[5].Body = make([]byte, testFrame) // can never fit
	copy(msgs[5].Body, outputtest.Line(5))
	err := o.Send(testContext(t), msgs)
	var pe *logagent.PartialError
	if !errors.As(err, &pe) || !errors.Is(err, ErrFailed) {
		t.Fatalf("Send = %v, want a PartialError for FAILED", err)
	}
	first := p.sizes[0]
	if len(pe.Retry) != n-1-first || pe.Retry[0] != first+1 || fmt.Sprint(pe.Permanent) != "[5]" {
		t.Fatalf("retry %v permanent %v after a first call of %d events", pe.Retry, pe.Permanent, first)
	}
	p.set(func(p *peer) { p.fault = nil })
	retry := make([]logagent.Message, 0, len(pe.Retry))
	for _, i := range pe.Retry {
		retry = append(retry, msgs[i])
	}
	if err := o.Send(testContext(t), retry); err != nil {
		t.Fatal(err)
	}
	missing, dups := p.count.Check(0, n)
	if fmt.Sprint(missing) != "[5]" || dups > 0 {
		t.Fatalf("missing %v (want [5]), duplicates %d", missing, dups)
	}
}

// TestInteropPython ships to a Flume Thrift source stand-in generated by
// Debian's thrift compiler and run by Debian's python3-thrift.
func TestInteropPython(t *testing.T) {
	for _, proto := range []string{"compact", "binary"} {
		t.Run(proto, func(t *testing.T) {
			py := pypeer.Start(t, "flume", proto)
			o := newOutput(t, proto, py.Addr)
			const n = 2000
			src := outputtest.Source("interop")
			msgs := outputtest.Messages(src, 0, n, 80)
			outputtest.DeliverBatches(testContext(t), t, o, msgs, 300)
			var recs []map[string]any
			outputtest.WaitFor(t, outputtest.Hang, "python server to write every event", func() bool {
				recs = py.Records(t)
				return len(recs) >= n
			})
			got := outputtest.NewCounter()
			for _, r := range recs {
				h, _ := r["headers"].(map[string]any)
				body, _ := r["body"].(string)
				if h["category"] != "interop" || h["env"] != "test" || h["timestamp"] == nil || h["offset"] == nil {
					t.Fatalf("bad event %v", r)
				}
				got.Add([]byte(body))
			}
			if missing, dups := got.Check(0, n); len(missing) > 0 || dups > 0 {
				t.Fatalf("missing %v, duplicates %d", missing, dups)
			}
		})
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

func BenchmarkEncode(b *testing.B) {
	for _, proto := range []string{"compact", "binary"} {
		b.Run(proto, func(b *testing.B) {
			msgs := outputtest.Messages(outputtest.Source("web"), 0, 500, 200)
			idx := make([]int, len(msgs))
			size := 0
			for i := range idx {
				idx[i] = i
				size += len(msgs[i].Body)
			}
			c := thriftrpc.New(discardConn{}, thriftrpc.Protocol(proto))
			e := newEncoder(proto)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := writeAppendBatchArgs(ctx, c.Proto, c.Framed, e, msgs, idx); err != nil {
					b.Fatal(err)
				}
				c.Framed.Flush(ctx)
			}
		})
	}
}

// captureConn is a net.Conn whose writes are kept.
type captureConn struct {
	net.Conn
	buf *bytes.Buffer
}

func (c captureConn) Write(b []byte) (int, error) { return c.buf.Write(b) }

// encodeArgs returns the appendBatch arguments struct for batch, as the
// output writes it, without the frame's size.
func encodeArgs(t *testing.T, proto string, e *encoder, batch []logagent.Message, ref bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	c := thriftrpc.New(captureConn{buf: &buf}, thriftrpc.Protocol(proto))
	ctx := context.Background()
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	p := c.Proto
	p.WriteStructBegin(ctx, "appendBatch_args")
	var err error
	if ref {
		err = refWriteAppendBatchArgs(ctx, p, batch, idx)
	} else {
		err = writeAppendBatchArgs(ctx, p, c.Framed, e, batch, idx)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.WriteFieldStop(ctx)
	p.WriteStructEnd(ctx)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[4:]
}

// refWriteAppendBatchArgs writes the arguments of appendBatch with the
// protocol API, field by field, headers in the order of the output's
// encoder: the reference the encoder's bytes are compared with.
func refWriteAppendBatchArgs(ctx context.Context, p thrift.TProtocol, batch []logagent.Message, idx []int) error {
	p.WriteFieldBegin(ctx, "events", thrift.LIST, 1)
	p.WriteListBegin(ctx, thrift.STRUCT, len(idx))
	for _, i := range idx {
		m := &batch[i]
		src := m.Source
		p.WriteStructBegin(ctx, "ThriftFlumeEvent")
		p.WriteFieldBegin(ctx, "headers", thrift.MAP, 1)
		n := 6
		for k := range src.Fields {
			if !fixedHeader(k) {
				n++
			}
		}
		p.WriteMapBegin(ctx, thrift.STRING, thrift.STRING, n)
		kv := func(k, v string) {
			p.WriteString(ctx, k)
			p.WriteString(ctx, v)
		}
		kv(hTimestamp, strconv.FormatInt(m.ReadNano/int64(time.Millisecond), 10))
		kv(hHost, src.Host)
		kv(hPath, src.Path)
		kv(hOffset, strconv.FormatInt(m.Offset, 10))
		kv(hCategory, src.Category)
		kv(hInput, src.Input)
		for k, v := range src.Fields {
			if !fixedHeader(k) {
				kv(k, v)
			}
		}
		p.WriteMapEnd(ctx)
		p.WriteFieldEnd(ctx)
		p.WriteFieldBegin(ctx, "body", thrift.STRING, 2)
		p.WriteBinary(ctx, m.Body)
		p.WriteFieldEnd(ctx)
		p.WriteFieldStop(ctx)
		p.WriteStructEnd(ctx)
	}
	p.WriteListEnd(ctx)
	return p.WriteFieldEnd(ctx)
}

// TestEncode checks the encoder's events: byte for byte against the
// protocol API's where the header order is fixed (at most one field), and
// decoded by the generated code for sources of many fields, long values
// and odd numbers, interleaved.
func TestEncode(t *testing.T) {
	one := outputtest.Source("web")
	many := &logagent.Source{
		Input:    "in",
		Category: "c",
		Path:     "/" + strings.Repeat("p", 300),
		Host:     "h",
		Fields:   map[string]string{"env": "prod", "dc": "eu1", "host": "not this", "offset": "nor this", "long": strings.Repeat("v", 20000)},
	}
	none := &logagent.Source{Category: "none"}
	for _, proto := range []string{"compact", "binary"} {
		t.Run(proto, func(t *testing.T) {
			e := newEncoder(proto)
			msgs := outputtest.Messages(one, 0, 50, 150)
			msgs[3].Body = nil
			msgs[4].Offset = 1 << 62
			msgs[5].ReadNano = -1_500_000 // before the epoch
			msgs[6].Body = make([]byte, 70000)
			if got, want := encodeArgs(t, proto, e, msgs, false), encodeArgs(t, proto, nil, msgs, true); !bytes.Equal(got, want) {
				t.Fatalf("encoded %d bytes, the protocol API %d, differing", len(got), len(want))
			}

			var mixed []logagent.Message
			for i, m := range outputtest.Messages(one, 0, 60, 10) {
				switch i % 3 {
				case 1:
					m.Source = many
				case 2:
					m.Source = none
					m.Offset = -int64(i)
				}
				mixed = append(mixed, m)
			}
			raw := encodeArgs(t, proto, e, mixed, false)
			var args gen.ThriftSourceProtocolAppendBatchArgs
			tr := thrift.NewTMemoryBuffer()
			tr.Write(raw)
			var p thrift.TProtocol = thrift.NewTBinaryProtocolConf(tr, nil)
			if proto == "compact" {
				p = thrift.NewTCompactProtocolConf(tr, nil)
			}
			if err := args.Read(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			if tr.Len() != 0 || len(args.Events) != len(mixed) {
				t.Fatalf("decoded %d events, %d bytes left", len(args.Events), tr.Len())
			}
			total := 0
			for i, ev := range args.Events {
				m := &mixed[i]
				want := fixedHeaders(m)
				for k, v := range m.Source.Fields {
					if !fixedHeader(k) {
						want[k] = v
					}
				}
				if fmt.Sprint(ev.Headers) != fmt.Sprint(want) || !bytes.Equal(ev.Body, m.Body) {
					t.Fatalf("event %d: headers %v body %q, want %v %q", i, ev.Headers, ev.Body, want, m.Body)
				}
				total += e.eventSize(m)
			}
			if total < len(raw) {
				t.Errorf("event sizes add up to %d, under the %d bytes encoded", total, len(raw))
			}
		})
	}
}

// TestPeerProcess is the peer of BenchmarkSend in a child process (see
// sinkpeer); in an ordinary test run it does nothing. Peer "real/PROTO" is
// the apache/thrift server of the tests, "sink/PROTO" a server that
// answers OK without decoding the events.
func TestPeerProcess(t *testing.T) {
	sinkpeer.Serve(t, func(kind string) string {
		peer, proto, _ := strings.Cut(kind, "/")
		switch peer {
		case "real":
			_, srv := startPeer(t, proto)
			return srv.Addr()
		case "sink":
			return sinkpeer.StartThrift(t, proto == "compact", sinkpeer.OK).Addr()
		}
		t.Fatalf("unknown peer %q", kind)
		return ""
	})
}

// BenchmarkSend ships batches of 500 messages of 200 bytes to a peer in a
// child process, so that agent-cpu-ms/MB is this process's alone.
func BenchmarkSend(b *testing.B) {
	for _, proto := range []string{"compact", "binary"} {
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
