package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/logagent/logagent/agent"
)

// service runs one agent at a time: SIGHUP swaps it for one built from the
// reloaded config, SIGTERM and SIGINT stop it.
type service struct {
	path   string
	stderr io.Writer
	lim    *limiter
	log    *slog.Logger

	listener *httpListener  // nil when http: is absent
	handler  switchHandler  // serves the running agent's /metrics, /status, /healthz
	sigs     chan os.Signal // SIGTERM, SIGINT, SIGHUP, notified by the caller of run
	stopping bool           // a SIGTERM or SIGINT was received
	stopAt   time.Time      // when the first one was
}

// signalGrace is how long after the first SIGTERM or SIGINT a second one
// is taken as a copy of the first, not as "exit now": timeout(1) signals
// the agent, then its process group, and a shell's Ctrl-C reaches a
// script and the agent alike.
const signalGrace = 2 * time.Second

// stop records the first SIGTERM or SIGINT.
func (s *service) stop() {
	if !s.stopping {
		s.stopping, s.stopAt = true, time.Now()
	}
}

// stopSignal takes a SIGTERM or SIGINT that came while the agent reloads
// or drains, and reports whether it is the first (the caller then stops).
// A copy within signalGrace of the first is logged; a later one exits at
// once (exit code 1): the offsets of what was not delivered were never
// committed, so nothing is lost.
func (s *service) stopSignal(sig os.Signal) (first bool) {
	switch {
	case !s.stopping:
		s.stop()
		return true
	case time.Since(s.stopAt) < signalGrace:
		s.log.Info("signal repeated right after the first (as timeout(1) sends it to the process group too): still delivering; send it again to exit at once", "signal", sig.String())
	default:
		s.log.Warn("second signal: exiting now; undelivered lines are sent again at the next start", "signal", sig.String())
		s.lim.flush()
		os.Exit(1)
	}
	return false
}

// run runs cfg, and the configs SIGHUP loads, until SIGTERM or SIGINT. It
// returns the exit code.
func (s *service) run(cfg *agent.Config) int {
	s.log = newLogger(cfg, s.stderr, s.lim)
	if err := s.setListener(cfg); err != nil {
		s.log.Error("cannot start", "err", err)
		return 1
	}
	defer s.closeListener()

	procs := agent.NewProcs(cfg, s.log)
	defer procs.Start()()

	var previous *agent.Config // the last config that ran, to fall back to
	for {
		a, err := agent.New(cfg, s.log)
		if err != nil {
			if previous == nil {
				s.log.Error("cannot start", "file", cfg.File, "err", err)
				return 1
			}
			s.log.Error("reload: the new configuration cannot start; starting the previous one again", "file", cfg.File, "err", err)
			cfg, previous = previous, nil
			s.log = newLogger(cfg, s.stderr, s.lim)
			procs.Set(cfg, s.log)
			if err := s.setListener(cfg); err != nil {
				s.log.Error("http listener", "err", err)
			}
			continue
		}
		a.OnBacklog(procs.Backlog)
		s.handler.set(a.Handler(agent.BuildInfo(version, commit, runtime.Version())))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()

		next, early, runErr := s.waitSignal(done)
		for next != nil && !early {
			// In place: what did not change keeps running.
			err := s.reload(a, next, cancel)
			if err == nil {
				cfg = next
				procs.Set(cfg, s.log)
				if err := s.setListener(cfg); err != nil {
					s.log.Error("reload: http listener", "err", err)
				}
			} else if !errors.Is(err, agent.ErrRestart) {
				s.log.Error("reload: the new configuration cannot start; the running one stays", "file", next.File, "err", err)
			} else {
				s.log.Info("reload: restarting the whole agent", "why", err.Error())
				break
			}
			if s.stopping {
				next = nil
				break
			}
			next, early, runErr = s.waitSignal(done)
		}
		cancel()
		if early {
			if runErr == nil {
				runErr = errors.New("the agent stopped by itself")
			}
		} else {
			runErr = s.drain(done)
		}
		if s.stopping || early {
			if runErr != nil {
				s.log.Error("stopped with errors", "err", runErr)
				return 1
			}
			return 0
		}
		if runErr != nil {
			s.log.Error("reload: the old configuration stopped with errors", "err", runErr)
		}
		previous, cfg = cfg, next
		s.log = newLogger(cfg, s.stderr, s.lim)
		procs.Set(cfg, s.log)
		if err := s.setListener(cfg); err != nil {
			s.log.Error("reload: http listener", "err", err)
		}
		s.log.Info("reload: starting the new configuration", "file", cfg.File)
	}
}

// waitSignal waits for SIGTERM or SIGINT (next nil, s.stopping set) or for
// a SIGHUP with a valid config (next is it). An invalid config is logged
// and the wait goes on. early is set if the agent returned by itself, with
// what it returned.
func (s *service) waitSignal(done <-chan error) (next *agent.Config, early bool, err error) {
	for {
		select {
		case sig := <-s.sigs:
			if sig != syscall.SIGHUP {
				s.log.Info("stopping on signal", "signal", sig.String())
				s.stop()
				return nil, false, nil
			}
			cfg, lerr := agent.Load(s.path)
			if lerr != nil {
				s.log.Error("reload refused: invalid configuration; the running one stays", "file", s.path, "err", oneLine(lerr))
				continue
			}
			s.log.Info("reload: configuration is valid", "file", s.path)
			return cfg, false, nil
		case err := <-done:
			return nil, true, err // Run returns only once its context is done: unexpected
		}
	}
}

// reload applies next to the running agent a in place (Agent.Reload),
// handling signals meanwhile: a SIGTERM or SIGINT cuts the reload short
// (stop cancels the agent) and stops.
func (s *service) reload(a *agent.Agent, next *agent.Config, stop context.CancelFunc) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Reload(ctx, next) }()
	for {
		select {
		case err := <-done:
			return err
		case sig := <-s.sigs:
			if sig == syscall.SIGHUP {
				s.log.Warn("SIGHUP ignored: the previous reload is still being applied")
				continue
			}
			if s.stopSignal(sig) {
				s.log.Info("stopping on signal; the reload is cut short", "signal", sig.String())
				cancel()
			}
		}
	}
}

// drain waits for the stopping agent to return, taking signals meanwhile
// (stopSignal).
func (s *service) drain(done <-chan error) error {
	for {
		select {
		case err := <-done:
			return err
		case sig := <-s.sigs:
			if sig == syscall.SIGHUP {
				s.log.Warn("SIGHUP ignored: the running configuration is still stopping")
			} else if s.stopSignal(sig) {
				s.log.Info("stopping on signal; the reload is cancelled", "signal", sig.String())
			}
		}
	}
}

// setListener starts, moves or stops the HTTP listener to match cfg.
func (s *service) setListener(cfg *agent.Config) error {
	want := ""
	if cfg.HTTP != nil {
		want = cfg.HTTP.Listen
	}
	if s.listener != nil && s.listener.addr == want {
		return nil
	}
	s.closeListener()
	if want == "" {
		return nil
	}
	l, err := listenHTTP(want, &s.handler)
	if err != nil {
		return err
	}
	s.listener = l
	s.log.Info("serving /metrics, /healthz and /status", "addr", l.ln.Addr().String())
	return nil
}

func (s *service) closeListener() {
	if s.listener != nil {
		s.listener.close()
		s.listener = nil
	}
}

// switchHandler serves the handler of the agent running now.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (sw *switchHandler) set(h http.Handler) { sw.h.Store(&h) }

func (sw *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := sw.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

type httpListener struct {
	addr string // as configured
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func listenHTTP(addr string, h http.Handler) (*httpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err // names the address already
	}
	srv, limited := agent.NewServer(ln, h)
	l := &httpListener{addr: addr, ln: ln, done: make(chan struct{}), srv: srv}
	go func() {
		defer close(l.done)
		l.srv.Serve(limited)
	}()
	return l, nil
}

func (l *httpListener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l.srv.Shutdown(ctx) != nil {
		l.srv.Close()
	}
	<-l.done
}
