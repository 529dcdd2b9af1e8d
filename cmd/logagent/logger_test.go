package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type record map[string]any

func records(t *testing.T, buf *bytes.Buffer) []record {
	t.Helper()
	var out []record
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, r)
	}
	buf.Reset()
	return out
}

func count(rs []record, key, value string) int {
	n := 0
	for _, r := range rs {
		if r[key] == value {
			n++
		}
	}
	return n
}

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	lim := newLimiter(5, time.Minute)
	lim.now = func() time.Time { return now }
	log := slog.New(lim.wrap(slog.NewJSONHandler(&buf, nil)))
	outA := log.With("output", "a")
	outB := log.With("output", "b")
	sendErr := errors.New("connection refused")

	for range 100 {
		outA.Warn("send failed; retrying with backoff", "err", sendErr)
	}
	for range 3 {
		outB.Warn("send failed; retrying with backoff", "err", sendErr)
	}
	for i := range 10 {
		log.Warn("cannot read file", "path", "/var/log/"+string(rune('a'+i)))
		log.Info("informational", "n", i)
	}
	rs := records(t, &buf)
	if n := count(rs, "output", "a"); n != 5 {
		t.Errorf("output a: %d records passed, want 5", n)
	}
	if n := count(rs, "output", "b"); n != 3 {
		t.Errorf("output b: %d records passed, want 3 (a's flood must not silence b)", n)
	}
	if n := count(rs, "msg", "cannot read file"); n != 10 {
		t.Errorf("distinct paths: %d records passed, want 10", n)
	}
	if n := count(rs, "msg", "informational"); n != 10 {
		t.Errorf("info records: %d passed, want all 10", n)
	}

	// Within the window: still suppressed.
	now = now.Add(30 * time.Second)
	outA.Warn("send failed; retrying with backoff", "err", sendErr)
	if rs := records(t, &buf); len(rs) != 0 {
		t.Errorf("within the minute: %v", rs)
	}

	// The next record after the window writes the summary, whatever it is.
	now = now.Add(31 * time.Second)
	log.Info("something else")
	rs = records(t, &buf)
	if len(rs) != 2 {
		t.Fatalf("after the window, want a summary and the record: %v", rs)
	}
	s := rs[0]
	if s["msg"] != "identical log records suppressed" || s["level"] != "WARN" || s["output"] != "a" ||
		s["message"] != "send failed; retrying with backoff" || s["suppressed"] != float64(96) {
		t.Errorf("summary: %v", s)
	}

	// A new window lets records through again.
	outA.Warn("send failed; retrying with backoff", "err", sendErr)
	if rs := records(t, &buf); count(rs, "output", "a") != 1 {
		t.Errorf("new window: %v", rs)
	}

	// flush summarises windows not over yet, as at exit.
	for range 10 {
		outA.Warn("send failed; retrying with backoff", "err", sendErr)
	}
	records(t, &buf)
	lim.flush()
	rs = records(t, &buf)
	if len(rs) != 1 || rs[0]["suppressed"] != float64(6) {
		t.Errorf("flush: %v", rs)
	}
}

func TestLoggerFormat(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	t.Setenv("INVOCATION_ID", "")
	if f := logFormat("auto"); f != "text" {
		t.Errorf("auto outside systemd: %s", f)
	}
	t.Setenv("INVOCATION_ID", "abc")
	if f := logFormat("auto"); f != "json" {
		t.Errorf("auto under systemd: %s", f)
	}
	if f := logFormat("text"); f != "text" {
		t.Errorf("text: %s", f)
	}
}
