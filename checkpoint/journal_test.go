package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func equalEntries(t *testing.T, what string, got, want []Entry) {
	t.Helper()
	if !slices.EqualFunc(got, want, sameEntry) {
		t.Fatalf("%s:\n%+v\nwant\n%+v", what, got, want)
	}
}

func journalPath(dir string, gen uint64) string { return filepath.Join(dir, journalName(gen)) }

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
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
