package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

func TestParseCases(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"all", caseNames, false},
		{"", caseNames, false},
		{"sigterm,badids", []string{"badids", "sigterm"}, false}, // run order, SIGTERM last
		{" soak , queue", []string{"queue", "soak"}, false},
		{"queue,nope", nil, true},
	} {
		got, err := parseCases(c.in)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("parseCases(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
	}
	if caseNames[len(caseNames)-1] != "sigterm" {
		t.Fatalf("sigterm must run last: %v", caseNames)
	}
}

func TestRunRefusesRemoteAndBadSettings(t *testing.T) {
	for _, args := range [][]string{
		{"-u", "10.1.2.3:8000", "--grpc", ""},
		{"-u", "127.0.0.1:8000", "--grpc", "192.0.2.1:8001"},
		{"--soak-load", "1.5"},
		{"--cases", "nope"},
	} {
		var out, errw bytes.Buffer
		code, err := run(context.Background(), args, &out, &errw)
		if code != 2 {
			t.Errorf("run(%v) = %d, %v; want usage error 2", args, code, err)
		}
		if strings.Contains(out.String(), "case") {
			t.Errorf("run(%v) printed a table: %s", args, out.String())
		}
	}
}
