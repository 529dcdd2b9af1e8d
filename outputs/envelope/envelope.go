// Package envelope encodes a message with its metadata as one JSON object
// (an output's format: json). One Encoder is used by the scheduler's runner
// of each output, so every output type writes the same envelope:
//
//	{"@timestamp":"2026-12-06T06:45:00.123456789Z","message":"GET / 200",
//	 "host":"web-1","input":"nginx","category":"nginx",
//	 "path":"/var/log/nginx/access.log","offset":10240,"fields":{"env":"prod"}}
//
// The object never holds a raw newline or an invalid UTF-8 sequence, so one
// object is one valid line of JSON. A body that is valid UTF-8 is "message"
// as it is (quote, backslash and control characters escaped as JSON
// requires). A body that is not valid UTF-8 keeps its text readable in
// "message", each byte that is not part of a valid UTF-8 sequence shown as
// U+FFFD (as encoding/json does), and has every byte exact, in standard
// base64 with padding, in "message_base64": a consumer that finds
// message_base64 decodes it to get the body back.
package envelope

import (
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/logagent/logagent"
)

// Format is how an output writes a message: its body as it is, or the
// envelope.
type Format string

const (
	Raw  Format = "raw"
	JSON Format = "json"
)

// Formats lists the valid values of an output's format key.
var Formats = []Format{Raw, JSON}

// Valid reports whether f is one of Formats.
func (f Format) Valid() bool { return slices.Contains(Formats, f) }

// Encoder appends envelopes. The metadata of the last Source seen is kept
// encoded, so that the messages of one file (a batch holds runs of them)
// cost only their timestamp, body and offset. Not safe for concurrent use.
type Encoder struct {
	src    *logagent.Source
	meta   []byte // `,"host":…,"input":…,"category":…,"path":…,"offset":`
	fields []byte // `,"fields":{…}}`
	keys   []string
	// sec is the Unix second stamp holds the text of, up to its dot:
	// "2006-01-02T15:04:05.".
	sec   int64
	stamp []byte
}

// Append appends m's envelope to dst and returns the extended slice. It
// allocates nothing once dst has room and the Source's metadata was
// encoded (the Source's fields sorted) before.
func (e *Encoder) Append(dst []byte, m *logagent.Message) []byte {
	if m.Source != e.src {
		e.encodeSource(m.Source)
	}
	dst = append(dst, `{"@timestamp":"`...)
	dst = e.appendTime(dst, m.ReadNano)
	dst = append(dst, `","message":"`...)
	var valid bool
	dst, valid = appendString(dst, m.Body)
	dst = append(dst, '"')
	if !valid {
		dst = append(dst, `,"message_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, m.Body)
		dst = append(dst, '"')
	}
	dst = append(dst, e.meta...)
	dst = strconv.AppendInt(dst, m.Offset, 10)
	return append(dst, e.fields...)
}

func (e *Encoder) encodeSource(s *logagent.Source) {
	e.src = s
	e.meta = e.meta[:0]
	e.fields = e.fields[:0]
	var host, input, category, path string
	var fields map[string]string
	if s != nil {
		host, input, category, path, fields = s.Host, s.Input, s.Category, s.Path, s.Fields
	}
	e.meta = appendKey(e.meta, "host", host)
	e.meta = appendKey(e.meta, "input", input)
	e.meta = appendKey(e.meta, "category", category)
	e.meta = appendKey(e.meta, "path", path)
	e.meta = append(e.meta, `,"offset":`...)
	e.keys = e.keys[:0]
	for k := range fields {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	e.fields = append(e.fields, `,"fields":{`...)
	for i, k := range e.keys {
		if i > 0 {
			e.fields = append(e.fields, ',')
		}
		e.fields = append(e.fields, '"')
		e.fields, _ = appendString(e.fields, []byte(k))
		e.fields = append(e.fields, `":"`...)
		e.fields, _ = appendString(e.fields, []byte(fields[k]))
		e.fields = append(e.fields, '"')
	}
	e.fields = append(e.fields, "}}"...)
}

// appendKey appends `,"key":"value"`.
func appendKey(dst []byte, key, value string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst, _ = appendString(dst, []byte(value))
	return append(dst, '"')
}

// appendTime appends the UTC time ns in RFC 3339 with nine digits of
// fraction (fixed width: the text sorts as the time does).
func (e *Encoder) appendTime(dst []byte, ns int64) []byte {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	if sec != e.sec || e.stamp == nil {
		e.sec = sec
		e.stamp = time.Unix(sec, 0).UTC().AppendFormat(e.stamp[:0], "2006-01-02T15:04:05.")
	}
	dst = append(dst, e.stamp...)
	// Nine digits, two at a time from the right.
	var digits [9]byte
	for i := 7; i > 0; i -= 2 {
		r := frac % 100
		frac /= 100
		digits[i], digits[i+1] = pairs[2*r], pairs[2*r+1]
	}
	digits[0] = byte('0' + frac)
	dst = append(dst, digits[:]...)
	return append(dst, 'Z')
}

// pairs holds "00" to "99".
const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

const hex = "0123456789abcdef"

// plain[b] is true for the bytes of valid UTF-8 copied into a JSON string
// as they are: all but quote, backslash and ASCII control characters.
var plain = func() (t [256]bool) {
	for b := 0x20; b < 256; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendString appends s escaped as the inside of a JSON string, each byte
// that is not part of a valid UTF-8 sequence as U+FFFD, and reports
// whether s was valid UTF-8.
func appendString(dst, s []byte) ([]byte, bool) {
	// utf8.Valid checks eight ASCII bytes at a time; a body found valid
	// is then copied in runs of plain bytes, without decoding runes.
	if utf8.Valid(s) {
		return appendValid(dst, s), true
	}
	return appendInvalid(dst, s), false
}

// appendValid appends s, valid UTF-8, escaped. Words of eight plain
// bytes, the common case, are passed over with one test each.
func appendValid(dst, s []byte) []byte {
	start, i := 0, 0
	for ; i+8 <= len(s); i += 8 {
		if allPlain(binary.LittleEndian.Uint64(s[i:])) {
			continue
		}
		for j := i; j < i+8; j++ {
			if b := s[j]; !plain[b] {
				dst = append(dst, s[start:j]...)
				dst = appendEscape(dst, b)
				start = j + 1
			}
		}
	}
	for ; i < len(s); i++ {
		if b := s[i]; !plain[b] {
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, b)
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
}

// allPlain reports whether the eight bytes of x, of valid UTF-8, are all
// plain: none is below 0x20, a quote or a backslash (bytes of 0x80 and
// above, their top bit set, are never flagged).
func allPlain(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// A byte is flagged in hasZero(v) if it is 0 in v; a borrow can
	// flag more bytes only after a flagged one, so a word with none is
	// exactly a word without such a byte.
	hasZero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	below := (x - 0x20*ones) &^ x & highs
	return below|hasZero(x^'"'*ones)|hasZero(x^'\\'*ones) == 0
}

// appendInvalid appends s, not valid UTF-8, escaped, each byte that is
// not part of a valid sequence as U+FFFD.
func appendInvalid(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if !plain[b] {
				dst = append(dst, s[start:i]...)
				dst = appendEscape(dst, b)
				start = i + 1
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			start = i + 1
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendEscape appends the escape of b, an ASCII byte that is not plain.
func appendEscape(dst []byte, b byte) []byte {
	switch b {
	case '"', '\\':
		return append(dst, '\\', b)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
}

// MaxPathBytes is the longest path MaxLen counts on (Linux's PATH_MAX less
// its terminating NUL).
const MaxPathBytes = 4095

// maxEscape is the most bytes one byte of a string takes escaped
// (\u00XX).
const maxEscape = 6

// MaxLen returns the most bytes the envelope of a body of up to body
// bytes from src can take: every byte of the body and of the path
// escaped at 6 bytes, the path taken as MaxPathBytes long (src.Path is
// ignored), and message_base64 added. The configuration checks with it
// that no envelope can exceed what an output accepts.
func MaxLen(body int, src *logagent.Source) int {
	var e Encoder
	s := *src
	s.Path = ""
	m := logagent.Message{Offset: 1<<63 - 1, Source: &s}
	n := len(e.Append(nil, &m))
	n += maxEscape * MaxPathBytes
	n += maxEscape * body
	n += len(`,"message_base64":""`) + base64.StdEncoding.EncodedLen(body)
	return n
}

// MaxBody returns the largest body whose envelope, by MaxLen, takes at most
// limit bytes, or a negative number if none does.
func MaxBody(limit int, src *logagent.Source) int {
	lo, hi := -1, limit
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if MaxLen(mid, src) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
