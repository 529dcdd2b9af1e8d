package checkpoint

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestOpenRefusesUnsafeDir: a data directory, or a file in it, that other
// users can write to is refused, with the command that fixes it.
func TestOpenRefusesUnsafeDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"dir writable by all", func(t *testing.T, dir string) { chmod(t, dir, 0o777) }, "can be written by other users (mode -rwxrwxrwx): they could rewrite the checkpoint or plant links; run: chmod go-w"},
		{"dir writable by its group", func(t *testing.T, dir string) { chmod(t, dir, 0o770) }, "can be written by other users"},
		{"checkpoint writable by all", func(t *testing.T, dir string) {
			p := filepath.Join(dir, FileName)
			if err := saveSnapshot(p, nil, 0); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, 0o666)
		}, FileName + " can be written by other users (mode -rw-rw-rw-)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			s, err := Open(dir, discard)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckDir: %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestPlantedLinksNotFollowed: a symbolic link planted under a state
// file's name, while the agent runs or before it starts, is never followed:
// the file it points to is neither read nor truncated nor written.
func TestPlantedLinksNotFollowed(t *testing.T) {
	const secret = "root-only content\n"
	victimOf := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(t *testing.T, victim string) {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != secret {
			t.Errorf("the link's target now holds %q (%v)", b, err)
		}
	}

	t.Run("journal planted while running", func(t *testing.T) {
		dir, victim := t.TempDir(), victimOf(t)
		s, err := Open(dir, discard)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := os.Symlink(victim, filepath.Join(dir, journalName(0))); err != nil {
			t.Fatal(err)
		}
		s.Set(entry("/a.log", 1, 10))
		if err := s.Flush(); err != nil { // the link replaced by a journal
			t.Fatal(err)
		}
		check(t, victim)
		if got, err := Load(s.Path()); err != nil || len(got) != 1 {
			t.Errorf("checkpoint holds %v (%v), want the entry", got, err)
		}
	})
	t.Run("journal hard-linked while running", func(t *testing.T) {
		dir := t.TempDir()
		victim := filepath.Join(dir, "victim") // a hard link must be on the same file system
		if err := os.WriteFile(victim, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(filepath.Join(dir, "state"), discard)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := os.Link(victim, filepath.Join(dir, "state", journalName(0))); err != nil {
			t.Fatal(err)
		}
		s.Set(entry("/a.log", 1, 10))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		check(t, victim)
	})
	for _, name := range []string{FileName, journalName(0), ".lock"} {
		t.Run(name+" planted before start", func(t *testing.T) {
			dir, victim := t.TempDir(), victimOf(t)
			if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, discard)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("error %q, want a refusal of the link", err)
			}
			check(t, victim)
			if _, err := Load(filepath.Join(dir, FileName)); err == nil && name != ".lock" {
				t.Errorf("Load followed the link")
			}
		})
	}
}

// TestHardLinkedStateRefused: a state file found with another link (a
// hard link to a file of someone else) is neither read nor given away.
func TestHardLinkedStateRefused(t *testing.T) {
	for _, name := range []string{FileName, ".lock"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(dir, "state")
			os.Mkdir(state, 0o750)
			if os.Geteuid() == 0 {
				os.Chown(state, 65534, 65534) // as root, state files would be given to 65534
			}
			if err := os.Link(victim, filepath.Join(state, name)); err != nil {
				t.Fatal(err)
			}
			s, err := Open(state, discard)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), "one link") {
				t.Errorf("error %q, want a refusal of the link", err)
			}
			var st syscall.Stat_t
			syscall.Stat(victim, &st)
			if int(st.Uid) != os.Geteuid() {
				t.Errorf("the linked file was given to uid %d", st.Uid)
			}
		})
	}
}

// TestRootGivesStateToDirOwner: run as root in a data directory owned by
// the service user, the agent leaves files that user can open, instead of
// root's that lock it out ("open .lock: permission denied").
func TestRootGivesStateToDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	s.Set(entry("/a.log", 1, 10))
	if err := s.Flush(); err != nil { // a journal
		t.Fatal(err)
	}
	ownedBy := func(want int) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			info, _ := e.Info()
			if got := info.Sys().(*syscall.Stat_t).Uid; int(got) != want {
				t.Errorf("%s belongs to uid %d, want %d", e.Name(), got, want)
			}
		}
	}
	ownedBy(uid)
	if err := s.Close(); err != nil { // a snapshot
		t.Fatal(err)
	}
	ownedBy(uid)

	// A file of a third user is refused, naming the fix.
	other := filepath.Join(dir, "stray")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65533, 65533); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, discard)
	if err == nil || !strings.Contains(err.Error(), "stray belongs to") || !strings.Contains(err.Error(), "chown -R") {
		t.Errorf("error %v, want the stray file named with the fix", err)
	}
}
