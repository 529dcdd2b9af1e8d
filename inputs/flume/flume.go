// Package flume is the Flume relay input (type: flume): a Thrift server
// for Flume NG's Thrift source protocol (append, appendBatch; framed,
// compact by default or binary). Each event becomes a message whose
// category is the event's "category" header (what logagent's flume output
// sets), or the input's category when the header is missing; its body is
// the event's body without one trailing newline. A call answers OK only once
// every routed output has acknowledged its events, and FAILED at once
// under backpressure (see package relay): a Flume client then sends them
// again.
package flume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/inputs/relay"
	"github.com/logagent/logagent/internal/thriftgen/flume"
)

// Config is the configuration of a flume input.
type Config struct {
	relay.Limits `yaml:",inline"`
	// Protocol is compact (Flume's default) or binary.
	Protocol string `yaml:"protocol"`
	// Category is the category of events without a "category" header;
	// default: the input's id.
	Category string          `yaml:"category"`
	Register *relay.Register `yaml:"register"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Limits: relay.DefaultLimits("0.0.0.0:4141"), Protocol: "compact"}
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	errs := []error{c.Limits.Validate()}
	if c.Protocol != "compact" && c.Protocol != "binary" {
		errs = append(errs, logagent.FieldErrorf("protocol", "must be compact or binary, got %q", c.Protocol))
	}
	if c.Register != nil {
		errs = append(errs, logagent.JoinField("register", c.Register.Validate(c.Listen)))
	}
	return errors.Join(errs...)
}

// Describe tells, for --dry-run, what the input would serve.
func (c *Config) Describe() string {
	return fmt.Sprintf("Flume Thrift source (framed, %s) ", c.Protocol) + c.Limits.Describe(c.Register)
}

// Input is a running Flume relay.
type Input struct {
	srv      *relay.Server
	env      inputs.Env
	category string
}

// New listens on c.Listen; nothing is served until Run.
func New(c Config, env inputs.Env) (*Input, error) {
	srv, err := relay.Listen(c.Limits.Options(c.Protocol == "compact", c.Register), env)
	if err != nil {
		return nil, err
	}
	in := &Input{srv: srv, env: env, category: c.Category}
	if in.category == "" {
		in.category = env.ID
	}
	srv.SetProcessor(flume.NewThriftSourceProtocolProcessor(in))
	return in, nil
}

// Addr is the address the input listens on.
func (in *Input) Addr() string { return in.srv.Addr().String() }

// Counters returns the relay's counters.
func (in *Input) Counters() *relay.Counters { return in.srv.Counters() }

// Run serves until ctx is done; see relay.Server.Run.
func (in *Input) Run(ctx context.Context) error { return in.srv.Run(ctx) }

// Close releases the listener of an input never run.
func (in *Input) Close() error { return in.srv.Close() }

// Append is AppendBatch of one event.
func (in *Input) Append(ctx context.Context, event *flume.ThriftFlumeEvent) (flume.Status, error) {
	return in.AppendBatch(ctx, []*flume.ThriftFlumeEvent{event})
}

// AppendBatch answers OK once every event is delivered, FAILED otherwise
// (nothing of the call is then known to be taken).
func (in *Input) AppendBatch(_ context.Context, events []*flume.ThriftFlumeEvent) (flume.Status, error) {
	msgs := make([]logagent.Message, 0, len(events))
	sources := map[string]*logagent.Source{}
	now := time.Now().UnixNano()
	var size int64
	for _, e := range events {
		if e == nil {
			continue
		}
		cat, ok := e.Headers["category"]
		if !ok {
			cat = in.category
		}
		src := sources[cat]
		if src == nil {
			src = &logagent.Source{Input: in.env.ID, Category: cat, Host: in.env.Host}
			sources[cat] = src
		}
		body := e.Body
		if n := len(body); n > 0 && body[n-1] == '\n' {
			body = body[:n-1]
		}
		msgs = append(msgs, logagent.Message{Body: body, ReadNano: now, Source: src})
		size += int64(len(body))
	}
	if r, _ := in.srv.Deliver(msgs, size); r == relay.TryLater {
		return flume.Status_FAILED, nil
	}
	return flume.Status_OK, nil
}
