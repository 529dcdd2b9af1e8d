package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

// trace returns event seq of the Java log the multiline tests write, with
// its final newline: a first line with a date, then (for most) a stack
// trace of a number of lines that depends on seq, with tabs, quotes and
// non-ASCII bytes a JSON encoder must keep. Every event whose seq%10 is 3
// has a "Caused by" line naming a secret.
func trace(seq int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "2026-12-06 10:%02d:%02d.%03d ERROR [main] request %06d failed: \"quoted\" café\n", seq/60%60, seq%60, seq%1000, seq)
	if seq%4 == 0 {
		return b.String() // a one-line event
	}
	fmt.Fprintf(&b, "java.lang.IllegalStateException: boom %06d\n", seq)
	for k := 0; k < seq%7+1; k++ {
		fmt.Fprintf(&b, "\tat com.example.Service%d.handle(Service.java:%d)\n", k, 40+k)
	}
	if seq%10 == 3 {
		b.WriteString("Caused by: java.io.IOException: secret store unreachable\n")
	} else {
		b.WriteString("Caused by: java.io.IOException: disk full\n")
	}
	b.WriteString("\tat java.io.FileOutputStream.write(Native Method)\n\t... 12 more\n")
	return b.String()
}

var traceSeq = regexp.MustCompile(`^2026-12-06 \S+ ERROR \[main\] request (\d{6}) failed`)

// traceLog is a log file the test appends traces to.
type traceLog struct {
	t    *testing.T
	path string
	f    *os.File
	next int // the next event's seq
}

func newTraceLog(t *testing.T, path string) *traceLog {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &traceLog{t: t, path: path, f: f}
}

func (l *traceLog) write(s string) {
	l.t.Helper()
	if _, err := l.f.WriteString(s); err != nil {
		l.t.Fatal(err)
	}
}

// events writes n whole events, in writes of a few events each, cut at
// arbitrary points (as an application's buffered writer does).
func (l *traceLog) events(n int) {
	l.t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(trace(l.next))
		l.next++
		if b.Len() > 3000 || i == n-1 {
			s := b.String()
			cut := len(s) * (l.next % 5) / 5
			l.write(s[:cut])
			l.write(s[cut:])
			b.Reset()
		}
	}
}

// envelopes reads the file output's JSON objects: message by seq, in the
// order they arrived, and the messages of no event.
func envelopes(t *testing.T, path string) (bySeq map[int][]string, order []int, others []string) {
	t.Helper()
	bySeq = map[int][]string{}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var env struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			if !strings.HasSuffix(string(data), "\n") {
				break // a line being written
			}
			t.Fatalf("not JSON: %v: %q", err, sc.Bytes())
		}
		m := traceSeq.FindStringSubmatch(env.Message)
		if m == nil {
			others = append(others, env.Message)
			continue
		}
		seq, _ := strconv.Atoi(m[1])
		bySeq[seq] = append(bySeq[seq], env.Message)
		order = append(order, seq)
	}
	return bySeq, order, others
}

// waitEvents waits until every event below n but those dropped has arrived.
func waitEvents(t *testing.T, path string, n int, dropped func(int) bool) {
	t.Helper()
	ok := testenv.WaitUntil(2*time.Minute, func() bool {
		got, _, _ := envelopes(t, path)
		for i := 0; i < n; i++ {
			if !dropped(i) && len(got[i]) == 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		got, _, others := envelopes(t, path)
		var missing []int
		for i := 0; i < n; i++ {
			if !dropped(i) && len(got[i]) == 0 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("events not delivered: %v (%d others, e.g. %q)", missing[:min(len(missing), 10)], len(others), others[:min(len(others), 3)])
	}
}

// Issue 18: Java stack traces through multiline to the file output with
// format: json: each trace is one object whose message is the trace byte
// for byte (without its last newline). An event being written when the
// agent is killed (-9), or stopped (SIGTERM), arrives whole after the
// restart, read again from its first line; the file's last event is sent
// when the file, rotated, is finished; exclude_lines drops whole events (it
// applies after multiline).
func TestMultilineJavaTraces(t *testing.T) {
	e := testenv.New(t)
	e.Config.Format = "json"
	in := &e.Config.Inputs[0]
	// No event ends by its timeout in this test: a kill in the middle
	// of an event is one while it is open.
	in.Multiline = &testenv.Multiline{Start: `^\d{4}-\d{2}-\d{2}[ T]`, Timeout: time.Hour}
	in.ExcludeLines = []string{`(?m)^Caused by: .*secret`}
	secret := func(seq int) bool { return seq%10 == 3 }
	out := filepath.Join(e.Out, "logs.log")
	l := newTraceLog(t, filepath.Join(e.Logs, "app.log"))

	// interrupt writes the start of a stack trace (its first two lines),
	// waits until the agent has read it (the event before it, which it
	// ends, is delivered), stops the agent with stop, and writes the rest
	// of the trace: the event is open when the agent stops. It returns
	// the event's seq.
	interrupt := func(how string, stop func()) int {
		for l.next%4 == 0 {
			l.events(1) // the next is a stack trace, not one line
		}
		seq := l.next
		tr := trace(seq)
		cut := strings.Index(tr, "\tat com.example.Service0")
		l.write(tr[:cut])
		l.next++
		waitEvents(t, out, seq, secret)
		stop()
		if got, _, _ := envelopes(t, out); len(got[seq]) != 0 {
			t.Fatalf("event %d, not written whole, was delivered before the %s: %q", seq, how, got[seq])
		}
		l.write(tr[cut:])
		return seq
	}

	l.events(500) // before the start: a backfill
	e.Start()
	l.events(500)
	killed := interrupt("kill -9", e.Kill)
	l.events(500)
	e.Start()
	l.events(500)
	stopped := interrupt("SIGTERM", e.Stop)
	l.events(200)
	e.Start()
	l.events(300)
	// Rotated: read to its end and finished once idle (close_inactive),
	// which sends its last event, open until then.
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, out, l.next, secret)
	e.Stop()

	got, order, others := envelopes(t, out)
	if len(others) > 0 {
		t.Errorf("%d messages are no whole event, e.g. %q", len(others), others[:min(3, len(others))])
	}
	dupes := 0
	for seq := 0; seq < l.next; seq++ {
		msgs := got[seq]
		if secret(seq) {
			if len(msgs) > 0 {
				t.Errorf("event %d matches exclude_lines but was shipped: %q", seq, msgs[0])
			}
			continue
		}
		if len(msgs) == 0 {
			t.Errorf("event %d missing", seq)
			continue
		}
		want := strings.TrimSuffix(trace(seq), "\n")
		for _, m := range msgs {
			if m != want {
				t.Errorf("event %d:\n got %q\nwant %q", seq, m, want)
			}
		}
		dupes += len(msgs) - 1
	}
	for _, seq := range []int{killed, stopped} {
		if len(got[seq]) == 0 {
			t.Errorf("the event open at a stop (%d) is missing", seq)
		}
	}
	// Order: no event comes after one more than 1000 events later; a
	// step back is an event sent again after the kill (what was in
	// flight: a few batches at most).
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] && order[i-1]-order[i] > 1000 {
			t.Errorf("event %d after %d", order[i], order[i-1])
		}
	}
	t.Logf("%d events, %d sent twice (the kill)", l.next, dupes)
}

// Issue 18: an event still open is sent timeout after its last line was
// read, with no line after it.
func TestMultilineTimeout(t *testing.T) {
	e := testenv.New(t)
	e.Config.Format = "json"
	// The exception's name, the second line, continues the event too.
	e.Config.Inputs[0].Multiline = &testenv.Multiline{Continue: `^(\s|Caused by:|java\.)`, Timeout: 200 * time.Millisecond}
	// Polls of an idle file far apart (10s<<9 where fsnotify watches):
	// the event must be sent by its timeout, not found by a poll.
	e.Config.Inputs[0].PollInterval = 10 * time.Second
	out := filepath.Join(e.Out, "logs.log")
	l := newTraceLog(t, filepath.Join(e.Logs, "app.log"))
	e.Start()
	for i := 0; i < 3; i++ {
		// Each the file's last event: nothing follows to end it. It is
		// written whole, in one write: two writes of one event can come
		// further apart than the timeout on a slow machine, and the
		// event is then rightly sent in two.
		l.write(trace(l.next))
		l.next++
		waitEvents(t, out, l.next, func(int) bool { return false })
	}
	e.Stop()
	got, _, others := envelopes(t, out)
	for seq := 0; seq < l.next; seq++ {
		if want := strings.TrimSuffix(trace(seq), "\n"); len(got[seq]) != 1 || got[seq][0] != want {
			t.Errorf("event %d: got %q, want once %q", seq, got[seq], want)
		}
	}
	if len(others) > 0 {
		t.Errorf("messages of no event: %q", others)
	}
}
