package checkpoint

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/logagent/logagent/internal/testenv"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash releases s as a killed agent would: nothing more is written.
func crash(s *Store) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	s.lock.Close()
	s.closed = true
}

// state is what s holds, sorted as Load returns it.
func state(s *Store) []Entry {
	e := s.Entries("")
	slices.SortFunc(e, compareEntries)
	return e
}

func equalEntries(t *testing.T, what string, got, want []Entry) {
	t.Helper()
	if !slices.EqualFunc(got, want, sameEntry) {
		t.Fatalf("%s:\n%+v\nwant\n%+v", what, got, want)
	}
}

// reopened is what a store opened on a copy of dir holds.
func reopened(t *testing.T, dir string) []Entry {
	t.Helper()
	s := openStore(t, copyDir(t, dir))
	defer crash(s)
	return state(s)
}

// checkDisk checks that the checkpoint in dir, loaded and reopened, is
// want.
func checkDisk(t *testing.T, dir, what string, want []Entry) {
	t.Helper()
	got, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	equalEntries(t, what+": Load", got, want)
	equalEntries(t, what+": reopened", reopened(t, dir), want)
}

func journalPath(dir string, gen uint64) string { return filepath.Join(dir, journalName(gen)) }

func snapshotGen(t *testing.T, dir string) uint64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f.Journal
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// copyDir copies the files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, n := range dirNames(t, src) {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// op changes a store; ino names the file.
type op func(s *Store)

func set(ino uint64, off int64) op {
	return func(s *Store) {
		e := current(s, ino)
		e.Offset = off
		s.Set(e)
	}
}

func setPath(ino uint64, path string) op {
	return func(s *Store) {
		e := current(s, ino)
		e.Path = path
		s.Set(e)
	}
}

func del(ino uint64) op {
	return func(s *Store) { s.Delete(current(s, ino).Key()) }
}

// rekey extends the fingerprint of file ino to fpLen.
func rekey(ino uint64, fpLen int, off int64) op {
	return func(s *Store) {
		old := current(s, ino)
		e := old
		e.ID.FingerprintLen, e.Offset = fpLen, off
		s.Rekey(old.Key(), e)
	}
}

// current is the entry of file ino, or a new one.
func current(s *Store, ino uint64) Entry {
	if es := s.ByInode("in", 1, ino); len(es) > 0 {
		return es[0]
	}
	return entry(fmt.Sprintf("/f%d.log", ino), ino, 0)
}

func setLine(e Entry) string {
	b, err := appendSet(nil, &e)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func delLine(e Entry) string { return string(appendDelete(nil, e.Key())) }

func commitLine(n int) string { return string(appendCommit(nil, n)) }

// Load reads the snapshot, then the committed flushes of the journal of its
// generation, and no other journal.
func TestLoadJournal(t *testing.T) {
	a, b, c := entry("/a.log", 1, 10), entry("/b.log", 2, 20), entry("/c.log", 3, 30)
	a2, b2 := a, b
	a2.Offset, b2.Offset = 11, 21
	a3 := a2
	a3.ID.FingerprintLen, a3.Offset = 2048, 12 // a rekeyed
	twoFlushes := setLine(a2) + commitLine(1) + delLine(b) + setLine(c) + commitLine(2)
	cases := []struct {
		name     string
		snapshot []Entry // nil: no snapshot
		gen      uint64
		legacy   bool              // the snapshot has no "journal"
		journals map[uint64]string // by generation
		want     []Entry
		corrupt  string // the line a CorruptError names
	}{
		{name: "snapshot alone", snapshot: []Entry{a, b}, gen: 3, want: []Entry{a, b}},
		{name: "flushes", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: twoFlushes}, want: []Entry{a2, c}},
		{name: "rekey", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: setLine(a3) + delLine(a) + commitLine(2)}, want: []Entry{a3, b}},
		{name: "deleted, then back", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: twoFlushes + setLine(b2) + commitLine(1)}, want: []Entry{a2, b2, c}},
		{name: "delete of an absent key", snapshot: []Entry{a}, gen: 3, journals: map[uint64]string{3: delLine(b) + commitLine(1)}, want: []Entry{a}},
		{name: "flush without commit", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: twoFlushes + setLine(b2) + delLine(a2)}, want: []Entry{a2, c}},
		{name: "torn last line", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: twoFlushes + setLine(b2) + commitLine(1)[:5]}, want: []Entry{a2, c}},
		{name: "torn last line ending in a newline", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: twoFlushes + setLine(b2)[:30] + "\n"}, want: []Entry{a2, c}},
		{name: "stale journals", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{2: delLine(a) + commitLine(1), 4: twoFlushes}, want: []Entry{a, b}},
		{name: "no snapshot, journal 0", journals: map[uint64]string{0: twoFlushes}, want: []Entry{a2, c}},
		{name: "no snapshot, journal 1", journals: map[uint64]string{1: twoFlushes}, want: nil},
		{name: "legacy snapshot, journal 0", snapshot: []Entry{a, b}, legacy: true, journals: map[uint64]string{0: twoFlushes, 1: delLine(c) + commitLine(1)}, want: []Entry{a2, c}},
		{name: "bad middle line", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: setLine(a2) + commitLine(1) + "x\n" + setLine(c) + commitLine(1)}, corrupt: "line 3"},
		{name: "wrong commit", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: setLine(a2) + commitLine(2) + setLine(c) + commitLine(1)}, corrupt: "line 2"},
		{name: "empty journal", snapshot: []Entry{a, b}, gen: 3, journals: map[uint64]string{3: ""}, want: []Entry{a, b}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if tc.snapshot != nil {
				data, err := appendFile(nil, tc.snapshot, tc.gen, parseTime("2024-01-01T00:00:00Z"))
				if err != nil {
					t.Fatal(err)
				}
				if tc.legacy {
					data = bytes.Replace(data, []byte(`"journal":0,`), nil, 1)
				}
				os.WriteFile(path, data, 0o640)
			}
			for gen, j := range tc.journals {
				os.WriteFile(journalPath(dir, gen), []byte(j), 0o640)
			}
			got, err := Load(path)
			if tc.corrupt != "" {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.Path != journalPath(dir, tc.gen) || !strings.Contains(err.Error(), tc.corrupt) {
					t.Fatalf("Load: %v, want a CorruptError naming %s %s", err, journalPath(dir, tc.gen), tc.corrupt)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			equalEntries(t, "Load", got, tc.want)
		})
	}
}

// Flushes of sets, deletes and rekeys append the last value of each key
// changed, and the checkpoint read back after each, from the journal of
// generation 0 alone and then from a snapshot and its journal, is what the
// store held.
func TestJournalReplay(t *testing.T) {
	type flush struct {
		ops     []op
		records int // the records appended
	}
	cases := []struct {
		name    string
		flushes []flush
	}{
		{"sets", []flush{
			{[]op{set(1, 10), set(2, 20), set(3, 30)}, 3},
			{[]op{set(1, 11), set(4, 40)}, 2},
			{[]op{set(2, 21), set(2, 22), set(2, 23)}, 1}, // last value only
			{[]op{setPath(3, "/f3.log.1"), set(5, 0)}, 2},
		}},
		{"deletes", []flush{
			{[]op{set(1, 10), set(2, 20), set(3, 30)}, 3},
			{[]op{del(2)}, 1},
			{[]op{del(1), set(2, 5)}, 2}, // a deleted key back
			{[]op{set(4, 1), del(4), set(3, 31)}, 2},
			{[]op{del(3), set(3, 0), del(3)}, 1},
		}},
		{"rekeys", []flush{
			{[]op{set(1, 10), set(2, 20)}, 2},
			{[]op{rekey(1, 2048, 11)}, 2},
			{[]op{rekey(2, 2048, 21), rekey(2, 4096, 22)}, 3}, // chained: three keys
			{[]op{rekey(1, 1024, 12)}, 2},                     // back to its first key
			{[]op{rekey(2, 1024, 23), set(1, 13)}, 3},
		}},
		{"mixed", []flush{
			{[]op{set(1, 1), set(2, 2), set(3, 3), set(4, 4)}, 4},
			{[]op{rekey(1, 100, 5), del(2), setPath(3, "/moved.log"), set(4, 6), set(5, 7)}, 6},
			{[]op{}, 0},
			{[]op{del(5), rekey(1, 200, 8), set(2, 9)}, 4},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			for round := 0; round < 2; round++ {
				// Round 0: from the journal of generation 0 alone, no
				// snapshot; round 1: after a snapshot.
				gen := uint64(0)
				if round == 1 {
					gen = snapshotGen(t, dir)
				}
				for i, f := range tc.flushes {
					before, _ := os.ReadFile(journalPath(dir, gen))
					writes, _, _ := s.Stats()
					for _, o := range f.ops {
						o(s)
					}
					if err := s.Flush(); err != nil {
						t.Fatal(err)
					}
					after, _ := os.ReadFile(journalPath(dir, gen))
					if !bytes.HasPrefix(after, before) {
						t.Fatalf("flush %d changed the journal before its end", i)
					}
					lines := bytes.Count(after[len(before):], []byte("\n"))
					nowWrites, _, _ := s.Stats()
					if f.records == 0 {
						if lines != 0 || nowWrites != writes {
							t.Fatalf("flush %d of nothing appended %d lines, %d writes", i, lines, nowWrites-writes)
						}
					} else if lines != f.records+1 || nowWrites != writes+1 {
						t.Fatalf("flush %d appended %d lines in %d writes, want %d records and a commit in 1", i, lines, nowWrites-writes, f.records)
					}
					if round == 0 {
						if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
							t.Fatal("a snapshot was written")
						}
					}
					checkDisk(t, dir, fmt.Sprintf("round %d flush %d", round, i), state(s))
				}
				if round == 0 {
					// A snapshot, then the same flushes again.
					want := state(s)
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = openStore(t, dir)
					equalEntries(t, "after Close", state(s), want)
				}
			}
			crash(s)
		})
	}
}

// A journal whose last flush was cut anywhere (a crash while appending)
// gives the state of the flush before; the store opened on it keeps
// flushing correctly.
func TestJournalTornLastFlush(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for ino := uint64(1); ino <= 5; ino++ {
		set(ino, int64(ino))(s)
	}
	if err := s.Close(); err != nil { // a snapshot, generation 1
		t.Fatal(err)
	}
	s = openStore(t, dir)
	set(1, 100)(s)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	prev := state(s)
	jpath := journalPath(dir, snapshotGen(t, dir))
	prevSize := fileSize(jpath)
	set(1, 200)(s)
	del(2)(s)
	rekey(3, 2048, 300)(s)
	set(6, 600)(s)
	setPath(4, "/f4.log.1")(s)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	last := state(s)
	crash(s)
	full, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(full[prevSize:], []byte("\n")) != 7 {
		t.Fatalf("last flush:\n%s", full[prevSize:])
	}
	for cut := prevSize; cut <= int64(len(full)); cut++ {
		want, what := prev, fmt.Sprintf("cut at %d of %d", cut, len(full))
		if cut == int64(len(full)) {
			want = last
		}
		d := copyDir(t, dir)
		if err := os.WriteFile(filepath.Join(d, filepath.Base(jpath)), full[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		checkDisk(t, d, what, want)
		if cut%13 != 0 && full[cut-1] != '\n' {
			continue // slow under -race
		}
		// Flushing after a torn flush: the next load is whole.
		s := openStore(t, d)
		set(5, 500)(s)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		want = state(s)
		crash(s)
		checkDisk(t, d, what+", then a flush", want)
	}
}

// The end of a journal that does not hold a whole committed flush is
// ignored.
func TestJournalUnfinishedFlushIgnored(t *testing.T) {
	cases := []struct {
		name, tail string
	}{
		{"records without commit", `{"set":{"input":"in","id":{"dev":1,"ino":9,"fp":63,"fp_len":1024},"path":"/new.log","offset":9,"updated":"2023-11-14T22:13:20Z"}}` + "\n" + `{"del":{"input":"in","id":{"dev":1,"ino":1,"fp":7,"fp_len":1024}}}` + "\n"},
		{"garbage last line", "\x00\x00\x00\x00\n"},
		{"garbage last line, no newline", "\x00\x00\x00"},
		{"records, then a torn commit", `{"del":{"input":"in","id":{"dev":1,"ino":1,"fp":7,"fp_len":1024}}}` + "\n" + `{"commi`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			set(1, 10)(s)
			set(2, 20)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			want := state(s)
			crash(s)
			f, err := os.OpenFile(journalPath(dir, 0), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.tail)
			f.Close()
			checkDisk(t, dir, tc.name, want)
		})
	}
}

// A line that cannot be read before the last one is a CorruptError naming
// the journal and the line; the journal is left as it was.
func TestJournalBadLineIsCorruptError(t *testing.T) {
	const setLine = `{"set":{"input":"in","id":{"dev":1,"ino":9,"fp":63,"fp_len":1024},"path":"/x.log","offset":9,"updated":"2023-11-14T22:13:20Z"}}`
	cases := []struct {
		name, line string
	}{
		{"garbage", "garbage"},
		{"empty", ""},
		{"torn", setLine[:40]},
		{"not a record", `{"offset":3}`},
		{"two records", `{"set":{"input":"in","offset":1},"del":{"input":"in"}}`},
		{"null", `{"set":null}`},
		{"negative offset", strings.Replace(setLine, `"offset":9`, `"offset":-1`, 1)},
		{"no input", strings.Replace(setLine, `"input":"in"`, `"input":""`, 1)},
		{"wrong commit", `{"commit":5}`},
		{"array", `[1,2]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			for i := int64(0); i < 3; i++ {
				set(1, i)(s)
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			crash(s)
			jpath := journalPath(dir, 0)
			data, _ := os.ReadFile(jpath)
			lines := strings.SplitAfter(string(data), "\n")
			lines[2] = tc.line + "\n" // the second flush's record
			bad := strings.Join(lines, "")
			os.WriteFile(jpath, []byte(bad), 0o640)
			_, err := Load(filepath.Join(dir, FileName))
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Path != jpath || !strings.Contains(err.Error(), "line 3") {
				t.Fatalf("Load: %v, want a CorruptError naming %s line 3", err, jpath)
			}
			if !strings.Contains(err.Error(), "resume from "+FileName+" alone") {
				t.Errorf("the error does not tell what moving the journal away does: %v", err)
			}
			_, err = Open(dir, quietLog())
			if !errors.As(err, &ce) || ce.Path != jpath {
				t.Fatalf("Open: %v, want a CorruptError naming %s", err, jpath)
			}
			if after, _ := os.ReadFile(jpath); string(after) != bad {
				t.Fatal("the journal was changed")
			}
		})
	}
}

// A crash after a snapshot's rename, before the old journal is removed,
// leaves a stale journal: ignored, even where replaying it would undo what
// the snapshot holds, and removed when a store opens.
func TestStaleJournalIgnored(t *testing.T) {
	cases := []struct {
		name string
		// stale makes, in dir, a stale journal and returns the
		// checkpoint that must be read.
		stale func(t *testing.T, dir string) []Entry
	}{
		{"previous generation, compaction at Close", func(t *testing.T, dir string) []Entry {
			s := openStore(t, dir)
			set(1, 10)(s)
			set(2, 20)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			// The last flush of the journal deletes file 2, which
			// comes back before the snapshot.
			del(2)(s)
			set(1, 11)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			set(2, 21)(s)
			journal, _ := os.ReadFile(journalPath(dir, 0))
			want := state(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if gen := snapshotGen(t, dir); gen != 1 {
				t.Fatalf("snapshot of generation %d, want 1", gen)
			}
			os.WriteFile(journalPath(dir, 0), journal, 0o640) // as the crash left it
			return want
		}},
		{"previous generation, compaction at Flush", func(t *testing.T, dir string) []Entry {
			s := openStore(t, dir)
			set(1, 10)(s)
			set(2, 20)(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			del(2)(s)
			if err := s.Flush(); err != nil { // journal 1
				t.Fatal(err)
			}
			journal, _ := os.ReadFile(journalPath(dir, 1))
			s.jsize = 1 << 30 // as if the journal had grown
			set(2, 22)(s)
			if err := s.Flush(); err != nil { // snapshot 2
				t.Fatal(err)
			}
			if gen := snapshotGen(t, dir); gen != 2 {
				t.Fatalf("snapshot of generation %d, want 2", gen)
			}
			if _, err := os.Stat(journalPath(dir, 1)); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("the old journal is still there")
			}
			want := state(s)
			crash(s)
			os.WriteFile(journalPath(dir, 1), journal, 0o640)
			return want
		}},
		{"a journal without its snapshot", func(t *testing.T, dir string) []Entry {
			s := openStore(t, dir)
			set(1, 10)(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			del(1)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			crash(s)
			// The snapshot moved away to start over.
			os.Remove(filepath.Join(dir, FileName))
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := tc.stale(t, dir)
			got, err := Load(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			equalEntries(t, "Load", got, want)
			s := openStore(t, dir)
			equalEntries(t, "Open", state(s), want)
			for _, n := range dirNames(t, dir) {
				if _, ok := journalGen(n); ok {
					t.Errorf("Open left %s", n)
				}
			}
			// Flushes after go to a journal of a new generation.
			set(7, 70)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			want = state(s)
			crash(s)
			checkDisk(t, dir, "after a flush", want)
		})
	}
}

// Once the journal is larger than max(snapshot, 1 MiB), a flush
// writes a snapshot of the next generation and removes the journal; the
// checkpoint read back is what the store held.
func TestJournalCompaction(t *testing.T) {
	cases := []struct {
		name              string
		files, pathLen    int
		perFlush, flushes int
		minCompact        int64 // 0: 1 MiB, the store's
	}{
		{"small snapshot: 1 MiB", 400, 20, 400, 40, 0},
		// Above 64 KiB, not 1 MiB: the test runs faster.
		{"large snapshot: its size", 300, 600, 60, 14, 64 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			defer crash(s)
			minCompact := s.minCompact
			if tc.minCompact > 0 {
				minCompact, s.minCompact = tc.minCompact, tc.minCompact
			}
			for i := 0; i < tc.files; i++ {
				e := entry(fmt.Sprintf("/%0*d.log", tc.pathLen, i), uint64(i), 0)
				s.Set(e)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			next, compactions, aboveMin, after := 0, 0, 0, false
			for f := 0; f < tc.flushes; f++ {
				gen := uint64(0)
				if _, err := os.Stat(s.Path()); err == nil {
					gen = snapshotGen(t, dir)
				}
				jsize := fileSize(journalPath(dir, gen))
				limit := max(fileSize(s.Path()), minCompact)
				for j := 0; j < tc.perFlush; j++ {
					e := entry(fmt.Sprintf("/%0*d.log", tc.pathLen, next), uint64(next), int64(f+1))
					s.Set(e)
					next = (next + 1) % tc.files
				}
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
				_, err := os.Stat(s.Path())
				compacted := err == nil && snapshotGen(t, dir) != gen
				if compacted != (jsize > limit) {
					t.Fatalf("flush %d: journal %d bytes, snapshot %d: compacted %v", f, jsize, fileSize(s.Path()), compacted)
				}
				if compacted {
					compactions++
					for _, n := range dirNames(t, dir) {
						if _, ok := journalGen(n); ok {
							t.Fatalf("flush %d: %s left after the snapshot", f, n)
						}
					}
				} else if jsize > minCompact {
					aboveMin++
				}
				if compacted || after || f%5 == 0 { // reading all is slow under -race
					checkDisk(t, dir, fmt.Sprintf("flush %d", f), state(s))
				}
				after = compacted
			}
			if compactions < 2 {
				t.Errorf("%d compactions", compactions)
			}
			if tc.minCompact > 0 && aboveMin == 0 {
				t.Error("never appended to a journal above the minimum and below the snapshot's size")
			}
		})
	}
}

// Close leaves the snapshot alone, whatever the store did before.
func TestCloseLeavesSnapshotOnly(t *testing.T) {
	cases := []struct {
		name string
		ops  func(t *testing.T, s *Store)
	}{
		{"nothing", func(t *testing.T, s *Store) {}},
		{"changes not flushed", func(t *testing.T, s *Store) { set(1, 1)(s) }},
		{"flushed", func(t *testing.T, s *Store) {
			set(1, 1)(s)
			s.Flush()
		}},
		{"flushed and changed", func(t *testing.T, s *Store) {
			set(1, 1)(s)
			s.Flush()
			rekey(1, 5, 3)(s)
			set(2, 2)(s)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// A stale journal and a temporary file from a crash.
			os.WriteFile(journalPath(dir, 9), []byte("{}\n"), 0o640)
			os.WriteFile(filepath.Join(dir, ".checkpoint-123.tmp"), []byte("{"), 0o640)
			for run := 0; run < 2; run++ {
				s := openStore(t, dir)
				tc.ops(t, s)
				want := state(s)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				names := dirNames(t, dir)
				if len(want) == 0 {
					// Nothing was ever stored: no snapshot needed.
					names = append(names, FileName)
					slices.Sort(names)
				}
				if !slices.Equal(names, []string{".lock", FileName}) {
					t.Fatalf("run %d: after Close the data dir holds %v", run, names)
				}
				checkDisk(t, dir, fmt.Sprintf("run %d", run), want)
				if err := s.Close(); err != nil {
					t.Fatal("second Close:", err)
				}
				if err := s.Flush(); err == nil {
					t.Fatal("Flush after Close")
				}
			}
		})
	}
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// A flush that fails leaves its changes to the next one, and leaves no
// torn line inside the journal: a partial append is cut off before the
// next; after a failed snapshot, the next flush writes one of a new
// generation.
func TestFailedFlushRetried(t *testing.T) {
	cases := []struct {
		name string
		// slack is how far past the journal's size the failing write
		// may go.
		slack       int64
		compact     bool
		wantSnapGen uint64
		files       uint64 // 20 if 0
	}{
		{"append cut short", 100, false, 1, 0},
		{"append of nothing", 0, false, 1, 0},
		// Written a chunk at a time: the chunks before the one cut
		// short are cut off too.
		{"append cut short after a chunk", chunkSize + 10<<10, false, 1, 1000},
		{"snapshot cut short", 100, true, 3, 0},
		{"snapshot cut short after a chunk", chunkSize + 10<<10, true, 3, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			files := cmp.Or(tc.files, 20)
			for ino := uint64(1); ino <= files; ino++ {
				set(ino, 1)(s)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			defer crash(s)
			set(1, 2)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			good := state(s)
			jpath := journalPath(dir, 1)
			goodJournal, _ := os.ReadFile(jpath)
			for ino := uint64(1); ino <= files; ino++ {
				set(ino, 3)(s)
			}
			rekey(5, 5, 4)(s)
			del(6)(s)
			want := state(s)
			if tc.compact {
				s.jsize = 1 << 30 // as if the journal had grown
			}
			limit := int64(len(goodJournal)) + tc.slack
			if tc.compact {
				limit = tc.slack
			}
			testenv.WithFileSizeLimit(t, limit, func() {
				if err := s.Flush(); err == nil {
					t.Fatal("flush succeeded")
				}
			})
			if _, _, err := s.Stats(); err == nil {
				t.Fatal("Stats reports no error")
			}
			// The crash now leaves the last good flush.
			checkDisk(t, dir, "after the failed flush", good)
			if tc.compact {
				s.jsize = int64(len(goodJournal))
			} else if cur, _ := os.ReadFile(jpath); len(cur) != len(goodJournal)+int(tc.slack) {
				t.Fatalf("the failed write left %d bytes, want %d", len(cur)-len(goodJournal), tc.slack)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Stats(); err != nil {
				t.Fatal("Stats still reports", err)
			}
			equalEntries(t, "store", state(s), want)
			checkDisk(t, dir, "after the retry", want)
			if gen := snapshotGen(t, dir); gen != tc.wantSnapGen {
				t.Errorf("snapshot of generation %d, want %d", gen, tc.wantSnapGen)
			}
			set(7, 7)(s)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			checkDisk(t, dir, "after one more", state(s))
		})
	}
}

// Run writes a change within its delay, with one fdatasync for the changes
// that came meanwhile, and writes nothing while nothing changes.
func TestRunWritesChangesSoonAndIdleNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer crash(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, Policy{Delay: 5 * time.Millisecond})
	}()
	defer func() { cancel(); <-done }()

	written := func(n int64) func() bool {
		return func() bool { w, _, _ := s.Stats(); return w >= n }
	}
	for i := range uint64(100) {
		set(i, int64(i))(s)
	}
	if !waitUntil(time.Minute, written(1)) {
		t.Fatal("changes not written")
	}
	// A burst of changes within the delay shares flushes: far fewer
	// than one each.
	if w, _, _ := s.Stats(); w > 50 {
		t.Errorf("%d flushes for 100 changes made at once", w)
	}
	if !waitUntil(time.Minute, func() bool { return len(reopened(t, dir)) == 100 }) {
		t.Fatal("changes not on disk")
	}
	w0, s0 := s.Syncs(), s.Syncs()
	writes0, _, _ := s.Stats()
	time.Sleep(100 * time.Millisecond) // twenty delays with nothing changed
	if w1, _, _ := s.Stats(); w1 != writes0 || s.Syncs() != s0 {
		t.Errorf("idle store wrote: %d flushes, %d syncs since", w1-writes0, s.Syncs()-w0)
	}
	set(7, 1000)(s)
	if !waitUntil(time.Minute, func() bool {
		for _, e := range reopened(t, dir) {
			if e.ID.Ino == 7 && e.Offset == 1000 {
				return true
			}
		}
		return false
	}) {
		t.Fatal("a change after an idle spell was not written")
	}
}

// With Policy.Bytes, a change that moves offsets by less waits for more
// (here up to MaxDelay, an hour): offsets moving by Bytes in all, or a
// cursor, are written at Delay. A quiet agent then writes about once per
// MaxDelay rather than at every acknowledgement.
func TestRunWaitsForBytes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer crash(s)
	set(1, 0)(s)
	set(2, 0)(s)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, Policy{Delay: time.Millisecond, Bytes: 1000, MaxDelay: time.Hour})
	}()
	defer func() { cancel(); <-done }()
	onDisk := func(ino uint64, off int64) func() bool {
		return func() bool {
			for _, e := range reopened(t, dir) {
				if e.ID.Ino == ino && e.Offset == off {
					return true
				}
			}
			return false
		}
	}

	w0, _, _ := s.Stats()
	set(1, 600)(s)
	time.Sleep(100 * time.Millisecond) // a hundred delays
	if w, _, _ := s.Stats(); w != w0 {
		t.Errorf("600 bytes of 1000 written after the delay: %d flushes", w-w0)
	}
	set(2, 400)(s) // 1000 in all
	if !waitUntil(time.Minute, func() bool { w, _, _ := s.Stats(); return w > w0 }) {
		t.Fatal("offsets that moved by Bytes not written")
	}
	if !onDisk(2, 400)() || !onDisk(1, 600)() {
		t.Error("offsets that moved by Bytes not on disk")
	}

	w0, _, _ = s.Stats()
	set(1, 700)(s)
	time.Sleep(100 * time.Millisecond)
	if w, _, _ := s.Stats(); w != w0 {
		t.Errorf("100 bytes written after the delay: %d flushes", w-w0)
	}
	s.Set(Entry{Input: "journal", Path: "journal", Offset: 1, Cursor: "s=1", Updated: time.Unix(1, 0)})
	if !waitUntil(time.Minute, onDisk(1, 700)) {
		t.Fatal("a cursor's change not written at the delay")
	}
}

// Sync has what was recorded before it on disk when it returns, without
// Run and whatever its delay.
func TestSyncWritesAtOnce(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer crash(s)
	set(1, 10)(s)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	equalEntries(t, "after Sync", reopened(t, dir), state(s))
	// What is on disk already is not written again: the harvesters of
	// many files opened together share the flush that wrote them.
	w0, _, _ := s.Stats()
	syncs := s.Syncs()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if w, _, _ := s.Stats(); w != w0 || s.Syncs() != syncs {
		t.Errorf("Sync with nothing new wrote: %d flushes, %d syncs", w-w0, s.Syncs()-syncs)
	}
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// A flush of thousands of changes (a start-up, a snapshot) leaves no
// scratch of their size to the store: every file would otherwise cost its
// encoding for as long as the agent runs.
func TestFlushLetsGoOfLargeScratch(t *testing.T) {
	s, err := Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es := manyEntries(10_000)
	for _, e := range es {
		s.Set(e)
	}
	// A record larger than a chunk grows the encoding buffer to hold it.
	s.Set(Entry{Input: "journal", Path: "journal", Offset: 1, Cursor: strings.Repeat("c", 2*keepScratch), Updated: time.Unix(1, 0)})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, e := range es[:10] {
		e.Offset++
		s.Set(e)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if c := cap(s.buf); c > keepScratch {
		t.Errorf("encoding scratch of %d bytes kept", c)
	}
	if c := cap(s.recs) * int(unsafe.Sizeof(Entry{})); c > keepScratch {
		t.Errorf("records scratch of %d bytes kept", c)
	}
	for _, e := range es[:10] {
		if got, ok := s.Get(e.Key()); !ok || got.Offset != e.Offset+1 {
			t.Errorf("%v: %+v, %v", e.Key(), got, ok)
		}
	}
}

// A flush streams what it encodes through a buffer of bounded size: beyond
// the copy of the records it takes (one Entry each, taken together so that
// the flush holds one instant's state), what it allocates does not grow
// with the records it writes, journal or snapshot. At start-up, when every
// one of many files is set at once, the garbage of whole-flush buffers
// would otherwise set the agent's peak memory.
func TestFlushAllocationBounded(t *testing.T) {
	const n = 10_000
	const bound = n*int(unsafe.Sizeof(Entry{})) + 256<<10
	for _, name := range []string{"journal", "snapshot"} {
		snapshot := name == "snapshot"
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			s.minCompact = 1 << 40 // never compacted but when asked
			es := manyEntries(n)
			change := func() {
				for i := range es {
					es[i].Offset++
					s.Set(es[i])
				}
			}
			// The first flush creates the journal and the scratch
			// kept; the one measured then changes every entry.
			change()
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			change()
			s.compact = snapshot
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			got := after.TotalAlloc - before.TotalAlloc
			if got > uint64(bound) {
				t.Errorf("a flush of %d records allocated %d bytes, want at most %d", n, got, bound)
			}
			t.Logf("a flush of %d records allocated %d bytes, %d of them the records' copy", n, got, n*int(unsafe.Sizeof(Entry{})))
			equalEntries(t, "on disk", reopened(t, filepath.Dir(s.path)), state(s))
		})
	}
}

// An entry that cannot be encoded (a time RFC 3339 cannot hold) fails the
// flush, wherever it comes among the chunks written, and leaves the
// checkpoint on disk as it was; once it can be, the next flush writes
// everything.
func TestFlushOfUnencodableEntry(t *testing.T) {
	for _, name := range []string{"journal", "snapshot"} {
		snapshot := name == "snapshot"
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			defer crash(s)
			s.minCompact = 1 << 40
			es := manyEntries(1000) // several chunks
			for _, e := range es {
				s.Set(e)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			good := state(s)
			for i := range es {
				es[i].Offset++
				s.Set(es[i])
			}
			bad := es[len(es)/2]
			bad.Updated = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			s.Set(bad)
			s.compact = snapshot
			err := s.Flush()
			// (The snapshot's write and temp file are what the
			// "write checkpoint" and temp-file checks are about; an
			// append reports neither.)
			if err == nil || !strings.Contains(err.Error(), "encode checkpoint") || strings.Contains(err.Error(), "write checkpoint") {
				t.Fatalf("flush: %v, want an encoding error", err)
			}
			checkDisk(t, dir, "after the failed flush", good)
			for _, n := range dirNames(t, dir) {
				if ok, _ := filepath.Match(tempPattern, n); ok {
					t.Errorf("%s left behind", n)
				}
			}
			s.Set(es[len(es)/2])
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			checkDisk(t, dir, "after the next flush", state(s))
		})
	}
}
