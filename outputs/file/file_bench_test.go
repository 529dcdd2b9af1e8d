package file

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/logagent/logagent"
)

// benchBatch returns n messages of about 180 bytes. With contiguous set
// their bodies lie one after the other, newline-separated, in one buffer
// as the chunker leaves them in a read block; otherwise each body is a
// buffer of its own.
func benchBatch(n int, contiguous bool) []logagent.Message {
	src := &logagent.Source{Input: "bench", Category: "bench"}
	var block []byte
	var bounds [][2]int
	for i := 0; i < n; i++ {
		start := len(block)
		block = append(block, `10.1.2.3 - - [10/Oct/2024:13:55:36 +0000] "GET /api/v1/items/`...)
		block = strconv.AppendInt(block, int64(i), 10)
		block = append(block, ` HTTP/1.1" 200 5123 rt=0.042 "https://www.example.com/ref/4e561b" "Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0"`...)
		bounds = append(bounds, [2]int{start, len(block)})
		block = append(block, '\n')
	}
	msgs := make([]logagent.Message, n)
	for i, b := range bounds {
		body := block[b[0]:b[1]]
		if !contiguous {
			body = append([]byte(nil), body...)
		}
		msgs[i] = logagent.Message{Body: body, Offset: int64(b[1] + 1), Source: src}
	}
	return msgs
}

// BenchmarkSend measures the file output's Send of a full batch (2048
// messages, the default max_events) to /dev/null: encoding plus the
// system calls, without the cost of a real file system.
func BenchmarkSend(b *testing.B) {
	for _, contiguous := range []bool{true, false} {
		b.Run(fmt.Sprintf("contiguous=%v", contiguous), func(b *testing.B) {
			benchSend(b, "/dev/null", benchBatch(2048, contiguous))
		})
	}
}

// BenchmarkSendFile is BenchmarkSend to a real file in a temporary
// directory (page cache).
func BenchmarkSendFile(b *testing.B) {
	benchSend(b, filepath.Join(b.TempDir(), "out.log"), benchBatch(2048, true))
}

func benchSend(b *testing.B, path string, batch []logagent.Message) {
	o, err := New("bench", Config{Path: path, Mode: "0644", MaxOpenFiles: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	n := 0
	for i := range batch {
		n += len(batch[i].Body) + 1
	}
	ctx := context.Background()
	if err := o.Send(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := o.Send(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if i++; i%512 == 0 && path != "/dev/null" {
			// Keep the file small: the output appends (O_APPEND) after
			// the cut.
			b.StopTimer()
			os.Truncate(path, 0)
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(batch)), "ns/msg")
}
