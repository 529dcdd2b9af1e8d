package checkpoint

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/logagent/logagent"
)

// The snapshot holds up to tens of thousands of entries and the journal
// gets records every second, so both are encoded by hand into a reused
// buffer rather than with encoding/json (reflection, an allocation per
// entry). The bytes are the ones encoding/json writes (SetEscapeHTML(false))
// for a fileFormat and for a journal line; the tests hold the two to being
// equal. Both are read with encoding/json.

// compareEntries orders entries by input and path, the order of the file
// (readable and diffable), then by identity, so that the order is total and
// the same entries always give the same bytes.
func compareEntries(a, b Entry) int {
	if c := cmp.Compare(a.Input, b.Input); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID.Dev, b.ID.Dev); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID.Ino, b.ID.Ino); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID.Fingerprint, b.ID.Fingerprint); c != 0 {
		return c
	}
	return cmp.Compare(a.ID.FingerprintLen, b.ID.FingerprintLen)
}

// appendFileHead appends what a snapshot holds before its files.
func appendFileHead(b []byte, gen uint64, written time.Time) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, formatVersion, 10)
	b = append(b, `,"written":"`...)
	b = written.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","journal":`...)
	b = strconv.AppendUint(b, gen, 10)
	return append(b, `,"files":[`...)
}

// appendFileEntry appends sorted[i] as a snapshot's files[i].
func appendFileEntry(b []byte, sorted []Entry, i int) ([]byte, error) {
	if i > 0 {
		b = append(b, ',')
	}
	b = append(b, '\n')
	b, err := appendEntry(b, &sorted[i])
	if err != nil {
		return b, fmt.Errorf("encode checkpoint files[%d] (input %q, path %q): %w", i, sorted[i].Input, sorted[i].Path, err)
	}
	return b, nil
}

// appendFileTail appends what a snapshot holds after its files.
func appendFileTail(b []byte) []byte { return append(b, "\n]}\n"...) }

// chunkSize is how many encoded bytes a chunker gathers before it writes
// them: a flush of any number of records encodes them into a buffer of
// about this size (more only for a record larger than what is left of it).
const chunkSize = 64 << 10

// chunkCap is the capacity a chunker's buffer is made with: a chunk and
// room for the record that crosses it.
const chunkCap = chunkSize + 8<<10

// chunker writes what is appended to buf to w a chunk at a time: each
// time buf holds chunkSize bytes or more (fill), and at the end (done).
// What a flush writes so never needs a buffer of its size.
type chunker struct {
	w    io.Writer
	buf  []byte
	size int // the chunk size: chunkSize if 0 (tests make it small)
}

// newChunker returns a chunker writing to w through buf, or through a new
// buffer if buf has not a chunk's room.
func newChunker(w io.Writer, buf []byte) chunker {
	if cap(buf) < chunkCap {
		buf = make([]byte, 0, chunkCap)
	}
	return chunker{w: w, buf: buf[:0]}
}

// fill writes buf out if it holds a chunk.
func (c *chunker) fill() error {
	if len(c.buf) < cmp.Or(c.size, chunkSize) {
		return nil
	}
	return c.done()
}

// done writes out what buf holds.
func (c *chunker) done() error {
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// snapshot writes the snapshot appendFileHead, appendFileEntry and
// appendFileTail encode. An error is an encoding one or w's (a
// countingWriter tells them apart).
func (c *chunker) snapshot(sorted []Entry, gen uint64, written time.Time) error {
	c.buf = appendFileHead(c.buf, gen, written)
	for i := range sorted {
		var err error
		if c.buf, err = appendFileEntry(c.buf, sorted, i); err != nil {
			return err
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	c.buf = appendFileTail(c.buf)
	return c.done()
}

// journalFlush writes the journal lines of a flush: a set of each of sets,
// a delete of each of dels, then their commit. An error is an encoding one
// (as appendSet returns it) or w's (a countingWriter tells them apart).
func (c *chunker) journalFlush(sets []Entry, dels []Key) error {
	for i := range sets {
		var err error
		if c.buf, err = appendSet(c.buf, &sets[i]); err != nil {
			return err
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	for _, k := range dels {
		c.buf = appendDelete(c.buf, k)
		if err := c.fill(); err != nil {
			return err
		}
	}
	c.buf = appendCommit(c.buf, len(sets)+len(dels))
	return c.done()
}

// appendSet appends the journal line that sets e.
func appendSet(b []byte, e *Entry) ([]byte, error) {
	b = append(b, `{"set":`...)
	b, err := appendEntry(b, e)
	if err != nil {
		return b, fmt.Errorf("encode checkpoint journal record (input %q, path %q): %w", e.Input, e.Path, err)
	}
	return append(b, "}\n"...), nil
}

// appendDelete appends the journal line that deletes k.
func appendDelete(b []byte, k Key) []byte {
	b = append(b, `{"del":{"input":`...)
	b = appendString(b, k.Input)
	b = append(b, `,"id":`...)
	b = appendID(b, k.ID)
	return append(b, "}}\n"...)
}

// appendCommit appends the journal line that ends a flush of n records.
func appendCommit(b []byte, n int) []byte {
	b = append(b, `{"commit":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "}\n"...)
}

// appendEntry appends e as encoding/json encodes it.
func appendEntry(b []byte, e *Entry) ([]byte, error) {
	b = append(b, `{"input":`...)
	b = appendString(b, e.Input)
	b = append(b, `,"id":`...)
	b = appendID(b, e.ID)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, `,"updated":"`...)
	// Time.MarshalJSON: RFC 3339 with sub-second precision, an error for
	// a time RFC 3339 cannot represent (year outside [0,9999]).
	b, err := e.Updated.AppendText(b)
	if err != nil {
		return b, err
	}
	b = append(b, '"')
	if e.Cursor != "" {
		b = append(b, `,"cursor":`...)
		b = appendString(b, e.Cursor)
	}
	b = append(b, '}')
	return b, nil
}

// appendID appends id as encoding/json encodes it.
func appendID(b []byte, id logagent.FileID) []byte {
	b = append(b, `{"dev":`...)
	b = strconv.AppendUint(b, id.Dev, 10)
	b = append(b, `,"ino":`...)
	b = strconv.AppendUint(b, id.Ino, 10)
	b = append(b, `,"fp":`...)
	b = strconv.AppendUint(b, id.Fingerprint, 10)
	b = append(b, `,"fp_len":`...)
	b = strconv.AppendInt(b, int64(id.FingerprintLen), 10)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: '"', '\\' and control characters are escaped,
// each byte of invalid UTF-8 becomes \ufffd (a JSON string is Unicode: the
// exact bytes cannot be kept), and U+2028 and U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
