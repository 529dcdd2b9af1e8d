package file

import (
	"os"
	"syscall"
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
	if len(h.wake) > 0 {
		return false // signalled since the last look: run's wait takes it
	}
	if in.stopping || h.ctx.Err() != nil {
		return false
	}
	h.parked = true
	in.dropWakeLocked(h)
	delete(in.busy, h)
	now := time.Now()
	if now.Sub(h.lastData) < RecentlyActive {
		in.recent[h] = struct{}{}
	}
	in.polls.schedule(h, now.Add(d))
	return true
}

// wakeChan gives h a wake channel, if it has none, and returns it.
func (in *Input) wakeChan(h *harvester) <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.wakeLocked(h)
}

// wakeLocked gives h a wake channel, if it has none, and returns it.
// in.mu is held.
func (in *Input) wakeLocked(h *harvester) chan struct{} {
	if h.wake == nil {
		if k := len(in.wakes) - 1; k >= 0 {
			h.wake = in.wakes[k]
			in.wakes[k] = nil
			in.wakes = in.wakes[:k]
		} else {
			h.wake = make(chan struct{}, 1)
		}
	}
	return h.wake
}

// dropWakeLocked takes h's wake channel, emptied of a token h no longer
// needs, for the next harvester that needs one: h is parked (a signal
// unparks it instead), or done. in.mu is held.
func (in *Input) dropWakeLocked(h *harvester) {
	if h.wake == nil {
		return
	}
	select {
	case <-h.wake:
	default:
	}
	if len(in.wakes) < maxIdleWorkers {
		in.wakes = append(in.wakes, h.wake)
	}
	h.wake = nil
}

// unparkLocked runs the parked harvester h again. in.mu is held.
func (in *Input) unparkLocked(h *harvester) {
	if in.stopping {
		return
	}
	h.parked = false
	in.busy[h] = struct{}{}
	in.polls.remove(h)
	in.runHarvester(h)
}

// maxIdleWorkers bounds the goroutines kept waiting for a harvester to
// run. They wait until the input stops: a timer to end them sooner would
// cost timer work at every hand-off. Enough for the files a pass of
// events wakes together (fifty written every few milliseconds): with
// fewer, most of them started a goroutine, and grew its stack, at every
// pass. Only as many are kept as once ran at the same time.
const maxIdleWorkers = 64

// runHarvester runs h on a goroutine: a worker that ran a harvester before
// and waits for another, if one does, or a new one. A goroutine started for
// each wake-up would grow its stack to the depth of a read and a publish
// every time, with thousands of files each written now and then; a
// worker's stack has grown once.
func (in *Input) runHarvester(h *harvester) {
	select {
	case in.idleWorker <- h:
	default:
		in.wg.Add(1)
		go in.work(h)
	}
}

// work runs h, then the harvesters runHarvester hands it, until
// maxIdleWorkers others wait already or the input stops.
func (in *Input) work(h *harvester) {
	defer in.wg.Done()
	for {
		h.loop()
		if in.idleWorkers.Add(1) > maxIdleWorkers {
			in.idleWorkers.Add(-1)
			return
		}
		select {
		case h = <-in.idleWorker:
			in.idleWorkers.Add(-1)
		case <-in.ctx.Done():
			in.idleWorkers.Add(-1)
			return
		}
	}
}

// pollDue looks at the parked harvesters whose poll is due at now. Most
// polls find nothing: one fstat shows that the file has neither grown, nor
// changed, nor been renamed or removed (each changes its size, mtime, ctime
// or link count) since the harvester looked at its end, and the harvester
// stays parked. The others run. Every fullPollEvery-th poll runs it
// anyway, to look at the content itself (a rewrite to the same size within
// one tick of the file system's clock).
func (in *Input) pollDue(now time.Time) {
	in.mu.Lock()
	var due []*harvester
	for {
		h := in.polls.popDue(now)
		if h == nil {
			break
		}
		// Taken out of the parked state while looked at: a signal
		// meanwhile leaves a token in h.wake, seen below.
		h.parked = false
		due = append(due, h)
	}
	in.mu.Unlock()
	if len(due) == 0 {
		return
	}
	quiet := make([]bool, len(due))
	var deaf []string
	for i, h := range due {
		var missed bool
		quiet[i], missed = h.quiet(now)
		if missed {
			deaf = append(deaf, h.dir) // set by quiet's dirWatched
		}
	}
	for _, dir := range deaf {
		in.deafen(dir)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, h := range due {
		woken := false
		select {
		case <-h.wake: // nil (never ready) unless signalled meanwhile
			woken = true
		default:
		}
		// pollDue runs on Run's goroutine: the input is not stopping.
		if quiet[i] && !woken && h.ctx.Err() == nil {
			h.cheapPolls++
			h.parked = true // with no wake channel: only a signal gives one, and it leaves a token (woken)
			in.polls.schedule(h, now.Add(h.idleDelay()))
			continue
		}
		in.busy[h] = struct{}{}
		in.runHarvester(h)
	}
}

// fullPollEvery is how often a poll runs the harvester even though the
// file's inode shows no change.
const fullPollEvery = 8

// missedEventAfter is how long a file in a watched directory may have
// grown, unread, before a poll takes it for an event that did not come:
// far more than Run takes to handle events queued behind a scan.
const missedEventAfter = 5 * time.Second

// quiet reports whether the parked file h has nothing new at now: its
// inode is as the harvester last saw it at its end, and it is not due to
// be closed as inactive. missed reports that the file, under a watched
// directory, grew at least missedEventAfter ago and no event woke it.
func (h *harvester) quiet(now time.Time) (quiet, missed bool) {
	fi, err := h.f.Stat()
	if err != nil {
		return false, false
	}
	if fi.Size() > h.offset && h.state == stateActive && now.Sub(fi.ModTime()) >= missedEventAfter && h.dirWatched() {
		missed = true
	}
	if h.cheapPolls+1 >= fullPollEvery || h.eventDue(now) {
		return false, missed
	}
	if ci := h.env.closeInactive; ci > 0 && now.Sub(h.lastData) >= ci {
		return false, missed
	}
	if fi.Size() != h.offset || sigOf(fi) != h.seen {
		return false, missed
	}
	// Unchanged since the last look: the content read is still there.
	h.intactAt.Store(now.UnixNano())
	return true, false
}

// statSig is what of a file's inode changes when it is written, truncated,
// renamed or removed, but its size: the times in unix nanos.
type statSig struct {
	mtime, ctime int64
	nlink        uint64
}

func sigOf(fi os.FileInfo) statSig {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statSig{}
	}
	return statSig{mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), nlink: uint64(st.Nlink)}
}

// closeParked stops the input's harvesters once Run is done: it cancels
// every one (their contexts are not the input's children, see harvestCtx)
// and waits for those running, which return, then closes the parked ones,
// which no goroutine holds. No harvester starts once it began (stopping).
func (in *Input) closeParked() {
	in.mu.Lock()
	in.stopping = true
	all := make([]*harvester, 0, len(in.byInode))
	for _, h := range in.byInode {
		all = append(all, h)
	}
	in.mu.Unlock()
	for _, h := range all {
		h.cancel()
	}
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

// pollQueue is a min-heap of parked harvesters by the time of their next
// poll: one entry per harvester (at h.pollIdx), removed when a signal
// wakes it. The times are kept in the entries, not read through the
// harvesters: with thousands of files, each comparison would otherwise be
// a cache miss.
type pollQueue []pollEntry

type pollEntry struct {
	due int64 // unix nanoseconds
	h   *harvester
}

// schedule queues h's next poll at due, or moves it there.
func (q *pollQueue) schedule(h *harvester, due time.Time) {
	if i := int(h.pollIdx); i >= 0 {
		(*q)[i].due = due.UnixNano()
		q.fix(i)
		return
	}
	i := len(*q)
	h.pollIdx = int32(i)
	*q = append(*q, pollEntry{due.UnixNano(), h})
	q.up(i)
}

// remove takes h's poll off the queue, if queued.
func (q *pollQueue) remove(h *harvester) {
	i := int(h.pollIdx)
	if i < 0 {
		return
	}
	last := len(*q) - 1
	if i != last {
		q.swap(i, last)
	}
	(*q)[last] = pollEntry{}
	*q = (*q)[:last]
	h.pollIdx = -1
	if i != last {
		q.fix(i)
	}
}

// popDue takes the harvester of the earliest poll if it is due at now.
func (q *pollQueue) popDue(now time.Time) *harvester {
	if len(*q) == 0 || (*q)[0].due > now.UnixNano() {
		return nil
	}
	h := (*q)[0].h
	q.remove(h)
	return h
}

func (q pollQueue) swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].h.pollIdx, q[j].h.pollIdx = int32(i), int32(j)
}

func (q pollQueue) fix(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

func (q pollQueue) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if q[parent].due <= q[i].due {
			return
		}
		q.swap(i, parent)
		i = parent
	}
}

// down moves entry i down to its place and reports whether it moved.
func (q pollQueue) down(i int) bool {
	start := i
	for {
		least := 2*i + 1
		if least >= len(q) {
			break
		}
		if r := least + 1; r < len(q) && q[r].due < q[least].due {
			least = r
		}
		if q[i].due <= q[least].due {
			break
		}
		q.swap(i, least)
		i = least
	}
	return i > start
}
