package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "logs", "a.log"), []byte("first line\nsecond line\npartial"), 0o644)
	os.WriteFile(filepath.Join(dir, "logs", "skip.log.gz"), []byte("not a match\n"), 0o644)
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
		"output local (file): file " + filepath.Join(dir, "out", "{category}.log"),
		"@11 category=app → local → " + filepath.Join(dir, "out", "app.log"),
		`"first line"`,
		`"second line"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, got)
		}
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
