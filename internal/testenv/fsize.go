package testenv

import (
	"flag"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// WithFileSizeLimit runs f with this process's file size limit
// (RLIMIT_FSIZE) at n bytes and SIGXFSZ ignored: a write crossing n is cut
// short and the next fails with EFBIG, as on a full disk. It skips t if
// the limit cannot be lowered. The limit holds for every file the process
// writes, go test's own log included: a package using it runs its tests
// through MainWithoutTestLog.
func WithFileSizeLimit(t testing.TB, n int64, f func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip("cannot read RLIMIT_FSIZE:", err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	lim := old
	lim.Cur = uint64(n)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip("cannot lower RLIMIT_FSIZE:", err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// MainWithoutTestLog runs m's tests, and exits, with go test's log of the
// files and variables they look at (-test.testlogfile, which its cache
// reads) turned off. That log is buffered: when its buffer fills inside a
// WithFileSizeLimit window, the log, larger than the limit, cannot grow,
// and the package fails after every test passed. The package's results
// are not cached then.
func MainWithoutTestLog(m *testing.M) {
	flag.Parse()
	if err := flag.Set("test.testlogfile", ""); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
