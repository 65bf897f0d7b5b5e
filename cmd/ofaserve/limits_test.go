package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"2GiB", 2 << 30, false},
		{"500MB", 500e6, false},
		{"500mb", 500e6, false},
		{"1.5GiB", 3 << 29, false},
		{"1048576", 1 << 20, false},
		{"64 MiB", 64 << 20, false},
		{"2G", 2 << 30, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"2XB", 0, true},
		{"-1GB", 0, true},
		{"0", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseLimitFlags(t *testing.T) {
	c, err := parseFlags([]string{"--model-repository=/m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l := c.limits
	if l.readTimeout != 60*time.Second || l.idleTimeout != 120*time.Second || l.writeTimeout != 0 || l.grpcMaxStreams != 1024 ||
		l.memoryBytes != 0 || l.memoryReturn != 5*time.Second || len(l.httpRestrictions) != 0 || len(l.grpcRestrictions) != 0 {
		t.Errorf("defaults = %+v", l)
	}
	c, err = parseFlags([]string{"--model-repository=/m", "--http-read-timeout=5s", "--http-idle-timeout=1m", "--http-write-timeout=10m",
		"--grpc-max-concurrent-streams=8", "--memory-limit=2GiB", "--http-restricted-api=model-repository:admin-key=k",
		"--grpc-restricted-protocol=inference,health:x=y", "--http-tls-cert=c.pem", "--http-tls-key=k.pem",
		"--grpc-use-ssl", "--grpc-server-cert=c.pem", "--grpc-server-key=k.pem"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l = c.limits
	if l.readTimeout != 5*time.Second || l.idleTimeout != time.Minute || l.writeTimeout != 10*time.Minute || l.grpcMaxStreams != 8 ||
		l.memoryBytes != 2<<30 || l.httpRestrictions["model-repository"].Key != "admin-key" || len(l.grpcRestrictions) != 2 ||
		l.tls.HTTPCert != "c.pem" || l.tls.GRPCKey != "k.pem" {
		t.Errorf("parsed = %+v", l)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-read-timeout=-1s"}, "--http-read-timeout must not be negative"},
		{[]string{"--memory-limit=lots"}, "--memory-limit: invalid size"},
		{[]string{"--http-restricted-api=everything:k=v"}, "unknown API group"},
		{[]string{"--http-tls-cert=c.pem"}, "--http-tls-cert and --http-tls-key go together"},
		{[]string{"--grpc-use-ssl"}, "--grpc-use-ssl needs"},
		{[]string{"--grpc-server-cert=c.pem", "--grpc-server-key=k.pem"}, "--grpc-use-ssl needs"},
	} {
		_, err := parseFlags(append([]string{"--model-repository=/m"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
