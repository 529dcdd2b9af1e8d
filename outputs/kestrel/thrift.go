package kestrel

import (
	"context"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/outputs/hostpool"
)

// maxPutBytes bounds the items of one put call, to keep its frame well
// under the 16,384,000 bytes that Thrift servers commonly accept.
const maxPutBytes = 16_000_000

// putThrift sends the messages of pending with one Kestrel.put call per
// queue (and per maxPutBytes), in the order the queues first appear.
func (o *Output) putThrift(ctx context.Context, c *thriftrpc.Client, batch []logagent.Message, pending []int) (r hostpool.Result) {
	good, bad, why := o.badItems(batch, pending)
	r.Permanent, r.Err = bad, why
	// Group by queue, keeping the batch order within each queue.
	var queues []string
	groups := map[string][]int{}
	for _, i := range good {
		q := batch[i].Source.Category
		if _, ok := groups[q]; !ok {
			queues = append(queues, q)
		}
		groups[q] = append(groups[q], i)
	}
	var calls [][]int
	var callQueue []string
	for _, q := range queues {
		idx := groups[q]
		for len(idx) > 0 {
			n, size := 0, 0
			for n < len(idx) && (n == 0 || size+len(batch[idx[n]].Body)+4 <= maxPutBytes) {
				size += len(batch[idx[n]].Body) + 4
				n++
			}
			calls = append(calls, idx[:n])
			callQueue = append(callQueue, q)
			idx = idx[n:]
		}
	}
	for k, items := range calls {
		queue := callQueue[k]
		put, err := c.Call(ctx, "put", func(p thrift.TProtocol) error {
			return writePutArgs(ctx, p, queue, batch, items, int32(o.expiry))
		})
		if err != nil {
			for _, rest := range calls[k:] {
				r.Retry = append(r.Retry, rest...)
			}
			r.Err, r.Broken = err, thriftrpc.IsBroken(err)
			return r
		}
		if put < 0 || int(put) > len(items) {
			for _, rest := range calls[k:] {
				r.Retry = append(r.Retry, rest...)
			}
			r.Err, r.Broken = fmt.Errorf("kestrel put %d of %d items", put, len(items)), true
			return r
		}
		if int(put) < len(items) {
			// The queue is full: the rest of its items are retried later.
			r.Retry = append(r.Retry, items[put:]...)
			r.Err = fmt.Errorf("%w: put %d of %d items in %s", ErrNotStored, put, len(items), queue)
		}
	}
	return r
}

// writePutArgs writes the arguments of put: 1: string queue_name,
// 2: list<binary> items, 3: i32 expiration_msec.
func writePutArgs(ctx context.Context, p thrift.TProtocol, queue string, batch []logagent.Message, items []int, expiry int32) error {
	if err := p.WriteFieldBegin(ctx, "queue_name", thrift.STRING, 1); err != nil {
		return err
	}
	if err := p.WriteString(ctx, queue); err != nil {
		return err
	}
	if err := p.WriteFieldEnd(ctx); err != nil {
		return err
	}
	if err := p.WriteFieldBegin(ctx, "items", thrift.LIST, 2); err != nil {
		return err
	}
	if err := p.WriteListBegin(ctx, thrift.STRING, len(items)); err != nil {
		return err
	}
	for _, i := range items {
		if err := p.WriteBinary(ctx, batch[i].Body); err != nil {
			return err
		}
	}
	if err := p.WriteListEnd(ctx); err != nil {
		return err
	}
	if err := p.WriteFieldEnd(ctx); err != nil {
		return err
	}
	if err := p.WriteFieldBegin(ctx, "expiration_msec", thrift.I32, 3); err != nil {
		return err
	}
	if err := p.WriteI32(ctx, expiry); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}
