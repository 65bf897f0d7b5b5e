package measure

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

// DoFunc sends request number seq and reports how it ended. It must honour
// ctx.
type DoFunc func(ctx context.Context, seq uint64) kserve.Outcome

// StatsFunc reads the server's statistics for the model under test.
type StatsFunc func(ctx context.Context) (kserve.ModelStats, error)

// Settings are the measurement rules shared by every level of a sweep.
type Settings struct {
	Interval     time.Duration // --measurement-interval
	StabilityPct float64       // --stability-percentage
	MaxTrials    int           // --max-trials
	Batch        int           // -b
	Percentile   float64       // --percentile (0: use the average latency)
	// Poisson selects exponential inter-arrival times in request-rate mode
	// (otherwise constant).
	Poisson bool
	// MaxOutstanding caps in-flight requests in request-rate mode; a send
	// that would exceed it is counted as the error "client backlog".
	MaxOutstanding int
	Seed           uint64
}

// Budget bounds a whole run in requests. It is shared by all levels.
type Budget struct {
	left      atomic.Int64
	unlimited bool
	once      sync.Once
	done      chan struct{}
}

// NewBudget returns a budget of max requests; max <= 0 means unlimited.
func NewBudget(max int64) *Budget {
	b := &Budget{unlimited: max <= 0, done: make(chan struct{})}
	b.left.Store(max)
	return b
}

// Take reserves one request; false once the budget is spent.
func (b *Budget) Take() bool {
	if b.unlimited {
		return true
	}
	if b.left.Add(-1) >= 0 {
		return true
	}
	b.once.Do(func() { close(b.done) })
	return false
}

// Spent is closed once a Take failed.
func (b *Budget) Spent() <-chan struct{} { return b.done }

// Exhausted reports whether the budget is spent.
func (b *Budget) Exhausted() bool {
	select {
	case <-b.done:
		return true
	default:
		return !b.unlimited && b.left.Load() <= 0
	}
}

// Level is the result of one load level (one concurrency or one rate).
type Level struct {
	Mode  string  `json:"mode"` // "concurrency" or "request_rate"
	Value float64 `json:"value"`
	// Stable says whether three windows agreed before --max-trials or the
	// budget ran out; Result then merges those three windows, otherwise the
	// last (up to) three.
	Stable  bool     `json:"stable"`
	Trials  int      `json:"trials"`
	Result  Window   `json:"result"`
	Windows []Window `json:"windows"`
	// ErrorSamples holds the first error message seen for each status.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Truncated is set when the run's request or time budget ended this
	// level early.
	Truncated bool `json:"truncated,omitempty"`
}

// Runner measures levels.
type Runner struct {
	Settings
	Do     DoFunc
	Stats  StatsFunc // nil: no server-side figures
	Budget *Budget
	// Progress, when set, receives a one-line status about four times a
	// second and after every window.
	Progress func(line string)
}

type recorder struct {
	mu    sync.Mutex
	recs  []Record
	epoch time.Time
	sent  atomic.Int64
	fails atomic.Int64
	// samples: first error message per status, under mu.
	samples map[string]string
}

func (r *recorder) since() time.Duration { return time.Since(r.epoch) }

func (r *recorder) add(rec Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// prune drops records that ended before t.
func (r *recorder) prune(t time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.recs[:0]
	for _, x := range r.recs {
		if x.End >= t {
			kept = append(kept, x)
		}
	}
	r.recs = kept
}

func (r *recorder) do(ctx context.Context, do DoFunc, seq uint64) {
	start := r.since()
	r.sent.Add(1)
	o := do(ctx, seq)
	if ctx.Err() != nil && o.Status != "" {
		return // stopped by the harness: not the server's fault
	}
	if o.Status != "" {
		r.fails.Add(1)
		if o.Err != nil {
			r.mu.Lock()
			if _, ok := r.samples[o.Status]; !ok {
				if r.samples == nil {
					r.samples = map[string]string{}
				}
				r.samples[o.Status] = o.Err.Error()
			}
			r.mu.Unlock()
		}
	}
	r.add(Record{Start: start, End: r.since(), Send: o.Send, Recv: o.Recv, Status: o.Status})
}

// RunConcurrency keeps n requests outstanding and measures.
func (r *Runner) RunConcurrency(ctx context.Context, n int) (Level, error) {
	if n < 1 {
		return Level{}, fmt.Errorf("concurrency must be >= 1, got %d", n)
	}
	return r.run(ctx, "concurrency", float64(n), func(stop, ctx context.Context, rec *recorder, seq *atomic.Uint64) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				for stop.Err() == nil && r.Budget.Take() {
					rec.do(ctx, r.Do, seq.Add(1)-1)
				}
			})
		}
		wg.Wait()
	})
}

// RunRate sends rate requests per second regardless of completions
// (constant spacing, or Poisson arrivals) and measures.
func (r *Runner) RunRate(ctx context.Context, rate float64) (Level, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return Level{}, fmt.Errorf("request rate must be > 0, got %v", rate)
	}
	maxOut := r.MaxOutstanding
	if maxOut < 1 {
		maxOut = 1024
	}
	rng := rand.New(rand.NewPCG(r.Seed, uint64(rate*1000)))
	return r.run(ctx, "request_rate", rate, func(stop, ctx context.Context, rec *recorder, seq *atomic.Uint64) {
		var wg sync.WaitGroup
		defer wg.Wait()
		sem := make(chan struct{}, maxOut)
		next := rec.since()
		mean := float64(time.Second) / rate
		for stop.Err() == nil {
			gap := mean
			if r.Poisson {
				gap = rng.ExpFloat64() * mean
			}
			next += time.Duration(gap)
			if d := next - rec.since(); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-stop.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if !r.Budget.Take() {
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				now := rec.since()
				rec.sent.Add(1)
				rec.fails.Add(1)
				rec.add(Record{Start: now, End: now, Status: "client backlog"})
				continue
			}
			s := seq.Add(1) - 1
			wg.Go(func() {
				defer func() { <-sem }()
				rec.do(ctx, r.Do, s)
			})
		}
	})
}

type snap struct {
	st  kserve.ModelStats
	err error
}

func (r *Runner) stats(ctx context.Context) snap {
	if r.Stats == nil {
		return snap{err: errors.New("no statistics source")}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.Stats(sctx)
	return snap{st, err}
}

func (r *Runner) summarize(recs []Record, start, end time.Duration, s0, s1 snap, useStats bool) Window {
	w := Summarize(recs, start, end, r.Batch, r.Percentile)
	if !useStats {
		return w
	}
	switch {
	case s0.err != nil:
		w.ServerEr = s0.err.Error()
	case s1.err != nil:
		w.ServerEr = s1.err.Error()
	default:
		sp, err := Diff(s0.st, s1.st)
		if err != nil {
			w.ServerEr = err.Error()
		} else {
			w.Server = sp
		}
	}
	return w
}

// run measures one level. gen issues requests until stop ends, sending them
// with ctx, so that requests in flight when the level ends complete (as
// perf_analyzer lets them) instead of being cancelled into the next level.
func (r *Runner) run(ctx context.Context, mode string, value float64, gen func(stop, ctx context.Context, rec *recorder, seq *atomic.Uint64)) (Level, error) {
	if r.Interval <= 0 || r.MaxTrials < 1 || r.Batch < 1 || r.Budget == nil || r.Do == nil {
		return Level{}, errors.New("measure: Runner needs Interval > 0, MaxTrials >= 1, Batch >= 1, a Budget and Do")
	}
	lvl := Level{Mode: mode, Value: value}
	if r.Budget.Exhausted() {
		lvl.Truncated = true
		return lvl, nil
	}
	rec := &recorder{epoch: time.Now()}
	genCtx, stopGen := context.WithCancel(ctx)
	var seq atomic.Uint64
	genDone := make(chan struct{})
	go func() { defer close(genDone); gen(genCtx, ctx, rec, &seq) }()
	defer func() { stopGen(); <-genDone }()

	useStats := r.Stats != nil
	var starts, ends []snap
	for trial := 0; trial < r.MaxTrials; trial++ {
		// The next window may be merged with the two before it: keep their
		// records, drop older ones (never the ones the final merge needs).
		if n := len(lvl.Windows); n >= 2 {
			rec.prune(lvl.Windows[n-2].Start)
		}
		s0 := r.stats(ctx)
		t0 := rec.since()
		deadline := time.NewTimer(r.Interval)
		tick := time.NewTicker(250 * time.Millisecond)
		stop := false
	wait:
		for {
			select {
			case <-deadline.C:
				break wait
			case <-ctx.Done():
				stop = true
				break wait
			case <-r.Budget.Spent():
				stop = true
				break wait
			case <-genDone:
				stop = true
				break wait
			case <-tick.C:
				r.progress(fmt.Sprintf("%s %g | trial %d/%d %.1fs/%.1fs | sent %d errors %d%s",
					mode, value, trial+1, r.MaxTrials, (rec.since() - t0).Seconds(), r.Interval.Seconds(),
					rec.sent.Load(), rec.fails.Load(), lastWin(lvl.Windows)))
			}
		}
		deadline.Stop()
		tick.Stop()
		t1 := rec.since()
		s1 := r.stats(ctx)
		if stop && len(lvl.Windows) > 0 && t1-t0 < r.Interval/2 {
			// A stub window cut short by the budget says little; keep the
			// full ones.
			lvl.Truncated = true
			break
		}
		w := r.summarize(rec.snapshot(), t0, t1, s0, s1, useStats)
		lvl.Windows = append(lvl.Windows, w)
		starts, ends = append(starts, s0), append(ends, s1)
		lvl.Trials = trial + 1
		r.progress(fmt.Sprintf("%s %g | trial %d/%d done%s", mode, value, trial+1, r.MaxTrials, lastWin(lvl.Windows)))
		if Stable(lvl.Windows, r.StabilityPct, r.Percentile) {
			lvl.Stable = true
			break
		}
		if stop {
			lvl.Truncated = true
			break
		}
	}
	stopGen()
	<-genDone
	rec.mu.Lock()
	lvl.ErrorSamples = rec.samples
	rec.mu.Unlock()
	if len(lvl.Windows) == 0 {
		lvl.Truncated = true
		return lvl, ctx.Err()
	}
	k := min(3, len(lvl.Windows))
	first, last := len(lvl.Windows)-k, len(lvl.Windows)-1
	end := lvl.Windows[last].Start + lvl.Windows[last].Duration
	lvl.Result = r.summarize(rec.snapshot(), lvl.Windows[first].Start, end, starts[first], ends[last], useStats)
	return lvl, nil
}

func lastWin(ws []Window) string {
	if len(ws) == 0 {
		return ""
	}
	w := ws[len(ws)-1]
	return fmt.Sprintf(" | last: %.1f infer/s p99 %.2f ms", w.Throughput, float64(w.P99)/1e6)
}

func (r *Runner) progress(s string) {
	if r.Progress != nil {
		r.Progress(s)
	}
}
