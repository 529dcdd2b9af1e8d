package journald

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// maxFieldBytes bounds one field of the export format, so that a corrupt
// stream cannot make the reader allocate without limit. The journal's own
// limit on an entry is far below it.
const maxFieldBytes = 64 << 20

// entry is the part of one journal entry the input uses. Its byte slices
// point into the reader's buffers: valid until the next call of next.
type entry struct {
	cursor   []byte
	message  []byte
	hasMsg   bool
	unit     []byte
	priority []byte
	pid      []byte
	bootID   []byte
	hostname []byte
	// realtime is __REALTIME_TIMESTAMP: when the entry was written, in
	// microseconds since the Unix epoch, as decimal digits.
	realtime []byte
}

func (e *entry) reset() { *e = entry{} }

// exportReader parses journalctl's export format
// (https://systemd.io/JOURNAL_EXPORT_FORMATS/): an entry is a run of
// fields ended by an empty line; a field is "KEY=value\n", or, for a
// value that is binary or holds a newline, "KEY\n", its size as a
// little-endian uint64, the bytes, and "\n".
type exportReader struct {
	br *bufio.Reader
	// owner goroutine only: the fields of the entry being read, kept in
	// one buffer reused from entry to entry.
	buf  []byte
	offs [][3]int // per kept field: which, start, end in buf
}

func newExportReader(r io.Reader) *exportReader {
	return &exportReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Buffered reports whether bytes already read from the stream wait in the
// reader: when none do, the next entry may take a while to come.
func (x *exportReader) Buffered() bool { return x.br.Buffered() > 0 }

const (
	fCursor = iota
	fMessage
	fUnit
	fPriority
	fPID
	fBootID
	fHostname
	fRealtime
)

func fieldOf(key []byte) int {
	switch string(key) {
	case "__CURSOR":
		return fCursor
	case "MESSAGE":
		return fMessage
	case "_SYSTEMD_UNIT":
		return fUnit
	case "PRIORITY":
		return fPriority
	case "_PID":
		return fPID
	case "_BOOT_ID":
		return fBootID
	case "_HOSTNAME":
		return fHostname
	case "__REALTIME_TIMESTAMP":
		return fRealtime
	}
	return -1
}

// next reads one entry into e. It returns io.EOF at the end of the stream
// between entries, io.ErrUnexpectedEOF in the middle of one, and an error
// for a stream that is not in the export format.
func (x *exportReader) next(e *entry) error {
	e.reset()
	x.buf = x.buf[:0]
	x.offs = x.offs[:0]
	fields := 0
	for {
		line, err := x.line()
		if err != nil {
			if err == io.EOF && fields > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			if fields == 0 {
				continue // tolerate blank lines between entries
			}
			break
		}
		fields++
		var key, val []byte
		if i := bytes.IndexByte(line, '='); i >= 0 {
			key, val = line[:i], line[i+1:]
			if f := fieldOf(key); f >= 0 {
				start := len(x.buf)
				x.buf = append(x.buf, val...)
				x.kept(f, start)
			}
			continue
		}
		// A binary field: line is the key; the value's size and bytes follow.
		f := fieldOf(line)
		var size [8]byte
		if _, err := io.ReadFull(x.br, size[:]); err != nil {
			return unexpected(err)
		}
		n := binary.LittleEndian.Uint64(size[:])
		if n > maxFieldBytes {
			return fmt.Errorf("journal export: field %q of %d bytes (at most %d)", line, n, maxFieldBytes)
		}
		if f >= 0 {
			start := len(x.buf)
			x.buf = append(x.buf, make([]byte, n)...)
			if _, err := io.ReadFull(x.br, x.buf[start:]); err != nil {
				return unexpected(err)
			}
			x.kept(f, start)
		} else if _, err := x.br.Discard(int(n)); err != nil {
			return unexpected(err)
		}
		if b, err := x.br.ReadByte(); err != nil {
			return unexpected(err)
		} else if b != '\n' {
			return errors.New("journal export: binary field not followed by a newline")
		}
	}
	dst := [...]*[]byte{fCursor: &e.cursor, fMessage: &e.message, fUnit: &e.unit,
		fPriority: &e.priority, fPID: &e.pid, fBootID: &e.bootID,
		fHostname: &e.hostname, fRealtime: &e.realtime}
	for _, o := range x.offs {
		*dst[o[0]] = x.buf[o[1]:o[2]:o[2]]
		e.hasMsg = e.hasMsg || o[0] == fMessage
	}
	if len(e.cursor) == 0 {
		return errors.New("journal export: an entry without __CURSOR")
	}
	return nil
}

// kept records that field f's value is x.buf[start:], just appended.
func (x *exportReader) kept(f, start int) {
	x.offs = append(x.offs, [3]int{f, start, len(x.buf)})
}

// line returns the next line without its newline; it is valid until the
// next read. A line longer than the reader's buffer is gathered into a
// scratch slice.
func (x *exportReader) line() ([]byte, error) {
	l, err := x.br.ReadSlice('\n')
	if err == nil {
		return l[:len(l)-1], nil
	}
	if err != bufio.ErrBufferFull {
		if err == io.EOF && len(l) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	long := append([]byte(nil), l...)
	for err == bufio.ErrBufferFull {
		if len(long) > maxFieldBytes {
			return nil, fmt.Errorf("journal export: a line longer than %d bytes", maxFieldBytes)
		}
		l, err = x.br.ReadSlice('\n')
		long = append(long, l...)
	}
	if err != nil {
		return nil, unexpected(err)
	}
	return long[:len(long)-1], nil
}

// writtenNano returns when the entry was written (__REALTIME_TIMESTAMP), in
// nanoseconds since the Unix epoch, or 0 when the entry has no valid one.
func (e *entry) writtenNano() int64 {
	if len(e.realtime) == 0 {
		return 0
	}
	var us int64
	for _, c := range e.realtime {
		d := int64(c - '0')
		if c < '0' || c > '9' || us > (math.MaxInt64/1000-d)/10 {
			return 0
		}
		us = us*10 + d
	}
	return us * 1000
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// priorityNames are syslog's levels, as journalctl's -p takes them.
var priorityNames = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// validPriority reports whether p is a level (a name or 0-7) or a range
// of two ("err..info"), as journalctl's --priority takes it.
func validPriority(p string) bool {
	one := func(s string) bool {
		if n, err := strconv.Atoi(s); err == nil {
			return n >= 0 && n <= 7
		}
		for _, n := range priorityNames {
			if s == n {
				return true
			}
		}
		return false
	}
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '.' && p[i+1] == '.' {
			return one(p[:i]) && one(p[i+2:])
		}
	}
	return one(p)
}
