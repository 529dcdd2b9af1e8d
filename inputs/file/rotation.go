package file

import (
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/logagent/logagent"
)

// Rotation by rename and removal, seen from the harvester: its file keeps
// its descriptor whatever happens to its name. nameDue and checkName
// notice that the name holds another file, or none (active → renamed, or
// → removed); the harvester reads on to the end and finishes (atEOF,
// finish). setIdentity and setFingerprint change what the checkpoint and
// the messages' Source say of the file.

// fileDir is the directory holding the file: its link's target's for a
// file read through a followed link.
func (h *harvester) fileDir() string {
	if real := h.real(); real != "" {
		return filepath.Dir(real)
	}
	return filepath.Dir(h.path)
}

// nameCheckEvery is how often the name of a file is looked up although
// no event named it, where events may not tell of every change: the file
// is read through a followed link, or its directory is named through one
// (a link repointed raises no event in the directory watched).
// nameCheckTrusted is that interval for a file under its own name in a
// watched directory, whose renames, removals and re-creations each raise
// an event that names it (and a lost event, a queue overflow, names every
// file: signalAll): looked up there only in case the kernel's events are
// wrong, as on a directory mounted over.
// A file written once a minute then wakes to one read of its new lines
// and parks, without an fstat and a stat of its name at each wake.
const (
	nameCheckEvery   = time.Second
	nameCheckTrusted = 5 * time.Minute
)

// nameDue tells whether the file's name is to be looked up: at once after
// an event named it (created, renamed or removed), where no watch reports
// such events, or once nameStale at least, in case an event was lost. A
// busy file looked at every few milliseconds then stats its name once in
// that interval, not each time.
func (h *harvester) nameDue(now time.Time) bool {
	named := h.flag(flagNameEvent) && h.setFlag(flagNameEvent, false) // a load, mostly
	if named || !h.dirWatched() || h.nameStale(now) {
		h.nameCheckedAt = now
		return true
	}
	return false
}

// nameStale reports whether the name has gone unchecked at now for longer
// than it may without an event naming it: nameCheckTrusted, or
// nameCheckEvery for a file read through a link or in a directory named
// through one, where it is checked as often as where no events come (a
// link repointed raises none; the input's answer is looked up again after
// each listing). dirWatched is true (the caller asked, which set h.dir).
// A busy file is asked at every short read: the input is asked about the
// link only once nameCheckEvery has passed.
func (h *harvester) nameStale(now time.Time) bool {
	since := now.Sub(h.nameCheckedAt)
	switch {
	case since < nameCheckEvery:
		return false
	case since >= nameCheckTrusted:
		return true
	}
	return h.real() != "" || h.host.throughLink(h.dir)
}

// checkName notices that the file's name now holds another file, or none.
func (h *harvester) checkName(fi os.FileInfo) {
	pfi, err := os.Stat(h.path)
	if err == nil {
		if dev, ino, _ := statID(pfi); (devIno{dev, ino}) == h.key() {
			return
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		h.setState(stateRemoved)
		h.env.log.Info("file removed; reading it to its end", "path", h.path)
		return
	}
	h.setState(stateRenamed)
	if newPath := findByInode(h.fileDir(), h.id.Dev, h.id.Ino); newPath != "" {
		h.rename(newPath)
	}
	h.env.log.Info("file rotated; reading it to its end", "path", h.path)
	h.host.notifyScan() // its old name may hold a new file already
}

// setState changes h.state; other goroutines read it under Input.mu.
func (h *harvester) setState(s fileState) {
	h.env.mu.Lock()
	h.state = s
	h.env.mu.Unlock()
}

// setIdentity changes the file's name or identity; other goroutines read
// them under Input.mu. Messages read from now on carry a new Source.
func (h *harvester) setIdentity(path string, id logagent.FileID) {
	if path != h.path {
		h.dir = "" // looked up again (dirWatched)
	}
	h.env.mu.Lock()
	if id != h.id {
		h.checkLen = -1
	}
	h.path = path
	h.id.Fingerprint, h.id.FingerprintLen = id.Fingerprint, id.FingerprintLen // Dev, Ino: the descriptor's, as id's
	h.env.mu.Unlock()
	src := *h.src
	src.Path, src.ID = path, id
	h.src = &src
}

func (h *harvester) rename(path string) {
	if h.rare != nil && h.rare.real != "" {
		h.rare.real = "" // named by the file's own directory from now on
		h.dir = ""
	}
	h.setIdentity(path, h.id)
	h.tr.update(path, h.id)
}

// extendFingerprint grows a short fingerprint once the file has grown
// (to up to size bytes), so that identity rests on as many bytes as
// configured.
func (h *harvester) extendFingerprint(size int64) {
	want := h.env.fingerprintBytes
	if h.id.FingerprintLen >= want || size <= int64(h.id.FingerprintLen) {
		return
	}
	fp, n, err := fingerprint(h.f, int(min(int64(want), size)))
	if err != nil || n <= h.id.FingerprintLen {
		return
	}
	h.setFingerprint(fp, n)
}

// setFingerprint extends h.id's fingerprint to the first n bytes. h.id
// grows with every read, for recognising copies and generations; the
// identity the checkpoint and the messages' Source record is changed only
// once the fingerprint is complete or at least twice as long as the one they
// hold. Any prefix identifies the file (on restart its first
// FingerprintLen bytes are compared), and a small file written a line at a
// time no longer moves its checkpoint entry to a new key, with two journal
// records and a new Source, at every line.
func (h *harvester) setFingerprint(fp uint64, n int) {
	h.env.mu.Lock()
	h.id.Fingerprint, h.id.FingerprintLen = fp, n
	h.checkLen = -1
	h.env.mu.Unlock()
	if n < h.env.fingerprintBytes && n < 2*h.src.ID.FingerprintLen {
		return
	}
	h.setIdentity(h.path, h.id)
	h.tr.update(h.path, h.id)
}

// findByInode returns the path in dir of the file dev:ino, or "".
func findByInode(dir string, dev, ino uint64) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // links are not followed here
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if d, i, ok := statID(fi); ok && d == dev && i == ino {
			return p
		}
	}
	return ""
}

// dirWatched reports whether fsnotify watches the file's directory and its
// events come. The directory is kept from the call before until the path
// changes: it is asked at every wake-up, and the path seldom changes.
// Called by whoever runs h.
func (h *harvester) dirWatched() bool {
	if h.dir == "" {
		p := h.path
		if real := h.real(); real != "" {
			p = real
		}
		h.dir = filepath.Dir(p)
	}
	return h.host.isWatched(h.dir)
}
