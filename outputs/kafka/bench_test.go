package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BenchmarkSend ships batches of 1000 lines of 200 bytes to an in-process
// broker that acknowledges without storing (acks all): MB/s counts message
// bodies, allocs/op is per batch.
func BenchmarkSend(b *testing.B) {
	for _, comp := range []string{"none", "lz4", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			c := newCluster(b, kfake.BlackholeProduce())
			cfg := configFor(c.ListenAddrs())
			cfg.Compression = comp
			o := newOutput(b, cfg)
			batch := batches(testSource("app", "/var/log/app.log"), 1000, 1000, 200)[0]
			var size int64
			for i := range batch {
				size += int64(len(batch[i].Body))
			}
			ctx := context.Background()
			if err := o.Send(ctx, batch); err != nil { // connect, fetch metadata
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if err := o.Send(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
