package agent

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs/file"
)

// unknown stands for a rate not measured (nil) in TestMonitorFiles.
const unknown = -1.0

// TestMonitorFiles plays a sequence of looks (Status) and ticks (the
// once-a-second sample) on a monitor, with the committed offsets of the
// files read at each, and checks which file rates are known, their values,
// and that the files are read only while someone looks.
func TestMonitorFiles(t *testing.T) {
	type step struct {
		at    float64            // seconds since the start
		look  bool               // a Status; else a tick
		files map[uint64]int64   // inode: committed offset, of the files read at
		want  map[uint64]float64 // inode: rate then (unknown: nil)
		calls int                // times the files were read so far
	}
	offs := func(kv ...int64) map[uint64]int64 {
		m := map[uint64]int64{}
		for i := 0; i < len(kv); i += 2 {
			m[uint64(kv[i])] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nobody looks: the files are never read", []step{
			{at: 1, files: offs(1, 100)},
			{at: 2, files: offs(1, 200)},
			{at: 3, files: offs(1, 300), want: map[uint64]float64{1: unknown}},
		}},
		{"the first look has no rate, not 0; the next has", []step{
			{at: 10, look: true, files: offs(1, 0, 2, 500), want: map[uint64]float64{1: unknown, 2: unknown, 3: unknown}, calls: 1},
			{at: 11, files: offs(1, 100, 2, 500), calls: 2},
			{at: 12, look: true, files: offs(1, 200, 2, 500), want: map[uint64]float64{1: 100, 2: 0, 3: 0}, calls: 2},
		}},
		{"a second look less than minRateSpan later has none yet", []step{
			{at: 10, look: true, files: offs(1, 0), calls: 1},
			{at: 10.2, look: true, files: offs(1, 50), want: map[uint64]float64{1: unknown, 2: unknown}, calls: 1},
			{at: 10.5, look: true, files: offs(1, 100), want: map[uint64]float64{1: 200, 2: 0}, calls: 1},
		}},
		{"the rate is over the last rateWindow samples", []step{
			{at: 0, look: true, files: offs(1, 0), calls: 1},
			{at: 1, files: offs(1, 1000)},
			{at: 2, files: offs(1, 2000)},
			{at: 3, files: offs(1, 3000)},
			{at: 4, files: offs(1, 4000)},
			{at: 5, files: offs(1, 5000)},
			{at: 6, files: offs(1, 5000)},
			{at: 7, files: offs(1, 5000)},
			{at: 7, look: true, files: offs(1, 5000), want: map[uint64]float64{1: 3000.0 / 5}, calls: 8},
		}},
		{"a file idle drops out; it is 0 while the files are sampled", []step{
			{at: 0, look: true, files: offs(1, 0, 2, 0), calls: 1},
			{at: 1, files: offs(2, 10)},
			{at: 1.5, look: true, files: offs(2, 10), want: map[uint64]float64{1: 0, 2: 10.0 / 1.5}, calls: 2},
		}},
		{"a truncated file starts over", []step{
			{at: 0, look: true, files: offs(1, 1000), calls: 1},
			{at: 1, files: offs(1, 2000)},
			{at: 2, files: offs(1, 10)},
			{at: 2.2, look: true, files: offs(1, 10), want: map[uint64]float64{1: unknown}},
			{at: 3, files: offs(1, 110)},
			{at: 3, look: true, files: offs(1, 110), want: map[uint64]float64{1: 100}, calls: 4},
		}},
		{"sampling stops statusLook after the last look, and starts again", []step{
			{at: 0, look: true, files: offs(1, 0), calls: 1},
			{at: 1, files: offs(1, 100)},
			{at: 30, look: true, files: offs(1, 100), calls: 2},
			{at: 89, files: offs(1, 100), calls: 3},
			{at: 90, files: offs(1, 100), want: map[uint64]float64{1: unknown, 2: unknown}, calls: 3},
			{at: 91, files: offs(1, 100), calls: 3},
			{at: 95, look: true, files: offs(1, 100), want: map[uint64]float64{1: unknown, 2: unknown}, calls: 4},
			{at: 96, files: offs(1, 150), calls: 5},
			{at: 96, look: true, files: offs(1, 150), want: map[uint64]float64{1: 50, 2: 0}, calls: 5},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor()
			t0 := time.Unix(1_000_000, 0)
			calls := 0
			for i, st := range tc.steps {
				now := t0.Add(time.Duration(st.at * float64(time.Second)))
				files := func(yield func(string, []file.FileStatus)) {
					calls++
					var fs []file.FileStatus
					for ino, off := range st.files {
						fs = append(fs, file.FileStatus{ID: logagent.FileID{Dev: 1, Ino: ino}, Committed: off})
					}
					yield("app", fs)
				}
				if st.look {
					m.look(now, files)
				} else {
					m.tick(now, files)
				}
				if st.calls > 0 && calls != st.calls {
					t.Errorf("step %d (%gs): files read %d times, want %d", i, st.at, calls, st.calls)
				}
				for ino, want := range st.want {
					got := m.fileRate(fileKey{"app", 1, ino}, now, st.files[ino])
					switch {
					case want == unknown && got != nil:
						t.Errorf("step %d (%gs): file %d rate %v, want none", i, st.at, ino, *got)
					case want != unknown && got == nil:
						t.Errorf("step %d (%gs): file %d has no rate, want %v", i, st.at, ino, want)
					case want != unknown && math.Abs(*got-want) > 1e-9:
						t.Errorf("step %d (%gs): file %d rate %v, want %v", i, st.at, ino, *got, want)
					}
				}
			}
			if last := tc.steps[len(tc.steps)-1]; last.calls == 0 && calls != 0 {
				t.Errorf("files read %d times, want never", calls)
			}
		})
	}
}

// TestStatusFileRate: with an agent running, the files are not sampled
// until /status is asked for; its first answer has no rate for a file
// (omitted, not 0), a later one has; statusLook after, the agent stops
// sampling them.
func TestStatusFileRate(t *testing.T) {
	look := statusLook
	t.Cleanup(func() { statusLook = look }) // after the agent stopped
	statusLook = 3 * time.Second

	dir := t.TempDir()
	writeNumbered(t, filepath.Join(dir, "logs", "a.log"), 10)
	a, url, _ := serveAgent(t, strings.ReplaceAll(healthyConfig, "{dir}/logs", dir+"/logs"))
	mon := func() (files int, sampled bool) {
		a.mon.mu.Lock()
		defer a.mon.mu.Unlock()
		return len(a.mon.files), !a.mon.filesSince.IsZero()
	}
	// Read from the input, not Status: that would be a look.
	pollUntil(t, "the file delivered to its end", func() bool {
		_, inputs, _ := a.running()
		fs := inputs[0].in.Files()
		return len(fs) == 1 && fs[0].Size > 0 && fs[0].Committed == fs[0].Size
	})
	// The watch goroutine samples every second: give it two.
	started := time.Now()
	pollUntil(t, "two samples", func() bool {
		a.mon.mu.Lock()
		defer a.mon.mu.Unlock()
		s := a.mon.counters[counterKey{"out/messages", "local"}]
		return s != nil && s.n >= 2 && s.t[(s.next+len(s.t)-1)%len(s.t)].After(started)
	})
	if n, sampled := mon(); n != 0 || sampled {
		t.Fatalf("nobody looked, yet %d files sampled (sampling %v)", n, sampled)
	}

	rate := func() (string, *float64) {
		_, body := httpGet(t, url+"/status")
		var st Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return body, st.Inputs[0].Files[0].Rate
	}
	first := time.Now()
	body, r := rate()
	if r != nil || strings.Contains(body, `"rate"`) {
		t.Fatalf("first /status: a rate for a file not measured yet:\n%s", body)
	}
	if n, _ := mon(); n != 1 {
		t.Errorf("%d files sampled after a look, want 1", n)
	}
	for time.Since(first) < minRateSpan {
		time.Sleep(minRateSpan)
	}
	if _, r := rate(); r == nil || *r != 0 {
		t.Errorf("later /status: rate %v, want 0 (every line delivered before the first look)", r)
	}
	pollUntil(t, "the files no longer sampled", func() bool {
		n, sampled := mon()
		return n == 0 && !sampled
	})
}
