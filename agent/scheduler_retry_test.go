package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/kestrel"
	"github.com/logagent/logagent/outputs/kestrel/kestreltest"
	"github.com/logagent/logagent/outputs/outputtest"
)

// These tests run one runner (the scheduler of one output) and check how it
// retries: at once after a send that delivered part of its batch, with
// backoff after one that delivered nothing, and not a moment longer than it
// takes the output's probe to see its server back.

// startRunner runs a runner for out until the test ends.
func startRunner(t *testing.T, cfg OutputConfig, out logagent.Output) *runner {
	t.Helper()
	r := newRunner(cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.run(ctx)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// feed hands n sequence-numbered messages, from seq from, to r in chunks
// of per, and returns a counter of the messages acknowledged.
func feed(r *runner, src *logagent.Source, from, n, per int, acked *atomic.Int64) {
	for i := from; i < from+n; i += per {
		c := &logagent.Chunk{CaughtUp: true}
		for k := i; k < min(i+per, from+n); k++ {
			c.Messages = append(c.Messages, logagent.Message{Body: fmt.Appendf(nil, "seq=%08d payload to make the line longer", k), Source: src})
		}
		m := int64(len(c.Messages))
		c.OnDone = func() { acked.Add(m) }
		c.Expect(1)
		r.queue <- c
	}
}

// waitAcked waits until want messages are acknowledged; outputtest.Hang
// bounds a hung test, it is not a timing assertion.
func waitAcked(t *testing.T, acked *atomic.Int64, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(outputtest.Hang)
	for acked.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages acknowledged after %s", what, acked.Load(), want, outputtest.Hang)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// flakyOutput delivers every message but the one at each multiple of
// every in a send: that one and the rest after it are listed to retry, as
// a Kestrel connection that breaks mid-window leaves them.
type flakyOutput struct {
	every int
	mu    sync.Mutex
	seen  map[string]bool
	sends int
}

func (o *flakyOutput) Send(_ context.Context, msgs []logagent.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sends++
	for i := range msgs {
		if i > 0 && i%o.every == 0 {
			pe := &logagent.PartialError{Err: errors.New("SERVER_ERROR")}
			for k := i; k < len(msgs); k++ {
				pe.Retry = append(pe.Retry, k)
			}
			return pe
		}
		o.seen[string(msgs[i].Body)] = true
	}
	return nil
}

func (o *flakyOutput) Close() error { return nil }

// TestPartialProgressDoesNotBackOff: a send that delivered part of its batch
// is retried at once. With a backoff of an hour, a runner that backed off
// on it would not finish.
func TestPartialProgressDoesNotBackOff(t *testing.T) {
	cfg := OutputConfig{ID: "flaky"}
	cfg.setDefaults()
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	out := &flakyOutput{every: 50, seen: map[string]bool{}}
	r := startRunner(t, cfg, out)
	var acked atomic.Int64
	const n = 10000
	feed(r, &logagent.Source{Input: "t"}, 0, n, 500, &acked)
	waitAcked(t, &acked, n, "partial failures")
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.seen) != n {
		t.Fatalf("%d of %d messages delivered", len(out.seen), n)
	}
	if got := r.metrics.Messages.Load(); got != n {
		t.Errorf("metrics count %d delivered, want %d", got, n)
	}
}

// downOutput fails every send, delivering nothing, until up is set; its
// probe reports up.
type downOutput struct {
	up     atomic.Bool
	sent   atomic.Int64
	probes atomic.Int64
}

func (o *downOutput) Send(_ context.Context, msgs []logagent.Message) error {
	if !o.up.Load() {
		return errors.New("connection refused")
	}
	o.sent.Add(int64(len(msgs)))
	return nil
}

func (o *downOutput) Close() error { return nil }

func (o *downOutput) Probe(context.Context) error {
	o.probes.Add(1)
	if !o.up.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// TestProbeEndsBackoff: a runner backing off after a send that delivered
// nothing sends again as soon as the output's probe says it can, not after
// the rest of its backoff (an hour here).
func TestProbeEndsBackoff(t *testing.T) {
	cfg := OutputConfig{ID: "down"}
	cfg.setDefaults()
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	out := &downOutput{}
	r := startRunner(t, cfg, out)
	var acked atomic.Int64
	feed(r, &logagent.Source{Input: "t"}, 0, 100, 100, &acked)
	deadline := time.Now().Add(outputtest.Hang)
	for out.probes.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if acked.Load() != 0 {
		t.Fatal("delivered while down")
	}
	out.up.Store(true)
	waitAcked(t, &acked, 100, "after the server came back")
}

// kestrelRun ships n sequence-numbered lines through a runner and a kestrel
// output to q's server, and returns how long it took once the first chunk
// was handed over.
func kestrelRun(t *testing.T, protocol string, q *kestreltest.Queues, n int) time.Duration {
	t.Helper()
	var addr string
	if protocol == "thrift" {
		addr = kestreltest.StartThrift(t, q).Addr()
	} else {
		addr = kestreltest.Start(t, q).Addr()
	}
	kc := kestrel.DefaultConfig()
	kc.Hosts, kc.Protocol = []string{addr}, protocol
	out, err := kestrel.New("kestrel", kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cfg := OutputConfig{ID: "kestrel"}
	cfg.setDefaults() // the defaults: min_backoff 100ms, max_backoff 30s
	r := startRunner(t, cfg, out)
	var acked atomic.Int64
	start := time.Now()
	go feed(r, &logagent.Source{Input: "t", Category: "app"}, 0, n, 1000, &acked)
	waitAcked(t, &acked, int64(n), "kestrel "+protocol)
	took := time.Since(start)
	seen := map[string]bool{}
	for _, it := range q.Drain("app") {
		seen[string(it)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d lines in the queue", len(seen), n)
	}
	return took
}

// TestKestrelFaultMix ships through a Kestrel server that answers
// SERVER_ERROR (and disconnects) to one item in twenty and drops the
// connection without answering on one item in 250 (memcache), or drops
// the connection of one put in about five (thrift, where a dropped call
// answers nothing of its items): every line arrives, at a rate that keeps
// pace with what the server accepts. The log gives the rate against the
// same run without faults. LOGAGENT_TEST_LINES sets how many lines (20,000
// unless set).
func TestKestrelFaultMix(t *testing.T) {
	n := 20000
	if s := os.Getenv("LOGAGENT_TEST_LINES"); s != "" {
		fmt.Sscan(s, &n)
	}
	faults := map[string]func(k int) kestreltest.Answer{
		"memcache": func(k int) kestreltest.Answer {
			switch {
			case k%20 == 0:
				return kestreltest.ServerError
			case k%250 == 125:
				return kestreltest.Drop
			}
			return kestreltest.Store
		},
		"thrift": func(k int) kestreltest.Answer {
			if k%5000 == 2500 {
				return kestreltest.Drop
			}
			return kestreltest.Store
		},
	}
	for _, protocol := range []string{"memcache", "thrift"} {
		t.Run(protocol, func(t *testing.T) {
			clean := kestrelRun(t, protocol, kestreltest.NewQueues(), n)
			q := kestreltest.NewQueues()
			fault := faults[protocol]
			q.Fault = func(_ string, k int) kestreltest.Answer { return fault(k) }
			faulty := kestrelRun(t, protocol, q, n)
			t.Logf("%d lines: %s without faults (%.0f lines/s), %s with faults (%.0f lines/s, %.0f%% of the clean rate)",
				n, clean.Round(time.Millisecond), float64(n)/clean.Seconds(), faulty.Round(time.Millisecond), float64(n)/faulty.Seconds(), 100*clean.Seconds()/faulty.Seconds())
		})
	}
}

// TestKestrelOutage stops the Kestrel server while lines wait, and checks
// that they go out once it is back, found by the output's probe: with a
// backoff of an hour, nothing else would send them.
// LOGAGENT_TEST_OUTAGE=75s runs the outage with the default backoffs
// instead, and logs how long after the restart delivery resumed.
func TestKestrelOutage(t *testing.T) {
	outage, _ := time.ParseDuration(os.Getenv("LOGAGENT_TEST_OUTAGE"))
	q := kestreltest.NewQueues()
	srv := kestreltest.Start(t, q)
	kc := kestrel.DefaultConfig()
	kc.Hosts = []string{srv.Addr()}
	out, err := kestrel.New("kestrel", kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cfg := OutputConfig{ID: "kestrel"}
	cfg.setDefaults()
	if outage == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	}
	r := startRunner(t, cfg, out)
	src := &logagent.Source{Input: "t", Category: "app"}
	var acked atomic.Int64
	feed(r, src, 0, 100, 100, &acked)
	waitAcked(t, &acked, 100, "before the outage")
	srv.Stop()
	feed(r, src, 100, 100, 100, &acked)
	// Wait until the runner has failed, then for the outage.
	deadline := time.Now().Add(outputtest.Hang)
	for r.metrics.Retries.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(outage)
	srv.Restart()
	back := time.Now()
	waitAcked(t, &acked, 200, "after the outage")
	t.Logf("outage %s, %d failed sends: delivery resumed %s after the server came back", outage, r.metrics.Retries.Load(), time.Since(back).Round(time.Millisecond))
	if got := len(q.Drain("app")); got != 200 {
		t.Fatalf("%d of 200 lines in the queue", got)
	}
}
