package checkpoint

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

// FuzzDecode feeds the snapshot and journal decoders what a damaged or
// forged data directory may hold: they never panic, a failure is a
// *CorruptError (the agent stops, naming the file), and what they accept
// holds only valid entries that survive being written and read again.
func FuzzDecode(f *testing.F) {
	entries := []Entry{entry("/a.log", 1, 10), entry("/b \"q\"\n.log", 2, 20)}
	snap, err := appendFile(nil, entries, 3, time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	j, _ := appendSet(nil, &Entry{Input: "in", Path: "/c.log", Offset: 5, Updated: time.Unix(1, 0).UTC()})
	j = appendDelete(j, entries[0].Key())
	j = appendCommit(j, 2)
	f.Add(snap, j)
	f.Add(snap, j[:len(j)-3])           // torn commit
	f.Add(snap[:len(snap)/2], []byte{}) // torn snapshot
	f.Add([]byte(`{"version":1,"files":[{"input":"","offset":-1}]}`), []byte(`{"commit":0}`+"\n"))
	f.Add([]byte(`{"version":1}`), []byte(`{"set":{"input":"x"},"del":{"input":"x"}}`+"\n{\"commit\":1}\n"))
	f.Fuzz(func(t *testing.T, snap, journal []byte) {
		s, err := parseSnapshot("s", snap)
		if err != nil {
			if ce := (*CorruptError)(nil); !errors.As(err, &ce) {
				t.Fatalf("snapshot error %v is not a CorruptError", err)
			}
			return
		}
		got, err := replay("j", journal, s.Files)
		if err != nil {
			if ce := (*CorruptError)(nil); !errors.As(err, &ce) {
				t.Fatalf("journal error %v is not a CorruptError", err)
			}
			return
		}
		for _, e := range got {
			if err := validEntry(e); err != nil {
				t.Fatalf("accepted an invalid entry %+v: %v", e, err)
			}
		}
		now := time.Now()
		data, err := appendFile(nil, got, s.Journal, now)
		if err != nil {
			return // a time RFC 3339 cannot hold: refused when written, never torn
		}
		// As a flush writes it, a chunk at a time.
		var w bytes.Buffer
		c := newChunker(&w, nil)
		c.size = 1 + len(journal)%128
		if err := c.snapshot(got, s.Journal, now); err != nil || !bytes.Equal(w.Bytes(), data) {
			t.Fatalf("written in chunks of %d: %v\n%s\nwant\n%s", c.size, err, w.Bytes(), data)
		}
		again, err := parseSnapshot("again", data)
		if err != nil {
			t.Fatalf("a snapshot written from what was read does not parse: %v\n%s", err, data)
		}
		if !slices.EqualFunc(again.Files, got, sameEntry) || again.Journal != s.Journal {
			t.Fatalf("written and read again:\n%+v\nwant\n%+v", again.Files, got)
		}
	})
}
