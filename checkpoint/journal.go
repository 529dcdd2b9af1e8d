package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// journalLine is one line of a journal: exactly one of its fields is set.
type journalLine struct {
	Set    *Entry `json:"set"`
	Del    *Key   `json:"del"`
	Commit *int   `json:"commit"`
}

func parseLine(line []byte) (journalLine, error) {
	var l journalLine
	if err := json.Unmarshal(line, &l); err != nil {
		return l, err
	}
	n := 0
	for _, set := range []bool{l.Set != nil, l.Del != nil, l.Commit != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return l, errors.New(`not one of "set", "del" or "commit"`)
	}
	if l.Set != nil {
		if err := validEntry(*l.Set); err != nil {
			return l, err
		}
	}
	return l, nil
}

// replay applies to entries, read from the snapshot, the flushes committed
// in the journal at path, whose content is data, and returns the result
// sorted by compareEntries. The last line may be torn (no newline, or it
// does not parse) and records after the last commit belong to a flush that
// never completed: both are ignored. Any other line that does not parse is
// a *CorruptError.
func replay(path string, data []byte, entries []Entry) ([]Entry, error) {
	state := make(map[Key]Entry, len(entries))
	for _, e := range entries {
		state[e.Key()] = e
	}
	var pending []journalLine // the records of the flush being read
	for n := 1; len(data) > 0; n++ {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			break // torn
		}
		line := data[:end]
		data = data[end+1:]
		l, err := parseLine(line)
		if err != nil {
			if len(data) == 0 {
				break // torn
			}
			return nil, &CorruptError{Path: path, Err: fmt.Errorf("line %d: %w", n, err)}
		}
		if l.Commit == nil {
			pending = append(pending, l)
			continue
		}
		if *l.Commit != len(pending) {
			return nil, &CorruptError{Path: path, Err: fmt.Errorf("line %d: commit of %d records after %d", n, *l.Commit, len(pending))}
		}
		for _, r := range pending {
			if r.Set != nil {
				state[r.Set.Key()] = *r.Set
			} else {
				delete(state, *r.Del)
			}
		}
		pending = pending[:0]
	}
	out := make([]Entry, 0, len(state))
	for _, e := range state {
		out = append(out, e)
	}
	slices.SortFunc(out, compareEntries)
	return out, nil
}
