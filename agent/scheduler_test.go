package agent

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent"
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
