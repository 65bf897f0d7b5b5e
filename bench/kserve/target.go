package kserve

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// CheckLoopback returns an error unless host (a host name or IP, with or
// without a port) refers only to loopback addresses, so that a benchmark
// cannot be pointed at someone else's server by accident.
func CheckLoopback(ctx context.Context, host string) error {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.Trim(h, "[]")
	if h == "" {
		return fmt.Errorf("target %q has no host", host)
	}
	if ip := net.ParseIP(h); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("target %s is not a loopback address (pass --allow-remote to benchmark it)", h)
		}
		return nil
	}
	if strings.EqualFold(h, "localhost") {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, h)
	if err != nil {
		return fmt.Errorf("resolving target %s: %w", h, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("target %s resolves to %s, not loopback (pass --allow-remote to benchmark it)", h, a.IP)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("target %s resolves to nothing", h)
	}
	return nil
}

// BaseURL turns perf_analyzer's -u value ("host:port" or a URL) into an
// HTTP base URL and its host:port.
func BaseURL(u string) (base, hostport string, err error) {
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", "", fmt.Errorf("bad -u %q: %w", u, err)
	}
	if p.Scheme != "http" {
		return "", "", fmt.Errorf("bad -u %q: only http:// is supported", u)
	}
	if p.Host == "" {
		return "", "", fmt.Errorf("bad -u %q: no host", u)
	}
	return "http://" + p.Host + strings.TrimSuffix(p.Path, "/"), p.Host, nil
}
