package checkpoint

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

func entry(path string, ino uint64, off int64) Entry {
	return Entry{Input: "in", ID: logagent.FileID{Dev: 1, Ino: ino, Fingerprint: ino * 7, FingerprintLen: 1024},
		Path: path, Offset: off, Updated: time.Unix(1700000000, 0).UTC()}
}

// saveSnapshot writes entries as the snapshot at path, of generation gen,
// as a store's flush does.
func saveSnapshot(path string, entries []Entry, gen uint64) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, compareEntries)
	_, err := writeFileOwned(path, func(w io.Writer) error {
		c := newChunker(w, nil)
		return c.snapshot(sorted, gen, time.Now())
	}, noOwner)
	return err
}

func TestSnapshotRoundTripLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	want := []Entry{entry("/a.log", 1, 10), entry("/b.log", 2, 20)}
	if err := saveSnapshot(path, want, 3); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d files after the write, want only the snapshot", len(ents))
	}
}

// A snapshot write that fails leaves the previous snapshot as it was.
func TestSnapshotFailureKeepsPreviousSnapshot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := saveSnapshot(path, []Entry{entry("/a.log", 1, 10)}, 1); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	// Writing the temporary file fails: a directory takes its place.
	bad := filepath.Join(path, "x") // path is a file: cannot be a directory
	if err := saveSnapshot(bad, []Entry{entry("/a.log", 1, 99)}, 2); err == nil {
		t.Fatal("snapshot written into a non-directory")
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("failed write changed the snapshot")
	}
}

// A checkpoint cut in half (a torn write by another tool, a full disk) is a
// CorruptError naming the file: the agent stops instead of starting over.
func TestTornCheckpointIsCorruptError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := saveSnapshot(path, []Entry{entry("/a.log", 1, 10), entry("/b.log", 2, 20)}, 1); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)/2], 0o644)
	_, err := Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a torn checkpoint: %v, want a CorruptError naming %s", err, path)
	}
	after, _ := os.ReadFile(path)
	if len(after) != len(data)/2 {
		t.Error("the torn checkpoint was changed")
	}
}

// The store writes what it holds on Close and reads it back at the next
// Open; Rekey moves an entry to its new identity.
func TestStoreCloseAndReopen(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, log); err == nil {
		t.Fatal("a second store on the same data_dir was allowed")
	}
	a := entry("/a.log", 1, 10)
	s.Set(a)
	b := a
	b.ID.Fingerprint, b.Offset = 99, 30
	s.Rekey(a.Key(), b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := s2.Entries("in")
	if len(got) != 1 || got[0] != b {
		t.Fatalf("after reopen: %v, want [%v]", got, b)
	}
}

// OnDisk tells an entry as a flush that succeeded wrote it (or as Open
// loaded it) from one changed, deleted or never written since.
func TestOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	a, b := entry("/a.log", 1, 10), entry("/b.log", 2, 20)
	check := func(when string, e Entry, want bool) {
		t.Helper()
		if got := s.OnDisk(e.Key()); got != want {
			t.Errorf("%s: OnDisk(%s) = %v, want %v", when, e.Path, got, want)
		}
	}
	check("empty store", a, false)
	s.Set(a)
	check("set, not flushed", a, false)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check("flushed", a, true)
	s.Set(b)
	check("another entry set", a, true)
	check("set, not flushed", b, false)
	a.Offset = 15
	s.Set(a)
	check("moved, not flushed", a, false)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check("flushed again", a, true)
	s.Delete(b.Key())
	check("deleted", b, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	check("loaded", a, true)
	check("deleted before close", b, false)
}
