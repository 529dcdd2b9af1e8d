package hostpool

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// TestSetAddrs: a host list that changes while batches are sent and Hosts
// is read from another goroutine (run with -race): a host that left gets no
// new batch, a host that joined gets traffic.
func TestSetAddrs(t *testing.T) {
	var addrs []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		addrs = append(addrs, ln.Addr().String())
	}
	p := New[struct{}](nil, 30*time.Second, func(net.Conn) struct{} { return struct{}{} }, nil)
	defer p.Close()
	ctx := context.Background()
	var mu sync.Mutex
	sent := map[string]int{}
	send := func() error {
		return p.Send(ctx, 1, func(ctx context.Context, c *Conn[struct{}], pending []int) Result {
			mu.Lock()
			sent[c.Addr]++
			mu.Unlock()
			return Result{}
		})
	}
	if err := send(); err == nil {
		t.Fatal("a pool without hosts delivered")
	}
	p.SetNoHostsReason("zookeeper unreachable")
	if err := send(); err == nil || err.Error() != "no hosts: zookeeper unreachable" {
		t.Fatalf("error %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				p.Hosts()
				p.Addrs()
			}
		}
	}()
	p.SetAddrs(addrs[:2])
	for range 10 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	p.SetAddrs(addrs[1:])
	mu.Lock()
	clear(sent)
	mu.Unlock()
	for range 10 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if sent[addrs[0]] != 0 || sent[addrs[1]] != 5 || sent[addrs[2]] != 5 {
		t.Fatalf("after the change: %v (left %s)", sent, addrs[0])
	}
	if got := p.Addrs(); len(got) != 2 || got[0] != addrs[1] {
		t.Fatalf("Addrs %v", got)
	}
}
