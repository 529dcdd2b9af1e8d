package file

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs/file/multiline"
)

// The plan of --dry-run: which files the input would read and from where,
// decided as the running input decides (startOffset), without reading or
// changing anything.

// PlannedFile is what --dry-run says of one file.
type PlannedFile struct {
	Path      string
	Size      int64
	ID        logagent.FileID
	Committed int64 // -1 when the checkpoint does not know the file
	Start     int64
	Reason    StartReason // why reading starts at Start
	// Also holds the other names the globs match of the same file (a
	// followed link to it, a hard link): it is read once, under Path.
	Also []string
	Err  error
}

// Plan tells, without reading past fingerprints or changing anything, which
// files the input would read and from where, given the checkpoint entries.
// What it would skip is listed too, with Err set: a directory it cannot
// list, a link it does not follow, a FIFO. It never blocks on a FIFO.
func Plan(cfg Config, entries []checkpoint.Entry) []PlannedFile {
	x := expand(cfg.Paths, cfg.Exclude)
	var out []PlannedFile
	for d, err := range x.unreadable {
		out = append(out, PlannedFile{Path: d, Committed: -1, Err: fmt.Errorf("cannot list directory, its files are not read: %w", err)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	byInode := map[devIno][]checkpoint.Entry{}
	for _, e := range entries {
		if e.Input == cfg.ID {
			k := devIno{e.ID.Dev, e.ID.Ino}
			byInode[k] = append(byInode[k], e)
		}
	}
	// As for the input's first scan: files in the globs' order, each file
	// under the first name that reaches it (Input.open skips a name of a
	// file read already).
	planned := map[devIno]int{} // index in out
	firstRun := len(byInode) == 0
	for _, p := range x.files {
		pf := PlannedFile{Path: p, Committed: -1}
		f, fi, _, err := openLog(p, cfg.FollowSymlinks)
		if err != nil {
			pf.Err = err
			out = append(out, pf)
			continue
		}
		id, err := identifyAs(f, fi, cfg.FingerprintBytes)
		if err != nil {
			f.Close()
			pf.Err = err
			out = append(out, pf)
			continue
		}
		key := devIno{id.Dev, id.Ino}
		if i, ok := planned[key]; ok {
			f.Close()
			out[i].Also = append(out[i].Also, p)
			continue
		}
		pf.ID, pf.Size = id, fi.Size()
		e, found, _, _ := matchEntries(f, id.Dev, id.Ino, byInode[key])
		if found {
			pf.Committed = e.Offset
		}
		pf.Start, pf.Reason = startOffset(cfg, fi, e.Offset, found, firstRun)
		f.Close()
		planned[key] = len(out)
		out = append(out, pf)
	}
	return out
}

// Preview returns up to n messages of pf from its start, read with cfg's
// chunker, without changing anything.
func Preview(cfg Config, pf PlannedFile, n int) ([]logagent.Message, error) {
	f, _, _, err := openLog(pf.Path, cfg.FollowSymlinks)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max(64<<10, 2*(cfg.MaxMessageBytes+1)))
	got, err := f.ReadAt(buf, pf.Start)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", pf.Path, err)
	}
	src := &logagent.Source{Input: cfg.ID, Category: cfg.Category, Path: pf.Path, ID: pf.ID, Host: cfg.Host, Fields: cfg.Fields}
	var msgs []logagent.Message
	if cfg.Multiline != nil {
		// Whole events; one still open at the end of buf is not shown.
		msgs, _ = multiline.New(*joinerConfig(cfg)).Cut(buf[:got], pf.Start, src, time.Now(), nil, false)
	} else {
		c := Chunker{MaxMessageBytes: cfg.MaxMessageBytes, LinesPerMessage: cfg.LinesPerMessage}
		msgs, _ = c.Cut(buf[:got], pf.Start, src, time.Now(), nil, false)
	}
	if len(msgs) > n {
		msgs = msgs[:n]
	}
	return msgs, nil
}
