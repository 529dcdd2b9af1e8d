package kafka

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBatchSize checks that a batch of one topic goes in one produce
// request per partition, with round robin (BatchSize sized to a partition's
// share once the partition count is known) and with a key (all of a
// file's lines to one partition).
func TestBatchSize(t *testing.T) {
	for _, key := range []string{"none", "host"} {
		t.Run(key, func(t *testing.T) {
			c := newCluster(t)
			var produces, records atomic.Int32
			c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				produces.Add(1)
				for _, tp := range r.(*kmsg.ProduceRequest).Topics {
					for _, p := range tp.Partitions {
						var b kmsg.RecordBatch
						if err := b.ReadFrom(p.Records); err != nil {
							t.Errorf("record batch: %v", err)
						}
						records.Add(b.NumRecords)
					}
				}
				return nil, nil, false
			})
			cfg := configFor(c.ListenAddrs())
			cfg.Key = key
			o := newOutput(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
			defer cancel()
			bs := batches(testSource("app", "/var/log/app.log"), 3000, 1000, 20)
			for i, b := range bs {
				produces.Store(0)
				if err := o.Send(ctx, b); err != nil {
					t.Fatal(err)
				}
				want, size := 3, 334
				if key != "none" {
					want, size = 1, 1000
				} else if i == 0 {
					// Before the partition count is known.
					size = 1000
				}
				if got := produces.Load(); got != int32(want) {
					t.Errorf("send %d: %d produce requests, want %d", i, got, want)
				}
				if o.w.BatchSize != size {
					t.Errorf("send %d: BatchSize %d, want %d", i, o.w.BatchSize, size)
				}
			}
			if got := records.Load(); got != 3000 {
				t.Errorf("%d records produced, want 3000", got)
			}
		})
	}
}
