package benchkit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel reports
// them in USER_HZ, which is 100 on every architecture Linux exports it for
// (sysconf(_SC_CLK_TCK) returns this constant, not the kernel's HZ).
const userHZ = 100

// ProcCPU returns the CPU time (user + system) that process pid and its
// threads have used, from /proc/PID/stat (fields 14 and 15).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("benchkit: cpu of pid %d: %w", pid, err)
	}
	f, err := statFields(b)
	if err != nil {
		return 0, fmt.Errorf("benchkit: cpu of pid %d: %w", pid, err)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("benchkit: cpu of pid %d: utime %q or stime %q is not a number", pid, f[11], f[12])
	}
	ticks := utime + stime
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// statFields returns the fields of a /proc/PID/stat line after the command
// name (which may hold spaces and parentheses, hence the last ')').
func statFields(b []byte) ([]string, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed stat line %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("stat line has %d fields after the name, want at least 13", len(f))
	}
	return f, nil
}

// ProcRSS returns the resident set size of process pid in bytes, from the
// VmRSS line of /proc/PID/status.
func ProcRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("benchkit: rss of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("benchkit: rss of pid %d: unexpected VmRSS line %q", pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("benchkit: rss of pid %d: VmRSS %q: %w", pid, f[0], err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("benchkit: rss of pid %d: no VmRSS line (a kernel thread or a zombie?)", pid)
}

// ProcState returns the state letter of process pid ('R', 'S', 'Z', ...).
func ProcState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("benchkit: state of pid %d: %w", pid, err)
	}
	f, err := statFields(b)
	if err != nil {
		return 0, fmt.Errorf("benchkit: state of pid %d: %w", pid, err)
	}
	return f[0][0], nil
}

// Children returns the PIDs whose parent is pid, found by scanning /proc
// (/proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN and lists one
// thread's children only).
func Children(pid int) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, fmt.Errorf("benchkit: children of pid %d: %w", pid, err)
	}
	var out []int
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		f, err := statFields(b)
		if err != nil {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
			child, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err == nil {
				out = append(out, child)
			}
		}
	}
	return out, nil
}

// Usage is the CPU time and resident memory of a group of processes (a
// proxy's master and workers).
type Usage struct {
	CPU time.Duration
	RSS int64
}

// GroupUsage sums ProcCPU and ProcRSS over pids.
func GroupUsage(pids []int) (Usage, error) {
	var u Usage
	for _, pid := range pids {
		cpu, err := ProcCPU(pid)
		if err != nil {
			return Usage{}, err
		}
		rss, err := ProcRSS(pid)
		if err != nil {
			return Usage{}, err
		}
		u.CPU += cpu
		u.RSS += rss
	}
	return u, nil
}
