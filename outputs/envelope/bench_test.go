package envelope

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/logagent/logagent"
)

// BenchmarkEncode encodes a batch of 150-byte log lines of one file, as an
// output's runner does: format json, and raw beside it (a copy of the body
// and its newline, what a raw output appends per message). b.SetBytes
// counts the bodies, so MB/s is of log read.
func BenchmarkEncode(b *testing.B) {
	line := []byte(`203.0.113.9 - - [06/Dec/2026:06:45:01 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (X11; Linux x86_64)" rt=0.012`)
	msgs := make([]logagent.Message, 1000)
	for i := range msgs {
		msgs[i] = logagent.Message{Body: line, Offset: int64(i * len(line)), ReadNano: 1_765_000_000_000_000_000 + int64(i), Source: testSource}
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"ascii", line},
		{"utf8", bytes.Repeat([]byte("été ✓ "), 15)},
		{"invalid", append(append([]byte{}, line...), 0xff)},
	} {
		for i := range msgs {
			msgs[i].Body = tc.body
		}
		size := int64(len(tc.body) * len(msgs))
		b.Run(fmt.Sprintf("raw/%s", tc.name), func(b *testing.B) {
			var buf []byte
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for i := range msgs {
					buf = append(buf, msgs[i].Body...)
					buf = append(buf, '\n')
				}
			}
		})
		b.Run(fmt.Sprintf("json/%s", tc.name), func(b *testing.B) {
			var e Encoder
			var buf []byte
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for i := range msgs {
					buf = e.Append(buf, &msgs[i])
					buf = append(buf, '\n')
				}
			}
		})
	}
}

// TestEncodeAllocs checks the contract the benchmark shows: no allocation
// per message once the buffer has room.
func TestEncodeAllocs(t *testing.T) {
	m := logagent.Message{Body: []byte("caf\xe9 \"x\"\n"), Offset: 99, ReadNano: 12345, Source: testSource}
	// Another file's messages in between: the metadata is encoded again
	// at each switch, still without allocating.
	other := &logagent.Source{Input: "b", Path: "/var/log/" + strings.Repeat("y", 200), Fields: map[string]string{"k": strings.Repeat("v", 100), "j": "w"}}
	m2 := logagent.Message{Body: []byte("x"), Source: other}
	var e Encoder
	buf := e.Append(nil, &m)
	buf = e.Append(buf, &m2)
	if n := testing.AllocsPerRun(100, func() {
		m.ReadNano += 1e9 // a new second each time: the stamp cache refills
		buf = e.Append(buf[:0], &m)
		buf = e.Append(buf, &m2)
	}); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}
