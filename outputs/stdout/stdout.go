// Package stdout is the stdout output: one message body per line.
package stdout

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/logagent/logagent"
)

// Config is the stdout output's own keys: none yet.
type Config struct{}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{} }

// Validate checks c.
func (c *Config) Validate() error { return nil }

// Output writes to standard output.
type Output struct {
	w   io.Writer
	buf []byte
}

// New returns a stdout output.
func New(id string, cfg Config, log *slog.Logger) (*Output, error) {
	return &Output{w: os.Stdout}, nil
}

// Describe implements logagent.Describer.
func (o *Output) Describe() string { return "standard output" }

// Destination implements logagent.Describer.
func (o *Output) Destination(m *logagent.Message) string { return "stdout" }

// Send writes each body and a newline, in one write.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	buf := o.buf[:0]
	for i := range batch {
		buf = append(buf, batch[i].Body...)
		buf = append(buf, '\n')
	}
	o.buf = buf
	_, err := o.w.Write(buf)
	return err
}

// Close implements logagent.Output.
func (o *Output) Close() error { return nil }
