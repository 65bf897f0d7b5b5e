package report

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Point is one level on a curve: its load (concurrency or request rate),
// throughput and p99 latency.
type Point struct{ Load, Throughput, P99ms float64 }

// Curves groups the levels of results by label (results with the same
// label are merged into one curve) and orders each curve by load, so the
// line follows the sweep even where noise makes throughput fall.
// Levels without completed requests are left out.
func Curves(results []*Result) (labels []string, curves map[string][]Point) {
	curves = map[string][]Point{}
	for _, r := range results {
		lbl := r.Label
		if lbl == "" {
			lbl = fmt.Sprintf("%s %s %s b%d", r.Model, r.Protocol, r.Format, r.Batch)
		}
		if _, ok := curves[lbl]; !ok {
			labels = append(labels, lbl)
		}
		for _, l := range r.Levels {
			if l.Result.Requests == 0 {
				continue
			}
			curves[lbl] = append(curves[lbl], Point{l.Value, l.Result.Throughput, float64(l.Result.P99) / 1e6})
		}
	}
	for _, pts := range curves {
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].Load < pts[j].Load })
	}
	return labels, curves
}

// PlotPNG draws p99 latency (ms) against throughput (inferences/s), one
// line per label, and writes it to path (.png, .svg or .pdf by extension).
func PlotPNG(path, title string, results []*Result) error {
	labels, curves := Curves(results)
	if len(labels) == 0 {
		return fmt.Errorf("nothing to plot: no results")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "throughput (inferences/s)"
	p.Y.Label.Text = "p99 latency (ms)"
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	for i, lbl := range labels {
		pts := curves[lbl]
		xys := make(plotter.XYs, len(pts))
		for j, pt := range pts {
			xys[j] = plotter.XY{X: pt.Throughput, Y: pt.P99ms}
		}
		if len(xys) == 0 {
			continue
		}
		line, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("plotting %q: %w", lbl, err)
		}
		c := plotutil.Color(i)
		line.Color = c
		line.Width = vg.Points(1.5)
		sc.Color = c
		sc.Shape = plotutil.Shape(i)
		p.Add(line, sc)
		p.Legend.Add(lbl, line, sc)
	}
	p.BackgroundColor = color.White
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving plot: %w", err)
	}
	return nil
}
