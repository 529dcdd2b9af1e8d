package agent

import (
	"context"
	"fmt"
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
	Rate    float64 `json:"rate"`    // bytes per second the committed offset moves
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
// any goroutine, while Run runs or not.
func (a *Agent) Status() *Status {
	now := time.Now()
	cfg, inputs, runners := a.running()
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
			LinesPerSec:  a.mon.rate("in/lines/" + ir.cfg.ID),
			BytesPerSec:  a.mon.rate("in/bytes/" + ir.cfg.ID),
			Files:        []FileStatus{},
		}
		is.InflightBytes = ir.budget.Used()
		is.WaitingSince, is.WaitingFor = ir.waiting()
		is.DirsWatched, is.DirsPolled = ir.in.Dirs()
		for _, f := range ir.in.Files() {
			fs := fileStatus(f)
			fs.Rate = a.mon.rate(fileKey(ir.cfg.ID, f))
			is.BytesBehind += fs.Behind
			is.Files = append(is.Files, fs)
		}
		is.FilesOpen = len(is.Files)
		if len(is.Files) > MaxStatusFiles {
			sort.SliceStable(is.Files, func(i, j int) bool { return is.Files[i].Behind > is.Files[j].Behind })
			is.Files = is.Files[:MaxStatusFiles:MaxStatusFiles]
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
			MessagesPerSec: a.mon.rate("out/messages/" + r.cfg.ID),
			BytesPerSec:    a.mon.rate("out/bytes/" + r.cfg.ID),
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

func fileStatus(f file.FileStatus) FileStatus {
	fs := FileStatus{Path: f.Path, State: f.State, Offset: f.Committed, Read: f.Read, Size: f.Size, Percent: 100}
	if f.Size > 0 {
		fs.Percent = min(100, 100*float64(f.Committed)/float64(f.Size))
	}
	fs.Behind = max(0, f.Size-f.Committed)
	return fs
}

func fileKey(input string, f file.FileStatus) string {
	return fmt.Sprintf("file/%s/%d:%d", input, f.ID.Dev, f.ID.Ino)
}

// Progress of files far behind (a backfill) is logged every
// progressLogInterval, for files at least progressLogBytes behind.
var (
	progressLogInterval = 30 * time.Second
	progressLogBytes    = int64(16 << 20)
)

// rateWindow is how many one-second samples a rate is computed over.
const rateWindow = 5

// monitor samples the agent's counters every second to compute rates, and
// logs the progress of files far behind.
type monitor struct {
	mu      sync.Mutex
	started time.Time
	series  map[string]*series
}

type series struct {
	t    [rateWindow + 1]time.Time
	v    [rateWindow + 1]int64
	n    int // samples held, up to len(t)
	next int
	seen bool
}

func newMonitor() *monitor { return &monitor{series: map[string]*series{}} }

func (m *monitor) startedAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}

// add records value v of key at t. A value lower than the last (a
// truncated file, a counter of a new agent) starts the series over.
func (m *monitor) add(key string, t time.Time, v int64) {
	s := m.series[key]
	if s == nil {
		s = &series{}
		m.series[key] = s
	}
	if s.n > 0 {
		last := (s.next + len(s.v) - 1) % len(s.v)
		if v < s.v[last] {
			s.n, s.next = 0, 0
		}
	}
	s.t[s.next], s.v[s.next] = t, v
	s.next = (s.next + 1) % len(s.t)
	s.n = min(s.n+1, len(s.t))
	s.seen = true
}

// rate returns the per-second rate of key over the samples held.
func (m *monitor) rate(key string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[key]
	if s == nil || s.n < 2 {
		return 0
	}
	newest := (s.next + len(s.t) - 1) % len(s.t)
	oldest := (s.next + len(s.t) - s.n) % len(s.t)
	dt := s.t[newest].Sub(s.t[oldest]).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(s.v[newest]-s.v[oldest]) / dt
}

// sample records every counter a rate is shown for, and forgets the series
// of files no longer open.
func (a *Agent) sample(now time.Time) {
	m := a.mon
	_, inputs, runners := a.running()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.series {
		s.seen = false
	}
	for _, ir := range inputs {
		mt := ir.in.Metrics()
		m.add("in/lines/"+ir.cfg.ID, now, mt.Lines.Load())
		m.add("in/bytes/"+ir.cfg.ID, now, mt.Bytes.Load())
		// The committed offset of the files being read, or read
		// lately: the rate bytes are delivered. A file idle for longer
		// has a rate of 0; with thousands of idle files, sampling only
		// those keeps this cheap.
		for _, f := range ir.in.Reading() {
			m.add(fileKey(ir.cfg.ID, f), now, f.Committed)
		}
	}
	for _, r := range runners {
		m.add("out/messages/"+r.cfg.ID, now, r.metrics.Messages.Load())
		m.add("out/bytes/"+r.cfg.ID, now, r.metrics.Bytes.Load())
	}
	for k, s := range m.series {
		if !s.seen {
			delete(m.series, k)
		}
	}
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
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			a.sample(now)
			if now.Sub(lastLog) >= progressLogInterval {
				lastLog = now
				a.logProgress()
			}
		}
	}
}

// logProgress logs one line per file at least progressLogBytes behind. It
// builds the status of the files behind alone (Behind), not the whole
// status: with thousands of idle files, that cost more every
// progressLogInterval than the lines read in between.
func (a *Agent) logProgress() {
	_, inputs, _ := a.running()
	for _, ir := range inputs {
		var files []FileStatus
		for _, f := range ir.in.Behind() {
			if fs := fileStatus(f); fs.Behind >= progressLogBytes {
				fs.Rate = a.mon.rate(fileKey(ir.cfg.ID, f))
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
				"percent", fmt.Sprintf("%.1f", f.Percent), "behind", f.Behind, "bytes_per_sec", int64(f.Rate)}
			if f.Rate > 0 {
				args = append(args, "eta", time.Duration(float64(f.Behind)/f.Rate*float64(time.Second)).Round(time.Second))
			}
			a.log.Info("backfill progress", args...)
		}
	}
}
