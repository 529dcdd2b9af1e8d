package agent

import (
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/logagent/logagent"
)

// lineFilter applies an input's include_lines and exclude_lines to whole
// messages as they are published: a message is kept if include_lines is
// empty or one of its patterns matches, and none of exclude_lines does.
// The input still tracks the chunk's end offset, so a dropped message is
// committed past like a delivered one.
type lineFilter struct {
	// immutable after newLineFilter; nil for no pattern
	include, exclude *regexp.Regexp
	// atomic
	dropped atomic.Int64
}

// newLineFilter returns the filter of in, or nil when it has none.
func newLineFilter(in *InputConfig) *lineFilter {
	if len(in.include) == 0 && len(in.exclude) == 0 {
		return nil
	}
	return &lineFilter{include: anyOf(in.include), exclude: anyOf(in.exclude)}
}

// anyOf returns one expression that matches where one of res does: a
// message is scanned once, not once per pattern. Each is a group of its
// own, so that its flags ((?i)…) stay its own.
func anyOf(res []*regexp.Regexp) *regexp.Regexp {
	if len(res) == 0 {
		return nil
	}
	if len(res) == 1 {
		return res[0]
	}
	parts := make([]string, len(res))
	for i, re := range res {
		parts[i] = "(?:" + re.String() + ")"
	}
	return regexp.MustCompile(strings.Join(parts, "|"))
}

// keep reports whether body is shipped.
func (f *lineFilter) keep(body []byte) bool {
	if f.include != nil && !f.include.Match(body) {
		return false
	}
	return f.exclude == nil || !f.exclude.Match(body)
}

// apply removes from c, in place and in order, the messages not kept, and
// counts them.
func (f *lineFilter) apply(c *logagent.Chunk) {
	msgs := c.Messages
	n := 0
	for i := range msgs {
		if f.keep(msgs[i].Body) {
			msgs[n] = msgs[i]
			n++
		}
	}
	if n < len(msgs) {
		f.dropped.Add(int64(len(msgs) - n))
		clear(msgs[n:]) // no references into the input's buffers left behind
		c.Messages = msgs[:n]
	}
}
