package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Opening a log file is where the agent, which may hold
// CAP_DAC_READ_SEARCH (read anything), decides what it reads. The rules:
//
//   - Only regular files. Every file is opened with O_NONBLOCK and its type
//     checked on the open descriptor (fstat), so that a FIFO, a socket or a
//     device, even one swapped in between a stat and the open, never blocks
//     the open or a read; it is skipped.
//   - Symbolic links are not followed unless the input says
//     follow_symlinks: true (O_NOFOLLOW on the last element of the path).
//   - A followed link is read only if every link of the chain leading to
//     the file was made by a user who could read the file without the
//     agent's privileges: for each link owner, the file's mode grants read
//     to that user (as owner, through one of the user's groups, or to
//     others), and every directory above the file grants search the same
//     way. So a user who can write into a log directory cannot make the
//     agent ship a file that user could not read. Root's links are trusted.
//     POSIX ACLs are not consulted: a file readable through an ACL alone
//     is refused.

// errNotRegular is returned for a FIFO, socket, device or directory.
var errNotRegular = errors.New("not a regular file")

// errSymlink is returned for a symbolic link that is not to be followed.
var errSymlink = errors.New("symbolic link not followed (follow_symlinks is false)")

// errDangling is returned for a followed link whose target does not exist
// (yet).
var errDangling = errors.New("symbolic link to a file that does not exist")

// linkDeniedError says which link owner could not read the link's target.
type linkDeniedError struct {
	target string
	uid    uint32
	why    string
}

func (e *linkDeniedError) Error() string {
	return fmt.Sprintf("symbolic link to %s refused: its owner (uid %d) could not read it (%s)", e.target, e.uid, e.why)
}

// Skipped reports whether err (of a PlannedFile) says the file is skipped
// by design, not unreadable: a link not followed or refused, a dangling or
// looping link, a FIFO, socket or device.
func Skipped(err error) bool {
	var denied *linkDeniedError
	return errors.Is(err, errSymlink) || errors.Is(err, errNotRegular) || errors.Is(err, errDangling) ||
		errors.As(err, &denied) || errors.Is(err, syscall.ELOOP)
}

// maxLinkHops bounds a chain of links, as the kernel's ELOOP does.
const maxLinkHops = 40

// openRegular opens path for reading without blocking and without
// following a link as its last element, and returns it if it is a regular
// file, with the stat of its descriptor. The descriptor is set back to
// blocking mode (reads of a regular file never block, and os.File expects
// it).
func openRegular(path string) (*os.File, os.FileInfo, error) {
	// A look first, so that a device is not even opened (opening some has
	// effects); the check on the descriptor below is the one that holds.
	if lfi, err := os.Lstat(path); err != nil {
		return nil, nil, err
	} else if t := lfi.Mode().Type(); t&fs.ModeSymlink == 0 && !lfi.Mode().IsRegular() {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", errNotRegular, typeName(lfi.Sys().(*syscall.Stat_t).Mode))}
	}
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		if err == syscall.ENXIO {
			err = fmt.Errorf("%w (socket or device)", errNotRegular)
		} else if err == syscall.ELOOP {
			if lfi, lerr := os.Lstat(path); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
				err = errSymlink
			}
		}
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	// Of the flags F_SETFL changes, it has O_NONBLOCK alone: cleared by
	// setting none, in one call where SetNonblock reads them first. A
	// descriptor of anything but a regular file is closed below, unread.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		syscall.Close(fd)
		return nil, nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", errNotRegular, typeName(fi.Sys().(*syscall.Stat_t).Mode))}
	}
	return f, fi, nil
}

func typeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return "FIFO"
	case syscall.S_IFSOCK:
		return "socket"
	case syscall.S_IFCHR:
		return "character device"
	case syscall.S_IFBLK:
		return "block device"
	case syscall.S_IFDIR:
		return "directory"
	}
	return "special file"
}

// openLog opens the log file at path, following a link only if follow is
// set and the link's owners could read its target (see the rules above).
// real is the path of the file opened: path itself, or the link's target
// with every link resolved. For a dangling link, err is errDangling and
// real is where the target would be.
func openLog(path string, follow bool) (f *os.File, fi os.FileInfo, real string, err error) {
	if !follow {
		f, fi, err = openRegular(path)
		return f, fi, path, err
	}
	target, owners, err := resolveLinks(path)
	if err != nil {
		return nil, nil, "", err
	}
	if len(owners) == 0 {
		f, fi, err = openRegular(path)
		return f, fi, path, err
	}
	real, err = filepath.EvalSymlinks(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, target, &fs.PathError{Op: "open", Path: path, Err: errDangling}
		}
		return nil, nil, target, err
	}
	f, fi, err = openRegular(real)
	if err != nil {
		return nil, nil, real, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	for _, uid := range owners {
		if err := mayRead(uid, real, st); err != nil {
			f.Close()
			return nil, nil, real, err
		}
	}
	return f, fi, real, nil
}

// resolveLinks follows path while it is a symbolic link and returns what
// the last link names (path itself if it is no link) and the owners of the
// links followed.
func resolveLinks(path string) (string, []uint32, error) {
	var owners []uint32
	var seen []string // a loop is told at its first turn, not after maxLinkHops
	for range maxLinkHops {
		for _, p := range seen {
			if p == path {
				return "", nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
			}
		}
		seen = append(seen, path)
		lfi, err := os.Lstat(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && len(owners) > 0 {
				return path, owners, nil // dangling: the caller says so
			}
			return "", nil, err
		}
		if lfi.Mode()&fs.ModeSymlink == 0 {
			return path, owners, nil
		}
		owners = append(owners, lfi.Sys().(*syscall.Stat_t).Uid)
		t, err := os.Readlink(path)
		if err != nil {
			return "", nil, err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(path), t)
		}
		path = filepath.Clean(t)
	}
	return "", nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
}

// mayRead tells whether user uid could read the file real (of stat st)
// without privileges: read permission on the file and search permission on
// every directory above it.
func mayRead(uid uint32, real string, st *syscall.Stat_t) error {
	if uid == 0 {
		return nil
	}
	groups := userGroups(uid)
	if !permits(uid, groups, st, 4) {
		return &linkDeniedError{target: real, uid: uid, why: fmt.Sprintf("file mode %#o, owner %d, group %d", st.Mode&0o777, st.Uid, st.Gid)}
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		var ds syscall.Stat_t
		if err := syscall.Stat(d, &ds); err != nil {
			return err
		}
		if !permits(uid, groups, &ds, 1) {
			return &linkDeniedError{target: real, uid: uid, why: fmt.Sprintf("directory %s not searchable by it", d)}
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// permits applies the mode bits of st for uid, in groups, wanting the
// permission bit want (4 read, 1 search).
func permits(uid uint32, groups map[uint32]bool, st *syscall.Stat_t, want uint32) bool {
	mode := st.Mode & 0o777
	switch {
	case st.Uid == uid:
		return mode&(want<<6) != 0
	case groups[st.Gid]:
		return mode&(want<<3) != 0
	}
	return mode&want != 0
}

// groupCache holds users' groups for a while: looking them up reads
// /etc/group, and a scan may meet thousands of links of a few owners.
var groupCache struct {
	sync.Mutex
	m map[uint32]cachedGroups
}

type cachedGroups struct {
	groups map[uint32]bool
	at     time.Time
}

const groupCacheTTL = time.Minute

// userGroups returns the groups of uid, primary and supplementary. A user
// unknown to the system has none: only the owner and other bits apply.
func userGroups(uid uint32) map[uint32]bool {
	groupCache.Lock()
	defer groupCache.Unlock()
	if c, ok := groupCache.m[uid]; ok && time.Since(c.at) < groupCacheTTL {
		return c.groups
	}
	groups := map[uint32]bool{}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			groups[uint32(g)] = true
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					groups[uint32(g)] = true
				}
			}
		}
	}
	if groupCache.m == nil {
		groupCache.m = map[uint32]cachedGroups{}
	}
	groupCache.m[uid] = cachedGroups{groups: groups, at: time.Now()}
	return groups
}
