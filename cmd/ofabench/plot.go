package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/ofaserve/ofaserve/bench/report"
)

func runPlot(args []string) error {
	fs := flag.NewFlagSet("ofabench plot", flag.ContinueOnError)
	out := fs.String("o", "latency_vs_throughput.png", "output image (.png, .svg or .pdf)")
	title := fs.String("title", "p99 latency vs throughput", "plot title")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ofabench plot [-o out.png] [-title T] result.json...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("plot: no result JSON files given")
	}
	var results []*report.Result
	for _, p := range fs.Args() {
		r, err := report.ReadJSON(p)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if err := report.PlotPNG(*out, *title, results); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", *out)
	return nil
}
