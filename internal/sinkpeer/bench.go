package sinkpeer

import (
	"context"
	"testing"

	"github.com/logagent/logagent"
)

// BenchSend is the loop of an output's Send benchmark: it sends batch once
// to connect (not measured), then once per iteration, and reports MB/s (of
// message bodies), msgs/s, allocs/op and, through a Meter, the CPU time per
// MB of this process and of peer (nil for a peer in this process).
func BenchSend(b *testing.B, peer *Child, out logagent.Output, batch []logagent.Message) {
	b.Helper()
	var size int64
	for i := range batch {
		size += int64(len(batch[i].Body))
	}
	ctx := context.Background()
	if err := out.Send(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	m := Measure(b, peer)
	for b.Loop() {
		if err := out.Send(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	m.Report(size)
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
