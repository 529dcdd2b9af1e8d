package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/logagent/logagent"
)

// Store keeps the committed offsets in memory and writes them to its data
// directory, as the package comment describes: Flush, every interval in Run,
// appends the changes since the last flush to the journal, or writes a
// snapshot of a new generation once the journal is larger than
// max(snapshot, 1 MiB); Close writes a snapshot and removes the journal.
// It holds an exclusive lock on the data directory so that two agents never
// share one checkpoint. Safe for concurrent use.
//
// A crash leaves the state of the last flush that returned nil, or of a
// later one. A flush that fails leaves the changes to the next one: a
// failed append is cut off the journal before the next append (or, if it
// cannot be, the next flush writes a snapshot), and after a snapshot write
// fails, which leaves either snapshot on disk, flushes write snapshots of
// new generations until one succeeds.
type Store struct {
	path  string // the snapshot's
	lock  *os.File
	log   *slog.Logger
	owner owner // who the files it creates are given to

	// flushMu serializes Flush and Close and guards the files and what
	// only they use.
	flushMu  sync.Mutex
	gen      uint64   // the generation of the snapshot on disk and of the journal appended to
	nextGen  uint64   // the generation of the next snapshot: above any generation on disk or tried
	journal  *os.File // gen's, open for appending; nil until the first append
	jsize    int64    // the bytes of the journal up to its last commit
	jtorn    bool     // a failed append may have left bytes after jsize
	snapSize int64    // the size of the snapshot on disk
	// minCompact is the size up to which a journal is never compacted:
	// 1 MiB (tests lower it).
	minCompact int64
	// compact is set when the next flush must write a snapshot: the
	// journal on disk was not written by this store (it may end in a torn
	// flush), could not be cut back after a failed append, or a snapshot
	// write failed.
	compact bool
	closed  bool
	buf     []byte  // encoding scratch: a chunk's (chunker)
	recs    []Entry // Flush's scratch: the changes taken, or every entry for a snapshot
	dels    []Key   // Flush's scratch: the keys deleted

	syncs atomic.Int64 // fdatasyncs and fsyncs of the journal and snapshots

	mu sync.Mutex
	// entries holds the entries by input and inode (ByInode looks files
	// up so), those of an inode told apart by fingerprint: one map entry
	// and one small record per file, rather than a map by Key and an
	// index by inode beside it, which hold the key three times.
	entries map[inodeKey][]record
	// changed holds the keys set, rekeyed or deleted since the last flush
	// took them; taken, those a running flush took (empty otherwise),
	// given back if it fails.
	changed, taken map[Key]struct{}
	writes         int64
	lastErr        error
	written        time.Time
	// seq counts the changes; durable is seq as the last flush that
	// succeeded took its changes: everything up to it is on disk.
	seq, durable uint64
	// pendingBytes counts the bytes by which file offsets moved since
	// the last flush took the changes; urgent is set by a change that
	// is written at Policy.Delay whatever the bytes (a cursor's).
	pendingBytes int64
	urgent       bool
	// fullAt is the pendingBytes at which due is signalled (0: never,
	// outside Run).
	fullAt int64
	// kick tells Run that something changed; due, that what changed is
	// to be written at Policy.Delay (see Policy).
	kick, due chan struct{}
}

// Open locks dir, creating it if needed, and loads its checkpoint. It
// refuses a dir that anyone but the agent's user could write into
// (CheckDir). It removes the journals of other generations than the
// snapshot's and the temporary files of snapshot writes a crash
// interrupted.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	own, err := checkDir(dir)
	if err != nil {
		return nil, err
	}
	// Given away only when created here: never chown a file found.
	lockPath := filepath.Join(dir, ".lock")
	lock, err := openState(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err == nil {
		err = own.chown(lock)
	} else if errors.Is(err, fs.ErrExist) {
		lock, err = openState(lockPath, os.O_RDWR, 0)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
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
	c, err := load(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	s := &Store{path: path, lock: lock, log: log, owner: own, gen: c.gen, nextGen: c.gen + 1, snapSize: c.snapSize, minCompact: 1 << 20,
		// A journal of a crashed run may end in a torn flush: never
		// appended to, it is compacted away at the first flush.
		compact: c.journal,
		entries: make(map[inodeKey][]record, len(c.entries)),
		changed: map[Key]struct{}{}, taken: map[Key]struct{}{},
		kick: make(chan struct{}, 1), due: make(chan struct{}, 1)}
	for _, n := range names {
		stale := false
		if gen, ok := journalGen(n.Name()); ok && gen != c.gen {
			// Snapshots take generations above any on disk, so
			// that a stale journal that cannot be removed never
			// becomes one's.
			s.nextGen = max(s.nextGen, gen+1)
			stale = true
		} else if ok, _ := filepath.Match(tempPattern, n.Name()); ok {
			stale = true
		}
		if stale {
			if err := os.Remove(filepath.Join(dir, n.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("cannot remove stale checkpoint file", "err", err)
			}
		}
	}
	for _, e := range c.entries {
		s.put(e)
	}
	return s, nil
}

// Path returns the snapshot's path.
func (s *Store) Path() string { return s.path }

// Entries returns a copy of every entry of input ("" for all inputs).
func (s *Store) Entries(input string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.entries))
	for ik, rs := range s.entries {
		if input == "" || ik.input == input {
			for i := range rs {
				out = append(out, rs[i].entry(ik))
			}
		}
	}
	return out
}

type inodeKey struct {
	input    string
	dev, ino uint64
}

func inodeOf(k Key) inodeKey { return inodeKey{k.Input, k.ID.Dev, k.ID.Ino} }

// record is an Entry but for its inodeKey.
type record struct {
	fp      uint64
	fpLen   int
	path    string
	offset  int64
	updated time.Time
	cursor  string
}

func recordOf(e *Entry) record {
	return record{fp: e.ID.Fingerprint, fpLen: e.ID.FingerprintLen, path: e.Path, offset: e.Offset, updated: e.Updated, cursor: e.Cursor}
}

func (r *record) is(id logagent.FileID) bool {
	return r.fp == id.Fingerprint && r.fpLen == id.FingerprintLen
}

func (r *record) entry(ik inodeKey) Entry {
	return Entry{
		Input: ik.input, ID: logagent.FileID{Dev: ik.dev, Ino: ik.ino, Fingerprint: r.fp, FingerprintLen: r.fpLen},
		Path: r.path, Offset: r.offset, Updated: r.updated, Cursor: r.cursor,
	}
}

// find returns the records of k's inode and the index of k's among them
// (-1: none); s.mu is held.
func (s *Store) find(k Key) (inodeKey, []record, int) {
	ik := inodeOf(k)
	rs := s.entries[ik]
	for i := range rs {
		if rs[i].is(k.ID) {
			return ik, rs, i
		}
	}
	return ik, rs, -1
}

// put stores e; s.mu is held.
func (s *Store) put(e Entry) (old Entry, had bool) {
	ik, rs, i := s.find(e.Key())
	if i < 0 {
		s.entries[ik] = append(rs, recordOf(&e))
		return Entry{}, false
	}
	old = rs[i].entry(ik)
	rs[i] = recordOf(&e)
	return old, true
}

// remove forgets k; s.mu is held.
func (s *Store) remove(k Key) {
	ik, rs, i := s.find(k)
	if i < 0 {
		return
	}
	if len(rs) == 1 {
		delete(s.entries, ik)
	} else {
		last := len(rs) - 1
		copy(rs[i:], rs[i+1:])
		rs[last] = record{}
		s.entries[ik] = rs[:last]
	}
	s.changed[k] = struct{}{}
	s.seq++
	s.signal(s.kick)
}

// ByInode returns the entries of input for files at dev:ino: without
// scanning every entry, so that opening each of many files stays cheap.
func (s *Store) ByInode(input string, dev, ino uint64) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	ik := inodeKey{input, dev, ino}
	rs := s.entries[ik]
	out := make([]Entry, 0, len(rs))
	for i := range rs {
		out = append(out, rs[i].entry(ik))
	}
	return out
}

// Get returns the entry for k.
func (s *Store) Get(k Key) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ik, rs, i := s.find(k)
	if i < 0 {
		return Entry{}, false
	}
	return rs[i].entry(ik), true
}

// OnDisk reports whether the entry for k is on disk as it is held now:
// written by a flush that succeeded (or loaded by Open), and neither
// changed nor deleted since. A file opened again under such an entry need
// not wait for a flush (Sync) before its lines go out: a crash leaves the
// entry that finds it.
func (s *Store) OnDisk(k Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.changed[k]; ok {
		return false
	}
	if _, ok := s.taken[k]; ok {
		return false // a running flush writes it: not yet
	}
	_, _, i := s.find(k)
	return i >= 0
}

// Set records e.
func (s *Store) Set(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.put(e)
	if e.Cursor != "" {
		s.urgent = true // Offset counts entries, not bytes
		s.signal(s.due)
	} else if had && e.Offset > old.Offset {
		s.pendingBytes += e.Offset - old.Offset
		if s.fullAt > 0 && s.pendingBytes >= s.fullAt {
			s.signal(s.due)
		}
	}
	s.changed[e.Key()] = struct{}{}
	s.seq++
	s.signal(s.kick)
}

// Rekey moves the entry at old to e's key and content, as when a file's
// fingerprint is extended once it has grown.
func (s *Store) Rekey(old Key, e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(old)
	s.put(e)
	s.changed[e.Key()] = struct{}{}
	s.seq++
	s.signal(s.kick)
}

// Delete forgets k.
func (s *Store) Delete(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(k)
}

// Stats returns how many flushes wrote the checkpoint and when the last
// did, and the error of the last flush.
func (s *Store) Stats() (writes int64, last time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.written, s.lastErr
}

var errClosed = errors.New("checkpoint store closed")

// Flush writes what changed since the last flush, if anything did: it
// appends it to the journal, or writes a snapshot if the journal is larger
// than max(snapshot, 1 MiB).
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.flush(false)
}

// signal sends a token on c, cap 1, unless one waits there.
func (s *Store) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Sync returns once what was recorded before the call is on disk, or the
// flush that was to write it failed (its error). It flushes at once,
// outside Run's grouping, unless a flush that took those changes succeeded
// meanwhile: callers that come together share one flush.
func (s *Store) Sync() error {
	s.mu.Lock()
	target := s.seq
	done := s.durable >= target
	s.mu.Unlock()
	if done {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed {
		return errClosed
	}
	s.mu.Lock()
	done = s.durable >= target
	s.mu.Unlock()
	if done {
		return nil
	}
	return s.flush(false)
}

// flush is Flush; if final, it writes a snapshot, unless the snapshot on
// disk holds everything and there is no journal. s.flushMu is held.
func (s *Store) flush(final bool) error {
	s.mu.Lock()
	seq := s.seq
	if len(s.changed) == 0 && !(final && (s.compact || s.journal != nil)) {
		s.durable = seq // nothing waits to be written
		s.mu.Unlock()
		return nil
	}
	compact := final || s.compact || s.jsize > max(s.snapSize, s.minCompact)
	pendingBytes, urgent := s.pendingBytes, s.urgent
	s.pendingBytes, s.urgent = 0, false
	taken := s.changed
	s.changed, s.taken = s.taken, taken
	s.recs, s.dels = s.recs[:0], s.dels[:0]
	room := len(taken)
	if compact {
		room = len(s.entries) // an entry per inode, mostly
	}
	if cap(s.recs) < room {
		// Room for them all at once: grown by appending, the copy
		// would make as much garbage again.
		s.recs = make([]Entry, 0, room)
	}
	if compact {
		for ik, rs := range s.entries {
			for i := range rs {
				s.recs = append(s.recs, rs[i].entry(ik))
			}
		}
	} else {
		for k := range taken {
			if ik, rs, i := s.find(k); i >= 0 {
				s.recs = append(s.recs, rs[i].entry(ik))
			} else {
				s.dels = append(s.dels, k)
			}
		}
	}
	s.mu.Unlock()

	// Outside s.mu: what changes meanwhile is in s.changed, for the next
	// flush.
	var err error
	if compact {
		err = s.writeSnapshot()
	} else {
		err = s.appendJournal()
	}
	s.dropScratch()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err != nil {
		for k := range taken {
			s.changed[k] = struct{}{}
		}
		s.pendingBytes += pendingBytes
		s.urgent = s.urgent || urgent
	} else {
		s.writes++
		s.written = time.Now()
		s.durable = seq
	}
	if len(taken)*int(unsafe.Sizeof(Key{})) > keepScratch {
		// A map keeps the room it grew to: not the start-up's, when
		// every file was set at once.
		s.taken = map[Key]struct{}{}
	} else {
		clear(taken)
	}
	return err
}

// keepScratch bounds the scratch a flush keeps for the next (bytes): the
// records of a snapshot of thousands of entries, written only once the
// journal outgrew the last one, would otherwise keep megabytes for the
// next, as would the changes of a start-up. The encoding buffer holds a
// chunk, more only for a record larger than one (a long cursor).
const keepScratch = 256 << 10

// dropScratch lets go of scratch larger than keepScratch; s.flushMu is
// held.
func (s *Store) dropScratch() {
	if cap(s.buf) > keepScratch {
		s.buf = nil
	}
	if cap(s.recs)*int(unsafe.Sizeof(Entry{})) > keepScratch {
		s.recs = nil
	}
	if cap(s.dels)*int(unsafe.Sizeof(Key{})) > keepScratch {
		s.dels = nil
	}
}

// encode has write encode through a chunker writing to w, on s.buf, which
// it keeps for the next flush; s.flushMu is held.
func (s *Store) encode(w io.Writer, write func(*chunker) error) error {
	c := newChunker(w, s.buf)
	err := write(&c)
	s.buf = c.buf[:0]
	return err
}

// appendJournal appends s.recs and s.dels to the journal, creating it if
// needed; s.flushMu is held. The records go out a chunk at a time, the
// commit last: until the fdatasync succeeded, what is past s.jsize may be
// an unfinished flush's, which replay ignores and the next append cuts off.
func (s *Store) appendJournal() error {
	if s.journal == nil {
		path := filepath.Join(filepath.Dir(s.path), journalName(s.gen))
		// Nothing of this generation was written yet: whatever a
		// file of its name holds is not part of the checkpoint.
		f, err := createState(path, os.O_WRONLY|os.O_APPEND, 0o640, s.owner)
		if err != nil {
			s.compact = true // not to leave a file behind
			return fmt.Errorf("create checkpoint journal: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			s.compact = true // not to leave the file behind
			return err
		}
		s.journal, s.jsize, s.jtorn = f, 0, false
	}
	if s.jtorn {
		// What a failed append left must not stay before this one's
		// records.
		if err := s.journal.Truncate(s.jsize); err != nil {
			s.compact = true
			return fmt.Errorf("cut checkpoint journal %s back: %w", s.journal.Name(), err)
		}
	}
	s.jtorn = true // until the fdatasync: whatever of it was written
	w := countingWriter{w: s.journal}
	err := s.encode(&w, func(c *chunker) error { return c.journalFlush(s.recs, s.dels) })
	if w.err != nil {
		return fmt.Errorf("append to checkpoint journal: %w", w.err)
	}
	if err != nil {
		return err // an encoding error
	}
	s.syncs.Add(1)
	if err := syscall.Fdatasync(int(s.journal.Fd())); err != nil {
		return fmt.Errorf("sync checkpoint journal %s: %w", s.journal.Name(), err)
	}
	s.jsize += w.n
	s.jtorn = false
	return nil
}

// writeSnapshot writes s.recs, every entry, as the snapshot of a new
// generation, then removes the journal of the old one; s.flushMu is held.
func (s *Store) writeSnapshot() error {
	slices.SortFunc(s.recs, compareEntries)
	gen := s.nextGen
	// Tried once: if the write fails, the snapshot on disk may be this
	// one or the one before, so that neither journal can be appended to.
	// (An entry that cannot be encoded fails it too, leaving the one
	// before: the next flush is a snapshot again, as it would be anyway.)
	s.nextGen++
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	written := time.Now()
	size, err := writeFileOwned(s.path, func(w io.Writer) error {
		return s.encode(w, func(c *chunker) error { return c.snapshot(s.recs, gen, written) })
	}, s.owner)
	if err != nil {
		s.compact = true
		return err
	}
	s.syncs.Add(2) // the file's and its directory's
	old := filepath.Join(filepath.Dir(s.path), journalName(s.gen))
	s.gen, s.snapSize, s.jsize, s.jtorn, s.compact = gen, size, 0, false, false
	// A journal of s.gen, if a failed snapshot write left one on disk, was
	// never created: nothing else to remove. A journal left behind is
	// stale: ignored, and removed at the next Open.
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove stale checkpoint journal", "err", err)
	}
	return nil
}

// Syncs returns how many times the store fsynced or fdatasynced a file.
func (s *Store) Syncs() int64 { return s.syncs.Load() }

// retryAfter is how long Run waits before it tries again a flush that
// failed.
const retryAfter = time.Second

// Policy says when Run writes what changed. After the first change since
// the last write, Run waits Delay, then writes if the file offsets moved
// by Bytes or more meanwhile, or a change is urgent (a journal cursor's,
// whose Offset counts entries); otherwise it waits until they have, or
// until MaxDelay after that first change, whichever comes first. So a
// crash loses the record of at most max(Bytes, what was acknowledged in
// Delay) of file data acknowledged within the last MaxDelay (plus what was
// acknowledged while the last write ran), and busy files are written at
// most about rate/Bytes times a second (never more than 1/Delay), quiet
// ones once per MaxDelay: each write is an fdatasync, whose cost does not
// depend on how much it carries.
type Policy struct {
	Delay    time.Duration // > 0
	Bytes    int64         // 0: write at Delay, as if every change were urgent
	MaxDelay time.Duration // taken as Delay if shorter
}

// Run flushes until ctx is done, as p says, so that a flush takes the
// changes of a spell together (one fdatasync for all the acknowledgements
// of a few milliseconds, or of a second of a quiet agent). Nothing
// changing, it does nothing: an idle agent writes nothing and is not
// woken. A flush that fails is tried again after a second.
func (s *Store) Run(ctx context.Context, p Policy) {
	s.mu.Lock()
	s.fullAt = p.Bytes
	s.mu.Unlock()
	wait := time.NewTimer(p.Delay)
	wait.Stop()
	defer wait.Stop()
	sleep := func(d time.Duration, or <-chan struct{}) bool {
		// Since Go 1.23 (go.mod), Reset after Stop leaves no stale
		// value in wait.C: nothing to drain.
		wait.Reset(d)
		defer wait.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-wait.C:
		case <-or:
		}
		return true
	}
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		// Until the changes are due (Bytes, a cursor), at most MaxDelay,
		// and then until Delay has passed: a quiet agent's flush waits
		// on one timer, not on Delay's and then MaxDelay's (every
		// timer that fires is a wake-up of the whole process).
		first := time.Now()
		for !s.isDue() {
			rest := p.MaxDelay - time.Since(first)
			if rest <= 0 {
				break
			}
			if !sleep(rest, s.due) {
				return
			}
		}
		if rest := p.Delay - time.Since(first); rest > 0 {
			if !sleep(rest, nil) {
				return
			}
		}
		// A token left by changes this flush takes: not to cut the
		// next spell short.
		select {
		case <-s.due:
		default:
		}
		err := s.Flush()
		switch {
		case err != nil:
			if !failing {
				s.log.Error("cannot write checkpoint; offsets are kept in memory and written when it works again", "path", s.path, "err", err)
			}
			failing = true
			if !sleep(retryAfter, nil) {
				return
			}
			s.signal(s.kick)
		case failing:
			s.log.Info("checkpoint written again", "path", s.path)
			failing = false
		}
	}
}

// isDue reports whether what changed is to be written without waiting
// longer (see Policy).
func (s *Store) isDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urgent || s.fullAt <= 0 || s.pendingBytes >= s.fullAt
}

// Close writes the checkpoint as a snapshot alone, removing the journal,
// and releases the data directory. The store cannot be used after.
func (s *Store) Close() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.flush(true)
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	s.lock.Close()
	return err
}
