package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBad(t *testing.T) {
	tests := []struct {
		file string
		want string // file:line: key: message, without the directory
	}{
		{"unknown_key.yaml", "unknown_key.yaml:5: inputs[0].max_mesage_bytes: unknown key"},
		{"wrong_type.yaml", `wrong_type.yaml:5: inputs[0].lines_per_message: expected an integer, got "many"`},
		{"missing_paths.yaml", "missing_paths.yaml:3: inputs[0].paths: at least one path glob is needed"},
		{"duplicate_id.yaml", `duplicate_id.yaml:5: inputs[1].id: "app" is used by another input`},
		{"unknown_output.yaml", `unknown_output.yaml:5: inputs[0].outputs[1]: no output has id "kafak" (outputs: local)`},
		{"negative_size.yaml", "negative_size.yaml:7: inputs[1].max_message_bytes: must be > 0, got -5"},
		{"negative_procs.yaml", "negative_procs.yaml:2: max_procs: must be 0 (automatic) or a number of threads, got -1"},
		{"bad_size.yaml", `bad_size.yaml:5: inputs[0].max_message_bytes: "64 kilobytes" is not a size`},
		{"size_list.yaml", "size_list.yaml:5: inputs[0].max_message_bytes: expected a size such as 64KiB, got a list"},
		{"size_empty.yaml", `size_empty.yaml:5: inputs[0].max_message_bytes: "" is not a size`},
		{"bad_duration.yaml", `bad_duration.yaml:2: shutdown_timeout: "10" is not a duration`},
		{"unknown_output_type.yaml", `unknown_output_type.yaml:7: outputs[0].type: unknown output type "elasticsearch"`},
		{"output_own_key.yaml", "output_own_key.yaml:9: outputs[0].hosts: unknown key (known keys here: batch, format, id, max_backoff, max_open_files, min_backoff, mode, path, sync, type)"},
		{"malformed.yaml", "malformed.yaml:4: invalid YAML: did not find expected ',' or ']'"},
		{"kestrel_item_size.yaml", `kestrel_item_size.yaml:5: inputs[0].max_message_bytes: 64KiB is larger than output "queue" accepts (16384 bytes)`},
		{"routed_cap.yaml", `routed_cap.yaml:5: inputs[0].max_message_bytes: 64KiB is larger than output "bus" accepts (1000 bytes)`},
		{"kestrel_expiry.yaml", "kestrel_expiry.yaml:10: outputs[0].expiry: must be at most 596h31m23.647s with protocol thrift: Kestrel's put takes expiration_msec as a 32-bit count of milliseconds; 600h0m0s does not fit"},
		{"bad_format.yaml", `bad_format.yaml:8: outputs[0].format: must be raw or json, got "xml"`},
		{"bad_regex.yaml", `bad_regex.yaml:8: inputs[0].exclude_lines[1]: "health(check" is not a valid regular expression (RE2 syntax): missing closing ): ` + "`health(check`"},
		{"envelope_size.yaml", `envelope_size.yaml:6: inputs[0].max_message_bytes: 64KiB is too large for output "queue" with format: json: the envelope of such a message can take up to 505347 bytes`},
		{"unset_env.yaml", "unset_env.yaml:1: environment variable LOGAGENT_SURELY_UNSET_VAR is not set"},
		{"listen_no_port.yaml", `listen_no_port.yaml:2: http.listen: "9108" is not host:port (missing port in address): write 127.0.0.1:9108, or :9108 for every interface`},
		{"message_over_inflight.yaml", "message_over_inflight.yaml:6: inputs[0].max_message_bytes: 256MiB is more than half of max_inflight_bytes (32MiB)"},
		{"multiline_bad_regex.yaml", `multiline_bad_regex.yaml:7: inputs[0].multiline.start: "^\\d{4}-(\\d{2}" is not a valid regular expression (RE2 syntax): missing closing )`},
		{"multiline_lines_per_message.yaml", "multiline_lines_per_message.yaml:6: inputs[0].multiline: cannot be combined with lines_per_message: 10"},
		{"multiline_both.yaml", "multiline_both.yaml:5: inputs[0].multiline: set one of start and continue, not both"},
		{"multiline_both.yaml", "multiline_both.yaml:8: inputs[0].multiline.timeout: must be > 0, got 0s"},
		{"read_buffer_over_inflight.yaml", "read_buffer_over_inflight.yaml:6: inputs[0].read_buffer_bytes: 8MiB is more than max_inflight_bytes (4MiB)"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.file)
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			got := strings.ReplaceAll(err.Error(), filepath.Join("testdata", "bad")+"/", "")
			if !strings.Contains(got, tt.want) {
				t.Errorf("error:\n  %s\nwant it to contain:\n  %s", got, tt.want)
			}
		})
	}
}

func TestParseDefaultsAndExpansion(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOGAGENT_TEST_DIR", dir)
	cfg, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Inputs[0]
	if in.Category != "app" || in.StartAt != "beginning" || in.MaxMessageBytes != 64<<10 || in.LinesPerMessage != 1 {
		t.Errorf("input defaults: %+v", in)
	}
	if got := in.Paths[0]; got != dir+"/logs/*.log" {
		t.Errorf("path = %q", got)
	}
	if cfg.ShutdownTimeout != 10*time.Second || cfg.DataDir != dir+"/state" {
		t.Errorf("config defaults: %+v", cfg)
	}
	o := cfg.Outputs[0]
	if o.Batch.MaxEvents != 2048 || o.Batch.MaxBytes != 1<<20 || o.MaxBackoff != 30*time.Second {
		t.Errorf("output defaults: %+v", o)
	}
	if got := cfg.routes(&cfg.Inputs[0]); len(got) != 1 || got[0] != "local" {
		t.Errorf("routes = %v", got)
	}
}

func TestParseMultiline(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the compiled setting, or the error
	}{
		{"defaults", "multiline: {start: '^\\d{4}-'}", `start "^\\d{4}-" 500 1s`},
		{"continue", "multiline: {continue: '^(\\s|Caused by:)', max_lines: 50, timeout: 250ms}", `continue "^(\\s|Caused by:)" 50 250ms`},
		{"neither", "multiline: {max_lines: 5}", "c.yaml:4: inputs[0].multiline: set one of start"},
		{"max_lines", "multiline: {start: x, max_lines: 0}", "c.yaml:4: inputs[0].multiline.max_lines: must be >= 1, got 0"},
		{"unknown key", "multiline: {start: x, pattern: y}", "c.yaml:4: inputs[0].multiline.pattern: unknown key (known keys here: continue, max_lines, start, timeout)"},
		{"over a quarter of inflight", "max_message_bytes: 10MiB\n    multiline: {start: x}", "c.yaml:4: inputs[0].max_message_bytes: 10MiB is more than a quarter of max_inflight_bytes (32MiB)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "data_dir: /x\ninputs:\n  - id: a\n    " + tt.yaml + "\n    paths: [/x/*.log]\noutputs: [{id: o, type: stdout}]\n"
			cfg, err := Parse("c.yaml", []byte(data))
			var got string
			if err != nil {
				got = err.Error()
			} else {
				m := cfg.Inputs[0].multiline
				re := m.Start
				kind := "start"
				if re == nil {
					re, kind = m.Continue, "continue"
				}
				got = fmt.Sprintf("%s %q %d %s", kind, re, m.MaxLines, m.Timeout)
				if m.MaxBytes != 64<<10 {
					t.Errorf("MaxBytes = %d", m.MaxBytes)
				}
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("data_dir: state\ninputs: [{id: a, paths: [logs/*.log], exclude: ['*.gz', 'logs/old/*']}]\noutputs: [{id: f, type: file, path: 'out/{input}.log'}]\n"), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != dir+"/state" || cfg.Inputs[0].Paths[0] != dir+"/logs/*.log" || cfg.Inputs[0].Exclude[0] != "*.gz" || cfg.Inputs[0].Exclude[1] != dir+"/logs/old/*" {
		t.Errorf("paths not resolved against %s: %+v", dir, cfg.Inputs[0])
	}
}

func TestParseExampleConfig(t *testing.T) {
	if _, err := Load(filepath.Join("..", "config.example.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestParseReportsEveryError(t *testing.T) {
	data := "data_dir: /x\ninputs:\n  - id: a\n    max_message_bytes: 0\n    lines_per_message: 0\n    ignore_older: -1h\noutputs:\n  - id: o\n    type: stdout\n"
	_, err := Parse("c.yaml", []byte(data))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"c.yaml:3: inputs[0].paths", "c.yaml:4: inputs[0].max_message_bytes: must be > 0, got 0", "c.yaml:5: inputs[0].lines_per_message: must be >= 1, got 0", "c.yaml:6: inputs[0].ignore_older: must be >= 0 (0: off), got -1h0m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%s", want, err)
		}
	}
}

// FuzzParse checks that no input makes the loader panic or hang, and that
// every error names the file.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/bad", "testdata/good"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("inputs: &a [*a]"))
	f.Add([]byte("outputs: [{id: x, type: file, path: '', batch: {max_bytes: 1ZiB}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("fuzz.yaml", data)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func TestCheckListen(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9108", true},
		{":9108", true},
		{"[::1]:9108", true},
		{"localhost:0", true},
		{"localhost:http", true},
		{"", false},
		{"9108", false},
		{"127.0.0.1", false},
		{"127.0.0.1:", false},
		{"127.0.0.1:99999", false},
		{"bad host:9108", false},
	} {
		if err := checkListen(tt.addr); (err == nil) != tt.ok {
			t.Errorf("checkListen(%q) = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}

// TestSecretWarnings: a secret that every user can read, in the config or
// in a file it names, is warned about with file:line: key.
func TestSecretWarnings(t *testing.T) {
	t.Setenv("LOGAGENT_TEST_SECRET", "s3cret")
	const base = "data_dir: /x\ninputs: [{id: a, paths: [/l/*.log]}]\noutputs:\n  - id: k\n    type: kafka\n    brokers: ['127.0.0.1:9092']\n    sasl:\n      mechanism: plain\n      username: u\n"
	for _, tc := range []struct {
		name       string
		sasl       string // the password line
		mode, pass os.FileMode
		want       string // "" for no warning
	}{
		{"inline, config readable by all", "      password: s3cret\n", 0o644, 0, "c.yaml:10: password: the config holds a secret and every user can read it (mode -rw-r--r--): run chmod o-r"},
		{"inline, config not readable by others", "      password: s3cret\n", 0o640, 0, ""},
		{"from the environment", "      password: ${LOGAGENT_TEST_SECRET}\n", 0o644, 0, ""},
		{"password_file readable by all", "      password_file: {dir}/pass\n", 0o644, 0o644, "c.yaml:10: password_file: {dir}/pass holds a secret and every user can read it (mode -rw-r--r--)"},
		{"password_file not readable by others", "      password_file: {dir}/pass\n", 0o644, 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(base+strings.ReplaceAll(tc.sasl, "{dir}", dir)), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode)
			if tc.pass != 0 {
				os.WriteFile(filepath.Join(dir, "pass"), []byte("s3cret\n"), tc.pass)
				os.Chmod(filepath.Join(dir, "pass"), tc.pass)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(cfg.Warnings, "\n")
			if want := strings.ReplaceAll(tc.want, "{dir}", dir); want == "" && got != "" || !strings.Contains(got, want) {
				t.Errorf("warnings %q, want %q", got, want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("a warning shows the secret: %q", got)
			}
		})
	}
}
