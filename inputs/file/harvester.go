package file

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs/file/multiline"
)

// fileState tells whether the harvested file is still under the name it
// was opened by.
type fileState uint8

const (
	stateActive  fileState = iota // the path still names this file
	stateRenamed                  // rotated away; another name, or none, holds it
	stateRemoved                  // unlinked: only our descriptor keeps it
)

func (s fileState) String() string {
	return [...]string{"active", "renamed", "removed"}[s]
}

// removedIdle is how long a removed file, read to its end, stays open in
// case its writer still appends; a removed file holds disk space.
const removedIdle = 5 * time.Second

// harvester reads one file, through one descriptor, from its committed
// offset to its end and on as it grows, whatever happens to its name.
//
// Its owner is the goroutine running it (loop); while it is parked, the
// goroutine of the input that took it out of the poll queue (pollDue,
// evictIdle, closeParked). What the input does for it through host runs on
// its owner goroutine and may read its owner-only fields.
type harvester struct {
	// immutable after newHarvester (watchPath: set by the input as it
	// registers the harvester, before it first runs)
	env  *harvestEnv
	host host
	f    *os.File
	tr   *tracker
	// ctx ends the harvester; cancel ends it (then Input.signal wakes it
	// if parked).
	ctx harvestCtx
	// watchPath is the name it is registered under for fsnotify events
	// (Input.byPath); see also harvesterRare.watchReal.
	watchPath string

	// under Input.mu: written by the owner holding it (setState,
	// setIdentity, setFingerprint), read by the owner without it and by
	// the input with it
	path string // its name: the one it was opened by, until renamed
	// id is the file's identity. Its Dev and Ino, the descriptor's, are
	// set by newHarvester and never written again (setIdentity writes the
	// fingerprint alone): they are read without Input.mu (key).
	id logagent.FileID
	// state: at the end

	// under Input.mu, written by the input: parked (at the end) is set
	// while the harvester has no goroutine, an entry of the input's poll
	// queue at pollIdx (-1 when not queued); adoptAt is where a pending
	// file is to start once the original adopted it (-1: not adopted).
	// wake holds a token when the file is to be looked at again
	// (Input.signal): the harvester holds one only while it is not parked
	// (a parked one is woken by unparking it), from the first signal or
	// wait (Input.wakeLocked) until it parks again, so that idle files
	// hold none; its goroutine reads it through host.wakeChan.
	wake    chan struct{}
	adoptAt int64
	pollIdx int32

	// atomic: flags holds the harvester's flags (hflag), side by side
	// with pollIdx in one word.
	flags atomic.Uint32
	// intactAt is when the file last held the content being read (the
	// generation of h.id); unix nanos.
	intactAt atomic.Int64
	size     atomic.Int64 // last size seen, for status
	readPos  atomic.Int64 // end of the last message handed out, for status

	// owner only
	src *logagent.Source // of the messages read from now on
	// rare holds what only some files need (nil until one of them is
	// set): a harvester is held per open file.
	rare *harvesterRare
	// dir is the directory of the file's path, or of its link's target
	// while real is set, as dirWatched last looked it up; "" once either
	// changed (setIdentity, rename): looked up again.
	dir string
	// seen is the file's inode times and link count at the last look at
	// its end, and seenOffset the read offset then; cheapPolls (at the
	// end) counts the polls since that only compared them.
	seen       statSig
	seenOffset int64
	// endUnseen (at the end) is set when the harvester parked after a short
	// read without looking at the inode (parkAfterShortRead): seen is
	// then of an earlier look, and endReadAt is when the read found the
	// end, in unix nanos (compared with the file's modification time:
	// wall clock).
	endReadAt int64

	blk    *block
	r, w   int   // blk.buf[r:w] is read but not yet in a message
	offset int64 // file offset of blk.buf[w]: the next byte to read
	// joiner, with multiline, cuts events instead of the chunker; the
	// event it holds open is in blk.buf[r:w] (nil without multiline).
	joiner *multiline.Joiner

	// lastData is when the last read returned data. The input reads it
	// of a parked harvester, whose owner wrote it before parking (under
	// Input.mu).
	lastData time.Time
	// nameCheckedAt is when the name was last looked up (nameDue).
	nameCheckedAt time.Time
	lastRead      time.Time // when the last read returned data
	// check is a fast hash (checkHash) of the first checkLen bytes, known
	// to be those of h.id when checkLen == h.id.FingerprintLen: the
	// periodic look at the content compares it instead of computing the
	// fingerprint again. -1: not known.
	check uint64
	// tail is a fast hash (checkHash) of the tailLen bytes (at most
	// tailBytes) just before offset, taken from the read buffer as they
	// are read (no read of its own). A file rewritten in place with the
	// same first bytes, to the same size or past the offset, is told by
	// them (tailChanged); 0: not known.
	tail uint64
	// Owner-only counters, narrow to share one word: checkLen (see
	// check) is at most a fingerprint's length; tailLen at most
	// tailBytes; idlePolls counts polls that found nothing (pollDelay),
	// up to maxPollShift; cheapPolls stops below fullPollEvery (quiet).
	checkLen   int32
	tailLen    uint16
	idlePolls  uint8
	cheapPolls uint8

	// The small fields last, side by side in one word, each under the
	// rule of its group above: a harvester is held per open file, and a
	// word more may take it to the next size class (see
	// TestHarvesterSize).
	state     fileState // under Input.mu, written by the owner
	parked    bool      // under Input.mu, written by the input
	evicted   bool      // under Input.mu, written by the input: closed for room (evictIdle)
	endUnseen bool      // owner only
	// atEnd is set when the last read stopped at the end of the file.
	atEnd bool // owner only
	// recorded is set once the file's checkpoint entry was on disk
	// before its first message went out (emit).
	recorded bool // owner only
	// wideWake is set when the first read after the file's last wake
	// from idle brought a tiny block's worth or more: the next wake
	// reads into a full block at once (see ensureRoom).
	wideWake bool // owner only
}

// hflag is a flag of harvester.flags.
type hflag uint32

const (
	// flagForceClose is set when close_removed_after closes the file
	// before it was read to its end.
	flagForceClose hflag = 1 << iota
	// flagNameEvent is set by an fsnotify event that named the file's
	// path (created, renamed, removed), until its name is looked up.
	flagNameEvent
	// flagPending is set while the file may be a copy made by
	// copytruncate (see Input.copyCheck): it is held open, unread.
	flagPending
	// flagHolding is set while joiner holds an event open: the file is
	// not closed as idle (atEOF, Input.evictIdle) before its timeout
	// sent it.
	flagHolding
)

// flag reports whether f is set.
func (h *harvester) flag(f hflag) bool { return h.flags.Load()&uint32(f) != 0 }

// setFlag sets f to v, and reports whether it was set before.
func (h *harvester) setFlag(f hflag, v bool) (was bool) {
	var old uint32
	if v {
		old = h.flags.Or(uint32(f))
	} else {
		old = h.flags.And(^uint32(f))
	}
	return old&uint32(f) != 0
}

// harvesterRare is what of a harvester only some files need: read through
// a followed link, held pending, copytruncated. Owner only, but for
// watchReal.
type harvesterRare struct {
	// real is the target of the followed link it was opened by while path
	// is the link ("" otherwise): its directory is the file's, where it is
	// watched and where it is looked for once rotated.
	real string
	// watchReal is real as the harvester was registered, under it too
	// (Input.byPath): set by the input as it registers the harvester,
	// before it first runs; immutable after.
	watchReal string
	// pendingSince is when a pending file began to wait for its copy
	// check, in unix nanos (compared with intactAt: wall clock).
	pendingSince int64
	// seenGens are the earlier generations this descriptor read before
	// copytruncate rotations replaced them.
	seenGens []logagent.FileID
}

// more returns h.rare, made if nil.
func (h *harvester) more() *harvesterRare {
	if h.rare == nil {
		h.rare = &harvesterRare{}
	}
	return h.rare
}

// real returns the target of the followed link h's file was opened by
// while its path is the link, or "" (see harvesterRare).
func (h *harvester) real() string {
	if h.rare == nil {
		return ""
	}
	return h.rare.real
}

// seenGens returns the generations seen through copytruncate (see
// harvesterRare).
func (h *harvester) seenGens() []logagent.FileID {
	if h.rare == nil {
		return nil
	}
	return h.rare.seenGens
}

// key returns h's file's device and inode, without Input.mu (see id).
func (h *harvester) key() devIno { return devIno{h.id.Dev, h.id.Ino} }

// openedFile is a file its input opened and decided to read.
type openedFile struct {
	f       *os.File
	path    string          // the name it was opened by
	real    string          // the target of the followed link path is, or ""
	id      logagent.FileID // Dev, Ino: the descriptor's, its key in Input.byInode
	offset  int64           // where reading starts
	size    int64
	state   fileState
	pending bool // may be a copytruncate copy: held unread (copyCheck)
	// recorded: the checkpoint has the file's entry on disk, under
	// this identity and path, already (see emit).
	recorded bool
}

// newHarvester returns a harvester of o.f, which is positioned at
// o.offset, with the tracker of its offsets and the Source of its
// messages. ctx is its input's: it gives the harvester's context its
// values, but the harvester ends when cancelled (see harvestCtx), not with
// it. It runs once its input registered it.
func newHarvester(ctx *context.Context, env *harvestEnv, hst host, o openedFile, src *logagent.Source, tr *tracker) *harvester {
	now := time.Now()
	h := &harvester{
		env:      env,
		host:     hst,
		f:        o.f,
		tr:       tr,
		path:     o.path,
		id:       o.id,
		state:    o.state,
		pollIdx:  -1,
		adoptAt:  -1,
		src:      src,
		offset:   o.offset,
		lastData: now,
		checkLen: -1,
		recorded: o.recorded,
	}
	if o.real != "" {
		h.more().real = o.real
	}
	if env.multiline != nil {
		h.joiner = multiline.New(*env.multiline)
	}
	h.ctx.parent = ctx
	h.size.Store(o.size)
	h.readPos.Store(o.offset)
	h.intactAt.Store(now.UnixNano())
	h.setFlag(flagPending, o.pending)
	return h
}

// cancel ends the harvester: what it waits on returns, and it closes its
// file once it runs (a parked one: once Input.signal wakes it).
func (h *harvester) cancel() { h.ctx.cancel() }

// chunk is a logagent.Chunk with what its completion must release.
type chunk struct {
	logagent.Chunk
	blk *block
	tr  *tracker
	tc  *trackedChunk
}

var chunkPool sync.Pool

func getChunk() *chunk {
	if c, ok := chunkPool.Get().(*chunk); ok {
		return c
	}
	c := &chunk{}
	c.OnDone = c.finish
	return c
}

func (c *chunk) finish() {
	c.tr.done(c.tc)
	c.blk.release()
	clear(c.Messages) // drop references into the block
	c.Messages = c.Messages[:0]
	c.blk, c.tr, c.tc = nil, nil, nil
	chunkPool.Put(c)
}

// loop runs the harvester, on a worker of the input (runHarvester), until
// it parks or is done; done, it closes the file and tells its host.
func (h *harvester) loop() {
	if h.run(&h.ctx) {
		return
	}
	h.cancel()
	h.close()
}

// run reads until the file is done with or ctx is cancelled, and returns
// false then; or until the file is idle, and returns true once parked.
func (h *harvester) run(ctx context.Context) (parked bool) {
	var poll *time.Timer
	// wake is h.wake, taken once this run first waits: it stays h's
	// until h parks, which ends the run.
	var wake <-chan struct{}
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	if h.flag(flagPending) {
		poll = time.NewTimer(h.env.pollInterval)
		if !h.waitCopyCheck(ctx, poll) {
			return false
		}
	}
	for {
		if ctx.Err() != nil {
			return false
		}
		n, err := h.readOnce(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.env.log.Error("read failed; the file is retried on the next scan", "path", h.path, "err", err)
			}
			return false
		}
		if n > 0 {
			h.idlePolls = 0
			if h.atEnd && h.parkAfterShortRead() {
				return true
			}
			continue
		}
		if h.eventDue(time.Now()) {
			// An open event timed out: sent now, with no line after it.
			if err := h.cut(ctx, false); err != nil {
				return false
			}
		}
		if h.atEOF() {
			return false
		}
		if h.size.Load() > h.offset {
			// Written since the read (or truncated and written again,
			// which may have come as one event): read on, do not wait
			// for another event.
			continue
		}
		d := h.idleDelay()
		// A file under its name waits parked. A rotated or removed one
		// (few at a time) keeps its goroutine: it must notice being
		// done, and events name it no more.
		if h.state == stateActive && h.host.park(h, d) {
			return true
		}
		if poll == nil {
			poll = time.NewTimer(d)
		} else {
			poll.Reset(d) // Go 1.23+: no stale value left to drain
		}
		if wake == nil {
			wake = h.host.wakeChan(h)
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		case <-poll.C:
		}
	}
}

// parkAfterShortRead parks a file read to its end by a short read, without
// the read of 0 and the looks at its end (content, name, idleness) that
// follow otherwise, and reports whether it did. Only a file under its name
// in a watched directory, with neither its name nor its content due to be
// looked at: whatever happens to it after the read (a write, a truncation,
// a rename or removal) raises an event that wakes it, or, if the event came
// before it parks, leaves a signal that keeps it from parking. Its inode is
// not looked at either (that would be an fstat per write for a file
// written every few milliseconds): the read stopped at the end,
// so the size was h.offset then, and the next look at the end (sawEnd)
// takes a modification since the read as a possible truncation and rewrite
// to the same size, to be told from the appends read (see atEOF).
func (h *harvester) parkAfterShortRead() bool {
	if h.state != stateActive || h.flag(flagNameEvent) || h.ctx.Err() != nil {
		return false
	}
	now := h.lastRead
	if h.contentDue(now) || !h.dirWatched() || h.nameStale(now) {
		return false
	}
	// Grown since the read, or truncated: the event of that change wakes
	// it, or keeps it from parking.
	h.size.Store(h.offset)
	h.seenOffset, h.endUnseen, h.endReadAt = h.offset, true, now.UnixNano()
	h.cheapPolls = 0
	h.dropIdleBlock()
	return h.host.park(h, h.idleDelay())
}

// pollDelay is how long an idle file waits before it is looked at again
// unless an event wakes it first. Where fsnotify watches the directory,
// writes, renames and truncations of a file under its name wake its
// harvester: polling covers what events do not tell (a directory whose
// events stop coming, see Input.deafen; closing an inactive file), and
// waits PollInterval<<9 (128 s by default). Otherwise the wait grows from
// PollInterval while nothing happens, up to PollInterval<<3 (2s) where
// nothing watches, <<7 for a rotated file, which events no longer name.
func (h *harvester) pollDelay() time.Duration {
	watched := h.dirWatched()
	if watched && h.state == stateActive {
		return h.env.pollInterval << 9
	}
	shift := 3
	if watched {
		shift = maxPollShift
	}
	d := h.env.pollInterval << min(int(h.idlePolls), shift)
	h.idlePolls = min(h.idlePolls+1, maxPollShift)
	return d
}

// maxPollShift is the most pollDelay's back-off doubles PollInterval by (a
// rotated or removed file in a watched directory, which events no longer
// name), and where idlePolls stops. An active file in a watched directory
// waits PollInterval<<9 at once; one nothing watches, <<3 at most.
const maxPollShift = 7

// idleDelay is how long the file, read to its end, waits to be looked at
// again unless woken: pollDelay, or until the event joiner holds open times
// out, if sooner.
func (h *harvester) idleDelay() time.Duration {
	d := h.pollDelay()
	if h.joiner != nil {
		if at, ok := h.joiner.Deadline(); ok {
			d = max(min(d, time.Until(at)), time.Millisecond)
		}
	}
	return d
}

// eventDue reports whether the event joiner holds open has timed out at
// now: cut sends it.
func (h *harvester) eventDue(now time.Time) bool {
	if h.joiner == nil {
		return false
	}
	at, ok := h.joiner.Deadline()
	return ok && !now.Before(at)
}

// resetJoiner forgets the event joiner held open: its bytes were dropped
// with the read buffer (the file is read again from elsewhere).
func (h *harvester) resetJoiner() {
	if h.joiner != nil {
		h.joiner.Reset()
		h.setFlag(flagHolding, false)
	}
}

// readOnce reads what the file has past h.offset, up to a block, and
// hands out the whole messages it holds. It returns 0 at the end of file.
func (h *harvester) readOnce(ctx context.Context) (int, error) {
	woke := h.blk == nil
	if err := h.ensureRoom(ctx); err != nil {
		return 0, err
	}
	room := len(h.blk.buf) - h.w
	n, err := h.f.Read(h.blk.buf[h.w:])
	if woke {
		h.wideWake = n >= tinyBlock
	}
	// A short read of a regular file stopped at its end: the chunk cut
	// from it is CaughtUp. Reading goes on until a read returns 0 all
	// the same (see run).
	h.atEnd = n < room
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			h.dropIdleBlock()
			return 0, nil
		}
		return 0, err
	}
	now := time.Now()
	// A short fingerprint (a file new or just truncated) grows with what
	// is read: if the file is copytruncated before the check at end of
	// file extended it, its copy must still be recognisable. The look at
	// the content, when due, extends it too.
	extended := false
	if now.Sub(h.lastRead) >= recheckAfter || h.contentDue(now) {
		if replaced, tail := h.lookAtContent(h.offset + int64(n)); replaced || h.tailChanged(tail) {
			// Truncated and written past our offset while we were not
			// reading (paused by outputs, or idle): what was just read
			// is the middle of the new content, not the rest of ours.
			if fi, err := h.f.Stat(); err == nil {
				h.truncated(fi.Size())
				h.lastRead = now
				return n, nil
			}
		}
		// The bytes just read were there before this look: ours.
		h.intactAt.Store(now.UnixNano())
		extended = true
	}
	h.lastRead = now
	h.w += n
	h.offset += int64(n)
	h.lastData = now
	// buf[:w] holds the bytes up to offset, contiguous.
	k := min(h.w, tailBytes)
	h.tail, h.tailLen = checkHash(h.blk.buf[h.w-k:h.w]), uint16(k)
	if !extended {
		h.extendFingerprint(h.offset)
	}
	return n, h.cut(ctx, false)
}

// recheckAfter is the pause in reading after which the file's first bytes
// are checked again before what was read is used.
const recheckAfter = 100 * time.Millisecond

// cut hands out the whole messages in blk.buf[r:w]; with final, the last
// line too, newline or not.
//
// cut is the one place where bytes read become messages, and emit the one
// place where messages leave the harvester. A stage that changes messages
// (joining the lines of a multiline event) goes between the two, where
// marked below, under this contract:
//   - every message's Offset is the file offset just past the bytes it
//     covers, and Offsets grow from message to message: the tracker
//     commits the end of a chunk (end) once it is delivered;
//   - used counts the bytes of blk.buf[r:w] covered by the messages handed
//     out. Bytes a stage holds back (the lines of an event not complete
//     yet) are not in used: they stay in blk.buf[r:w] and come to cut again
//     with the next read, or with final set once the file is done, so that
//     the offset committed never passes a line not yet published;
//   - bodies point into blk.buf (the chunk holds the block until it is
//     acknowledged), or into memory of the stage's own.
func (h *harvester) cut(ctx context.Context, final bool) error {
	if h.blk == nil || h.r == h.w {
		return nil
	}
	c := getChunk()
	base := h.offset - int64(h.w-h.r)
	var used int
	if h.joiner != nil {
		// Lines joined into events. The event still open stays in
		// blk.buf[r:w], out of used: the offset committed never passes
		// its first line. Its timeout runs on the clock, not the read
		// time; finished files (final) send it.
		c.Messages, used = h.joiner.Cut(h.blk.buf[h.r:h.w], base, h.src, time.Now(), c.Messages[:0], final)
		_, open := h.joiner.Open()
		h.setFlag(flagHolding, open)
	} else {
		c.Messages, used = h.env.chunker.Cut(h.blk.buf[h.r:h.w], base, h.src, h.lastData, c.Messages[:0], final)
	}
	if used == 0 {
		chunkPool.Put(c)
		return nil
	}
	h.r += used
	return h.emit(ctx, c, base+int64(used), used)
}

// emit publishes the chunk c of messages covering the file up to end (used
// bytes read from blk): the tracker is told of it, so that its
// acknowledgement (chunk.finish, as c.OnDone) commits end to the
// checkpoint, and the block is held until then. It blocks while the outputs
// are behind, and returns an error only when ctx is done.
func (h *harvester) emit(ctx context.Context, c *chunk, end int64, used int) error {
	h.readPos.Store(end)
	h.blk.retain()
	c.blk, c.tr, c.tc = h.blk, h.tr, h.tr.add(end)
	c.CaughtUp = h.atEnd
	h.env.metrics.addRead(len(c.Messages), used)
	if !h.recorded {
		// The file's identity reaches the checkpoint on disk before
		// anything of it is delivered: a crash now, and a rename out of
		// the globs before the restart, and the restart still finds it
		// by identity (recoverRenamed). Should the write fail, reading
		// goes on: the offsets stay in memory.
		h.env.metrics.ownFlushes.Add(1)
		h.env.store.Sync()
		h.recorded = true
	}
	return h.env.publish(ctx, &c.Chunk)
}

// ensureRoom makes sure blk has room to read into, and that what is not in
// a message yet at blk.buf[r:w] (an unfinished line; with multiline, an open
// event and the line after it) can grow to env.need bytes, so that the
// chunker or the joiner can always make progress.
//
// A file woken from idle with nothing known to wait (it parked at its end:
// thousands of files each written a line now and then) reads into a tiny
// block first (one known to have less than a miniBlock unread, into a
// block of that size), not into a 64 KiB one for a line: memory touched and
// garbage follow the bytes. Should the read fill it, the next one moves
// what is unfinished into a block of full size, by the rule above, and
// the next wake reads into a full block at once (a file written more
// between wakes than a tiny block holds: wideWake).
func (h *harvester) ensureRoom(ctx context.Context) error {
	need := h.env.need
	if h.blk != nil && len(h.blk.buf)-h.r >= need && len(h.blk.buf)-h.w >= minRead {
		return nil
	}
	if behind := h.backlog(); h.blk == nil && behind < tinyBlock && !h.wideWake {
		pool := h.env.tiny
		if behind > 0 && behind < miniBlock {
			// Known to be short: a file opened with a line or two
			// unread (every quiet file, when the agent starts again).
			pool = h.env.mini
		}
		if nb := pool.tryGet(); nb != nil {
			h.blk, h.r, h.w = nb, 0, 0
			return nil
		}
	}
	pool := h.env.small
	if behind := h.backlog(); behind > int64(h.env.small.size)/2 || h.w-h.r+need > h.env.small.size {
		pool = h.env.large
		if behind > backlogBlocks*int64(h.env.large.size) && h.env.onBacklog != nil {
			h.env.onBacklog()
		}
	}
	nb := pool.tryGet()
	if nb == nil {
		// Waiting for budget while holding a block deadlocks once every
		// harvester holds one and waits for another (or one block is the
		// whole budget): let go of ours first, keeping the unfinished
		// line aside. Blocks are then held only by chunks in flight,
		// which outputs release.
		var carry []byte
		if h.blk != nil {
			carry = append(carry, h.blk.buf[h.r:h.w]...)
			h.blk.release()
			h.blk = nil
		}
		h.r, h.w = 0, 0
		// A small block holds the unfinished line and a read, and is
		// charged at most the input's reserve: waiting for it depends on
		// this input's outputs alone, never on another input's.
		var err error
		if nb, err = h.env.small.get(ctx); err != nil {
			return err
		}
		h.w = copy(nb.buf, carry)
		h.blk = nb
		return nil
	}
	if h.blk != nil {
		carry := copy(nb.buf, h.blk.buf[h.r:h.w])
		h.blk.release()
		h.r, h.w = 0, carry
	} else {
		h.r, h.w = 0, 0
	}
	h.blk = nb
	return nil
}

// backlogBlocks is how many read blocks behind a file is far behind: at
// 100,000 lines a second, 0.2 s of lines. Config.OnBacklog is told.
const backlogBlocks = 4

// minRead is the least room worth a read() call.
const minRead = 4096

// tinyBlock is the size of the block a file woken from idle reads into
// first (see ensureRoom).
const tinyBlock = 2 * minRead

// miniBlock is the size of the block a file with less than that known to
// be unread reads into first (see ensureRoom): at a start, thousands of
// quiet files each hold their block until their lines are delivered.
const miniBlock = 1024

func (h *harvester) backlog() int64 {
	return h.size.Load() - h.offset
}

// dropIdleBlock lets go of the read buffer when nothing waits in it, so
// that idle files hold no memory.
func (h *harvester) dropIdleBlock() {
	if h.blk != nil && h.r == h.w {
		h.blk.release()
		h.blk = nil
		h.r, h.w = 0, 0
	}
}

// atEOF looks at the file once everything it held is read: truncated,
// renamed, removed, grown past its fingerprint, or idle for long enough to
// be closed. It returns true when the harvester is done.
func (h *harvester) atEOF() bool {
	now := time.Now()
	fi, err := h.f.Stat()
	if err != nil {
		h.env.log.Error("stat failed", "path", h.path, "err", err)
		return true
	}
	// Modified but neither grown nor read since the last look: truncated
	// and written again to the same size. The content is looked at now,
	// not at the next periodic check.
	rewritten := h.sawEnd(fi)
	if fi.Size() < h.offset {
		h.truncated(fi.Size())
		return false
	}
	// The content is looked at once a second, by the read before this
	// or here.
	if h.contentDue(now) || rewritten {
		replaced, tail := h.lookAtContent(fi.Size())
		if replaced {
			h.truncated(fi.Size())
			return false
		}
		if rewritten && h.tailChanged(tail) {
			h.env.log.Warn("file rewritten in place (same first bytes); reading it again from the start", "path", h.path, "size", fi.Size())
			h.truncated(fi.Size())
			return false
		}
		h.intactAt.Store(now.UnixNano())
	}
	if h.state == stateActive && h.nameDue(now) {
		h.checkName(fi)
	}
	idle := now.Sub(h.lastData)
	closeInactive := h.env.closeInactive
	switch h.state {
	case stateActive:
		if closeInactive > 0 && idle >= closeInactive && h.tr.inflight() == 0 && !h.flag(flagHolding) {
			h.env.log.Debug("closing inactive file", "path", h.path, "idle", idle.Round(time.Second))
			return true
		}
	case stateRenamed:
		if idle >= closeInactive {
			return h.finish()
		}
	case stateRemoved:
		if idle >= min(closeInactive, removedIdle) {
			return h.finish()
		}
	}
	return false
}

// finish hands out a last line without newline, then waits for every
// chunk to be acknowledged before the file is closed: closing earlier could
// have a later scan reopen it from a stale offset.
func (h *harvester) finish() bool {
	// h.ctx, not a context of its own: an input stopping (a reload that
	// replaces it) must not wait here for outputs that are down; the last
	// line, not committed, is read again.
	if err := h.cut(&h.ctx, true); err != nil {
		return true
	}
	if h.tr.inflight() > 0 {
		return false
	}
	if h.state == stateRemoved {
		h.tr.forget()
	}
	h.env.log.Info("closed rotated file read to its end", "path", h.path, "state", h.state.String(), "offset", h.offset)
	return true
}

func (h *harvester) close() {
	if h.blk != nil {
		h.blk.release()
		h.blk = nil
	}
	h.f.Close()
	h.host.exited(h)
}

// maxSeenGens bounds the generations a harvester remembers (seenGens).
const maxSeenGens = 16

// truncated handles a file cut back below what was read (copytruncate):
// the rest of the old content, if a copy of it is found in the same
// directory, is read from the copy (host.adoptCopy); the file itself
// starts over at 0. See copytruncate.go.
func (h *harvester) truncated(size int64) {
	readPos := h.offset - int64(h.w-h.r)
	h.env.log.Warn("file truncated; reading it again from the start", "path", h.path, "size", size, "read_offset", readPos)
	h.host.adoptCopy(h, readPos)
	rare := h.more()
	rare.seenGens = append(rare.seenGens, h.id)
	if len(rare.seenGens) > maxSeenGens {
		rare.seenGens = rare.seenGens[1:]
	}
	if _, err := h.f.Seek(0, io.SeekStart); err != nil {
		h.env.log.Error("seek failed", "path", h.path, "err", err)
	}
	h.offset = 0
	h.r, h.w = 0, 0
	h.resetJoiner()
	h.tailLen = 0
	h.dropIdleBlock()
	if id, fi, err := identify(h.f, h.env.fingerprintBytes); err == nil {
		h.setIdentity(h.path, id)
		h.size.Store(fi.Size())
	}
	h.tr.reset(h.id)
	h.readPos.Store(0)
	h.env.metrics.truncations.Add(1)
}
