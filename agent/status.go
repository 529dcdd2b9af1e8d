package agent

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/logagent/logagent/inputs/file"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Status is what /status serves and `logagent status` shows: a snapshot of
// every input's files and every output's health and throughput.
type Status struct {
	Host       string           `json:"host"`
	Time       time.Time        `json:"time"`
	Started    time.Time        `json:"started"`
	Config     string           `json:"config,omitempty"`
	Inflight   InflightStatus   `json:"inflight"`
	Checkpoint CheckpointStatus `json:"checkpoint"`
	Inputs     []InputStatus    `json:"inputs"`
	Outputs    []OutputStatus   `json:"outputs"`
}

// InflightStatus is the max_inflight_bytes budget. ReservedBytes is what
// each input holds for itself alone (see file.Pool).
type InflightStatus struct {
	UsedBytes     int64 `json:"used_bytes"`
	LimitBytes    int64 `json:"limit_bytes"`
	ReservedBytes int64 `json:"reserved_bytes,omitempty"`
}

// CheckpointStatus tells how the checkpoint file is being written.
type CheckpointStatus struct {
	Path        string    `json:"path"`
	Writes      int64     `json:"writes"`
	Syncs       int64     `json:"syncs"`
	LastWritten time.Time `json:"last_written,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// InputStatus is one input and its open files.
type InputStatus struct {
	ID    string `json:"id"`
	Lines int64  `json:"lines"`
	// DroppedLines counts the messages include_lines and exclude_lines
	// dropped.
	DroppedLines int64   `json:"dropped_lines"`
	Bytes        int64   `json:"bytes"`
	LinesPerSec  float64 `json:"lines_per_sec"`
	BytesPerSec  float64 `json:"bytes_per_sec"`
	BytesBehind  int64   `json:"bytes_behind"`
	// InflightBytes is what the input's messages in flight hold of
	// max_inflight_bytes.
	InflightBytes int64 `json:"inflight_bytes,omitempty"`
	// WaitingFor lists the outputs the input's reading waits for, since
	// WaitingSince: its messages in flight fill its share of
	// max_inflight_bytes, or an output's queue is full. Empty while it
	// reads freely.
	WaitingFor   []string  `json:"waiting_for,omitempty"`
	WaitingSince time.Time `json:"waiting_since,omitzero"`
	// FilesOpen counts every open file; Files lists at most
	// MaxStatusFiles of them, those furthest behind.
	FilesOpen int `json:"files_open"`
	// DirsWatched and DirsPolled count the directories of the globs
	// inotify watches, and those polled (no inotify instance, or a
	// directory whose events do not come).
	DirsWatched int          `json:"dirs_watched"`
	DirsPolled  int          `json:"dirs_polled"`
	Files       []FileStatus `json:"files"`
}

// FileStatus is one open file. Offset is the committed offset: every byte
// before it is delivered to every output the input is routed to.
type FileStatus struct {
	Path    string  `json:"path"`
	State   string  `json:"state"`
	Offset  int64   `json:"offset"`
	Read    int64   `json:"read"`
	Size    int64   `json:"size"`
	Percent float64 `json:"percent"` // delivered: Offset of Size, 100 for an empty file
	Behind  int64   `json:"behind"`  // Size - Offset
	// Rate is the bytes per second the committed offset moved over the
	// last rateWindow seconds; nil (omitted) while not measured yet:
	// the files' offsets are sampled only while someone asks for the
	// status, from the first Status on (see monitor).
	Rate *float64 `json:"rate,omitempty"`
}

// OutputStatus is one output.
type OutputStatus struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Healthy bool   `json:"healthy"`
	// FailingSince is when sends started failing without a success since.
	FailingSince   time.Time    `json:"failing_since,omitzero"`
	LastError      string       `json:"last_error,omitempty"`
	Messages       int64        `json:"messages"`
	Bytes          int64        `json:"bytes"`
	Batches        int64        `json:"batches"`
	Retries        int64        `json:"retries"`
	Permanent      int64        `json:"permanent"`
	MessagesPerSec float64      `json:"messages_per_sec"`
	BytesPerSec    float64      `json:"bytes_per_sec"`
	Hosts          []HostStatus `json:"hosts,omitempty"`
}

// HostStatus is one host of an output that sends to a pool of hosts.
type HostStatus struct {
	Addr      string    `json:"addr"`
	Healthy   bool      `json:"healthy"`
	Failures  int       `json:"failures"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// hostLister is implemented by outputs that send to a pool of hosts
// (scribe, flume, kestrel).
type hostLister interface {
	Hosts() []hostpool.HostStatus
}

// Status returns a snapshot of the agent. Safe to call at any time, from
// any goroutine, while Run runs or not. It starts, or keeps on, the
// sampling of the files' offsets for their rates (see monitor).
func (a *Agent) Status() *Status {
	now := time.Now()
	cfg, inputs, runners := a.running()
	a.mon.look(now, readingOf(inputs))
	st := &Status{
		Host:     cfg.hostname(),
		Time:     now,
		Started:  a.mon.startedAt(),
		Config:   cfg.File,
		Inflight: InflightStatus{UsedBytes: a.pool.Used(), LimitBytes: a.pool.Limit(), ReservedBytes: a.pool.Reserve()},
	}
	writes, last, err := a.store.Stats()
	st.Checkpoint = CheckpointStatus{Path: a.store.Path(), Writes: writes, Syncs: a.store.Syncs(), LastWritten: last}
	if err != nil {
		st.Checkpoint.LastError = err.Error()
	}
	for _, ir := range inputs {
		m := ir.in.Metrics()
		is := InputStatus{
			ID:           ir.cfg.ID,
			Lines:        m.Lines.Load(),
			DroppedLines: ir.dropped(),
			Bytes:        m.Bytes.Load(),
			LinesPerSec:  a.mon.rate(counterKey{"in/lines", ir.cfg.ID}),
			BytesPerSec:  a.mon.rate(counterKey{"in/bytes", ir.cfg.ID}),
		}
		is.InflightBytes = ir.budget.Used()
		is.WaitingSince, is.WaitingFor = ir.waiting()
		is.DirsWatched, is.DirsPolled = ir.in.Dirs()
		files := ir.in.Files()
		at := time.Now()
		for _, f := range files {
			is.BytesBehind += behind(f)
		}
		is.FilesOpen = len(files)
		if len(files) > MaxStatusFiles {
			sort.SliceStable(files, func(i, j int) bool { return behind(files[i]) > behind(files[j]) })
			files = files[:MaxStatusFiles]
		}
		is.Files = make([]FileStatus, len(files))
		for i, f := range files {
			is.Files[i] = fileStatus(f)
			is.Files[i].Rate = a.mon.fileRate(keyOf(ir.cfg.ID, f), at, f.Committed)
		}
		st.Inputs = append(st.Inputs, is)
	}
	for _, r := range runners {
		m := &r.metrics
		o := OutputStatus{
			ID:             r.cfg.ID,
			Type:           r.cfg.Type,
			FailingSince:   m.FailingSince(),
			LastError:      m.LastError(),
			Messages:       m.Messages.Load(),
			Bytes:          m.Bytes.Load(),
			Batches:        m.Batches.Load(),
			Retries:        m.Retries.Load(),
			Permanent:      m.Permanent.Load(),
			MessagesPerSec: a.mon.rate(counterKey{"out/messages", r.cfg.ID}),
			BytesPerSec:    a.mon.rate(counterKey{"out/bytes", r.cfg.ID}),
		}
		o.Healthy = o.FailingSince.IsZero()
		if hl, ok := r.out.(hostLister); ok {
			for _, h := range hl.Hosts() {
				o.Hosts = append(o.Hosts, HostStatus{Addr: h.Addr, Healthy: h.Healthy, Failures: h.Failures, RetryAt: h.RetryAt, LastError: h.LastError})
			}
		}
		st.Outputs = append(st.Outputs, o)
	}
	return st
}

func behind(f file.FileStatus) int64 { return max(0, f.Size-f.Committed) }

func fileStatus(f file.FileStatus) FileStatus {
	fs := FileStatus{Path: f.Path, State: f.State, Offset: f.Committed, Read: f.Read, Size: f.Size, Percent: 100, Behind: behind(f)}
	if f.Size > 0 {
		fs.Percent = min(100, 100*float64(f.Committed)/float64(f.Size))
	}
	return fs
}

// Progress of files far behind (a backfill) is logged every
// progressLogInterval, for files at least progressLogBytes behind, with
// their rate over the progressRateSpan before.
var (
	progressLogInterval = 30 * time.Second
	progressLogBytes    = int64(16 << 20)
	progressRateSpan    = rateWindow * time.Second
)

const (
	// rateWindow is how many one-second samples a rate is computed over.
	rateWindow = 5
	// minRateSpan is the shortest time a rate is measured over: a rate
	// from offsets read a moment apart would tell the size of the last
	// chunk acknowledged, not a rate.
	minRateSpan = 500 * time.Millisecond
)

// statusLook is how long after the last Status the files' offsets are
// still sampled. The live view of logagent status asks every second.
var statusLook = time.Minute

// counterKey names an input's or an output's counter: kind is in/lines,
// in/bytes, out/messages or out/bytes, id the input's or output's.
type counterKey struct{ kind, id string }

// fileKey names an open file of an input. Not the whole FileID: its
// fingerprint grows with a short file.
type fileKey struct {
	input    string
	dev, ino uint64
}

func keyOf(input string, f file.FileStatus) fileKey {
	return fileKey{input, f.ID.Dev, f.ID.Ino}
}

// monitor samples the agent's counters every second to compute rates.
//
// Every input's and output's counters are sampled always: they are few.
// The committed offsets of the files, for each file's rate, are sampled
// only while someone looks: from a Status call until statusLook after the
// last, those of the files read within file.RecentlyActive. With
// thousands of files open and nobody looking, a sample then costs nothing
// per file. The first Status takes a sample at once, so that the next,
// minRateSpan later or more, has a rate for every file; until then a
// file's rate is unknown (nil), not 0.
type monitor struct {
	mu sync.Mutex // guards every field
	// started is when Run started.
	started time.Time
	// gen counts the samples: a series not added to at the last
	// sample (an input removed, a file closed or idle) is dropped.
	gen      uint64
	counters map[counterKey]*series
	files    map[fileKey]*series
	// lookedAt is when Status was last called. filesSince is when the
	// files were first sampled since; zero while they are not sampled.
	lookedAt, filesSince time.Time
}

// series holds the last samples of one counter or offset, a ring.
type series struct {
	t    [rateWindow + 1]time.Time
	v    [rateWindow + 1]int64
	n    int // samples held, up to len(t)
	next int
	gen  uint64 // of the last add
}

func newMonitor() *monitor {
	return &monitor{counters: map[counterKey]*series{}, files: map[fileKey]*series{}}
}

func (m *monitor) startedAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}

// add records value v at t, at sample gen. A value lower than the last (a
// truncated file, a counter of a new agent) starts the series over.
func (s *series) add(gen uint64, t time.Time, v int64) {
	if s.n > 0 && v < s.v[(s.next+len(s.v)-1)%len(s.v)] {
		s.n, s.next = 0, 0
	}
	s.t[s.next], s.v[s.next] = t, v
	s.next = (s.next + 1) % len(s.t)
	s.n = min(s.n+1, len(s.t))
	s.gen = gen
}

// rateTo returns the per-second rate from the oldest sample held to value
// v at t. ok is false when that is less than minRateSpan, or v is below
// the sample (the series started over since).
func (s *series) rateTo(t time.Time, v int64) (r float64, ok bool) {
	if s.n == 0 {
		return 0, false
	}
	oldest := (s.next + len(s.t) - s.n) % len(s.t)
	dt := t.Sub(s.t[oldest])
	if dt < minRateSpan || v < s.v[oldest] {
		return 0, false
	}
	return float64(v-s.v[oldest]) / dt.Seconds(), true
}

// seriesOf returns the series of k in ss, made if there is none.
func seriesOf[K comparable](ss map[K]*series, k K) *series {
	s := ss[k]
	if s == nil {
		s = &series{}
		ss[k] = s
	}
	return s
}

// rate returns the per-second rate of the counter k over the samples
// held; 0 until it has two.
func (m *monitor) rate(k counterKey) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.counters[k]
	if s == nil || s.n == 0 {
		return 0
	}
	newest := (s.next + len(s.t) - 1) % len(s.t)
	r, _ := s.rateTo(s.t[newest], s.v[newest])
	return r
}

// fileRate returns the rate of the file k, whose committed offset is v at
// t, over the samples held and v; nil when it is not measured: the files
// are not sampled, or not for minRateSpan yet, or the file was truncated
// since. A file without samples while the files are sampled was idle at
// the last sample: its rate is 0.
func (m *monitor) fileRate(k fileKey, t time.Time, v int64) *float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r float64
	if s := m.files[k]; s != nil {
		var ok bool
		if r, ok = s.rateTo(t, v); !ok {
			return nil
		}
	} else if m.filesSince.IsZero() || t.Sub(m.filesSince) < minRateSpan {
		return nil
	}
	return &r
}

// reading yields, for every input, the files it reads or read within
// file.RecentlyActive (file.Input.Reading): a file idle for longer has a
// rate of 0, and with thousands of files idle, sampling only those keeps
// the sampling cheap while someone looks.
type reading func(yield func(input string, files []file.FileStatus))

func readingOf(inputs []*inputRun) reading {
	return func(yield func(string, []file.FileStatus)) {
		for _, ir := range inputs {
			yield(ir.cfg.ID, ir.in.Reading())
		}
	}
}

// look records that the files' rates are asked for at now, and samples
// the files at once if they were not sampled: the next look, minRateSpan
// later, has a rate for each.
func (m *monitor) look(now time.Time, files reading) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookedAt = now
	if m.filesSince.IsZero() {
		m.sampleFiles(now, files)
	}
}

// sampleFiles records the committed offsets of the files, at now, and
// forgets the series of the files not among them. m.mu is held.
func (m *monitor) sampleFiles(now time.Time, files reading) {
	if m.filesSince.IsZero() {
		m.filesSince = now
	}
	m.gen++
	files(func(input string, fs []file.FileStatus) {
		for _, f := range fs {
			seriesOf(m.files, keyOf(input, f)).add(m.gen, now, f.Committed)
		}
	})
	maps.DeleteFunc(m.files, func(_ fileKey, s *series) bool { return s.gen != m.gen })
}

// tick is the files' part of the sample at now: they are sampled while
// someone looked within statusLook, and forgotten after.
func (m *monitor) tick(now time.Time, files reading) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case now.Sub(m.lookedAt) < statusLook:
		m.sampleFiles(now, files)
	case !m.filesSince.IsZero():
		clear(m.files)
		m.filesSince = time.Time{}
	}
}

// sample records every input's and output's counters, and the files'
// offsets while someone looks (monitor.tick); it forgets the series of
// what is gone.
func (a *Agent) sample(now time.Time) {
	m := a.mon
	_, inputs, runners := a.running()
	m.mu.Lock()
	m.gen++
	for _, ir := range inputs {
		mt := ir.in.Metrics()
		seriesOf(m.counters, counterKey{"in/lines", ir.cfg.ID}).add(m.gen, now, mt.Lines.Load())
		seriesOf(m.counters, counterKey{"in/bytes", ir.cfg.ID}).add(m.gen, now, mt.Bytes.Load())
	}
	for _, r := range runners {
		seriesOf(m.counters, counterKey{"out/messages", r.cfg.ID}).add(m.gen, now, r.metrics.Messages.Load())
		seriesOf(m.counters, counterKey{"out/bytes", r.cfg.ID}).add(m.gen, now, r.metrics.Bytes.Load())
	}
	maps.DeleteFunc(m.counters, func(_ counterKey, s *series) bool { return s.gen != m.gen })
	m.mu.Unlock()
	m.tick(now, readingOf(inputs))
}

// watch samples rates every second and logs backfill progress until ctx is
// done.
func (a *Agent) watch(ctx context.Context) {
	a.mon.mu.Lock()
	a.mon.started = time.Now()
	a.mon.mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastLog := time.Now()
	// marks holds the offsets of the files behind, taken
	// progressRateSpan before a progress log, for their rates: the
	// files far behind are not sampled every second (sampleFiles).
	// Owned by this goroutine.
	var marks map[fileKey]*series
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			a.sample(now)
			switch {
			case now.Sub(lastLog) >= progressLogInterval:
				lastLog = now
				a.logProgress(marks)
				marks = nil
			case marks == nil && now.Sub(lastLog) >= progressLogInterval-progressRateSpan:
				marks = a.markBehind()
			}
		}
	}
}

// markBehind returns a one-sample series of the committed offset of every
// file behind.
func (a *Agent) markBehind() map[fileKey]*series {
	marks := map[fileKey]*series{}
	_, inputs, _ := a.running()
	for _, ir := range inputs {
		files := ir.in.Behind()
		t := time.Now()
		for _, f := range files {
			seriesOf(marks, keyOf(ir.cfg.ID, f)).add(0, t, f.Committed)
		}
	}
	return marks
}

// logProgress logs one line per file at least progressLogBytes behind,
// with its rate since marks when it has one. It builds the status of the
// files behind alone (Behind), not the whole status: with thousands of
// idle files, that cost more every progressLogInterval than the lines read
// in between.
func (a *Agent) logProgress(marks map[fileKey]*series) {
	_, inputs, _ := a.running()
	for _, ir := range inputs {
		var files []FileStatus
		at := time.Now()
		for _, f := range ir.in.Behind() {
			if fs := fileStatus(f); fs.Behind >= progressLogBytes {
				if s := marks[keyOf(ir.cfg.ID, f)]; s != nil {
					if r, ok := s.rateTo(at, f.Committed); ok {
						fs.Rate = &r
					}
				}
				files = append(files, fs)
			}
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Behind > files[j].Behind })
		for i, f := range files {
			if i == 10 {
				a.log.Info("more files are behind", "input", ir.cfg.ID, "files", len(files)-i)
				break
			}
			args := []any{"input", ir.cfg.ID, "path", f.Path, "offset", f.Offset, "size", f.Size,
				"percent", fmt.Sprintf("%.1f", f.Percent), "behind", f.Behind}
			if f.Rate != nil {
				args = append(args, "bytes_per_sec", int64(*f.Rate))
				if *f.Rate > 0 {
					args = append(args, "eta", time.Duration(float64(f.Behind) / *f.Rate * float64(time.Second)).Round(time.Second))
				}
			}
			a.log.Info("backfill progress", args...)
		}
	}
}
