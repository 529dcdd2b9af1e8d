package file

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/logagent/logagent"
)

// TestSendBodyLayouts checks that every way bodies can lie in memory comes
// out as body+newline per message: consecutive lines of one buffer (sent
// as one piece), pieces of a long line (adjacent, no newline between),
// empty bodies, bodies one byte apart with something else than a newline
// between, bodies of separate buffers, and more pieces than one writev
// takes.
func TestSendBodyLayouts(t *testing.T) {
	block := []byte("aa\nbb\nccc\n\ndd\nx|y\nlongline\nend")
	sub := func(i, j int) []byte { return block[i:j] }
	many := make([][]byte, 3*maxVecs)
	for i := range many {
		many[i] = []byte{'m', byte('a' + i%26)}
	}
	tests := []struct {
		name   string
		bodies [][]byte
		idx    []int
	}{
		{"consecutive lines", [][]byte{sub(0, 2), sub(3, 5), sub(6, 9)}, nil},
		{"empty line between", [][]byte{sub(6, 9), sub(10, 10), sub(11, 13)}, nil},
		{"pieces of a long line", [][]byte{sub(18, 22), sub(22, 26)}, nil},
		{"one byte apart, not a newline", [][]byte{sub(14, 15), sub(16, 17)}, nil},
		{"last line without newline", [][]byte{sub(18, 26), sub(27, 30)}, nil},
		{"separate buffers", [][]byte{[]byte("p"), []byte("q"), sub(0, 2)}, nil},
		{"subset", [][]byte{sub(0, 2), sub(3, 5), sub(6, 9)}, []int{0, 2}},
		{"more pieces than one writev", many, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			o, err := New("t", Config{Path: path, Mode: "0644", MaxOpenFiles: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			src := &logagent.Source{Input: "t"}
			var batch []logagent.Message
			for _, b := range tt.bodies {
				batch = append(batch, logagent.Message{Body: b, Source: src})
			}
			var want []byte
			for k := range 2 { // twice: buffers are reused
				if tt.idx == nil {
					err = o.Send(context.Background(), batch)
					for _, b := range tt.bodies {
						want = append(append(want, b...), '\n')
					}
				} else {
					err = o.write(path, batch, tt.idx)
					for _, i := range tt.idx {
						want = append(append(want, tt.bodies[i]...), '\n')
					}
				}
				if err != nil {
					t.Fatalf("send %d: %v", k, err)
				}
			}
			o.Close()
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("file holds %q, want %q", got, want)
			}
		})
	}
}
