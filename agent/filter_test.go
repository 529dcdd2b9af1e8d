package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/testenv"
)

func TestLineFilterKeep(t *testing.T) {
	in := &InputConfig{}
	var errs []string
	bad := func(f, format string, args ...any) { errs = append(errs, f+": "+fmt.Sprintf(format, args...)) }
	tests := []struct {
		include, exclude []string
		kept, dropped    []string
	}{
		{nil, []string{"^DEBUG"}, []string{"INFO x", "x DEBUG"}, []string{"DEBUG x"}},
		{[]string{"ERROR", "WARN"}, nil, []string{"an ERROR", "WARN"}, []string{"INFO", "error"}},
		{[]string{"(?i)error", "WARN"}, []string{"retry"}, []string{"Error: x", "WARN"}, []string{"error: retry", "INFO"}},
		{nil, []string{`(?m)^DEBUG`}, []string{"INFO\nINFO"}, []string{"INFO\nDEBUG x"}},
		{[]string{"a", "b"}, []string{"c", "d"}, []string{"a", "b", "ab"}, []string{"ac", "bd", "x", ""}},
	}
	for i, tc := range tests {
		in.include = compileAll(tc.include, "include_lines", bad)
		in.exclude = compileAll(tc.exclude, "exclude_lines", bad)
		f := newLineFilter(in)
		for _, s := range tc.kept {
			if !f.keep([]byte(s)) {
				t.Errorf("case %d: %q dropped, want kept", i, s)
			}
		}
		for _, s := range tc.dropped {
			if f.keep([]byte(s)) {
				t.Errorf("case %d: %q kept, want dropped", i, s)
			}
		}
		c := &logagent.Chunk{}
		for _, s := range append(append([]string{}, tc.kept...), tc.dropped...) {
			c.Messages = append(c.Messages, logagent.Message{Body: []byte(s)})
		}
		before := f.dropped.Load()
		f.apply(c)
		if len(c.Messages) != len(tc.kept) || f.dropped.Load()-before != int64(len(tc.dropped)) {
			t.Errorf("case %d: apply left %d messages, counted %d dropped", i, len(c.Messages), f.dropped.Load()-before)
		}
		for j, m := range c.Messages {
			if string(m.Body) != tc.kept[j] {
				t.Errorf("case %d: message %d is %q, want %q (in order)", i, j, m.Body, tc.kept[j])
			}
		}
	}
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if newLineFilter(&InputConfig{}) != nil {
		t.Error("a filter without patterns")
	}
}

// The agent drops filtered lines, counts them in /metrics and /status,
// and commits past them.
func TestLineFilterAgent(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		level := "INFO"
		if i%4 == 0 {
			level = "DEBUG"
		}
		fmt.Fprintf(&b, "%s line %d\n", level, i)
	}
	logPath := filepath.Join(dir, "logs", "app.log")
	if err := os.WriteFile(logPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	a, stop := runAgent(t, dir, fmt.Sprintf(`data_dir: %s/state
inputs:
  - id: app
    paths: ["%s/logs/*.log"]
    exclude_lines: ['^DEBUG ']
outputs:
  - {id: out, type: file, path: "%s/out/{category}.log", batch: {flush_interval: 10ms}}
`, dir, dir, dir))
	defer stop()

	deadline := time.Now().Add(hang)
	var st *Status
	for {
		st = a.Status()
		if len(st.Inputs) == 1 && len(st.Inputs[0].Files) == 1 && st.Inputs[0].Files[0].Offset == int64(b.Len()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the committed offset did not reach the end of the file: %+v", st.Inputs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Inputs[0].DroppedLines != 250 {
		t.Errorf("status dropped_lines %d, want 250", st.Inputs[0].DroppedLines)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out", "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("\n")); n != 750 || bytes.Contains(out, []byte("DEBUG")) {
		t.Errorf("output has %d lines (want 750), DEBUG ones: %v", n, bytes.Contains(out, []byte("DEBUG")))
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `logagent_input_dropped_lines_total{input="app"} 250`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// A reload with the same filters keeps the input (patterns compiled anew
// are the same); a changed format replaces the output, whose lines then
// come out as envelopes.
func TestReloadFiltersAndFormat(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	text := fmt.Sprintf(`data_dir: %[1]s/state
shutdown_timeout: 5s
inputs:
  - {id: a, paths: ["%[1]s/logs/a.log"], exclude_lines: ['^DEBUG'], include_lines: ['.']}
outputs:
  - {id: o, type: file, path: "%[1]s/out/{category}.log", format: raw}
`, dir)
	a, _ := runAgent(t, dir, text)
	_, inputs0, runners0 := a.running()
	reload := func(text string) {
		t.Helper()
		path := filepath.Join(dir, "logagent.yaml")
		os.WriteFile(path, []byte(text), 0o644)
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		// Run may not have started yet: Reload then says so, and is
		// tried again.
		testenv.WaitUntil(hang, func() bool {
			err = a.Reload(context.Background(), cfg)
			return err == nil || !strings.Contains(err.Error(), "not running")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	reload(text)
	_, inputs1, runners1 := a.running()
	if inputs1[0] != inputs0[0] || runners1[0] != runners0[0] {
		t.Fatal("input a or output o, unchanged, was replaced")
	}
	reload(strings.Replace(text, "format: raw", "format: json", 1))
	_, _, runners2 := a.running()
	if runners2[0] == runners0[0] {
		t.Fatal("output o, its format changed, was kept")
	}
	appendFile(t, filepath.Join(dir, "logs", "a.log"), "DEBUG x\nkept\n")
	out := filepath.Join(dir, "out", "a.log")
	if !testenv.WaitUntil(hang, func() bool { return countLines(out) == 1 }) {
		t.Fatalf("output has %d lines, want 1", countLines(out))
	}
	data, _ := os.ReadFile(out)
	if !bytes.HasPrefix(data, []byte(`{"@timestamp":"`)) || !bytes.Contains(data, []byte(`"message":"kept"`)) {
		t.Errorf("output %q, want the envelope of kept", data)
	}
}

// BenchmarkLineFilter measures the filters' cost per message on 181-byte
// access log lines: one exclude pattern anchored at the start, and two
// include patterns searched through the whole line (the slow case).
func BenchmarkLineFilter(b *testing.B) {
	line := []byte(`203.0.113.9 - - [06/Dec/2026:06:45:01 +0000] "GET /api/v1/items?page=2&sort=name HTTP/1.1" 200 5123 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)" rt=0.012 id=7f3a90c2`)
	for _, tc := range []struct {
		name             string
		include, exclude []string
	}{
		{"exclude=^DEBUG", nil, []string{`^DEBUG`}},
		{"include=2-words", []string{`ERROR`, `" 5\d\d `}, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := &InputConfig{}
			bad := func(string, string, ...any) { b.Fatal("bad pattern") }
			in.include = compileAll(tc.include, "include_lines", bad)
			in.exclude = compileAll(tc.exclude, "exclude_lines", bad)
			f := newLineFilter(in)
			c := &logagent.Chunk{Messages: make([]logagent.Message, 1000)}
			b.SetBytes(int64(len(line) * len(c.Messages)))
			b.ReportAllocs()
			for b.Loop() {
				c.Messages = c.Messages[:cap(c.Messages)]
				for i := range c.Messages {
					c.Messages[i].Body = line
				}
				f.apply(c)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/msg")
		})
	}
}
