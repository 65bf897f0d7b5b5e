package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/server"
)

// limits are the flags that bound connections, memory and access: HTTP
// timeouts, gRPC stream caps, Go's soft memory limit, restricted API groups
// and TLS certificates.
type limits struct {
	readTimeout, idleTimeout, writeTimeout time.Duration
	grpcMaxStreams                         uint
	memoryLimit                            string // as given; parsed into memoryBytes
	memoryBytes                            int64  // 0: none
	memoryReturn                           time.Duration
	httpRestricted, grpcRestricted         []string
	httpRestrictions, grpcRestrictions     server.Restrictions
	tls                                    server.TLSOptions
	grpcUseSSL                             bool
}

func (l *limits) flags(fs *flag.FlagSet) {
	fs.DurationVar(&l.readTimeout, "http-read-timeout", 60*time.Second, "longest time to read one HTTP request, body included (0: no limit)")
	fs.DurationVar(&l.idleTimeout, "http-idle-timeout", 120*time.Second, "longest time an idle HTTP keep-alive connection stays open (0: no limit)")
	fs.DurationVar(&l.writeTimeout, "http-write-timeout", 0, "longest time from a request's headers to the end of its response, inference included (0, the default: no limit, so that a slow legitimate inference is not cut; queue timeouts bound the wait)")
	fs.UintVar(&l.grpcMaxStreams, "grpc-max-concurrent-streams", 1024, "most gRPC calls one connection runs at once (0: gRPC's default, no limit); gRPC messages are capped at --http-max-input-size")
	fs.StringVar(&l.memoryLimit, "memory-limit", "", "Go's soft memory limit (runtime/debug.SetMemoryLimit), e.g. 2GiB or 500MB; empty: none")
	fs.DurationVar(&l.memoryReturn, "memory-return-interval", 5*time.Second, "how often to check whether the heap shrank after a burst and return the freed memory to the OS (0: off)")
	fs.Var((*stringList)(&l.httpRestricted), "http-restricted-api", "restrict HTTP API groups, repeatable: <group>[,<group>...]:<header>=<value> (groups: health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging)")
	fs.Var((*stringList)(&l.grpcRestricted), "grpc-restricted-protocol", "restrict gRPC API groups, repeatable: <group>[,<group>...]:<metadata-key>=<value>")
	fs.StringVar(&l.tls.HTTPCert, "http-tls-cert", "", "PEM certificate (chain) of the HTTPS endpoint; with --http-tls-key HTTP is served over TLS only")
	fs.StringVar(&l.tls.HTTPKey, "http-tls-key", "", "PEM private key of --http-tls-cert")
	fs.BoolVar(&l.grpcUseSSL, "grpc-use-ssl", false, "serve gRPC over TLS (needs --grpc-server-cert and --grpc-server-key)")
	fs.StringVar(&l.tls.GRPCCert, "grpc-server-cert", "", "PEM certificate of the gRPC endpoint (--grpc-use-ssl)")
	fs.StringVar(&l.tls.GRPCKey, "grpc-server-key", "", "PEM private key of --grpc-server-cert")
	fs.StringVar(&l.tls.GRPCRootCert, "grpc-root-cert", "", "PEM CA certificate; when set, gRPC clients must present a certificate it signed (mutual TLS)")
}

// check validates and parses the limits after flag parsing.
func (l *limits) check() error {
	for name, d := range map[string]time.Duration{"http-read-timeout": l.readTimeout, "http-idle-timeout": l.idleTimeout,
		"http-write-timeout": l.writeTimeout, "memory-return-interval": l.memoryReturn} {
		if d < 0 {
			return fmt.Errorf("--%s must not be negative", name)
		}
	}
	if l.grpcMaxStreams > math.MaxUint32 {
		return fmt.Errorf("--grpc-max-concurrent-streams must be at most %d", uint64(math.MaxUint32))
	}
	if l.memoryLimit != "" {
		n, err := parseSize(l.memoryLimit)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		l.memoryBytes = n
	}
	var err error
	if l.httpRestrictions, err = server.ParseRestrictions("http-restricted-api", l.httpRestricted); err != nil {
		return err
	}
	if l.grpcRestrictions, err = server.ParseRestrictions("grpc-restricted-protocol", l.grpcRestricted); err != nil {
		return err
	}
	if (l.tls.HTTPCert == "") != (l.tls.HTTPKey == "") {
		return errors.New("--http-tls-cert and --http-tls-key go together")
	}
	hasGRPC := l.tls.GRPCCert != "" || l.tls.GRPCKey != "" || l.tls.GRPCRootCert != ""
	if l.grpcUseSSL != hasGRPC || (l.grpcUseSSL && (l.tls.GRPCCert == "" || l.tls.GRPCKey == "")) {
		return errors.New("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key, and they need it")
	}
	return nil
}

// apply sets the process-wide memory limit and returns the server options
// the limits fill in.
func (l *limits) apply(o *server.Options) {
	if l.memoryBytes > 0 {
		debug.SetMemoryLimit(l.memoryBytes)
	}
	o.ReadTimeout, o.IdleTimeout, o.WriteTimeout = l.readTimeout, l.idleTimeout, l.writeTimeout
	o.GRPCMaxConcurrentStreams = uint32(l.grpcMaxStreams)
	o.MemoryReturnInterval = l.memoryReturn
	o.HTTPRestricted, o.GRPCRestricted = l.httpRestrictions, l.grpcRestrictions
	o.TLS = l.tls
}

// parseSize parses a byte size: a number with an optional unit B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), case
// insensitive.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("invalid size %q (want e.g. 2GiB, 500MB or a byte count)", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	v := f * mult
	if v < 1 || v > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return int64(v), nil
}
