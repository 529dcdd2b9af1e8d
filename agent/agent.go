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
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/inputs/file"
)

// Agent is one running configuration, changed in place by Reload.
type Agent struct {
	// immutable after New
	log   *slog.Logger
	store *checkpoint.Store
	pool  *file.Pool // max_inflight_bytes, divided between the inputs
	mon   *monitor   // rates and backfill progress, for Status and the log
	// watcher is the one inotify instance, shared by the inputs.
	watcher *file.Watcher

	backlog func() // set by OnBacklog before Run; nil for none

	// guarded by mu: what runs now. Status, metrics and the monitor read
	// it; Run and Reload, under life, change it.
	mu      sync.RWMutex
	cfg     *Config
	runners []*runner
	inputs  []*inputRun
	relays  []*relayRun // inputs of other types than file

	// life serialises Run's start and stop with Reload. Guarded by it:
	life   sync.Mutex
	runCtx context.Context // Run's; nil before Run and once it stops
}

// relayRun is an input of a type other than file (a relay).
type relayRun struct {
	// immutable after newRelay
	cfg   InputConfig
	host  string
	in    inputs.Input
	route []*runner

	// set by start
	cancel context.CancelFunc
	done   chan struct{}
}

type inputRun struct {
	// immutable after newInput
	cfg    InputConfig
	fc     file.Config
	in     *file.Input
	budget *file.Budget
	route  []*runner
	filter *lineFilter // nil: every message is shipped

	// set by start
	cancel context.CancelFunc
	done   chan struct{}

	// blockedOn is the runner whose full queue publish waits on, nil
	// when it does not wait; blockedAt is since when (unix nanos).
	blockedOn atomic.Pointer[runner]
	blockedAt atomic.Int64
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
	a := &Agent{cfg: cfg, log: log, store: store, pool: file.NewPool(int64(cfg.MaxInflightBytes)), mon: newMonitor(),
		// LOGAGENT_INOTIFY=off has the agent poll as where inotify is
		// unavailable: a switch for tests, not a setting.
		watcher: file.NewWatcher(os.Getenv("LOGAGENT_INOTIFY") != "off", log)}
	byID := map[string]*runner{}
	for _, oc := range cfg.Outputs {
		r, err := a.newRunner(oc)
		if err != nil {
			closeRunners(a.runners)
			store.Close()
			return nil, err
		}
		a.runners = append(a.runners, r)
		byID[oc.ID] = r
	}
	host := cfg.hostname()
	for i := range cfg.Inputs {
		ic := &cfg.Inputs[i]
		if ic.kind != nil {
			rr, err := a.newRelay(cfg, ic, host, byID)
			if err != nil {
				closeRelays(a.relays)
				closeRunners(a.runners)
				store.Close()
				return nil, err
			}
			a.relays = append(a.relays, rr)
			continue
		}
		a.inputs = append(a.inputs, a.newInput(cfg, ic, host, byID))
	}
	return a, nil
}

func (a *Agent) newRelay(cfg *Config, ic *InputConfig, host string, byID map[string]*runner) (*relayRun, error) {
	rr := &relayRun{cfg: *ic, host: host}
	for _, id := range cfg.routes(ic) {
		rr.route = append(rr.route, byID[id])
	}
	in, err := ic.kind.build(inputs.Env{
		ID:           ic.ID,
		Host:         host,
		Publish:      (&inputRun{route: rr.route}).publish,
		Failing:      rr.failing,
		DrainTimeout: cfg.ShutdownTimeout,
		Checkpoint:   a.store,
		Log:          a.log.With("input", ic.ID),
	})
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", ic.ID, err)
	}
	rr.in = in
	return rr, nil
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

// start runs the relay until ctx is done or it is stopped.
func (rr *relayRun) start(ctx context.Context, log *slog.Logger) {
	ctx, rr.cancel = context.WithCancel(ctx)
	rr.done = make(chan struct{})
	go func() {
		defer close(rr.done)
		if err := rr.in.Run(ctx); err != nil {
			log.Error("input stopped", "input", rr.cfg.ID, "err", err)
		}
	}()
}

// stop stops the relay (it answers no more, and waits for what it
// published to be acknowledged, up to its DrainTimeout) and waits for it.
func (rr *relayRun) stop() {
	rr.cancel()
	<-rr.done
}

// closeRelays releases the listeners of relays built but never run.
func closeRelays(relays []*relayRun) {
	for _, rr := range relays {
		if c, ok := rr.in.(io.Closer); ok {
			c.Close()
		}
	}
}

func (a *Agent) newRunner(oc OutputConfig) (*runner, error) {
	out, err := oc.kind.build(oc.ID, a.log.With("output", oc.ID))
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", oc.ID, err)
	}
	return newRunner(oc, out, a.log), nil
}

func (a *Agent) newInput(cfg *Config, ic *InputConfig, host string, byID map[string]*runner) *inputRun {
	ir := &inputRun{cfg: *ic, fc: cfg.fileConfig(ic, host), filter: newLineFilter(ic)}
	for _, id := range cfg.routes(ic) {
		ir.route = append(ir.route, byID[id])
	}
	ir.fc.OnBacklog = a.onBacklog
	ir.budget = a.pool.Budget(ic.ID)
	fc := ir.fc // ir.fc is compared at Reload: without the watcher
	fc.Watcher = a.watcher
	ir.in = file.New(fc, a.store, ir.budget, ir.publish, a.log)
	return ir
}

// running returns what runs now.
func (a *Agent) running() (*Config, []*inputRun, []*runner) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg, a.inputs, a.runners
}

// runningRelays returns the relays running now.
func (a *Agent) runningRelays() []*relayRun {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.relays
}

// publish hands c to every output the input is routed to, waiting while an
// output's queue is full: that wait is the backpressure that pauses
// reading. Only this input's outputs can hold it: each output has a queue
// of its own. Messages the input's filter drops are taken out of c first;
// a chunk left empty is done at once, so that its offsets are committed.
func (ir *inputRun) publish(ctx context.Context, c *logagent.Chunk) error {
	if ir.filter != nil {
		ir.filter.apply(c)
		if len(c.Messages) == 0 {
			c.OnDone()
			return nil
		}
	}
	c.Expect(len(ir.route))
	for _, r := range ir.route {
		// Room in the queue, usually: a plain send, without the locking
		// of every channel a select does.
		select {
		case r.queue <- c:
			continue
		default:
		}
		ir.blockedAt.Store(time.Now().UnixNano())
		ir.blockedOn.Store(r)
		select {
		case r.queue <- c:
			ir.blockedOn.Store(nil)
		case <-ctx.Done():
			ir.blockedOn.Store(nil)
			return ctx.Err()
		}
	}
	return nil
}

// dropped returns how many messages the input's filter dropped.
func (ir *inputRun) dropped() int64 {
	if ir.filter == nil {
		return 0
	}
	return ir.filter.dropped.Load()
}

// waiting tells whether the input's reading waits for its outputs, since
// when, and for which: those of its outputs that fail, or else the one
// whose queue it waits on, or else those whose queue is full, or else all
// of them (slower than the input).
func (ir *inputRun) waiting() (since time.Time, outputs []string) {
	since = ir.budget.WaitingSince()
	blocked := ir.blockedOn.Load()
	if blocked != nil {
		if t := time.Unix(0, ir.blockedAt.Load()); since.IsZero() || t.Before(since) {
			since = t
		}
	}
	if since.IsZero() {
		return since, nil
	}
	for _, r := range ir.route {
		if !r.metrics.FailingSince().IsZero() {
			outputs = append(outputs, r.cfg.ID)
		}
	}
	if len(outputs) == 0 && blocked != nil {
		outputs = append(outputs, blocked.cfg.ID)
	}
	if len(outputs) == 0 {
		for _, r := range ir.route {
			if len(r.queue) == cap(r.queue) {
				outputs = append(outputs, r.cfg.ID)
			}
		}
	}
	if len(outputs) == 0 {
		for _, r := range ir.route {
			outputs = append(outputs, r.cfg.ID)
		}
	}
	return since, outputs
}

// OnBacklog sets f to be called when an input finds a file far behind
// (Procs.Backlog). Call it before Run.
func (a *Agent) OnBacklog(f func()) { a.backlog = f }

func (a *Agent) onBacklog() {
	if a.backlog != nil {
		a.backlog()
	}
}

// start runs the input until ctx is done or it is stopped.
func (ir *inputRun) start(ctx context.Context) {
	ctx, ir.cancel = context.WithCancel(ctx)
	ir.done = make(chan struct{})
	go func() {
		defer close(ir.done)
		ir.in.Run(ctx)
	}()
}

// stop stops the input's reading and waits for it.
func (ir *inputRun) stop() {
	ir.cancel()
	<-ir.done
}

// Run runs until ctx is done, then stops: inputs stop reading, outputs
// deliver what was read within shutdown_timeout, and the checkpoint is
// written. Lines read but not delivered by then are read again at the next
// start.
func (a *Agent) Run(ctx context.Context) error {
	a.life.Lock()
	a.runCtx = ctx
	cfg, inputs, runners := a.running()
	for _, r := range runners {
		r.start()
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	var storeWG sync.WaitGroup
	storeWG.Add(1)
	// Reload keeps it: needsRestart.
	policy := checkpoint.Policy{Delay: cfg.CheckpointInterval, Bytes: int64(cfg.CheckpointBytes), MaxDelay: cfg.CheckpointMaxDelay}
	go func() {
		defer storeWG.Done()
		a.store.Run(storeCtx, policy)
	}()
	a.watcher.Open()
	watcherCtx, stopWatcher := context.WithCancel(context.Background())
	var watcherWG sync.WaitGroup
	watcherWG.Add(1)
	go func() {
		defer watcherWG.Done()
		a.watcher.Run(watcherCtx)
	}()
	// After the inputs, those started by Reload too, stopped.
	defer watcherWG.Wait()
	defer stopWatcher()
	for _, ir := range inputs {
		ir.start(ctx)
	}
	relays := a.runningRelays()
	for _, rr := range relays {
		rr.start(ctx, a.log)
	}
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		a.watch(ctx)
	}()
	a.log.Info("logagent started", "inputs", len(inputs)+len(relays), "outputs", len(runners), "data_dir", cfg.DataDir)
	a.life.Unlock()
	<-ctx.Done()

	a.life.Lock()
	defer a.life.Unlock()
	a.runCtx = nil
	cfg, inputs, runners = a.running()
	a.log.Info("stopping: reading stopped, delivering what was read", "timeout", cfg.ShutdownTimeout)
	for _, ir := range inputs {
		<-ir.done
	}
	for _, rr := range a.runningRelays() {
		<-rr.done
	}
	watchWG.Wait()
	if !drainRunners(runners, nil, cfg.ShutdownTimeout) {
		a.log.Warn("shutdown_timeout reached; what was not delivered is sent again at the next start")
	}
	stopStore()
	storeWG.Wait()
	errs := []error{closeRunners(runners)}
	if err := a.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("write checkpoint: %w", err))
	}
	a.log.Info("logagent stopped")
	return errors.Join(errs...)
}

// drainRunners closes the queues of runners, whose inputs stopped, and
// waits up to timeout for them to deliver what they hold and for the
// budgets to be let go of (every output routed to those inputs delivered
// their chunks). Past timeout the runners are cancelled: what they did not
// deliver is not committed, and read again. It reports whether everything
// was delivered in time.
func drainRunners(runners []*runner, budgets []*file.Budget, timeout time.Duration) bool {
	for _, r := range runners {
		close(r.queue)
	}
	drained := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(drained)
		for _, r := range runners {
			<-r.done
		}
		for _, b := range budgets {
			for b.Used() > 0 {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	ok := true
	select {
	case <-drained:
	case <-timer.C:
		ok = false
		close(stop)
		for _, r := range runners {
			r.cancel()
		}
		<-drained
	}
	return ok
}

// closeOutputs closes the outputs of an agent that never ran.
func (a *Agent) closeOutputs() error {
	_, _, runners := a.running()
	return closeRunners(runners)
}

func closeRunners(runners []*runner) error {
	var errs []error
	for _, r := range runners {
		if err := r.out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close output %s: %w", r.cfg.ID, err))
		}
	}
	return errors.Join(errs...)
}

// ErrRestart is returned by Reload when the new configuration changes what
// cannot change in place (data_dir, checkpoint_interval, checkpoint_bytes,
// checkpoint_max_delay, hostname, the log): the agent must be stopped and
// started again.
var ErrRestart = errors.New("the change needs a restart of the whole agent")

// Reload applies cfg to the running agent, changing only what changed: an
// input whose settings, host name and outputs are unchanged keeps reading
// without a pause, and an output whose settings are unchanged keeps its
// connections and queue. A changed or removed output stops once the inputs
// routed to it stopped, after delivering what it holds (within the old
// shutdown_timeout, or until ctx is done); a changed input, or one routed
// to a changed output, is stopped likewise and started again from its
// committed offsets once those outputs are drained. Meanwhile the others
// keep reading and delivering.
//
// It returns ErrRestart, changing nothing, when cfg cannot be applied in
// place, and an error, changing nothing, when a new output cannot be
// built. Call it while Run runs.
func (a *Agent) Reload(ctx context.Context, cfg *Config) error {
	a.life.Lock()
	defer a.life.Unlock()
	old, oldInputs, oldRunners := a.running()
	if a.runCtx == nil || a.runCtx.Err() != nil {
		return errors.New("the agent is not running")
	}
	if why := needsRestart(old, cfg); why != "" {
		return fmt.Errorf("%w: %s changed", ErrRestart, why)
	}

	// Outputs: kept when their settings are the same.
	oldByID := map[string]*runner{}
	for _, r := range oldRunners {
		oldByID[r.cfg.ID] = r
	}
	byID := map[string]*runner{}
	var built, runners []*runner
	kept := map[*runner]bool{}
	for _, oc := range cfg.Outputs {
		if r := oldByID[oc.ID]; r != nil && sameOutput(r.cfg, oc) {
			byID[oc.ID] = r
			kept[r] = true
			runners = append(runners, r)
			continue
		}
		r, err := a.newRunner(oc)
		if err != nil {
			closeRunners(built)
			return err
		}
		built = append(built, r)
		byID[oc.ID] = r
		runners = append(runners, r)
	}
	var dropRunners []*runner
	for _, r := range oldRunners {
		if !kept[r] {
			dropRunners = append(dropRunners, r)
		}
	}

	// Inputs: kept when their settings are the same and every output
	// they are routed to is kept.
	oldIn := map[string]*inputRun{}
	for _, ir := range oldInputs {
		oldIn[ir.cfg.ID] = ir
	}
	host := cfg.hostname()
	keptIn := map[*inputRun]bool{}
	var inputs, fresh []*inputRun
	for i := range cfg.Inputs {
		ic := &cfg.Inputs[i]
		if ic.kind != nil {
			inputs = append(inputs, nil) // a relay: below; dropped from inputs at the end
			continue
		}
		if ir := oldIn[ic.ID]; ir != nil && sameInput(ir, cfg, ic, host, byID) {
			keptIn[ir] = true
			inputs = append(inputs, ir)
			continue
		}
		fresh = append(fresh, nil) // built once the old one let go of its files
		inputs = append(inputs, nil)
	}
	var dropInputs []*inputRun
	var dropBudgets []*file.Budget
	for _, ir := range oldInputs {
		if !keptIn[ir] {
			dropInputs = append(dropInputs, ir)
			dropBudgets = append(dropBudgets, ir.budget)
		}
	}
	// Relays likewise.
	oldRelays := a.runningRelays()
	oldRelay := map[string]*relayRun{}
	for _, rr := range oldRelays {
		oldRelay[rr.cfg.ID] = rr
	}
	keptRelay := map[*relayRun]bool{}
	var relays []*relayRun // the kept; the new are built once the old let go of their ports
	for i := range cfg.Inputs {
		ic := &cfg.Inputs[i]
		if ic.kind == nil {
			continue
		}
		if rr := oldRelay[ic.ID]; rr != nil && sameRelay(rr, cfg, ic, host, byID) {
			keptRelay[rr] = true
			relays = append(relays, rr)
		}
	}
	var dropRelays []*relayRun
	for _, rr := range oldRelays {
		if !keptRelay[rr] {
			dropRelays = append(dropRelays, rr)
		}
	}

	var keptNames, replacedNames []string
	for _, ir := range oldInputs {
		if keptIn[ir] {
			keptNames = append(keptNames, "input "+ir.cfg.ID)
		} else {
			replacedNames = append(replacedNames, "input "+ir.cfg.ID)
		}
	}
	for _, rr := range oldRelays {
		if keptRelay[rr] {
			keptNames = append(keptNames, "input "+rr.cfg.ID)
		} else {
			replacedNames = append(replacedNames, "input "+rr.cfg.ID)
		}
	}
	for _, r := range oldRunners {
		if kept[r] {
			keptNames = append(keptNames, "output "+r.cfg.ID)
		} else {
			replacedNames = append(replacedNames, "output "+r.cfg.ID)
		}
	}
	a.log.Info("reload: replacing what changed; the rest keeps running", "kept", keptNames, "replaced", replacedNames)

	// Stop what changed, and let it deliver what it read. The kept
	// inputs read on meanwhile: none of them is routed to a dropped
	// output, so nothing they publish can reach a closed queue.
	for _, ir := range dropInputs {
		ir.stop()
	}
	for _, rr := range dropRelays {
		rr.stop()
	}
	timeout := old.ShutdownTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	delivered := drainRunnersCtx(ctx, dropRunners, dropBudgets, timeout)
	if !delivered {
		a.log.Warn("reload: what the replaced inputs and outputs did not deliver in time is read again", "timeout", timeout)
	}
	if err := closeRunners(dropRunners); err != nil {
		a.log.Warn("reload: closing replaced outputs", "err", err)
	}
	for _, b := range dropBudgets {
		a.pool.Remove(b)
	}

	// Start what is new.
	a.pool.SetLimit(int64(cfg.MaxInflightBytes))
	for _, r := range built {
		r.start()
	}
	var errs []error
	for i := range cfg.Inputs {
		ic := &cfg.Inputs[i]
		if ic.kind == nil {
			continue
		}
		if rr := oldRelay[ic.ID]; rr != nil && keptRelay[rr] {
			continue
		}
		rr, err := a.newRelay(cfg, ic, host, byID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		relays = append(relays, rr)
		rr.start(a.runCtx, a.log)
	}
	j := 0
	for i := range cfg.Inputs {
		if cfg.Inputs[i].kind != nil || inputs[i] != nil {
			continue
		}
		ir := a.newInput(cfg, &cfg.Inputs[i], host, byID)
		inputs[i] = ir
		fresh[j] = ir
		j++
	}
	var fileInputs []*inputRun
	for _, ir := range inputs {
		if ir != nil {
			fileInputs = append(fileInputs, ir)
		}
	}
	a.mu.Lock()
	a.cfg, a.inputs, a.runners, a.relays = cfg, fileInputs, runners, relays
	a.mu.Unlock()
	for _, ir := range fresh {
		if ir != nil {
			ir.start(a.runCtx)
		}
	}
	a.log.Info("reload: applied", "kept", keptNames, "replaced", replacedNames)
	if len(errs) > 0 {
		return fmt.Errorf("applied, but: %w", errors.Join(errs...))
	}
	return nil
}

// drainRunnersCtx is drainRunners cut short when ctx is done.
func drainRunnersCtx(ctx context.Context, runners []*runner, budgets []*file.Budget, timeout time.Duration) bool {
	if ctx.Err() != nil {
		timeout = 0
	}
	done := make(chan bool, 1)
	stopEarly := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			for _, r := range runners {
				r.cancel()
			}
		case <-stopEarly:
		}
	}()
	go func() { done <- drainRunners(runners, budgets, max(timeout, 0)) }()
	ok := <-done
	close(stopEarly)
	return ok && ctx.Err() == nil
}

// needsRestart names what cfg changes that Reload cannot change in place,
// or returns "".
func needsRestart(old, cfg *Config) string {
	switch {
	case old.DataDir != cfg.DataDir:
		return "data_dir"
	case old.CheckpointInterval != cfg.CheckpointInterval:
		return "checkpoint_interval"
	case old.CheckpointBytes != cfg.CheckpointBytes:
		return "checkpoint_bytes"
	case old.CheckpointMaxDelay != cfg.CheckpointMaxDelay:
		return "checkpoint_max_delay"
	case old.LogLevel != cfg.LogLevel:
		return "log_level"
	case old.LogFormat != cfg.LogFormat:
		return "log_format"
	}
	return ""
}

// sameOutput reports whether an output configured as b would be the same
// as one running with a: every common and type-specific key is equal.
func sameOutput(a, b OutputConfig) bool {
	if a.ID != b.ID || a.Type != b.Type || a.Batch != b.Batch || a.MinBackoff != b.MinBackoff || a.MaxBackoff != b.MaxBackoff || a.Format != b.Format {
		return false
	}
	return reflect.DeepEqual(a.Settings(), b.Settings())
}

// sameRelay reports whether rr runs as ic of cfg would: the same settings,
// its type's own too, and the same outputs, every one of them kept.
func sameRelay(rr *relayRun, cfg *Config, ic *InputConfig, host string, byID map[string]*runner) bool {
	a, b := rr.cfg, *ic
	if a.kind == nil || b.kind == nil || !reflect.DeepEqual(a.kind.config, b.kind.config) || rr.host != host {
		return false
	}
	a.kind, b.kind = nil, nil
	if !reflect.DeepEqual(a, b) {
		return false
	}
	return sameRoute(rr.route, cfg.routes(ic), byID)
}

func sameRoute(route []*runner, ids []string, byID map[string]*runner) bool {
	if len(ids) != len(route) {
		return false
	}
	for i, id := range ids {
		if byID[id] != route[i] {
			return false
		}
	}
	return true
}

// sameInput reports whether ir runs as ic of cfg would: the same settings
// and the same outputs, every one of them kept (in byID).
func sameInput(ir *inputRun, cfg *Config, ic *InputConfig, host string, byID map[string]*runner) bool {
	fc, was := cfg.fileConfig(ic, host), ir.fc
	fc.OnBacklog, was.OnBacklog = nil, nil // a func is never DeepEqual
	fc.Multiline, was.Multiline = nil, nil // compared as written, below
	// The filters' and multiline's patterns are compared as written
	// (IncludeLines, ExcludeLines, Multiline), not as compiled.
	now, before := *ic, ir.cfg
	now.include, now.exclude, before.include, before.exclude = nil, nil, nil, nil
	now.multiline, before.multiline = nil, nil
	if !reflect.DeepEqual(before, now) || !reflect.DeepEqual(fc, was) {
		return false
	}
	return sameRoute(ir.route, cfg.routes(ic), byID)
}

// runningRunners returns the runners running now.
func (a *Agent) runningRunners() []*runner {
	_, _, runners := a.running()
	return runners
}
