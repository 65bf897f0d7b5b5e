package batcher

import (
	"math"
	"slices"
	"time"
)

// This file is "when it leaves" under the Adaptive policy: a cost model learned from the model's own runs, a
// forecast of arrivals learned from what came after earlier decisions, and the rule that reads both
// (decideWait, a pure function of its inputs like queue.form). Everything here runs under Batcher.mu.

// costModel is t(b, L) = a + c·b + d·L, fitted by exponentially weighted least squares over recent runs.
type costModel struct {
	// Decayed sums over runs: weight, b, L, t (seconds) and their products.
	w, b, l, t, bb, ll, bl, bt, lt float64
	runs                           int
	a, c, d                        float64 // seconds, seconds per unit, seconds per unit of L
}

// typical is the recent mean batch size in units (the weighted mean of b over the runs).
func (m *costModel) typical() float64 {
	if m.w == 0 {
		return 0
	}
	return m.b / m.w
}

const (
	costDecay   = 1 - 1.0/64 // a run's weight halves after ~44 newer runs
	costRidge   = 1e-3       // added to the variance of b and of L: a slope stays 0 until its variable varies
	costMinRuns = 2          // runs before the model is used
)

// observe adds one successful run of b units and length l that kept its instance busy for d.
func (m *costModel) observe(b, l int, d time.Duration) {
	fb, fl, ft := float64(b), float64(l), d.Seconds()
	k := costDecay
	m.w = m.w*k + 1
	m.b = m.b*k + fb
	m.l = m.l*k + fl
	m.t = m.t*k + ft
	m.bb = m.bb*k + fb*fb
	m.ll = m.ll*k + fl*fl
	m.bl = m.bl*k + fb*fl
	m.bt = m.bt*k + fb*ft
	m.lt = m.lt*k + fl*ft
	m.runs++
	m.fit()
}

// fit solves the centred normal equations for c and d (with the ridge), then a from the means. A slope that
// comes out negative is dropped and the other refitted alone; a negative intercept is clamped to 0.
func (m *costModel) fit() {
	mb, ml, mt := m.b/m.w, m.l/m.w, m.t/m.w
	vbb := max(0, m.bb/m.w-mb*mb) + costRidge
	vll := max(0, m.ll/m.w-ml*ml) + costRidge
	vbl := m.bl/m.w - mb*ml
	cbt := m.bt/m.w - mb*mt
	clt := m.lt/m.w - ml*mt
	det := vbb*vll - vbl*vbl
	c := (cbt*vll - clt*vbl) / det
	d := (clt*vbb - cbt*vbl) / det
	if c < 0 {
		c, d = 0, max(0, clt/vll)
	}
	if d < 0 {
		c, d = max(0, cbt/vbb), 0
	}
	m.a, m.c, m.d = max(0, mt-c*mb-d*ml), c, d
}

func (m *costModel) known() bool { return m.runs >= costMinRuns }

// predict is t(b, l) in seconds.
func (m *costModel) predict(b, l float64) float64 { return m.a + m.c*b + m.d*l }

// predictDur is t(b, l) as a Duration.
func (m *costModel) predictDur(b, l int) time.Duration {
	return time.Duration(m.predict(float64(b), float64(l)) * float64(time.Second))
}

// forecastWindows is how many recent decisions the arrival forecast remembers.
const forecastWindows = 8

// arrivalWindow records what arrived after one decision: each arrival's offset from the decision and the
// units arrived so far, up to a horizon and a cap, and the most units it saw in the batcher at once.
type arrivalWindow struct {
	at, until time.Time
	cap       int
	offs      []time.Duration
	cum       []int // units arrived by offs[i]
	peak      int
}

// forecast is the arrivals after the last forecastWindows decisions: the batcher's evidence of what waiting
// would bring, whether it waited or not (a request that arrives after a batch left is counted all the same).
type forecast struct {
	wins  [forecastWindows]arrivalWindow
	next  int
	inUse int
	done  []*arrivalWindow // scratch for complete
}

// open starts recording the arrivals after a decision made at at, for horizon, up to capUnits units;
// inSystem is the units in the batcher then.
func (f *forecast) open(at time.Time, horizon time.Duration, capUnits, inSystem int) {
	w := &f.wins[f.next]
	w.at, w.until, w.cap, w.peak = at, at.Add(horizon), capUnits, inSystem
	w.offs, w.cum = w.offs[:0], w.cum[:0]
	f.next = (f.next + 1) % forecastWindows
	f.inUse = min(f.inUse+1, forecastWindows)
}

// arrived records units arriving at now, which makes inSystem units in the batcher, in every window still
// open.
func (f *forecast) arrived(now time.Time, units, inSystem int) {
	for i := range f.inUse {
		w := &f.wins[i]
		if !now.After(w.at) || now.After(w.until) {
			continue
		}
		w.peak = max(w.peak, inSystem)
		total := 0
		if n := len(w.cum); n > 0 {
			total = w.cum[n-1]
		}
		if total >= w.cap {
			continue
		}
		w.offs = append(w.offs, now.Sub(w.at))
		w.cum = append(w.cum, total+units)
	}
}

// complete returns the windows whose horizon has passed by now (a window still open would understate what
// comes), and the most units those windows saw in the batcher at once.
func (f *forecast) complete(now time.Time) (wins []*arrivalWindow, peak int) {
	wins = f.done[:0]
	for i := range f.inUse {
		if w := &f.wins[i]; !w.until.After(now) {
			wins = append(wins, w)
			peak = max(peak, w.peak)
		}
	}
	f.done = wins
	return wins, peak
}

// unitsBy is how many units had arrived in w by offset x.
func (w *arrivalWindow) unitsBy(x time.Duration) int {
	i, _ := slices.BinarySearch(w.offs, x+1) // arrivals at offsets <= x
	if i == 0 {
		return 0
	}
	return w.cum[i-1]
}

// waitInput is the state decideWait reads: the batch that would leave now, the clock and the bound.
type waitInput struct {
	now    time.Time
	anchor time.Time // when this batch could first have started (its instance free, a request queued)
	oldest time.Time // queue time of its oldest request
	units  int       // its size if it leaves now
	length int       // its L
	max    int       // max_batch_size
	bound  time.Duration
	// typical is the batch size the units would run in if they did not join this one: the recent mean.
	typical float64
	// arrived is the units of the batch that arrived after anchor, the last of them at last; room is how
	// many more units can come: the most seen in the batcher at once minus those in it now (a client
	// waiting for an answer sends nothing).
	arrived int
	last    time.Time
	room    int
}

// waitDecision is leave now, or wait until wakeAt for expect more units (the forecast's mean; looked at
// again on each arrival).
type waitDecision struct {
	leave  bool
	wakeAt time.Time
	expect float64
}

// waitGain is the least a wait must gain, as a share of the batch's run time (against noise in the model).
// minExpect is the fewest units worth a wait. The forecast's mean is taken with one more window in which
// nothing came: with few windows to go on, the best of many noisy guesses is mostly noise (under steady
// arrivals, whatever came after one decision says nothing of what comes after the next).
const (
	waitGain     = 0.01
	minExpect    = 0.5
	minScenarios = 2 // windows that saw as many arrivals as have come
)

// decideWait is the Adaptive rule.
//
// What a wait is worth: a unit that joins this batch instead of a later one saves the device time it would
// cost in the batches the model typically runs, t(b̄)/b̄ for the recent mean batch b̄; it costs the wait w
// (the device idle) and its marginal compute in this batch. Waiting w for k more units pays by
// V = k·t(b̄)/b̄ - w - (t(n+k) - t(n)); with t = a + b·c, V = k·a/b̄ - w: a wait pays when the expected
// units come sooner than a/b̄ each. Steady arrivals at rate λ settle at b̄ = λ·a/(1 - λ·c), where
// λ·a/b̄ < 1: no wait pays, at any load. Two cohorts that alternate at b̄ = max/2 are worth 2·a/max a unit:
// merging them pays when the second comes within a.
//
// What will come: each remembered window is a scenario of what followed a decision. The batch has seen
// `arrived` units since its anchor, the last one δ ago. Only windows that saw at least as many count; each
// is read from the point x0 where it reached that many, plus δ: the units it saw after that point, by x0 +
// δ + w, are what it expects by w from now (arrivals it saw between x0 and x0 + δ are overdue here and given
// up), and never more than room: a window that saw more counts as room. The expectation k(w) is the mean of
// those counts over the windows and one more in which nothing came. The wait is weighed with the part of k
// the windows agree on, s(w) = k(w) less its standard error (over the same windows): V uses s, a wait needs s >= minExpect and at least minScenarios
// windows. Windows that all saw the same cohort give s close to k; under steady arrivals the counts spread
// and s falls below what a wait needs, where a mean alone, maximized over many candidate waits, sometimes
// looks worth it by chance.
//
// The batch waits for the w with the largest V, if V beats waitGain·t(n) and the wait stays within the
// bound; otherwise it leaves now. It also leaves at once when full, when nothing more can come, or while
// the cost model is not yet known.
func decideWait(in waitInput, cost *costModel, wins []*arrivalWindow) waitDecision {
	leave := waitDecision{leave: true}
	if in.units >= in.max || in.room <= 0 || !cost.known() {
		return leave
	}
	slack := in.bound - in.now.Sub(in.oldest)
	n, l, m := float64(in.units), float64(in.length), float64(in.max)
	tn := cost.predict(n, l)
	if slack <= 0 || tn <= 0 {
		return leave
	}
	typ := math.Max(1, math.Min(m, in.typical))
	worth := cost.predict(typ, l) / typ
	last := in.last
	if in.arrived == 0 {
		last = in.anchor
	}
	delta := in.now.Sub(last)
	type scenario struct {
		w    *arrivalWindow
		from time.Duration // x0 + δ
		base int           // units it saw by then
	}
	var sc [forecastWindows]scenario
	ns := 0
	for _, w := range wins {
		if w.unitsBy(w.until.Sub(w.at)) < in.arrived {
			continue // it saw fewer than have come: another regime
		}
		var x0 time.Duration
		if in.arrived > 0 {
			x0 = w.offs[slices.IndexFunc(w.cum, func(c int) bool { return c >= in.arrived })]
		}
		sc[ns] = scenario{w: w, from: x0 + delta, base: w.unitsBy(x0 + delta)}
		ns++
	}
	if ns < minScenarios {
		return leave
	}
	best, bestV := leave, waitGain*tn
	for i := range ns {
		for _, off := range sc[i].w.offs {
			wait := off - sc[i].from
			if wait <= 0 {
				continue
			}
			if wait > slack {
				break
			}
			// Each scenario counts what this batch could take of what it saw (at most limit), so that the
			// scenarios' agreement is measured on that: counts that spread widely all read as "full" once
			// capped, and would otherwise pass for a certain unit when the room left is one.
			limit := math.Min(float64(in.room), m-n)
			sum, sq := 0.0, 0.0
			for _, s := range sc[:ns] {
				u := math.Min(limit, float64(s.w.unitsBy(s.from+wait)-s.base))
				sum, sq = sum+u, sq+u*u
			}
			cnt := float64(ns + 1) // and the window in which nothing came
			k := sum / cnt
			sure := k - math.Sqrt(math.Max(0, sq/cnt-k*k)/cnt)
			if sure < minExpect {
				continue
			}
			if v := sure*worth - wait.Seconds() - (cost.predict(n+sure, l) - tn); v > bestV {
				best, bestV = waitDecision{wakeAt: in.now.Add(wait), expect: k}, v
			}
		}
	}
	return best
}
