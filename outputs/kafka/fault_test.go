package kafka

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFaults: the broker answers with per-partition errors for a while,
// fails metadata, or drops connections mid-call; every line still arrives,
// and only requests the broker applied and then failed duplicate.
func TestFaults(t *testing.T) {
	produce := []kmsg.Key{kmsg.Produce}
	tests := []struct {
		name   string
		inject func(t *testing.T, c *kfake.Cluster)
	}{
		{"not leader on one partition", func(t *testing.T, c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: produce, Topic: "app", Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: 12})
		}},
		{"request timed out after append", func(t *testing.T, c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: produce, Topic: "web", Partitions: []int32{0, 2}, Err: kerr.RequestTimedOut, Count: 8})
		}},
		{"not enough replicas, every partition", func(t *testing.T, c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: produce, Err: kerr.NotEnoughReplicas, Count: 40})
		}},
		{"leader not available in metadata", func(t *testing.T, c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "app", Err: kerr.LeaderNotAvailable, Count: 3})
		}},
		{"connection dropped mid produce", func(t *testing.T, c *kfake.Cluster) {
			var n atomic.Int32
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				if n.Add(1) <= 20 {
					c.KeepControl()
					return nil, errors.New("test drops the connection"), true
				}
				return nil, nil, false
			})
		}},
		{"storage error, authorization denied for a while", func(t *testing.T, c *kfake.Cluster) {
			c.Fault(
				kfake.Fault{Keys: produce, Topic: "app", Partitions: []int32{0}, Err: kerr.KafkaStorageError, Count: 5},
				kfake.Fault{Keys: produce, Topic: "web", Partitions: []int32{1}, Err: kerr.TopicAuthorizationFailed, Count: 3},
			)
		}},
	}
	const n = 1000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			tt.inject(t, c)
			o := newOutput(t, configFor(c.ListenAddrs()))
			s := &shipper{t: t, o: o}
			ab := batches(testSource("app", "/a"), n, 50, 30)
			wb := batches(testSource("web", "/w"), n, 50, 30)
			for i := range ab {
				s.ship(append(ab[i], wb[i]...))
			}
			if len(s.errs) == 0 {
				t.Fatalf("no Send failed: the fault was not exercised")
			}
			if len(s.permanent) != 0 {
				t.Errorf("%d messages reported permanent for retriable errors", len(s.permanent))
			}
			t.Logf("%d failed Sends, first: %v", len(s.errs), s.errs[0])
			got := seqs(consume(t, c.ListenAddrs(), []string{"app", "web"}, 2*n))
			for _, topic := range []string{"app", "web"} {
				if m := missing(got[topic], n); len(m) > 0 {
					t.Errorf("%s: %d lines missing, first %v", topic, len(m), m[:min(5, len(m))])
				}
			}
		})
	}
}

// TestTooLarge: the broker refuses a partition batch because one message in
// it is too large for the topic. Only that message is reported permanent,
// the other messages of its partition batch are delivered; a message larger
// than max_message_bytes is refused without being sent.
func TestTooLarge(t *testing.T) {
	tests := []struct {
		name   string
		broker []kfake.Opt
		inject func(c *kfake.Cluster)
	}{
		// The broker's own check: max.message.bytes smaller than the output's.
		{"broker limit", []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4000"})}, nil},
		// An injected MESSAGE_TOO_LARGE answer for any partition batch
		// that holds the marked line.
		{"injected answer", nil, func(c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.MessageTooLarge, Count: -1, When: func(r kmsg.Request) bool {
				for _, t := range r.(*kmsg.ProduceRequest).Topics {
					for _, p := range t.Partitions {
						if bytes.Contains(p.Records, []byte("TOOBIG")) {
							return true
						}
					}
				}
				return false
			}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, append([]kfake.Opt{kfake.NumBrokers(1)}, tt.broker...)...)
			if tt.inject != nil {
				tt.inject(c)
			}
			cfg := configFor(c.ListenAddrs())
			cfg.MaxBytes = 8000
			cfg.Key = "host" // one partition: the big line shares its batch
			o := newOutput(t, cfg)
			s := &shipper{t: t, o: o}
			const n = 30
			b := batches(testSource("app", "/a"), n, n, 20)[0]
			b[7].Body = append(body(7, 5000), "TOOBIG"...)
			b[20].Body = body(20, 9000) // above max_message_bytes
			s.ship(b)
			if len(s.permanent) != 2 || seqOf(s.permanent[0]) != 7 && seqOf(s.permanent[1]) != 7 {
				t.Fatalf("permanent %d messages, want lines 7 and 20", len(s.permanent))
			}
			for _, e := range s.errs {
				t.Logf("Send: %v", e)
			}
			got := seqs(consume(t, c.ListenAddrs(), []string{"app"}, n-2))["app"]
			if m := missing(got, n, 7, 20); len(m) > 0 {
				t.Errorf("lines missing: %v", m)
			}
			if got[7] != 0 || got[20] != 0 {
				t.Errorf("too large lines were delivered")
			}
		})
	}
}

// TestBrokerRestart: the only broker stops while lines are being shipped
// and a new one comes back on the same port with the same data directory;
// every line arrives.
func TestBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	start := func(port int) *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(3, "app"), kfake.DataDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := start(0)
	addr := c1.ListenAddrs()[0]
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)

	o := newOutput(t, configFor([]string{addr}))
	s := &shipper{t: t, o: o}
	const n = 2000
	bs := batches(testSource("app", "/a"), n, 100, 30)
	half := len(bs) / 2
	for _, b := range bs[:half] {
		s.ship(b)
	}
	c1.Close()

	var wg sync.WaitGroup
	wg.Go(func() {
		for _, b := range bs[half:] {
			s.ship(b)
		}
	})
	// Bring the broker back once the output has seen it gone.
	deadline := time.Now().Add(hangTimeout)
	for len(s.lastErrs()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c2 := start(port)
	defer c2.Close()
	wg.Wait()
	if len(s.errs) == 0 {
		t.Fatalf("no Send failed while the broker was down")
	}
	t.Logf("%d failed Sends while the broker was down, first: %v", len(s.errs), s.errs[0])
	got := seqs(consume(t, c2.ListenAddrs(), []string{"app"}, n))["app"]
	if m := missing(got, n); len(m) > 0 {
		t.Errorf("%d lines missing, first %v", len(m), m[:min(5, len(m))])
	}
}

// TestCancel: Send returns once its context is done while the broker holds
// the produce request, and the output goes on working afterwards.
func TestCancel(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	release := make(chan struct{})
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	o := newOutput(t, configFor(c.ListenAddrs()))
	b := batches(testSource("app", "/a"), 10, 10, 0)[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Send(ctx, b) }()
	for !held.Load() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send after cancel = %v, want context.Canceled", err)
	}
	if o.b.buf != nil {
		t.Fatalf("the buffer the library may still read was kept for reuse")
	}
	// The input may now reuse its buffer: the held request must not see it.
	for i := range b {
		clear(b[i].Body)
	}
	close(release)
	s := &shipper{t: t, o: o}
	s.ship(batches(testSource("app", "/a"), 10, 10, 0)[0])
	for _, r := range consume(t, c.ListenAddrs(), []string{"app"}, 10) {
		if seqOf(r.Value) < 0 {
			t.Fatalf("a record carries a reused buffer: %q", r.Value)
		}
	}
}
