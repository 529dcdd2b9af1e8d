package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/envelope"
)

// nopOutput delivers every batch at once.
type nopOutput struct{}

func (nopOutput) Send(context.Context, []logagent.Message) error { return nil }
func (nopOutput) Close() error                                   { return nil }

// BenchmarkRunner measures the scheduler's own cost per message: chunks of
// messages go through a runner's queue, are cut into batches, "sent" to an
// output that does nothing, and acknowledged back to their chunks. One op
// is one chunk; ns/msg is the figure that matters. format=json adds the
// encoding of the envelope of each message.
func BenchmarkRunner(b *testing.B) {
	// A 181-byte access log line: the envelope escapes its quotes.
	body := []byte(`203.0.113.9 - - [06/Dec/2026:06:45:01 +0000] "GET /api/v1/items?page=2&sort=name HTTP/1.1" 200 5123 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)" rt=0.012 id=7f3a90c2`)
	src := &logagent.Source{Input: "bench", Category: "bench", Path: "/var/log/bench.log", Host: "host-1"}
	for _, tc := range []struct {
		perChunk int
		format   envelope.Format
	}{{16, envelope.Raw}, {1024, envelope.Raw}, {6000, envelope.Raw}, {1024, envelope.JSON}} {
		perChunk := tc.perChunk
		b.Run(fmt.Sprintf("msgs=%d/format=%s", perChunk, tc.format), func(b *testing.B) {
			cfg := OutputConfig{ID: "nop"}
			cfg.setDefaults()
			cfg.Format = tc.format
			cfg.Batch.FlushInterval = time.Hour // batches leave when full: no timer in the numbers
			r := newRunner(cfg, nopOutput{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				r.run(ctx)
				close(done)
			}()

			// A ring of chunks: a chunk is reused once the runner has
			// acknowledged it, as the input reuses its chunks. It holds
			// two full batches, so that feeding never waits for a flush.
			ring := 2*cfg.Batch.MaxEvents/perChunk + 2
			free := make(chan *logagent.Chunk, ring)
			for range ring {
				c := &logagent.Chunk{Messages: make([]logagent.Message, perChunk)}
				for j := range c.Messages {
					c.Messages[j] = logagent.Message{Body: body, Offset: int64(j), Source: src}
				}
				c.OnDone = func() { free <- c }
				free <- c
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c := <-free
				c.Expect(1)
				r.queue <- c
			}
			close(r.queue) // the runner sends what is left, then returns
			<-done
			b.StopTimer()
			cancel()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(perChunk), "ns/msg")
		})
	}
}
