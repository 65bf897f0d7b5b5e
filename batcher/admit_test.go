package batcher

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Reserved slots count against max_queue_size: a request refused at admission never reaches Submit, and a
// released slot is free again at once.
func TestReserveCountsAgainstMaxQueueSize(t *testing.T) {
	m := &fakeModel{}
	b := mustNew(t, Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 2}}, m)
	ctx := context.Background()
	t1, err := b.Reserve(ctx, Slot{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := b.Reserve(ctx, Slot{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, Slot{Size: 1}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Reserve: %v, want ErrQueueFull", err)
	}
	if _, err := b.Submit(ctx, Item[req]{Value: req{id: 9}, Size: 1}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit with two slots reserved: %v, want ErrQueueFull", err)
	}
	t2.Release()
	t2.Release() // a second release does nothing
	t3, err := b.Reserve(ctx, Slot{Size: 1})
	if err != nil {
		t.Fatalf("Reserve after a release: %v", err)
	}
	for i, tk := range []*Ticket[req, int]{t1, t3} {
		res, err := tk.Submit(ctx, Item[req]{Value: req{id: i + 1}})
		if err != nil || res != (i+1)*10 {
			t.Fatalf("ticket %d: %v, %v", i, res, err)
		}
		tk.Release() // after Submit: nothing
	}
	if _, err := t1.Submit(ctx, Item[req]{Value: req{id: 1}}); err == nil {
		t.Fatal("a ticket submitted twice was accepted")
	}
	st := b.Stats()
	if st.Failures[FailRejected] != 2 || st.InferenceCount != 2 {
		t.Fatalf("stats: %d rejected, %d succeeded, want 2 and 2", st.Failures[FailRejected], st.InferenceCount)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reserved != 0 || b.q.levels[0].reserved != 0 {
		t.Fatalf("%d slots still reserved (%d in the level)", b.reserved, b.q.levels[0].reserved)
	}
}

// The queue timeout counts from admission: the time a request spends being prepared is time in the queue.
func TestTicketTimeoutCountsFromAdmission(t *testing.T) {
	for _, c := range []struct {
		name    string
		action  TimeoutAction
		wantErr error
	}{
		{"reject", Reject, ErrTimeout},
		{"delay", Delay, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			m := &fakeModel{}
			cfg := Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{DefaultTimeout: time.Second, TimeoutAction: c.action}}
			b, err := newBatcher(cfg, m.exec, hooks[req]{now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b.Stop(context.Background()) }()
			ctx := context.Background()
			tk, err := b.Reserve(ctx, Slot{Size: 1})
			if err != nil {
				t.Fatal(err)
			}
			clk.set(2 * time.Second) // the preparation took longer than the queue timeout
			res, err := tk.Submit(ctx, Item[req]{Value: req{id: 3}})
			if !errors.Is(err, c.wantErr) || (err == nil && res != 30) {
				t.Fatalf("Submit: %v, %v; want %v", res, err, c.wantErr)
			}
			// Another request admitted now (deadline 3 s) and submitted before its deadline runs.
			tk, err = b.Reserve(ctx, Slot{Size: 1})
			if err != nil {
				t.Fatal(err)
			}
			clk.set(2*time.Second + 900*time.Millisecond)
			if res, err := tk.Submit(ctx, Item[req]{Value: req{id: 4}}); err != nil || res != 40 {
				t.Fatalf("Submit within the timeout: %v, %v", res, err)
			}
		})
	}
}

// Stop drains reserved slots as it drains queued requests: a request admitted before Stop still runs, and
// none is admitted after.
func TestStopWaitsForReservedSlots(t *testing.T) {
	m := &fakeModel{}
	b, err := New(Config{MaxBatchSize: 2, Instances: 1}, m.exec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tk, err := b.Reserve(ctx, Slot{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- b.Stop(ctx) }()
	waitFor(t, "stopping", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.stopping })
	if _, err := b.Reserve(ctx, Slot{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Reserve while stopping: %v, want ErrStopped", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a slot still reserved", err)
	case <-time.After(20 * time.Millisecond):
	}
	if res, err := tk.Submit(ctx, Item[req]{Value: req{id: 5}}); err != nil || res != 50 {
		t.Fatalf("Submit of a slot reserved before Stop: %v, %v", res, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	// A released slot lets the drain finish too; Stop's deadline does not wait for a reservation.
	b2, _ := New(Config{MaxBatchSize: 2, Instances: 1}, m.exec)
	tk2, _ := b2.Reserve(ctx, Slot{})
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b2.Stop(short); err == nil {
		t.Fatal("Stop drained with a slot reserved and never submitted")
	}
	if _, err := tk2.Submit(ctx, Item[req]{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Submit after a hard stop: %v, want ErrStopped", err)
	}
}

// A level created on demand for a priority without its own policy is kept while it holds a reservation,
// and dropped when the reservation goes (clients sending many priorities cannot grow the level list).
func TestReservationKeepsOnDemandLevel(t *testing.T) {
	m := &fakeModel{}
	b := mustNew(t, Config{MaxBatchSize: 2, Instances: 1, PriorityLevels: 5, DefaultPriorityLevel: 3}, m)
	levels := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.q.levels) }
	base := levels()
	tk, err := b.Reserve(context.Background(), Slot{Priority: 1})
	if err != nil {
		t.Fatal(err)
	}
	if levels() != base+1 {
		t.Fatalf("%d levels with a reservation at priority 1, want %d", levels(), base+1)
	}
	tk.Release()
	if levels() != base {
		t.Fatalf("%d levels after the release, want %d", levels(), base)
	}
}

// A cancelled context refuses at admission and at Submit, and the slot is free afterwards.
func TestTicketCancelled(t *testing.T) {
	m := &fakeModel{}
	b := mustNew(t, Config{MaxBatchSize: 2, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}}, m)
	ctx, cancel := context.WithCancel(context.Background())
	tk, err := b.Reserve(ctx, Slot{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tk.Submit(ctx, Item[req]{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit with a cancelled ctx: %v", err)
	}
	if _, err := b.Reserve(ctx, Slot{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve with a cancelled ctx: %v", err)
	}
	tk, err = b.Reserve(context.Background(), Slot{})
	if err != nil {
		t.Fatalf("the cancelled request's slot was not freed: %v", err)
	}
	tk.Release()
}

// BenchmarkRefusal measures what a refused request costs at admission, against an admitted one's Reserve and
// Release (the baseline, in the same run).
func BenchmarkRefusal(b *testing.B) {
	m := &fakeModel{}
	bt, _ := New(Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}}, m.exec)
	defer func() { _ = bt.Stop(context.Background()) }()
	ctx := context.Background()
	b.Run("admitted", func(b *testing.B) {
		for range b.N {
			tk, err := bt.Reserve(ctx, Slot{})
			if err != nil {
				b.Fatal(err)
			}
			tk.Release()
		}
	})
	b.Run("refused", func(b *testing.B) {
		hold, _ := bt.Reserve(ctx, Slot{})
		defer hold.Release()
		for range b.N {
			if _, err := bt.Reserve(ctx, Slot{}); !errors.Is(err, ErrQueueFull) {
				b.Fatal(err)
			}
		}
	})
}
