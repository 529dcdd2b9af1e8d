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
