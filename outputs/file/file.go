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
	"strings"

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
	files map[string]*os.File
	order []string // open files, least recently opened first
	buf   []byte
	group map[string][]int
}

// New returns a file output; files are opened on first use.
func New(id string, cfg Config, log *slog.Logger) (*Output, error) {
	perm, err := cfg.perm()
	if err != nil {
		return nil, err
	}
	return &Output{cfg: cfg, perm: perm, log: log, files: map[string]*os.File{}, group: map[string][]int{}}, nil
}

// Describe implements logagent.Describer.
func (o *Output) Describe() string { return "file " + o.cfg.Path }

// Destination implements logagent.Describer.
func (o *Output) Destination(m *logagent.Message) string { return o.pathFor(m.Source) }

func (o *Output) pathFor(src *logagent.Source) string {
	p := o.cfg.Path
	if !strings.Contains(p, "{") {
		return p
	}
	return strings.NewReplacer("{category}", safeName(src.Category), "{input}", safeName(src.Input)).Replace(p)
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
// a retry appends whole lines after whole lines.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	if len(batch) == 0 {
		return nil
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
	for _, p := range paths {
		if err := o.write(p, batch, o.group[p]); err != nil {
			return err
		}
	}
	return nil
}

// write appends the messages of batch at idx (all when idx is nil) to path.
func (o *Output) write(path string, batch []logagent.Message, idx []int) error {
	f, err := o.open(path)
	if err != nil {
		return err
	}
	buf := o.buf[:0]
	if idx == nil {
		for i := range batch {
			buf = append(buf, batch[i].Body...)
			buf = append(buf, '\n')
		}
	} else {
		for _, i := range idx {
			buf = append(buf, batch[i].Body...)
			buf = append(buf, '\n')
		}
	}
	o.buf = buf
	if cap(o.buf) > 16<<20 {
		o.buf = nil // one huge batch should not pin its buffer
	}
	fi, err := f.Stat()
	if err != nil {
		return o.fail(path, err)
	}
	if _, err := f.Write(buf); err != nil {
		// Out of space or similar: take the part written back off so that
		// the file never holds a torn line, then let the batch be retried.
		if terr := f.Truncate(fi.Size()); terr != nil {
			o.log.Error("cannot cut a partial write back; the file may hold a partial line", "path", path, "err", terr)
		}
		return o.fail(path, err)
	}
	if o.cfg.Sync {
		if err := f.Sync(); err != nil {
			return o.fail(path, err)
		}
	}
	return nil
}

func (o *Output) fail(path string, err error) error {
	if f := o.files[path]; f != nil {
		f.Close()
		delete(o.files, path)
	}
	return fmt.Errorf("write %s: %w", path, err)
}

// open returns the open file at path. A file that ends with a partial line
// (the agent was killed in the middle of a write) is cut back to its last
// newline before anything is appended: that partial line is sent again,
// whole, because its offset was never committed.
func (o *Output) open(path string) (*os.File, error) {
	if f := o.files[path]; f != nil {
		return f, nil
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
	if len(o.files) >= o.cfg.MaxOpenFiles {
		oldest := o.order[0]
		o.order = o.order[1:]
		if old := o.files[oldest]; old != nil {
			old.Close()
			delete(o.files, oldest)
		}
	}
	o.files[path] = f
	o.order = append(o.order, path)
	return f, nil
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
	for p, f := range o.files {
		errs = append(errs, f.Close())
		delete(o.files, p)
	}
	return errors.Join(errs...)
}
