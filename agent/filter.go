package agent

import (
	"regexp"
	"sync/atomic"

	"github.com/logagent/logagent"
)

// lineFilter applies an input's include_lines and exclude_lines to whole
// messages as they are published: a message is kept if include_lines is
// empty or one of its patterns matches, and none of exclude_lines does.
// The input still tracks the chunk's end offset, so a dropped message is
// committed past like a delivered one.
type lineFilter struct {
	// immutable after newLineFilter
	include, exclude []*regexp.Regexp
	// atomic
	dropped atomic.Int64
}

// newLineFilter returns the filter of in, or nil when it has none.
func newLineFilter(in *InputConfig) *lineFilter {
	if len(in.include) == 0 && len(in.exclude) == 0 {
		return nil
	}
	return &lineFilter{include: in.include, exclude: in.exclude}
}

// keep reports whether body is shipped. Each pattern is tried on its own:
// Go's regexp finds a pattern's literal prefix (ERROR, "DEBUG") with a fast
// substring search, which an alternation of several patterns would lose.
func (f *lineFilter) keep(body []byte) bool {
	if len(f.include) > 0 && !matchAny(f.include, body) {
		return false
	}
	return !matchAny(f.exclude, body)
}

func matchAny(res []*regexp.Regexp, body []byte) bool {
	for _, re := range res {
		if re.Match(body) {
			return true
		}
	}
	return false
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
