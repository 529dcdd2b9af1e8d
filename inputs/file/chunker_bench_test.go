package file

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

// benchBlock returns size bytes of nginx-style lines of about 180 bytes,
// ending with a partial line as a read block usually does.
func benchBlock(size int) []byte {
	b := make([]byte, 0, size)
	for i := 0; len(b) < size; i++ {
		b = append(b, "10.1.2."...)
		b = strconv.AppendInt(b, int64(i%256), 10)
		b = append(b, ` - - [10/Oct/2024:13:55:36 +0000] "GET /api/v1/items/`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ` HTTP/1.1" 200 5123 rt=0.042 "https://www.example.com/ref/4e561b" "Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0"`...)
		b = append(b, '\n')
	}
	return b[:size]
}

// BenchmarkChunker cuts a 1 MiB read block into messages, as the harvester
// does on every read while catching up. It must not allocate: message
// bodies point into the block and the message slice is reused.
func BenchmarkChunker(b *testing.B) {
	buf := benchBlock(1 << 20)
	src := &logagent.Source{Input: "bench"}
	now := time.Now()
	for _, lpm := range []int{1, 64} {
		b.Run(fmt.Sprintf("lpm=%d", lpm), func(b *testing.B) {
			c := Chunker{MaxMessageBytes: 64 << 10, LinesPerMessage: lpm}
			msgs, _ := c.Cut(buf, 0, src, now, nil, false)
			lines := 0
			for _, m := range msgs {
				lines += 1 + countNL(m.Body)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				msgs, _ = c.Cut(buf, 0, src, now, msgs[:0], false)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(lines), "ns/line")
		})
	}
}

func countNL(p []byte) int {
	n := 0
	for _, c := range p {
		if c == '\n' {
			n++
		}
	}
	return n
}
