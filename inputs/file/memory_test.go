package file

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// BenchmarkIdleFileHeap reports the heap an input holds per open, idle
// file (heap-B/file): 2,000 files with a line each, all read, delivered
// and parked, the checkpoint flushed, idle read blocks let go of; the heap
// of the input, its checkpoint store and the files' descriptors, after a
// GC, over the heap before they were opened. Run it with -benchtime=1x;
// with IDLE_HEAP_PROFILE=FILE and -memprofilerate=1, it also writes the
// heap profile of that moment to FILE, for the bytes by structure
// (go tool pprof -sample_index=inuse_space -list newHarvester FILE).
func BenchmarkIdleFileHeap(b *testing.B) {
	const files = 2000
	for range b.N {
		b.ReportMetric(idleFileHeap(b, files), "heap-B/file")
	}
}

func idleFileHeap(b *testing.B, files int) float64 {
	dir := b.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		b.Fatal(err)
	}
	for k := range files {
		line := fmt.Sprintf("a line of file %05d\n", k)
		if err := os.WriteFile(filepath.Join(logs, fmt.Sprintf("app-%05d.log", k)), []byte(line), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig(logs)
	cfg.MaxOpenFiles = files + 100
	var delivered atomic.Int64
	// One goroutine acknowledges, as an output would: a goroutine per
	// chunk would leave the runtime holding as many goroutine records
	// (never freed) as ran at once, a figure that varies from run to run.
	acks := make(chan *logagent.Chunk, files)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for c := range acks {
			c.Ack(len(c.Messages))
		}
	}()
	publish := func(ctx context.Context, c *logagent.Chunk) error {
		c.Expect(1)
		delivered.Add(int64(len(c.Messages)))
		acks <- c
		return nil
	}
	before := heapInUse()
	store, err := checkpoint.Open(filepath.Join(dir, "data"), log)
	if err != nil {
		b.Fatal(err)
	}
	in := New(cfg, store, NewBudget(64<<20), publish, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
		close(acks)
		<-acked
		store.Close()
	}()
	waitFor(b, "every line delivered", func() bool { return delivered.Load() == int64(files) })
	waitFor(b, "every file parked", func() bool { return parkedCount(in) == files })
	waitFor(b, "every offset committed", func() bool {
		for _, f := range in.Files() {
			if f.Committed == 0 {
				return false
			}
		}
		return true
	})
	if err := store.Flush(); err != nil {
		b.Fatal(err)
	}
	// Read blocks let go of are kept for reuse a while, whatever the
	// number of files: not counted.
	later := time.Now().Add(idleBlockLife)
	in.env.mini.trim(later)
	in.env.tiny.trim(later)
	in.env.small.trim(later)
	in.env.large.trim(later)
	// The least of a few looks: a scan or a checkpoint flush the input
	// runs meanwhile holds memory while it runs, not per file.
	after := heapInUse()
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		after = min(after, heapInUse())
	}
	if p := os.Getenv("IDLE_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	runtime.KeepAlive(in)
	runtime.KeepAlive(store)
	return float64(after-before) / float64(files)
}

// heapInUse is the bytes of live heap objects, after a GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A harvester is held per open file: it fits the 384-byte size class. A
// field more takes it to 416 bytes a file: keep it under, by moving what
// is used only while a file is read to where an idle file does not hold it
// (as the read block, dropped when idle, and the wake channel, let go of
// at park), or what only some files need to harvesterRare, or say in the
// commit why the 32 bytes a file are worth it.
func TestHarvesterSize(t *testing.T) {
	if n := unsafe.Sizeof(harvester{}); n > 384 {
		t.Errorf("a harvester is %d bytes, over the 384-byte size class", n)
	}
}

// A tracker is held per open file too: it fits the 112-byte size class
// (its input's part of the checkpoint entry is shared, see fileCheckpoint).
func TestTrackerSize(t *testing.T) {
	if n := unsafe.Sizeof(tracker{}); n > 112 {
		t.Errorf("a tracker is %d bytes, over the 112-byte size class", n)
	}
}
