package kafka

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeliver ships sequence-numbered lines from two files with two
// categories through each combination of keys, and reads every one back
// with a real consumer.
func TestDeliver(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Config)
		acks   int16
		topics []string // where app and web lines land; nil: by category
	}{
		{name: "defaults", acks: -1},
		{name: "gzip", edit: func(c *Config) { c.Compression = "gzip" }, acks: -1},
		{name: "snappy", edit: func(c *Config) { c.Compression = "snappy" }, acks: -1},
		{name: "lz4", edit: func(c *Config) { c.Compression = "lz4" }, acks: -1},
		{name: "zstd", edit: func(c *Config) { c.Compression = "zstd" }, acks: -1},
		{name: "key host", edit: func(c *Config) { c.Key = "host" }, acks: -1},
		{name: "key path", edit: func(c *Config) { c.Key = "path" }, acks: -1},
		{name: "acks one", edit: func(c *Config) { c.Acks = "one" }, acks: 1},
		{name: "topic override", edit: func(c *Config) { c.Topic = "other" }, acks: -1, topics: []string{"other", "other"}},
	}
	const n = 1500
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			var acks atomic.Int32
			acks.Store(99)
			var produces atomic.Int32
			c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				acks.Store(int32(r.(*kmsg.ProduceRequest).Acks))
				produces.Add(1)
				return nil, nil, false
			})
			cfg := configFor(c.ListenAddrs())
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			o := newOutput(t, cfg)
			app, web := testSource("app", "/var/log/app.log"), testSource("web", "/var/log/web.log")
			web.Host = "host-b"
			s := &shipper{t: t, o: o}
			ab, wb := batches(app, n, 100, 40), batches(web, n, 100, 40)
			for i := range ab {
				// One batch carries both topics, as the scheduler's do when
				// several inputs route to one output.
				s.ship(append(ab[i], wb[i]...))
			}
			if len(s.errs) != 0 {
				t.Errorf("Send returned errors on a healthy cluster:\n%s", joinErrs(s.errs))
			}
			if got := acks.Load(); int16(got) != tt.acks {
				t.Errorf("produce acks = %d, want %d", got, tt.acks)
			}
			topics := tt.topics
			if topics == nil {
				topics = []string{"app", "web"}
			}
			recs := consume(t, c.ListenAddrs(), uniq(topics), 2*n)
			if len(recs) != 2*n {
				t.Errorf("consumed %d records, want %d (no duplicates on a healthy cluster)", len(recs), 2*n)
			}
			byFile := map[string]map[int]int{}
			keyPartition := map[string]int32{}
			for _, r := range recs {
				h := headers(r)
				p := h["path"]
				if byFile[p] == nil {
					byFile[p] = map[int]int{}
				}
				seq := seqOf(r.Value)
				byFile[p][seq]++
				want := map[string]string{
					"timestamp": strconv.FormatInt(1_700_000_000_000+int64(seq), 10),
					"offset":    strconv.Itoa((seq + 1) * 100),
					"env":       "test",
					"dc":        "eu1",
				}
				for k, v := range want {
					if h[k] != v {
						t.Fatalf("record %d of %s: header %s = %q, want %q (headers %v)", seq, p, k, h[k], v, h)
					}
				}
				if r.Timestamp.UnixMilli() != 1_700_000_000_000+int64(seq) {
					t.Fatalf("record timestamp %v, want the read time", r.Timestamp)
				}
				var src = app
				if h["category"] == "web" {
					src = web
				}
				if h["path"] != src.Path || h["host"] != src.Host || h["input"] != src.Input {
					t.Fatalf("record headers %v do not describe source %+v", h, src)
				}
				if tt.topics == nil && r.Topic != src.Category {
					t.Fatalf("record of category %s in topic %s", src.Category, r.Topic)
				}
				var key string
				switch cfg.Key {
				case "host":
					key = src.Host
				case "path":
					key = src.Path
				}
				if string(r.Key) != key {
					t.Fatalf("record key %q, want %q", r.Key, key)
				}
				if key != "" {
					kp := r.Topic + "/" + key
					if p, ok := keyPartition[kp]; ok && p != r.Partition {
						t.Fatalf("key %s went to partitions %d and %d", kp, p, r.Partition)
					}
					keyPartition[kp] = r.Partition
				}
			}
			for _, src := range []string{app.Path, web.Path} {
				if m := missing(byFile[src], n); len(m) > 0 {
					t.Errorf("%s: %d lines missing, first %v", src, len(m), m[:min(5, len(m))])
				}
			}
		})
	}
}

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		found := false
		for _, y := range out {
			found = found || x == y
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

// TestAcksNone checks that acks none is fire and forget on the wire and
// still delivers to a healthy broker.
func TestAcksNone(t *testing.T) {
	c := newCluster(t)
	var acks atomic.Int32
	acks.Store(99)
	c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		acks.Store(int32(r.(*kmsg.ProduceRequest).Acks))
		return nil, nil, false
	})
	cfg := configFor(c.ListenAddrs())
	cfg.Acks = "none"
	o := newOutput(t, cfg)
	s := &shipper{t: t, o: o}
	for _, b := range batches(testSource("app", "/a"), 500, 100, 10) {
		s.ship(b)
	}
	// Send does not wait for the broker with acks none: the requests are
	// known to be seen once their records can be read back.
	recs := consume(t, c.ListenAddrs(), []string{"app"}, 500)
	if m := missing(seqs(recs)["app"], 500); len(m) > 0 {
		t.Errorf("%d missing", len(m))
	}
	if got := acks.Load(); got != 0 {
		t.Errorf("produce acks = %d, want 0", got)
	}
}

// TestUnknownTopic: with auto_create_topic off, a batch for a missing topic
// is retried (not dropped) with an error naming the topic, and the other
// topics of a batch are delivered meanwhile.
func TestUnknownTopic(t *testing.T) {
	c := newCluster(t)
	o := newOutput(t, configFor(c.ListenAddrs()))
	missingSrc := testSource("nosuch", "/n")
	ctx := context.Background()

	only := batches(missingSrc, 3, 10, 0)[0]
	err := o.Send(ctx, only)
	if err == nil || !contains(err.Error(), "nosuch") || !contains(err.Error(), "auto_create_topic is off: create it") {
		t.Fatalf("Send to a missing topic = %v, want a whole-batch error naming it", err)
	}

	mixed := append(batches(testSource("app", "/a"), 5, 10, 0)[0], batches(missingSrc, 3, 10, 0)[0]...)
	err = o.Send(ctx, mixed)
	pe := asPartial(t, err)
	if len(pe.Permanent) != 0 || !equalInts(pe.Retry, []int{5, 6, 7}) {
		t.Fatalf("mixed batch: retry %v permanent %v, want retry [5 6 7]", pe.Retry, pe.Permanent)
	}
	if m := missing(seqs(consume(t, c.ListenAddrs(), []string{"app"}, 5))["app"], 5); len(m) > 0 {
		t.Fatalf("app lines missing: %v", m)
	}
}

// TestAutoCreateTopic: with auto_create_topic on and a broker that allows
// it, a missing topic is created and delivered to.
func TestAutoCreateTopic(t *testing.T) {
	c := newCluster(t, kfakeAutoCreate())
	cfg := configFor(c.ListenAddrs())
	cfg.AutoCreateTopic = true
	o := newOutput(t, cfg)
	s := &shipper{t: t, o: o}
	s.ship(batches(testSource("fresh", "/f"), 50, 50, 0)[0])
	if m := missing(seqs(consume(t, c.ListenAddrs(), []string{"fresh"}, 50))["fresh"], 50); len(m) > 0 {
		t.Fatalf("missing %v", m)
	}
}

// TestInvalidCategory: a category that cannot name a topic is permanent for
// its messages only.
func TestInvalidCategory(t *testing.T) {
	c := newCluster(t)
	o := newOutput(t, configFor(c.ListenAddrs()))
	b := append(batches(testSource("app", "/a"), 4, 10, 0)[0], batches(testSource("bad topic!", "/b"), 2, 10, 0)[0]...)
	pe := asPartial(t, o.Send(context.Background(), b))
	if len(pe.Retry) != 0 || !equalInts(pe.Permanent, []int{4, 5}) {
		t.Fatalf("retry %v permanent %v, want permanent [4 5]", pe.Retry, pe.Permanent)
	}
	if m := missing(seqs(consume(t, c.ListenAddrs(), []string{"app"}, 4))["app"], 4); len(m) > 0 {
		t.Fatalf("app lines missing: %v", m)
	}
}
