package kafka

import (
	"testing"
	"time"

	"github.com/logagent/logagent"
)

func TestBuild(t *testing.T) {
	src := testSource("app", "/var/log/app.log")
	src.Fields["host"] = "spoofed" // a field never replaces a standard header
	b := builder{key: "path", maxBytes: 100, now: time.Now}
	batch := []logagent.Message{
		{Body: []byte("one"), Offset: 4, ReadNano: time.UnixMilli(1234).UnixNano(), Source: src},
		{Body: []byte(""), Offset: 5, ReadNano: time.UnixMilli(1235).UnixNano(), Source: src},
		{Body: make([]byte, 101), Offset: 107, Source: src},
		{Body: []byte("bad"), Source: &logagent.Source{Category: "no spaces"}},
	}
	b.build(batch)
	if len(b.msgs) != 2 || b.idx[0] != 0 || b.idx[1] != 1 {
		t.Fatalf("built %d messages for indexes %v", len(b.msgs), b.idx)
	}
	if len(b.perm) != 2 || b.perm[0].index != 2 || b.perm[1].index != 3 {
		t.Fatalf("refused %+v, want indexes 2 and 3", b.perm)
	}
	m := b.msgs[0]
	if m.Topic != "app" || string(m.Key) != src.Path || string(m.Value) != "one" || m.Time.UnixMilli() != 1234 {
		t.Fatalf("message %+v", m)
	}
	want := [][2]string{
		{"timestamp", "1234"}, {"offset", "4"}, {"host", "host-a"}, {"path", "/var/log/app.log"},
		{"category", "app"}, {"input", "in-app"}, {"dc", "eu1"}, {"env", "test"},
	}
	if len(m.Headers) != len(want) {
		t.Fatalf("headers %v", m.Headers)
	}
	for i, h := range m.Headers {
		if h.Key != want[i][0] || string(h.Value) != want[i][1] {
			t.Errorf("header %d = %s=%q, want %s=%q", i, h.Key, h.Value, want[i][0], want[i][1])
		}
	}
	if v := b.msgs[1].Value; v == nil || len(v) != 0 {
		t.Errorf("empty line value = %#v, want empty, not null", v)
	}
	// The body is a copy: the input may reuse its buffer.
	batch[0].Body[0] = 'X'
	if string(b.msgs[0].Value) != "one" {
		t.Errorf("value follows the input's buffer")
	}
}

// TestBuildAllocs: once warmed up, building a batch of known sources costs no
// allocation per message.
func TestBuildAllocs(t *testing.T) {
	src := testSource("app", "/a")
	batch := batches(src, 500, 500, 200)[0]
	b := builder{key: "host", maxBytes: DefaultMaxMessageBytes, now: time.Now}
	b.build(batch)
	if n := testing.AllocsPerRun(20, func() { b.build(batch) }); n != 0 {
		t.Errorf("build: %.0f allocations per batch of 500, want 0", n)
	}
}

func BenchmarkBuildMessages(b *testing.B) {
	src := testSource("app", "/var/log/app.log")
	batch := batches(src, 1000, 1000, 200)[0]
	bl := builder{key: "none", maxBytes: DefaultMaxMessageBytes, now: time.Now}
	var size int64
	for i := range batch {
		size += int64(len(batch[i].Body))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		bl.build(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/msg")
}
