package file

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFileInfoOf checks that a stat the input made itself reads as os.Lstat
// reads the same file, for each kind of file and mode bit.
func TestFileInfoOf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		make func(path string) error
	}{
		{"regular", func(p string) error { return os.WriteFile(p, []byte("some lines\n"), 0o640) }},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"setuid setgid", func(p string) error {
			if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
				return err
			}
			return syscall.Chmod(p, 0o755|syscall.S_ISUID|syscall.S_ISGID)
		}},
		{"directory sticky", func(p string) error {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return syscall.Chmod(p, 0o1777)
		}},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"symlink", func(p string) error { return os.Symlink("elsewhere", p) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			// An mtime with nanoseconds, that a truncated conversion
			// would lose.
			mtime := time.Unix(1_700_000_000, 123_456_789)
			if tt.name != "symlink" {
				if err := os.Chtimes(path, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(path, &st); err != nil {
				t.Fatal(err)
			}
			got := fileInfoOf(path, &st)
			if got.Name() != want.Name() || got.Size() != want.Size() || got.Mode() != want.Mode() ||
				!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() {
				t.Errorf("fileInfoOf = %s %d %v %v dir=%v, os.Lstat = %s %d %v %v dir=%v",
					got.Name(), got.Size(), got.Mode(), got.ModTime(), got.IsDir(),
					want.Name(), want.Size(), want.Mode(), want.ModTime(), want.IsDir())
			}
			gotDev, gotIno, ok := statID(got)
			wantDev, wantIno, _ := statID(want)
			if !ok || gotDev != wantDev || gotIno != wantIno {
				t.Errorf("statID = %d:%d %v, want %d:%d", gotDev, gotIno, ok, wantDev, wantIno)
			}
		})
	}
}

// TestOpenRegularReturns checks what openRegular hands back for a regular
// file: a descriptor in blocking mode (os.File expects it) and, without a
// stat of its own, the file's stat as os.Stat gives it.
func TestOpenRegularReturns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, fi, err := openRegular(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		t.Errorf("descriptor flags %#o: O_NONBLOCK still set", flags)
	}
	want, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name() != want.Name() || fi.Size() != want.Size() || fi.Mode() != want.Mode() || !fi.ModTime().Equal(want.ModTime()) {
		t.Errorf("openRegular's stat = %s %d %v %v, os.Stat = %s %d %v %v",
			fi.Name(), fi.Size(), fi.Mode(), fi.ModTime(), want.Name(), want.Size(), want.Mode(), want.ModTime())
	}
	d, i, _ := statID(fi)
	wd, wi, _ := statID(want)
	if d != wd || i != wi {
		t.Errorf("openRegular's inode %d:%d, os.Stat's %d:%d", d, i, wd, wi)
	}
}
