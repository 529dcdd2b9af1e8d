package file

import (
	"container/heap"
	"time"
)

// An idle file costs no goroutine: its harvester parks, holding its
// descriptor, offset and identity, and is run again on a goroutine of its
// own when fsnotify reports its file (signal) or its next poll is due
// (pollDue). With thousands of files written now and then, the agent holds
// thousands of descriptors but only as many goroutines and timers as files
// being read.

// park parks h, whose goroutine then returns, with its next poll in d. It
// returns false, and h goes on running, when a signal came in meanwhile or
// the input is stopping.
func (in *Input) park(h *harvester, d time.Duration) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	select {
	case <-h.wake:
		return false // signalled since the last look: look again
	default:
	}
	if in.stopping || h.ctx.Err() != nil {
		return false
	}
	h.parked = true
	h.parkGen++
	heap.Push(&in.polls, pollAt{due: time.Now().Add(d), h: h, gen: h.parkGen})
	return true
}

// unparkLocked runs the parked harvester h again. in.mu is held.
func (in *Input) unparkLocked(h *harvester) {
	if in.stopping {
		return
	}
	h.parked = false
	h.parkGen++ // its queued poll is stale now
	in.wg.Add(1)
	go h.loop()
}

// pollDue runs the parked harvesters whose poll is due at now.
func (in *Input) pollDue(now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(in.polls) > 0 && !in.polls[0].due.After(now) {
		p := heap.Pop(&in.polls).(pollAt)
		if p.h.parked && p.h.parkGen == p.gen {
			in.unparkLocked(p.h)
		}
	}
}

// signalAll wakes every harvester, after fsnotify lost events.
func (in *Input) signalAll() {
	in.mu.Lock()
	hs := make([]*harvester, 0, len(in.byInode))
	for _, h := range in.byInode {
		hs = append(hs, h)
	}
	in.mu.Unlock()
	for _, h := range hs {
		h.signal()
	}
}

// closeParked stops the input's harvesters once Run is done: it waits for
// those running, which return as ctx is done, then closes the parked ones,
// which no goroutine holds.
func (in *Input) closeParked() {
	in.mu.Lock()
	in.stopping = true
	in.mu.Unlock()
	in.wg.Wait()
	in.mu.Lock()
	var parked []*harvester
	for _, h := range in.byInode {
		if h.parked {
			parked = append(parked, h)
		}
	}
	in.polls = nil
	in.mu.Unlock()
	for _, h := range parked {
		h.cancel()
		h.close()
	}
}

// pollAt is a parked harvester's next poll; gen is h.parkGen when queued.
type pollAt struct {
	due time.Time
	h   *harvester
	gen uint64
}

// pollQueue is a min-heap of polls by due time. A harvester woken by a
// signal leaves its poll queued, stale, until it falls due.
type pollQueue []pollAt

func (q pollQueue) Len() int           { return len(q) }
func (q pollQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q pollQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pollQueue) Push(x any)        { *q = append(*q, x.(pollAt)) }
func (q *pollQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = pollAt{}
	*q = old[:len(old)-1]
	return p
}
