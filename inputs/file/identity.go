package file

import (
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/logagent/logagent"
)

// DefaultFingerprintBytes is how many leading bytes of a file identify it
// together with its device and inode.
const DefaultFingerprintBytes = 1024

// statID returns the device and inode of fi.
func statID(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}

// fingerprint hashes the first n bytes of f (fewer if the file is shorter)
// and returns the hash and how many bytes it covers.
func fingerprint(f io.ReaderAt, n int) (uint64, int, error) {
	var fp uint64
	got, err := withPrefix(f, n, func(b []byte) { fp = hashBytes(b) })
	return fp, got, err
}

// prefixBufs holds buffers for reading the first bytes of files: they are
// read on every look at a file's content, and need not be garbage.
var prefixBufs sync.Pool

// withPrefix reads the first n bytes of f (fewer if the file is shorter),
// passes them to use, and returns how many there were. use must not keep
// the slice.
func withPrefix(f io.ReaderAt, n int, use func([]byte)) (int, error) {
	bp, _ := prefixBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		b := make([]byte, max(n, DefaultFingerprintBytes))
		bp = &b
	}
	defer prefixBufs.Put(bp)
	buf := (*bp)[:n]
	got, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return 0, err
	}
	use(buf[:got])
	return got, nil
}

// hashBytes is 64-bit FNV-1a (as hash/fnv's New64a), inline so that it
// allocates nothing. Checkpoints hold its values: it must not change.
func hashBytes(b []byte) uint64 { return hashMore(fnvOffset, b) }

// hashMore goes on hashing b after bytes that hashed to h: hashMore(
// hashBytes(a), b) is hashBytes of a followed by b.
func hashMore(h uint64, b []byte) uint64 {
	const prime64 = 1099511628211
	for _, c := range b {
		h ^= uint64(c)
		h *= prime64
	}
	return h
}

const fnvOffset = 14695981039346656037

// checkSeed seeds checkHash: its values live in memory only.
var checkSeed = maphash.MakeSeed()

// checkHash is a fast hash of b, to tell whether bytes seen before are
// still there (see harvester.lookAtContent).
func checkHash(b []byte) uint64 { return maphash.Bytes(checkSeed, b) }

// identify returns the identity of the open file f, fingerprinting up to
// fpBytes leading bytes.
func identify(f *os.File, fpBytes int) (logagent.FileID, os.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return logagent.FileID{}, nil, err
	}
	id, err := identifyAs(f, fi, fpBytes)
	return id, fi, err
}

// identifyAs is identify with fi, a stat of f its caller made as it opened
// it (openLog).
func identifyAs(f *os.File, fi os.FileInfo, fpBytes int) (logagent.FileID, error) {
	dev, ino, ok := statID(fi)
	if !ok {
		return logagent.FileID{}, fmt.Errorf("%s: no inode information", f.Name())
	}
	n := fpBytes
	if fi.Size() < int64(n) {
		n = int(fi.Size())
	}
	fp, fpLen, err := fingerprint(f, n)
	if err != nil {
		return logagent.FileID{}, err
	}
	return logagent.FileID{Dev: dev, Ino: ino, Fingerprint: fp, FingerprintLen: fpLen}, nil
}

// sameFile reports whether the file f, of device and inode dev:ino, is the
// file that was known as id: same device and inode, and its first
// id.FingerprintLen bytes still hash to id.Fingerprint. A file that grew
// past a short fingerprint is still the same file; an inode reused by a new
// file, or a file truncated and rewritten, is not.
func sameFile(f io.ReaderAt, dev, ino uint64, id logagent.FileID) (bool, error) {
	if dev != id.Dev || ino != id.Ino {
		return false, nil
	}
	fp, n, err := fingerprint(f, id.FingerprintLen)
	if err != nil {
		return false, err
	}
	return n == id.FingerprintLen && fp == id.Fingerprint, nil
}

// sameContent reports whether f starts with the bytes fingerprinted in id,
// whatever its inode: how a copy made by copytruncate is recognised.
func sameContent(f io.ReaderAt, id logagent.FileID) (bool, error) {
	if id.FingerprintLen == 0 {
		return false, nil
	}
	fp, n, err := fingerprint(f, id.FingerprintLen)
	if err != nil {
		return false, err
	}
	return n == id.FingerprintLen && fp == id.Fingerprint, nil
}
