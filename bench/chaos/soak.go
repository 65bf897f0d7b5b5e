package chaos

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type timed struct {
	at  time.Duration // since the start, when the request was sent
	lat time.Duration
}

// Soak is case 9: capacity measured with a short closed loop at the
// saturation concurrency, then (once the server is quiet again) an open loop
// at s.SoakLoad of it for s.Soak:
// errors, RSS growth over the soak, and the p99 of the first window against
// the last (a window is a minute, or a quarter of a shorter soak).
func (e *Env) Soak(ctx context.Context, s Settings) Result {
	r := Result{Case: "soak"}
	reqs, err := goodImageRequests(e.Model)
	if err != nil {
		r.Err = err
		return r
	}
	e.logf("soak: measuring capacity, %d clients for %v", s.SatConc, s.CapDur)
	capSt := e.closedLoop(ctx, reqs, s.SatConc, s.CapDur, false)
	capacity := float64(capSt.ok) / capSt.dur.Seconds()
	rate := s.SoakLoad * capacity
	if rate <= 0 {
		r.Err = fmt.Errorf("capacity run got no 200s (%s)", capSt.tally.CodesNote())
		return r
	}
	// The capacity run's clients stop at its deadline, but what they had in flight runs on (a batch of 16 on
	// the CPU model takes seconds): without waiting for it, the soak's first window would measure that
	// leftover work instead of the server at SoakLoad.
	if waited, quiet := Settle(ctx, e.PID, time.Minute); !quiet {
		e.logf("soak: the server did not go quiet after the capacity run (waited %v)", waited.Round(time.Second))
	}
	rssStart, _ := ReadRSS(e.PID)
	e.logf("soak: %.1f/s (%.0f%% of %.1f/s) for %v", rate, 100*s.SoakLoad, capacity, s.Soak)
	interval := time.Duration(float64(time.Second) / rate)
	maxInFlight := int64(8 * s.SatConc)
	var inFlight atomic.Int64
	var mu sync.Mutex
	var t Tally
	var lats []timed
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(interval)
	for n := 0; time.Since(start) < s.Soak && ctx.Err() == nil; n++ {
		<-tick.C
		if inFlight.Load() >= maxInFlight {
			mu.Lock()
			t.Add("client backlog full", false, true) // the server fell behind: an arrival it could not take
			mu.Unlock()
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			defer inFlight.Add(-1)
			at := time.Since(start)
			a := e.Send(ctx, reqs[k%len(reqs)])
			ok := a.Code == 200 && CheckAnswer(&a) == nil
			mu.Lock()
			defer mu.Unlock()
			t.Add(a.Class(), ok, a.Code == 0 || (a.Code == 200 && !ok))
			if ok {
				lats = append(lats, timed{at, a.Latency})
			}
		}(n)
	}
	tick.Stop()
	wg.Wait()
	total := time.Since(start)
	rssEnd, _ := ReadRSS(e.PID)
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	errs := t.Tried - t.Handled
	win := min(time.Minute, s.Soak/4)
	var first, last []time.Duration
	for _, l := range lats {
		if l.at < win {
			first = append(first, l.lat)
		}
		if l.at >= total-win {
			last = append(last, l.lat)
		}
	}
	p1, p2 := P(first, 99), P(last, 99)
	drift := math.Inf(1)
	if p1 > 0 {
		drift = float64(p2)/float64(p1) - 1
	}
	growth := 0.0
	if rssStart > 0 {
		growth = 100 * float64(rssEnd-rssStart) / float64(rssStart)
	}
	r.Figures = append(r.Figures,
		Figure{Name: "capacity", Value: fmt.Sprintf("%.1f/s at c=%d; soak rate %.1f/s for %v", capacity, s.SatConc, rate, s.Soak)},
		Figure{Name: "errors", Value: strconv.Itoa(errs), Target: "0", Met: errs == 0},
		Figure{Name: "RSS growth over the soak", Value: fmt.Sprintf("%.1f%% (%s → %s MB)", growth, MB(rssStart), MB(rssEnd)), Target: "< 10%", Met: growth < 10},
		Figure{Name: fmt.Sprintf("p99 first %v vs last %v", win, win), Value: fmt.Sprintf("%s vs %s (%+.0f%%; %d and %d requests)", ms(p1), ms(p2), 100*drift, len(first), len(last)), Target: "within 20%", Met: math.Abs(drift) <= 0.2},
		// Every window's p99, so that the first and last can be read against the spread between any two: with
		// a few hundred requests a window, a p99 is one of its few slowest requests.
		Figure{Name: fmt.Sprintf("p99 of each %v", win), Value: windowP99s(lats, win, total)},
	)
	r.Notes = append(r.Notes, t.CodesNote())
	return r
}

// Sigterm is case 8, always last: a closed loop at the saturation
// concurrency for two seconds, then SIGTERM to the server; clients send
// nothing new after the signal, and every request sent before it must get
// its 200. The server must then exit 0 (the script writes its exit status to
// ExitCodeFile).
func (e *Env) Sigterm(ctx context.Context, s Settings) Result {
	r := Result{Case: "sigterm"}
	if e.PID <= 0 {
		r.Err = fmt.Errorf("no server pid (--pid)")
		return r
	}
	reqs, err := goodImageRequests(e.Model)
	if err != nil {
		r.Err = err
		return r
	}
	var stopped atomic.Bool
	var mu sync.Mutex
	var t Tally
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for range 2 * s.SatConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				a := e.Send(ctx, reqs[int(seq.Add(1))%len(reqs)])
				ok := a.Code == 200 && CheckAnswer(&a) == nil
				mu.Lock()
				t.Add(a.Class(), ok, a.Code == 0 || (a.Code == 200 && !ok))
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	stopped.Store(true)
	sent := time.Now()
	if err := syscall.Kill(e.PID, syscall.SIGTERM); err != nil {
		r.Err = fmt.Errorf("SIGTERM to %d: %w", e.PID, err)
		wg.Wait()
		return r
	}
	wg.Wait()
	drained := time.Since(sent)
	code, waited, err := waitExitCode(ctx, e.ExitCodeFile, 90*time.Second)
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	r.Figures = append(r.Figures,
		Figure{Name: "lost", Value: strconv.Itoa(t.Lost), Target: "0", Met: t.Lost == 0},
		Figure{Name: "in-flight drained", Value: ms(drained)},
	)
	if err != nil {
		r.Figures = append(r.Figures, Figure{Name: "exit code", Value: err.Error(), Target: "0"})
	} else {
		r.Figures = append(r.Figures, Figure{Name: "exit code", Value: fmt.Sprintf("%d after %s", code, ms(waited)), Target: "0", Met: code == 0})
	}
	r.Notes = append(r.Notes, t.CodesNote())
	return r
}

// waitExitCode polls path for the exit status the script writes.
func waitExitCode(ctx context.Context, path string, limit time.Duration) (int, time.Duration, error) {
	start := time.Now()
	if path == "" {
		return 0, 0, fmt.Errorf("no --exit-code-file")
	}
	for time.Since(start) < limit && ctx.Err() == nil {
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			c, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return 0, time.Since(start), fmt.Errorf("exit code file %q: %w", b, err)
			}
			return c, time.Since(start), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, time.Since(start), fmt.Errorf("the server did not exit within %v", limit)
}

// windowP99s lists the p99 latency of each whole window of length win in [0, total), in ms, with the
// request count of each: "118 (174), 131 (175), ..." (requests sent after the last whole window, while the
// soak drained, are left out).
func windowP99s(lats []timed, win, total time.Duration) string {
	if win <= 0 || total < win {
		return "-"
	}
	n := int(total / win)
	bins := make([][]time.Duration, n)
	for _, l := range lats {
		if i := int(l.at / win); i >= 0 && i < n {
			bins[i] = append(bins[i], l.lat)
		}
	}
	parts := make([]string, 0, n)
	for _, b := range bins {
		parts = append(parts, fmt.Sprintf("%.0f (%d)", float64(P(b, 99))/float64(time.Millisecond), len(b)))
	}
	return strings.Join(parts, ", ")
}
