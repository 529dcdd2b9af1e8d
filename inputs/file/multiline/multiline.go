// Package multiline joins consecutive lines of a file into events (a Java
// stack trace, a message with continuation lines) before they are shipped.
//
// A Joiner does no I/O and reads no clock: the harvester hands it the bytes
// read and the time they were read, and asks it when the event it holds
// open times out (Deadline). It never copies: the lines of one event are
// consecutive in the file, separated by '\n', so the event's body, its
// lines joined by '\n', is the range of the read buffer from its first
// byte to the end of its last line.
package multiline

import (
	"bytes"
	"regexp"
	"time"

	"github.com/logagent/logagent"
)

// Config is what an input's multiline key says, resolved.
type Config struct {
	// Exactly one of Start and Continue is set. Start matches the first
	// line of an event: every line that does not match joins the event
	// before it. Continue matches the lines that join the event before
	// them: every line that does not match begins a new event. A line
	// that would join, with no event open (the first line read), begins
	// one.
	Start, Continue *regexp.Regexp
	// MaxLines bounds the lines of an event: the next line begins a new
	// one.
	MaxLines int
	// MaxBytes is max_message_bytes: an event whose body is longer is
	// shipped in consecutive pieces of MaxBytes, in order, as a long line
	// is. A line longer than MaxBytes is matched on its first MaxBytes
	// bytes.
	MaxBytes int
	// Timeout: an event still open this long after its last line was
	// read is shipped without waiting for the line that ends it.
	Timeout time.Duration
}

// Joiner cuts file bytes into events. It is used by one goroutine at a
// time (the harvester's), and keeps, between calls to Cut, what it knows
// of the event still open at the end of the bytes it was given.
//
// The open event is never handed out before it ends (a line that begins
// the next, MaxLines, Timeout, or the end of a finished file), so the
// offset a caller commits never passes the event's first byte: read again
// after a restart, the event arrives whole. The one exception is an event
// longer than MaxBytes, whose pieces are handed out as they fill.
type Joiner struct {
	// immutable after New
	cfg Config
	re  *regexp.Regexp // Start or Continue
	// first holds the bytes a line matching re begins with; nil: any.
	first *[256]bool

	// the open event, in file offsets so that the caller may move the
	// bytes between calls (into another read buffer)
	open    bool
	start   int64     // first byte not yet handed out (the event's, or of its rest after pieces)
	end     int64     // end of the body so far: its last line's end, newline excluded
	midLine bool      // the last line's newline is not read yet (a line longer than MaxBytes)
	lines   int       // lines in the event, those in pieces handed out included
	lastAt  time.Time // when the last line was read
}

// New returns a joiner for cfg.
func New(cfg Config) *Joiner {
	re := cfg.Start
	if re == nil {
		re = cfg.Continue
	}
	return &Joiner{cfg: cfg, re: re, first: firstBytes(re)}
}

// Reset forgets the open event: the caller dropped the bytes it was given
// (the file was truncated and is read again from its start).
func (j *Joiner) Reset() { *j = Joiner{cfg: j.cfg, re: j.re, first: j.first} }

// Deadline returns when the open event times out, and false when there is
// none to time out: none open, or one whose last line is still being read
// (it waits for that line's newline, as every line does).
func (j *Joiner) Deadline() (time.Time, bool) {
	if !j.open || j.midLine {
		return time.Time{}, false
	}
	return j.lastAt.Add(j.cfg.Timeout), true
}

// Open reports whether an event is open, and the file offset of its first
// byte not handed out yet.
func (j *Joiner) Open() (int64, bool) { return j.start, j.open }

// joins reports whether line (complete, or the first MaxBytes bytes of a
// longer one) joins the open event.
func (j *Joiner) joins(line []byte) bool {
	if !j.open || j.lines >= j.cfg.MaxLines {
		return false
	}
	if len(line) > j.cfg.MaxBytes {
		line = line[:j.cfg.MaxBytes]
	}
	return j.matches(line) == (j.cfg.Continue != nil)
}

// matches reports whether line matches the pattern.
func (j *Joiner) matches(line []byte) bool {
	if j.first != nil && len(line) > 0 && !j.first[line[0]] {
		return false
	}
	return j.re.Match(line)
}

// Cut appends to msgs the events (and pieces of events) that end in buf,
// whose first byte is at file offset base and which was read at now, and
// returns them with the number of bytes of buf they cover. The bytes after
// that (the open event, and a line whose newline is not read yet) the
// caller keeps, and gives again, followed by what it reads next, at the
// next call: base is then the first byte not covered. buf must be able to
// hold 2×MaxBytes+2 bytes: the open event (MaxBytes at most), its newline,
// and MaxBytes+1 bytes of the next line, to tell whether it is long.
//
// The open event is handed out too when it timed out at now (Timeout after
// its last line), and, with final set (the file will not grow: rotated or
// removed and read to its end), whatever buf holds, its last line with or
// without newline.
//
// Message bodies point into buf and keep every byte as read. Offset is the
// file offset just past the message: past the newline of an event's last
// line, or past the last byte of a piece.
func (j *Joiner) Cut(buf []byte, base int64, src *logagent.Source, now time.Time, msgs []logagent.Message, final bool) ([]logagent.Message, int) {
	limit := j.cfg.MaxBytes
	readNano := now.UnixNano()
	if j.open && j.start != base {
		j.Reset() // not the bytes it was left with: start over from base
	}
	used := 0 // end of the last message handed out
	emit := func(from, to, next int64) {
		msgs = append(msgs, logagent.Message{Body: buf[from-base : to-base], Offset: next, ReadNano: readNano, Source: src})
		used = int(next - base)
	}
	// pieces hands out the open event's body up to what fits in one
	// message, MaxBytes at a time.
	pieces := func() {
		for j.end-j.start > int64(limit) {
			emit(j.start, j.start+int64(limit), j.start+int64(limit))
			j.start += int64(limit)
		}
	}
	flush := func() {
		if !j.open {
			return
		}
		next := j.end + 1 // past the newline
		if j.midLine || j.end-base == int64(len(buf)) {
			next = j.end // a last line without newline, in a finished file
		}
		emit(j.start, j.end, next)
		j.open, j.midLine, j.lines = false, false, 0
		j.start = next
	}
	// line begins an event at pos, or adds the line there to the open one.
	line := func(pos int, body []byte) {
		if !j.joins(body) {
			flush()
			j.open, j.start, j.lines = true, base+int64(pos), 0
		}
		j.lines++
		j.lastAt = now
	}

	pos := 0 // the next byte not yet looked at
	if j.open {
		pos = int(j.end - base)
		if !j.midLine {
			pos++
		}
	}
	for pos < len(buf) {
		i := bytes.IndexByte(buf[pos:], '\n')
		if j.midLine {
			// The rest of a long line already in the event.
			if i < 0 {
				j.end = base + int64(len(buf))
				pos = len(buf)
				pieces()
				break
			}
			j.end, j.midLine = base+int64(pos+i), false
			j.lastAt = now // the line arrived whole now
			pos += i + 1
			pieces()
			continue
		}
		if i < 0 {
			rest := len(buf) - pos
			if rest > limit {
				// A line known to be longer than MaxBytes: matched on
				// its first MaxBytes bytes, and read on in pieces.
				line(pos, buf[pos:pos+limit])
				j.end, j.midLine = base+int64(len(buf)), true
				pos = len(buf)
				pieces()
			}
			break
		}
		line(pos, buf[pos:pos+i])
		j.end = base + int64(pos+i)
		pos += i + 1
		pieces()
	}
	if final {
		if !j.midLine && pos < len(buf) {
			line(pos, buf[pos:])
			j.end = base + int64(len(buf))
			pieces()
		}
		flush()
	} else if d, ok := j.Deadline(); ok && !now.Before(d) {
		flush()
	}
	if j.open {
		return msgs, int(j.start - base)
	}
	// Nothing open: what follows the last message is a line whose
	// newline is not read yet.
	return msgs, used
}
