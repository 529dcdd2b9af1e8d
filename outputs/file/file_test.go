package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/outputs/outputtest"
)

func newOutput(t *testing.T, c Config) *Output {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := New("file", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func config(path string) Config {
	c := DefaultConfig()
	c.Path = path
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		fields []string
	}{
		{"ok", Config{Path: "/x/{category}.log", Mode: "0600", MaxOpenFiles: 1}, nil},
		{"no path", Config{Mode: "0640", MaxOpenFiles: 1}, []string{"path"}},
		{"max_open_files", Config{Path: "/x", Mode: "0640"}, []string{"max_open_files"}},
		{"mode not octal", Config{Path: "/x", Mode: "rw-r-----", MaxOpenFiles: 1}, []string{"mode"}},
		{"mode too large", Config{Path: "/x", Mode: "01777", MaxOpenFiles: 1}, []string{"mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			got := outputtest.FieldsOf(t, err)
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
	if _, err := New("file", Config{Path: "/x", Mode: "bad"}, nil); err == nil {
		t.Error("New accepted a bad mode")
	}
}

func TestResolvePaths(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"out/{category}.log", "/etc/logagent/out/{category}.log"},
		{"/var/log/x.log", "/var/log/x.log"},
		{"", ""},
	} {
		c := Config{Path: tt.in}
		c.ResolvePaths("/etc/logagent")
		if c.Path != tt.want {
			t.Errorf("ResolvePaths(%q) = %q, want %q", tt.in, c.Path, tt.want)
		}
	}
}

// TestTemplated sends one batch of messages of several sources to a path
// with placeholders: each file gets its own lines, in order, and a
// placeholder's value cannot name a file outside the directory.
func TestTemplated(t *testing.T) {
	dir := t.TempDir()
	o := newOutput(t, config(filepath.Join(dir, "{input}", "{category}.log")))
	web, db := outputtest.Source("web"), outputtest.Source("db")
	up := &logagent.Source{Input: "..", Category: "../../escape"}
	none := &logagent.Source{Input: "test"}
	if got := o.Describe(); got != "file "+filepath.Join(dir, "{input}", "{category}.log") {
		t.Errorf("Describe = %q", got)
	}
	var batch []logagent.Message
	for i, m := range outputtest.Messages(web, 0, 40, 10) {
		switch i % 4 {
		case 1:
			m.Source = db
		case 2:
			m.Source = up
		case 3:
			m.Source = none
		}
		batch = append(batch, m)
	}
	if err := o.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		filepath.Join(dir, "test", "web.log"):       {0, 4, 8},
		filepath.Join(dir, "test", "db.log"):        {1, 5, 9},
		filepath.Join(dir, "_", ".._.._escape.log"): {2, 6, 10},
		filepath.Join(dir, "test", "_.log"):         {3, 7, 11},
	}
	for path, seqs := range want {
		m := batch[seqs[0]]
		if got := o.Destination(&m); got != path {
			t.Errorf("Destination of %d = %q, want %q", seqs[0], got, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 10 {
			t.Fatalf("%s: %d lines, want 10", path, len(lines))
		}
		for k, seq := range seqs {
			if got := outputtest.Seq([]byte(lines[k])); got != seq {
				t.Errorf("%s: line %d is message %d, want %d", path, k, got, seq)
			}
		}
	}
	// A batch of one source goes to its file in one write.
	if err := o.Send(context.Background(), outputtest.Messages(web, 40, 3, 10)); err != nil {
		t.Fatal(err)
	}
	c := outputtest.NewCounter()
	readSeqs(t, filepath.Join(dir, "test", "web.log"), c)
	if missing, _ := c.Check(40, 3); len(missing) > 0 || c.Total() != 13 {
		t.Errorf("web.log: %d lines, missing %v", c.Total(), missing)
	}
	if err := o.Send(context.Background(), nil); err != nil {
		t.Errorf("Send of an empty batch: %v", err)
	}
}

// TestMaxOpenFiles writes to more files than may stay open: the oldest is
// closed, and reopened (appending) when written to again.
func TestMaxOpenFiles(t *testing.T) {
	dir := t.TempDir()
	c := config(filepath.Join(dir, "{category}.log"))
	c.MaxOpenFiles = 2
	o := newOutput(t, c)
	ctx := context.Background()
	seq := 0
	for round := 0; round < 2; round++ {
		for _, cat := range []string{"a", "b", "c"} {
			if err := o.Send(ctx, outputtest.Messages(outputtest.Source(cat), seq, 5, 10)); err != nil {
				t.Fatal(err)
			}
			seq += 5
			if len(o.files) > 2 || len(o.order) != len(o.files) {
				t.Fatalf("%d files open (%v), at most 2", len(o.files), o.order)
			}
		}
	}
	got := outputtest.NewCounter()
	for _, cat := range []string{"a", "b", "c"} {
		readSeqs(t, filepath.Join(dir, cat+".log"), got)
	}
	if missing, dups := got.Check(0, seq); len(missing) > 0 || dups > 0 {
		t.Fatalf("missing %v, duplicates %d", missing, dups)
	}
}

// TestRepairTail starts on files left by an agent killed in the middle of
// a write: the partial last line is cut off before anything is appended
// (its offset was never committed, so it is sent again whole).
func TestRepairTail(t *testing.T) {
	long := strings.Repeat("x", 150<<10) // longer than one read of the repair
	tests := []struct{ name, before, kept string }{
		{"whole lines", "a\nb\n", "a\nb\n"},
		{"partial line", "a\nb\npart", "a\nb\n"},
		{"long partial line", "a\n" + long, "a\n"},
		{"no newline at all", long, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			if err := os.WriteFile(path, []byte(tt.before), 0o640); err != nil {
				t.Fatal(err)
			}
			c := config(path)
			c.Sync = true
			o := newOutput(t, c)
			if err := o.Send(context.Background(), outputtest.Messages(outputtest.Source("app"), 0, 2, 0)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.kept + outputtest.Line(0) + "\n" + outputtest.Line(1) + "\n"; string(got) != want {
				t.Errorf("file holds %.60q (%d bytes), want %.60q (%d bytes)", got, len(got), want, len(want))
			}
		})
	}
}

// TestDiskFull writes to /dev/full: every write fails with ENOSPC, Send
// says so, and the file is closed so that the retry opens it again.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	o := newOutput(t, config("/dev/full"))
	for try := 0; try < 2; try++ {
		err := o.Send(context.Background(), outputtest.Messages(outputtest.Source("app"), 0, 3, 10))
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "/dev/full") {
			t.Fatalf("Send %d = %v, want ENOSPC naming the file", try, err)
		}
		if len(o.files) != 0 {
			t.Fatalf("the failed file is kept open")
		}
	}
}

// TestWriteFailsMidway makes a write stop part way (the file size limit,
// as a full disk would after some bytes): the part written is cut back
// off, so the file never holds a torn line, and the retry appends whole
// lines after whole lines.
func TestWriteFailsMidway(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	o := newOutput(t, config(path))
	ctx := context.Background()
	src := outputtest.Source("app")
	if err := o.Send(ctx, outputtest.Messages(src, 0, 10, 100)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A write past what fits fails with EFBIG.
	testenv.WithFileSizeLimit(t, fi.Size()+250, func() {
		err = o.Send(ctx, outputtest.Messages(src, 10, 10, 100))
	})
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Send over the size limit = %v, want EFBIG", err)
	}
	if after, _ := os.Stat(path); after.Size() != fi.Size() {
		t.Fatalf("file is %d bytes after the failed write, want %d (what was written cut back)", after.Size(), fi.Size())
	}
	if err := o.Send(ctx, outputtest.Messages(src, 10, 10, 100)); err != nil {
		t.Fatal(err)
	}
	c := outputtest.NewCounter()
	readSeqs(t, path, c)
	if missing, dups := c.Check(0, 20); len(missing) > 0 || dups > 0 || c.Total() != 20 {
		t.Fatalf("%d lines, missing %v, duplicates %d", c.Total(), missing, dups)
	}
	data, _ := os.ReadFile(path)
	if bytes.Count(data, []byte("\n")) != 20 || !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("file holds a torn line")
	}
}

// TestOneFileFails sends a batch for two files, one of which cannot be
// written: the other file gets its messages, once, and Send lists the
// failing file's messages alone as to be sent again, so that a retry does
// not write into the other file what it holds already.
func TestOneFileFails(t *testing.T) {
	dir := t.TempDir()
	o := newOutput(t, config(filepath.Join(dir, "{category}", "out.log")))
	blocker := filepath.Join(dir, "bad")
	if err := os.WriteFile(blocker, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	bad, good := outputtest.Source("bad"), outputtest.Source("good")
	batch := outputtest.Messages(bad, 0, 10, 10) // the failing file first
	var wantRetry []int
	for i := range batch {
		if i%2 == 1 {
			batch[i].Source = good
		} else {
			wantRetry = append(wantRetry, i)
		}
	}
	err := o.Send(context.Background(), batch)
	var partial *logagent.PartialError
	if !errors.As(err, &partial) {
		t.Fatalf("Send = %v, want a *logagent.PartialError", err)
	}
	if fmt.Sprint(partial.Retry) != fmt.Sprint(wantRetry) || len(partial.Permanent) != 0 {
		t.Fatalf("PartialError retries %v and drops %v, want %v and none", partial.Retry, partial.Permanent, wantRetry)
	}
	// The scheduler sends the listed messages again, once the file can
	// be written.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	var retry []logagent.Message
	for _, i := range partial.Retry {
		retry = append(retry, batch[i])
	}
	if err := o.Send(context.Background(), retry); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name  string
		first int
	}{{"good", 1}, {"bad", 0}} {
		c := outputtest.NewCounter()
		readSeqs(t, filepath.Join(dir, f.name, "out.log"), c)
		if c.Total() != 5 {
			t.Errorf("%s: %d lines, want 5", f.name, c.Total())
		}
		for i := f.first; i < 10; i += 2 {
			if missing, dups := c.Check(i, 1); len(missing) > 0 || dups > 0 {
				t.Errorf("%s: line %d missing %v, duplicated %d", f.name, i, missing, dups)
			}
		}
	}

	// Every file failing, nothing is delivered: the whole batch again.
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "y"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	both := outputtest.Messages(outputtest.Source("x"), 20, 2, 10)
	both[1].Source = outputtest.Source("y")
	if err := o.Send(context.Background(), both); err == nil || errors.As(err, &partial) {
		t.Fatalf("Send with every file failing = %v, want a plain error", err)
	}
}

// TestOpenFails sends to a path whose directory cannot be made: Send
// returns the error, and sends again once the path can be used.
func TestOpenFails(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "sub")
	if err := os.WriteFile(blocker, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	o := newOutput(t, config(filepath.Join(blocker, "out.log")))
	msgs := outputtest.Messages(outputtest.Source("app"), 0, 3, 10)
	if err := o.Send(context.Background(), msgs); err == nil {
		t.Fatal("Send below a regular file succeeded")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	c := outputtest.NewCounter()
	readSeqs(t, filepath.Join(blocker, "out.log"), c)
	if c.Total() != 3 {
		t.Fatalf("%d lines, want 3", c.Total())
	}
}
