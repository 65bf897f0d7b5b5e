package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured value set against its target.
type Figure struct {
	Name   string // "goodput ratio", "refusal p99"
	Value  string // as measured, formatted
	Target string // "≥ 0.90"; "" for a figure reported without a target
	Met    bool   // true when the value meets Target (ignored without one)
}

// Result is what one case found.
type Result struct {
	Case    string
	Tried   int // requests or connections the case made
	Handled int // of Tried, those the server got right
	Lost    int // of Tried, those without an answer or with a wrong one
	// RSS of the server in bytes: before the case, its peak during the case,
	// after it; 0 when not sampled.
	RSSBefore, RSSPeak, RSSAfter int64
	Figures                      []Figure
	Notes                        []string // what went wrong, briefly (status counts, errors)
	Elapsed                      time.Duration
	Err                          error // the case could not run (setup failed)
}

// Pass reports whether the case ran, every try was handled and nothing was
// lost, and every figure with a target met it.
func (r *Result) Pass() bool {
	if r.Err != nil || r.Tried == 0 || r.Handled != r.Tried || r.Lost != 0 {
		return false
	}
	for _, f := range r.Figures {
		if f.Target != "" && !f.Met {
			return false
		}
	}
	return true
}

// Tally counts the outcomes of one case: each try is handled, lost, or
// neither (answered, but wrongly: a 5xx, an unexpected code).
type Tally struct {
	Tried, Handled, Lost int
	// Codes counts the outcomes by class ("200", "503", "transport") for the
	// notes.
	Codes map[string]int
}

// Add records one try: its outcome class, whether it was handled right and
// whether it was lost.
func (t *Tally) Add(class string, handled, lost bool) {
	if t.Codes == nil {
		t.Codes = map[string]int{}
	}
	t.Tried++
	t.Codes[class]++
	if handled {
		t.Handled++
	}
	if lost {
		t.Lost++
	}
}

// Merge adds o's counts to t.
func (t *Tally) Merge(o Tally) {
	if t.Codes == nil {
		t.Codes = map[string]int{}
	}
	t.Tried += o.Tried
	t.Handled += o.Handled
	t.Lost += o.Lost
	for k, v := range o.Codes {
		t.Codes[k] += v
	}
}

// CodesNote formats the outcome counts in a stable order: "200×436 503×26241".
func (t *Tally) CodesNote() string {
	keys := make([]string, 0, len(t.Codes))
	for k := range t.Codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, t.Codes[k]))
	}
	return strings.Join(parts, " ")
}

// MB formats a byte count in MB ("-" for 0, not sampled).
func MB(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(b)/1e6)
}

// Format writes the table: one row per case, then each case's figures and
// notes below the table.
func Format(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\ttried\thandled\tlost\tRSS MB before\tpeak\tafter\ttime\tverdict")
	for i := range rs {
		r := &rs[i]
		verdict := "PASS"
		if !r.Pass() {
			verdict = "FAIL"
		}
		if r.Err != nil {
			verdict = "ERROR"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%.1fs\t%s\n", r.Case, r.Tried, r.Handled, r.Lost,
			MB(r.RSSBefore), MB(r.RSSPeak), MB(r.RSSAfter), r.Elapsed.Seconds(), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for i := range rs {
		r := &rs[i]
		if len(r.Figures) == 0 && len(r.Notes) == 0 && r.Err == nil {
			continue
		}
		fmt.Fprintf(w, "%s:\n", r.Case)
		if r.Err != nil {
			fmt.Fprintf(w, "  error: %v\n", r.Err)
		}
		for _, f := range r.Figures {
			mark := ""
			if f.Target != "" {
				mark = "  target " + f.Target + " " + map[bool]string{true: "met", false: "MISSED"}[f.Met]
			}
			fmt.Fprintf(w, "  %s: %s%s\n", f.Name, f.Value, mark)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return nil
}
