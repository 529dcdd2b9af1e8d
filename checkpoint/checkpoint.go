// Package checkpoint stores, per input and file identity, the offset up to
// which every output has acknowledged what was read.
//
// # On disk
//
// The data directory holds a snapshot and the journal that continues it,
// as Filebeat's registry does:
//
//   - checkpoint.json, the snapshot: every entry, sorted by input and path,
//     and the generation G of its journal ({"version":1,"written":...,
//     "journal":G,"files":[...]}; a snapshot without "journal", as written
//     before journals, is of generation 0).
//   - checkpoint.G.log, the journal of generation G: JSON lines, each a set
//     ({"set":Entry}), a delete ({"del":Key}) or the commit that ends a
//     flush ({"commit":N}, N being the records of the flush). It is created
//     at the first flush after the snapshot, and each flush appends the
//     last value of every key changed since the flush before, then its
//     commit (in writes of 64 KiB, the commit in the last), then
//     fdatasyncs.
//   - .lock, locked by the agent that uses the directory.
//
// The checkpoint is the snapshot with the committed flushes of the journal
// of its generation applied in order. A missing snapshot is an empty one of
// generation 0 (a new data directory's first flushes go to
// checkpoint.0.log). Journals of other generations are stale: they are
// ignored, and removed when a Store opens. A journal found when a Store
// opens is never appended to: its first flush writes a snapshot.
//
// Once the journal is larger than max(snapshot, 1 MiB), a flush writes a
// snapshot of the next generation instead of appending (a temporary file,
// fsync, rename over checkpoint.json, fsync of the directory), then removes
// the old journal. Close does the same, so that a stopped agent leaves
// checkpoint.json (and .lock) alone, which an agent without journals reads
// as it always did.
//
// What a crash leaves, at each point:
//
//   - while appending: records without their commit, the last line maybe
//     torn. They are ignored: the offsets are those of the flush before,
//     which re-sends what was acknowledged since, never skips it. Once the
//     journal is fdatasynced, the flush is kept.
//   - after creating a journal, before its first commit: an empty or
//     uncommitted journal, which changes nothing.
//   - while writing a snapshot, before its rename: the previous snapshot and
//     its journal, whole, and a temporary .checkpoint-*.tmp, removed when a
//     Store opens.
//   - after the rename, before the old journal is removed: the new snapshot
//     and a stale journal, ignored.
//
// A snapshot that cannot be parsed, or a journal line that cannot but is
// not the last, is a *CorruptError: the agent stops rather than starting
// over.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
)

// FileName is the name of the snapshot inside the data directory.
const FileName = "checkpoint.json"

const formatVersion = 1

// Entry is the committed position in one file.
type Entry struct {
	Input  string          `json:"input"`
	ID     logagent.FileID `json:"id"`
	Path   string          `json:"path"`   // last path the file was read under
	Offset int64           `json:"offset"` // every byte before it is delivered
	// Updated is when Offset last moved; entries of files that are gone are
	// dropped once they are older than the store's retention.
	Updated time.Time `json:"updated"`
	// Cursor is, for an input that is not a file (the journal), where
	// reading resumes: every entry up to it is delivered. ID is then zero
	// and Offset counts the entries delivered.
	Cursor string `json:"cursor,omitempty"`
}

// Key identifies an entry.
type Key struct {
	Input string          `json:"input"`
	ID    logagent.FileID `json:"id"`
}

// Key returns e's key.
func (e Entry) Key() Key { return Key{Input: e.Input, ID: e.ID} }

type fileFormat struct {
	Version int     `json:"version"`
	Written string  `json:"written"`
	Journal uint64  `json:"journal"`
	Files   []Entry `json:"files"`
}

// journalName returns the name of the journal of generation gen inside the
// data directory.
func journalName(gen uint64) string {
	return journalPrefix + strconv.FormatUint(gen, 10) + journalSuffix
}

const (
	journalPrefix = "checkpoint."
	journalSuffix = ".log"
)

// journalGen returns the generation of the journal named name.
func journalGen(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, journalPrefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, journalSuffix); !ok || s == "" || s[0] == '+' {
		return 0, false
	}
	gen, err := strconv.ParseUint(s, 10, 64)
	return gen, err == nil && journalName(gen) == name
}

// CorruptError reports a checkpoint file that cannot be parsed. The agent
// stops rather than starting over: starting over would re-send or skip
// whole files.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	if _, ok := journalGen(filepath.Base(e.Path)); ok {
		return fmt.Sprintf("checkpoint %s cannot be read: %v (it was not changed; move it away to resume from %s alone, which re-sends what was delivered after that was written)", e.Path, e.Err, FileName)
	}
	return fmt.Sprintf("checkpoint %s cannot be read: %v (it was not changed; move it away to start over, which re-reads files according to start_at)", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// Load reads the checkpoint whose snapshot is at path: the snapshot, then
// the committed flushes of its journal, sorted as the snapshot is. Missing
// files are empty; a file that cannot be parsed is a *CorruptError.
func Load(path string) ([]Entry, error) {
	c, err := load(path)
	return c.entries, err
}

// loaded is a checkpoint as read.
type loaded struct {
	entries  []Entry
	gen      uint64 // the snapshot's generation
	snapSize int64  // the snapshot's size
	journal  bool   // the journal of gen exists
}

func load(path string) (loaded, error) {
	var c loaded
	data, err := readState(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return c, fmt.Errorf("read checkpoint: %w", err)
	default:
		f, err := parseSnapshot(path, data)
		if err != nil {
			return c, err
		}
		c.entries, c.gen, c.snapSize = f.Files, f.Journal, int64(len(data))
	}
	jpath := filepath.Join(filepath.Dir(path), journalName(c.gen))
	data, err = readState(jpath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c, nil
	case err != nil:
		return c, fmt.Errorf("read checkpoint journal: %w", err)
	}
	c.journal = true
	c.entries, err = replay(jpath, data, c.entries)
	return c, err
}

// parseSnapshot decodes the snapshot data read from path; what cannot be
// parsed is a *CorruptError.
func parseSnapshot(path string, data []byte) (fileFormat, error) {
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return f, &CorruptError{Path: path, Err: err}
	}
	if f.Version != formatVersion {
		return f, &CorruptError{Path: path, Err: fmt.Errorf("version %d, this agent reads version %d", f.Version, formatVersion)}
	}
	for i, e := range f.Files {
		if err := validEntry(e); err != nil {
			return f, &CorruptError{Path: path, Err: fmt.Errorf("files[%d]: %w", i, err)}
		}
	}
	return f, nil
}

func validEntry(e Entry) error {
	if e.Input == "" || e.Offset < 0 {
		return fmt.Errorf("input %q offset %d", e.Input, e.Offset)
	}
	return nil
}

// writeFileOwned replaces the file at path atomically with what write
// writes to the writer it is given, the file given to own: a temporary
// file in the same directory, fsync, rename over path, fsync the
// directory. A crash at any point leaves either the old or the new file,
// never a torn one. It returns the file's size. An error of that writer is
// the write's ("write checkpoint ..."); any other error write returns (an
// encoding one) is returned as it is, and nothing is replaced. The
// temporary file is created with O_EXCL (os.CreateTemp), which never
// follows a link; the rename replaces a link at path, never what it points
// to.
func writeFileOwned(path string, write func(io.Writer) error, own owner) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return 0, fmt.Errorf("write checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := own.chown(tmp); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("write checkpoint: %w", err)
	}
	w := countingWriter{w: tmp}
	if err := write(&w); err != nil {
		tmp.Close()
		if w.err != nil {
			return 0, fmt.Errorf("write checkpoint %s: %w", tmp.Name(), w.err)
		}
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("sync checkpoint %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("close checkpoint %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("replace checkpoint %s: %w", path, err)
	}
	return w.n, syncDir(dir)
}

// countingWriter counts what it writes to w and keeps w's first error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// tempPattern names writeFileOwned's temporary files.
const tempPattern = ".checkpoint-*.tmp"

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync checkpoint dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint dir %s: %w", dir, err)
	}
	return nil
}
