package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestBisect runs batches of ids through a fake module that fails any part holding a bad id, and checks
// who is blamed, with which code, and that every good item gets its own result.
func TestBisect(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		bad     []int // items whose presence fails a run
		broken  bool  // every run fails (a broken device)
		trusted bool
		// want, by item: "" success, "400" or "500" the code it fails with
		want          map[int]string
		guilty, alone int
		bisected      bool
	}{
		{name: "no offender", n: 8, want: map[int]string{}},
		{name: "one offender", n: 8, bad: []int{5}, want: map[int]string{5: "400"}, guilty: 1, alone: 1, bisected: true},
		{name: "two offenders", n: 9, bad: []int{0, 7}, want: map[int]string{0: "400", 7: "400"}, guilty: 2, alone: 2, bisected: true},
		{name: "adjacent offenders", n: 4, bad: []int{1, 2}, want: map[int]string{1: "400", 2: "400"}, guilty: 2, alone: 2, bisected: true},
		{name: "all fail", n: 5, broken: true, want: map[int]string{0: "500", 1: "500", 2: "500", 3: "500", 4: "500"}, alone: 5, bisected: true},
		{name: "all bad items", n: 3, bad: []int{0, 1, 2}, want: map[int]string{0: "500", 1: "500", 2: "500"}, alone: 3, bisected: true},
		{name: "single untrusted", n: 1, bad: []int{0}, want: map[int]string{0: "500"}, alone: 1},
		{name: "single trusted", n: 1, bad: []int{0}, trusted: true, want: map[int]string{0: "400"}, guilty: 1, alone: 1},
		{name: "trust ignored for batches", n: 2, broken: true, trusted: true, want: map[int]string{0: "500", 1: "500"}, alone: 2, bisected: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batch := make([]int, tc.n)
			for i := range batch {
				batch[i] = i
			}
			isBad := map[int]bool{}
			for _, b := range tc.bad {
				isBad[b] = true
			}
			run := func(_ context.Context, part []int) ([]string, error) {
				if tc.broken {
					return nil, Errorf(CodeInternal, "PyTorch execute failure: device lost")
				}
				var out []string
				for _, v := range part {
					if isBad[v] {
						return nil, Errorf(CodeInternal, "PyTorch execute failure: index out of range in self")
					}
					out = append(out, fmt.Sprint("r", v))
				}
				return out, nil
			}
			o := Bisect(context.Background(), batch, tc.trusted, run)
			for i := range batch {
				want := tc.want[i]
				err := o.Errs[i]
				switch {
				case want == "" && err != nil:
					t.Errorf("item %d: %v, want success", i, err)
				case want == "" && o.Results[i] != fmt.Sprint("r", i):
					t.Errorf("item %d: result %q", i, o.Results[i])
				case want == "400" && (err == nil || CodeOf(err) != CodeInvalidArg):
					t.Errorf("item %d: %v, want INVALID_ARG", i, err)
				case want == "500" && (err == nil || CodeOf(err) != CodeInternal):
					t.Errorf("item %d: %v, want INTERNAL", i, err)
				}
				if want != "" && err != nil && !strings.Contains(err.Error(), "PyTorch execute failure") {
					t.Errorf("item %d: %q lost the module's message", i, err)
				}
			}
			if o.Guilty != tc.guilty || o.Alone != tc.alone || o.Bisected != tc.bisected {
				t.Errorf("guilty %d alone %d bisected %v, want %d %d %v", o.Guilty, o.Alone, o.Bisected, tc.guilty, tc.alone, tc.bisected)
			}
			// A halving walk runs at most 2n-1 parts.
			if o.Runs < 1 || o.Runs > 2*tc.n-1 {
				t.Errorf("%d runs for %d items", o.Runs, tc.n)
			}
		})
	}
}

// TestBisectOneOffenderIsLogarithmic: one offender among 64 costs 1 + 2*log2(64) runs, not 64.
func TestBisectOneOffenderIsLogarithmic(t *testing.T) {
	batch := make([]int, 64)
	for i := range batch {
		batch[i] = i
	}
	o := Bisect(context.Background(), batch, false, func(_ context.Context, part []int) ([]int, error) {
		for _, v := range part {
			if v == 41 {
				return nil, errors.New("bad")
			}
		}
		return part, nil
	})
	if o.Runs != 13 {
		t.Errorf("%d runs, want 13", o.Runs)
	}
	if CodeOf(o.Errs[41]) != CodeInvalidArg || o.Guilty != 1 || o.Succeeded != 63 {
		t.Errorf("item 41: %v (guilty %d)", o.Errs[41], o.Guilty)
	}
}

// TestBisectCancelled: a context cancelled mid-bisection stops it; items not yet settled fail with the
// context's error (CANCELLED), nobody is blamed, results already found are kept.
func TestBisectCancelled(t *testing.T) {
	batch := []int{0, 1, 2, 3, 4, 5, 6, 7}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	o := Bisect(ctx, batch, true, func(ctx context.Context, part []int) ([]int, error) {
		runs++
		if runs == 3 { // whole batch, [0,4) fails, [0,2) succeeds and then the client goes away
			cancel()
			return part, nil
		}
		for _, v := range part {
			if v == 3 {
				return nil, errors.New("bad")
			}
		}
		return part, nil
	})
	if o.Errs[0] != nil || o.Errs[1] != nil || o.Results[1] != 1 {
		t.Errorf("items 0,1: %v %v %v, want their results", o.Errs[0], o.Errs[1], o.Results[:2])
	}
	for i := 2; i < len(batch); i++ {
		if !errors.Is(o.Errs[i], context.Canceled) || CodeOf(o.Errs[i]) != CodeCancelled {
			t.Errorf("item %d: %v, want context.Canceled", i, o.Errs[i])
		}
	}
	if o.Guilty != 0 || o.Runs != 3 {
		t.Errorf("guilty %d runs %d, want 0 3", o.Guilty, o.Runs)
	}
}

// TestBisectWrongResultCount: a run that returns the wrong number of results counts as failed.
func TestBisectWrongResultCount(t *testing.T) {
	o := Bisect(context.Background(), []int{1, 2}, false, func(_ context.Context, part []int) ([]int, error) {
		return nil, nil
	})
	for i, err := range o.Errs {
		if err == nil || CodeOf(err) != CodeInternal {
			t.Errorf("item %d: %v, want INTERNAL", i, err)
		}
	}
}
