package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Checker reads the file output and counts, per stream, every line it
// finds. Poll reads what was appended since the last call (whole lines
// only), so a test can watch delivery as it happens; Results compares with
// what the streams wrote.
type Checker struct {
	Glob string // the output files, e.g. dir/*.log
	// JSON: the output holds envelopes (format: json); the line checked
	// is each one's message. A line that is not an envelope is corrupted.
	JSON    bool
	streams map[string]*Stream

	mu        sync.Mutex
	offsets   map[string]int64
	tags      map[string]*tagCount
	corrupted map[string]int64 // by tag, "" when no tag could be read
	samples   []string
}

type tagCount struct {
	counts   []uint8
	low      int64         // every line below it is seen (or lost by the rotation)
	maxFirst map[int]int64 // per segment: highest seq seen for the first time
	ooo      int64
}

// NewChecker returns a checker of the output files matching glob for the
// given streams.
func NewChecker(glob string, streams ...*Stream) *Checker {
	c := &Checker{Glob: glob, streams: map[string]*Stream{}, offsets: map[string]int64{},
		tags: map[string]*tagCount{}, corrupted: map[string]int64{}}
	for _, s := range streams {
		c.streams[s.Tag] = s
		c.tags[s.Tag] = &tagCount{maxFirst: map[int]int64{}}
	}
	return c
}

// Poll reads the whole lines appended to the output files since the last
// call.
func (c *Checker) Poll() error {
	files, err := filepath.Glob(c.Glob)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range files {
		if err := c.readFile(p); err != nil {
			return err
		}
	}
	return nil
}

func (c *Checker) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) || os.IsPermission(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	off := c.offsets[path]
	buf := make([]byte, 4<<20)
	have := 0
	for {
		if have == len(buf) {
			buf = append(buf, make([]byte, len(buf))...) // a line longer than the buffer
		}
		n, err := f.ReadAt(buf[have:], off+int64(have))
		have += n
		last := bytes.LastIndexByte(buf[:have], '\n')
		if last >= 0 {
			for _, l := range bytes.Split(buf[:last], []byte("\n")) {
				c.line(l)
			}
			off += int64(last + 1)
			have = copy(buf, buf[last+1:have])
		}
		if err == io.EOF || n == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	c.offsets[path] = off
	return nil
}

func (c *Checker) line(l []byte) {
	if c.JSON {
		var env struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(l, &env); err != nil || env.Message == nil {
			env.Message = new("not an envelope: " + string(l))
		}
		l = []byte(*env.Message)
	}
	tag, seq, ok := ParseLine(l)
	t := c.tags[tag]
	s := c.streams[tag]
	if !ok || t == nil || seq >= s.Written() {
		if t == nil {
			tag = ""
		}
		c.corrupted[tag]++
		if len(c.samples) < 10 {
			if len(l) > 120 {
				l = append(l[:120:120], "..."...)
			}
			c.samples = append(c.samples, fmt.Sprintf("%q", l))
		}
		return
	}
	for int64(len(t.counts)) <= seq {
		t.counts = append(t.counts, make([]uint8, max(1024, len(t.counts)))...)
	}
	if t.counts[seq] == 0 {
		seg := s.Segment(seq)
		if m, ok := t.maxFirst[seg]; ok && seq < m {
			t.ooo++
		} else {
			t.maxFirst[seg] = seq
		}
	}
	if t.counts[seq] < 255 {
		t.counts[seq]++
	}
}

// Has reports whether line seq of tag was seen.
func (c *Checker) Has(tag string, seq int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tags[tag]
	return t != nil && seq < int64(len(t.counts)) && t.counts[seq] > 0
}

// Result is what the checker found for one stream.
type Result struct {
	Tag        string
	Method     Method
	Written    int64 // lines written
	Delivered  int64 // distinct lines found in the output
	Missing    int64 // written, not found, not lost by the rotation itself
	Duplicated int64 // extra copies of lines found more than once
	OutOfOrder int64 // lines found after a later line of the same file
	Corrupted  int64 // lines of this tag that are not whole valid lines
	// Window is how many lines copytruncate rotations lost by themselves
	// (written between the copy and the truncation); WindowDelivered of
	// them were read from the file before it was truncated.
	Window          int64
	WindowDelivered int64
}

func (r Result) String() string {
	s := fmt.Sprintf("%-22s %-19s written %8d  missing %6d  duplicated %6d  out-of-order %5d  corrupted %4d",
		r.Tag, r.Method, r.Written, r.Missing, r.Duplicated, r.OutOfOrder, r.Corrupted)
	if r.Window > 0 {
		s += fmt.Sprintf("  copytruncate window %d (%d of them delivered anyway)", r.Window, r.WindowDelivered)
	}
	return s
}

// Results polls once more and returns one result per stream, sorted by
// tag, and the lines that belong to no stream.
func (c *Checker) Results() ([]Result, int64, error) {
	if err := c.Poll(); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Result
	for tag, s := range c.streams {
		t := c.tags[tag]
		r := Result{Tag: tag, Method: s.Method, Written: s.Written(), OutOfOrder: t.ooo, Corrupted: c.corrupted[tag]}
		for seq := int64(0); seq < r.Written; seq++ {
			n := int64(0)
			if seq < int64(len(t.counts)) {
				n = int64(t.counts[seq])
			}
			win := s.InWindow(seq)
			if win {
				r.Window++
			}
			switch {
			case n == 0 && !win:
				r.Missing++
			case n > 0:
				r.Delivered++
				r.Duplicated += n - 1
				if win {
					r.WindowDelivered++
				}
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out, c.corrupted[""], nil
}

// Samples returns up to ten corrupted lines, quoted.
func (c *Checker) Samples() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.samples, "\n")
}

// MissingSample returns up to n missing sequence numbers of tag, for
// failure messages.
func (c *Checker) MissingSample(tag string, n int) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, t := c.streams[tag], c.tags[tag]
	var out []int64
	for seq := int64(0); seq < s.Written() && len(out) < n; seq++ {
		if (seq >= int64(len(t.counts)) || t.counts[seq] == 0) && !s.InWindow(seq) {
			out = append(out, seq)
		}
	}
	return out
}

// Delivered reports whether every line of every stream, bar those a
// copytruncate rotation lost by itself, has been seen.
func (c *Checker) Delivered() bool {
	if err := c.Poll(); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, s := range c.streams {
		t := c.tags[tag]
		w := s.Written()
		for t.low < w {
			if (t.low >= int64(len(t.counts)) || t.counts[t.low] == 0) && !s.InWindow(t.low) {
				return false
			}
			t.low++
		}
	}
	return true
}
