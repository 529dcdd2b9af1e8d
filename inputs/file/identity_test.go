package file

import (
	"bytes"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

func mustIdentify(t *testing.T, path string) (f *os.File, dev, ino uint64, fp int) {
	t.Helper()
	f, id := openIdentity(t, path, DefaultFingerprintBytes)
	return f, id.Dev, id.Ino, id.FingerprintLen
}

// openIdentity opens path, closed when t ends, and returns its identity
// over n bytes.
func openIdentity(t *testing.T, path string, n int) (*os.File, logagent.FileID) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	id, _, err := identify(f, n)
	if err != nil {
		t.Fatal(err)
	}
	return f, id
}

// An inode reused by a new file (or a file truncated and rewritten) is not
// the file that was checkpointed under that inode.
func TestIdentityInodeReuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	os.WriteFile(path, bytes.Repeat([]byte("old line\n"), 200), 0o644)
	f, _, _, _ := mustIdentify(t, path)
	old, _, _ := identify(f, DefaultFingerprintBytes)
	// Same inode, new content.
	os.WriteFile(path, bytes.Repeat([]byte("new line\n"), 200), 0o644)
	g, dev, ino, _ := mustIdentify(t, path)
	if dev != old.Dev || ino != old.Ino {
		t.Fatal("test needs the same inode")
	}
	if ok, _ := sameFile(g, dev, ino, old); ok {
		t.Error("a new content at the same inode is seen as the old file")
	}
}

// Two files with the same first bytes are told apart by their inode; their
// same content is how a copy made by copytruncate is recognised.
func TestIdentitySameFirstBytes(t *testing.T) {
	dir := t.TempDir()
	head := bytes.Repeat([]byte("same header\n"), 100) // > 1KiB
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	os.WriteFile(a, append(head, "a\n"...), 0o644)
	os.WriteFile(b, append(head, "b\n"...), 0o644)
	fa, _, _, _ := mustIdentify(t, a)
	ida, _, _ := identify(fa, DefaultFingerprintBytes)
	fb, devb, inob, _ := mustIdentify(t, b)
	if ok, _ := sameFile(fb, devb, inob, ida); ok {
		t.Error("b is seen as a")
	}
	if ok, _ := sameContent(fb, ida); !ok {
		t.Error("b is not recognised as a copy of a's first bytes")
	}
}

// A file shorter than the fingerprint is identified by what it has; once it
// grows it is still the same file, and its identity can be extended.
func TestIdentityShortFileGrows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	os.WriteFile(path, []byte("short\n"), 0o644)
	f, dev, ino, n := mustIdentify(t, path)
	if n != 6 {
		t.Fatalf("fingerprint of a 6-byte file covers %d bytes", n)
	}
	short, _, _ := identify(f, DefaultFingerprintBytes)
	w, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	w.Write(bytes.Repeat([]byte("more lines\n"), 200))
	w.Close()
	if ok, _ := sameFile(f, dev, ino, short); !ok {
		t.Fatal("a grown file is not the same file")
	}
	long, _, _ := identify(f, DefaultFingerprintBytes)
	if long.FingerprintLen != DefaultFingerprintBytes || long.Fingerprint == short.Fingerprint {
		t.Fatalf("extended identity %v", long)
	}
	// A file that started with the same 6 bytes but is another file is
	// told apart once both are long enough.
	other := filepath.Join(filepath.Dir(path), "b.log")
	os.WriteFile(other, append([]byte("short\n"), bytes.Repeat([]byte("other\n"), 300)...), 0o644)
	fo, _, _, _ := mustIdentify(t, other)
	if ok, _ := sameContent(fo, long); ok {
		t.Error("another file with the same first 6 bytes matches the extended fingerprint")
	}
}

// Checkpoints hold fingerprints: the inline hash must stay FNV-1a 64, and
// hashing on from a prefix must equal hashing the whole.
func TestHashBytesIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "hello\n", strings.Repeat("line of a log file\n", 100)} {
		want := fnv.New64a()
		want.Write([]byte(s))
		if got := hashBytes([]byte(s)); got != want.Sum64() {
			t.Errorf("hashBytes(%.20q) = %x, FNV-1a 64 is %x", s, got, want.Sum64())
		}
		for cut := range len(s) + 1 {
			if got := hashMore(hashBytes([]byte(s[:cut])), []byte(s[cut:])); got != want.Sum64() {
				t.Fatalf("hashMore cut at %d of %.20q = %x, want %x", cut, s, got, want.Sum64())
			}
		}
	}
}

// The look at a file's first bytes compares a fast hash of them once it
// knows one: it still tells a rewrite from the file as it was, and takes a
// new identity (a truncation) for what it is, not for a rewrite.
func TestLookAtContentFastCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	content := []byte(strings.Repeat("first line of the file\n", 100)) // 2,300 bytes
	f, id := openIdentified(t, path, content, DefaultFingerprintBytes)
	env := &harvestEnv{mu: new(sync.Mutex), fingerprintBytes: DefaultFingerprintBytes}
	h := &harvester{env: env, f: f, id: id, checkLen: -1, src: &logagent.Source{ID: id}}

	if r, _ := h.lookAtContent(int64(len(content))); r {
		t.Fatal("unchanged file taken as replaced (fingerprint compared)")
	}
	if int(h.checkLen) != id.FingerprintLen {
		t.Fatalf("check of %d bytes known, want %d", h.checkLen, id.FingerprintLen)
	}
	if r, _ := h.lookAtContent(int64(len(content))); r {
		t.Fatal("unchanged file taken as replaced (check compared)")
	}

	// Rewritten in place, same size: a byte in the middle of the prefix.
	rewritten := append([]byte(nil), content...)
	rewritten[500] = 'X'
	if err := os.WriteFile(path, rewritten, 0o644); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.lookAtContent(int64(len(rewritten))); !r {
		t.Fatal("rewritten first bytes not seen")
	}

	// The harvester takes the new content as its own (as after a
	// truncation): the check known for the old one must not be used.
	newID, _, err := identify(f, DefaultFingerprintBytes)
	if err != nil {
		t.Fatal(err)
	}
	h.setIdentity(path, newID)
	if r, _ := h.lookAtContent(int64(len(rewritten))); r {
		t.Fatal("new content taken as replaced after the identity changed")
	}
}

// A look at the first bytes of a file shorter than fingerprint_bytes
// covers the bytes before the read offset too: it tells whether they are
// as read, and tailChanged needs no read of its own.
func TestLookAtContentSeesTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	content := []byte(strings.Repeat("a line of the file\n", 30)) // 570 bytes
	f, short := openIdentified(t, path, content, 100)             // recorded before the file grew
	env := &harvestEnv{mu: new(sync.Mutex), fingerprintBytes: DefaultFingerprintBytes}
	off := int64(len(content))
	store := openStore(t, filepath.Join(dir, "data"))
	h := &harvester{env: env, f: f, id: short, checkLen: -1, src: &logagent.Source{ID: short}, offset: off, path: path}
	h.tr = newTracker(&fileCheckpoint{store: store}, checkpoint.Entry{Path: path, ID: short}, false)
	h.tail, h.tailLen = checkHash(content[off-tailBytes:]), tailBytes

	for _, tc := range []struct {
		name     string
		at       int // byte rewritten, -1 none
		replaced bool
		tail     tailLook
	}{
		{name: "as read", at: -1, tail: tailSame},
		{name: "rewritten before the offset, same first bytes", at: len(content) - 10, tail: tailChanged},
		{name: "rewritten in the first bytes", at: 10, replaced: true, tail: tailSame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), content...)
			if tc.at >= 0 {
				b[tc.at] = 'X'
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			h.setIdentity(path, short) // as recorded: the look extends it
			replaced, tail := h.lookAtContent(off)
			if replaced != tc.replaced || tail != tc.tail {
				t.Errorf("lookAtContent = %v, %v; want %v, %v", replaced, tail, tc.replaced, tc.tail)
			}
			if got := h.tailChanged(tail); got != (tc.tail == tailChanged) {
				t.Errorf("tailChanged = %v", got)
			}
		})
	}
}

// openIdentified writes content to path and returns the file open, closed
// when t ends, and its identity over n bytes.
func openIdentified(t *testing.T, path string, content []byte, n int) (*os.File, logagent.FileID) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return openIdentity(t, path, n)
}
