package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Store keeps the committed offsets in memory and writes them to the
// checkpoint file in its data directory at an interval and on Close. It
// holds an exclusive lock on the data directory so that two agents never
// share one checkpoint. Safe for concurrent use.
type Store struct {
	path string
	lock *os.File
	log  *slog.Logger

	// flushMu serializes Flush and guards what only Flush uses: the
	// entries as last written, sorted, and their encoding, kept so that a
	// flush after a few offsets moved neither sorts, nor allocates, nor
	// encodes the entries that did not change.
	flushMu sync.Mutex
	snap    []Entry     // sorted by compareEntries
	snapIdx map[Key]int // the index of each key in snap
	enc     fileEncoder // of snap

	mu      sync.Mutex
	entries map[Key]Entry
	byInode map[inodeKey][]Key // the keys of entries, by input and inode
	// reorder is set when an entry was added, removed or renamed since
	// snap was taken: the next flush takes and sorts all entries again.
	// Until then, changed holds the keys of the entries whose offset or
	// time moved, to be copied into snap in place.
	reorder bool
	changed map[Key]struct{}
	// moved maps the new key of each entry rekeyed in place (same input
	// and path: a fingerprint extended as a file grew) to its key in
	// snap. Small files growing rekey often; they need no new order.
	moved   map[Key]Key
	movedAt []movedEntry // Flush's scratch
	dirty   bool
	writes  int64
	lastErr error
	written time.Time
}

type movedEntry struct {
	key Key
	at  int
}

// Open locks dir, creating it if needed, and loads its checkpoint.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data_dir %s is in use by another logagent", dir)
		}
		return nil, fmt.Errorf("lock data_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	list, err := Load(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Store{path: path, lock: lock, log: log, entries: make(map[Key]Entry, len(list)), byInode: map[inodeKey][]Key{}, reorder: true, changed: map[Key]struct{}{}, moved: map[Key]Key{}}
	for _, e := range list {
		s.put(e)
	}
	return s, nil
}

// Path returns the checkpoint file's path.
func (s *Store) Path() string { return s.path }

// Entries returns a copy of every entry of input ("" for all inputs).
func (s *Store) Entries(input string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		if input == "" || e.Input == input {
			out = append(out, e)
		}
	}
	return out
}

type inodeKey struct {
	input    string
	dev, ino uint64
}

func inodeOf(k Key) inodeKey { return inodeKey{k.Input, k.ID.Dev, k.ID.Ino} }

// put stores e; s.mu is held.
func (s *Store) put(e Entry) {
	k := e.Key()
	old, ok := s.entries[k]
	if !ok {
		ik := inodeOf(k)
		s.byInode[ik] = append(s.byInode[ik], k)
	}
	s.entries[k] = e
	switch {
	case s.reorder:
	case !ok || old.Path != e.Path: // a new entry, or a new place in the order
		s.reorder = true
		clear(s.changed)
		clear(s.moved)
	default:
		s.changed[k] = struct{}{}
	}
}

// remove forgets k; s.mu is held.
func (s *Store) remove(k Key) {
	if _, ok := s.entries[k]; !ok {
		return
	}
	delete(s.entries, k)
	s.reorder = true
	clear(s.changed)
	clear(s.moved)
	s.unindex(k)
}

// unindex drops k from byInode; s.mu is held.
func (s *Store) unindex(k Key) {
	ik := inodeOf(k)
	keys := s.byInode[ik]
	for i, o := range keys {
		if o == k {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(s.byInode, ik)
	} else {
		s.byInode[ik] = keys
	}
}

// ByInode returns the entries of input for files at dev:ino: without
// scanning every entry, so that opening each of many files stays cheap.
func (s *Store) ByInode(input string, dev, ino uint64) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.byInode[inodeKey{input, dev, ino}]
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.entries[k])
	}
	return out
}

// Get returns the entry for k.
func (s *Store) Get(k Key) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[k]
	return e, ok
}

// Set records e.
func (s *Store) Set(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(e)
	s.dirty = true
}

// Rekey moves the entry at old to e's key and content, as when a file's
// fingerprint is extended once it has grown.
func (s *Store) Rekey(old Key, e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty = true
	k := e.Key()
	prev, ok := s.entries[old]
	if _, taken := s.entries[k]; s.reorder || !ok || taken || k == old || prev.Path != e.Path {
		s.remove(old)
		s.put(e)
		return
	}
	// In place: the entry keeps its place in snap, under its new key.
	delete(s.entries, old)
	s.unindex(old)
	ik := inodeOf(k)
	s.byInode[ik] = append(s.byInode[ik], k)
	s.entries[k] = e
	delete(s.changed, old)
	inSnap, chained := s.moved[old]
	if chained {
		delete(s.moved, old)
	} else {
		inSnap = old
	}
	s.moved[k] = inSnap
}

// Delete forgets k.
func (s *Store) Delete(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[k]; ok {
		s.remove(k)
		s.dirty = true
	}
}

// Stats returns how many times the checkpoint was written and when last.
func (s *Store) Stats() (writes int64, last time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.written, s.lastErr
}

// Flush writes the checkpoint if anything changed since the last write.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	resort := s.reorder
	if resort {
		s.snap = s.snap[:0]
		for _, e := range s.entries {
			s.snap = append(s.snap, e)
		}
		s.reorder = false
		clear(s.moved)
	} else {
		// No key was added or removed, no path changed: the order of
		// snap holds.
		// Moved entries first, so that every key is in snapIdx: all
		// old keys are looked up before any is replaced, as a new key
		// may be another entry's old one.
		s.movedAt = s.movedAt[:0]
		for k, was := range s.moved {
			s.movedAt = append(s.movedAt, movedEntry{k, s.snapIdx[was]})
		}
		for _, was := range s.moved {
			delete(s.snapIdx, was)
		}
		for _, m := range s.movedAt {
			i := m.at
			s.snapIdx[m.key] = i
			s.snap[i] = s.entries[m.key]
			s.enc.changed(i)
			// A new identity may sort apart from entries of the same
			// path (rare: a stale entry of the same name).
			if (i > 0 && compareEntries(s.snap[i-1], s.snap[i]) > 0) ||
				(i+1 < len(s.snap) && compareEntries(s.snap[i], s.snap[i+1]) > 0) {
				resort = true
			}
		}
		for k := range s.changed {
			i := s.snapIdx[k]
			s.snap[i] = s.entries[k]
			s.enc.changed(i)
		}
	}
	clear(s.changed)
	clear(s.moved)
	s.dirty = false
	s.mu.Unlock()

	if resort {
		// Outside s.mu: what changes meanwhile is listed in s.changed
		// by keys that snap holds, or sets s.reorder again.
		slices.SortFunc(s.snap, compareEntries)
		s.enc.reset()
		if s.snapIdx == nil {
			s.snapIdx = make(map[Key]int, len(s.snap))
		}
		clear(s.snapIdx)
		for i := range s.snap {
			s.snapIdx[s.snap[i].Key()] = i
		}
	}
	data, err := s.enc.encode(s.snap, 0, time.Now())
	if err == nil {
		err = writeFile(s.path, data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err != nil {
		s.dirty = true // try again next time
		return err
	}
	s.writes++
	s.written = time.Now()
	return nil
}

// Run flushes every interval until ctx is done.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Flush(); err != nil {
				if !failing {
					s.log.Error("cannot write checkpoint; offsets are kept in memory and written when it works again", "path", s.path, "err", err)
				}
				failing = true
			} else if failing {
				s.log.Info("checkpoint written again", "path", s.path)
				failing = false
			}
		}
	}
}

// Close writes the checkpoint and releases the data directory.
func (s *Store) Close() error {
	err := s.Flush()
	s.lock.Close()
	return err
}
