// Package procstat provides what /proc says about CPU time: a process's
// (the bench scripts read it of the servers they started, so a server's
// cost is measured apart from the load generator's) and the whole
// machine's (background work, like the store's scrubber, steps aside
// while the CPUs are busy).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of /proc/PID/stat's times: USER_HZ is 100 on Linux.
const userHZ = 100

// CPU is the user plus system CPU time process pid has used, to 10 ms.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields are counted
	// after its closing parenthesis, from field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(u+s) * time.Second / userHZ, nil
}

// MachineCPU is the CPU time all of the machine's CPUs have spent since
// boot, from /proc/stat: busy is everything but idle and I/O wait (steal
// counts as busy: the time was not there to use), total includes those.
func MachineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user and nice).
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: cpu field %d %q: %w", i+1, f[i+1], err)
		}
	}
	idle := v[3] + v[4]
	busyTicks := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return time.Duration(busyTicks) * time.Second / userHZ, time.Duration(busyTicks+idle) * time.Second / userHZ, nil
}

// BusyMeter tells how busy the machine's CPUs have been lately: the busy
// share of all CPUs' time over the last interval. It reads /proc/stat at
// most once an interval, so asking it often is cheap. Safe for concurrent
// use.
type BusyMeter struct {
	interval time.Duration

	mu          sync.Mutex
	at          time.Time
	busy, total time.Duration
	frac        float64
}

// NewBusyMeter returns a meter over windows of interval (at least a
// second: /proc/stat counts in 10 ms ticks).
func NewBusyMeter(interval time.Duration) *BusyMeter {
	return &BusyMeter{interval: max(interval, time.Second)}
}

// Fraction is the busy share, 0 to 1, of the machine's CPU time over the
// last complete window; 0 until one has passed, or if /proc/stat cannot be
// read.
func (m *BusyMeter) Fraction() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.at.IsZero() && now.Sub(m.at) < m.interval {
		return m.frac
	}
	busy, total, err := MachineCPU()
	if err != nil {
		return 0
	}
	if !m.at.IsZero() && total > m.total {
		m.frac = min(1, max(0, float64(busy-m.busy)/float64(total-m.total)))
	}
	m.at, m.busy, m.total = now, busy, total
	return m.frac
}
