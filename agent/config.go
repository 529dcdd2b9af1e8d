package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs/file"
	"github.com/logagent/logagent/inputs/file/multiline"
	"github.com/logagent/logagent/outputs/envelope"
)

// DefaultConfigPath is where packages install the configuration.
const DefaultConfigPath = "/etc/logagent/logagent.yaml"

// Config is the whole configuration. config.example.yaml documents every
// key; the defaults are set by setDefaults.
type Config struct {
	DataDir            string        `yaml:"data_dir"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// CheckpointBytes and CheckpointMaxDelay: see checkpoint.Policy.
	CheckpointBytes    logagent.Size `yaml:"checkpoint_bytes"`
	CheckpointMaxDelay time.Duration `yaml:"checkpoint_max_delay"`
	MaxInflightBytes   logagent.Size `yaml:"max_inflight_bytes"`
	// MaxProcs is how many threads run Go code at once; 0: one while
	// that is enough, the CPUs while busy (see Procs).
	MaxProcs  int         `yaml:"max_procs"`
	Hostname  string      `yaml:"hostname"`
	LogLevel  string      `yaml:"log_level"`
	LogFormat string      `yaml:"log_format"`
	HTTP      *HTTPConfig `yaml:"http"`

	Inputs  []InputConfig  `yaml:"inputs"`
	Outputs []OutputConfig `yaml:"outputs"`

	// File is the path the configuration was loaded from.
	File string `yaml:"-"`
	// Warnings are problems that do not stop the agent (a secret every
	// user can read), each naming file:line: key; New logs them.
	Warnings []string `yaml:"-"`
}

// HTTPConfig is the metrics and status listener; off when absent.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// UnhealthyAfter is how long an output may fail continuously before
	// /healthz answers 503.
	UnhealthyAfter time.Duration `yaml:"unhealthy_after"`
}

func (h *HTTPConfig) setDefaults() {
	h.Listen = "127.0.0.1:9108"
	h.UnhealthyAfter = 5 * time.Minute
}

// InputConfig is one entry of inputs:. The keys of a file input are fields
// here; an input of another type has id, type and outputs here and its own
// keys decoded into Settings (see agent/inputs.go).
type InputConfig struct {
	ID                string            `yaml:"id"`
	Type              string            `yaml:"type"`
	Paths             []string          `yaml:"paths"`
	Exclude           []string          `yaml:"exclude"`
	Category          string            `yaml:"category"`
	StartAt           string            `yaml:"start_at"`
	IgnoreOlder       time.Duration     `yaml:"ignore_older"`
	MaxMessageBytes   logagent.Size     `yaml:"max_message_bytes"`
	LinesPerMessage   int               `yaml:"lines_per_message"`
	Fields            map[string]string `yaml:"fields"`
	Outputs           []string          `yaml:"outputs"`
	ScanInterval      time.Duration     `yaml:"scan_interval"`
	PollInterval      time.Duration     `yaml:"poll_interval"`
	CloseInactive     time.Duration     `yaml:"close_inactive"`
	CloseRemovedAfter time.Duration     `yaml:"close_removed_after"`
	MaxOpenFiles      int               `yaml:"max_open_files"`
	FingerprintBytes  logagent.Size     `yaml:"fingerprint_bytes"`
	ReadBufferBytes   logagent.Size     `yaml:"read_buffer_bytes"`
	// FollowSymlinks reads what symbolic links matched by the globs point
	// to, when their owners could read it; off: links are skipped.
	FollowSymlinks bool `yaml:"follow_symlinks"`
	// IncludeLines and ExcludeLines filter messages (see lineFilter);
	// compiled by validate.
	IncludeLines []string `yaml:"include_lines"`
	ExcludeLines []string `yaml:"exclude_lines"`
	// Multiline joins consecutive lines into one message (an event);
	// nil: one line per message.
	Multiline *MultilineConfig `yaml:"multiline"`

	kind             *inputKind // nil for a file input
	include, exclude []*regexp.Regexp
	multiline        *multiline.Config // compiled by validate; nil when off
}

// MultilineConfig is an input's multiline key: exactly one of Start and
// Continue, RE2 patterns (package multiline says what they mean).
type MultilineConfig struct {
	Start    string        `yaml:"start"`
	Continue string        `yaml:"continue"`
	MaxLines int           `yaml:"max_lines"`
	Timeout  time.Duration `yaml:"timeout"`
}

func (m *MultilineConfig) setDefaults() {
	m.MaxLines = 500
	m.Timeout = time.Second
}

// String describes the setting for --dry-run.
func (m *MultilineConfig) String() string {
	key, re := "start", m.Start
	if m.Continue != "" {
		key, re = "continue", m.Continue
	}
	// As YAML writes it in single quotes, where only ' is escaped.
	return fmt.Sprintf("%s '%s', max_lines %d, timeout %s", key, strings.ReplaceAll(re, "'", "''"), m.MaxLines, m.Timeout)
}

func (c *InputConfig) setDefaults() {
	c.StartAt = "beginning"
	c.MaxMessageBytes = 64 << 10
	c.LinesPerMessage = 1
	c.ScanInterval = 10 * time.Second
	c.PollInterval = 250 * time.Millisecond
	c.CloseInactive = 5 * time.Minute
	c.CloseRemovedAfter = time.Hour
	c.MaxOpenFiles = 4096
	c.FingerprintBytes = file.DefaultFingerprintBytes
	c.ReadBufferBytes = 1 << 20
}

// OutputConfig is one entry of outputs:. The keys common to every type are
// fields here; the type's own keys are decoded into Settings.
type OutputConfig struct {
	ID         string        `yaml:"id"`
	Type       string        `yaml:"type"`
	Batch      BatchConfig   `yaml:"batch"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Format is raw (the body as read) or json (the envelope, package
	// envelope).
	Format envelope.Format `yaml:"format"`

	kind *outputKind
}

// BatchConfig bounds the batches handed to an output.
type BatchConfig struct {
	MaxEvents     int           `yaml:"max_events"`
	MaxBytes      logagent.Size `yaml:"max_bytes"`
	FlushInterval time.Duration `yaml:"flush_interval"`
}

func (c *OutputConfig) setDefaults() {
	c.Batch = BatchConfig{MaxEvents: 2048, MaxBytes: 1 << 20, FlushInterval: 200 * time.Millisecond}
	c.MinBackoff = 100 * time.Millisecond
	c.MaxBackoff = 30 * time.Second
	c.Format = envelope.Raw
}

var commonOutputKeys = func() map[string]bool {
	m, _ := yamlFields(reflect.TypeOf(OutputConfig{}))
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}()

// decodeNode decodes the common keys, then the type's own keys into the
// type's Config, so that each is checked against the right set of keys.
func (c *OutputConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got a %s", kindName(n.Kind))
		return
	}
	var typeNode *yaml.Node
	common := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	own := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if commonOutputKeys[k.Value] {
			common.Content = append(common.Content, k, n.Content[i+1])
			if k.Value == "type" {
				typeNode = n.Content[i+1]
			}
		} else {
			own.Content = append(own.Content, k, n.Content[i+1])
		}
	}
	d.decodeStruct(common, reflect.ValueOf(c).Elem(), path, nil)
	if typeNode == nil {
		d.errorf(n, path+".type", "missing (one of %s)", strings.Join(outputTypeNames(), ", "))
		return
	}
	newKind, ok := outputTypes[c.Type]
	if !ok {
		d.errorf(typeNode, path+".type", "unknown output type %q (one of %s)", c.Type, strings.Join(outputTypeNames(), ", "))
		return
	}
	c.kind = newKind()
	d.decodeStruct(own, reflect.ValueOf(c.kind.config).Elem(), path, commonOutputKeys)
}

// Settings returns the type's own configuration (a pointer to the output
// package's Config).
func (c *OutputConfig) Settings() any {
	if c.kind == nil {
		return nil
	}
	return c.kind.config
}

// Load reads, decodes and validates the configuration file at path.
// Relative paths in it are relative to the file's directory. Every problem
// found is returned, each as a *ConfigError naming the line and key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates data, read from path.
func Parse(path string, data []byte) (*Config, error) {
	d := &decoder{file: path, lines: map[string]int{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: path, Msg: "the file is empty"}
		}
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			if strings.Contains(m[2], "expected ',' or") {
				// yaml.v3 names the line before the unclosed [ or {.
				line++
				m[2] += " (a [ or { opened on this line is not closed)"
			}
			return nil, &ConfigError{File: path, Line: line, Msg: "invalid YAML: " + m[2]}
		}
		return nil, &ConfigError{File: path, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{File: path, Msg: "the file is empty"}
	}
	root := doc.Content[0]
	secretLines := literalSecrets(root)
	d.expandEnv(root)
	cfg := &Config{File: path}
	cfg.setDefaults()
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if len(d.errs) == 0 {
		cfg.Warnings = secretWarnings(path, secretLines, secretFiles(root))
	}
	if len(d.errs) == 0 {
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			dir = filepath.Dir(path)
		}
		cfg.resolvePaths(dir)
		d.fieldError(cfg.validate())
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return cfg, nil
}

func (c *Config) setDefaults() {
	c.DataDir = "/var/lib/logagent"
	c.ShutdownTimeout = 10 * time.Second
	c.CheckpointInterval = 5 * time.Millisecond
	c.CheckpointBytes = 1 << 20
	c.CheckpointMaxDelay = 100 * time.Millisecond
	c.MaxInflightBytes = 32 << 20
	c.LogLevel = "info"
	c.LogFormat = "auto"
}

// resolvePaths makes relative paths relative to dir, the config file's.
func (c *Config) resolvePaths(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.DataDir = abs(c.DataDir)
	for i := range c.Inputs {
		in := &c.Inputs[i]
		for j, p := range in.Paths {
			in.Paths[j] = abs(p)
		}
		for j, p := range in.Exclude {
			if strings.Contains(p, "/") {
				in.Exclude[j] = abs(p)
			}
		}
	}
	for i := range c.Outputs {
		if r, ok := c.Outputs[i].Settings().(interface{ ResolvePaths(dir string) }); ok {
			r.ResolvePaths(dir)
		}
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, logagent.FieldErrorf(field, format, args...))
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be > 0, got %s", c.ShutdownTimeout)
	}
	if c.CheckpointInterval <= 0 {
		bad("checkpoint_interval", "must be > 0, got %s", c.CheckpointInterval)
	}
	if c.CheckpointBytes < 0 {
		bad("checkpoint_bytes", "must be >= 0 (0: write every checkpoint_interval), got %s", c.CheckpointBytes)
	}
	if c.CheckpointMaxDelay <= 0 {
		bad("checkpoint_max_delay", "must be > 0, got %s", c.CheckpointMaxDelay)
	}
	if c.MaxInflightBytes < 1<<20 {
		bad("max_inflight_bytes", "must be at least 1MiB, got %s", c.MaxInflightBytes)
	}
	if c.MaxProcs < 0 {
		bad("max_procs", "must be 0 (automatic) or a number of threads, got %d", c.MaxProcs)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be one of debug, info, warn, error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		bad("log_format", "must be one of auto, text, json, got %q", c.LogFormat)
	}
	if c.HTTP != nil {
		if err := checkListen(c.HTTP.Listen); err != nil {
			bad("http.listen", "%v", err)
		}
	}

	outputs := map[string]*OutputConfig{}
	if len(c.Outputs) == 0 {
		bad("outputs", "at least one output is needed")
	}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		p := fmt.Sprintf("outputs[%d]", i)
		switch {
		case o.ID == "":
			bad(p+".id", "must be set")
		case !idPattern.MatchString(o.ID):
			bad(p+".id", "%q: use letters, digits, '.', '_' and '-'", o.ID)
		case outputs[o.ID] != nil:
			bad(p+".id", "%q is used by another output", o.ID)
		default:
			outputs[o.ID] = o
		}
		if o.Batch.MaxEvents <= 0 {
			bad(p+".batch.max_events", "must be > 0, got %d", o.Batch.MaxEvents)
		}
		if o.Batch.MaxBytes <= 0 {
			bad(p+".batch.max_bytes", "must be > 0, got %d", o.Batch.MaxBytes)
		}
		if o.Batch.FlushInterval <= 0 {
			bad(p+".batch.flush_interval", "must be > 0, got %s", o.Batch.FlushInterval)
		}
		if o.MinBackoff <= 0 {
			bad(p+".min_backoff", "must be > 0, got %s", o.MinBackoff)
		}
		if o.MaxBackoff < o.MinBackoff {
			bad(p+".max_backoff", "must be >= min_backoff (%s), got %s", o.MinBackoff, o.MaxBackoff)
		}
		if !o.Format.Valid() {
			bad(p+".format", "must be raw or json, got %q", o.Format)
		}
		if o.kind != nil {
			errs = append(errs, logagent.JoinField(p, o.kind.validate()))
		}
	}

	if len(c.Inputs) == 0 {
		bad("inputs", "at least one input is needed")
	}
	inputs := map[string]bool{}
	for i := range c.Inputs {
		in := &c.Inputs[i]
		p := fmt.Sprintf("inputs[%d]", i)
		switch {
		case in.ID == "":
			bad(p+".id", "must be set: checkpoints are keyed by it")
		case !idPattern.MatchString(in.ID):
			bad(p+".id", "%q: use letters, digits, '.', '_' and '-'", in.ID)
		case inputs[in.ID]:
			bad(p+".id", "%q is used by another input", in.ID)
		default:
			inputs[in.ID] = true
		}
		if in.kind != nil {
			errs = append(errs, validateTyped(in, p, outputs, c.outputIDs())...)
			continue
		}
		if in.Category == "" {
			in.Category = in.ID
		}
		if len(in.Paths) == 0 {
			bad(p+".paths", "at least one path glob is needed")
		}
		for j, g := range in.Paths {
			if !doublestar.ValidatePattern(g) {
				bad(fmt.Sprintf("%s.paths[%d]", p, j), "%q is not a valid glob", g)
			}
		}
		for j, g := range in.Exclude {
			if !doublestar.ValidatePattern(g) {
				bad(fmt.Sprintf("%s.exclude[%d]", p, j), "%q is not a valid glob", g)
			}
		}
		if in.StartAt != "beginning" && in.StartAt != "end" {
			bad(p+".start_at", "must be beginning or end, got %q", in.StartAt)
		}
		if in.IgnoreOlder < 0 {
			bad(p+".ignore_older", "must be >= 0 (0: off), got %s", in.IgnoreOlder)
		}
		if in.MaxMessageBytes <= 0 {
			bad(p+".max_message_bytes", "must be > 0, got %d", in.MaxMessageBytes)
		} else if in.MaxMessageBytes > 256<<20 {
			bad(p+".max_message_bytes", "must be at most 256MiB, got %s", in.MaxMessageBytes)
		}
		// The read blocks of an input hold a whole message and are charged
		// to max_inflight_bytes: a block larger than the budget would
		// pass alone, uncounted, and the bound would not hold. With
		// multiline a block holds an open event and the line after it,
		// twice as much.
		if in.Multiline != nil {
			if most := c.MaxInflightBytes / 4; in.MaxMessageBytes > 0 && in.MaxMessageBytes > most {
				bad(p+".max_message_bytes", "%s is more than a quarter of max_inflight_bytes (%s): with multiline, a read buffer holds an open event and the next line, each up to max_message_bytes; lower it to at most %s or raise max_inflight_bytes to at least %s",
					in.MaxMessageBytes, c.MaxInflightBytes, most, 4*in.MaxMessageBytes)
			}
		} else if in.MaxMessageBytes > 0 && in.MaxMessageBytes > c.MaxInflightBytes/2 {
			bad(p+".max_message_bytes", "%s is more than half of max_inflight_bytes (%s), which bounds the read buffers holding messages: lower it to at most %s or raise max_inflight_bytes to at least %s",
				in.MaxMessageBytes, c.MaxInflightBytes, c.MaxInflightBytes/2, 2*in.MaxMessageBytes)
		}
		if in.ReadBufferBytes > c.MaxInflightBytes {
			bad(p+".read_buffer_bytes", "%s is more than max_inflight_bytes (%s), which bounds the read buffers", in.ReadBufferBytes, c.MaxInflightBytes)
		}
		if in.LinesPerMessage < 1 {
			bad(p+".lines_per_message", "must be >= 1, got %d", in.LinesPerMessage)
		}
		if in.ScanInterval <= 0 {
			bad(p+".scan_interval", "must be > 0, got %s", in.ScanInterval)
		}
		if in.PollInterval <= 0 {
			bad(p+".poll_interval", "must be > 0, got %s", in.PollInterval)
		}
		if in.CloseInactive <= 0 {
			bad(p+".close_inactive", "must be > 0, got %s", in.CloseInactive)
		}
		if in.CloseRemovedAfter <= 0 {
			bad(p+".close_removed_after", "must be > 0, got %s", in.CloseRemovedAfter)
		}
		if in.MaxOpenFiles < 1 {
			bad(p+".max_open_files", "must be >= 1, got %d", in.MaxOpenFiles)
		}
		if in.FingerprintBytes < 16 || in.FingerprintBytes > 64<<10 {
			bad(p+".fingerprint_bytes", "must be between 16 and 64KiB, got %s", in.FingerprintBytes)
		}
		if in.ReadBufferBytes < 64<<10 {
			bad(p+".read_buffer_bytes", "must be at least 64KiB, got %s", in.ReadBufferBytes)
		}
		in.include = compileAll(in.IncludeLines, p+".include_lines", bad)
		in.exclude = compileAll(in.ExcludeLines, p+".exclude_lines", bad)
		in.multiline = in.Multiline.compile(p+".multiline", int(in.MaxMessageBytes), in.LinesPerMessage, bad)
		seen := map[string]bool{}
		for j, id := range in.Outputs {
			f := fmt.Sprintf("%s.outputs[%d]", p, j)
			o := outputs[id]
			switch {
			case seen[id]:
				bad(f, "%q is listed twice", id)
			case o == nil:
				bad(f, "no output has id %q (outputs: %s)", id, strings.Join(c.outputIDs(), ", "))
			}
			seen[id] = true
		}
		checked := map[string]bool{}
		for _, id := range c.routes(in) {
			if o := outputs[id]; o != nil && !checked[id] {
				checked[id] = true
				c.checkMessageFits(in, o, p, bad)
			}
		}
	}
	return errors.Join(errs...)
}

// checkListen checks that addr is host:port, host being empty (every
// interface), an IP address or a host name, and port a number or a
// service name, as net.Listen takes it.
func checkListen(addr string) error {
	if addr == "" {
		return errors.New("must be host:port, e.g. 127.0.0.1:9108")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%q is not host:port (%v): write 127.0.0.1:9108, or :9108 for every interface", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("%q: port %q is not a port number", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostnamePattern.MatchString(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// checkMessageFits checks that every message of input in (at most
// max_message_bytes) fits what output o accepts, in the envelope if o's
// format is json: then every byte of the body and of the path is counted
// at its worst, escaped as \u00XX, so that no envelope can ever be
// refused as too large (see envelope.MaxLen).
func (c *Config) checkMessageFits(in *InputConfig, o *OutputConfig, p string, bad func(string, string, ...any)) {
	if o.kind == nil || o.kind.maxMessageBytes() <= 0 {
		return
	}
	limit := o.kind.maxMessageBytes()
	if o.Format != envelope.JSON {
		if int(in.MaxMessageBytes) > limit {
			bad(p+".max_message_bytes", "%s is larger than output %q accepts (%d bytes)", in.MaxMessageBytes, o.ID, limit)
		}
		return
	}
	src := &logagent.Source{Input: in.ID, Category: in.Category, Host: c.hostname(), Fields: in.Fields}
	if n := envelope.MaxLen(int(in.MaxMessageBytes), src); n > limit {
		bad(p+".max_message_bytes", "%s is too large for output %q with format: json: the envelope of such a message can take up to %d bytes "+
			"(each control or invalid UTF-8 byte escaped, plus message_base64), more than the %d bytes the output accepts; "+
			"at most %d (longer lines are split into pieces, never dropped)",
			in.MaxMessageBytes, o.ID, n, limit, max(envelope.MaxBody(limit, src), 0))
	}
}

// compile validates m and returns it resolved for the file input, or nil
// when m is (off) or when it is invalid. key is m's key path.
func (m *MultilineConfig) compile(key string, maxBytes, linesPerMessage int, bad func(string, string, ...any)) *multiline.Config {
	if m == nil {
		return nil
	}
	ok := true
	invalid := func(field, format string, args ...any) {
		bad(field, format, args...)
		ok = false
	}
	cfg := &multiline.Config{MaxLines: m.MaxLines, MaxBytes: maxBytes, Timeout: m.Timeout}
	pattern := func(field, s string) *regexp.Regexp {
		re, err := regexp.Compile(s)
		if err != nil {
			invalid(key+"."+field, "%q is not a valid regular expression (RE2 syntax): %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return re
	}
	switch {
	case m.Start != "" && m.Continue != "":
		invalid(key, "set one of start and continue, not both")
	case m.Start != "":
		cfg.Start = pattern("start", m.Start)
	case m.Continue != "":
		cfg.Continue = pattern("continue", m.Continue)
	default:
		invalid(key, "set one of start (a pattern matching the first line of an event) or continue (matching the lines that join the one before)")
	}
	if m.MaxLines < 1 {
		invalid(key+".max_lines", "must be >= 1, got %d", m.MaxLines)
	}
	if m.Timeout <= 0 {
		invalid(key+".timeout", "must be > 0, got %s", m.Timeout)
	}
	if linesPerMessage > 1 {
		invalid(key, "cannot be combined with lines_per_message: %d (multiline decides which lines make a message)", linesPerMessage)
	}
	if !ok || maxBytes <= 0 {
		return nil
	}
	return cfg
}

// compileAll compiles the regular expressions of a list key.
func compileAll(patterns []string, key string, bad func(string, string, ...any)) []*regexp.Regexp {
	var res []*regexp.Regexp
	for i, s := range patterns {
		re, err := regexp.Compile(s)
		if err != nil {
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a valid regular expression (RE2 syntax): %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			continue
		}
		res = append(res, re)
	}
	return res
}

func (c *Config) outputIDs() []string {
	var ids []string
	for _, o := range c.Outputs {
		ids = append(ids, o.ID)
	}
	return ids
}

// routes returns the ids of the outputs input in is routed to.
func (c *Config) routes(in *InputConfig) []string {
	if len(in.Outputs) > 0 {
		return in.Outputs
	}
	return c.outputIDs()
}

// fileConfig resolves an input for the file input package.
func (c *Config) fileConfig(in *InputConfig, host string) file.Config {
	return file.Config{
		ID:                in.ID,
		Paths:             in.Paths,
		Exclude:           in.Exclude,
		Category:          in.Category,
		StartAtEnd:        in.StartAt == "end",
		IgnoreOlder:       in.IgnoreOlder,
		MaxMessageBytes:   int(in.MaxMessageBytes),
		LinesPerMessage:   in.LinesPerMessage,
		Multiline:         in.multiline,
		Fields:            in.Fields,
		Host:              host,
		ScanInterval:      in.ScanInterval,
		PollInterval:      in.PollInterval,
		CloseInactive:     in.CloseInactive,
		CloseRemovedAfter: in.CloseRemovedAfter,
		MaxOpenFiles:      in.MaxOpenFiles,
		FingerprintBytes:  int(in.FingerprintBytes),
		BlockBytes:        int(in.ReadBufferBytes),
		FollowSymlinks:    in.FollowSymlinks,
	}
}

// hostname returns the configured host name or the machine's.
func (c *Config) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}
