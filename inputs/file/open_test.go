package file

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenRegularReturns checks what openRegular hands back for a regular
// file: a descriptor in blocking mode (os.File expects it) and the stat of
// that descriptor as os.Stat gives it, which its callers use rather than
// a stat of their own.
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
