package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logagent/logagent"
)

var testSource = &logagent.Source{
	Input:    "nginx",
	Category: "web",
	Path:     "/var/log/nginx/access.log",
	Host:     "web-1",
	Fields:   map[string]string{"env": "prod", "dc": "eu\"1"},
}

// decoded is an envelope as a consumer reads it.
type decoded struct {
	Timestamp     string            `json:"@timestamp"`
	Message       string            `json:"message"`
	MessageBase64 *string           `json:"message_base64"`
	Host          string            `json:"host"`
	Input         string            `json:"input"`
	Category      string            `json:"category"`
	Path          string            `json:"path"`
	Offset        int64             `json:"offset"`
	Fields        map[string]string `json:"fields"`
}

func decode(t testing.TB, line []byte) decoded {
	t.Helper()
	if !utf8.Valid(line) || bytes.IndexByte(line, '\n') >= 0 {
		t.Fatalf("not one valid UTF-8 line: %q", line)
	}
	var d decoded
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("not JSON: %v: %q", err, line)
	}
	return d
}

// body returns the exact body a consumer gets back from d.
func (d decoded) body(t testing.TB) []byte {
	if d.MessageBase64 == nil {
		return []byte(d.Message)
	}
	b, err := base64.StdEncoding.DecodeString(*d.MessageBase64)
	if err != nil {
		t.Fatalf("message_base64: %v", err)
	}
	return b
}

func TestAppend(t *testing.T) {
	readAt := time.Date(2026, 12, 6, 6, 45, 1, 5000, time.UTC).UnixNano()
	tests := []struct {
		name    string
		body    string
		want    string // the message field's JSON text
		base64  bool
		message string // what "message" decodes to
	}{
		{"empty", "", `""`, false, ""},
		{"ascii", "GET / 200", `"GET / 200"`, false, "GET / 200"},
		{"quote and backslash", `a "b" \c`, `"a \"b\" \\c"`, false, `a "b" \c`},
		{"controls", "a\tb\rc\x00\x1f\x7f", `"a\tb\rc\u0000\u001f` + "\x7f" + `"`, false, "a\tb\rc\x00\x1f\x7f"},
		{"lines joined", "one\ntwo", `"one\ntwo"`, false, "one\ntwo"},
		{"utf-8", "café ✓ 😀", `"café ✓ 😀"`, false, "café ✓ 😀"},
		{"html is not escaped", "<a&b>", `"<a&b>"`, false, "<a&b>"},
		{"latin-1 byte", "caf\xe9", `"caf` + "\uFFFD" + `"`, true, "caf\uFFFD"},
		{"truncated rune", "\xe2\x9c", `"` + "\uFFFD\uFFFD" + `"`, true, "\uFFFD\uFFFD"},
		{"surrogate", "\xed\xa0\x80x", `"` + "\uFFFD\uFFFD\uFFFDx" + `"`, true, "\uFFFD\uFFFD\uFFFDx"},
		{"long ascii run", strings.Repeat("abcdefgh", 5) + "\"", `"` + strings.Repeat("abcdefgh", 5) + `\""`, false, strings.Repeat("abcdefgh", 5) + "\""},
	}
	var e Encoder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := logagent.Message{Body: []byte(tc.body), Offset: 1234, ReadNano: readAt, Source: testSource}
			line := e.Append(nil, &m)
			want := `{"@timestamp":"2026-12-06T06:45:01.000005000Z","message":` + tc.want
			if tc.base64 {
				want += `,"message_base64":"` + base64.StdEncoding.EncodeToString([]byte(tc.body)) + `"`
			}
			want += `,"host":"web-1","input":"nginx","category":"web","path":"/var/log/nginx/access.log","offset":1234,"fields":{"dc":"eu\"1","env":"prod"}}`
			if string(line) != want {
				t.Fatalf("got\n%s\nwant\n%s", line, want)
			}
			d := decode(t, line)
			if d.Message != tc.message {
				t.Errorf("message %q, want %q", d.Message, tc.message)
			}
			if got := d.body(t); string(got) != tc.body {
				t.Errorf("body back %q, want %q", got, tc.body)
			}
			if ts, err := time.Parse(time.RFC3339Nano, d.Timestamp); err != nil || ts.UnixNano() != readAt {
				t.Errorf("@timestamp %s: %v", d.Timestamp, err)
			}
		})
	}
}

// TestSources checks that the cached metadata follows the message's Source.
func TestSources(t *testing.T) {
	other := &logagent.Source{Input: "app", Category: "app", Path: "/srv/app\x01.log", Host: "web-1"}
	var e Encoder
	var buf []byte
	for i, src := range []*logagent.Source{testSource, other, other, testSource, nil} {
		m := logagent.Message{Body: []byte("x"), Offset: int64(i), Source: src}
		buf = e.Append(buf[:0], &m)
		d := decode(t, buf)
		want := logagent.Source{}
		if src != nil {
			want = *src
		}
		if d.Path != want.Path || d.Input != want.Input || d.Category != want.Category || d.Host != want.Host || d.Offset != int64(i) || len(d.Fields) != len(want.Fields) {
			t.Fatalf("message %d: got %+v, want %+v", i, d, want)
		}
	}
}

func TestTimestamps(t *testing.T) {
	var e Encoder
	for _, ns := range []int64{0, 1, 999_999_999, 1_000_000_000, -1, time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()} {
		got := string(e.appendTime(nil, ns))
		want := time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
		if got != want {
			t.Errorf("%d: %s, want %s", ns, got, want)
		}
	}
}

func TestMaxLen(t *testing.T) {
	longPath := &logagent.Source{Input: "i", Category: "c", Host: "h", Path: strings.Repeat("\x01", MaxPathBytes)}
	var e Encoder
	// Worst bodies: all control bytes (6 bytes each), all invalid bytes
	// (message_base64 too), and their mix.
	for _, body := range [][]byte{
		bytes.Repeat([]byte{1}, 1000),
		bytes.Repeat([]byte{0xff}, 1000),
		append(bytes.Repeat([]byte{1}, 999), 0xff),
		bytes.Repeat([]byte{0xff}, 1001),
		nil,
	} {
		m := logagent.Message{Body: body, Offset: 1<<63 - 1, ReadNano: 1<<63 - 1, Source: longPath}
		if n, max := len(e.Append(nil, &m)), MaxLen(len(body), longPath); n > max {
			t.Errorf("body of %d bytes: envelope of %d bytes, MaxLen says %d", len(body), n, max)
		}
	}
	for _, limit := range []int{0, 100, 30000, 1000000} {
		b := MaxBody(limit, testSource)
		if b >= 0 && MaxLen(b, testSource) > limit || MaxLen(b+1, testSource) <= limit {
			t.Errorf("MaxBody(%d) = %d: MaxLen %d, %d", limit, b, MaxLen(b, testSource), MaxLen(b+1, testSource))
		}
	}
}

// FuzzAppend checks that every envelope is one line of valid JSON that
// encoding/json decodes to the body: "message" is the body when it is
// valid UTF-8 (and what encoding/json makes of it otherwise), and
// message_base64, present exactly when it is not, decodes to it.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "hello", "a\"b\\c\n\t\x00", "caf\xe9", "\xed\xa0\x80", "😀\xf0\x9f", "\u2028<>&"} {
		f.Add([]byte(s), "/var/log/x.log", "k", "v")
	}
	var e Encoder
	f.Fuzz(func(t *testing.T, body []byte, path, key, value string) {
		src := &logagent.Source{Input: "in", Category: "cat", Path: path, Host: "h", Fields: map[string]string{key: value}}
		m := logagent.Message{Body: body, Offset: 42, ReadNano: 7, Source: src}
		line := e.Append([]byte("prefix"), &m)[len("prefix"):]
		d := decode(t, line)
		if utf8.Valid(body) {
			if d.Message != string(body) || d.MessageBase64 != nil {
				t.Fatalf("valid UTF-8 %q: message %q, base64 %v", body, d.Message, d.MessageBase64 != nil)
			}
		} else {
			want, _ := json.Marshal(string(body))
			var s string
			json.Unmarshal(want, &s)
			if d.Message != s || d.MessageBase64 == nil {
				t.Fatalf("invalid UTF-8 %q: message %q, want %q, base64 %v", body, d.Message, s, d.MessageBase64 != nil)
			}
		}
		if got := d.body(t); !bytes.Equal(got, body) {
			t.Fatalf("body back %q, want %q", got, body)
		}
		if d.Offset != 42 || d.Input != "in" || len(d.Fields) != 1 {
			t.Fatalf("metadata %+v", d)
		}
		if n, max := len(line), MaxLen(len(body), src); len(path) <= MaxPathBytes && n > max {
			t.Fatalf("envelope of %d bytes over MaxLen %d", n, max)
		}
	})
}

func TestAllPlain(t *testing.T) {
	for b := 0; b < 256; b++ {
		for pos := 0; pos < 8; pos++ {
			w := []byte("abcdefgh")
			w[pos] = byte(b)
			got := allPlain(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
				uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56)
			if got != plain[b] {
				t.Fatalf("byte %#x at %d: allPlain %v, want %v", b, pos, got, plain[b])
			}
		}
	}
}
