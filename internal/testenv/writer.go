package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Line returns line seq of the file tagged tag, without its newline:
// "<tag> <seq> <padding>". The padding's length and letter follow from seq,
// so that a piece of a line, or two lines run together, is recognised as
// corrupted.
func Line(tag string, seq int64) string {
	return tag + " " + strconv.FormatInt(seq, 10) + " " + pad(seq)
}

func pad(seq int64) string {
	return strings.Repeat(string(rune('a'+seq%26)), 16+int(seq%48))
}

// ParseLine checks that b is a whole line made by Line and returns its tag
// and sequence number.
func ParseLine(b []byte) (tag string, seq int64, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return "", 0, false
	}
	tag = string(b[:i])
	rest := b[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j <= 0 {
		return tag, 0, false
	}
	seq, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil || seq < 0 {
		return tag, 0, false
	}
	return tag, seq, string(rest[j+1:]) == pad(seq)
}

// Method is a way of rotating a log file.
type Method string

// The rotation methods. The names are what reports print.
const (
	NoRotation Method = "none"
	// Rename renames the file to NAME.1 (shifting NAME.1 to NAME.2 and so
	// on) and creates a new NAME; the writer switches at once.
	Rename Method = "rename"
	// RenameWriteAfter renames like Rename, but the writer keeps writing
	// to the renamed file for a while before it reopens NAME, as daemons do
	// until they get their SIGHUP.
	RenameWriteAfter Method = "rename-write-after"
	// CopyTruncate copies NAME to NAME.1 while the writer goes on writing,
	// then truncates NAME. Lines written between the end of the copy and
	// the truncation are in neither file: the rotation itself loses them.
	CopyTruncate Method = "copytruncate"
	// DeleteRecreate removes NAME and creates it again.
	DeleteRecreate Method = "delete"
	// DateNamed leaves the file as it is and goes on writing to a new file
	// with a new name (app-0001.log, app-0002.log, ...).
	DateNamed Method = "date-named"
)

// Methods lists every rotation method.
var Methods = []Method{Rename, RenameWriteAfter, CopyTruncate, DeleteRecreate, DateNamed}

// Stream writes sequence-numbered lines to one log file and rotates it.
// It records what the checker needs: how many lines it wrote, where each
// physical file's lines start (order is checked per file), and which lines
// a copytruncate rotation lost by itself. Safe for concurrent use: one
// goroutine writes while another rotates.
type Stream struct {
	Tag    string
	Dir    string
	Name   string // base name of the active file, e.g. "app.log"
	Method Method
	// WriteAfter is how long RenameWriteAfter keeps writing to the renamed
	// file (default 300ms).
	WriteAfter time.Duration
	// CopyPause is how long CopyTruncate waits between the end of the copy
	// and the truncation, as a copy of a large file would take: the lines
	// written meanwhile are what copytruncate loses by itself.
	CopyPause time.Duration
	// BeforeDelete, when set, is called before DeleteRecreate removes a
	// file, outside the stream's lock: a file removed before anyone opened
	// it is gone, so a test waits here until the agent holds it open.
	BeforeDelete func(path string)
	// AfterDelete is called after DeleteRecreate removed a file whose last
	// line has sequence number last.
	AfterDelete func(path string, last int64)

	mu        sync.Mutex
	f         *os.File
	path      string
	next      int64
	gen       int
	rotated   int     // highest NAME.N in use
	segs      []int64 // first sequence number of each physical file, ascending
	window    [][2]int64
	switchAt  time.Time // RenameWriteAfter: when the writer moves to the new file
	rotations int
	buf       []byte
}

// Open creates the stream's first file.
func (s *Stream) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.WriteAfter == 0 {
		s.WriteAfter = 300 * time.Millisecond
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	s.segs = append(s.segs, 0)
	return s.create()
}

func (s *Stream) activeName() string {
	if s.Method == DateNamed {
		ext := filepath.Ext(s.Name)
		return fmt.Sprintf("%s-%04d%s", strings.TrimSuffix(s.Name, ext), s.gen, ext)
	}
	return s.Name
}

// Path returns the path of the file being written.
func (s *Stream) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

func (s *Stream) create() error {
	s.path = filepath.Join(s.Dir, s.activeName())
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.f = f
	return nil
}

// Write appends n lines in one write(2).
func (s *Stream) Write(n int) error {
	return s.WriteWith(n, nil)
}

// WriteWith appends n lines in one write(2); extra, when set, replaces the
// padding of every line (for lines of a given size or content).
func (s *Stream) WriteWith(n int, extra func(seq int64) string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.switchAt.IsZero() && time.Now().After(s.switchAt) {
		if err := s.switchFile(); err != nil {
			return err
		}
	}
	b := s.buf[:0]
	for i := 0; i < n; i++ {
		if extra != nil {
			b = append(b, extra(s.next)...)
		} else {
			b = append(b, Line(s.Tag, s.next)...)
		}
		b = append(b, '\n')
		s.next++
	}
	s.buf = b
	_, err := s.f.Write(b)
	return err
}

// switchFile ends a RenameWriteAfter rotation: the writer reopens NAME.
func (s *Stream) switchFile() error {
	s.switchAt = time.Time{}
	s.f.Close()
	s.segs = append(s.segs, s.next)
	return s.create()
}

// Written returns how many lines the stream wrote.
func (s *Stream) Written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Rotations returns how many times the stream was rotated.
func (s *Stream) Rotations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotations
}

// Segment returns the index of the physical file line seq was written to.
func (s *Stream) Segment(seq int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sort.Search(len(s.segs), func(i int) bool { return s.segs[i] > seq }) - 1
}

// InWindow reports whether line seq was lost by a copytruncate rotation
// itself (written after the copy, before the truncation).
func (s *Stream) InWindow(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.window {
		if seq >= w[0] && seq < w[1] {
			return true
		}
	}
	return false
}

// WindowLines returns how many lines copytruncate rotations lost by
// themselves.
func (s *Stream) WindowLines() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, w := range s.window {
		n += w[1] - w[0]
	}
	return n
}

// Close closes the file being written.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// shift renames NAME.N to NAME.N+1, highest first, like logrotate (without
// ever deleting the oldest: the test needs every line).
func (s *Stream) shift() error {
	base := filepath.Join(s.Dir, s.Name)
	for i := s.rotated; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", base, i), fmt.Sprintf("%s.%d", base, i+1)); err != nil {
			return err
		}
	}
	s.rotated++
	return nil
}

// Rotate rotates the file by the stream's method.
func (s *Stream) Rotate() error {
	switch s.Method {
	case CopyTruncate:
		return s.copyTruncate()
	case DeleteRecreate:
		return s.deleteRecreate()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotations++
	switch s.Method {
	case Rename, RenameWriteAfter:
		if !s.switchAt.IsZero() {
			if err := s.switchFile(); err != nil {
				return err
			}
		}
		if err := s.shift(); err != nil {
			return err
		}
		if err := os.Rename(s.path, s.path+".1"); err != nil {
			return err
		}
		if s.Method == RenameWriteAfter {
			s.switchAt = time.Now().Add(s.WriteAfter)
			return nil
		}
		s.f.Close()
		s.segs = append(s.segs, s.next)
		return s.create()
	case DateNamed:
		s.f.Close()
		s.gen++
		s.segs = append(s.segs, s.next)
		return s.create()
	}
	return fmt.Errorf("rotate: method %q", s.Method)
}

// copyTruncate copies the file while the writer goes on, then truncates it
// under the writer's lock, recording the lines written in between.
func (s *Stream) copyTruncate() error {
	s.mu.Lock()
	if err := s.shift(); err != nil {
		s.mu.Unlock()
		return err
	}
	path := s.path
	s.mu.Unlock()

	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(dst, src)
	if err != nil {
		dst.Close()
		return err
	}
	// A read racing a write can end inside a line: keep whole lines only,
	// so that the copy is what a copy taken between two writes would be.
	tail := make([]byte, min(n, 64<<10))
	if _, err := dst.Seek(0, io.SeekStart); err == nil {
		if _, err := src.ReadAt(tail, n-int64(len(tail))); err == nil || err == io.EOF {
			if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
				n = n - int64(len(tail)) + int64(i) + 1
			}
		}
	}
	if err := dst.Truncate(n); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	time.Sleep(s.CopyPause)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotations++
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	if lost := fi.Size() - n; lost > 0 {
		b := make([]byte, lost)
		if _, err := src.ReadAt(b, n); err != nil && err != io.EOF {
			return err
		}
		var first, last int64 = -1, -1
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if _, seq, ok := ParseLine(l); ok {
				if first < 0 {
					first = seq
				}
				last = seq
			}
		}
		if first >= 0 {
			s.window = append(s.window, [2]int64{first, last + 1})
		}
	}
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	s.segs = append(s.segs, s.next)
	return nil
}

func (s *Stream) deleteRecreate() error {
	path := s.Path()
	if s.BeforeDelete != nil {
		s.BeforeDelete(path)
	}
	s.mu.Lock()
	s.rotations++
	s.f.Close()
	if err := os.Remove(path); err != nil {
		s.mu.Unlock()
		return err
	}
	last := s.next - 1
	s.segs = append(s.segs, s.next)
	err := s.create()
	s.mu.Unlock()
	if s.AfterDelete != nil {
		s.AfterDelete(path, last)
	}
	return err
}

// Scenario writes to streams at a steady rate and rotates each of them at
// an interval, until its context is done.
type Scenario struct {
	Streams     []*Stream
	Rate        int           // lines per second per stream
	RotateEvery time.Duration // 0: never; jittered by up to a fifth either way
	// Paused, when set and returning true, holds rotations back (writes go on).
	Paused func() bool
}

// Run writes and rotates until ctx is done, then closes the streams. It
// returns the first write or rotation error.
func (sc *Scenario) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(sc.Streams))
	for _, s := range sc.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sc.write(ctx, s); err != nil {
				errs <- fmt.Errorf("%s: write: %w", s.Tag, err)
			}
		}()
		if sc.RotateEvery > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sc.rotate(ctx, s); err != nil {
					errs <- fmt.Errorf("%s: rotate: %w", s.Tag, err)
				}
			}()
		}
	}
	wg.Wait()
	for _, s := range sc.Streams {
		s.Close()
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (sc *Scenario) write(ctx context.Context, s *Stream) error {
	start := time.Now()
	var done int64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due := int64(time.Since(start).Seconds()*float64(sc.Rate)) - done
		// A writer held up (its rotation waiting for the agent, a starved
		// machine) makes up for a second at most, and stops when the
		// scenario ends: the load stays the scenario's however slow the
		// machine, not a burst that grows with the delay.
		if due > int64(sc.Rate) {
			done += due - int64(sc.Rate)
			due = int64(sc.Rate)
		}
		for due > 0 && ctx.Err() == nil {
			// Writes of 1 to 32 lines: loggers write a line or a few at a
			// time; the agent must cope with reads ending anywhere.
			n := min(due, int64(1+rand.IntN(32)))
			if err := s.Write(int(n)); err != nil {
				return err
			}
			due -= n
			done += n
		}
	}
}

func (sc *Scenario) rotate(ctx context.Context, s *Stream) error {
	for {
		j := time.Duration(rand.Int64N(int64(sc.RotateEvery)/5*2+1)) - sc.RotateEvery/5
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sc.RotateEvery + j):
		}
		if sc.Paused != nil && sc.Paused() {
			continue
		}
		if err := s.Rotate(); err != nil {
			return err
		}
	}
}

// HasOpen reports whether process pid holds the file at path open.
func HasOpen(pid int, path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	want := fi.Sys().(*syscall.Stat_t)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Dev == want.Dev && st.Ino == want.Ino {
			return true
		}
	}
	return false
}
