package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// report groups runs by workload, takes medians per server and divides
// by the last label's (the yardstick).
func TestReportRatios(t *testing.T) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, ops := range []int64{100, 300, 200} { // median 200 ops in 10 s
		enc.Encode(result{Label: "sherd", Workload: "put", Size: "4KiB", Conc: 32, Ops: ops, Bytes: ops * 4096, Seconds: 10, CPUSeconds: float64(ops) / 100})
	}
	for _, ops := range []int64{100, 100, 100} {
		enc.Encode(result{Label: "minio", Workload: "put", Size: "4KiB", Conc: 32, Ops: ops, Bytes: ops * 4096, Seconds: 10, CPUSeconds: float64(ops) / 50})
	}
	f := filepath.Join(t.TempDir(), "r.jsonl")
	os.WriteFile(f, b.Bytes(), 0o644)
	var out bytes.Buffer
	if err := report([]string{f}, &out); err != nil {
		t.Fatal(err)
	}
	// sherd: 20 ops/s, 10 ms CPU per op; minio: 10 ops/s, 20 ms per op.
	if !strings.Contains(out.String(), "| put 4KiB (32) | sherd | 3 | 0.1 | 20.0 |") || !strings.Contains(out.String(), "| 2.00× | 0.50× |") {
		t.Fatalf("report:\n%s", out.String())
	}
}

// readStat skips the command name, which may hold spaces and parentheses.
func TestReadStat(t *testing.T) {
	f := filepath.Join(t.TempDir(), "stat")
	os.WriteFile(f, []byte("42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 1 1 1\n"), 0o644)
	st, err := readStat(f)
	if err != nil || st.ppid != 7 || st.cpu != 4 {
		t.Fatalf("%+v %v, want ppid 7, cpu 4 s", st, err)
	}
}
