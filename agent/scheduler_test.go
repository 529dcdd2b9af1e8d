package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
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

// A partial batch whose input caught up with its file goes out at once,
// not after flush_interval (an hour here): the last lines of
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

// A chunk published by a goroutine runnable when the runner finds its
// input caught up (another file's harvester of the same pass over the
// input's events) joins the batch: gather lets it run before the batch
// goes, where a batch sent at once would go without it.
func TestCaughtUpBatchGathersRunnablePublishers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // as a quiet agent runs (Procs)
	cfg := OutputConfig{ID: "rec"}
	cfg.setDefaults()
	cfg.Batch.FlushInterval = time.Hour
	out := &recordOutput{}
	r := newRunner(cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	chunk := func(body string) *logagent.Chunk {
		src := &logagent.Source{Path: body + ".log"}
		c := &logagent.Chunk{Messages: []logagent.Message{{Body: []byte(body), Source: src}}, CaughtUp: true}
		c.Expect(1)
		return c
	}
	sent := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out.mu.Lock()
			got := 0
			for _, b := range out.batches {
				got += len(b)
			}
			out.mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d messages sent", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	r.queue <- chunk("first") // the runner then waits on its queue again
	sent(1)
	go func() { r.queue <- chunk("b") }() // runnable, not run yet
	r.queue <- chunk("a")
	sent(3)

	out.mu.Lock()
	defer out.mu.Unlock()
	if got := fmt.Sprint(out.batches); got != "[[first] [a b]]" {
		t.Errorf("batches %s, want [[first] [a b]]: b, runnable when a caught up, did not join a's batch", got)
	}
}

// gather returns at once when a chunk comes, and gives up when nothing
// runnable brings one.
func TestGather(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	q := make(chan *logagent.Chunk, 1)
	if gather(q) {
		t.Error("gather reported a chunk with none published")
	}
	go func() { q <- &logagent.Chunk{} }()
	if !gather(q) {
		t.Error("gather did not let a runnable publisher run")
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
