package checkpoint

import (
	"cmp"
	"fmt"
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

// appendFile appends to b the whole snapshot of sorted, continued by the
// journal of generation gen, written at written: compact, one file per
// line, ending with a newline.
func appendFile(b []byte, sorted []Entry, gen uint64, written time.Time) ([]byte, error) {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, formatVersion, 10)
	b = append(b, `,"written":"`...)
	b = written.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","journal":`...)
	b = strconv.AppendUint(b, gen, 10)
	b = append(b, `,"files":[`...)
	for i := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		var err error
		if b, err = appendEntry(b, &sorted[i]); err != nil {
			return b, fmt.Errorf("encode checkpoint files[%d] (input %q, path %q): %w", i, sorted[i].Input, sorted[i].Path, err)
		}
	}
	return append(b, "\n]}\n"...), nil
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
