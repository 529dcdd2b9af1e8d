package multiline

import (
	"regexp"
	"regexp/syntax"
)

// firstBytes returns the bytes a line must begin with for re to match it,
// or nil when re does not say (it is not anchored at the start of the
// line, or may match an empty line). With a start pattern such as
// '^\d{4}-', most lines of a stack trace are ruled out by their first byte
// without running the regexp. Bytes of 0x80 and more are always allowed:
// they begin runes of several bytes, or invalid UTF-8 that the regexp
// reads as U+FFFD.
func firstBytes(re *regexp.Regexp) *[256]bool {
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil
	}
	var set [256]bool
	for b := 0x80; b < 256; b++ {
		set[b] = true
	}
	// Walk the instructions reachable without reading a byte. Each is
	// visited once per anchored state: reached before or after the start
	// of the line is asserted.
	type state struct {
		pc       uint32
		anchored bool
	}
	seen := map[state]bool{}
	stack := []state{{uint32(prog.Start), false}}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		inst := &prog.Inst[s.pc]
		switch inst.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, state{inst.Out, s.anchored}, state{inst.Arg, s.anchored})
		case syntax.InstCapture, syntax.InstNop:
			stack = append(stack, state{inst.Out, s.anchored})
		case syntax.InstEmptyWidth:
			// At a line's first byte only the start assertions hold
			// for sure (a line holds no newline).
			op := syntax.EmptyOp(inst.Arg)
			if op&^(syntax.EmptyBeginLine|syntax.EmptyBeginText) != 0 {
				return nil
			}
			stack = append(stack, state{inst.Out, true})
		case syntax.InstMatch:
			return nil // matches without reading a byte: any line
		case syntax.InstFail:
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			if !s.anchored {
				return nil // the match may begin anywhere in the line
			}
			for b := 0; b < 0x80; b++ {
				if inst.MatchRune(rune(b)) {
					set[b] = true
				}
			}
		default:
			return nil
		}
	}
	return &set
}
