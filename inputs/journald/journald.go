// Package journald is the systemd journal input (type: journald). It runs
// journalctl --output=export --follow as a child process, from the cursor
// after the last entry every routed output acknowledged, and turns each
// entry into a message: the body is MESSAGE, and the unit, priority, pid,
// boot id and host name are the message's fields.
//
// An entry's life: read (the export format, export.go), published within a
// chunk, acknowledged by every routed output (the chunk's OnDone), then
// committed: the tracker advances the checkpoint entry of the input (key:
// the input id, a zero file identity) to the cursor of the last entry of
// the longest run of acknowledged chunks, so that the stored cursor never
// passes an entry not yet delivered. The store writes it to disk every
// checkpoint_interval; after a crash the input resumes after the cursor on
// disk, sending again at most what was in flight.
//
// The child is owned by Run: stopped with SIGTERM (by its PID) when Run's
// context is done, and started again, after a backoff, from the last entry
// read when it exits or its output cannot be parsed.
package journald

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs"
)

// Config is the configuration of a journald input.
type Config struct {
	// Journalctl is the journalctl command, found in PATH unless a path.
	Journalctl string `yaml:"journalctl"`
	// JournalDirectory, when set, is read instead of the system journal
	// (journalctl --directory).
	JournalDirectory string `yaml:"journal_directory"`
	// Units keeps only the entries of these systemd units (journalctl -u).
	Units []string `yaml:"units"`
	// ExcludeUnits drops the entries of these units (their cursor still
	// advances): the unit of the agent itself when an output writes to
	// its stdout, which the journal would hand back (a loop).
	ExcludeUnits []string `yaml:"exclude_units"`
	// Priority keeps only entries of this level or more urgent, or of a
	// range "err..info" (journalctl -p).
	Priority string `yaml:"priority"`
	// CurrentBootOnly: with no cursor checkpointed, start at the current
	// boot's first entry rather than the journal's first.
	CurrentBootOnly bool `yaml:"current_boot_only"`
	// Category of the messages; the input's id when empty.
	Category string `yaml:"category"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Journalctl: "journalctl", CurrentBootOnly: true}
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.Journalctl == "" {
		errs = append(errs, logagent.FieldErrorf("journalctl", "must not be empty"))
	}
	if c.Priority != "" && !validPriority(c.Priority) {
		errs = append(errs, logagent.FieldErrorf("priority", "%q is not a level (%s, or 0-7) or a range of two (err..info)", c.Priority, strings.Join(priorityNames, ", ")))
	}
	for i, u := range c.Units {
		if strings.TrimSpace(u) == "" {
			errs = append(errs, logagent.FieldErrorf(fmt.Sprintf("units[%d]", i), "must not be empty"))
		}
	}
	for i, u := range c.ExcludeUnits {
		if strings.TrimSpace(u) == "" {
			errs = append(errs, logagent.FieldErrorf(fmt.Sprintf("exclude_units[%d]", i), "must not be empty"))
		}
	}
	return errors.Join(errs...)
}

// Check reports, for the start of the agent and --dry-run, whether
// journalctl can be run and there is a journal to read.
func (c *Config) Check() error {
	if _, err := exec.LookPath(c.Journalctl); err != nil {
		return fmt.Errorf("type: journald needs systemd's journalctl, which cannot be run here: %w", err)
	}
	dirs := []string{"/var/log/journal", "/run/log/journal"}
	if c.JournalDirectory != "" {
		dirs = []string{c.JournalDirectory}
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return nil
		}
	}
	return fmt.Errorf("no journal to read: none of %s is a directory (is systemd-journald running here?)", strings.Join(dirs, ", "))
}

// args returns journalctl's arguments to read after cursor ("" for none).
func (c *Config) args(cursor string) []string {
	a := []string{"--output=export", "--follow", "--no-tail", "--quiet", "--no-pager"}
	if c.JournalDirectory != "" {
		a = append(a, "--directory="+c.JournalDirectory)
	}
	for _, u := range c.Units {
		a = append(a, "--unit="+u)
	}
	// ExcludeUnits are dropped by the input: journalctl has no such filter.
	if c.Priority != "" {
		a = append(a, "--priority="+c.Priority)
	}
	switch {
	case cursor != "":
		a = append(a, "--after-cursor="+cursor)
	case c.CurrentBootOnly:
		a = append(a, "--boot")
	}
	return a
}

// Describe tells, for --dry-run, what the input would run.
func (c *Config) Describe() string {
	return "journal: " + c.Journalctl + " " + strings.Join(c.args("<checkpointed cursor>"), " ") +
		" (without a checkpointed cursor: from the start of the " + map[bool]string{true: "current boot", false: "journal"}[c.CurrentBootOnly] + ")"
}

// CategoryFor returns the category of the messages of input id.
func (c *Config) CategoryFor(id string) string {
	if c.Category == "" {
		return id
	}
	return c.Category
}

// chunkMessages is the most entries published as one chunk.
const chunkMessages = 512

// Backoff between restarts of journalctl: doubling from the first to the
// last; back to the first once a child has run for backoffReset.
const (
	backoffFirst = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// Input is a running journald input.
type Input struct {
	// immutable after New
	cfg   Config
	env   inputs.Env
	store *checkpoint.Store
	key   checkpoint.Key
	path  string // the checkpoint entry's path: what the input reads
	// excluded holds ExcludeUnits, with ".service" added to a name
	// without a type, as journalctl -u does.
	excluded map[string]bool

	trk      tracker
	counters counters
}

// counters count what the input did. Safe for concurrent use.
type counters struct {
	entries  atomic.Int64 // entries read from journalctl
	messages atomic.Int64 // messages made of them (entries with a MESSAGE, not excluded)
	bytes    atomic.Int64 // their bodies' bytes
	excluded atomic.Int64 // entries of exclude_units, dropped
	restarts atomic.Int64 // times journalctl exited or failed and was started again
}

// Counters returns what the input did, by counter name, for /metrics.
func (in *Input) Counters() map[string]int64 {
	c := &in.counters
	return map[string]int64{
		"entries":  c.entries.Load(),
		"messages": c.messages.Load(),
		"bytes":    c.bytes.Load(),
		"excluded": c.excluded.Load(),
		"restarts": c.restarts.Load(),
	}
}

// New checks that the journal can be read; nothing is read until Run.
func New(c Config, env inputs.Env) (*Input, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if env.Checkpoint == nil {
		return nil, errors.New("journald input: no checkpoint store")
	}
	c.Category = c.CategoryFor(env.ID)
	path := "journal"
	if c.JournalDirectory != "" {
		path = "journal:" + c.JournalDirectory
	}
	in := &Input{cfg: c, env: env, store: env.Checkpoint, key: checkpoint.Key{Input: env.ID}, path: path, excluded: map[string]bool{}}
	for _, u := range c.ExcludeUnits {
		if !strings.Contains(u, ".") {
			u += ".service"
		}
		in.excluded[u] = true
	}
	in.trk.commit = in.commit
	in.trk.idle = make(chan struct{}, 1)
	return in, nil
}

// Cursor returns the cursor checkpointed for the input, "" when none.
func (in *Input) Cursor() string {
	e, _ := in.store.Get(in.key)
	return e.Cursor
}

// commit records the cursor after which every entry is delivered.
func (in *Input) commit(cursor string, n int64) {
	e, _ := in.store.Get(in.key)
	in.store.Set(checkpoint.Entry{Input: in.env.ID, Path: in.path, Offset: e.Offset + n, Cursor: cursor, Updated: time.Now()})
}

// Run reads the journal until ctx is done, then stops journalctl and waits
// up to env.DrainTimeout for what it published to be acknowledged.
func (in *Input) Run(ctx context.Context) error {
	cursor := in.Cursor() // the last entry read
	backoff := backoffFirst
	for ctx.Err() == nil {
		started := time.Now()
		err := in.follow(ctx, &cursor)
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > backoffReset {
			backoff = backoffFirst
		}
		in.counters.restarts.Add(1)
		in.env.Log.Warn("journalctl stopped; starting it again", "err", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, backoffMax)
	}
	in.trk.wait(in.env.DrainTimeout)
	return nil
}

// follow runs journalctl once, after *cursor, and publishes what it
// writes until it exits or ctx is done; *cursor is the last entry read.
func (in *Input) follow(ctx context.Context, cursor *string) error {
	cmd := exec.Command(in.cfg.Journalctl, in.cfg.args(*cursor)...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", in.cfg.Journalctl, err)
	}
	pid := cmd.Process.Pid
	in.env.Log.Debug("journalctl started", "pid", pid, "args", cmd.Args)
	// The child is stopped when ctx is done, or when reading fails while
	// it still runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		cmd.Process.Signal(syscall.SIGTERM)
	}()
	rerr := in.read(ctx, newExportReader(out), cursor)
	close(stop)
	wg.Wait()
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if rerr != io.EOF { // read returns only with an error
		return fmt.Errorf("read journalctl (pid %d): %w; stderr: %s", pid, rerr, stderr.String())
	}
	return fmt.Errorf("journalctl (pid %d) exited: %v; stderr: %s", pid, werr, stderr.String())
}

// read publishes the entries of x in chunks: a chunk ends at
// chunkMessages entries, or when nothing more waits in the stream.
func (in *Input) read(ctx context.Context, x *exportReader, cursor *string) error {
	var e entry
	sources := map[string]*logagent.Source{}
	var msgs []logagent.Message
	var body []byte // the bodies of msgs
	var last string
	var entries int64
	publish := func() error {
		if entries == 0 {
			return nil
		}
		// Bodies point into body, which is never reused.
		off := 0
		for i := range msgs {
			n := len(msgs[i].Body)
			msgs[i].Body = body[off : off+n : off+n]
			off += n
		}
		c := &logagent.Chunk{Messages: msgs, CaughtUp: !x.Buffered()}
		seq := in.trk.add(last, entries)
		c.OnDone = func() { in.trk.done(seq) }
		*cursor = last
		msgs, body, entries = nil, nil, 0
		if len(c.Messages) == 0 {
			in.trk.done(seq)
			return nil
		}
		return in.env.Publish(ctx, c)
	}
	now := time.Now().UnixNano()
	for {
		if err := x.next(&e); err != nil {
			if perr := publish(); perr != nil {
				return perr
			}
			return err
		}
		last = string(e.cursor)
		entries++
		in.counters.entries.Add(1)
		switch {
		case !e.hasMsg:
		case in.excluded[string(e.unit)]:
			in.counters.excluded.Add(1)
		default:
			body = append(body, e.message...)
			// The envelope's @timestamp: when the entry was written, which
			// the journal knows, rather than when it was read.
			at := e.writtenNano()
			if at == 0 {
				at = now
			}
			msgs = append(msgs, logagent.Message{Body: e.message[:len(e.message):len(e.message)], ReadNano: at, Source: in.source(sources, &e)})
			in.counters.messages.Add(1)
			in.counters.bytes.Add(int64(len(e.message)))
		}
		if entries >= chunkMessages || !x.Buffered() {
			if err := publish(); err != nil {
				return err
			}
			now = time.Now().UnixNano()
		}
	}
}

// source returns the Source of e's metadata, one per distinct set so that
// an encoder meets few; sources holds them, emptied once large.
func (in *Input) source(sources map[string]*logagent.Source, e *entry) *logagent.Source {
	var k bytes.Buffer
	for _, v := range [][]byte{e.unit, e.priority, e.pid, e.bootID, e.hostname} {
		k.Write(v)
		k.WriteByte(0)
	}
	if s := sources[k.String()]; s != nil {
		return s
	}
	if len(sources) >= 4096 {
		clear(sources)
	}
	f := map[string]string{}
	for _, kv := range []struct {
		k string
		v []byte
	}{{"unit", e.unit}, {"priority", e.priority}, {"pid", e.pid}, {"boot_id", e.bootID}, {"hostname", e.hostname}} {
		if len(kv.v) > 0 {
			f[kv.k] = string(kv.v)
		}
	}
	s := &logagent.Source{Input: in.env.ID, Category: in.cfg.Category, Path: in.path, Host: in.env.Host, Fields: f}
	sources[k.String()] = s
	return s
}

// tracker commits, in the order entries were read, the cursor of the
// longest run of chunks every routed output acknowledged. Safe for
// concurrent use (done is called from outputs' goroutines).
type tracker struct {
	commit func(cursor string, entries int64) // immutable after New
	idle   chan struct{}                      // a token when pending empties

	mu      sync.Mutex
	base    uint64 // the seq of pending[0]
	pending []pendingChunk
}

type pendingChunk struct {
	cursor  string
	entries int64
	done    bool
}

// add records a chunk whose last entry is cursor; done(seq) acknowledges it.
func (t *tracker) add(cursor string, entries int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, pendingChunk{cursor: cursor, entries: entries})
	return t.base + uint64(len(t.pending)) - 1
}

func (t *tracker) done(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[seq-t.base].done = true
	var n int64
	i := 0
	for i < len(t.pending) && t.pending[i].done {
		n += t.pending[i].entries
		i++
	}
	if i == 0 {
		return
	}
	t.commit(t.pending[i-1].cursor, n)
	t.pending = append(t.pending[:0], t.pending[i:]...)
	t.base += uint64(i)
	if len(t.pending) == 0 {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// wait returns once nothing is pending, or after d.
func (t *tracker) wait(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-t.idle:
		case <-timer.C:
			return
		}
	}
}

// tailBuffer keeps the last bytes written to it: journalctl's stderr, for
// the log when it exits.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
