package file

import (
	"bytes"
	"time"

	"github.com/logagent/logagent"
)

// Chunker cuts file bytes into messages of whole lines. It never copies:
// every message body points into the buffer given to Cut.
type Chunker struct {
	// MaxMessageBytes bounds every body. A line longer than that is cut
	// into consecutive pieces of MaxMessageBytes, in order.
	MaxMessageBytes int
	// LinesPerMessage packs up to that many consecutive whole lines into
	// one message (joined by '\n'), within MaxMessageBytes.
	LinesPerMessage int
}

// Cut appends to msgs the messages found in buf, whose first byte is at
// file offset base, and returns them with the number of bytes of buf they
// cover. The bytes after that are the start of a line whose newline has not
// been read yet: the caller keeps them and calls Cut again once more bytes
// follow. A line is cut into pieces only once it is known to be longer than
// MaxMessageBytes, so buf must be able to hold MaxMessageBytes+1 bytes.
//
// With final set (the file will not grow: it was rotated or removed and
// read to its end), a last line without a newline is cut too.
//
// Bodies keep every byte as read: CR of CRLF, invalid UTF-8, NUL bytes.
func (c *Chunker) Cut(buf []byte, base int64, src *logagent.Source, now time.Time, msgs []logagent.Message, final bool) ([]logagent.Message, int) {
	limit := c.MaxMessageBytes
	pack := c.LinesPerMessage
	pos := 0     // start of the next line not yet in a message
	start := -1  // start of the pending packed message, -1 when none
	lines := 0   // lines in the pending packed message
	endBody := 0 // end of the pending body (its last newline excluded)
	readNano := now.UnixNano()
	emit := func(body []byte, end int) {
		msgs = append(msgs, logagent.Message{Body: body, Offset: base + int64(end), ReadNano: readNano, Source: src})
	}
	flush := func() {
		if start >= 0 {
			emit(buf[start:endBody], endBody+1)
			start, lines = -1, 0
		}
	}
	for pos < len(buf) {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			rest := len(buf) - pos
			if rest > limit {
				// A line known to be longer than the limit: ship a piece now.
				flush()
				emit(buf[pos:pos+limit], pos+limit)
				pos += limit
				continue
			}
			if final && rest > 0 {
				flush()
				emit(buf[pos:], len(buf))
				pos = len(buf)
			}
			break
		}
		if i > limit {
			flush()
			emit(buf[pos:pos+limit], pos+limit)
			pos += limit
			continue
		}
		if pack <= 1 {
			emit(buf[pos:pos+i], pos+i+1)
			pos += i + 1
			continue
		}
		if start >= 0 && pos+i-start > limit {
			flush()
		}
		if start < 0 {
			start = pos
		}
		endBody = pos + i
		lines++
		pos += i + 1
		if lines >= pack {
			flush()
		}
	}
	flush()
	return msgs, pos
}
