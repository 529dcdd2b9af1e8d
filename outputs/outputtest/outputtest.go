// Package outputtest helps test outputs: it builds sequence-numbered
// messages and delivers them the way the agent's scheduler does, retrying
// what an output reports undelivered. It is a small stand-in for tests; the
// real retry loop, with its backoff, lives in the agent.
package outputtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

// Source returns a Source for tests with the given category.
func Source(category string) *logagent.Source {
	return &logagent.Source{
		Input:    "test",
		Category: category,
		Path:     "/var/log/test.log",
		Host:     "testhost",
		Fields:   map[string]string{"env": "test"},
	}
}

// Messages returns n messages of src numbered from first: the body of
// message i is Line(first+i) padded with 'x' to at least size bytes.
func Messages(src *logagent.Source, first, n, size int) []logagent.Message {
	msgs := make([]logagent.Message, n)
	var off int64
	now := time.Now()
	for i := range msgs {
		body := Line(first + i)
		if pad := size - len(body); pad > 0 {
			body += " " + strings.Repeat("x", pad-1)
		}
		off += int64(len(body)) + 1
		msgs[i] = logagent.Message{Body: []byte(body), Offset: off, ReadNano: now.UnixNano(), Source: src}
	}
	return msgs
}

// Line returns the first word of the body of message seq.
func Line(seq int) string { return fmt.Sprintf("line-%08d", seq) }

// Seq returns the sequence number of a body built by Messages, or -1.
func Seq(body []byte) int {
	s := string(body)
	if !strings.HasPrefix(s, "line-") || len(s) < 13 {
		return -1
	}
	n, err := strconv.Atoi(s[5:13])
	if err != nil {
		return -1
	}
	return n
}

// Stats counts what Deliver did.
type Stats struct {
	Sends     int // calls to Send
	Retries   int // Sends that returned an error
	Permanent int // messages reported permanently undeliverable
}

// Deliver sends msgs with out until each is delivered or reported
// permanent, or ctx is done. On a plain error it sends the whole remainder
// again after retryDelay; on a *logagent.PartialError only its Retry
// subset. It returns ctx's error if ctx ends first.
func Deliver(ctx context.Context, out logagent.Output, msgs []logagent.Message, retryDelay time.Duration) (Stats, error) {
	var st Stats
	pending := msgs
	for len(pending) > 0 {
		st.Sends++
		err := out.Send(ctx, pending)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		st.Retries++
		var pe *logagent.PartialError
		switch {
		case errors.As(err, &pe):
			st.Permanent += len(pe.Permanent)
			next := make([]logagent.Message, 0, len(pe.Retry))
			for _, i := range pe.Retry {
				next = append(next, pending[i])
			}
			pending = next
		case logagent.IsPermanent(err):
			st.Permanent += len(pending)
			return st, nil
		}
		if len(pending) == 0 {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(retryDelay):
		}
	}
	return st, nil
}

// DeliverBatches splits msgs into batches of size batch and delivers each
// with Deliver, failing t on error.
func DeliverBatches(ctx context.Context, t testing.TB, out logagent.Output, msgs []logagent.Message, batch int) Stats {
	t.Helper()
	var total Stats
	for len(msgs) > 0 {
		n := min(batch, len(msgs))
		st, err := Deliver(ctx, out, msgs[:n], 20*time.Millisecond)
		if err != nil {
			t.Fatalf("deliver: %v (after %d sends)", err, st.Sends)
		}
		total.Sends += st.Sends
		total.Retries += st.Retries
		total.Permanent += st.Permanent
		msgs = msgs[n:]
	}
	return total
}

// Counter counts the sequence numbers a peer received. It is safe for
// concurrent use.
type Counter struct {
	mu    sync.Mutex
	seen  map[int]int
	total int
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter { return &Counter{seen: map[int]int{}} }

// Add records a received body.
func (c *Counter) Add(body []byte) {
	c.mu.Lock()
	c.seen[Seq(body)]++
	c.total++
	c.mu.Unlock()
}

// Total returns how many bodies were added.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Check reports the messages first..first+n-1 that were never received and
// how many were received more than once.
func (c *Counter) Check(first, n int) (missing []int, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := first; i < first+n; i++ {
		switch k := c.seen[i]; {
		case k == 0:
			missing = append(missing, i)
		case k > 1:
			duplicates += k - 1
		}
	}
	return missing, duplicates
}

// Bounds for tests of outputs. Neither is a timing assertion: both lie far
// above what the slowest machine takes (the race detector, a quarter of a
// CPU, a busy neighbour), so that a test fails only when something hangs.
const (
	// Hang bounds a whole test, or a wait for a condition.
	Hang = 2 * time.Minute
	// CallTimeout is an output's call timeout in tests: a call may move
	// tens of megabytes through the race detector.
	CallTimeout = time.Minute
)

// WaitFor polls cond every few milliseconds until it is true or timeout
// passes (a bound for a hung test, not a timing assertion).
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FieldsOf returns the fields named by err, the joined *logagent.FieldError
// values a Config's Validate returns; nil for a nil err. A joined error
// that is not a FieldError fails the test.
func FieldsOf(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *logagent.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

// Gate is a peer's Peer.Hold: embedded in a peer whose calls each begin
// with Pass, it makes the first call after Hold wait until released.
type Gate struct {
	mu            sync.Mutex
	held, release chan struct{}
}

// Hold makes the next Pass close held and wait for release.
func (g *Gate) Hold() (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	g.mu.Lock()
	g.held, g.release = h, r
	g.mu.Unlock()
	return h, func() { close(r) }
}

// Pass is called by the peer as a call begins, before it takes its own
// lock: it returns at once unless Hold was called since the last Pass.
func (g *Gate) Pass() {
	g.mu.Lock()
	held, release := g.held, g.release
	g.held = nil
	g.mu.Unlock()
	if held != nil {
		close(held)
		<-release
	}
}
