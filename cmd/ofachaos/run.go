package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/bench/chaos"
	"github.com/ofaserve/ofaserve/bench/kserve"
)

// caseNames is the run order: SIGTERM ends the server, so it is last; the
// soak runs just before it, after the heavy cases have settled.
var caseNames = []string{"badinputs", "badids", "disconnect", "slowconn", "grpc", "jpeg", "queue", "soak", "sigterm"}

// runCase runs one named case.
func runCase(ctx context.Context, e *chaos.Env, s chaos.Settings, name string) chaos.Result {
	switch name {
	case "badinputs":
		return e.BadInputs(ctx, s)
	case "badids":
		return e.BadIDs(ctx, s)
	case "disconnect":
		return e.Disconnect(ctx, s)
	case "slowconn":
		return e.SlowConns(ctx, s)
	case "grpc":
		return e.GRPCHuge(ctx)
	case "jpeg":
		return e.BigJPEG(ctx, s)
	case "queue":
		return e.QueueFull(ctx, s)
	case "soak":
		return e.Soak(ctx, s)
	case "sigterm":
		return e.Sigterm(ctx, s)
	}
	return chaos.Result{Case: name, Err: fmt.Errorf("unknown case")}
}

// parseCases checks a --cases list against caseNames and returns it in run
// order.
func parseCases(list string) ([]string, error) {
	if list == "" || list == "all" {
		return caseNames, nil
	}
	want := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		if !slices.Contains(caseNames, c) {
			return nil, fmt.Errorf("--cases: unknown case %q (known: %s)", c, strings.Join(caseNames, ","))
		}
		want[c] = true
	}
	var out []string
	for _, c := range caseNames {
		if want[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// run parses flags, runs the cases and prints the table to out; it returns
// 0 when every case passed, 1 when one failed, 2 on a usage error.
func run(ctx context.Context, args []string, out, errw io.Writer) (int, error) {
	fs := flag.NewFlagSet("ofachaos", flag.ContinueOnError)
	fs.SetOutput(errw)
	u := fs.String("u", "127.0.0.1:8000", "HTTP host:port of the server (loopback only)")
	grpcAddr := fs.String("grpc", "127.0.0.1:8001", "gRPC host:port (loopback only; empty skips the gRPC case)")
	pid := fs.Int("pid", 0, "server pid: RSS from /proc/PID/status, and the SIGTERM case's target")
	exitFile := fs.String("exit-code-file", "", "file where the launcher writes the server's exit status (SIGTERM case)")
	model := fs.String("model", "ofa_entailment", "the image model")
	capped := fs.String("capped-model", "ofa_entailment_q8", "its copy with max_queue_size 8")
	raw := fs.String("raw-model", "ofa_entailment_raw", "the raw-tensor model (token ids)")
	cases := fs.String("cases", "all", "comma-separated cases to run: "+strings.Join(caseNames, ","))
	var s chaos.Settings
	fs.IntVar(&s.SatConc, "sat-concurrency", 16, "the saturation concurrency (the queue case runs 10x it; the soak's capacity loop runs it)")
	fs.DurationVar(&s.QueueDur, "queue-duration", 15*time.Second, "each of the queue case's two runs")
	fs.IntVar(&s.BadGood, "good", 2000, "good requests of the bad-token-ids case")
	fs.IntVar(&s.BadBad, "bad", 200, "bad requests mixed among them")
	fs.IntVar(&s.JPEGTries, "jpeg-tries", 8, "lone 8000x8000 requests")
	fs.DurationVar(&s.SlowWait, "slow-wait", 15*time.Second, "how long a slow or idle connection may stay open before it counts as held")
	fs.IntVar(&s.Disconnect, "disconnect", 500, "clients that close at once")
	fs.IntVar(&s.BadTries, "bad-tries", 5, "tries of each bad input (the oversized body at most 2)")
	fs.Int64Var(&s.MaxBody, "max-body", 64<<20, "the server's HTTP body limit (--http-max-input-size)")
	fs.DurationVar(&s.Soak, "soak", 10*time.Minute, "the soak's length")
	fs.Float64Var(&s.SoakLoad, "soak-load", 0.7, "the soak's load, a fraction of the measured capacity")
	fs.DurationVar(&s.CapDur, "capacity-duration", 8*time.Second, "the closed loop that measures capacity before the soak")
	timeout := fs.Duration("request-timeout", 90*time.Second, "the most one request may wait for its answer (then it counts as lost)")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	names, err := parseCases(*cases)
	if err != nil {
		return 2, err
	}
	if s.SatConc < 1 || s.BadGood < 0 || s.BadBad < 0 || s.JPEGTries < 1 || s.BadTries < 1 || s.Soak <= 0 || s.SoakLoad <= 0 || s.SoakLoad > 1 {
		return 2, fmt.Errorf("bad settings %+v", s)
	}
	base, hostport, err := kserve.BaseURL(*u)
	if err != nil {
		return 2, err
	}
	for _, h := range []string{hostport, *grpcAddr} {
		if h == "" {
			continue
		}
		if err := kserve.CheckLoopback(ctx, h); err != nil {
			return 2, err
		}
	}
	e := &chaos.Env{
		Base: base, HostPort: hostport, GRPC: *grpcAddr, PID: *pid, ExitCodeFile: *exitFile,
		Model: *model, CappedModel: *capped, RawModel: *raw,
		HC:  chaos.NewHTTPClient(max(10*s.SatConc, s.Disconnect)+8, *timeout),
		Log: func(f string, a ...any) { fmt.Fprintf(errw, "[ofachaos] "+f+"\n", a...) },
	}
	var results []chaos.Result
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		if w, quiet := chaos.Settle(ctx, *pid, 90*time.Second); !quiet {
			e.Log("%s: the server was still busy after %v; starting anyway", n, w.Round(time.Second))
		}
		e.Log("case %s", n)
		smp := chaos.StartSampler(*pid, 20*time.Millisecond)
		start := time.Now()
		r := runCase(ctx, e, s, n)
		r.Elapsed = time.Since(start)
		r.RSSBefore, r.RSSPeak, r.RSSAfter = smp.Stop()
		e.Log("case %s: tried %d handled %d lost %d in %.1fs", n, r.Tried, r.Handled, r.Lost, r.Elapsed.Seconds())
		results = append(results, r)
	}
	if err := chaos.Format(out, results); err != nil {
		return 1, err
	}
	for i := range results {
		if !results[i].Pass() {
			return 1, nil
		}
	}
	return 0, nil
}
