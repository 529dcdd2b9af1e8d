package file

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// block is a read buffer that messages point into. It is shared by the
// harvester reading into it and by every chunk cut from it; it goes back to
// its pool when the last of them lets go.
type block struct {
	buf  []byte
	refs atomic.Int32
	pool *blockPool
}

func (b *block) retain() { b.refs.Add(1) }

func (b *block) release() {
	if b.refs.Add(-1) == 0 {
		b.pool.put(b)
	}
}

// blockPool hands out blocks of one size, charging their size to a budget
// shared by every input: the budget is the bound on memory held by messages
// in flight, and waiting for it is how reading pauses when outputs are slow.
type blockPool struct {
	size   int
	budget *Budget
	pool   sync.Pool
}

// Budget bounds the bytes of read buffers in flight across all inputs.
type Budget struct {
	sem   *semaphore.Weighted
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{sem: semaphore.NewWeighted(limit), limit: limit}
}

// Used returns the bytes currently held.
func (b *Budget) Used() int64 { return b.used.Load() }

func (b *Budget) charge(n int64) int64 {
	if n > b.limit {
		n = b.limit // one block larger than the budget still gets through, alone
	}
	return n
}

func (p *blockPool) get(ctx context.Context) (*block, error) {
	n := p.budget.charge(int64(p.size))
	if err := p.budget.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	p.budget.used.Add(n)
	b, _ := p.pool.Get().(*block)
	if b == nil {
		b = &block{buf: make([]byte, p.size), pool: p}
	}
	b.refs.Store(1)
	return b, nil
}

// tryGet is get without waiting: nil when the budget is used up.
func (p *blockPool) tryGet() *block {
	n := p.budget.charge(int64(p.size))
	if !p.budget.sem.TryAcquire(n) {
		return nil
	}
	p.budget.used.Add(n)
	b, _ := p.pool.Get().(*block)
	if b == nil {
		b = &block{buf: make([]byte, p.size), pool: p}
	}
	b.refs.Store(1)
	return b
}

func (p *blockPool) put(b *block) {
	n := p.budget.charge(int64(p.size))
	p.pool.Put(b)
	p.budget.used.Add(-n)
	p.budget.sem.Release(n)
}
