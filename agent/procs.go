package agent

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// Procs sets how many threads run the agent's Go code at once (GOMAXPROCS).
//
// An agent mostly waits: for an fsnotify event, a read, a write. With several
// Ps, each hand-off between its goroutines (fsnotify, input, harvester,
// output) wakes another thread that finds little to do, and that costs more
// than the work: extra Ps add CPU time without adding speed. So with
// max_procs 0 (the default) the agent runs on one P while it uses less than
// procsUpCores of a core, and on as many as the runtime would use by
// default (the CPUs, or the container's CPU limit) while work that can use
// them (compressing for Kafka, many outputs) keeps it busier than that, or
// at once when an input finds a file far behind (Backlog): a backfill can
// be over before a busy second is seen, and it reads faster on several Ps.
// It goes back to one P after procsDownAfter below procsDownCores.
// With max_procs N it runs on N. A GOMAXPROCS environment variable wins over
// both; Run then still tunes GOGC (gc.go) and returns the memory of a busy
// spell. A GOGC or GOMEMLIMIT variable turns the GOGC tuning off; with both
// kinds set, Run does nothing.
//
// Procs acts on the whole process: the command runs it, not Agent, so that
// tests running agents in one process keep their Ps.
type Procs struct {
	log     atomic.Pointer[slog.Logger] // the running config's
	fixed   atomic.Int64                // max_procs: 0 for automatic
	env     bool                        // GOMAXPROCS is set in the environment
	backlog chan struct{}               // Backlog's signal to Run
}

const (
	procsUpCores   = 0.75
	procsDownCores = 0.35
	procsDownAfter = 10 // seconds
)

// NewProcs returns a Procs for the config's max_procs, logging to log.
func NewProcs(cfg *Config, log *slog.Logger) *Procs {
	p := &Procs{env: os.Getenv("GOMAXPROCS") != "", backlog: make(chan struct{}, 1)}
	p.Set(cfg, log)
	return p
}

// Set applies a reloaded config's max_procs and logger.
func (p *Procs) Set(cfg *Config, log *slog.Logger) {
	p.log.Store(log)
	p.fixed.Store(int64(cfg.MaxProcs))
	if p.env {
		return
	}
	if cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	} else {
		runtime.GOMAXPROCS(1)
	}
}

// Backlog tells Run that a file is far behind: work is waiting that more Ps
// would finish sooner. It does not block; inputs call it as they take a
// large read block.
func (p *Procs) Backlog() {
	select {
	case p.backlog <- struct{}{}:
	default:
	}
}

// Start runs Run on a goroutine of its own; stop ends it and waits for it.
func (p *Procs) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Run samples the process's CPU time every second and sets GOMAXPROCS, and
// GOGC (see gc.go), until ctx is done; it then leaves the runtime's
// defaults.
func (p *Procs) Run(ctx context.Context) {
	autoProcs, tuneGC := !p.env, gcTunable()
	if !autoProcs && !tuneGC {
		return
	}
	if tuneGC {
		defer debug.SetGCPercent(100)
	}
	if autoProcs {
		defer runtime.SetDefaultGOMAXPROCS()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var s procsState
	var mem memState
	var gc gcState
	lastCPU, lastAt := processCPU(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.backlog:
			if autoProcs && p.fixed.Load() == 0 && runtime.GOMAXPROCS(0) == 1 {
				s = procsState{}
				runtime.SetDefaultGOMAXPROCS()
				p.log.Load().Debug("backlog: more threads run Go code", "gomaxprocs", runtime.GOMAXPROCS(0))
			}
		case now := <-tick.C:
			cpu := processCPU()
			cores := (cpu - lastCPU).Seconds() / now.Sub(lastAt).Seconds()
			lastCPU, lastAt = cpu, now
			if tuneGC {
				gc.tune(p.log.Load()) // first: a collection below then has its goal
			}
			if mem.next(cores) {
				debug.FreeOSMemory()
			}
			if !autoProcs || p.fixed.Load() > 0 {
				s = procsState{}
				continue
			}
			cur := runtime.GOMAXPROCS(0)
			switch s.next(cur > 1, cores) {
			case procsRaise:
				runtime.SetDefaultGOMAXPROCS()
				p.log.Load().Debug("busy: more threads run Go code", "cores", cores, "gomaxprocs", runtime.GOMAXPROCS(0))
			case procsLower:
				runtime.GOMAXPROCS(1)
				p.log.Load().Debug("quiet again: one thread runs Go code", "cores", cores)
			}
		}
	}
}

// memState returns the memory of a busy spell to the system once it is
// over: a start-up that reads ten thousand files, or a backfill, fills
// read buffers up to max_inflight_bytes and grows the heap, whose pages
// the runtime would otherwise keep (up to twice the heap of then) long
// after they are garbage. Once the agent has been quiet (below
// procsDownCores) for procsDownAfter seconds in a row after a second of
// procsDownCores or more, it collects and returns what is free, once: one
// collection, far less work than the spell.
type memState struct {
	busy  bool
	quiet int
}

// next takes the cores used in the last second and reports whether to
// return the memory now.
func (m *memState) next(cores float64) (release bool) {
	switch {
	case cores >= procsDownCores:
		m.busy, m.quiet = true, 0
	case !m.busy:
	default:
		if m.quiet++; m.quiet >= procsDownAfter {
			m.busy, m.quiet = false, 0
			return true
		}
	}
	return false
}

type procsChange int

const (
	procsKeep procsChange = iota
	procsRaise
	procsLower
)

// procsState decides, from the CPU used each second, when to change the
// number of Ps: raise after one busy second, lower after procsDownAfter
// quiet ones in a row.
type procsState struct {
	quiet int // seconds in a row below procsDownCores while raised
}

func (s *procsState) next(raised bool, cores float64) procsChange {
	if !raised {
		s.quiet = 0
		if cores >= procsUpCores {
			return procsRaise
		}
		return procsKeep
	}
	if cores >= procsDownCores {
		s.quiet = 0
		return procsKeep
	}
	s.quiet++
	if s.quiet < procsDownAfter {
		return procsKeep
	}
	s.quiet = 0
	return procsLower
}

// processCPU returns the CPU time (user and system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
