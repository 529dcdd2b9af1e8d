package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

// Issue 18: format: json on the file output. Sequence-numbered lines
// through kill -9 and restarts arrive whole, each the message of one valid
// JSON line; and bodies a JSON encoder must escape (quotes, control bytes,
// invalid UTF-8) come back byte for byte.
func TestFileOutputJSON(t *testing.T) {
	e := testenv.New(t)
	e.Config.Format = "json"
	streams := []*testenv.Stream{
		e.Stream("f0", "app0.log", testenv.NoRotation),
		e.Stream("f1", "app1.log", testenv.Rename),
	}
	odd := [][]byte{
		[]byte(`quoted "text" and \backslash`),
		[]byte("tab\there, cr\r, nul\x00, bell\x07"),
		[]byte("latin-1 caf\xe9 and a cut rune \xe2\x9c"),
		[]byte("utf-8 café ✓ 😀 \u2028"),
		{0xff, 0xfe, 0x00, 0x80},
		[]byte("<html> & 'single'"),
	}
	oddPath := filepath.Join(e.Logs, "odd.log")
	if err := os.WriteFile(oddPath, append(bytes.Join(odd, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	e.Start()
	writeAll(t, streams, 5_000)
	e.WaitDelivered()
	if err := streams[1].Rotate(); err != nil {
		t.Fatal(err)
	}
	writeAll(t, streams, 5_000)
	e.Kill() // most likely in the middle of a batch
	writeAll(t, streams, 5_000)
	e.Start()
	writeAll(t, streams, 5_000)
	e.WaitDelivered()
	e.Stop()
	res, stray, err := e.Checker().Results()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Log(r)
		if r.Missing != 0 || r.Corrupted != 0 || r.OutOfOrder != 0 {
			t.Errorf("%s: want 0 missing, corrupted, out of order", r.Tag)
		}
	}

	// Every output line is one JSON object with every field; the lines of
	// odd.log (the checker's strays) decode to their bytes.
	f, err := os.Open(filepath.Join(e.Out, "logs.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var env struct {
			Timestamp     string            `json:"@timestamp"`
			Message       string            `json:"message"`
			MessageBase64 *string           `json:"message_base64"`
			Host          string            `json:"host"`
			Input         string            `json:"input"`
			Category      string            `json:"category"`
			Path          string            `json:"path"`
			Offset        int64             `json:"offset"`
			Fields        map[string]string `json:"fields"`
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil {
			t.Fatalf("not an envelope: %v: %q", err, sc.Bytes())
		}
		if _, err := time.Parse(time.RFC3339Nano, env.Timestamp); err != nil || env.Host == "" || env.Input != "logs" ||
			env.Category != "logs" || env.Offset <= 0 || env.Fields == nil {
			t.Fatalf("envelope fields: %+v", env)
		}
		if env.Path != oddPath {
			continue
		}
		body := []byte(env.Message)
		if env.MessageBase64 != nil {
			if body, err = base64.StdEncoding.DecodeString(*env.MessageBase64); err != nil {
				t.Fatal(err)
			}
		}
		got[string(body)]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range odd {
		if got[string(b)] == 0 {
			t.Errorf("%q not delivered as it was written; got %v", b, got)
		}
	}
	copies := 0 // kill -9 may send odd.log's lines twice
	for _, n := range got {
		copies += n
	}
	if stray != int64(copies) || len(got) != len(odd) {
		t.Errorf("%d lines of no stream, %d from odd.log (%d distinct), want %d distinct", stray, copies, len(got), len(odd))
	}
}
