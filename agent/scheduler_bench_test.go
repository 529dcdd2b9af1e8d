package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

// nopOutput delivers every batch at once.
type nopOutput struct{}

func (nopOutput) Send(context.Context, []logagent.Message) error { return nil }
func (nopOutput) Close() error                                   { return nil }

// BenchmarkRunner measures the scheduler's own cost per message: chunks of
// messages go through a runner's queue, are cut into batches, "sent" to an
// output that does nothing, and acknowledged back to their chunks. One op
// is one chunk; ns/msg is the figure that matters.
func BenchmarkRunner(b *testing.B) {
	body := make([]byte, 180)
	src := &logagent.Source{Input: "bench", Category: "bench"}
	for _, perChunk := range []int{16, 1024, 6000} {
		b.Run(fmt.Sprintf("msgs=%d", perChunk), func(b *testing.B) {
			cfg := OutputConfig{ID: "nop"}
			cfg.setDefaults()
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
