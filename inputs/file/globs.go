package file

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/bmatcuk/doublestar/v4"
)

// Globs: which paths belong to the input (matches, Excluded, knownDir) and
// what the globs match now (expand).

// matches reports whether path is one of the input's files.
func (in *Input) matches(path string) bool {
	for _, p := range in.cfg.Paths {
		if ok, _ := doublestar.PathMatch(p, path); ok {
			return !Excluded(in.cfg.Exclude, path)
		}
	}
	return false
}

// Excluded reports whether path matches one of the exclude globs, on its
// base name or its full path.
func Excluded(exclude []string, path string) bool {
	base := filepath.Base(path)
	for _, x := range exclude {
		if ok, _ := doublestar.PathMatch(x, base); ok {
			return true
		}
		if ok, _ := doublestar.PathMatch(x, path); ok {
			return true
		}
	}
	return false
}

// Expand returns the files matching the globs (anything but directories:
// links and special files are told apart at open), minus exclusions,
// sorted and without duplicates, and the directories to watch.
func Expand(paths, exclude []string) (files, dirs []string) {
	x := expand(paths, exclude)
	return x.files, x.dirs
}

// expansion is what the globs match.
type expansion struct {
	files, dirs []string
	// unreadable holds the directories the globs reach but cannot list
	// (permission denied, I/O error): their files are not known.
	unreadable map[string]error
}

func expand(paths, exclude []string) expansion {
	seen := map[string]bool{}
	dirSet := map[string]bool{}
	x := expansion{unreadable: map[string]error{}}
	for _, p := range paths {
		base, _ := doublestar.SplitPattern(p)
		dirSet[base] = true
		matches := glob(p, x.unreadable)
		for _, m := range matches {
			if seen[m] || Excluded(exclude, m) {
				continue
			}
			seen[m] = true
			x.files = append(x.files, m)
			dirSet[filepath.Dir(m)] = true
		}
	}
	for d := range dirSet {
		x.dirs = append(x.dirs, d)
	}
	sort.Strings(x.files)
	sort.Strings(x.dirs)
	return x
}

// glob is doublestar.FilepathGlob (files only, symlinks to directories not
// followed), recording in unreadable the directories it could not list,
// which FilepathGlob skips without a word.
func glob(pattern string, unreadable map[string]error) []string {
	opts := []doublestar.GlobOption{doublestar.WithFilesOnly(), doublestar.WithNoFollow()}
	base, rest := doublestar.SplitPattern(filepath.ToSlash(filepath.Clean(pattern)))
	if rest == "" || rest == "." || rest == ".." {
		m, _ := doublestar.FilepathGlob(pattern, opts...)
		return m
	}
	fsys := listFS{base: base, fsys: os.DirFS(base), errs: unreadable}
	m, _ := doublestar.Glob(fsys, rest, opts...)
	for i := range m {
		m[i] = filepath.FromSlash(path.Join(base, m[i]))
	}
	return m
}

// listFS is an fs.FS that records the directories it fails to list.
type listFS struct {
	base string
	fsys fs.FS
	errs map[string]error
}

func (l listFS) Open(name string) (fs.File, error) { return l.fsys.Open(name) }

func (l listFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(l.fsys, name) }

func (l listFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(l.fsys, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		dir := filepath.FromSlash(path.Join(l.base, name))
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is told apart
		}
		l.errs[dir] = err
	}
	return ents, err
}

// knownDir reports whether a file in dir may be read: dir is where a glob
// of the input looks (the directory part of a glob matches it), or holds
// the target of a link followed (opened: a dangling link, or one refused,
// does not count). A checkpoint entry naming a file anywhere else is not
// read: the checkpoint is no list of files to ship.
func (in *Input) knownDir(dir string) bool {
	for _, p := range in.cfg.Paths {
		if ok, _ := doublestar.PathMatch(filepath.Dir(p), dir); ok {
			return true
		}
		if strings.Contains(p, "**") {
			// dir/** matches dir itself and every directory below.
			if ok, _ := doublestar.PathMatch(filepath.Dir(p), filepath.Join(dir, "x")); ok {
				return true
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.readDirs[dir]
}
