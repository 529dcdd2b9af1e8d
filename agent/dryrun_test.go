package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logagent/logagent/checkpoint"
)

func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "logs", "a.log"), []byte("first line\nsecond line\npartial"), 0o644)
	os.WriteFile(filepath.Join(dir, "logs", "skip.log.gz"), []byte("not a match\n"), 0o644)
	// Another name of a.log: the agent reads the file once, and so the
	// plan lists it.
	if err := os.Link(filepath.Join(dir, "logs", "a.log"), filepath.Join(dir, "logs", "b.log")); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := DryRun(context.Background(), cfg, &out, DryRunOptions{Messages: 5}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"config testdata/good/minimal.yaml: valid",
		"input app: category \"app\", outputs local",
		filepath.Join(dir, "logs", "a.log") + "  size 30",
		"checkpoint none  start 0 (new file: from the beginning)",
		"also matched as " + filepath.Join(dir, "logs", "b.log") + ": the same file, read once",
		"output local (file): file " + filepath.Join(dir, "out", "{category}.log"),
		"@11 category=app → local → " + filepath.Join(dir, "out", "app.log"),
		`"first line"`,
		`"second line"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "b.log  size") {
		t.Errorf("dry-run lists the file twice:\n%s", got)
	}
	if strings.Contains(got, "partial") || strings.Contains(got, "skip.log.gz") {
		t.Errorf("dry-run shows a partial line or a non-matching file:\n%s", got)
	}
	// Nothing written: no data dir, no checkpoint, no output file.
	for _, p := range []string{"state", "out"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("dry-run created %s", p)
		}
	}

	var quiet bytes.Buffer
	if err := DryRun(context.Background(), cfg, &quiet, DryRunOptions{Messages: 5, Quiet: true}); err != nil || quiet.Len() != 0 {
		t.Errorf("quiet dry-run printed %q, err %v", quiet.String(), err)
	}
}

func TestDryRunCorruptCheckpoint(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	os.MkdirAll(filepath.Join(dir, "state"), 0o755)
	os.WriteFile(filepath.Join(dir, "state", "checkpoint.json"), []byte(`{"version":1,"files":[{"inp`), 0o644)
	cfg, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	err = DryRun(context.Background(), cfg, &bytes.Buffer{}, DryRunOptions{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "state", "checkpoint.json")) {
		t.Fatalf("err = %v, want one naming the checkpoint", err)
	}
}

// TestDryRunProblems: what would stop real work is an error, printed even
// with Quiet, and DryRun fails; what may be fine later is a warning.
func TestDryRunProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string // {dir} is a temporary directory with logs/a.log
		setup  func(t *testing.T, dir string)
		want   string // printed with Quiet, or in the error returned
		fails  bool
	}{
		{
			name:   "glob matches nothing",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/none/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			want:   "warning: input app: no file matches yet (" + "{dir}/none/*.log)",
		},
		{
			name:   "data_dir writable by others",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				os.Mkdir(filepath.Join(dir, "state"), 0o755)
				os.Chmod(filepath.Join(dir, "state"), 0o777)
			},
			want:  "error: data_dir: data_dir {dir}/state can be written by other users",
			fails: true,
		},
		{
			name:   "data_dir not writable",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				if os.Geteuid() == 0 {
					t.Skip("root writes everywhere")
				}
				os.Mkdir(filepath.Join(dir, "state"), 0o555)
			},
			want:  "error: data_dir: data_dir {dir}/state: {dir}/state is not writable by",
			fails: true,
		},
		{
			name:   "data_dir cannot be created",
			config: "data_dir: {dir}/file/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
			},
			want:  "{dir}/file/state/checkpoint.json: not a directory",
			fails: true,
		},
		{
			name:   "host does not resolve",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: scribe, hosts: ['logagent-test.invalid:1463']}]\n",
			want:   "error: output o: resolve logagent-test.invalid",
			fails:  true,
		},
		{
			name:   "file unreadable",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				if os.Geteuid() == 0 {
					t.Skip("root reads every file")
				}
				os.Chmod(filepath.Join(dir, "logs", "a.log"), 0)
			},
			want:  "error: input app: {dir}/logs/a.log cannot be read by",
			fails: true,
		},
		{
			name:   "file unreadable among others",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				if os.Geteuid() == 0 {
					t.Skip("root reads every file")
				}
				os.WriteFile(filepath.Join(dir, "logs", "b.log"), []byte("a line\n"), 0)
			},
			want: "warning: input app: {dir}/logs/b.log cannot be read by",
		},
		{
			name:   "FIFO skipped, without blocking",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "logs", "fifo.log"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: "warning: input app: {dir}/logs/fifo.log skipped: open {dir}/logs/fifo.log: not a regular file (FIFO)",
		},
		{
			name:   "symbolic link not followed",
			config: "data_dir: {dir}/state\ninputs: [{id: app, paths: ['{dir}/logs/*.log']}]\noutputs: [{id: o, type: stdout}]\n",
			setup: func(t *testing.T, dir string) {
				os.Symlink("/etc/passwd", filepath.Join(dir, "logs", "link.log"))
			},
			want: "warning: input app: {dir}/logs/link.log skipped: open {dir}/logs/link.log: symbolic link not followed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
			os.WriteFile(filepath.Join(dir, "logs", "a.log"), []byte("a line\n"), 0o644)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(strings.ReplaceAll(tc.config, "{dir}", dir)))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = DryRun(context.Background(), cfg, &out, DryRunOptions{Quiet: true})
			got := out.String()
			if err != nil {
				got += err.Error()
			}
			if want := strings.ReplaceAll(tc.want, "{dir}", dir); !strings.Contains(got, want) {
				t.Errorf("quiet dry-run printed %q, want it to contain %q", got, want)
			}
			if (err != nil) != tc.fails {
				t.Errorf("err = %v, want failure %v", err, tc.fails)
			}
		})
	}
}

// dryRunOneLog writes content to $LOGAGENT_TEST_DIR/logs/a.log, loads
// testdata/good/config and returns what --dry-run prints with five sample
// messages, and the directory.
func dryRunOneLog(t *testing.T, config, content string) (got, dir string) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "logs", "a.log"), []byte(content), 0o644)
	cfg, err := Load(filepath.Join("testdata", "good", config))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := DryRun(context.Background(), cfg, &out, DryRunOptions{Messages: 5}); err != nil {
		t.Fatal(err)
	}
	return out.String(), dir
}

// With format: json on an output, the sample messages show their envelope;
// a message exclude_lines drops is shown as dropped.
func TestDryRunEnvelopeAndFilters(t *testing.T) {
	got, dir := dryRunOneLog(t, "envelope.yaml", "DEBUG noise\nkept \"quoted\"\n")
	path := filepath.Join(dir, "logs", "a.log")
	for _, want := range []string{
		"output local (file): file " + filepath.Join(dir, "out", "{category}.log") + "; format json;",
		"output console (stdout): standard output; format raw;",
		"[app] " + path + " @12 dropped by include_lines/exclude_lines\n    \"DEBUG noise\"\n",
		"[app] " + path + " @26 category=app → local → ",
		`    format json (local): {"@timestamp":"`,
		`","message":"kept \"quoted\"","host":"web-1","input":"app","category":"app","path":"` + path + `","offset":26,"fields":{"env":"test"}}` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, got)
		}
	}
}

// ignore_older: --dry-run shows a new file older than it as skipped to its
// end, with no sample message from it.
func TestDryRunIgnoreOlder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	old := filepath.Join(dir, "logs", "a.log")
	os.WriteFile(old, []byte("old line\n"), 0o644)
	long := time.Now().Add(-100 * time.Hour)
	os.Chtimes(old, long, long)
	cfg, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Inputs[0].IgnoreOlder = 72 * time.Hour
	var out bytes.Buffer
	if err := DryRun(context.Background(), cfg, &out, DryRunOptions{Messages: 5}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "start 9 (skip (older than 72h))") || strings.Contains(got, `"old line"`) {
		t.Errorf("dry-run output:\n%s", got)
	}
}

// A journald input: --dry-run shows its checkpointed cursor, and is an
// error when journalctl cannot be run.
func TestDryRunJournald(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, err := checkpoint.Open(data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st.Set(checkpoint.Entry{Input: "j", Path: "journal", Offset: 42, Cursor: "s=abc;i=2a", Updated: time.Now()})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	yaml := func(journalctl string) string {
		return "data_dir: " + data + "\ninputs:\n  - id: j\n    type: journald\n    journal_directory: " + dir +
			"\n    journalctl: " + journalctl + "\noutputs:\n  - id: o\n    type: stdout\n"
	}
	for _, tt := range []struct {
		journalctl string
		fails      bool
		want       string
	}{
		{"/bin/true", false, "checkpoint s=abc;i=2a (42 entries delivered)"},
		{"/nonexistent/journalctl", true, "error: type: journald needs systemd's journalctl, which cannot be run here"},
	} {
		cfg, err := Parse("c.yaml", []byte(yaml(tt.journalctl)))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = DryRun(context.Background(), cfg, &out, DryRunOptions{Messages: 5})
		if (err != nil) != tt.fails || !strings.Contains(out.String(), tt.want) {
			t.Errorf("journalctl %s: err %v, output:\n%s\nwant %q", tt.journalctl, err, out.String(), tt.want)
		}
	}
}

// multiline: --dry-run shows the setting and sample events, joined, with
// the filters applied to whole events; the event still open is not shown.
func TestDryRunMultiline(t *testing.T) {
	log := "2026-12-06 10:00:00 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\n" +
		"2026-12-06 10:00:01 WARN probe\n\tat a.Health.check(Health.java:9)\n" +
		"2026-12-06 10:00:02 INFO open\n"
	got, dir := dryRunOneLog(t, "multiline.yaml", log)
	path := filepath.Join(dir, "logs", "a.log")
	for _, want := range []string{
		"input app: category \"app\", outputs console\n  multiline: start '^\\d{4}-\\d{2}-\\d{2}[ T]', max_lines 500, timeout 1s\n",
		"[app] " + path + " @86 category=app → console → stdout\n    \"2026-12-06 10:00:00 ERROR boom\\njava.lang.IllegalStateException: x\\n\\tat a.B.c(B.java:1)\"\n",
		`"message":"2026-12-06 10:00:00 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)",`,
		"[app] " + path + " @151 dropped by include_lines/exclude_lines\n    \"2026-12-06 10:00:01 WARN probe\\n\\tat a.Health.check(Health.java:9)\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "INFO open") {
		t.Errorf("dry-run shows the event still open:\n%s", got)
	}
}
