// Command logagent tails log files and ships every line to Scribe, Flume,
// Kestrel, Kafka, files or stdout, at least once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

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
  logagent --version

Options:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
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

	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	go func() {
		// A second signal exits at once. Nothing is lost: offsets of what
		// was not delivered were never committed.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
		<-again
		log.Warn("second signal: exiting now; undelivered lines are sent again at the next start")
		os.Exit(1)
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with errors", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg *agent.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "text"
		if os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != "" {
			format = "json" // under systemd
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
