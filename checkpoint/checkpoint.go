// Package checkpoint stores, per input and file identity, the offset up to
// which every output has acknowledged what was read.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/logagent/logagent"
)

// FileName is the name of the checkpoint file inside the data directory.
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
}

// Key identifies an entry.
type Key struct {
	Input string
	ID    logagent.FileID
}

// Key returns e's key.
func (e Entry) Key() Key { return Key{Input: e.Input, ID: e.ID} }

type fileFormat struct {
	Version int     `json:"version"`
	Written string  `json:"written"`
	Files   []Entry `json:"files"`
}

// CorruptError reports a checkpoint file that cannot be parsed. The agent
// stops rather than starting over: starting over would re-send or skip
// whole files.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("checkpoint %s cannot be read: %v (it was not changed; move it away to start over, which re-reads files according to start_at)", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// Load reads the checkpoint file at path. A missing file is an empty
// checkpoint; a file that cannot be parsed is a *CorruptError.
func Load(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &CorruptError{Path: path, Err: err}
	}
	if f.Version != formatVersion {
		return nil, &CorruptError{Path: path, Err: fmt.Errorf("version %d, this agent reads version %d", f.Version, formatVersion)}
	}
	for i, e := range f.Files {
		if e.Input == "" || e.Offset < 0 {
			return nil, &CorruptError{Path: path, Err: fmt.Errorf("files[%d]: input %q offset %d", i, e.Input, e.Offset)}
		}
	}
	return f.Files, nil
}

// Save writes entries to path atomically: a temporary file in the same
// directory, fsync, rename over path, fsync the directory. A crash at any
// point leaves either the old or the new checkpoint, never a torn one.
func Save(path string, entries []Entry) error {
	sorted := entries
	if !slices.IsSortedFunc(entries, compareEntries) {
		sorted = slices.Clone(entries)
		slices.SortFunc(sorted, compareEntries)
	}
	data, err := appendFile(make([]byte, 0, 256*len(sorted)+64), sorted, time.Now())
	if err != nil {
		return err
	}
	return writeFile(path, data)
}

// writeFile replaces the file at path with data atomically, as Save
// describes.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".checkpoint-*.tmp")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write checkpoint %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync checkpoint %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close checkpoint %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace checkpoint %s: %w", path, err)
	}
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
