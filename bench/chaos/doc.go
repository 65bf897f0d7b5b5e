// Package chaos reruns the overload and abuse cases of issue 15 against a
// running ofaserve on loopback and accounts for every request it sends: a
// chaos and soak harness, not a benchmark.
//
// Each case is a function of an Env (where the server listens, its pid for
// RSS, the models to use) that returns a Result: how many requests (or
// connections) it tried, how many the server handled right, how many were
// lost, the server's RSS before, at peak and after, and the figures the issue
// asks to show, each against its target. "Handled" counts what the server did
// right: the expected status code, no 5xx, a correct answer. "Lost" counts a
// request that got no answer at all (a transport error, a timeout) or a wrong
// one (a 200 whose result differs from the same request sent alone). A case
// passes when every try was handled and every figure met its target; a case
// that fails is reported as it is, never hidden.
//
// The cases: queue-full with retrying clients on a max_queue_size 8 copy of
// the model (goodput against the uncapped model, refusal p99); bad token ids
// mixed into good ones on the raw model; a JPEG whose header claims
// 8000x8000 (refusal latency, RSS under 4x16 of them); a 300 MB gRPC message;
// a slow body and an idle keep-alive connection (cut by the server's
// timeouts); clients disconnecting at once; bad inputs (encoding, shared
// memory, oversized body, bad version, bare-string data); a soak at 70 % of
// the measured capacity (errors, RSS growth, p99 first window vs last); and
// SIGTERM under load (0 lost, exit 0), always last.
//
// Usage: scripts/bench/chaos.sh [quick|full] starts bin/ofaserve on a free
// loopback port over `make models` plus the model variants the cases need,
// runs cmd/ofachaos, stops the server and prints the table. By hand:
//
//	ofachaos -u 127.0.0.1:PORT --grpc 127.0.0.1:GPORT --pid PID \
//	  --exit-code-file F --soak 1m [--cases queue,badids,...]
//
// RSS is read from /proc/PID/status (VmRSS), sampled every 20 ms during a
// case. Every case is bounded in time and request count; targets must be
// loopback addresses.
package chaos
