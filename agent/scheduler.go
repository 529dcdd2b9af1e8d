package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/envelope"
)

// runner feeds one output: it takes chunks from its queue, cuts them into
// batches of at most max_events messages and max_bytes bytes (or what has
// waited flush_interval), sends each batch until it is delivered, then
// acknowledges its messages to their chunks. One batch is in flight at a
// time, so an output receives every file's messages in order.
type runner struct {
	cfg   OutputConfig
	out   logagent.Output
	log   *slog.Logger
	queue chan *logagent.Chunk

	batch []logagent.Message
	bytes int
	acks  []chunkAck // chunks the batch holds messages of, in order
	cur   *logagent.Chunk
	pos   int // next message of cur
	// With format: json, enc encodes each message into encBuf as it
	// joins the batch (so that max_bytes bounds what is sent), ending at
	// encEnds[i]; send points the batch's bodies at them.
	enc     *envelope.Encoder
	encBuf  []byte
	encEnds []int
	// takenAt is when the last chunk was taken from the queue. burst
	// says of the batch being filled whether its first chunk came after
	// a quiet spell of sparseGap or more, and all of its chunks since
	// from one file: a file's write read in a few reads.
	takenAt time.Time
	burst   bool
	burstOf *logagent.Source
	// warnedAt is when a failed send was last logged.
	warnedAt time.Time
	// progressed is set when the last send delivered all or part of its
	// batch.
	progressed bool

	metrics OutputMetrics

	// set by start
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs the runner on a goroutine of its own until its queue is
// closed and drained, or cancel is called.
func (r *runner) start() {
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		defer r.cancel()
		r.run(ctx)
	}()
}

type chunkAck struct {
	c *logagent.Chunk
	n int
}

// OutputMetrics counts what an output did. Safe for concurrent use.
type OutputMetrics struct {
	Messages     atomic.Int64 // delivered
	Bytes        atomic.Int64 // bytes of the bodies delivered (envelopes with format: json)
	Batches      atomic.Int64 // batches delivered
	Retries      atomic.Int64 // sends that failed and were retried
	Permanent    atomic.Int64 // messages dropped as undeliverable
	SendNanos    atomic.Int64 // time spent in successful sends
	failingSince atomic.Int64 // unix nanos of the first failure in a row, 0 when healthy
	lastErr      atomic.Pointer[string]
	latency      *latencyHistogram
}

// FailingSince returns when the output started failing without a success
// since, or the zero time when its last send succeeded.
func (m *OutputMetrics) FailingSince() time.Time {
	if n := m.failingSince.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// LastError returns the last send error, or "".
func (m *OutputMetrics) LastError() string {
	if p := m.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

func newRunner(cfg OutputConfig, out logagent.Output, log *slog.Logger) *runner {
	r := &runner{
		cfg:     cfg,
		out:     out,
		log:     log.With("output", cfg.ID),
		queue:   make(chan *logagent.Chunk, 4),
		batch:   make([]logagent.Message, 0, min(cfg.Batch.MaxEvents, 4096)),
		metrics: OutputMetrics{latency: newLatencyHistogram()},
	}
	if cfg.Format == envelope.JSON {
		r.enc = &envelope.Encoder{}
	}
	return r
}

// run sends until its queue is closed and drained, or ctx is done.
func (r *runner) run(ctx context.Context) {
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	var flushAt time.Time // when flush fires, while the batch is not empty
	closed := false
	for {
		if r.cur == nil && !closed {
			if len(r.batch) == 0 {
				select {
				case c, ok := <-r.queue:
					if !ok {
						closed = true
					} else {
						r.take(c, time.Now())
						flush.Reset(r.cfg.Batch.FlushInterval)
						flushAt = r.takenAt.Add(r.cfg.Batch.FlushInterval)
					}
				case <-ctx.Done():
					return
				}
			} else {
				select {
				case c, ok := <-r.queue:
					if !ok {
						closed = true
					} else {
						r.take(c, time.Now())
					}
				case <-flush.C:
					if !r.send(ctx) {
						return
					}
					continue
				case <-ctx.Done():
					return
				}
			}
		}
		filling := r.cur
		if r.cur != nil && r.fill() {
			// Full: send now, and start the wait of the next batch afresh.
			stopTimer(flush)
			if !r.send(ctx) {
				return
			}
			flush.Reset(r.cfg.Batch.FlushInterval)
			flushAt = time.Now().Add(r.cfg.Batch.FlushInterval)
		} else if filling != nil && r.cur == nil && filling.CaughtUp && len(r.queue) == 0 && len(r.batch) > 0 {
			// Its input caught up and nothing else is queued. The
			// lines of one file's write, after a quiet spell, go at
			// once: nothing else came lately to join them, and a wait
			// would cost a wake-up and its delay for nothing. Otherwise
			// (several files written together) the batch waits a short
			// linger for other files' lines, not the whole
			// flush_interval.
			if r.burst {
				stopTimer(flush)
				if !r.send(ctx) {
					return
				}
				continue
			}
			if at := time.Now().Add(caughtUpLinger(r.cfg.Batch.FlushInterval)); at.Before(flushAt) {
				stopTimer(flush)
				flush.Reset(time.Until(at))
				flushAt = at
			}
		}
		if closed && r.cur == nil {
			if len(r.batch) > 0 && !r.send(ctx) {
				return
			}
			return
		}
	}
}

// stopTimer stops t; a value it sent before stopping is not received.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// take makes c, taken from the queue at now, the chunk being filled from.
func (r *runner) take(c *logagent.Chunk, now time.Time) {
	quiet := now.Sub(r.takenAt) >= sparseGap
	r.cur, r.pos, r.takenAt = c, 0, now
	var src *logagent.Source
	if len(c.Messages) > 0 {
		src = c.Messages[0].Source
	}
	if len(r.batch) == 0 {
		r.burst, r.burstOf = quiet, src
	} else if src != r.burstOf {
		r.burst = false
	}
}

// sparseGap is the quiet spell before a batch's first chunk after which
// the batch, if it holds the lines of one file's write, is sent as soon as
// the file is read to its end, without a linger: batches this far apart
// (a thousand a second or fewer) gain little from waiting for each other.
const sparseGap = time.Millisecond

// caughtUpLinger is how long a batch waits once the input it was filled
// from caught up with its files: long enough to gather the lines of files
// written together, far below flush_interval, so that the last lines of a
// backfill or a quiet file go out at once.
func caughtUpLinger(flushInterval time.Duration) time.Duration {
	return min(flushInterval, 10*time.Millisecond)
}

// fill moves messages of cur into the batch and reports whether the batch
// is full.
func (r *runner) fill() bool {
	maxEvents, maxBytes := r.cfg.Batch.MaxEvents, int(r.cfg.Batch.MaxBytes)
	msgs := r.cur.Messages
	start := r.pos
	for r.pos < len(msgs) && len(r.batch) < maxEvents {
		n := len(msgs[r.pos].Body)
		if r.enc != nil {
			mark := len(r.encBuf)
			r.encBuf = r.enc.Append(r.encBuf, &msgs[r.pos])
			if n = len(r.encBuf) - mark; r.bytes+n > maxBytes && len(r.batch) > 0 {
				r.encBuf = r.encBuf[:mark]
				break
			}
			r.encEnds = append(r.encEnds, len(r.encBuf))
		} else if r.bytes+n > maxBytes && len(r.batch) > 0 {
			break
		}
		r.batch = append(r.batch, msgs[r.pos])
		r.bytes += n
		r.pos++
	}
	if r.pos > start {
		r.acks = append(r.acks, chunkAck{c: r.cur, n: r.pos - start})
	}
	full := r.pos < len(msgs) || len(r.batch) >= maxEvents || r.bytes >= maxBytes
	if r.pos >= len(msgs) {
		r.cur = nil
	}
	return full
}

// send delivers the batch, retrying with backoff until it is delivered or
// dropped as undeliverable, then acknowledges it. It returns false if ctx
// ended first: the batch is then not acknowledged, and is sent again after
// a restart.
//
// Only a send that delivered nothing backs off, and each one in a row
// doubles the wait. A send that delivered part of the batch (a server that
// fails one item in twenty, a connection dropped mid-window) is progress:
// what was not answered is sent again at once, so that the output keeps
// pace with what the server accepts. The first send to deliver nothing
// after progress is also retried at once: a connection dropped before its
// answers came back tells nothing of the next one.
func (r *runner) send(ctx context.Context) bool {
	if len(r.batch) == 0 {
		return true
	}
	if r.enc != nil {
		start := 0
		for i, end := range r.encEnds {
			r.batch[i].Body = r.encBuf[start:end:end]
			start = end
		}
	}
	msgs := r.batch
	attempt := 0
	for {
		start := time.Now()
		err := r.out.Send(ctx, msgs)
		if err == nil {
			r.delivered(msgs, time.Since(start))
			r.progressed = true
			break
		}
		if ctx.Err() != nil {
			return false
		}
		progress := false
		var partial *logagent.PartialError
		switch {
		case errors.As(err, &partial):
			r.dropPermanent(msgs, partial.Permanent, partial.Err)
			retry := make([]logagent.Message, 0, len(partial.Retry))
			for _, i := range partial.Retry {
				if i >= 0 && i < len(msgs) {
					retry = append(retry, msgs[i])
				}
			}
			progress = len(retry) < len(msgs)
			r.delivered(nil, time.Since(start))
			r.metrics.Messages.Add(int64(len(msgs) - len(retry) - len(partial.Permanent)))
			msgs = retry
			if len(msgs) == 0 {
				break
			}
			r.failed(err, attempt)
		case logagent.IsPermanent(err):
			idx := make([]int, len(msgs))
			for i := range idx {
				idx[i] = i
			}
			r.dropPermanent(msgs, idx, err)
			msgs = nil
		default:
			r.failed(err, attempt)
		}
		if len(msgs) == 0 {
			break
		}
		if progress || r.progressed {
			// Progress, or the first failure after it: at once.
			r.progressed = progress
			attempt = 0
			continue
		}
		if !r.wait(ctx, backoff(r.cfg.MinBackoff, r.cfg.MaxBackoff, attempt)) {
			return false
		}
		attempt++
	}
	for _, a := range r.acks {
		a.c.Ack(a.n)
	}
	clear(r.acks)
	r.acks = r.acks[:0]
	clear(r.batch) // let go of bodies
	r.batch = r.batch[:0]
	r.bytes = 0
	if r.enc != nil {
		r.encEnds = r.encEnds[:0]
		r.encBuf = r.encBuf[:0]
		if cap(r.encBuf) > 4*int(r.cfg.Batch.MaxBytes) {
			r.encBuf = nil // grown by one huge message: let it go
		}
	}
	return true
}

// prober is implemented by outputs that can tell cheaply, without sending,
// whether a send could get through now (a down host accepts connections
// again). Probe is called from the runner's goroutine, between sends.
type prober interface {
	Probe(ctx context.Context) error
}

// probeEvery is how often a backing-off runner probes its output: after an
// outage the output resumes within about this long of its server coming
// back, not after the rest of a backoff of up to max_backoff.
const probeEvery = time.Second

// wait sleeps d after a failed send, or less if the output's probe says a
// send could get through. It returns false if ctx ended first.
func (r *runner) wait(ctx context.Context, d time.Duration) bool {
	p, ok := r.out.(prober)
	if !ok || d <= probeEvery {
		return sleep(ctx, d)
	}
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		if !sleep(ctx, min(left, probeEvery)) {
			return false
		}
		if time.Until(end) > 0 && p.Probe(ctx) == nil {
			return ctx.Err() == nil
		}
	}
}

func (r *runner) delivered(msgs []logagent.Message, took time.Duration) {
	if msgs != nil {
		n := 0
		for i := range msgs {
			n += len(msgs[i].Body)
		}
		r.metrics.Messages.Add(int64(len(msgs)))
		r.metrics.Bytes.Add(int64(n))
		r.metrics.Batches.Add(1)
	}
	r.metrics.SendNanos.Add(int64(took))
	r.metrics.latency.observe(took)
	if since := r.metrics.failingSince.Swap(0); since != 0 {
		r.log.Info("output delivering again", "failed_for", time.Since(time.Unix(0, since)).Round(time.Millisecond))
	}
}

// failed counts and logs a failed send; a flapping output logs its first
// failure, then one line a minute at most.
func (r *runner) failed(err error, attempt int) {
	r.metrics.Retries.Add(1)
	msg := err.Error()
	r.metrics.lastErr.Store(&msg)
	now := time.Now()
	r.metrics.failingSince.CompareAndSwap(0, now.UnixNano())
	if r.warnedAt.IsZero() || now.Sub(r.warnedAt) >= time.Minute {
		r.warnedAt = now
		r.log.Warn("send failed; retrying with backoff", "err", err, "attempt", attempt+1)
	}
}

func (r *runner) dropPermanent(msgs []logagent.Message, idx []int, err error) {
	if len(idx) == 0 {
		return
	}
	r.metrics.Permanent.Add(int64(len(idx)))
	first := msgs[idx[0]]
	r.log.Error("messages can never be delivered by this output; dropped", "count", len(idx),
		"err", err, "path", first.Source.Path, "offset", first.Offset)
}

// backoff is exponential from min to max, with jitter of up to a fifth
// either way so that agents that failed together do not retry together.
func backoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 0; i < attempt && d < maxD; i++ {
		d *= 2
	}
	if d > maxD {
		d = maxD
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5 + 1))
	if rand.IntN(2) == 0 {
		return d - jitter
	}
	return d + jitter
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// latencyHistogram counts send latencies in fixed buckets.
type latencyHistogram struct {
	mu      sync.Mutex
	bounds  []float64 // seconds
	counts  []uint64  // len(bounds)+1
	sum     float64
	samples uint64
}

func newLatencyHistogram() *latencyHistogram {
	b := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	return &latencyHistogram{bounds: b, counts: make([]uint64, len(b)+1)}
}

func (h *latencyHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.sum += s
	h.samples++
	h.mu.Unlock()
}

// snapshot returns cumulative bucket counts, the sum and the count.
func (h *latencyHistogram) snapshot() (bounds []float64, cumulative []uint64, sum float64, count uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cumulative = make([]uint64, len(h.bounds))
	var acc uint64
	for i := range h.bounds {
		acc += h.counts[i]
		cumulative[i] = acc
	}
	return h.bounds, cumulative, h.sum, h.samples
}
