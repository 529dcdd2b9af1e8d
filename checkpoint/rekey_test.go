package checkpoint

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// Fingerprints extended (same path, new key), chained within one flush,
// swapped back to a key another entry left, and mixed with offsets moving
// and entries added or removed: after every flush, appended or written as
// a snapshot, the checkpoint holds what the store holds.
func TestStoreRekey(t *testing.T) {
	s := openTestStore(t)
	check := func(step int) {
		t.Helper()
		flushAndCompare(t, s, step)
	}
	const files = 40
	for k := 0; k < files; k++ {
		e := entry(fmt.Sprintf("/f%02d.log", k), uint64(k), 0)
		e.ID.FingerprintLen = 10
		s.Set(e)
	}
	// Two entries of one file and path, of two fingerprint lengths: the
	// order of neighbours depends on the length.
	twin := entry("/f00.log", 0, 5)
	twin.ID.FingerprintLen = 12
	s.Set(twin)
	check(-1)
	f00 := entry("/f00.log", 0, 0)
	f00.ID.FingerprintLen = 10
	grown := f00
	grown.ID.FingerprintLen = 13 // now sorts after its twin
	s.Rekey(f00.Key(), grown)
	check(-1)
	s.Rekey(grown.Key(), f00)
	check(-1)
	r := rand.New(rand.NewSource(4))
	for step := 0; step < 2000; step++ {
		all := s.Entries("")
		slices.SortFunc(all, compareEntries)
		e := all[r.Intn(len(all))]
		switch op := r.Intn(20); {
		case op < 8: // grown: fingerprint extended
			n := e
			n.ID.FingerprintLen += 1 + r.Intn(3)
			n.Offset += 10
			s.Rekey(e.Key(), n)
		case op < 9: // shrunk back (a key another entry may just have left)
			n := e
			n.ID.FingerprintLen = max(1, n.ID.FingerprintLen-1)
			s.Rekey(e.Key(), n)
		case op < 16: // an offset moves
			e.Offset++
			s.Set(e)
		case op < 17:
			s.Delete(e.Key())
		case op < 18:
			n := entry(fmt.Sprintf("/f%02d.log", r.Intn(files)), uint64(1000+step), 1)
			s.Set(n)
		default: // renamed
			e.Path += ".1"
			s.Set(e)
		}
		if r.Intn(5) == 0 {
			check(step)
		}
	}
	check(-2)
}

// BenchmarkStoreFlushGrowing is BenchmarkStoreFlush with files still short
// of a full fingerprint: each line written extends it, so each moved entry
// is rekeyed.
func BenchmarkStoreFlushGrowing(b *testing.B) {
	benchFlush(b, 100, 0, func(s *Store, e *Entry) {
		old := e.Key()
		e.Offset += 120
		e.ID.FingerprintLen = e.ID.FingerprintLen%1000 + 120
		s.Rekey(old, *e)
	})
}
