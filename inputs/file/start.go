package file

import (
	"io"
	"os"
	"time"

	"github.com/logagent/logagent/checkpoint"
)

// Where reading a file starts: decided in one place for the running input
// (Input.open, with lookup) and for the plan of --dry-run (Plan), so that
// the plan says what the agent does.

// StartReason tells why reading a file starts where it does.
type StartReason int

const (
	// StartNew: a file the checkpoint does not know, from its beginning.
	StartNew StartReason = iota
	// StartResume: from the offset of its checkpoint entry.
	StartResume
	// StartShorter: shorter than its checkpoint entry's offset (truncated
	// while not read): from its beginning.
	StartShorter
	// StartAtEnd: a file present at the input's very first start, with
	// start_at: end: at its end.
	StartAtEnd
	// StartTooOld: a file the checkpoint does not know, modified longer
	// ago than ignore_older: at its end.
	StartTooOld
)

func (r StartReason) String() string {
	switch r {
	case StartResume:
		return "resume from checkpoint"
	case StartShorter:
		return "shorter than its checkpoint: from the beginning"
	case StartAtEnd:
		return "start_at end: new file at first start"
	case StartTooOld:
		return "skip (older than ignore_older)"
	}
	return "new file: from the beginning"
}

// startOffset decides where reading the file fi starts. committed is the
// offset of its checkpoint entry, if found; firstScan is set for the files
// of the first scan of an input that has no checkpoint entry at all.
func startOffset(cfg Config, fi os.FileInfo, committed int64, found, firstScan bool) (int64, StartReason) {
	switch {
	case found && committed <= fi.Size():
		return committed, StartResume
	case found:
		return 0, StartShorter
	case firstScan && cfg.StartAtEnd:
		return fi.Size(), StartAtEnd
	case tooOld(cfg, fi):
		return fi.Size(), StartTooOld
	}
	return 0, StartNew
}

// tooOld reports whether a file without a checkpoint entry is skipped to
// its end by ignore_older. A file with an entry never is: that could lose
// lines.
func tooOld(cfg Config, fi os.FileInfo) bool {
	return cfg.IgnoreOlder > 0 && time.Since(fi.ModTime()) > cfg.IgnoreOlder
}

// matchEntries sorts the checkpoint entries es of the inode dev:ino (of one
// input) for the open file f there. Several entries can describe f: one per
// fingerprint length it had when a checkpoint was written, when the agent
// died before the entry of the longer one reached disk. The offset only
// grows, so the one with the highest offset is the latest: best (found);
// the others of f are older. Entries of another content (the file was
// truncated while not open, or the inode reused) are others. An entry that
// cannot be compared (a read error) is in none.
func matchEntries(f io.ReaderAt, dev, ino uint64, es []checkpoint.Entry) (best checkpoint.Entry, found bool, older, others []checkpoint.Entry) {
	for _, e := range es {
		ok, err := sameFile(f, dev, ino, e.ID)
		switch {
		case err != nil:
		case !ok:
			others = append(others, e)
		case !found:
			best, found = e, true
		case e.Offset > best.Offset:
			older = append(older, best)
			best = e
		default:
			older = append(older, e)
		}
	}
	return best, found, older, others
}
