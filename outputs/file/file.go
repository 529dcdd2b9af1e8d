// Package file is the file output: it appends one message body per line to
// files named from a template, such as /var/log/logagent/{category}.log.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"github.com/logagent/logagent"
)

// Config is the file output's own keys.
type Config struct {
	// Path is the file to append to; {category} and {input} expand.
	Path string `yaml:"path"`
	// Sync fsyncs each batch before acknowledging it: the lines then
	// survive a power loss, not only a crash of the agent. Slower.
	Sync bool `yaml:"sync"`
	// Mode is the permission of files created.
	Mode string `yaml:"mode"`
	// MaxOpenFiles bounds the files kept open when the path has
	// placeholders.
	MaxOpenFiles int `yaml:"max_open_files"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Mode: "0640", MaxOpenFiles: 256} }

// Validate checks c.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, logagent.FieldErrorf("path", "must be set, e.g. /var/log/logagent/{category}.log"))
	}
	if c.MaxOpenFiles < 1 {
		errs = append(errs, logagent.FieldErrorf("max_open_files", "must be >= 1, got %d", c.MaxOpenFiles))
	}
	if _, err := c.perm(); err != nil {
		errs = append(errs, logagent.FieldErrorf("mode", "%v", err))
	}
	return errors.Join(errs...)
}

// ResolvePaths makes a relative path relative to dir.
func (c *Config) ResolvePaths(dir string) {
	if c.Path != "" && !filepath.IsAbs(c.Path) {
		c.Path = filepath.Join(dir, c.Path)
	}
}

func (c *Config) perm() (os.FileMode, error) {
	var m uint32
	if _, err := fmt.Sscanf(c.Mode, "%o", &m); err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode such as 0640", c.Mode)
	}
	return os.FileMode(m), nil
}

// Output appends to files.
type Output struct {
	cfg   Config
	perm  os.FileMode
	log   *slog.Logger
	files map[string]*openFile
	order []string // open files, least recently opened first
	buf   []byte
	vecs  [][]byte        // what one write sends, in order
	sent  [][]byte        // the copy of vecs one writev consumes
	iov   []syscall.Iovec // vecs as writev takes them
	st    syscall.Stat_t  // reused: Fstat through f.Stat allocates
	pst   syscall.Stat_t  // the path's, compared with the open file's identity
	group map[string][]int
	// templated is set when the path has placeholders: then each
	// message's Source names its file.
	templated bool
}

// New returns a file output; files are opened on first use.
func New(id string, cfg Config, log *slog.Logger) (*Output, error) {
	perm, err := cfg.perm()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Output{cfg: cfg, perm: perm, log: log, files: map[string]*openFile{}, group: map[string][]int{},
		templated: strings.Contains(cfg.Path, "{")}, nil
}

// Describe implements logagent.Describer.
func (o *Output) Describe() string { return "file " + o.cfg.Path }

// Destination implements logagent.Describer.
func (o *Output) Destination(m *logagent.Message) string { return o.pathFor(m.Source) }

func (o *Output) pathFor(src *logagent.Source) string {
	if !o.templated {
		return o.cfg.Path
	}
	return strings.NewReplacer("{category}", safeName(src.Category), "{input}", safeName(src.Input)).Replace(o.cfg.Path)
}

// safeName keeps a placeholder's value from leaving the directory.
func safeName(s string) string {
	s = strings.ReplaceAll(s, "/", "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// Send implements logagent.Output: it appends every body and a newline,
// one write per file. A write that fails is cut back off the file, so that
// a retry appends whole lines after whole lines; when other files of the
// batch were written, a *logagent.PartialError lists the messages of
// those that failed, the only ones to send again.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	if len(batch) == 0 {
		return nil
	}
	if !o.templated {
		return o.write(o.cfg.Path, batch, nil)
	}
	first := o.pathFor(batch[0].Source)
	single := true
	for i := range batch {
		if batch[i].Source != batch[0].Source && o.pathFor(batch[i].Source) != first {
			single = false
			break
		}
	}
	if single {
		return o.write(first, batch, nil)
	}
	clear(o.group)
	var paths []string
	for i := range batch {
		p := o.pathFor(batch[i].Source)
		if _, ok := o.group[p]; !ok {
			paths = append(paths, p)
		}
		o.group[p] = append(o.group[p], i)
	}
	// Every file is written, whichever fails: the messages of a file
	// that failed are the only ones sent again, not those already in
	// another file (nor those of the files after it).
	var retry []int
	var firstErr error
	for _, p := range paths {
		if err := o.write(p, batch, o.group[p]); err != nil {
			retry = append(retry, o.group[p]...)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	switch {
	case firstErr == nil:
		return nil
	case len(retry) == len(batch):
		return firstErr // nothing delivered: the whole batch again
	}
	return &logagent.PartialError{Retry: retry, Err: firstErr}
}

// write appends the messages of batch at idx (all when idx is nil) to path,
// in one writev: bodies that lie one after the other in the read buffer
// they were cut from, separated by the newline that ended them there, go
// out as one piece straight from that buffer; nothing is copied.
//
// The file open at path may have been renamed or deleted since the last
// batch (logrotate, or by hand): before and after each write, the inode at
// path is compared with the open file's (one stat). A file gone before the
// write is reopened; one gone during it is reopened and the batch written
// again, since it may have gone into a deleted file. Nothing is lost; a
// batch written into a file renamed during the write is in both files.
func (o *Output) write(path string, batch []logagent.Message, idx []int) error {
	vecs := o.vecs[:0]
	n := len(batch)
	if idx != nil {
		n = len(idx)
	}
	k := 0
	for ; k < n && len(vecs) <= maxVecs; k++ {
		i := k
		if idx != nil {
			i = idx[k]
		}
		vecs = appendBody(vecs, batch[i].Body)
	}
	defer func() {
		clear(vecs) // let go of the bodies
		o.vecs = vecs[:0]
	}()
	if k < n {
		// Scattered bodies: one copy and one write beat many iovecs.
		buf := o.buf[:0]
		for _, v := range vecs {
			buf = append(buf, v...)
		}
		for ; k < n; k++ {
			i := k
			if idx != nil {
				i = idx[k]
			}
			buf = append(buf, batch[i].Body...)
			buf = append(buf, '\n')
		}
		o.buf = buf
		if cap(o.buf) > 16<<20 {
			o.buf = nil // one huge batch should not pin its buffer
		}
		clear(vecs)
		vecs = append(vecs[:0], buf)
	}
	for try := 0; ; try++ {
		of, err := o.open(path)
		if err != nil {
			return err
		}
		f := of.f
		fd := int(f.Fd())
		// The size before the write, to cut a partial one back: the
		// path's, looked up to see it still names the open file.
		if !o.atPath(path, of) {
			o.log.Warn("output file was renamed or deleted; reopening", "path", path)
			o.closeFile(path)
			continue
		}
		before := o.pst.Size
		if o.pst.Ino == 0 { // the path could not be looked up
			if err := syscall.Fstat(fd, &o.st); err != nil {
				return o.fail(path, err)
			}
			before = o.st.Size
		}
		// writev consumes what it is given: keep vecs for a second write.
		sent := append(o.sent[:0], vecs...)
		err = o.writev(fd, sent)
		clear(sent)
		o.sent = sent[:0]
		if err != nil {
			// Out of space or similar: take the part written back off so
			// that the file never holds a torn line, then let the batch
			// be retried.
			if terr := f.Truncate(before); terr != nil {
				o.log.Error("cannot cut a partial write back; the file may hold a partial line", "path", path, "err", terr)
			}
			return o.fail(path, err)
		}
		if o.cfg.Sync {
			if err := f.Sync(); err != nil {
				return o.fail(path, err)
			}
		}
		if o.atPath(path, of) {
			return nil
		}
		o.log.Warn("output file was renamed or deleted while written; writing the batch again into a new file", "path", path)
		o.closeFile(path)
		if try > 0 {
			// Moved twice in a row: something keeps moving it; let the
			// scheduler retry after a backoff.
			return fmt.Errorf("write %s: the file keeps being renamed or deleted", path)
		}
	}
}

// atPath reports whether the file at path is still of, and leaves the
// path's Stat in o.pst. A path that cannot be looked up for another reason
// than being gone counts as the same file (the write will tell), and
// leaves o.pst zero.
func (o *Output) atPath(path string, of *openFile) bool {
	if err := syscall.Stat(path, &o.pst); err != nil {
		o.pst = syscall.Stat_t{}
		return !errors.Is(err, syscall.ENOENT)
	}
	return uint64(o.pst.Dev) == of.dev && uint64(o.pst.Ino) == of.ino
}

// openFile is an open output file and its identity, taken when it was
// opened (an open file's device and inode never change).
type openFile struct {
	f        *os.File
	dev, ino uint64
}

// closeFile closes the file open at path, if any.
func (o *Output) closeFile(path string) {
	if of := o.files[path]; of != nil {
		of.f.Close()
		delete(o.files, path)
		if i := slices.Index(o.order, path); i >= 0 {
			o.order = slices.Delete(o.order, i, i+1)
		}
	}
}

// maxVecs is the most pieces one batch is written from without copying;
// below the kernel's IOV_MAX (1024), so that a batch is one system call.
const maxVecs = 256

var newline = []byte{'\n'}

// appendBody adds body and its newline to vecs. When body starts one byte
// after the end of the previous piece, in the same array, and that byte is
// a newline, the piece grows over it and body instead: the chunker leaves
// consecutive lines of a block that way. That byte was read before body
// was, so it is stable while body is.
func appendBody(vecs [][]byte, body []byte) [][]byte {
	if n := len(vecs); n >= 2 && len(body) > 0 {
		prev := vecs[n-2]
		end := len(prev)
		// Addresses are compared as uintptr: a pointer just past the end
		// of an array is not a valid unsafe.Pointer. The byte before body
		// is then inside prev's capacity; it is read through body, not
		// prev, so that the load does not wait for the previous message's.
		at := addr(body)
		if end > 0 && cap(prev) > end && sameArray(prev, body) &&
			at == addr(prev)+uintptr(end)+1 &&
			*(*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(body)), -1)) == '\n' {
			vecs[n-2] = prev[:end+1+len(body)]
			return vecs
		}
	}
	if len(body) > 0 {
		vecs = append(vecs, body)
	}
	return append(vecs, newline)
}

// sameArray reports whether a and b, both non-empty, are slices of one
// array: slices of an array end their capacity at its end.
func sameArray(a, b []byte) bool {
	return addr(a)+uintptr(cap(a)) == addr(b)+uintptr(cap(b))
}

func addr(p []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(p))) }

// writev writes every byte of vecs to fd, in as few system calls as the
// kernel allows.
func (o *Output) writev(fd int, vecs [][]byte) error {
	for len(vecs) > 0 {
		iov := o.iov[:0]
		for _, v := range vecs[:min(len(vecs), 1024)] {
			iov = append(iov, syscall.Iovec{Base: unsafe.SliceData(v)})
			iov[len(iov)-1].SetLen(len(v))
		}
		o.iov = iov
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
		clear(iov)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		// Skip what was written; a partial write leaves part of a piece.
		for w := int(n); w > 0; {
			if w >= len(vecs[0]) {
				w -= len(vecs[0])
				vecs = vecs[1:]
				continue
			}
			vecs[0] = vecs[0][w:]
			w = 0
		}
	}
	return nil
}

func (o *Output) fail(path string, err error) error {
	o.closeFile(path)
	return fmt.Errorf("write %s: %w", path, err)
}

// open returns the open file at path. A file that ends with a partial line
// (the agent was killed in the middle of a write) is cut back to its last
// newline before anything is appended: that partial line is sent again,
// whole, because its offset was never committed.
func (o *Output) open(path string) (*openFile, error) {
	if of := o.files[path]; of != nil {
		return of, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, o.perm)
	if err != nil {
		return nil, err
	}
	if err := repairTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("repair %s: %w", path, err)
	}
	if err := syscall.Fstat(int(f.Fd()), &o.st); err != nil {
		f.Close()
		return nil, err
	}
	of := &openFile{f: f, dev: uint64(o.st.Dev), ino: uint64(o.st.Ino)}
	if len(o.files) >= o.cfg.MaxOpenFiles {
		oldest := o.order[0]
		o.order = o.order[1:]
		if old := o.files[oldest]; old != nil {
			old.f.Close()
			delete(o.files, oldest)
		}
	}
	o.files[path] = of
	o.order = append(o.order, path)
	return of, nil
}

// repairTail truncates f after its last newline.
func repairTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	size := fi.Size()
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if end < n {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			cut := end - n + int64(i) + 1
			if cut != size {
				return f.Truncate(cut)
			}
			return nil
		}
		end -= n
	}
	return f.Truncate(0)
}

// Close implements logagent.Output.
func (o *Output) Close() error {
	var errs []error
	for p, of := range o.files {
		errs = append(errs, of.f.Close())
		delete(o.files, p)
	}
	return errors.Join(errs...)
}
