package file

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/logagent/logagent/inputs/file/multiline"
)

func multilineConfig(dir string, timeout time.Duration) Config {
	cfg := testConfig(dir)
	cfg.Multiline = &multiline.Config{Start: regexp.MustCompile(`^S`), MaxLines: 500, Timeout: timeout}
	return cfg
}

// Multiline at the harvester: the checkpoint stops at the end of the last
// event sent and never passes the first line of the event still open, so
// that a new input on the same checkpoint (a restart) reads that event
// again whole; the event is sent by its timeout, and the last event of a
// rotated file when the file is finished.
func TestMultilineOffsets(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := filepath.Join(dir, "a.log")
	first := "S1\n a\n b\n"
	if err := os.WriteFile(path, []byte(first+"S2\n c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, data)
	offset := func() int64 {
		es := store.Entries("t")
		if len(es) != 1 {
			return -1
		}
		return es[0].Offset
	}

	// No timeout within the test: S2 stays open.
	s := &sink{}
	_, stop := runInput(t, multilineConfig(dir, time.Hour), store, 8<<20, s)
	waitFor(t, "the first event committed", func() bool { return offset() == int64(len(first)) })
	stop()
	if want := []string{"S1\n a\n b"}; !slices.Equal(s.lines, want) {
		t.Fatalf("sent %q, want %q", s.lines, want)
	}
	if got := offset(); got != int64(len(first)) {
		t.Fatalf("checkpoint at %d after the stop, want %d: the start of the open event", got, len(first))
	}

	// Restarted with a short timeout: S2 is read again from its first line
	// and sent whole once it times out, with its last line appended meanwhile.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(" d\n")
	s2 := &sink{}
	_, stop2 := runInput(t, multilineConfig(dir, 50*time.Millisecond), store, 8<<20, s2)
	size := int64(len(first + "S2\n c\n d\n"))
	waitFor(t, "the open event sent by its timeout", func() bool { return offset() == size })
	stop2()
	if want := []string{"S2\n c\n d"}; !slices.Equal(s2.lines, want) {
		t.Fatalf("sent %q, want %q", s2.lines, want)
	}

	// The next event, its last line without newline, ended by the file's
	// rotation: sent when the file is finished (close_inactive after its
	// last data), not by its timeout.
	cfg := multilineConfig(dir, time.Hour)
	cfg.CloseInactive = 100 * time.Millisecond
	s3 := &sink{}
	in3, stop3 := runInput(t, cfg, store, 8<<20, s3)
	waitFor(t, "the file open again", func() bool { return len(in3.Files()) == 1 })
	f.WriteString("S3\n e")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotated file's last event", func() bool { return s3.count() == 1 })
	stop3()
	if want := []string{"S3\n e"}; !slices.Equal(s3.lines, want) {
		t.Fatalf("sent %q, want %q", s3.lines, want)
	}
}
