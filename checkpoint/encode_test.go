package checkpoint

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logagent/logagent"
)

// awkwardEntries are entries whose encoding is easy to get wrong.
func awkwardEntries() []Entry {
	t0 := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)
	id := logagent.FileID{Dev: 2049, Ino: 131, Fingerprint: 0xdeadbeefcafebabe, FingerprintLen: 1024}
	paths := []string{
		"",
		"/var/log/plain.log",
		`/var/log/"quoted".log`,
		`C:\logs\back\slash.log`,
		"/var/log/new\nline\r\ttab\b\f.log",
		"/var/log/ctl\x00\x01\x1f\x7f.log",
		"/var/log/inv\xffalid\xc3.log",
		"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80", // invalid sequences, a surrogate
		"/var/log/unicode-日本語-émoji-😀.log",
		"/var/log/sep\u2028\u2029.log",
		"/var/log/html<&>.log",
		"/var/log/trailing\\",
		"\"",
		"\xff",
		strings.Repeat("/long", 2000),
	}
	var out []Entry
	for i, p := range paths {
		e := Entry{Input: "in", ID: id, Path: p, Offset: int64(i), Updated: t0}
		e.ID.Ino += uint64(i)
		out = append(out, e)
	}
	out = append(out,
		Entry{Input: `in"put\` + "\n\xfe", ID: id, Path: "/a", Offset: math.MaxInt64, Updated: time.Time{}},
		Entry{Input: "zero", Path: "/zero"},
		Entry{Input: "max", ID: logagent.FileID{Dev: math.MaxUint64, Ino: math.MaxUint64, Fingerprint: math.MaxUint64, FingerprintLen: math.MaxInt},
			Path: "/max", Offset: math.MaxInt64, Updated: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		Entry{Input: "min", ID: logagent.FileID{FingerprintLen: math.MinInt}, Path: "/min", Offset: math.MinInt64,
			Updated: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		Entry{Input: "zone", Path: "/east", Updated: time.Date(2024, 1, 1, 5, 30, 0, 1000, time.FixedZone("IST", 5*3600+30*60))},
		Entry{Input: "zone", Path: "/west", Updated: time.Date(2024, 1, 1, 5, 30, 0, 0, time.FixedZone("", -(9*3600+30*60)))},
		Entry{Input: "zone", Path: "/seconds", Updated: time.Date(2024, 1, 1, 5, 30, 0, 0, time.FixedZone("LMT", 3661))},
		Entry{Input: "zone", Path: "/monotonic", Updated: time.Now()},
		Entry{Input: "journal", Path: "journal", Offset: 7, Updated: t0,
			Cursor: "s=0e34d3e36f2d404e803a1e4e820a49b4;i=2;b=0123456789abcdef0123456789abcdef;m=3e9;t=60a24181e4001;x=60f66565e8276860"},
		Entry{Input: "journal", Path: "journal:/odd", Updated: t0, Cursor: "\"\\\n\xff\u2028"},
	)
	return out
}

// jsonEntry is how encoding/json, the encoder before appendEntry, writes e.
func jsonEntry(e *Entry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// legacyFile is the snapshot as written with encoding/json.
func legacyFile(sorted []Entry, gen uint64, written time.Time) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"version\":%d,\"written\":%q,\"journal\":%d,\"files\":[", formatVersion, written.UTC().Format(time.RFC3339Nano), gen)
	for i := range sorted {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		b, err := jsonEntry(&sorted[i])
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	buf.WriteString("\n]}\n")
	return buf.Bytes(), nil
}

// sameEntry compares entries as read back: times by instant and offset
// (Load gives each its own *time.Location).
func sameEntry(a, b Entry) bool {
	_, aoff := a.Updated.Zone()
	_, boff := b.Updated.Zone()
	ta, tb := a.Updated, b.Updated
	a.Updated, b.Updated = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && aoff == boff
}

func checkEntry(t testing.TB, e Entry) {
	t.Helper()
	want, wantErr := jsonEntry(&e)
	got, err := appendEntry([]byte("prefix"), &e)
	if wantErr != nil {
		if err == nil {
			t.Fatalf("%+v: appendEntry succeeded, encoding/json failed: %v", e, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%+v: appendEntry: %v", e, err)
	}
	got = bytes.TrimPrefix(got, []byte("prefix"))
	if !bytes.Equal(got, want) {
		t.Fatalf("%+v:\nappendEntry   %s\nencoding/json %s", e, got, want)
	}
	// What Load reads back.
	var back, jsonBack Entry
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%+v: %s does not decode: %v", e, got, err)
	}
	json.Unmarshal(want, &jsonBack)
	if !sameEntry(back, jsonBack) {
		t.Fatalf("%+v: reads back as %+v, the encoding/json one as %+v", e, back, jsonBack)
	}
	// Exactly e, unless e holds what JSON or RFC 3339 cannot: invalid
	// UTF-8, a zone offset in seconds.
	_, zone := e.Updated.Zone()
	if utf8.ValidString(e.Input) && utf8.ValidString(e.Path) && utf8.ValidString(e.Cursor) && zone%60 == 0 && !sameEntry(back, e) {
		t.Fatalf("%+v: reads back as %+v", e, back)
	}
}

func TestAppendEntryIsEncodingJSON(t *testing.T) {
	for _, e := range awkwardEntries() {
		checkEntry(t, e)
	}
	// Every byte, alone and among others.
	for c := 0; c < 256; c++ {
		checkEntry(t, Entry{Input: "in", Path: string([]byte{byte(c)})})
		checkEntry(t, Entry{Input: "in", Path: "a" + string([]byte{byte(c)}) + "é"})
	}
	// Times RFC 3339 cannot hold fail as they did.
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
	} {
		e := Entry{Input: "in", Path: "/x", Updated: tm}
		if _, err := appendEntry(nil, &e); err == nil {
			t.Errorf("time %v encoded", tm)
		}
		checkEntry(t, e)
	}
}

// The snapshot is, byte for byte, the file encoding/json writes, and its
// journal lines are too.
func TestSnapshotIsEncodingJSON(t *testing.T) {
	entries := awkwardEntries()
	slices.SortFunc(entries, compareEntries)
	written := time.Date(2024, 5, 1, 1, 2, 3, 450000000, time.FixedZone("", 3600))
	want, err := legacyFile(entries, math.MaxUint64, written)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendFile(nil, entries, math.MaxUint64, written)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file differs from the encoding/json one:\n%s\n%s", got, want)
	}
	empty, _ := appendFile(nil, nil, 0, written)
	if wantEmpty, _ := legacyFile(nil, 0, written); !bytes.Equal(empty, wantEmpty) {
		t.Fatalf("empty file %q, want %q", empty, wantEmpty)
	}
	if !json.Valid(got) {
		t.Fatal("not valid JSON")
	}
}

// jsonLine is how encoding/json writes the journal line {name: v}.
func jsonLine(name string, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(map[string]any{name: v})
	return buf.Bytes(), err
}

func TestJournalLinesAreEncodingJSON(t *testing.T) {
	for _, e := range awkwardEntries() {
		want, wantErr := jsonLine("set", &e)
		got, err := appendSet([]byte("prefix"), &e)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%+v: appendSet: %v, encoding/json: %v", e, err, wantErr)
		}
		if err == nil && !bytes.Equal(bytes.TrimPrefix(got, []byte("prefix")), want) {
			t.Fatalf("appendSet\n%s\nencoding/json\n%s", got, want)
		}
		want, _ = jsonLine("del", e.Key())
		if got := appendDelete(nil, e.Key()); !bytes.Equal(got, want) {
			t.Fatalf("appendDelete\n%s\nencoding/json\n%s", got, want)
		}
	}
	for _, n := range []int{0, 1, 170, math.MaxInt} {
		want, _ := jsonLine("commit", n)
		if got := appendCommit(nil, n); !bytes.Equal(got, want) {
			t.Fatalf("appendCommit\n%s\nencoding/json\n%s", got, want)
		}
	}
}

func TestSnapshotLoadAwkwardEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var entries []Entry
	for _, e := range awkwardEntries() {
		if e.Offset >= 0 { // Load refuses the others
			entries = append(entries, e)
		}
	}
	rand.New(rand.NewSource(1)).Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	orig := slices.Clone(entries)
	if err := saveSnapshot(path, entries, 1); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(entries, orig, sameEntry) {
		t.Fatal("saveSnapshot reordered its argument")
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// What the encoding/json encoder would have given back.
	want := make([]Entry, len(entries))
	for i := range entries {
		b, _ := jsonEntry(&entries[i])
		json.Unmarshal(b, &want[i])
	}
	// The snapshot is sorted by the paths it was given; invalid UTF-8 read
	// back as U+FFFD may sort otherwise.
	slices.SortFunc(want, compareEntries)
	slices.SortFunc(got, compareEntries)
	if len(got) != len(want) {
		t.Fatalf("Load: %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameEntry(got[i], want[i]) {
			t.Errorf("Load: [%d] %+v, want %+v", i, got[i], want[i])
		}
	}
}

func FuzzAppendEntry(f *testing.F) {
	for _, e := range awkwardEntries() {
		_, off := e.Updated.Zone()
		f.Add(e.Input, e.Path, e.ID.Dev, e.ID.Ino, e.ID.Fingerprint, e.ID.FingerprintLen, e.Offset, e.Updated.Unix(), int64(e.Updated.Nanosecond()), off)
	}
	f.Fuzz(func(t *testing.T, input, path string, dev, ino, fp uint64, fpLen int, offset, sec, nsec int64, zone int) {
		e := Entry{Input: input, ID: logagent.FileID{Dev: dev, Ino: ino, Fingerprint: fp, FingerprintLen: fpLen},
			Path: path, Offset: offset, Updated: time.Unix(sec, nsec).In(time.FixedZone("", zone%(48*3600)))}
		checkEntry(t, e)
		e.Cursor = path // a journal input's entry
		checkEntry(t, e)
	})
}

// openTestStore opens a store in a temporary directory, closed at the end
// of the test. Its journal is compacted from 8 KiB on, so that flushes
// both append and write snapshots.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.minCompact = 8 << 10
	t.Cleanup(func() { s.Close() })
	return s
}

// flushAndCompare flushes s and checks that its checkpoint holds what s
// holds.
func flushAndCompare(t *testing.T, s *Store, step int) {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := s.Entries("")
	slices.SortFunc(want, compareEntries)
	if !slices.EqualFunc(got, want, sameEntry) {
		t.Fatalf("step %d: checkpoint holds\n%+v\nthe store\n%+v", step, got, want)
	}
}

// The store's flush writes what it holds through additions, offsets moved
// in place, renames, rekeys and deletions, with Sets racing the flushes.
func TestStoreFlushFollowsChanges(t *testing.T) {
	s := openTestStore(t)
	check := func(step int) {
		t.Helper()
		flushAndCompare(t, s, step)
	}
	r := rand.New(rand.NewSource(2))
	const files = 50
	for step := 0; step < 400; step++ {
		k := r.Intn(files)
		e := entry(fmt.Sprintf("/f%02d.log", k), uint64(k), int64(r.Intn(1000)))
		e.Updated = e.Updated.Add(time.Duration(step) * time.Second)
		switch op := r.Intn(10); {
		case op < 6: // an offset moves
			s.Set(e)
		case op < 7: // renamed
			e.Path = fmt.Sprintf("/f%02d.log.%d", k, r.Intn(3))
			s.Set(e)
		case op < 8: // fingerprint extended
			n := e
			n.ID.FingerprintLen++
			s.Rekey(e.Key(), n)
		case op < 9:
			s.Delete(e.Key())
		default: // same entry again
			if old, ok := s.Get(e.Key()); ok {
				s.Set(old)
			}
		}
		if r.Intn(4) == 0 {
			check(step)
		}
	}
	check(-1)

	// Offsets move while flushing.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := (g*7 + i) % files
				e := entry(fmt.Sprintf("/f%02d.log", k), uint64(k), int64(i))
				if i%97 == 0 {
					e.Path += ".1"
				}
				s.Set(e)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	check(-2)
}

// writeLog keeps what is written to it and how.
type writeLog struct {
	bytes.Buffer
	writes []int
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

// A chunker writes, a chunk at a time, the bytes the append functions
// give: whatever the chunk size, including records larger than a chunk.
func TestChunkerWritesTheSameBytes(t *testing.T) {
	sets := append(awkwardEntries(), manyEntries(1000)...)
	slices.SortFunc(sets, compareEntries)
	var dels []Key
	for _, e := range sets[:50] {
		dels = append(dels, e.Key())
	}
	written := time.Date(2024, 5, 1, 1, 2, 3, 450000000, time.UTC)
	wantSnap, err := appendFile(nil, sets, 7, written)
	if err != nil {
		t.Fatal(err)
	}
	var wantJournal []byte
	for i := range sets {
		if wantJournal, err = appendSet(wantJournal, &sets[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range dels {
		wantJournal = appendDelete(wantJournal, k)
	}
	wantJournal = appendCommit(wantJournal, len(sets)+len(dels))

	for _, size := range []int{1, 7, 100, 4096, 0} {
		for _, what := range []string{"snapshot", "journal"} {
			t.Run(fmt.Sprintf("%s, chunks of %d", what, size), func(t *testing.T) {
				var w writeLog
				cw := countingWriter{w: &w}
				c := newChunker(&cw, nil)
				c.size = size
				want := wantSnap
				var err error
				if what == "snapshot" {
					err = c.snapshot(sets, 7, written)
				} else {
					want = wantJournal
					err = c.journalFlush(sets, dels)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(w.Bytes(), want) {
					t.Fatalf("wrote %d bytes, differing from the %d the append functions give", w.Len(), len(want))
				}
				if cw.n != int64(len(want)) {
					t.Errorf("counted %d bytes, wrote %d", cw.n, len(want))
				}
				chunk := cmp.Or(size, chunkSize)
				for i, n := range w.writes[:len(w.writes)-1] {
					if n < chunk {
						t.Fatalf("write %d of %d: %d bytes, less than a chunk of %d", i, len(w.writes), n, chunk)
					}
				}
				if size == 0 && len(w.writes) < 2 {
					t.Errorf("%d bytes in %d write", len(want), len(w.writes))
				}
			})
		}
	}
}

// appendFile appends to b the whole snapshot of sorted, continued by the
// journal of generation gen, written at written: compact, one file per
// line, ending with a newline. It is the bytes chunker.snapshot writes,
// in one piece: the reference the tests compare them with.
func appendFile(b []byte, sorted []Entry, gen uint64, written time.Time) ([]byte, error) {
	b = appendFileHead(b, gen, written)
	for i := range sorted {
		var err error
		if b, err = appendFileEntry(b, sorted, i); err != nil {
			return b, err
		}
	}
	return appendFileTail(b), nil
}
