package file

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/logagent/logagent/outputs/outputtest"
)

// readSeqs adds the sequence number of every line of path to c.
func readSeqs(t *testing.T, path string, c *outputtest.Counter) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c.Add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestOutputFileMoved renames or deletes the output's file between batches,
// as logrotate or an operator does: the next batch goes into a new file at
// the path, and no line is lost.
func TestOutputFileMoved(t *testing.T) {
	tests := []struct {
		name string
		move func(path string) error
		kept string // where the first batch is afterwards, "" if gone
	}{
		{"renamed", func(p string) error { return os.Rename(p, p+".1") }, ".1"},
		{"deleted", os.Remove, ""},
		{"replaced", func(p string) error {
			if err := os.Rename(p, p+".1"); err != nil {
				return err
			}
			return os.WriteFile(p, nil, 0o640) // logrotate's create
		}, ".1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			c := DefaultConfig()
			c.Path = path
			o, err := New("file", c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			src := outputtest.Source("app")
			ctx := context.Background()
			if err := o.Send(ctx, outputtest.Messages(src, 0, 100, 30)); err != nil {
				t.Fatal(err)
			}
			if err := tt.move(path); err != nil {
				t.Fatal(err)
			}
			if err := o.Send(ctx, outputtest.Messages(src, 100, 100, 30)); err != nil {
				t.Fatal(err)
			}
			got := outputtest.NewCounter()
			readSeqs(t, path, got)
			if missing, dups := got.Check(100, 100); len(missing) > 0 || dups > 0 || got.Total() != 100 {
				t.Fatalf("file at the path: %d lines, %d of the second batch missing, %d duplicates", got.Total(), len(missing), dups)
			}
			if tt.kept != "" {
				old := outputtest.NewCounter()
				readSeqs(t, path+tt.kept, old)
				if missing, _ := old.Check(0, 100); len(missing) > 0 || old.Total() != 100 {
					t.Fatalf("moved file: %d lines, %d of the first batch missing", old.Total(), len(missing))
				}
			}
		})
	}
}
