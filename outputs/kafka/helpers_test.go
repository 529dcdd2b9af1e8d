package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/outputtest"
)

// hangTimeout only fails a test that hangs; no assertion depends on time.
const hangTimeout = outputtest.Hang

func testLogger(t testing.TB) *slog.Logger {
	// KAFKA_TEST_LOG=1 shows the output's log, with kafka-go's retries.
	if os.Getenv("KAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newCluster starts an in-process Kafka-protocol broker cluster on
// 127.0.0.1 with the topics "app" and "web", three partitions each.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(3, "app", "web", "other")}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newOutput(t testing.TB, cfg Config) *Output {
	t.Helper()
	o, err := New("k", cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func configFor(addrs []string) Config {
	c := DefaultConfig()
	c.Brokers = addrs
	c.Timeout = outputtest.CallTimeout
	return c
}

func testSource(category, path string) *logagent.Source {
	return &logagent.Source{
		Input:    "in-" + category,
		Category: category,
		Path:     path,
		Host:     "host-a",
		Fields:   map[string]string{"env": "test", "dc": "eu1"},
	}
}

// body of line seq: a fixed-width number first, so a consumer can parse it.
func body(seq int, pad int) []byte {
	b := fmt.Appendf(nil, "%08d ", seq)
	for len(b) < 9+pad {
		b = append(b, 'x')
	}
	return b
}

func seqOf(value []byte) int {
	n, err := strconv.Atoi(string(value[:8]))
	if err != nil {
		return -1
	}
	return n
}

// batches cuts lines [0, n) of src into batches of size.
func batches(src *logagent.Source, n, size, pad int) [][]logagent.Message {
	var out [][]logagent.Message
	base := time.UnixMilli(1_700_000_000_000)
	for start := 0; start < n; start += size {
		var b []logagent.Message
		for i := start; i < min(n, start+size); i++ {
			b = append(b, logagent.Message{
				Body:     body(i, pad),
				Offset:   int64(i+1) * 100,
				ReadNano: base.Add(time.Duration(i) * time.Millisecond).UnixNano(),
				Source:   src,
			})
		}
		out = append(out, b)
	}
	return out
}

// shipper mimics the agent's scheduler: a plain error retries the whole
// batch, a PartialError retries only its Retry subset, permanent messages
// are counted. It sleeps briefly between retries and gives up only on a
// hang.
type shipper struct {
	t         testing.TB
	o         *Output
	mu        sync.Mutex
	permanent [][]byte // bodies reported permanent
	errs      []error  // every error Send returned
}

func (s *shipper) ship(batch []logagent.Message) {
	s.t.Helper()
	deadline := time.Now().Add(hangTimeout)
	pending := batch
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("batch not delivered after %s; last errors: %v", hangTimeout, s.lastErrs())
		}
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		err := s.o.Send(ctx, pending)
		cancel()
		if err == nil {
			return
		}
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
		var pe *logagent.PartialError
		if errors.As(err, &pe) {
			for _, i := range pe.Permanent {
				s.mu.Lock()
				s.permanent = append(s.permanent, slices.Clone(pending[i].Body))
				s.mu.Unlock()
			}
			next := make([]logagent.Message, 0, len(pe.Retry))
			for _, i := range pe.Retry {
				next = append(next, pending[i])
			}
			pending = next
		} else if logagent.IsPermanent(err) {
			s.t.Fatalf("whole batch permanent: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *shipper) lastErrs() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs[max(0, len(s.errs)-3):]
}

// consume reads topics from the start until want records arrived (or, with
// want < 0, until no more arrive for a while) and returns them.
func consume(t testing.TB, addrs []string, topics []string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < want {
		// hangTimeout bounds a wait with nothing arriving, not the whole
		// read: on a slow machine records arrive slowly but steadily,
		// lz4-compressed ones under the race detector most of all.
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		f := cl.PollFetches(ctx)
		cancel()
		for _, e := range f.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Logf("fetch error: %v", e.Err)
			}
		}
		n := len(recs)
		f.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) == n && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("consumed %d of %d records; none for %s", len(recs), want, hangTimeout)
		}
	}
	// Anything beyond want is a duplicate or a stray; read what is already
	// there so that tests can see it.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	f := cl.PollFetches(short)
	f.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	return recs
}

// seqs counts the records of each sequence number, per topic.
func seqs(recs []*kgo.Record) map[string]map[int]int {
	out := map[string]map[int]int{}
	for _, r := range recs {
		if out[r.Topic] == nil {
			out[r.Topic] = map[int]int{}
		}
		out[r.Topic][seqOf(r.Value)]++
	}
	return out
}

// missing lists the sequence numbers of [0, n) absent from got.
func missing(got map[int]int, n int, except ...int) []int {
	var m []int
	for i := 0; i < n; i++ {
		if got[i] == 0 && !slices.Contains(except, i) {
			m = append(m, i)
		}
	}
	return m
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func joinErrs(errs []error) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return strings.Join(s, "\n")
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func asPartial(t testing.TB, err error) *logagent.PartialError {
	t.Helper()
	var pe *logagent.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Send = %v, want a *PartialError", err)
	}
	return pe
}

func equalInts(a, b []int) bool { return slices.Equal(a, b) }

func kfakeAutoCreate() kfake.Opt { return kfake.AllowAutoTopicCreation() }
