package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ParseVmRSS returns the VmRSS line of a /proc/PID/status document, in bytes.
func ParseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want \"VmRSS: N kB\"", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("VmRSS line %q: bad number", line)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading status: %w", err)
	}
	return 0, fmt.Errorf("status has no VmRSS line")
}

// ReadRSS reads the resident set size of process pid.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading RSS of pid %d: %w", pid, err)
	}
	return ParseVmRSS(b)
}

// Sampler samples a process's RSS in the background and keeps the first,
// peak and last values.
type Sampler struct {
	pid    int
	mu     sync.Mutex
	first  int64
	peak   int64
	last   int64
	cancel context.CancelFunc
	done   chan struct{}
}

// StartSampler takes a first sample and then one every interval until Stop.
// With pid 0 it samples nothing and reports zeros.
func StartSampler(pid int, interval time.Duration) *Sampler {
	s := &Sampler{pid: pid, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if pid <= 0 {
		close(s.done)
		return s
	}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *Sampler) sample() {
	v, err := ReadRSS(s.pid)
	if err != nil {
		return // the process has gone (SIGTERM case): keep what was seen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 {
		s.first = v
	}
	s.peak = max(s.peak, v)
	s.last = v
}

// Peak returns the highest sample so far.
func (s *Sampler) Peak() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Stop takes a last sample and returns the first, peak and last values.
func (s *Sampler) Stop() (first, peak, last int64) {
	s.cancel()
	<-s.done
	if s.pid > 0 {
		s.sample()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.peak, s.last
}

// ParseCPUTicks returns utime+stime (clock ticks) from a /proc/PID/stat
// document; the command name in parentheses may hold spaces.
func ParseCPUTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat has no command field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the command: state(0) ppid(1) ... utime is field 14 of the whole
	// line, index 11 here; stime index 12.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the command, want at least 13", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat utime %q stime %q: not numbers", f[11], f[12])
	}
	return u + s, nil
}

// cpuTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on Linux.
const cpuTick = time.Second / 100

// ReadCPUTime reads the CPU time (utime + stime) process pid has used so far.
func ReadCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	ticks, err := ParseCPUTicks(b)
	return time.Duration(ticks) * cpuTick, err
}

// Settle waits (up to limit) until process pid uses less than a fifth of a
// core over a second, so that one case's leftover work (decodes the client
// stopped waiting for) does not load the next. It returns how long it waited
// and whether the process went quiet.
func Settle(ctx context.Context, pid int, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	if pid <= 0 {
		return 0, true
	}
	read := func() (time.Duration, bool) {
		v, err := ReadCPUTime(pid)
		return v, err == nil
	}
	prev, ok := read()
	for ok && time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(time.Second):
		}
		cur, ok2 := read()
		if !ok2 {
			return time.Since(start), false
		}
		if cur-prev < 200*time.Millisecond { // < 0.2 core-seconds in 1 s
			return time.Since(start), true
		}
		prev = cur
	}
	return time.Since(start), false
}
