package flume

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	gen "github.com/logagent/logagent/internal/thriftgen/flume"
)

func TestAppendBatch(t *testing.T) {
	for _, proto := range []string{"compact", "binary"} {
		t.Run(proto, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.Protocol = "127.0.0.1:0", proto
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var failing string
			var got []*logagent.Chunk
			publish := func(ctx context.Context, c *logagent.Chunk) error {
				c.Expect(1)
				mu.Lock()
				got = append(got, c)
				mu.Unlock()
				c.Ack(len(c.Messages)) // the outputs acknowledge at once
				return nil
			}
			fail := func() string { mu.Lock(); defer mu.Unlock(); return failing }
			in, err := New(cfg, inputs.Env{ID: "fl", Publish: publish, Failing: fail, DrainTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); in.Run(ctx) }()
			defer func() { cancel(); <-done }()

			trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(in.Addr(), &thrift.TConfiguration{ConnectTimeout: time.Minute, SocketTimeout: time.Minute}), nil)
			if err := trans.Open(); err != nil {
				t.Fatal(err)
			}
			defer trans.Close()
			var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(nil)
			if proto == "binary" {
				pf = thrift.NewTBinaryProtocolFactoryConf(nil)
			}
			c := gen.NewThriftSourceProtocolClientFactory(trans, pf)
			st, err := c.AppendBatch(context.Background(), []*gen.ThriftFlumeEvent{
				{Headers: map[string]string{"category": "web"}, Body: []byte("a\n")},
				{Headers: map[string]string{}, Body: []byte("b")},
			})
			if err != nil || st != gen.Status_OK {
				t.Fatalf("appendBatch = %v, %v", st, err)
			}
			mu.Lock()
			m := got[0].Messages
			mu.Unlock()
			if len(m) != 2 || m[0].Source.Category != "web" || string(m[0].Body) != "a" || m[1].Source.Category != "fl" || string(m[1].Body) != "b" {
				t.Fatalf("messages %+v", m)
			}
			mu.Lock()
			failing = "output down"
			mu.Unlock()
			if st, err := c.Append(context.Background(), &gen.ThriftFlumeEvent{Headers: map[string]string{}, Body: []byte("c")}); err != nil || st != gen.Status_FAILED {
				t.Fatalf("append while an output fails = %v, %v; want FAILED", st, err)
			}
		})
	}
}
