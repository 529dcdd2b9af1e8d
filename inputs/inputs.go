// Package inputs is the contract between the agent and its inputs: what an
// input is handed (Env) and what the agent asks of it (Input). The file
// input (inputs/file) and the relay inputs (inputs/scribe, inputs/flume)
// depend on it, not on each other.
package inputs

import (
	"context"
	"log/slog"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
)

// PublishFunc hands a chunk to every output the input is routed to, after
// calling c.Expect. It blocks while an output's queue is full, and returns
// an error only when ctx is done; the chunk's OnDone is called once every
// routed output has acknowledged all its messages.
type PublishFunc func(ctx context.Context, c *logagent.Chunk) error

// Input is one configured input.
type Input interface {
	// Run reads or receives until ctx is done, then returns once every
	// goroutine it started has stopped. The agent calls it once, from one
	// goroutine, and keeps its outputs running until Run has returned, so
	// that what an input published before can still be acknowledged.
	Run(ctx context.Context) error
}

// Env is everything the agent gives an input that is not a file input.
type Env struct {
	ID   string // the input's id
	Host string // the agent's host name
	// Publish hands chunks to the outputs the input is routed to.
	Publish PublishFunc
	// Failing returns why an output the input is routed to is failing
	// now (its last send failed), or "" while all deliver. A relay
	// answers "try later" rather than queue behind a failing output.
	Failing func() string
	// DrainTimeout is how long Run may wait, once ctx is done, for
	// messages it published to be acknowledged (the agent's
	// shutdown_timeout).
	DrainTimeout time.Duration
	// Checkpoint is the agent's offset store, for an input that keeps a
	// position of its own (the journal's cursor, under the input's id).
	Checkpoint *checkpoint.Store
	Log        *slog.Logger
}
