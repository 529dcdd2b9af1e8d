package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// The data directory is trusted: what its checkpoint names is read, and
// the agent (often root, or holding CAP_DAC_READ_SEARCH) writes to the
// files it finds there. So a Store refuses a directory that anyone but the
// agent's user could write into (CheckDir), opens every state file with
// O_NOFOLLOW, so that a planted symbolic link is never followed, and
// creates new files with O_EXCL.
//
// When the agent runs as root in a directory owned by another user (the
// service user, say, as root runs it by hand), the state files it creates
// are given to the directory's owner, so that the service can still use
// them afterwards.

// owner is who the state files a Store creates are given to; uid < 0: the
// creating user, left alone.
type owner struct{ uid, gid int }

var noOwner = owner{-1, -1}

// chown gives f to o, if o is set.
func (o owner) chown(f *os.File) error {
	if o.uid < 0 {
		return nil
	}
	if err := f.Chown(o.uid, o.gid); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", f.Name(), o.uid, err)
	}
	return nil
}

// CheckDir returns an error if dir, or a file in it, can be written by
// anyone but the agent's (effective) user, or if the agent could not
// write there: a file left by another user (root, say) is named with the
// command that fixes it. A dir that does not exist yet is fine if the
// agent can create it.
func CheckDir(dir string) error {
	_, err := checkDir(dir)
	return err
}

// checkDir is CheckDir; it also returns who new state files must be given
// to.
func checkDir(dir string) (owner, error) {
	euid := os.Geteuid()
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Created by MkdirAll; its nearest existing parent must let us.
		p := filepath.Dir(dir)
		for p != filepath.Dir(p) {
			if _, err := os.Stat(p); err == nil {
				break
			}
			p = filepath.Dir(p)
		}
		if err := writable(p); err != nil {
			return noOwner, fmt.Errorf("data_dir %s does not exist and cannot be created: %w", dir, err)
		}
		return noOwner, nil
	}
	if err != nil {
		return noOwner, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return noOwner, fmt.Errorf("data_dir %s is not a directory", dir)
	}
	sys := st.Sys().(*syscall.Stat_t)
	dirUID := int(sys.Uid)
	own := noOwner
	if euid == 0 && dirUID != 0 {
		own = owner{dirUID, int(sys.Gid)}
	}
	// Files must belong to the agent's user; as root, those of the
	// directory's owner (given by an earlier run as root) are fine too.
	mine := func(uid int) bool { return uid == euid || euid == 0 && uid == dirUID }
	fix := fmt.Sprintf("chown -R %s: %s && chmod -R go-w %s", userName(dirUID), dir, dir)
	if euid != 0 && dirUID != euid && dirUID != 0 {
		return noOwner, fmt.Errorf("data_dir %s belongs to %s, not to %s that runs the agent: it could rewrite the checkpoint; as root run: chown -R %s: %s",
			dir, userName(dirUID), userName(euid), userName(euid), dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return noOwner, fmt.Errorf("data_dir %s can be written by other users (mode %v): they could rewrite the checkpoint or plant links; run: chmod go-w %s", dir, st.Mode().Perm(), dir)
	}
	if euid != 0 {
		if err := writable(dir); err != nil {
			return noOwner, fmt.Errorf("data_dir %s: %w; as root run: chown -R %s: %s", dir, err, userName(euid), dir)
		}
		fix = fmt.Sprintf("chown -R %s: %s && chmod -R go-w %s", userName(euid), dir, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return noOwner, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	for _, e := range ents {
		info, err := e.Info() // lstat: a link is judged, not its target
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return noOwner, fmt.Errorf("data_dir %s: %w", dir, err)
		}
		uid := int(info.Sys().(*syscall.Stat_t).Uid)
		path := filepath.Join(dir, e.Name())
		switch {
		case !mine(uid):
			return noOwner, fmt.Errorf("data_dir %s: %s belongs to %s, not to %s that runs the agent (left by a run as another user?); as root run: %s",
				dir, path, userName(uid), userName(euid), fix)
		case info.Mode()&fs.ModeSymlink == 0 && info.Mode().Perm()&0o022 != 0:
			return noOwner, fmt.Errorf("data_dir %s: %s can be written by other users (mode %v); run: chmod go-w %s", dir, path, info.Mode().Perm(), path)
		}
	}
	return own, nil
}

// writable reports whether the agent's user may create files in dir.
func writable(dir string) error {
	// access(2) checks the real uid, which is the effective one here (the
	// agent is not set-uid); it counts capabilities as open(2) would.
	if err := syscall.Access(dir, 2|1); err != nil { // W_OK|X_OK
		return fmt.Errorf("%s is not writable by %s: %w", dir, userName(os.Geteuid()), err)
	}
	return nil
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

// openState opens a state file without following a symbolic link, and
// refuses a file with more than one link: a link found there was planted,
// and following it would make the agent read, write or give away whatever
// it points to.
func openState(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link, which a state file never is (planted?): refused; remove it: %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink > 1 {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file with one link, which a state file always is (planted?): refused; remove it", path)
	}
	return f, nil
}

// createState creates the state file at path, replacing a file of that
// name (never writing into it, whatever it is or links to), and gives it
// to own.
func createState(path string, flag int, perm os.FileMode, own owner) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := openState(path, flag|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	if err := own.chown(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readState reads the state file at path, not following a link.
func readState(path string) ([]byte, error) {
	f, err := openState(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
