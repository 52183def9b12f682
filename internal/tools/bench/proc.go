package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// clockTicks is USER_HZ, which Linux fixes at 100 for user space on every
// architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process from /proc.
type ProcSample struct {
	CPU    float64 // utime+stime of all threads, seconds (10 ms resolution)
	RSSKiB int64   // VmRSS
}

func (s ProcSample) add(o ProcSample) ProcSample {
	return ProcSample{CPU: s.CPU + o.CPU, RSSKiB: s.RSSKiB + o.RSSKiB}
}

// SampleProc reads /proc/PID/stat and /proc/PID/status.
func SampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("server pid %d: %w", pid, err)
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return s, fmt.Errorf("server pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("server pid %d: %w", pid, err)
	}
	if s.RSSKiB, err = parseVmRSS(status); err != nil {
		return s, fmt.Errorf("server pid %d: %w", pid, err)
	}
	return s, nil
}

// parseStatCPU reads utime (field 14) and stime (15). The command name (field
// 2) may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: bad utime/stime %q %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

func parseVmRSS(b []byte) (int64, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			break
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("status: bad VmRSS %q", rest)
		}
		return v, nil
	}
	return 0, fmt.Errorf("status: no VmRSS line")
}

// fdReserve is what a bench process keeps for itself (stdio, pipes, the
// runtime's epoll and timers, resolver sockets).
const fdReserve = 64

// FileLimit returns RLIMIT_NOFILE (soft, hard). The Go runtime raises the soft
// limit to the hard one at start, so soft is what this process may open.
func FileLimit() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	return r.Cur, r.Max, nil
}

// MaxConnsPerProcess is how many connections one process can hold here.
func MaxConnsPerProcess() int {
	soft, _, err := FileLimit()
	if err != nil || soft > 1<<24 {
		return 1 << 24
	}
	if soft <= fdReserve {
		return 0
	}
	return int(soft - fdReserve)
}
