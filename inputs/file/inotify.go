package file

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/fsnotify/fsnotify"
)

// inotify is an inotify instance watching directories, read by the
// Watcher's own goroutine (Watcher.Run) rather than by a goroutine of its
// own: Run reads what the kernel queued, in one read, only when it is
// ready for the next pass, so that the writes made in between cost no
// wake-up at all (the kernel queues them, and merges a file's writes that
// follow each other). fsnotify's reader woke at every event. Events are
// told as fsnotify would tell them: Create (IN_CREATE, IN_MOVED_TO), Remove
// (IN_DELETE, IN_DELETE_SELF), Write (IN_MODIFY), Rename (IN_MOVED_FROM,
// IN_MOVE_SELF, after which the directory is no longer watched), Chmod
// (IN_ATTRIB), named by the directory's path and the file's name.
type inotify struct {
	fd int      // for inotify_add_watch and inotify_rm_watch
	f  *os.File // fd, non-blocking: a read waits in the runtime's poller

	mu     sync.Mutex
	byWd   map[int32]string
	byPath map[string]int32

	// buf is read's, on Run's goroutine: room for about eventBurst
	// events of short names, so that one pass hands an input no more
	// events than its queue holds.
	buf []byte
}

const inotifyMask = syscall.IN_MOVED_TO | syscall.IN_MOVED_FROM | syscall.IN_CREATE | syscall.IN_ATTRIB |
	syscall.IN_MODIFY | syscall.IN_MOVE_SELF | syscall.IN_DELETE | syscall.IN_DELETE_SELF

// errOverflow is returned by read when the kernel's queue overflowed:
// events were lost.
var errOverflow = errors.New("inotify event queue overflow")

func openInotify() (*inotify, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	return &inotify{
		fd: fd, f: os.NewFile(uintptr(fd), "inotify"),
		byWd: map[int32]string{}, byPath: map[string]int32{},
		buf: make([]byte, eventBurst*32),
	}, nil
}

// Add watches dir.
func (n *inotify) Add(dir string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	wd, err := syscall.InotifyAddWatch(n.fd, dir, inotifyMask)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	if old, ok := n.byWd[int32(wd)]; ok && old != dir {
		delete(n.byPath, old) // the same directory under another path
	}
	n.byWd[int32(wd)] = dir
	n.byPath[dir] = int32(wd)
	return nil
}

// Remove stops watching dir.
func (n *inotify) Remove(dir string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	wd, ok := n.byPath[dir]
	if !ok {
		return
	}
	delete(n.byPath, dir)
	delete(n.byWd, wd)
	syscall.InotifyRmWatch(n.fd, uint32(wd)) // gone already, usually
}

// interrupt has a read waiting, or the next one, return at once.
func (n *inotify) interrupt() { n.f.SetReadDeadline(time.Unix(1, 0)) }

// Close releases the instance.
func (n *inotify) Close() error { return n.f.Close() }

// read waits for events and appends those queued, up to a buffer's worth,
// to evs. With errOverflow, the events read are returned all the same.
func (n *inotify) read(evs []fsnotify.Event) ([]fsnotify.Event, error) {
	got, err := n.f.Read(n.buf)
	if err != nil {
		return evs, err
	}
	var overflow bool
	n.mu.Lock()
	defer n.mu.Unlock()
	for off := 0; off+syscall.SizeofInotifyEvent <= got; {
		raw := (*syscall.InotifyEvent)(unsafe.Pointer(&n.buf[off]))
		nameAt := off + syscall.SizeofInotifyEvent
		off = nameAt + int(raw.Len)
		if raw.Mask&syscall.IN_Q_OVERFLOW != 0 {
			overflow = true
			continue
		}
		dir, ok := n.byWd[raw.Wd]
		if !ok {
			continue // removed since the event was queued
		}
		if raw.Mask&syscall.IN_IGNORED != 0 {
			delete(n.byWd, raw.Wd)
			delete(n.byPath, dir)
			continue
		}
		name := dir
		if raw.Len > 0 {
			b := n.buf[nameAt : nameAt+int(raw.Len)]
			for len(b) > 0 && b[len(b)-1] == 0 {
				b = b[:len(b)-1]
			}
			name = dir + "/" + string(b)
		}
		if raw.Mask&(syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF) != 0 {
			// Its watch is gone (deleted) or names a path it no
			// longer has (moved): forgotten.
			delete(n.byWd, raw.Wd)
			delete(n.byPath, dir)
			if raw.Mask&syscall.IN_MOVE_SELF != 0 {
				syscall.InotifyRmWatch(n.fd, uint32(raw.Wd))
			}
			if _, parent := n.byPath[filepath.Dir(dir)]; parent && raw.Mask&syscall.IN_DELETE_SELF != 0 {
				continue // the parent's IN_DELETE tells it
			}
		}
		if ev := (fsnotify.Event{Name: name, Op: inotifyOp(raw.Mask)}); ev.Op != 0 {
			evs = append(evs, ev)
		}
	}
	if overflow {
		return evs, errOverflow
	}
	return evs, nil
}

func inotifyOp(mask uint32) fsnotify.Op {
	var op fsnotify.Op
	if mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 {
		op |= fsnotify.Create
	}
	if mask&(syscall.IN_DELETE_SELF|syscall.IN_DELETE) != 0 {
		op |= fsnotify.Remove
	}
	if mask&syscall.IN_MODIFY != 0 {
		op |= fsnotify.Write
	}
	if mask&(syscall.IN_MOVE_SELF|syscall.IN_MOVED_FROM) != 0 {
		op |= fsnotify.Rename
	}
	if mask&syscall.IN_ATTRIB != 0 {
		op |= fsnotify.Chmod
	}
	return op
}
