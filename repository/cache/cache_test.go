package cache

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

func request(data string, outputs ...string) *backend.Request {
	return &backend.Request{ID: "id", Outputs: outputs, Inputs: []backend.Tensor{
		{Name: "A", Datatype: "BYTES", Shape: []int64{1}, Data: []byte(data)},
		{Name: "B", Datatype: "INT64", Shape: []int64{1, 1}, Data: make([]byte, 8)},
	}}
}

func answer(data string) *backend.Response {
	return &backend.Response{Outputs: []backend.Tensor{{Name: "OUT", Datatype: "BYTES", Shape: []int64{1, 1}, Data: []byte(data)}},
		Parameters: map[string]any{"p": "v"}}
}

func TestKeyOf(t *testing.T) {
	base := KeyOf("m", 1, 7, request("x"), 2)
	same := []*backend.Request{
		request("x"),
		{Inputs: []backend.Tensor{request("x").Inputs[1], request("x").Inputs[0]}}, // input order
		request("x", "O1", "O2"),       // all outputs by name
		request("x", "O2", "O1", "O2"), // the same set
	}
	for i, r := range same {
		if KeyOf("m", 1, 7, r, 2) != base {
			t.Errorf("same[%d]: a different key for the same answer", i)
		}
	}
	// The request's id, priority, timeout and parameters do not change the answer.
	r := request("x")
	r.ID, r.Priority, r.Timeout, r.Parameters = "other", 2, time.Second, map[string]any{"k": 1}
	if KeyOf("m", 1, 7, r, 2) != base {
		t.Error("id, priority, timeout or parameters changed the key")
	}
	differ := map[string]Key{
		"model":   KeyOf("n", 1, 7, request("x"), 2),
		"version": KeyOf("m", 2, 7, request("x"), 2),
		"load":    KeyOf("m", 1, 8, request("x"), 2),
		"data":    KeyOf("m", 1, 7, request("y"), 2),
		"output":  KeyOf("m", 1, 7, request("x", "O1"), 2),
	}
	mod := func(f func(r *backend.Request)) Key { r := request("x"); f(r); return KeyOf("m", 1, 7, r, 2) }
	differ["name"] = mod(func(r *backend.Request) { r.Inputs[0].Name = "C" })
	differ["datatype"] = mod(func(r *backend.Request) { r.Inputs[1].Datatype = "FP64" })
	differ["shape"] = mod(func(r *backend.Request) { r.Inputs[1].Shape = []int64{1} })
	// Bytes moved from one field to the next never collide.
	differ["boundary"] = mod(func(r *backend.Request) { r.Inputs[0].Name, r.Inputs[0].Data = "AB", []byte("YTES") })
	seen := map[Key]string{base: "base"}
	for what, k := range differ {
		if prev, dup := seen[k]; dup {
			t.Errorf("changing %s gave the key of %s", what, prev)
		}
		seen[k] = what
	}
}

func TestHitIsACopy(t *testing.T) {
	c, _ := New(1 << 20)
	key := KeyOf("m", 1, 1, request("x"), 1)
	calls := 0
	compute := func(context.Context) (*backend.Response, error) { calls++; return answer("yes"), nil }
	first, out, err := c.Do(context.Background(), key, 1, compute)
	if err != nil || out.Hit || !out.Computed {
		t.Fatalf("first: %v, %+v", err, out)
	}
	first.Outputs[0].Data[0] = 'N' // the caller's copy is the caller's
	second, out, err := c.Do(context.Background(), key, 1, compute)
	if err != nil || !out.Hit || out.Computed || calls != 1 {
		t.Fatalf("second: %v, %+v, %d computes", err, out, calls)
	}
	if !bytes.Equal(second.Outputs[0].Data, []byte("yes")) || second.Parameters["p"] != "v" {
		t.Errorf("hit answered %q %v, want the kept answer", second.Outputs[0].Data, second.Parameters)
	}
	second.Outputs[0].Shape[0] = 9
	third, _, _ := c.Do(context.Background(), key, 1, compute)
	if third.Outputs[0].Shape[0] != 1 {
		t.Error("a hit's shape is shared with the cache")
	}
}

func TestErrorsAreNotKept(t *testing.T) {
	c, _ := New(1 << 20)
	key := KeyOf("m", 1, 1, request("x"), 1)
	boom := errors.New("boom")
	if _, _, err := c.Do(context.Background(), key, 1, func(context.Context) (*backend.Response, error) { return nil, boom }); err != boom {
		t.Fatal(err)
	}
	if _, out, err := c.Do(context.Background(), key, 1, func(context.Context) (*backend.Response, error) { return answer("ok"), nil }); err != nil || out.Hit {
		t.Errorf("after a failure: %v, hit %v; want a miss", err, out.Hit)
	}
}

func TestLRUBoundedInBytes(t *testing.T) {
	one := entrySize(answer("0123456789"))
	c, _ := New(3 * one)
	keyOf := func(i byte) Key { return KeyOf("m", 1, 1, request(string(rune('a'+i))), 1) }
	do := func(i byte) {
		c.Do(context.Background(), keyOf(i), 1, func(context.Context) (*backend.Response, error) { return answer("0123456789"), nil })
	}
	for i := range byte(3) {
		do(i)
	}
	do(0) // a is now the most recent
	do(3) // evicts b, the least recently used
	if u := c.Usage(); u.Entries != 3 || u.Bytes != 3*one || u.Evictions != 1 {
		t.Errorf("usage %+v, want 3 entries of %d bytes, 1 eviction", u, one)
	}
	for i, want := range []bool{true, false, true, true} {
		c.mu.Lock()
		_, kept := c.entries[keyOf(byte(i))]
		c.mu.Unlock()
		if kept != want {
			t.Errorf("entry %c kept %v, want %v", 'a'+i, kept, want)
		}
	}
	// An answer larger than the cache is not kept.
	big := &backend.Response{Outputs: []backend.Tensor{{Name: "OUT", Datatype: "UINT8", Data: make([]byte, 4*one)}}}
	key := KeyOf("m", 1, 1, request("big"), 1)
	for range 2 {
		if _, out, _ := c.Do(context.Background(), key, 1, func(context.Context) (*backend.Response, error) { return big, nil }); out.Hit {
			t.Error("an answer larger than the cache was kept")
		}
	}
	if u := c.Usage(); u.Bytes > u.Size {
		t.Errorf("usage %+v over the size", u)
	}
}

func TestDrop(t *testing.T) {
	c, _ := New(1 << 20)
	for owner := uint64(1); owner <= 2; owner++ {
		for _, d := range []string{"a", "b"} {
			c.Do(context.Background(), KeyOf("m", 1, owner, request(d), 1), owner, func(context.Context) (*backend.Response, error) { return answer(d), nil })
		}
	}
	c.Drop(1)
	if u := c.Usage(); u.Entries != 2 {
		t.Errorf("%d entries after dropping owner 1, want owner 2's 2", u.Entries)
	}
	if _, out, _ := c.Do(context.Background(), KeyOf("m", 1, 2, request("a"), 1), 2, nil); !out.Hit {
		t.Error("owner 2's answer was dropped")
	}
}

// gate is a compute that blocks until released and counts its calls.
type gate struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
	err     error
}

func newGate() *gate { return &gate{started: make(chan struct{}, 8), release: make(chan struct{})} }

func (g *gate) compute(ctx context.Context) (*backend.Response, error) {
	g.calls.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if g.err != nil {
		return nil, g.err
	}
	return answer("computed once"), nil
}

// waitFlight waits until a second Do on key is waiting for the first.
func waitFlight(t *testing.T, c *Cache, key Key) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		f := c.flights[key]
		c.mu.Unlock()
		if f != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no request in flight")
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	resp *backend.Response
	out  Outcome
	err  error
}

// TestSingleFlight: the same request arriving while the first runs waits
// for it and gets its answer; the model runs once.
func TestSingleFlight(t *testing.T) {
	c, _ := New(1 << 20)
	key := KeyOf("m", 1, 1, request("x"), 1)
	g := newGate()
	results := make(chan result, 2)
	go func() { r, o, err := c.Do(context.Background(), key, 1, g.compute); results <- result{r, o, err} }()
	<-g.started
	waitFlight(t, c, key)
	go func() { r, o, err := c.Do(context.Background(), key, 1, g.compute); results <- result{r, o, err} }()
	time.Sleep(20 * time.Millisecond) // the second is waiting, not computing
	close(g.release)
	var hits, misses int
	for range 2 {
		r := <-results
		if r.err != nil || !bytes.Equal(r.resp.Outputs[0].Data, []byte("computed once")) {
			t.Fatalf("%v %v", r.err, r.resp)
		}
		if r.out.Hit {
			hits++
			if r.out.Waited < 15*time.Millisecond {
				t.Errorf("the waiting request waited only %v", r.out.Waited)
			}
		} else {
			misses++
		}
	}
	if g.calls.Load() != 1 || hits != 1 || misses != 1 {
		t.Errorf("%d computes, %d hits, %d misses; want 1, 1, 1", g.calls.Load(), hits, misses)
	}
}

// TestSingleFlightFirstFails: when the request waited for fails, or its
// client cancels it, the waiting request runs on its own and succeeds.
func TestSingleFlightFirstFails(t *testing.T) {
	for _, how := range []string{"fails", "cancelled"} {
		t.Run(how, func(t *testing.T) {
			c, _ := New(1 << 20)
			key := KeyOf("m", 1, 1, request("x"), 1)
			g := newGate()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if how == "fails" {
				g.err = errors.New("first failed")
			}
			first := make(chan error, 1)
			go func() { _, _, err := c.Do(ctx, key, 1, g.compute); first <- err }()
			<-g.started
			var wg sync.WaitGroup
			var second result
			wg.Go(func() {
				second.resp, second.out, second.err = c.Do(context.Background(), key, 1, func(ctx context.Context) (*backend.Response, error) {
					return answer("second's own"), nil
				})
			})
			time.Sleep(20 * time.Millisecond)
			if how == "fails" {
				close(g.release)
			} else {
				cancel()
			}
			if err := <-first; err == nil {
				t.Fatal("the first request did not fail")
			}
			wg.Wait()
			if second.err != nil || second.out.Hit || !second.out.Computed || !bytes.Equal(second.resp.Outputs[0].Data, []byte("second's own")) {
				t.Errorf("second: %v %+v %v; want its own computed answer", second.err, second.out, second.resp)
			}
		})
	}
}

// TestWaiterCancelled: a waiting request whose own context ends stops
// waiting; the first still completes and is kept.
func TestWaiterCancelled(t *testing.T) {
	c, _ := New(1 << 20)
	key := KeyOf("m", 1, 1, request("x"), 1)
	g := newGate()
	first := make(chan error, 1)
	go func() { _, _, err := c.Do(context.Background(), key, 1, g.compute); first <- err }()
	<-g.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, out, err := c.Do(ctx, key, 1, g.compute)
	if !errors.Is(err, context.DeadlineExceeded) || out.Computed || out.Hit {
		t.Errorf("waiter: %v %+v; want its deadline, nothing computed", err, out)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, out, _ := c.Do(context.Background(), key, 1, g.compute); !out.Hit || g.calls.Load() != 1 {
		t.Errorf("after: hit %v, %d computes", out.Hit, g.calls.Load())
	}
}
