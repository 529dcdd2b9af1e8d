package multiline

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

var (
	dateStart = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[ T]`)
	javaCont  = regexp.MustCompile(`^(\s|Caused by:)`)
)

// msg is a message as a test states it: its body and its offset relative to
// the first byte given.
type msg struct {
	body string
	off  int64
}

func (m msg) String() string { return fmt.Sprintf("%q@%d", m.body, m.off) }

func msgsOf(ms []logagent.Message, base int64) []msg {
	var out []msg
	for _, m := range ms {
		out = append(out, msg{string(m.Body), m.Offset - base})
	}
	return out
}

func TestJoinerCut(t *testing.T) {
	trace := "2026-12-06 10:00:00 ERROR boom\n" +
		"java.lang.IllegalStateException: x\n" +
		"\tat a.B.c(B.java:1)\n" +
		"Caused by: java.io.IOException: y\n" +
		"\t... 3 more\n"
	next := "2026-12-06 10:00:01 INFO ok\n"
	tests := []struct {
		name     string
		cfg      Config
		in       string
		final    bool
		want     []msg
		consumed int
		open     bool // an event stays open
	}{
		{
			name: "start: trace joined, open event waits for the next start",
			cfg:  Config{Start: dateStart},
			in:   trace + next,
			want: []msg{{strings.TrimSuffix(trace, "\n"), int64(len(trace))}},
			// next is an open event of its own
			consumed: len(trace), open: true,
		},
		{
			name:     "start: finished file sends the open event",
			cfg:      Config{Start: dateStart},
			in:       trace + next,
			final:    true,
			want:     []msg{{strings.TrimSuffix(trace, "\n"), int64(len(trace))}, {strings.TrimSuffix(next, "\n"), int64(len(trace + next))}},
			consumed: len(trace + next),
		},
		{
			name:     "continue: same trace",
			cfg:      Config{Continue: javaCont},
			in:       "2026-12-06 10:00:00 ERROR boom\n\tat a\n\tat b\nCaused by: c\n\tat d\nnext\n",
			want:     []msg{{"2026-12-06 10:00:00 ERROR boom\n\tat a\n\tat b\nCaused by: c\n\tat d", 62}},
			consumed: 62, open: true,
		},
		{
			name:     "lines before the first start are an event of their own",
			cfg:      Config{Start: dateStart},
			in:       "orphan 1\norphan 2\n2026-12-06 x\n",
			want:     []msg{{"orphan 1\norphan 2", 18}},
			consumed: 18, open: true,
		},
		{
			name:     "a line without newline waits",
			cfg:      Config{Start: regexp.MustCompile(`^S`)},
			in:       "S1\n c\nS2\n c",
			want:     []msg{{"S1\n c", 6}},
			consumed: 6, open: true,
		},
		{
			name:     "final: last line without newline sent, offset at its end",
			cfg:      Config{Start: regexp.MustCompile(`^S`)},
			in:       "S1\n c\nS2\n c",
			final:    true,
			want:     []msg{{"S1\n c", 6}, {"S2\n c", 11}},
			consumed: 11,
		},
		{
			name:     "final: partial line starting an event",
			cfg:      Config{Start: regexp.MustCompile(`^S`)},
			in:       "S1\n c\nS2",
			final:    true,
			want:     []msg{{"S1\n c", 6}, {"S2", 8}},
			consumed: 8,
		},
		{
			name:     "max_lines ends an event",
			cfg:      Config{Start: regexp.MustCompile(`^S`), MaxLines: 2},
			in:       "S\na\nb\nc\nd\nS\n",
			want:     []msg{{"S\na", 4}, {"b\nc", 8}, {"d", 10}},
			consumed: 10, open: true,
		},
		{
			name:     "long event in pieces of max bytes",
			cfg:      Config{Start: regexp.MustCompile(`^S`), MaxBytes: 4},
			in:       "S12\n34\n5\nS\n",
			want:     []msg{{"S12\n", 4}, {"34\n5", 9}},
			consumed: 9, open: true,
		},
		{
			name:     "event of exactly max bytes: one message",
			cfg:      Config{Start: regexp.MustCompile(`^S`), MaxBytes: 4},
			in:       "S1\na\nS\n",
			want:     []msg{{"S1\na", 5}},
			consumed: 5, open: true,
		},
		{
			name:     "long line matched on its first max bytes, read on in pieces",
			cfg:      Config{Start: regexp.MustCompile(`^S`), MaxBytes: 3},
			in:       "S\nabcdefg",
			want:     []msg{{"S\na", 3}, {"bcd", 6}},
			consumed: 6, open: true,
		},
		{
			name:     "long line pattern anchored at $ sees only the first max bytes",
			cfg:      Config{Continue: regexp.MustCompile(`c$`), MaxBytes: 3},
			in:       "x\nabcdef\n",
			want:     []msg{{"x\na", 3}, {"bcd", 6}},
			consumed: 6, open: true,
		},
		{
			name:     "empty lines kept, CRLF and invalid UTF-8 as they are",
			cfg:      Config{Continue: regexp.MustCompile(`^$|^\s`)},
			in:       "a\r\n\n \xff\x00\nb\n",
			want:     []msg{{"a\r\n\n \xff\x00", 8}},
			consumed: 8, open: true,
		},
		{
			name: "empty input",
			cfg:  Config{Start: dateStart},
			in:   "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.MaxLines == 0 {
				cfg.MaxLines = 500
			}
			if cfg.MaxBytes == 0 {
				cfg.MaxBytes = 1 << 20
			}
			cfg.Timeout = time.Second
			j := New(cfg)
			const base = 1000
			got, used := j.Cut([]byte(tt.in), base, &logagent.Source{}, time.Unix(100, 0), nil, tt.final)
			if fmt.Sprint(msgsOf(got, base)) != fmt.Sprint(tt.want) {
				t.Errorf("messages = %v\nwant       %v", msgsOf(got, base), tt.want)
			}
			if used != tt.consumed {
				t.Errorf("consumed %d, want %d", used, tt.consumed)
			}
			if _, open := j.Open(); open != tt.open {
				t.Errorf("open = %v, want %v", open, tt.open)
			}
		})
	}
}

// TestJoinerTimeout: an open event is sent once Timeout has passed since its
// last line was read, and not before; a line read meanwhile restarts the wait.
func TestJoinerTimeout(t *testing.T) {
	j := New(Config{Start: regexp.MustCompile(`^S`), MaxLines: 500, MaxBytes: 100, Timeout: time.Second})
	src := &logagent.Source{}
	t0 := time.Unix(100, 0)
	buf := []byte("S1\n a\n")
	ms, used := j.Cut(buf, 0, src, t0, nil, false)
	if len(ms) != 0 || used != 0 {
		t.Fatalf("open event handed out: %v, used %d", msgsOf(ms, 0), used)
	}
	if d, ok := j.Deadline(); !ok || !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline = %v %v, want %v", d, ok, t0.Add(time.Second))
	}
	// A continuation line read before the deadline joins and moves it.
	buf = append(buf, " b\n p"...)
	t1 := t0.Add(900 * time.Millisecond)
	if ms, used = j.Cut(buf, 0, src, t1, nil, false); len(ms) != 0 || used != 0 {
		t.Fatalf("open event handed out early: %v", msgsOf(ms, 0))
	}
	if ms, _ = j.Cut(buf, 0, src, t0.Add(time.Second), nil, false); len(ms) != 0 {
		t.Fatalf("sent at the first line's deadline, not the last's: %v", msgsOf(ms, 0))
	}
	ms, used = j.Cut(buf, 0, src, t1.Add(time.Second), nil, false)
	if want := "[\"S1\\n a\\n b\"@9]"; fmt.Sprint(msgsOf(ms, 0)) != want {
		t.Fatalf("after timeout: %v, want %s", msgsOf(ms, 0), want)
	}
	if used != 9 {
		t.Fatalf("used %d, want 9 (the partial line kept)", used)
	}
	if _, ok := j.Deadline(); ok {
		t.Fatal("deadline still set with no event open")
	}
	// The partial line, completed later, begins an event of its own
	// although it would have continued the one sent.
	ms, used = j.Cut([]byte(" p\n"), 9, src, t1.Add(2*time.Second), nil, false)
	if len(ms) != 0 || used != 0 {
		t.Fatalf("got %v, used %d", msgsOf(ms, 9), used)
	}
	if start, open := j.Open(); !open || start != 9 {
		t.Fatalf("open = %d %v, want 9 true", start, open)
	}
}

// TestJoinerMidLineWaits: an event whose last line is longer than MaxBytes
// and not read to its newline waits for it past the timeout.
func TestJoinerMidLineWaits(t *testing.T) {
	j := New(Config{Start: regexp.MustCompile(`^S`), MaxLines: 500, MaxBytes: 4, Timeout: time.Second})
	t0 := time.Unix(100, 0)
	buf := []byte("S\nlong line")
	ms, used := j.Cut(buf, 0, nil, t0, nil, false)
	if fmt.Sprint(msgsOf(ms, 0)) != `["S\nlo"@4 "ng l"@8]` || used != 8 {
		t.Fatalf("got %v used %d", msgsOf(ms, 0), used)
	}
	if _, ok := j.Deadline(); ok {
		t.Fatal("a deadline while the last line is read")
	}
	ms, _ = j.Cut(buf[used:], 8, nil, t0.Add(time.Hour), nil, false)
	if len(ms) != 0 {
		t.Fatalf("sent mid-line: %v", msgsOf(ms, 8))
	}
	ms, used = j.Cut([]byte("ine\nS\n"), 8, nil, t0.Add(time.Hour), nil, false)
	if fmt.Sprint(msgsOf(ms, 8)) != `["ine"@4]` || used != 4 {
		t.Fatalf("got %v used %d", msgsOf(ms, 8), used)
	}
}

// reference joins data the simplest way: all of it at once, line by line.
// cuts are the file offsets of pauses of a Timeout or more in reading: the
// event open there, if its last line is complete, ends there.
func reference(cfg Config, data []byte, cuts []int) []msg {
	type line struct {
		start, end int // body data[start:end]
		next       int // past its newline, or end
	}
	var lines []line
	for pos := 0; pos < len(data); {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			lines = append(lines, line{pos, len(data), len(data)})
			break
		}
		lines = append(lines, line{pos, pos + i, pos + i + 1})
		pos += i + 1
	}
	// forced[k]: the event ends after line k (a pause once it was read,
	// with the line after it not yet longer than MaxBytes).
	forced := map[int]bool{}
	for _, c := range cuts {
		last := -1 // the last line read whole, newline included, by c
		for k, l := range lines {
			if l.next > l.end && l.next <= c {
				last = k
			}
		}
		// Unless the next line, not read whole, is known to be long
		// (then it is in the event, which waits for its newline).
		if last >= 0 && c-lines[last].next <= cfg.MaxBytes {
			forced[last] = true
		}
	}
	var out []msg
	evStart, evLines, open := 0, 0, false
	end := func(k int) {
		l := lines[k]
		body := data[evStart:l.end]
		off := evStart
		for len(body) > cfg.MaxBytes {
			off += cfg.MaxBytes
			out = append(out, msg{string(body[:cfg.MaxBytes]), int64(off)})
			body = body[cfg.MaxBytes:]
		}
		out = append(out, msg{string(body), int64(l.next)})
		open = false
	}
	for k, l := range lines {
		b := data[l.start:l.end]
		if len(b) > cfg.MaxBytes {
			b = b[:cfg.MaxBytes]
		}
		joins := open && evLines < cfg.MaxLines
		if joins {
			if cfg.Start != nil {
				joins = !cfg.Start.Match(b)
			} else {
				joins = cfg.Continue.Match(b)
			}
		}
		if !joins {
			if open {
				end(k - 1)
			}
			evStart, evLines, open = l.start, 0, true
		}
		evLines++
		if forced[k] {
			end(k)
		}
	}
	if open {
		end(len(lines) - 1)
	}
	return out
}

// feed runs j over data as a harvester would: reads of the sizes steps
// give, each followed, when its step says so, by a pause of a Timeout (a
// call with nothing new at a clock moved on); then a final call. It checks
// on the way that every call with 2×MaxBytes+2 bytes or more makes progress
// and that a pause leaves no event open but one whose last line is being
// read. It returns the messages and the offsets where it paused.
func feed(t *testing.T, cfg Config, data []byte, steps []byte) ([]msg, []int) {
	t.Helper()
	j := New(cfg)
	now := time.Unix(1000, 0)
	var out []msg
	var cuts []int
	r, w := 0, 0 // data[r:w] is what the harvester holds
	cut := func(final bool) {
		buf := append([]byte(nil), data[r:w]...) // a buffer of its own, as after a move to another block
		ms, used := j.Cut(buf, int64(r), nil, now, nil, final)
		if used < 0 || used > len(buf) {
			t.Fatalf("used %d of %d", used, len(buf))
		}
		if !final && len(buf) >= 2*cfg.MaxBytes+2 && used == 0 {
			t.Fatalf("no progress with %d bytes at %d", len(buf), r)
		}
		for _, m := range ms {
			out = append(out, msg{string(m.Body), m.Offset})
		}
		r += used
	}
	for _, s := range steps {
		if w == len(data) {
			break
		}
		w = min(len(data), w+int(s&0x3f)+1)
		cut(false)
		if s&0x80 != 0 {
			now = now.Add(cfg.Timeout)
			cut(false)
			cuts = append(cuts, w)
			if start, open := j.Open(); open {
				if _, ok := j.Deadline(); ok {
					t.Fatalf("event open at %d after its timeout", start)
				}
			}
		}
		now = now.Add(time.Millisecond)
	}
	w = len(data)
	cut(true)
	if r != len(data) {
		t.Fatalf("final call left %d bytes of %d", len(data)-r, len(data))
	}
	return out, cuts
}

// checkCover checks that the messages cover data exactly, in order: each
// the bytes from the previous one's offset to its own, less the newline
// that ends an event.
func checkCover(t *testing.T, data []byte, got []msg) {
	t.Helper()
	prev := int64(0)
	for i, m := range got {
		if m.off <= prev && !(m.off == prev && len(data) == 0) {
			t.Fatalf("message %d %v: offset not past %d", i, m, prev)
		}
		span := string(data[prev:m.off])
		if m.body != span && m.body+"\n" != span {
			t.Fatalf("message %d %v is not data[%d:%d] = %q", i, m, prev, m.off, span)
		}
		prev = m.off
	}
	if prev != int64(len(data)) {
		t.Fatalf("messages end at %d, data at %d", prev, len(data))
	}
}

// alphabet maps fuzz bytes to a few that make events: starts, continuations,
// newlines.
func alphabet(raw []byte) []byte {
	const letters = "S \nxS\n\t\xff"
	out := make([]byte, len(raw))
	for i, b := range raw {
		out[i] = letters[int(b)%len(letters)]
	}
	return out
}

// Patterns of the fuzz target: anchored (with a first-byte filter) or
// not, folding case, anchored at the end.
var (
	fuzzStarts    = []*regexp.Regexp{regexp.MustCompile(`^S`), regexp.MustCompile(`S`), regexp.MustCompile(`(?i)^s\t?`)}
	fuzzContinues = []*regexp.Regexp{regexp.MustCompile(`^\s`), regexp.MustCompile(`^[ \t]|^x$`), regexp.MustCompile(` `)}
)

func fuzzConfig(cont bool, maxBytes, maxLines uint8) Config {
	cfg := Config{MaxBytes: int(maxBytes%16) + 1, MaxLines: int(maxLines%6) + 1, Timeout: time.Second}
	k := int(maxLines/6) % 3
	if cont {
		cfg.Continue = fuzzContinues[k]
	} else {
		cfg.Start = fuzzStarts[k]
	}
	return cfg
}

// FuzzJoiner: whatever the read boundaries and pauses, every byte is in
// exactly one message, in order, and the messages are those of joining the
// whole file at once with the pauses as event ends.
func FuzzJoiner(f *testing.F) {
	f.Add([]byte("S1\n a\n b\nS2\nS3\n c"), []byte{3, 0x81, 7, 2}, false, uint8(7), uint8(3))
	f.Add([]byte("x\n\ty\n\tz\nw\n\tlong continuation line\n"), []byte{1, 1, 1, 0x90, 40}, true, uint8(5), uint8(9))
	f.Add([]byte("Sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n\n\n"), []byte{0x85, 0x85, 0x85}, false, uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, raw, steps []byte, cont bool, maxBytes, maxLines uint8) {
		cfg := fuzzConfig(cont, maxBytes, maxLines)
		data := alphabet(raw)
		got, cuts := feed(t, cfg, data, steps)
		checkCover(t, data, got)
		want := reference(cfg, data, cuts)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cuts %v\ngot  %v\nwant %v", cuts, got, want)
		}
	})
}

// BenchmarkJoiner: the cost of multiline per byte, on Java traces (most
// lines join) and on one-line events (every line begins one), with the
// pattern of the README. Compare with BenchmarkChunker in inputs/file.
func BenchmarkJoiner(b *testing.B) {
	var traces, single bytes.Buffer
	for i := 0; traces.Len() < 1<<20; i++ {
		fmt.Fprintf(&traces, "2026-12-06 10:00:00.%03d ERROR request %d failed\njava.lang.IllegalStateException: boom\n\tat com.example.Service.handle(Service.java:42)\n\tat com.example.Main.run(Main.java:7)\nCaused by: java.io.IOException: disk full\n\t... 12 more\n", i%1000, i)
	}
	for i := 0; single.Len() < 1<<20; i++ {
		fmt.Fprintf(&single, "2026-12-06 10:00:00.%03d INFO request %d served in 12ms by worker 7 of pool main, user agent curl/8.0\n", i%1000, i)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"traces", traces.Bytes()}, {"one-line", single.Bytes()}} {
		b.Run(c.name, func(b *testing.B) {
			j := New(Config{Start: dateStart, MaxLines: 500, MaxBytes: 64 << 10, Timeout: time.Second})
			now := time.Unix(1, 0)
			var msgs []logagent.Message
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				j.Reset()
				msgs, _ = j.Cut(c.data, 0, nil, now, msgs[:0], true)
			}
		})
	}
}

// TestFirstBytes: the first-byte filter never rules out a line the pattern
// matches, and is there only for patterns anchored at the line's start.
func TestFirstBytes(t *testing.T) {
	tests := []struct {
		pattern string
		known   bool // a filter is derived
	}{
		{`^\d{4}-\d{2}-\d{2}[ T]`, true},
		{`^(\s|Caused by:)`, true},
		{`^(?i)caused`, true},
		{`(?m)^\[`, true},
		{`\A[A-Z]`, true},
		{`^é`, true},
		{`^.`, true},
		{`ERROR`, false},     // anywhere in the line
		{`^a|b`, false},      // b anywhere
		{`^$|^\s`, false},    // matches the empty line: $ is not known at the start
		{`^x*`, false},       // matches without reading a byte
		{`\bword`, false},    // a word boundary is not known at the start
		{`^(a|)b?`, false},   // may match empty
		{`(^a)|(^b)`, true},  // both branches anchored
		{`^\x{1F600}`, true}, // a rune of four bytes
	}
	lines := []string{"", "2026-12-06 10:00:00 x", "\tat a.B", " x", "Caused by: y", "caused", "CAUSED", "[x", "A", "é", "\xff", "😀", "a", "b", "x", "word", "ab", "\x00"}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.pattern)
		first := firstBytes(re)
		if (first != nil) != tt.known {
			t.Errorf("%s: filter derived = %v, want %v", tt.pattern, first != nil, tt.known)
		}
		if first == nil {
			continue
		}
		for _, l := range lines {
			if l != "" && re.MatchString(l) && !first[l[0]] {
				t.Errorf("%s: %q matches but its first byte is ruled out", tt.pattern, l)
			}
		}
		for b := 0; b < 256; b++ {
			if s := string([]byte{byte(b), 'x'}); re.MatchString(s) && !first[b] {
				t.Errorf("%s: %q matches but its first byte is ruled out", tt.pattern, s)
			}
		}
	}
}
