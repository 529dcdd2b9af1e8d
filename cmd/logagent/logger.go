package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/logagent/logagent/agent"
)

// newLogger returns the logger cfg asks for, its warnings and errors going
// through lim.
func newLogger(cfg *agent.Config, w io.Writer, lim *limiter) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if logFormat(cfg.LogFormat) == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if lim != nil {
		h = lim.wrap(h)
	}
	return slog.New(h)
}

// logFormat resolves auto: JSON under systemd (the journal stores one
// record per line and keeps its fields), text elsewhere.
func logFormat(format string) string {
	if format == "auto" {
		if os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != "" {
			return "json"
		}
		return "text"
	}
	return format
}

// limitKeys are the attributes that tell apart the things a warning is
// about: two records with the same message about different files or
// outputs are not "identical".
var limitKeys = map[string]bool{
	"output": true, "input": true, "path": true, "host": true, "addr": true,
	"file": true, "dir": true, "broker": true, "topic": true,
}

// limiter rate-limits warnings and errors so that a flapping output or an
// unreadable file does not flood the journal: of the records with the same
// level, message and limitKeys attributes, burst pass per window; the rest
// are counted, and one summary record per key tells how many were
// suppressed once the window is over. Records below warning level pass.
//
// There is no timer: summaries are written by the next record logged after
// the window ends (any record, checked at most once a second), and by
// flush.
type limiter struct {
	burst  int
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	keys      map[string]*limitEntry
	lastSweep time.Time
}

type limitEntry struct {
	start   time.Time
	count   int
	dropped int
	level   slog.Level
	msg     string
	attrs   []slog.Attr  // the record's own limitKeys attributes
	h       slog.Handler // the handler it came through, with its attributes
}

func newLimiter(burst int, window time.Duration) *limiter {
	return &limiter{burst: burst, window: window, now: time.Now, keys: map[string]*limitEntry{}}
}

func (l *limiter) wrap(h slog.Handler) slog.Handler { return &limitHandler{next: h, l: l} }

type limitHandler struct {
	next slog.Handler
	l    *limiter
	key  string // limitKeys attributes added by WithAttrs
}

func (h *limitHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *limitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	key := h.key
	for _, a := range attrs {
		if limitKeys[a.Key] {
			key += "\x00" + a.Key + "=" + a.Value.String()
		}
	}
	return &limitHandler{next: h.next.WithAttrs(attrs), l: h.l, key: key}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), l: h.l, key: h.key}
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	l := h.l
	now := l.now()
	l.mu.Lock()
	summaries := l.sweep(now, false)
	pass := true
	if r.Level >= slog.LevelWarn {
		var own []slog.Attr
		key := r.Level.String() + "\x00" + r.Message + h.key
		r.Attrs(func(a slog.Attr) bool {
			if limitKeys[a.Key] {
				key += "\x00" + a.Key + "=" + a.Value.String()
				own = append(own, a)
			}
			return true
		})
		e := l.keys[key]
		if e != nil && now.Sub(e.start) >= l.window {
			if s, ok := e.summary(now, l.window); ok {
				summaries = append(summaries, s)
			}
			e = nil
		}
		if e == nil {
			e = &limitEntry{start: now, level: r.Level, msg: r.Message, attrs: own, h: h.next}
			l.keys[key] = e
		}
		e.count++
		if e.count > l.burst {
			e.dropped++
			pass = false
		}
	}
	l.mu.Unlock()
	for _, s := range summaries {
		s.h.Handle(ctx, s.r)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

type pendingSummary struct {
	h slog.Handler
	r slog.Record
}

// summary returns the record telling how many records of e were dropped,
// if any were.
func (e *limitEntry) summary(now time.Time, window time.Duration) (pendingSummary, bool) {
	if e.dropped == 0 {
		return pendingSummary{}, false
	}
	r := slog.NewRecord(now, e.level, "identical log records suppressed", 0)
	r.AddAttrs(slog.String("message", e.msg), slog.Int("suppressed", e.dropped),
		slog.Duration("since", now.Sub(e.start).Round(time.Second)))
	r.AddAttrs(e.attrs...)
	return pendingSummary{h: e.h, r: r}, true
}

// sweep ends the windows that are over, returning their summaries; at most
// once a second unless all is set. l.mu is held.
func (l *limiter) sweep(now time.Time, all bool) []pendingSummary {
	if !all && now.Sub(l.lastSweep) < time.Second {
		return nil
	}
	l.lastSweep = now
	var out []pendingSummary
	for k, e := range l.keys {
		if all || now.Sub(e.start) >= l.window {
			if s, ok := e.summary(now, l.window); ok {
				out = append(out, s)
			}
			delete(l.keys, k)
		}
	}
	return out
}

// flush writes the summaries of every window, finished or not: at exit.
func (l *limiter) flush() {
	l.mu.Lock()
	summaries := l.sweep(l.now(), true)
	l.mu.Unlock()
	for _, s := range summaries {
		s.h.Handle(context.Background(), s.r)
	}
}

// oneLine joins the lines of a multi-line error (one per config problem)
// for a log attribute.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
