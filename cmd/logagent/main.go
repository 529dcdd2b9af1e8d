// Command logagent tails log files and ships every line to Scribe, Flume,
// Kestrel, Kafka, files or stdout, at least once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/logagent/logagent/agent"
)

// Stamped at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

const usage = `logagent tails log files and ships every line, at least once.

Usage:
  logagent [-c FILE]              run until SIGTERM or SIGINT
  logagent [-c FILE] --dry-run    check the config, show what would be read and sent
  logagent status [--addr HOST:PORT] [-c FILE] [--once]
                                  show files, offsets and outputs of a running agent
  logagent --version

Signals: SIGHUP reloads the config (an invalid one is refused and the
running one stays); SIGTERM or SIGINT stops reading, delivers what was read
within shutdown_timeout, writes the checkpoint and exits 0; a second one,
2s or more after the first, exits at once with 1 (lines not delivered are
read again at the next start).

Exit codes: 0 stopped cleanly, or --dry-run found no error; 1 invalid
config, cannot start, stopped with errors, exited on a second signal, or
--dry-run found an error; 2 bad command line.

Options:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("logagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath string
		dryRun     bool
		quiet      bool
		showVer    bool
		messages   int
	)
	fs.StringVar(&configPath, "c", agent.DefaultConfigPath, "configuration `file`")
	fs.StringVar(&configPath, "config", agent.DefaultConfigPath, "configuration `file` (same as -c)")
	fs.BoolVar(&dryRun, "dry-run", false, "validate the config, list files, outputs and first messages; send and write nothing")
	fs.BoolVar(&quiet, "quiet", false, "with --dry-run: print only problems")
	fs.IntVar(&messages, "messages", 5, "with --dry-run: how many messages to show per input")
	fs.BoolVar(&showVer, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nThe configuration is documented in config.example.yaml (installed under /usr/share/doc/logagent).\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logagent: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if showVer {
		fmt.Fprintf(stdout, "logagent %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	}

	// Signals are taken from the start, before the config is read: a
	// SIGTERM that comes while the agent starts stops it cleanly once it
	// runs, rather than killing it with Go's default action.
	var sigs chan os.Signal
	if !dryRun {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(sigs)
	}
	cfg, err := agent.Load(configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if dryRun {
		if err := agent.DryRun(context.Background(), cfg, stdout, agent.DryRunOptions{Messages: messages, Quiet: quiet}); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}

	lim := newLimiter(5, time.Minute)
	defer lim.flush()
	s := &service{path: configPath, stderr: stderr, lim: lim, sigs: sigs}
	return s.run(cfg)
}
