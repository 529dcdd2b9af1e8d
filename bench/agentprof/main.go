// Command agentprof is logagent's run path with a CPU profile, for the
// benchmark harness only: cmd/logagent stays free of profiling switches.
// It runs the agent on -c FILE until SIGTERM or SIGINT, writing the CPU
// profile to $LOGAGENT_CPUPROFILE (and a heap profile to
// $LOGAGENT_MEMPROFILE) when set. With LOGAGENT_CPUPROFILE_WINDOW=signal
// the CPU profile covers only the time from SIGUSR1 to SIGUSR2, the
// harness's measured window, rather than the whole run, and the heap
// profile is taken at SIGUSR2.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/logagent/logagent/agent"
)

func main() {
	configPath := flag.String("c", agent.DefaultConfigPath, "configuration `file`")
	flag.Parse()
	cfg, err := agent.Load(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if p := os.Getenv("LOGAGENT_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if os.Getenv("LOGAGENT_CPUPROFILE_WINDOW") == "signal" {
			stopWindow := profileWindow(f)
			defer stopWindow()
		} else {
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// As the command runs it: the threads running Go code (one while the
	// agent is quiet) and GOGC decide much of what a profile shows.
	procs := agent.NewProcs(cfg, log)
	defer procs.Start()()
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	a.OnBacklog(procs.Backlog)
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with errors", "err", err)
	}
	if os.Getenv("LOGAGENT_CPUPROFILE_WINDOW") != "signal" {
		writeHeapProfile()
	}
}

// writeHeapProfile writes the heap profile, after a collection, to
// $LOGAGENT_MEMPROFILE if set: at the end of the run, or with a profiled
// window at its end, while the agent still holds what it holds running.
func writeHeapProfile() { writeHeapProfileAs("") }

// writeHeapProfileAs writes the heap profile to $LOGAGENT_MEMPROFILE with
// suffix added: ".start" at the start of a profiled window, so that what
// the window allocated is the difference (go tool pprof
// -sample_index=alloc_space -base NAME.heap.pprof.start NAME.heap.pprof).
func writeHeapProfileAs(suffix string) {
	if p := os.Getenv("LOGAGENT_MEMPROFILE"); p != "" {
		p += suffix
		if f, err := os.Create(p); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}

// profileWindow profiles into f from SIGUSR1 to SIGUSR2. The returned
// function stops the profile if the window is still open and waits for
// the signal watcher to end.
func profileWindow(f *os.File) (stop func()) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		on := false
		for {
			select {
			case s := <-sig:
				switch {
				case s == syscall.SIGUSR1 && !on:
					writeHeapProfileAs(".start")
					if err := pprof.StartCPUProfile(f); err != nil {
						fmt.Fprintln(os.Stderr, err)
						continue
					}
					on = true
				case s == syscall.SIGUSR2 && on:
					pprof.StopCPUProfile()
					on = false
					writeHeapProfile()
				}
			case <-done:
				if on {
					pprof.StopCPUProfile()
				}
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		wg.Wait()
	}
}
