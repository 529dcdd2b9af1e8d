package journald

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs"
)

func binField(key string, val string) string {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(val)))
	return key + "\n" + string(n[:]) + val + "\n"
}

func TestExportReader(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	tests := []struct {
		name    string
		in      string
		want    []string // MESSAGE of each entry
		wantErr error
	}{
		{"text", "__CURSOR=c1\nMESSAGE=hello\n_SYSTEMD_UNIT=u\n\n__CURSOR=c2\nMESSAGE=\n\n", []string{"hello", ""}, io.EOF},
		{"binary", "__CURSOR=c1\n" + binField("MESSAGE", "a\nb\x00c") + binField("OTHER", "zz\n") + "\n", []string{"a\nb\x00c"}, io.EOF},
		{"long line", "__CURSOR=c1\nMESSAGE=" + long + "\n\n", []string{long}, io.EOF},
		{"no message", "__CURSOR=c1\nFOO=bar\n\n", []string{"<none>"}, io.EOF},
		{"truncated entry", "__CURSOR=c1\nMESSAGE=x\n", nil, io.ErrUnexpectedEOF},
		{"truncated binary", "__CURSOR=c1\nMESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00ab", nil, io.ErrUnexpectedEOF},
		{"no cursor", "MESSAGE=x\n\n", nil, errors.New("no cursor")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newExportReader(strings.NewReader(tt.in))
			var got []string
			var err error
			for {
				var e entry
				if err = x.next(&e); err != nil {
					break
				}
				if e.hasMsg {
					got = append(got, string(e.message))
				} else {
					got = append(got, "<none>")
				}
			}
			if tt.wantErr == io.EOF || tt.wantErr == io.ErrUnexpectedEOF {
				if err != tt.wantErr {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
			} else if err == nil || err == io.EOF {
				t.Fatalf("err %v, want an error", err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("messages %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWrittenNano(t *testing.T) {
	for in, want := range map[string]int64{
		"1765003501123456":     1765003501123456000,
		"0":                    0,
		"":                     0,
		"17650035011234x6":     0,
		"-1":                   0,
		"99999999999999999999": 0, // overflows int64 nanoseconds
		"9223372036854775":     9223372036854775000,
		"9223372036854776":     0,
	} {
		e := entry{realtime: []byte(in)}
		if got := e.writtenNano(); got != want {
			t.Errorf("writtenNano(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestEntryFields(t *testing.T) {
	x := newExportReader(strings.NewReader("__CURSOR=c\nMESSAGE=m\nPRIORITY=3\n_PID=7\n_BOOT_ID=b\n_HOSTNAME=h\n_SYSTEMD_UNIT=u.service\n\n"))
	var e entry
	if err := x.next(&e); err != nil {
		t.Fatal(err)
	}
	got := strings.Join([]string{string(e.cursor), string(e.unit), string(e.priority), string(e.pid), string(e.bootID), string(e.hostname)}, ",")
	if got != "c,u.service,3,7,b,h" {
		t.Fatalf("fields %s", got)
	}
}

// The committed cursor never passes a chunk not acknowledged, whatever
// the order of acknowledgements.
func TestTrackerCommitsInOrder(t *testing.T) {
	var commits []string
	var total int64
	tr := tracker{idle: make(chan struct{}, 1), commit: func(c string, n int64) { commits = append(commits, c); total += n }}
	a, b, c := tr.add("a", 1), tr.add("b", 2), tr.add("c", 3)
	tr.done(b)
	if len(commits) != 0 {
		t.Fatalf("committed %v before a was acknowledged", commits)
	}
	tr.done(a)
	tr.done(c)
	if strings.Join(commits, ",") != "b,c" || total != 6 {
		t.Fatalf("commits %v total %d, want b,c 6", commits, total)
	}
}

func TestCheckWithoutJournalctl(t *testing.T) {
	c := DefaultConfig()
	c.Journalctl = "/nonexistent/journalctl"
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "needs systemd's journalctl") {
		t.Fatalf("Check: %v", err)
	}
	c = DefaultConfig()
	c.JournalDirectory = t.TempDir() + "/none"
	if _, err := New(c, testEnv()); err == nil || !strings.Contains(err.Error(), "no journal to read") {
		t.Fatalf("New: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []string{"", "err", "3", "err..info", "0..7"} {
		c := DefaultConfig()
		c.Priority = p
		if err := c.Validate(); err != nil {
			t.Errorf("priority %q: %v", p, err)
		}
	}
	for _, p := range []string{"errr", "8", "err..", "x..info"} {
		c := DefaultConfig()
		c.Priority = p
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "priority") {
			t.Errorf("priority %q: %v", p, err)
		}
	}
	c := DefaultConfig()
	c.Units = []string{"a", " "}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "units[1]") {
		t.Errorf("units: %v", err)
	}

}

func testEnv() inputs.Env { return inputs.Env{ID: "j"} }

// read publishes each entry's MESSAGE with its metadata, drops the
// entries of exclude_units and those without a MESSAGE, and commits, once
// acknowledged, the cursor of the last entry read, dropped ones included.
func TestReadPublishesAndCommits(t *testing.T) {
	store, err := checkpoint.Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var got []string
	var fields []map[string]string
	var at []int64
	env := inputs.Env{ID: "j", Host: "agent", Checkpoint: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Publish: func(ctx context.Context, c *logagent.Chunk) error {
			c.Expect(1)
			for _, m := range c.Messages {
				got = append(got, string(m.Body))
				fields = append(fields, m.Source.Fields)
				at = append(at, m.ReadNano)
			}
			c.Ack(len(c.Messages))
			return nil
		}}
	c := DefaultConfig()
	c.JournalDirectory = t.TempDir()
	c.ExcludeUnits = []string{"logagent"}
	in, err := New(c, env)
	if err != nil {
		t.Fatal(err)
	}
	stream := "__CURSOR=c1\n__REALTIME_TIMESTAMP=1765003501123456\nMESSAGE=one\n_SYSTEMD_UNIT=a.service\nPRIORITY=6\n_PID=1\n_BOOT_ID=b\n_HOSTNAME=h\n\n" +
		"__CURSOR=c2\nMESSAGE=loop\n_SYSTEMD_UNIT=logagent.service\n\n" +
		"__CURSOR=c3\n" + binField("MESSAGE", "two\nlines") + "\n" +
		"__CURSOR=c4\nFOO=no message\n\n"
	var cursor string
	if err := in.read(context.Background(), newExportReader(strings.NewReader(stream)), &cursor); err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if strings.Join(got, "|") != "one|two\nlines" {
		t.Fatalf("published %q", got)
	}
	if f := fields[0]; f["unit"] != "a.service" || f["priority"] != "6" || f["pid"] != "1" || f["boot_id"] != "b" || f["hostname"] != "h" {
		t.Fatalf("fields %v", f)
	}
	// @timestamp: when the journal says the entry was written; the read
	// time for an entry without __REALTIME_TIMESTAMP.
	if at[0] != 1765003501123456000 {
		t.Fatalf("ReadNano %d, want the entry's __REALTIME_TIMESTAMP 1765003501123456000", at[0])
	}
	if age := time.Since(time.Unix(0, at[1])); age < 0 || age > time.Hour {
		t.Fatalf("ReadNano of an entry without __REALTIME_TIMESTAMP: %v ago, want the read time", age)
	}
	wantCounters := map[string]int64{"entries": 4, "messages": 2, "bytes": 12, "excluded": 1, "restarts": 0}
	if got := in.Counters(); fmt.Sprint(got) != fmt.Sprint(wantCounters) {
		t.Fatalf("counters %v, want %v", got, wantCounters)
	}
	if cursor != "c4" || in.Cursor() != "c4" {
		t.Fatalf("cursor read %q, committed %q; want c4", cursor, in.Cursor())
	}
	if e, _ := store.Get(in.key); e.Offset != 4 {
		t.Fatalf("entries committed %d, want 4", e.Offset)
	}
}

// fakeJournalctl writes a script standing for journalctl: each run logs
// its pid and arguments to dir/runs, prints one entry whose cursor is
// the run's number, then exits, or, from run `stayFrom` on, stays (exec
// sleep, same pid) until it is stopped.
func fakeJournalctl(t *testing.T, dir string, stayFrom int) string {
	t.Helper()
	script := filepath.Join(dir, "journalctl")
	runs := filepath.Join(dir, "runs")
	body := fmt.Sprintf(`#!/bin/sh
n=$(( $(cat %[1]s 2>/dev/null | wc -l) + 1 ))
echo "$$ $*" >> %[1]s
printf '__CURSOR=c%%d\nMESSAGE=run %%d\n\n' $n $n
if [ $n -ge %[2]d ]; then exec sleep 1000; fi
`, runs, stayFrom)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func readRuns(dir string) []string {
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// journalctl that exits is started again after the last entry read; on
// stop, the one running is stopped (by its pid) before Run returns.
func TestJournalctlRestartedAndStopped(t *testing.T) {
	dir := t.TempDir()
	store, err := checkpoint.Open(filepath.Join(dir, "data"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var mu sync.Mutex
	var got []string
	env := inputs.Env{ID: "j", Checkpoint: store, DrainTimeout: time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Publish: func(ctx context.Context, c *logagent.Chunk) error {
			c.Expect(1)
			mu.Lock()
			for _, m := range c.Messages {
				got = append(got, string(m.Body))
			}
			mu.Unlock()
			go c.Ack(len(c.Messages))
			return nil
		}}
	c := DefaultConfig()
	c.Journalctl = fakeJournalctl(t, dir, 3)
	c.JournalDirectory = dir
	in, err := New(c, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- in.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %q, runs %q", got, readRuns(dir))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	runs := readRuns(dir)
	if len(runs) != 3 || strings.Contains(runs[0], "--after-cursor") ||
		!strings.Contains(runs[1], "--after-cursor=c1") || !strings.Contains(runs[2], "--after-cursor=c2") {
		t.Fatalf("runs:\n%s", strings.Join(runs, "\n"))
	}
	if in.Cursor() != "c3" {
		t.Fatalf("committed %q, want c3", in.Cursor())
	}
	pid, _ := strconv.Atoi(strings.Fields(runs[2])[0])
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("journalctl (pid %d) still there after Run returned: %v", pid, err)
	}
}

// FuzzExport: no stream makes the parser panic or loop; every entry it
// returns has a cursor; a stream it parses whole parses the same when read
// a byte at a time.
func FuzzExport(f *testing.F) {
	f.Add([]byte("__CURSOR=c1\nMESSAGE=hello\n_SYSTEMD_UNIT=u\n\n__CURSOR=c2\nMESSAGE=\n\n"))
	f.Add([]byte("__CURSOR=c1\n" + binField("MESSAGE", "a\nb\x00c") + "\n"))
	f.Add([]byte("__CURSOR=c1\nMESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xff\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parse := func(r io.Reader) ([]string, error) {
			x := newExportReader(r)
			var out []string
			for {
				var e entry
				if err := x.next(&e); err != nil {
					return out, err
				}
				if len(e.cursor) == 0 {
					t.Fatal("an entry without a cursor")
				}
				out = append(out, string(e.cursor)+"\x00"+string(e.message))
			}
		}
		a, errA := parse(bytes.NewReader(data))
		b, errB := parse(iotest.OneByteReader(bytes.NewReader(data)))
		if strings.Join(a, "\x01") != strings.Join(b, "\x01") || (errA == io.EOF) != (errB == io.EOF) {
			t.Fatalf("whole: %q %v; byte by byte: %q %v", a, errA, b, errB)
		}
	})
}
