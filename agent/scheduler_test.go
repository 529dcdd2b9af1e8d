package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/envelope"
)

// countOutput counts what it is sent.
type countOutput struct {
	mu   sync.Mutex
	sent int
}

func (o *countOutput) Send(_ context.Context, msgs []logagent.Message) error {
	o.mu.Lock()
	o.sent += len(msgs)
	o.mu.Unlock()
	return nil
}
func (o *countOutput) Close() error { return nil }

func (o *countOutput) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}

// A partial batch whose input caught up with its file goes out after a
// short linger, not after flush_interval (an hour here): the last lines of
// a backfill, or of a file written now and then, are not held back.
func TestCaughtUpBatchDoesNotWaitFlushInterval(t *testing.T) {
	cfg := OutputConfig{ID: "count"}
	cfg.setDefaults()
	cfg.Batch.FlushInterval = time.Hour
	out := &countOutput{}
	r := newRunner(cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	src := &logagent.Source{Input: "t"}
	chunk := func(n int, caughtUp bool) *logagent.Chunk {
		c := &logagent.Chunk{Messages: make([]logagent.Message, n), CaughtUp: caughtUp}
		for i := range c.Messages {
			c.Messages[i] = logagent.Message{Body: []byte("line"), Source: src}
		}
		c.Expect(1)
		return c
	}
	r.queue <- chunk(10, false) // backfill: more follows
	r.queue <- chunk(5, true)   // the end of the file
	deadline := time.Now().Add(30 * time.Second)
	for out.count() < 15 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 15 messages sent: the caught-up batch waits for flush_interval", out.count())
		}
		time.Sleep(time.Millisecond)
	}
}

// A batch is one file's burst, sent without the linger once the file is
// caught up, only if it began after a quiet spell and every chunk in it
// since came from that file.
func TestBurstIsOneFileAfterQuiet(t *testing.T) {
	a, b := &logagent.Source{Path: "a"}, &logagent.Source{Path: "b"}
	chunk := func(src *logagent.Source) *logagent.Chunk {
		return &logagent.Chunk{Messages: []logagent.Message{{Body: []byte("x"), Source: src}}}
	}
	type take struct {
		src     *logagent.Source
		after   time.Duration // since the chunk before
		batched bool          // the batch holds the chunks before (not sent yet)
	}
	for _, tc := range []struct {
		name  string
		takes []take
		burst bool
	}{
		{"first chunk", []take{{a, time.Hour, false}}, true},
		{"after a quiet spell", []take{{a, 0, false}, {a, 2 * sparseGap, false}}, true},
		{"hard on the one before", []take{{a, 0, false}, {b, sparseGap / 10, false}}, false},
		{"same file's next read", []take{{a, time.Hour, false}, {a, sparseGap / 10, true}}, true},
		{"another file joins", []take{{a, time.Hour, false}, {b, sparseGap / 10, true}}, false},
		{"another file joins after a while", []take{{a, time.Hour, false}, {b, 2 * sparseGap, true}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{}
			now := time.Unix(1_000_000, 0)
			for _, tk := range tc.takes {
				now = now.Add(tk.after)
				r.batch = r.batch[:0]
				if tk.batched {
					r.batch = append(r.batch, logagent.Message{})
				}
				r.take(chunk(tk.src), now)
			}
			if r.burst != tc.burst {
				t.Errorf("burst = %v, want %v", r.burst, tc.burst)
			}
		})
	}
}

// recordOutput keeps a copy of every batch it is sent.
type recordOutput struct {
	mu      sync.Mutex
	batches [][]string
}

func (o *recordOutput) Send(_ context.Context, msgs []logagent.Message) error {
	b := make([]string, len(msgs))
	for i := range msgs {
		b[i] = string(msgs[i].Body)
	}
	o.mu.Lock()
	o.batches = append(o.batches, b)
	o.mu.Unlock()
	return nil
}
func (o *recordOutput) Close() error { return nil }

// With format: json, the runner sends envelopes, in order, and batch
// max_bytes bounds the envelopes (what is sent), not the bodies.
func TestRunnerFormatJSON(t *testing.T) {
	cfg := OutputConfig{ID: "rec"}
	cfg.setDefaults()
	cfg.Format = envelope.JSON
	cfg.Batch.MaxBytes = 2000
	out := &recordOutput{}
	r := newRunner(cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	src := &logagent.Source{Input: "in", Category: "cat", Path: "/x.log", Host: "h"}
	const n = 100
	c := &logagent.Chunk{Messages: make([]logagent.Message, n)}
	for i := range c.Messages {
		c.Messages[i] = logagent.Message{Body: fmt.Appendf(nil, "line %03d \"%s\"", i, strings.Repeat("x", 50)), Offset: int64(i + 1), Source: src}
	}
	acked := make(chan struct{})
	c.OnDone = func() { close(acked) }
	c.Expect(1)
	r.queue <- c
	<-acked

	out.mu.Lock()
	defer out.mu.Unlock()
	seq := 0
	for _, b := range out.batches {
		size := 0
		for _, body := range b {
			size += len(body)
			var env struct {
				Message string `json:"message"`
				Offset  int64  `json:"offset"`
			}
			if err := json.Unmarshal([]byte(body), &env); err != nil {
				t.Fatalf("not an envelope: %q", body)
			}
			if want := fmt.Sprintf("line %03d \"%s\"", seq, strings.Repeat("x", 50)); env.Message != want || env.Offset != int64(seq+1) {
				t.Fatalf("message %d: %+v", seq, env)
			}
			seq++
		}
		if size > int(cfg.Batch.MaxBytes) {
			t.Errorf("batch of %d envelope bytes, over max_bytes %d", size, cfg.Batch.MaxBytes)
		}
	}
	if seq != n || len(out.batches) < 5 {
		t.Errorf("%d messages in %d batches, want %d in 5 or more", seq, len(out.batches), n)
	}
}
