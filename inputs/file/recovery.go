package file

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// Recovery after a restart, or after a file was closed: the checkpoint
// knows files by identity (device, inode, fingerprint), not by name. open
// finds the entry of a file it opens (lookup); recoverRenamed, after every
// scan, finds the files of entries that are not open and no longer under
// their name (renamed while the agent was down, or while closed) and reads
// them to their end; resumeCopy reads the copy of a file truncated
// meanwhile.

// lookup finds the checkpoint entry of the open file f at dev:ino (see
// matchEntries), and drops the other entries of its inode: older ones of f,
// or a later open could resume from a stale offset, and those of a previous
// content, whose copy is looked for first (resumeCopy).
func (in *Input) lookup(f io.ReaderAt, dev, ino uint64) (checkpoint.Entry, bool) {
	best, found, older, others := matchEntries(f, dev, ino, in.store.ByInode(in.cfg.ID, dev, ino))
	for _, e := range older {
		in.store.Delete(e.Key())
	}
	for _, e := range others {
		// Another content at this inode: the file was truncated while it
		// was not open (copytruncate while the agent was down), or the
		// inode was reused by a new file.
		if !in.resumeCopy(e) {
			in.log.Info("inode reused by a new file; forgetting the old one", "path", e.Path, "inode", ino)
		}
		in.store.Delete(e.Key())
	}
	return best, found
}

// resumeCopy looks, in the directory of e's file, for a copy of e's file
// (same first bytes, another inode, at least e.Offset long): what
// copytruncate left when it truncated the file while it was not open. The
// copy is read from e.Offset. It reports whether a copy was found.
func (in *Input) resumeCopy(e checkpoint.Entry) bool {
	found := false
	in.siblings(filepath.Dir(e.Path), devIno{e.ID.Dev, e.ID.Ino}, func(sf sibling) (keep, stop bool) {
		if sf.fi.Size() < e.Offset {
			return false, false
		}
		if ok, _ := sameContent(sf.f, e.ID); !ok {
			return false, false
		}
		id, fi, err := identify(sf.f, in.cfg.FingerprintBytes)
		if err != nil {
			return false, false
		}
		// The copy may have a checkpoint entry of its own already.
		offset := e.Offset
		if ce, ok := in.lookup(sf.f, sf.key.dev, sf.key.ino); ok {
			if ce.ID != id {
				in.store.Delete(ce.Key())
			}
			offset = max(offset, ce.Offset)
		}
		in.log.Info("file was truncated while not open; reading the rest of its copy", "path", e.Path, "copy", sf.path, "from", offset, "size", fi.Size())
		in.start(sf.f, sf.path, id, offset, fi.Size(), stateRenamed, false)
		found = true
		return true, true
	})
	return found
}

// recoverRenamed looks for the files of checkpoint entries that are not
// open and no longer under their last name: renamed while the agent was
// down or while the file was closed. Found with unread bytes, they are read
// to their end; not found, they are forgotten.
func (in *Input) recoverRenamed() {
	entries := in.store.Entries(in.cfg.ID)
	open := make([]*harvester, len(entries))
	in.mu.Lock()
	for i, e := range entries {
		open[i] = in.byInode[devIno{e.ID.Dev, e.ID.Ino}]
	}
	in.mu.Unlock()
	closed := entries[:0]
	for i, e := range entries {
		if h := open[i]; h != nil {
			// The open file's entry is its tracker's; another entry of
			// its inode is of an older fingerprint or an older content.
			if h.tr.committed().Key() != e.Key() {
				in.store.Delete(e.Key())
			}
			continue
		}
		closed = append(closed, e)
	}
	// Of several entries of one file, the one with the highest offset
	// is the latest: it is resumed, and the others are dropped below.
	sort.Slice(closed, func(i, j int) bool { return closed[i].Offset > closed[j].Offset })
	resolved := map[devIno]bool{}
	for _, e := range closed {
		key := devIno{e.ID.Dev, e.ID.Ino}
		path := e.Path
		dir := in.entryDir(e.Path)
		if dir == "" {
			in.note("entry:"+e.Path, slog.LevelWarn, "checkpoint entry names a file outside every glob of the input; not read, entry dropped", "path", e.Path)
			in.store.Delete(e.Key())
			continue
		}
		if in.underGlob(path, key) {
			// Still under its name, where the globs find it: opening it
			// (open, lookup) compares its content with the entry's,
			// when it has something to read. Not here: that would read
			// the first bytes of every closed file at every scan, and
			// thousands can be closed (max_open_files, close_inactive).
			if resolved[key] {
				in.store.Delete(e.Key())
			}
			resolved[key] = true
			continue
		}
		if !in.isFile(path, e.ID) {
			path = findByInode(dir, e.ID.Dev, e.ID.Ino)
			if path == "" || !in.isFile(path, e.ID) {
				if path != "" {
					// Its inode holds another content: truncated while
					// not open. A copy of it (copytruncate) is read
					// from e.Offset.
					in.resumeCopy(e)
				}
				in.store.Delete(e.Key())
				continue
			}
			e.Path = path
			in.store.Set(e)
		}
		if resolved[key] {
			in.store.Delete(e.Key()) // an older entry of a file resumed above
			continue
		}
		resolved[key] = true
		fi, err := os.Lstat(path)
		if err != nil || fi.Size() <= e.Offset || in.matches(path) {
			continue // nothing unread, or a file the globs open anyway
		}
		f, fi, err := openRegular(path)
		if err != nil {
			in.reportOnce(path, "cannot read rotated file", "path", path, "err", err)
			continue
		}
		if !in.isOpenFile(f, e.ID) {
			f.Close()
			continue
		}
		in.log.Info("reading the rest of a rotated file", "path", path, "from", e.Offset, "size", fi.Size())
		in.start(f, path, e.ID, e.Offset, fi.Size(), stateRenamed, false)
	}
}

// underGlob reports whether path names the inode key and the globs match
// it.
func (in *Input) underGlob(path string, key devIno) bool {
	fi, err := os.Lstat(path) // a link is not followed, as by isFile
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	dev, ino, ok := statID(fi)
	return ok && dev == key.dev && ino == key.ino && in.matches(path)
}

// isFile reports whether path holds the file id (a link is not followed).
func (in *Input) isFile(path string, id logagent.FileID) bool {
	f, _, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return in.isOpenFile(f, id)
}

// isOpenFile reports whether the open file f is the file id.
func (in *Input) isOpenFile(f *os.File, id logagent.FileID) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	dev, ino, _ := statID(fi)
	ok, _ := sameFile(f, dev, ino, id)
	return ok
}

// entryDir returns the directory where the file of a checkpoint entry
// recorded at path is looked for, or "" if the input may not read there
// (see knownDir). For a followed link, that is its target's directory,
// where the file went if it was rotated.
func (in *Input) entryDir(path string) string {
	if in.cfg.FollowSymlinks && in.matches(path) {
		if t, owners, err := resolveLinks(path); err == nil && len(owners) > 0 {
			return filepath.Dir(t)
		}
	}
	dir := filepath.Dir(path)
	if !in.knownDir(dir) {
		return ""
	}
	return dir
}
