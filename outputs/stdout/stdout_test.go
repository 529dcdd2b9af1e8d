package stdout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/outputtest"
)

// writes records each write it is given.
type writes struct {
	calls [][]byte
	err   error
}

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, bytes.Clone(p))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// TestSend checks that each batch is written as its bodies, one a line,
// in one write, whatever the bodies hold, and that a write error is
// Send's (the scheduler retries the batch).
func TestSend(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := New("out", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &writes{}
	o.w = w
	src := outputtest.Source("app")
	batch := outputtest.Messages(src, 0, 3, 0)
	batch[1].Body = []byte{}
	batch = append(batch, logagent.Message{Body: []byte("two\nlines"), Source: src})
	ctx := context.Background()
	for range 2 { // twice: the buffer is reused
		if err := o.Send(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	want := outputtest.Line(0) + "\n\n" + outputtest.Line(2) + "\ntwo\nlines\n"
	if len(w.calls) != 2 || string(w.calls[0]) != want || string(w.calls[1]) != want {
		t.Fatalf("writes %q, want twice %q", w.calls, want)
	}
	w.err = errors.New("broken pipe")
	if err := o.Send(ctx, batch); !errors.Is(err, w.err) {
		t.Fatalf("Send = %v, want the write's error", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o.Describe() != "standard output" || o.Destination(&batch[0]) != "stdout" {
		t.Errorf("Describe %q, Destination %q", o.Describe(), o.Destination(&batch[0]))
	}
}

// TestWritesToStdout checks that New's output writes to the process's
// standard output.
func TestWritesToStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	saved := os.Stdout
	os.Stdout = w
	o, err := New("out", DefaultConfig(), nil)
	os.Stdout = saved
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), outputtest.Messages(outputtest.Source("app"), 7, 1, 0)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != outputtest.Line(7)+"\n" {
		t.Fatalf("stdout got %q", got)
	}
}
