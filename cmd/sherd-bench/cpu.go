package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// parsePids parses "1,2,3".
func parsePids(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("--cpu-pids: %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// procStat is what cpuSeconds needs of /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  float64 // utime + stime, seconds (all threads)
}

// readStat reads /proc/<pid>/stat; the command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func readStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("%s: malformed", path)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("%s: malformed", path)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return procStat{ppid: ppid, cpu: (ut + st) / userHZ}, nil
}

// cpuSeconds is the CPU time used so far by the processes roots and all
// their live descendants.
func cpuSeconds(roots []int) (float64, error) {
	if len(roots) == 0 {
		return 0, nil
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	stats := map[int]procStat{}
	for _, p := range paths {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil { // processes come and go
			stats[pid] = st
		}
	}
	in := map[int]bool{}
	for _, r := range roots {
		if _, ok := stats[r]; !ok {
			return 0, fmt.Errorf("process %d not found", r)
		}
		in[r] = true
	}
	var total float64
	for pid, st := range stats {
		// Walk up to a root (or to the top).
		for p, hops := pid, 0; p > 1 && hops < 64; hops++ {
			if in[p] {
				total += st.cpu
				break
			}
			p = stats[p].ppid
		}
	}
	return total, nil
}
