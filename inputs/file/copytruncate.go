package file

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// Copytruncate. A rotation that copies a file (app.log → app.log.1) and
// then truncates it in place leaves the harvester of app.log at an offset
// past the new end. What it had not read yet is in the copy:
//
//   - a new file next to one being read, whose first bytes are its (or
//     which is still empty), is opened but held unread, pending
//     (Input.open, originalOf), until it is adopted or released
//     (harvester.waitCopyCheck, Input.copyCheck);
//   - the harvester of the original notices the truncation (its size below
//     its offset at atEOF, or its first or last bytes read changed:
//     lookAtContent, tailChanged, sawEnd), calls harvester.truncated, and
//     its host's adoptCopy finds the copy: a pending harvester is adopted
//     (Input.adopt) from where the original was read, another file is
//     started there; copies of generations never seen while reading was
//     paused are read from the start (missedGeneration);
//   - a file truncated while the agent was down is recovery's (see
//     resumeCopy in recovery.go).

// originalOf returns the harvester of the file a new file at path may be
// a copytruncate copy of: the file being read whose name is a prefix of
// path's (app.log for app.log.1 or app.log-20261122), or nil. A few map
// look-ups, so that opening many files stays linear.
func (in *Input) originalOf(path string) *harvester {
	dir, base := filepath.Dir(path), filepath.Base(path)
	in.mu.Lock()
	defer in.mu.Unlock()
	for i := len(base) - 1; i > 0; i-- {
		if h := in.byPath[filepath.Join(dir, base[:i])]; h != nil && !h.flag(flagPending) {
			return h
		}
	}
	return nil
}

// sibling is a regular file of a directory, opened for a look.
type sibling struct {
	name, path string
	f          *os.File
	fi         os.FileInfo
	key        devIno
}

// siblings calls visit for every regular file of dir that is not skip and
// not harvested yet, opened for reading. visit keeps the file (and closes
// it later) by returning keep; otherwise it is closed. stop ends the walk.
func (in *Input) siblings(dir string, skip devIno, visit func(sibling) (keep, stop bool)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // links are not followed here, nor FIFOs opened
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		dev, ino, _ := statID(fi)
		key := devIno{dev, ino}
		if key == skip || in.isOpen(key) {
			continue
		}
		f, fi, err := openRegular(p)
		if err != nil {
			continue
		}
		if d, i, _ := statID(fi); (devIno{d, i}) != key {
			f.Close() // replaced since the look
			continue
		}
		keep, stop := visit(sibling{name: e.Name(), path: p, f: f, fi: fi, key: key})
		if !keep {
			f.Close()
		}
		if stop {
			return
		}
	}
}

// copyCheck decides, for the pending harvester h of a new file, whether
// the file may be the copy made by copytruncate of a file being read in the
// same directory: its first bytes are that file's (all of them while it is
// shorter than a fingerprint, as while the copy is being written). Such a
// file is held: the original's harvester adopts it when it sees its
// truncation (adoptCopy), reading it from where the original was. It is
// released, to be read from the start as a file of its own, once the
// original has been seen intact for a scan interval after the copy
// appeared (however long the original's reading is paused).
func (in *Input) copyCheck(h *harvester, id logagent.FileID) (hold bool) {
	if id.FingerprintLen == 0 {
		return true // empty: nothing to read or compare yet
	}
	orig := in.originalOf(h.path)
	if orig == nil {
		return false
	}
	in.mu.Lock()
	origID := orig.id
	in.mu.Unlock()
	same := false
	if id.FingerprintLen == in.cfg.FingerprintBytes && origID.FingerprintLen == id.FingerprintLen {
		same = origID.Fingerprint == id.Fingerprint
	} else if fp, n, err := fingerprint(orig.f, id.FingerprintLen); err == nil && n == id.FingerprintLen {
		same = fp == id.Fingerprint
	}
	return same && orig.intactAt.Load() < h.rare.pendingSince+int64(in.cfg.ScanInterval)
}

// adoptCopy is called by the harvester of a truncated file. It finds, in
// the same directory, the copy of the content it was reading (same first
// bytes, another inode) and reads it from readPos, where reading was.
//
// When reading was paused (outputs behind) across more than one
// copytruncate rotation, the generations in between were copied away and
// truncated without this harvester ever seeing them: they are the rotated
// copies (names starting with the file's name) written since the content
// was last seen intact whose first bytes are no generation this harvester
// read, and which nothing reads yet. They are read from the start.
func (in *Input) adoptCopy(orig *harvester, readPos int64) {
	dir := filepath.Dir(orig.path)
	foundCopy := false
	// A copy opened when it appeared is held by a pending harvester.
	for _, h := range in.pendingIn(dir) {
		if ok, _ := sameContent(h.f, orig.id); ok {
			fi, err := h.f.Stat()
			if err != nil {
				continue
			}
			from := min(readPos, fi.Size())
			in.log.Info("reading the rest of a truncated file from its copy", "copy", h.path, "from", from, "size", fi.Size())
			in.adopt(h, from)
			foundCopy = true
			break
		}
	}
	base := filepath.Base(orig.path)
	in.siblings(dir, orig.key(), func(sf sibling) (keep, stop bool) {
		start := int64(-1)
		if !foundCopy {
			if ok, _ := sameContent(sf.f, orig.id); ok {
				start = readPos
				foundCopy = true
			}
		}
		if start > sf.fi.Size() {
			// Everything the copy holds was read from the original
			// (and more: lines written between the copy and the
			// truncation). Record it as read, so that a glob matching
			// the copy does not read it again.
			if id, _, err := identify(sf.f, in.cfg.FingerprintBytes); err == nil {
				in.store.Set(checkpoint.Entry{Input: in.cfg.ID, ID: id, Path: sf.path, Offset: sf.fi.Size(), Updated: time.Now()})
			}
			return false, false
		}
		if start < 0 && in.missedGeneration(orig, sf.name, base, sf.f, sf.fi, sf.key.dev, sf.key.ino) {
			start = 0
		}
		if start < 0 {
			return false, false
		}
		id, fi, err := identify(sf.f, in.cfg.FingerprintBytes)
		if err != nil {
			return false, false
		}
		if start > 0 {
			in.log.Info("reading the rest of a truncated file from its copy", "copy", sf.path, "from", start, "size", fi.Size())
		} else {
			in.log.Warn("a copytruncate rotation happened while reading was paused; reading its copy", "copy", sf.path, "size", fi.Size())
		}
		in.start(sf.f, sf.path, id, start, fi.Size(), stateRenamed, false)
		return true, false
	})
	if !foundCopy {
		in.log.Warn("truncated file has no copy in its directory; lines written after the last read are lost", "path", orig.path, "read_offset", readPos)
	}
}

// adopt starts the pending harvester h at offset: it holds the copy of a
// truncated file, read up to there through the original.
func (in *Input) adopt(h *harvester, offset int64) {
	in.mu.Lock()
	h.adoptAt = offset
	in.mu.Unlock()
	in.signal(h)
}

// missedGeneration reports whether the file f (named name, in the
// directory of orig, whose base name is base) is the copy of a generation
// of orig's file that orig never saw.
func (in *Input) missedGeneration(orig *harvester, name, base string, f *os.File, fi os.FileInfo, dev, ino uint64) bool {
	if len(name) <= len(base) || name[:len(base)] != base || compressed(name) {
		return false
	}
	// Copies written before the last moment the content was seen intact
	// hold generations read through the original, or older than the agent.
	if fi.ModTime().Before(time.Unix(0, orig.intactAt.Load())) {
		return false
	}
	for _, g := range orig.seenGens() {
		if ok, _ := sameContent(f, g); ok {
			return false
		}
	}
	if ok, _ := sameContent(f, orig.id); ok {
		return false
	}
	if len(in.store.ByInode(in.cfg.ID, dev, ino)) > 0 {
		return false // known: read, or being read, on its own
	}
	return fi.Size() > 0
}

// compressed reports whether name is a compressed rotated file, which is
// not text and never read unless a glob asks for it.
func compressed(name string) bool {
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// pendingIn returns the pending harvesters of files in dir.
func (in *Input) pendingIn(dir string) []*harvester {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*harvester
	for _, h := range in.byInode {
		if h.flag(flagPending) && filepath.Dir(h.path) == dir {
			out = append(out, h)
		}
	}
	return out
}

// waitCopyCheck holds a pending file unread until it is adopted as the copy
// of a truncated file, or known not to be one. It returns false if ctx
// ended first.
func (h *harvester) waitCopyCheck(ctx context.Context, poll *time.Timer) bool {
	h.more().pendingSince = time.Now().UnixNano()
	wake := h.host.wakeChan(h)
	for {
		h.env.mu.Lock()
		adoptAt := h.adoptAt
		h.env.mu.Unlock()
		id, fi, err := identify(h.f, h.env.fingerprintBytes)
		if err != nil {
			return false
		}
		if adoptAt >= 0 || !h.host.copyCheck(h, id) {
			start := max(adoptAt, 0)
			if _, err := h.f.Seek(start, io.SeekStart); err != nil {
				return false
			}
			h.offset = start
			h.resetJoiner()
			h.tailLen = 0
			h.readPos.Store(start)
			h.size.Store(fi.Size())
			h.setIdentity(h.path, id)
			h.tr.restart(id, start)
			h.setFlag(flagPending, false)
			return true
		}
		poll.Reset(h.env.pollInterval) // Go 1.23+: no stale value left to drain
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		case <-poll.C:
		}
	}
}

// tailBytes is how many bytes before the read offset are remembered
// (harvester.tail).
const tailBytes = 256

// tailLook is what a look at a file's first bytes (lookAtContent) saw of
// the bytes just before the read offset.
type tailLook uint8

const (
	tailUnseen  tailLook = iota // beyond the first bytes: tailChanged reads them
	tailSame                    // as read there
	tailChanged                 // no longer as read there
)

// tailChanged reports whether the bytes just before the read offset are no
// longer those read there: the file was rewritten in place (its first
// bytes, and perhaps its size, the same). One pread, unless the look at the
// first bytes just before (seen) covered them, as it does for a file shorter
// than fingerprint_bytes; called only when the file changed in a way that
// can hide a rewrite.
func (h *harvester) tailChanged(seen tailLook) bool {
	if seen != tailUnseen {
		return seen == tailChanged
	}
	if h.tailLen == 0 || h.offset < int64(h.tailLen) {
		return false
	}
	bp, _ := prefixBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < int(h.tailLen) {
		b := make([]byte, max(int(h.tailLen), DefaultFingerprintBytes))
		bp = &b
	}
	defer prefixBufs.Put(bp)
	buf := (*bp)[:h.tailLen]
	got, err := h.f.ReadAt(buf, h.offset-int64(h.tailLen))
	if err != nil && err != io.EOF {
		return false
	}
	return got < int(h.tailLen) || checkHash(buf) != h.tail
}

// sawEnd records the file's inode as seen with everything up to h.offset
// read: for the status, for polls (quiet), and to tell a rewrite to the
// same size at the next look. It reports whether the file was modified
// without growing and without a read since the look before: rewritten.
func (h *harvester) sawEnd(fi os.FileInfo) (rewritten bool) {
	h.size.Store(fi.Size())
	sig := sigOf(fi)
	modified := sig.mtime != h.seen.mtime
	if h.endUnseen {
		// Parked after a short read without a look at the inode:
		// modified since that read, as far as the file system's
		// coarse clock tells.
		modified = sig.mtime >= h.endReadAt-int64(mtimeSlack)
	}
	rewritten = fi.Size() == h.offset && h.offset == h.seenOffset && modified
	h.seen, h.seenOffset, h.endUnseen = sig, h.offset, false
	h.cheapPolls = 0
	return rewritten
}

// mtimeSlack is how far behind the time of a read a modification made
// after it may be stamped: file systems stamp with a clock updated at each
// scheduler tick (up to 10 ms).
const mtimeSlack = 20 * time.Millisecond

// contentCheckEvery is how often the first bytes of a file being read are
// looked at, to notice it was truncated and written again past the offset.
const contentCheckEvery = time.Second

// contentDue tells whether the file's first bytes are to be looked at again.
func (h *harvester) contentDue(now time.Time) bool {
	return now.Sub(time.Unix(0, h.intactAt.Load())) >= contentCheckEvery
}

// lookAtContent reads the file's first bytes, once, to see whether they
// are still those of h.id: if not, it returns true (truncated and written
// past the old offset in between two looks). If they are and the file has
// grown past a short fingerprint, the fingerprint is extended to up to
// size bytes. Where the bytes read cover those before the read offset, it
// tells whether they are still as read there (tail, for tailChanged).
//
// The first bytes are compared through a fast hash of them (check) once
// it is known: the fingerprint, FNV-1a, takes a multiplication per byte,
// and this look comes at every wake-up after a pause, of every file.
func (h *harvester) lookAtContent(size int64) (replaced bool, tail tailLook) {
	have := h.id.FingerprintLen
	n := have
	if want := h.env.fingerprintBytes; have < want && size > int64(have) {
		n = int(min(int64(want), size))
	}
	if n == 0 {
		return false, tailUnseen
	}
	same := false
	var fp, check uint64
	got, err := withPrefix(h.f, n, func(b []byte) {
		if k := int64(h.tailLen); k > 0 && h.offset >= k && h.offset <= int64(len(b)) {
			tail = tailSame
			if checkHash(b[h.offset-k:h.offset]) != h.tail {
				tail = tailChanged
			}
		}
		if len(b) < have {
			return
		}
		if int(h.checkLen) == have {
			same = checkHash(b[:have]) == h.check
			fp = h.id.Fingerprint // the FNV-1a of b[:have], if same
		} else {
			fp = hashBytes(b[:have])
			same = fp == h.id.Fingerprint
		}
		if same {
			fp = hashMore(fp, b[have:])
			check = checkHash(b)
		}
	})
	if err != nil {
		return false, tailUnseen
	}
	if have > 0 && (got < have || !same) {
		return true, tail
	}
	if got > have {
		h.setFingerprint(fp, got)
	}
	h.check, h.checkLen = check, int32(got)
	return false, tail
}
