package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Settings bound the cases.
type Settings struct {
	SatConc    int           // the saturation concurrency (queue case runs 10x it)
	QueueDur   time.Duration // each of the two queue-full runs
	BadGood    int           // good requests of the bad-ids case
	BadBad     int           // bad requests among them
	JPEGTries  int           // lone 8000x8000 requests
	SlowWait   time.Duration // how long a slow or idle connection may stay open before it counts as held
	Disconnect int           // clients that close at once
	BadTries   int           // tries of each bad input
	MaxBody    int64         // the server's HTTP body limit
	Soak       time.Duration // the soak's length
	SoakLoad   float64       // its load, a fraction of the measured capacity
	CapDur     time.Duration // the closed loop that measures capacity
}

// loopStats is what a closed loop of retrying clients saw.
type loopStats struct {
	tally    Tally
	ok       int             // 200s
	refused  []time.Duration // latencies of 503s
	accepted []time.Duration // latencies of 200s
	dur      time.Duration
}

// closedLoop runs conc clients for dur, each sending reqs round-robin and,
// on a 503, retrying at once. refuseOK says whether a 503 is a handled
// answer (a capped queue) or a failure.
func (e *Env) closedLoop(ctx context.Context, reqs []Encoded, conc int, dur time.Duration, refuseOK bool) loopStats {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	var st loopStats
	var seq atomic.Uint64
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r := reqs[int(seq.Add(1))%len(reqs)]
				a := e.Send(ctx, r)
				if ctx.Err() != nil && a.Code == 0 {
					return // cut by the end of the run, not by the server
				}
				mu.Lock()
				switch {
				case a.Code == 200:
					err := CheckAnswer(&a)
					st.tally.Add("200", err == nil, err != nil)
					if err == nil {
						st.ok++
						st.accepted = append(st.accepted, a.Latency)
					}
				case a.Code == 503:
					st.tally.Add("503", refuseOK, false)
					st.refused = append(st.refused, a.Latency)
				case a.Code != 0:
					st.tally.Add(a.Class(), false, false)
				default:
					st.tally.Add(a.Class(), false, true)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st.dur = time.Since(start)
	return st
}

// QueueFull is case 1: 10x the saturation concurrency, clients retrying a
// 503 at once, first on the uncapped model and then on its max_queue_size 8
// copy; goodput (200s per second) of the capped run against the uncapped
// one, and the p99 of the refusals.
func (e *Env) QueueFull(ctx context.Context, s Settings) Result {
	r := Result{Case: "queue-full"}
	reqs, err := goodImageRequests(e.Model)
	if err != nil {
		r.Err = err
		return r
	}
	capped := make([]Encoded, len(reqs))
	for i, q := range reqs {
		q.Path = "/v2/models/" + e.CappedModel + "/infer"
		capped[i] = q
	}
	conc := 10 * s.SatConc
	e.logf("queue-full: warming both models, %d clients for 3s each (not counted)", s.SatConc)
	e.closedLoop(ctx, reqs, s.SatConc, 3*time.Second, false)
	e.closedLoop(ctx, capped, s.SatConc, 3*time.Second, true)
	Settle(ctx, e.PID, time.Minute)
	e.logf("queue-full: %d clients for %v on %s", conc, s.QueueDur, e.Model)
	c0, err0 := ReadCPUTime(e.PID)
	base := e.closedLoop(ctx, reqs, conc, s.QueueDur, false)
	c1, err1 := ReadCPUTime(e.PID)
	Settle(ctx, e.PID, time.Minute)
	e.logf("queue-full: %d clients for %v on %s", conc, s.QueueDur, e.CappedModel)
	c2, err2 := ReadCPUTime(e.PID)
	cap8 := e.closedLoop(ctx, capped, conc, s.QueueDur, true)
	c3, err3 := ReadCPUTime(e.PID)
	var t Tally
	t.Merge(base.tally)
	t.Merge(cap8.tally)
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	gBase := float64(base.ok) / base.dur.Seconds()
	gCap := float64(cap8.ok) / cap8.dur.Seconds()
	ratio := 0.0
	if gBase > 0 {
		ratio = gCap / gBase
	}
	r.Figures = append(r.Figures,
		Figure{Name: "goodput uncapped", Value: fmt.Sprintf("%.1f/s (p99 %s)", gBase, ms(P(base.accepted, 99)))},
		Figure{Name: "goodput max_queue_size 8", Value: fmt.Sprintf("%.1f/s (accepted p99 %s)", gCap, ms(P(cap8.accepted, 99)))},
		Figure{Name: "goodput ratio", Value: fmt.Sprintf("%.2f", ratio), Target: "≥ 0.90", Met: ratio >= 0.9},
		below("refusal p99", P(cap8.refused, 99), 5*time.Millisecond),
	)
	if len(cap8.refused) == 0 {
		r.Figures[len(r.Figures)-1].Met = false
		r.Notes = append(r.Notes, "the capped model refused nothing: the queue never filled")
	}
	if err0 == nil && err1 == nil && err2 == nil && err3 == nil {
		// Where the server's CPU went: per answer of the uncapped run, and in the capped run the cores it kept
		// busy and what that cost per request it answered (200 or 503), refusals being nearly all of them.
		answered := cap8.ok + len(cap8.refused)
		r.Figures = append(r.Figures, Figure{Name: "server CPU", Value: fmt.Sprintf(
			"uncapped %.2f cores, %s per 200; capped %.2f cores, %d answers/s, %s per answer",
			(c1-c0).Seconds()/base.dur.Seconds(), perEach(c1-c0, base.ok),
			(c3-c2).Seconds()/cap8.dur.Seconds(), int(float64(answered)/cap8.dur.Seconds()),
			perEach(c3-c2, answered))})
	}
	r.Notes = append(r.Notes, "uncapped: "+base.tally.CodesNote(), "capped: "+cap8.tally.CodesNote())
	return r
}

// perEach is d shared over n, "-" for none.
func perEach(d time.Duration, n int) string {
	if n <= 0 {
		return "-"
	}
	return (d / time.Duration(n)).Round(time.Microsecond).String()
}
