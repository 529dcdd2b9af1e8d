package file

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// A harvester's context ends once cancelled, whether Done was asked for
// before or after, by as many goroutines as like, and never before.
func TestHarvestCtx(t *testing.T) {
	for _, doneFirst := range []bool{false, true} {
		parent := context.Background()
		c := &harvestCtx{parent: &parent}
		var early <-chan struct{}
		if doneFirst {
			early = c.Done()
		}
		if c.Err() != nil {
			t.Fatalf("Err before cancel: %v", c.Err())
		}
		select {
		case <-c.Done():
			t.Fatal("done before cancel")
		default:
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(2)
			go func() { defer wg.Done(); c.cancel() }()
			go func() { defer wg.Done(); <-c.Done() }()
		}
		wg.Wait()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err after cancel: %v", c.Err())
		}
		<-c.Done()
		if early != nil {
			<-early
		}
	}
}
