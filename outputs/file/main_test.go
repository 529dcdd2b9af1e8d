package file

import (
	"flag"
	"os"
	"testing"
)

// TestMain turns off go test's log of the files and variables tests look
// at (-test.testlogfile, which its cache reads). Tests here lower this
// process's file size limit (RLIMIT_FSIZE) to make writes fail as on a
// full disk; that log, already larger than the limit, then fails to grow,
// and the package fails after every test passed, whenever its buffer
// happens to fill inside the window.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := flag.Set("test.testlogfile", ""); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
