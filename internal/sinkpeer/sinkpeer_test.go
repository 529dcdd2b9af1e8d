package sinkpeer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logagent/logagent/internal/thriftgen/flume"
	"github.com/logagent/logagent/internal/thriftgen/kestrel"
	"github.com/logagent/logagent/internal/thriftgen/scribe"
)

func testContext(t *testing.T) context.Context {
	// A bound for a hung test, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// thriftClient connects a generated client's protocol to addr.
func thriftClient(t *testing.T, addr string, compact bool) (thrift.TTransport, thrift.TProtocolFactory) {
	t.Helper()
	cfg := &thrift.TConfiguration{}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	if compact {
		return trans, thrift.NewTCompactProtocolFactoryConf(cfg)
	}
	return trans, thrift.NewTBinaryProtocolFactoryConf(cfg)
}

// TestThrift calls the sink with the generated clients of Scribe, Flume
// and Kestrel, in both protocols: every call gets its answer, in step.
func TestThrift(t *testing.T) {
	ctx := testContext(t)
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			srv := StartThrift(t, compact, func(method string, args []byte) (int32, error) {
				if method == "put" {
					n, err := ThriftListLen(args, compact, 2)
					return int32(n), err
				}
				return 0, nil
			})
			sc := scribe.NewScribeClientFactory(thriftClient(t, srv.Addr(), compact))
			fc := flume.NewThriftSourceProtocolClientFactory(thriftClient(t, srv.Addr(), compact))
			kc := kestrel.NewKestrelClientFactory(thriftClient(t, srv.Addr(), compact))
			for i := range 20 {
				entries := make([]*scribe.LogEntry, i)
				for j := range entries {
					entries[j] = &scribe.LogEntry{Category: "web", Message: strings.Repeat("x", j*100) + "\n"}
				}
				if rc, err := sc.Log(ctx, entries); err != nil || rc != scribe.ResultCode_OK {
					t.Fatalf("Log = %v, %v", rc, err)
				}
				events := make([]*flume.ThriftFlumeEvent, i)
				for j := range events {
					events[j] = &flume.ThriftFlumeEvent{Headers: map[string]string{"a": "b"}, Body: make([]byte, j*1000)}
				}
				if st, err := fc.AppendBatch(ctx, events); err != nil || st != flume.Status_OK {
					t.Fatalf("AppendBatch = %v, %v", st, err)
				}
				items := make([][]byte, i*3)
				for j := range items {
					items[j] = []byte("item")
				}
				if n, err := kc.Put(ctx, "queue", items, int32(i)); err != nil || int(n) != len(items) {
					t.Fatalf("put of %d = %v, %v", len(items), n, err)
				}
			}
		})
	}
}

// TestMemcache pipelines sets of every size up to 70 KB and reads one
// STORED for each.
func TestMemcache(t *testing.T) {
	srv := StartMemcache(t)
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 700
	go func() {
		w := bufio.NewWriter(c)
		for i := range n {
			fmt.Fprintf(w, "set q 0 %d %d\r\n%s\r\n", i, i*100, strings.Repeat("y", i*100))
		}
		w.Flush()
	}()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(45 * time.Second))
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil || line != "STORED\r\n" {
			t.Fatalf("answer %d: %q, %v", i, line, err)
		}
	}
	// A malformed set closes the connection.
	fmt.Fprintf(c, "set q 0 0 3\r\nabcd\r\n")
	if b, err := io.ReadAll(r); len(b) != 0 || err != nil {
		t.Fatalf("after a bad data block: %q, %v", b, err)
	}
}

// TestKafka produces to the sink with two clients, franz-go's (flexible
// versions) and kafka-go's (the output's, older versions): every record is
// acknowledged and counted.
func TestKafka(t *testing.T) {
	ctx := testContext(t)
	k := StartKafka(t, 3, "t2")

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.DefaultProduceTopic("t1"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 1000 {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := k.Records(); got != 1000 {
		t.Fatalf("sink counted %d records, want 1000", got)
	}
	offsets := map[int32]int64{}
	for _, r := range recs {
		if r.Offset != offsets[r.Partition] {
			t.Fatalf("record at offset %d of partition %d, want %d", r.Offset, r.Partition, offsets[r.Partition])
		}
		offsets[r.Partition]++
	}

	w := &kafkago.Writer{Addr: kafkago.TCP(k.Addr()), Topic: "t2", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 500, Balancer: &kafkago.RoundRobin{}}
	defer w.Close()
	var msgs []kafkago.Message
	for i := range 500 {
		msgs = append(msgs, kafkago.Message{Value: fmt.Appendf(nil, "v%d", i), Headers: []kafkago.Header{{Key: "h", Value: []byte("v")}}})
	}
	for range 4 {
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if got := k.Records(); got != 3000 {
		t.Fatalf("sink counted %d records, want 3000", got)
	}
}

// TestPeerProcess is the child of TestChild.
func TestPeerProcess(t *testing.T) {
	Serve(t, func(kind string) string {
		if kind != "memcache" {
			t.Fatalf("unknown peer %q", kind)
		}
		return StartMemcache(t).Addr()
	})
}

// TestChild runs a memcache sink in a child process, sends to it and
// measures the child's CPU time.
func TestChild(t *testing.T) {
	p := StartChild(t, "TestPeerProcess", "memcache")
	before, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	body := strings.Repeat("z", 1<<20)
	for range 50 {
		fmt.Fprintf(c, "set q 0 0 %d\r\n%s\r\n", len(body), body)
		if line, err := r.ReadString('\n'); err != nil || line != "STORED\r\n" {
			t.Fatalf("answer %q, %v", line, err)
		}
	}
	after, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	if after < before {
		t.Errorf("child CPU went from %v to %v", before, after)
	}
	t.Logf("child used %v for 50 MB", after-before)
}
