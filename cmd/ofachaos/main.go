// Command ofachaos reruns the overload and abuse cases of issue 15 (and a
// soak) against a running ofaserve on loopback and prints a table: case,
// tried, handled, lost, server RSS before/peak/after, verdict, then each
// case's figures against their targets. The cases live in bench/chaos;
// scripts/bench/chaos.sh starts the server and runs this.
//
//	ofachaos -u 127.0.0.1:8000 --grpc 127.0.0.1:8001 --pid PID --exit-code-file F --soak 1m
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
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofachaos:", err)
	}
	os.Exit(code)
}
