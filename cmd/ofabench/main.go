// Command ofabench is ofaserve's perf_analyzer: it loads a KServe v2 /
// Triton server over HTTP (JSON or binary tensors) or gRPC the way real
// clients do, in a closed loop of N outstanding requests or an open loop at
// a fixed or Poisson rate, measures in windows until three agree, and
// reports throughput, latency percentiles, errors and the server-side split
// as CSV, JSON and a PNG plot.
//
//	ofabench -m ofa_entailment --images imgs/ --hypotheses hyp.txt --concurrency-range 1:16:2x -f out.csv --json out.json
//	ofabench plot -o out.png a.json b.json
//	ofabench bare --model models/ofa_entailment_raw/1/model.pt --meta models/ofa_entailment/1/ofa_meta.json --batch 1,16
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "plot":
		err = runPlot(args[1:])
	case len(args) > 0 && args[0] == "bare":
		err = runBare(ctx, args[1:])
	case len(args) > 0 && args[0] == "run":
		err = runBench(ctx, args[1:])
	default:
		err = runBench(ctx, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofabench:", err)
		os.Exit(1)
	}
}
