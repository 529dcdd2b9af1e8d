package file

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// dirListing remembers the modification times of the directories that
// globs list, so that a periodic scan can tell that a listing would find
// what the last one found. It only vouches for globs whose wildcards are
// all in the last element (dir/*.log): a new file in such a directory, or
// one renamed or removed, changes the directory's modification time.
// Owned by the input's Run goroutine.
type dirListing struct {
	dirs  []string
	mtime []syscall.Timespec
	at    time.Time // when the times were taken
	ok    bool      // every glob is flat and every directory was seen
	// flatSeen: every glob's wildcards are in its last element, and
	// every glob's directory exists and is named by its own path, not
	// through a symbolic link (Input.eventsVouch).
	flatSeen bool
}

// racyWindow is how long before it was recorded a directory's time must
// be, to be trusted: file system times are coarse (a clock tick), so a
// change in the same tick as the recording can leave the time as it was.
const racyWindow = time.Second

// record takes the times of the directories globs list, before they are
// listed; linked tells whether a directory's path goes through a link.
func (l *dirListing) record(globs []string, now time.Time, linked func(dir string) bool) {
	l.dirs, l.mtime, l.at, l.ok, l.flatSeen = l.dirs[:0], l.mtime[:0], now, true, true
	for _, g := range globs {
		base, pattern := doublestar.SplitPattern(filepath.ToSlash(g))
		if strings.Contains(pattern, "/") || strings.Contains(pattern, "**") {
			l.ok, l.flatSeen = false, false // wildcards in a directory: new directories too
			return
		}
		m, ok := dirMtime(base)
		if !ok {
			l.ok, l.flatSeen = false, false
			return
		}
		if linked(filepath.Clean(filepath.FromSlash(base))) {
			// A link repointed (a deploy's current -> releases/N)
			// raises no event in the directory watched: its time,
			// compared at each scan, tells.
			l.flatSeen = false
		}
		if now.Sub(time.Unix(m.Unix())) < racyWindow {
			l.ok = false // flatSeen is looked at for the other globs
			continue
		}
		l.dirs = append(l.dirs, base)
		l.mtime = append(l.mtime, m)
	}
}

// unchanged reports whether every directory listed at the last record
// still has the time it had then.
func (l *dirListing) unchanged() bool {
	if !l.ok {
		return false
	}
	for i, d := range l.dirs {
		if m, ok := dirMtime(d); !ok || m != l.mtime[i] {
			return false
		}
	}
	return true
}

func dirMtime(dir string) (syscall.Timespec, bool) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return syscall.Timespec{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return syscall.Timespec{}, false
	}
	return st.Mtim, true
}

// throughLink reports whether the path dir goes through a symbolic link
// (or cannot be resolved).
func throughLink(dir string) bool {
	dir = filepath.Clean(filepath.FromSlash(dir))
	real, err := filepath.EvalSymlinks(dir)
	return err != nil || real != dir
}
