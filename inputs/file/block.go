package file

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// block is a read buffer that messages point into. It is shared by the
// harvester reading into it and by every chunk cut from it; it goes back to
// its pool when the last of them lets go.
type block struct {
	buf    []byte
	refs   atomic.Int32
	charge int64 // what it holds of its budget
	pool   *blockPool
}

func (b *block) retain() { b.refs.Add(1) }

func (b *block) release() {
	if b.refs.Add(-1) == 0 {
		b.pool.put(b)
	}
}

// blockPool hands out blocks of one size, charging their size to the
// input's budget: the budget is the bound on memory held by messages in
// flight, and waiting for it is how reading pauses when outputs are slow.
//
// Blocks let go of are kept for the next reads, most recent first, as long
// as they are used again within idleBlockLife (looked at every tick of the
// input, off the read path: one idle longer, taken before the tick, is just
// used again): a start-up or a backfill that filled max_inflight_bytes with
// blocks does not keep them all once reading is quiet again (as a sync.Pool
// would until two collections, rare in a quiet agent, and the heap they
// grew would stay).
type blockPool struct {
	size   int
	budget *Budget

	mu   sync.Mutex
	idle []idleBlock // let go of, the most recent last
}

type idleBlock struct {
	b     *block
	since int64 // unix nanos
}

// idleBlockLife is how long a block let go of is kept for reuse.
const idleBlockLife = 2 * time.Second

// Pool bounds the bytes of read buffers in flight across all inputs
// (max_inflight_bytes), and divides them so that one input cannot starve
// the others: each input's Budget has a reserve, limit/(2×inputs), that
// only it may use, and the other half of the limit is common, taken by
// whichever input needs more than its reserve. An input whose outputs do
// not acknowledge (an output down) holds at most its reserve and the
// common half; every other input can still fill its reserve, which its
// own outputs' acknowledgements free again.
//
// A block is charged its size. The one exception keeps an input from
// waiting on others: a block it waits for is charged at most its reserve,
// so with a reserve smaller than one max_message_bytes line and 4KiB (many
// inputs, long lines) the bound is exceeded by at most that difference per
// input.
type Pool struct {
	mu      sync.Mutex // guards what follows, and every Budget's waiters and used
	limit   int64
	shares  []*Budget
	reserve int64 // per share: limit / (2 × len(shares))
	common  int64 // limit - reserve × len(shares)
	inCom   int64 // taken from common: Σ max(0, used - reserve)
	next    int   // the share whose waiters are served first next time
	used    atomic.Int64
}

// NewPool returns a pool of limit bytes with no budget yet.
func NewPool(limit int64) *Pool { return &Pool{limit: limit, common: limit} }

// Limit returns the pool's limit.
func (p *Pool) Limit() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// Used returns the bytes held by every input.
func (p *Pool) Used() int64 { return p.used.Load() }

// Budget is one input's share of a Pool. Safe for concurrent use.
type Budget struct {
	pool *Pool
	id   string

	// guarded by pool.mu
	used    int64
	waiters list.List // of *waiter, first come first served
	removed bool

	// waitingSince is when the first waiter still waiting started (unix
	// nanos), 0 when nobody waits.
	waitingSince atomic.Int64
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once granted
	since time.Time
}

// NewBudget returns the budget of an input alone in a pool of limit bytes.
func NewBudget(limit int64) *Budget { return NewPool(limit).Budget("") }

// Budget adds the budget of input id. The reserves of every budget shrink
// to make room for it.
func (p *Pool) Budget(id string) *Budget {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &Budget{pool: p, id: id}
	p.shares = append(p.shares, b)
	p.resizeLocked()
	return b
}

// Remove takes b out of the pool: its input stopped. Blocks it still holds
// (chunks an output never acknowledged) are let go of without effect on
// the others.
func (p *Pool) Remove(b *Budget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.shares {
		if s == b {
			p.shares = append(p.shares[:i], p.shares[i+1:]...)
			break
		}
	}
	b.removed = true
	p.used.Add(-b.used)
	b.used = 0
	p.resizeLocked()
	p.notifyLocked()
}

// resizeLocked sets the reserves for the number of shares, and what is
// taken from the common part. p.mu is held.
func (p *Pool) resizeLocked() {
	n := int64(max(len(p.shares), 1))
	p.reserve = p.limit / (2 * n)
	p.common = p.limit - p.reserve*int64(len(p.shares))
	p.inCom = 0
	for _, s := range p.shares {
		p.inCom += max(0, s.used-p.reserve)
	}
	if p.next >= len(p.shares) {
		p.next = 0
	}
}

// SetLimit changes the pool's limit (a reloaded max_inflight_bytes).
// Inputs holding more than their new share keep it until their outputs
// let go of it.
func (p *Pool) SetLimit(limit int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = limit
	p.resizeLocked()
	p.notifyLocked()
}

// Reserve returns what each input holds for itself alone.
func (p *Pool) Reserve() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reserve
}

// ID returns the input the budget is of.
func (b *Budget) ID() string { return b.id }

// Used returns the bytes the input holds.
func (b *Budget) Used() int64 {
	b.pool.mu.Lock()
	defer b.pool.mu.Unlock()
	return b.used
}

// Used returns the bytes held by every input of the pool.
func (b *Budget) PoolUsed() int64 { return b.pool.Used() }

// WaitingSince returns since when a read of the input waits for room, or
// the zero time when none does: its outputs hold its reserve and no common
// room is left.
func (b *Budget) WaitingSince() time.Time {
	if n := b.waitingSince.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// fitsLocked reports whether b can take n more bytes. p.mu is held.
func (p *Pool) fitsLocked(b *Budget, n int64) bool {
	if b.removed {
		return true // a stopping input's last reads; it holds nothing now
	}
	over := max(0, b.used+n-p.reserve) - max(0, b.used-p.reserve)
	return p.inCom+over <= p.common
}

// takeLocked charges n bytes to b. p.mu is held.
func (p *Pool) takeLocked(b *Budget, n int64) {
	if !b.removed {
		p.inCom += max(0, b.used+n-p.reserve) - max(0, b.used-p.reserve)
		b.used += n
		p.used.Add(n)
	}
}

func (p *Pool) giveLocked(b *Budget, n int64) {
	if !b.removed {
		p.inCom -= max(0, b.used-p.reserve) - max(0, b.used-n-p.reserve)
		b.used -= n
		p.used.Add(-n)
	}
}

// notifyLocked grants the waiters that fit now, first come first served
// within a budget, budgets in turn. p.mu is held.
func (p *Pool) notifyLocked() {
	for i := range p.shares {
		b := p.shares[(p.next+i)%len(p.shares)]
		for {
			e := b.waiters.Front()
			if e == nil {
				break
			}
			w := e.Value.(*waiter)
			if !p.fitsLocked(b, w.n) {
				break
			}
			p.takeLocked(b, w.n)
			b.waiters.Remove(e)
			close(w.ready)
		}
		b.setWaitingLocked()
	}
	if len(p.shares) > 0 {
		p.next = (p.next + 1) % len(p.shares)
	}
}

func (b *Budget) setWaitingLocked() {
	if e := b.waiters.Front(); e != nil {
		b.waitingSince.Store(e.Value.(*waiter).since.UnixNano())
	} else {
		b.waitingSince.Store(0)
	}
}

// charge is what a block of size bytes holds of b: its size; or, for a
// block waited for, the reserve when it is smaller, so that an input can
// always get one block by its own outputs' acknowledgements. A block taken
// without waiting is charged its size: one larger than the input can hold
// is not taken (the harvester waits for a small one instead).
func (b *Budget) charge(size int64, wait bool) int64 {
	if !wait {
		return size
	}
	p := b.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(1, min(size, p.reserve))
}

// acquire takes n bytes, waiting for room until ctx is done.
func (b *Budget) acquire(ctx context.Context, n int64) error {
	p := b.pool
	p.mu.Lock()
	if b.waiters.Len() == 0 && p.fitsLocked(b, n) {
		p.takeLocked(b, n)
		p.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{}), since: time.Now()}
	e := b.waiters.PushBack(w)
	b.setWaitingLocked()
	p.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		select {
		case <-w.ready:
			// Granted meanwhile: give it back.
			p.giveLocked(b, n)
			p.notifyLocked()
		default:
			b.waiters.Remove(e)
			b.setWaitingLocked()
			p.notifyLocked() // those behind it may fit
		}
		p.mu.Unlock()
		return ctx.Err()
	}
}

// tryAcquire takes n bytes if there is room now and nobody waits.
func (b *Budget) tryAcquire(n int64) bool {
	p := b.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.waiters.Len() > 0 || !p.fitsLocked(b, n) {
		return false
	}
	p.takeLocked(b, n)
	return true
}

func (b *Budget) release(n int64) {
	p := b.pool
	p.mu.Lock()
	p.giveLocked(b, n)
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *blockPool) newBlock(n int64) *block {
	var b *block
	p.mu.Lock()
	if k := len(p.idle) - 1; k >= 0 {
		b = p.idle[k].b
		p.idle[k] = idleBlock{}
		p.idle = p.idle[:k]
	}
	p.mu.Unlock()
	if b == nil {
		b = &block{buf: make([]byte, p.size), pool: p}
	}
	b.charge = n
	b.refs.Store(1)
	return b
}

// get waits for room for a block. Its charge is at most the input's
// reserve, which the input's own outputs free: waiting never depends on
// other inputs letting go of the common part.
func (p *blockPool) get(ctx context.Context) (*block, error) {
	n := p.budget.charge(int64(p.size), true)
	if err := p.budget.acquire(ctx, n); err != nil {
		return nil, err
	}
	return p.newBlock(n), nil
}

// tryGet is get without waiting: nil when the budget is used up.
func (p *blockPool) tryGet() *block {
	n := p.budget.charge(int64(p.size), false)
	if !p.budget.tryAcquire(n) {
		return nil
	}
	return p.newBlock(n)
}

func (p *blockPool) put(b *block) {
	n := b.charge
	now := time.Now().UnixNano()
	p.mu.Lock()
	p.idle = append(p.idle, idleBlock{b, now})
	p.mu.Unlock()
	p.budget.release(n)
}

// trim lets go of the blocks idle for idleBlockLife or longer, for an
// input whose reading stopped: the input's ticker calls it.
func (p *blockPool) trim(now time.Time) {
	p.mu.Lock()
	p.trimLocked(now.UnixNano())
	p.mu.Unlock()
}

// trimLocked lets go of the blocks idle for idleBlockLife or longer: the
// oldest, first in p.idle. p.mu is held.
func (p *blockPool) trimLocked(now int64) {
	k := 0
	for k < len(p.idle) && now-p.idle[k].since >= int64(idleBlockLife) {
		k++
	}
	if k == 0 {
		return
	}
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if cap(p.idle) > 64 && n < cap(p.idle)/4 {
		p.idle = slices.Clone(p.idle) // not to keep a start-up's array
	}
}
