package checkpoint

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

// manyEntries returns n entries shaped like those of the "many files"
// scenario: one input, paths in a few directories, offsets and times that
// differ per file.
func manyEntries(n int) []Entry {
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	out := make([]Entry, n)
	for i := range out {
		ino := uint64(1_000_000 + i*7919%n)
		out[i] = Entry{
			Input:   "app-logs",
			ID:      logagent.FileID{Dev: 64769, Ino: ino, Fingerprint: ino * 0x9E3779B97F4A7C15, FingerprintLen: 1024},
			Path:    fmt.Sprintf("/var/log/app/service-%02d/worker-%05d.log", i%37, i*7919%n),
			Offset:  int64(i) * 7_345_129,
			Updated: base.Add(time.Duration(i) * 1_234_567_891),
		}
	}
	return out
}

// cpuTime is the CPU time, user and system, the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op: the write's fsyncs make its wall time depend on
// the disk, and what the "many files" scenario pays for is CPU.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkSnapshot writes a snapshot of 10,000 files, as a compaction does.
func BenchmarkSnapshot(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	entries := manyEntries(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if err := saveSnapshot(path, entries, 1); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkStoreFlush is the store's one-second flush with 10,000 files each
// getting a line a minute: about 1/60 of the offsets moved since the last
// flush.
func BenchmarkStoreFlush(b *testing.B) {
	benchFlush(b, 1024, 0, moveOffset)
}

// BenchmarkStoreFlushNewFiles is BenchmarkStoreFlush with a new file (a new
// key) appearing every 5 flushes, as when logs rotate among many files.
func BenchmarkStoreFlushNewFiles(b *testing.B) {
	benchFlush(b, 1024, 5, moveOffset)
}

func moveOffset(s *Store, e *Entry) {
	e.Offset += 120
	e.Updated = e.Updated.Add(time.Minute)
	s.Set(*e)
}

// benchFlush measures flushes of a store of 10,000 entries, with
// fingerprints fpLen bytes long, after change was made to 1/60 of them and,
// every newEvery flushes (never if 0), a new entry was added. It reports
// the CPU time and the bytes written per flush.
func benchFlush(b *testing.B, fpLen, newEvery int, change func(s *Store, e *Entry)) {
	s, err := Open(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	entries := manyEntries(10_000)
	for i := range entries {
		entries[i].ID.FingerprintLen = fpLen
		s.Set(entries[i])
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	const perFlush = 10_000 / 60
	next := 0
	added := manyEntries(1) // a template for new files
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	written := writtenBytes(b)
	for i := 0; i < b.N; i++ {
		for j := 0; j < perFlush; j++ {
			change(s, &entries[next])
			next = (next + 1) % len(entries)
		}
		if newEvery > 0 && i%newEvery == 0 {
			e := added[0]
			e.ID.Ino = uint64(2_000_000 + i)
			e.ID.Fingerprint = e.ID.Ino * 0x9E3779B97F4A7C15
			e.ID.FingerprintLen = fpLen
			e.Path = fmt.Sprintf("/var/log/app/service-%02d/new-%07d.log", i%37, i)
			s.Set(e)
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
	b.ReportMetric(float64(writtenBytes(b)-written)/float64(b.N), "written-B/op")
}

// writtenBytes is what the process passed to write(2) and the like so far
// (wchar of /proc/self/io).
func writtenBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no wchar in /proc/self/io")
	return 0
}

// BenchmarkStoreFlushAll is a flush of 10,000 changed files, as at
// start-up when every file is set at once: appended to the journal, or
// written as a snapshot (a compaction).
func BenchmarkStoreFlushAll(b *testing.B) {
	for _, name := range []string{"journal", "snapshot"} {
		snapshot := name == "snapshot"
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.minCompact = 1 << 62 // compacted only when asked
			entries := manyEntries(10_000)
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime(b)
			for i := 0; i < b.N; i++ {
				for j := range entries {
					entries[j].Offset++
					s.Set(entries[j])
				}
				s.compact = snapshot
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}
