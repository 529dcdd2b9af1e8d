package file

import (
	"context"
	"log/slog"
)

// Problems met while discovering files (a file that cannot be read, a link
// refused, a directory that cannot be watched) are logged once per path
// and in one line per kind per scan, however many files share them.

// reportOnce logs a problem that a rescan retries, once per key until
// clearReported; through the problem log, so that many files with the
// same problem make one line.
func (in *Input) reportOnce(key, msg string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.reported[key] {
		in.reported[key] = true
		in.problems.add(slog.LevelWarn, msg, args)
	}
}

// note logs, once per key, a problem that only a change of the file or
// its directory mends (a link not followed, a FIFO).
func (in *Input) note(key string, level slog.Level, msg string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.noted[key] {
		in.noted[key] = true
		in.problems.add(level, msg, args)
	}
}

// flushProblems logs the problems gathered since the last flush.
func (in *Input) flushProblems() {
	in.mu.Lock()
	groups := in.problems.take()
	in.mu.Unlock()
	for _, g := range groups {
		if g.count == 1 {
			in.log.Log(context.Background(), g.level, g.msg, g.args...)
			continue
		}
		args := []any{"count", g.count, "examples", g.examples}
		for i := 0; i+1 < len(g.args); i += 2 {
			if k, _ := g.args[i].(string); k != "path" && k != "dir" {
				args = append(args, "first_"+k, g.args[i+1])
			}
		}
		in.log.Log(context.Background(), g.level, g.msg, args...)
	}
}

// problemLog gathers problems of one kind (message) so that a scan
// meeting 20,000 looping links, or running out of inotify watches for
// 3,000 directories, logs one line for each kind: how many, and a few
// examples. Guarded by in.mu.
type problemLog struct {
	groups []*problemGroup
}

type problemGroup struct {
	level    slog.Level
	msg      string
	args     []any // of the first
	count    int
	examples []any // paths or directories, the first few
}

// maxProblemExamples is how many paths a summary names.
const maxProblemExamples = 5

func (p *problemLog) add(level slog.Level, msg string, args []any) {
	var g *problemGroup
	for _, x := range p.groups {
		if x.msg == msg {
			g = x
			break
		}
	}
	if g == nil {
		g = &problemGroup{level: level, msg: msg, args: args}
		p.groups = append(p.groups, g)
	}
	g.count++
	if len(g.examples) < maxProblemExamples {
		for i := 0; i+1 < len(args); i += 2 {
			if k, _ := args[i].(string); k == "path" || k == "dir" {
				g.examples = append(g.examples, args[i+1])
				break
			}
		}
	}
}

func (p *problemLog) take() []*problemGroup {
	g := p.groups
	p.groups = nil
	return g
}

func (in *Input) clearReported(key string) {
	in.mu.Lock()
	delete(in.reported, key)
	delete(in.noted, key)
	in.mu.Unlock()
}
