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
// units arrived so far, up to a horizon and a cap.
type arrivalWindow struct {
	at, until time.Time
	cap       int
	offs      []time.Duration
	cum       []int // units arrived by offs[i]
}

// forecast is the arrivals after the last forecastWindows decisions: the batcher's evidence of what waiting
// would bring, whether it waited or not (a request that arrives after a batch left is counted all the same).
type forecast struct {
	wins  [forecastWindows]arrivalWindow
	next  int
	inUse int
	pts   []arrivalPoint // scratch for curve
}

// open starts recording the arrivals after a decision made at at, for horizon, up to capUnits units.
func (f *forecast) open(at time.Time, horizon time.Duration, capUnits int) {
	w := &f.wins[f.next]
	w.at, w.until, w.cap = at, at.Add(horizon), capUnits
	w.offs, w.cum = w.offs[:0], w.cum[:0]
	f.next = (f.next + 1) % forecastWindows
	f.inUse = min(f.inUse+1, forecastWindows)
}

// arrived records units arriving at now in every window still open.
func (f *forecast) arrived(now time.Time, units int) {
	for i := range f.inUse {
		w := &f.wins[i]
		if !now.After(w.at) || now.After(w.until) {
			continue
		}
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

// arrivalPoint says that units more have arrived, on average, by off after a decision.
type arrivalPoint struct {
	off   time.Duration
	units float64
}

// curve is the expected arrivals after a decision, as a step function averaged over the windows whose horizon
// has passed by now (a window still open would understate what comes). The result is reused by the next call.
func (f *forecast) curve(now time.Time) []arrivalPoint {
	pts := f.pts[:0]
	done := 0
	for i := range f.inUse {
		w := &f.wins[i]
		if w.until.After(now) {
			continue
		}
		done++
		prev := 0
		for j, off := range w.offs {
			pts = append(pts, arrivalPoint{off: off, units: float64(w.cum[j] - prev)})
			prev = w.cum[j]
		}
	}
	slices.SortFunc(pts, func(x, y arrivalPoint) int { return int(x.off - y.off) })
	sum := 0.0
	for i := range pts {
		sum += pts[i].units / float64(done)
		pts[i].units = sum
	}
	f.pts = pts
	return pts
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
}

// waitDecision is leave now, or wait until wakeAt for expect more units (looked at again on each arrival).
type waitDecision struct {
	leave  bool
	wakeAt time.Time
	expect float64
	size   float64 // the batch size the wait is for
}

// waitGain is how much a wait must raise the batch's rate to be worth it (against noise in the model).
const waitGain = 0.02

// decideWait is the Adaptive rule. The batch leaves now unless, at some offset u within the bound, the
// arrivals the forecast expects make the batch's rate over its wait and its run, b(u) / (wait + t(b(u))),
// higher than its rate now, n / t(n); it then waits until the u with the highest such rate. The batch also
// leaves now when it is full or the cost model is not yet known.
func decideWait(in waitInput, cost *costModel, curve []arrivalPoint) waitDecision {
	leave := waitDecision{leave: true}
	if in.units >= in.max || !cost.known() {
		return leave
	}
	s := in.now.Sub(in.anchor)
	slack := in.bound - in.now.Sub(in.oldest)
	n, l := float64(in.units), float64(in.length)
	tn := cost.predict(n, l)
	if slack <= 0 || tn <= 0 {
		return leave
	}
	bar := n / tn * (1 + waitGain)
	base := 0.0 // expected arrivals by s, already here or not coming
	for _, p := range curve {
		if p.off > s {
			break
		}
		base = p.units
	}
	best := leave
	bestRate := bar
	for _, p := range curve {
		if p.off <= s {
			continue
		}
		if p.off-s > slack {
			break
		}
		k := p.units - base
		b := math.Min(float64(in.max), n+k)
		rate := b / ((p.off - s).Seconds() + cost.predict(b, l))
		if rate > bestRate {
			best, bestRate = waitDecision{wakeAt: in.anchor.Add(p.off), expect: b - n, size: b}, rate
		}
	}
	return best
}
