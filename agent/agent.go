// Package agent loads the configuration and runs the pipeline: file inputs
// hand chunks of messages to one runner per output, which batches, sends
// with retries, and acknowledges; acknowledged offsets reach the
// checkpoint.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/inputs/file"
)

// Agent is one running configuration.
type Agent struct {
	cfg     *Config
	log     *slog.Logger
	store   *checkpoint.Store
	budget  *file.Budget
	runners []*runner
	inputs  []*inputRun
	relays  []*relayRun // inputs of other types than file
	started time.Time
	mon     *monitor // rates and backfill progress, for Status and the log
	backlog func()   // set by OnBacklog; nil for none
}

// relayRun is an input of a type other than file (a relay).
type relayRun struct {
	cfg   InputConfig
	in    inputs.Input
	route []*runner
}

type inputRun struct {
	cfg   InputConfig
	in    *file.Input
	route []*runner
}

// New builds the outputs and inputs of cfg and opens the checkpoint. It
// starts nothing: Run does.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	store, err := checkpoint.Open(cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, store: store, budget: file.NewBudget(int64(cfg.MaxInflightBytes)), mon: newMonitor()}
	byID := map[string]*runner{}
	for _, oc := range cfg.Outputs {
		out, err := oc.kind.build(oc.ID, log.With("output", oc.ID))
		if err != nil {
			a.closeOutputs()
			store.Close()
			return nil, fmt.Errorf("output %s: %w", oc.ID, err)
		}
		r := newRunner(oc, out, log)
		a.runners = append(a.runners, r)
		byID[oc.ID] = r
	}
	host := cfg.hostname()
	for i := range cfg.Inputs {
		ic := cfg.Inputs[i]
		var route []*runner
		for _, id := range cfg.routes(&ic) {
			route = append(route, byID[id])
		}
		if ic.kind != nil {
			rr := &relayRun{cfg: ic, route: route}
			in, err := ic.kind.build(inputs.Env{
				ID:           ic.ID,
				Host:         host,
				Publish:      (&inputRun{route: route}).publish,
				Failing:      rr.failing,
				DrainTimeout: cfg.ShutdownTimeout,
				Log:          log.With("input", ic.ID),
			})
			if err != nil {
				a.closeRelays()
				a.closeOutputs()
				store.Close()
				return nil, fmt.Errorf("input %s: %w", ic.ID, err)
			}
			rr.in = in
			a.relays = append(a.relays, rr)
			continue
		}
		ir := &inputRun{cfg: ic, route: route}
		fc := cfg.fileConfig(&ic, host)
		fc.OnBacklog = a.onBacklog
		ir.in = file.New(fc, store, a.budget, ir.publish, log)
		a.inputs = append(a.inputs, ir)
	}
	return a, nil
}

// publish hands c to every output the input is routed to, waiting while an
// output's queue is full: that wait is the backpressure that pauses
// reading.
func (ir *inputRun) publish(ctx context.Context, c *logagent.Chunk) error {
	c.Expect(len(ir.route))
	for _, r := range ir.route {
		// Room in the queue, usually: a plain send, without the locking
		// of every channel a select does.
		select {
		case r.queue <- c:
			continue
		default:
		}
		select {
		case r.queue <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// failing returns why an output rr is routed to fails now, or "".
func (rr *relayRun) failing() string {
	for _, r := range rr.route {
		if since := r.metrics.FailingSince(); !since.IsZero() {
			return fmt.Sprintf("output %s failing since %s: %s", r.cfg.ID, since.Format(time.RFC3339), r.metrics.LastError())
		}
	}
	return ""
}

// closeRelays releases the listeners of relays built but never run.
func (a *Agent) closeRelays() {
	for _, rr := range a.relays {
		if c, ok := rr.in.(io.Closer); ok {
			c.Close()
		}
	}
}

// OnBacklog sets f to be called when an input finds a file far behind
// (Procs.Backlog). Call it before Run.
func (a *Agent) OnBacklog(f func()) { a.backlog = f }

func (a *Agent) onBacklog() {
	if a.backlog != nil {
		a.backlog()
	}
}

// Run runs until ctx is done, then stops: inputs stop reading, outputs
// deliver what was read within shutdown_timeout, and the checkpoint is
// written. Lines read but not delivered by then are read again at the next
// start.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	outCtx, stopOutputs := context.WithCancel(context.Background())
	defer stopOutputs()
	var outWG sync.WaitGroup
	for _, r := range a.runners {
		outWG.Add(1)
		go func() {
			defer outWG.Done()
			r.run(outCtx)
		}()
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	var storeWG sync.WaitGroup
	storeWG.Add(1)
	go func() {
		defer storeWG.Done()
		a.store.Run(storeCtx, a.cfg.CheckpointInterval)
	}()

	var inWG sync.WaitGroup
	for _, ir := range a.inputs {
		inWG.Add(1)
		go func() {
			defer inWG.Done()
			ir.in.Run(ctx)
		}()
	}
	for _, rr := range a.relays {
		inWG.Add(1)
		go func() {
			defer inWG.Done()
			if err := rr.in.Run(ctx); err != nil {
				a.log.Error("input stopped", "input", rr.cfg.ID, "err", err)
			}
		}()
	}
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		a.watch(ctx)
	}()
	a.log.Info("logagent started", "inputs", len(a.inputs)+len(a.relays), "outputs", len(a.runners), "data_dir", a.cfg.DataDir)
	<-ctx.Done()

	a.log.Info("stopping: reading stopped, delivering what was read", "timeout", a.cfg.ShutdownTimeout)
	inWG.Wait()
	watchWG.Wait()
	for _, r := range a.runners {
		close(r.queue)
	}
	drained := make(chan struct{})
	go func() {
		outWG.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(a.cfg.ShutdownTimeout):
		a.log.Warn("shutdown_timeout reached; what was not delivered is sent again at the next start")
		stopOutputs()
		<-drained
	}
	stopStore()
	storeWG.Wait()
	errs := []error{a.closeOutputs()}
	if err := a.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("write checkpoint: %w", err))
	}
	a.log.Info("logagent stopped")
	return errors.Join(errs...)
}

func (a *Agent) closeOutputs() error {
	var errs []error
	for _, r := range a.runners {
		if err := r.out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close output %s: %w", r.cfg.ID, err))
		}
	}
	return errors.Join(errs...)
}
