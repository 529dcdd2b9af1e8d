package file

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

func TestChunkerCut(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		pack     int
		in       string
		final    bool
		want     []string
		offsets  []int64
		consumed int
	}{
		{name: "lines", max: 100, pack: 1, in: "a\nbb\nccc\n", want: []string{"a", "bb", "ccc"}, offsets: []int64{2, 5, 9}, consumed: 9},
		{name: "partial last line waits", max: 100, pack: 1, in: "a\nbb", want: []string{"a"}, offsets: []int64{2}, consumed: 2},
		{name: "partial last line when final", max: 100, pack: 1, in: "a\nbb", final: true, want: []string{"a", "bb"}, offsets: []int64{2, 4}, consumed: 4},
		{name: "empty lines kept", max: 100, pack: 1, in: "\n\na\n", want: []string{"", "", "a"}, offsets: []int64{1, 2, 4}, consumed: 4},
		{name: "CRLF kept as is", max: 100, pack: 1, in: "a\r\nb\r\n", want: []string{"a\r", "b\r"}, offsets: []int64{3, 6}, consumed: 6},
		{name: "invalid UTF-8 and NUL passed through", max: 100, pack: 1, in: "\xff\xfe\x00x\n", want: []string{"\xff\xfe\x00x"}, offsets: []int64{5}, consumed: 5},
		{name: "long line split in order", max: 3, pack: 1, in: "abcdefgh\n", want: []string{"abc", "def", "gh"}, offsets: []int64{3, 6, 9}, consumed: 9},
		{name: "line of exactly max", max: 3, pack: 1, in: "abc\n", want: []string{"abc"}, offsets: []int64{4}, consumed: 4},
		{name: "multiple of max: no empty piece", max: 3, pack: 1, in: "abcdef\n", want: []string{"abc", "def"}, offsets: []int64{3, 7}, consumed: 7},
		{name: "partial line of exactly max waits", max: 3, pack: 1, in: "abc", want: nil, consumed: 0},
		{name: "partial line longer than max is cut", max: 3, pack: 1, in: "abcde", want: []string{"abc"}, offsets: []int64{3}, consumed: 3},
		{name: "pack lines", max: 100, pack: 2, in: "a\nb\nc\n", want: []string{"a\nb", "c"}, offsets: []int64{4, 6}, consumed: 6},
		{name: "pack within max", max: 5, pack: 10, in: "ab\ncd\nef\n", want: []string{"ab\ncd", "ef"}, offsets: []int64{6, 9}, consumed: 9},
		{name: "pack then long line", max: 3, pack: 4, in: "a\nbcdef\ng\n", want: []string{"a", "bcd", "ef", "g"}, offsets: []int64{2, 5, 8, 10}, consumed: 10},
		{name: "pack after split piece", max: 4, pack: 4, in: "a\nbcdef\ng\n", want: []string{"a", "bcde", "f\ng"}, offsets: []int64{2, 6, 10}, consumed: 10},
		{name: "pack keeps partial", max: 100, pack: 3, in: "a\nb\nc", want: []string{"a\nb"}, offsets: []int64{4}, consumed: 4},
		{name: "pack CRLF", max: 100, pack: 2, in: "a\r\nb\r\n", want: []string{"a\r\nb\r"}, offsets: []int64{6}, consumed: 6},
		{name: "empty", max: 10, pack: 1, in: "", want: nil, consumed: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Chunker{MaxMessageBytes: tt.max, LinesPerMessage: tt.pack}
			const base = 1000
			msgs, used := c.Cut([]byte(tt.in), base, &logagent.Source{}, time.Time{}, nil, tt.final)
			var got []string
			var offs []int64
			for _, m := range msgs {
				got = append(got, string(m.Body))
				offs = append(offs, m.Offset-base)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("bodies = %q, want %q", got, tt.want)
			}
			if tt.offsets != nil && !equalInt64(offs, tt.offsets) {
				t.Errorf("offsets = %v, want %v", offs, tt.offsets)
			}
			if used != tt.consumed {
				t.Errorf("consumed %d, want %d", used, tt.consumed)
			}
		})
	}
}

func equalInt64(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reassemble cuts data in pieces of at most step bytes, as reads would, and
// returns what the messages say the file held, line by line.
func reassemble(t testing.TB, c Chunker, data []byte, step int) []byte {
	var out bytes.Buffer
	var pending []byte
	var off int64
	for pos := 0; pos < len(data) || len(pending) > 0; {
		end := min(pos+step, len(data))
		pending = append(pending, data[pos:end]...)
		pos = end
		final := pos == len(data)
		base := off
		msgs, used := c.Cut(pending, base, nil, time.Time{}, nil, final)
		prev := base
		for _, m := range msgs {
			if m.Offset <= prev || len(m.Body) > c.MaxMessageBytes {
				t.Fatalf("offset %d after %d, body %d bytes (max %d)", m.Offset, prev, len(m.Body), c.MaxMessageBytes)
			}
			// What the message covers in the file: the body, then a
			// newline unless it was a piece of a longer line.
			covered := pending[prev-base : m.Offset-base]
			if !bytes.HasPrefix(covered, m.Body) {
				t.Fatalf("body %q is not the start of the bytes it covers %q", m.Body, covered)
			}
			out.Write(covered)
			prev = m.Offset
		}
		if int64(used) != prev-base {
			t.Fatalf("consumed %d, messages cover %d", used, prev-base)
		}
		pending = append(pending[:0], pending[used:]...)
		off += int64(used)
		if final && len(pending) > 0 {
			t.Fatalf("final cut left %d bytes", len(pending))
		}
		if final {
			break
		}
	}
	return out.Bytes()
}

// FuzzChunker checks that, however the input is cut in reads, the
// messages cover every byte once, in order, none over the limit.
func FuzzChunker(f *testing.F) {
	f.Add([]byte("a\nbb\nccc\n"), uint8(3), uint8(1), uint8(2))
	f.Add([]byte("\r\n\n\xff\x00 long line here\nx"), uint8(4), uint8(3), uint8(5))
	f.Add([]byte(strings.Repeat("abcdefghij", 20)+"\n"), uint8(7), uint8(2), uint8(9))
	f.Fuzz(func(t *testing.T, data []byte, max, pack, step uint8) {
		c := Chunker{MaxMessageBytes: int(max%64) + 1, LinesPerMessage: int(pack%8) + 1}
		s := int(step%32) + 1
		got := reassemble(t, c, data, s)
		if !bytes.Equal(got, data) {
			t.Fatalf("messages cover %q, file holds %q", got, data)
		}
	})
}

func BenchmarkChunkerCut(b *testing.B) {
	line := strings.Repeat("x", 179) + "\n"
	buf := []byte(strings.Repeat(line, (1<<20)/len(line)))
	c := Chunker{MaxMessageBytes: 64 << 10, LinesPerMessage: 1}
	src := &logagent.Source{}
	msgs := make([]logagent.Message, 0, len(buf)/len(line)+1)
	now := time.Now()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		msgs, _ = c.Cut(buf, 0, src, now, msgs[:0], false)
	}
}
