package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// report reads the JSON lines of workload runs in files and prints, per
// workload, the median over the runs of each server, and the ratio of
// each server to the first label met (or to -base).
func report(files []string, w io.Writer) error {
	var runs []result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", name, err)
			}
			runs = append(runs, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return fmt.Errorf("report: no runs")
	}
	type key struct {
		workload, size string
		conc           int
	}
	var keys []key
	var labels []string
	groups := map[key]map[string][]result{}
	for _, r := range runs {
		k := key{r.Workload, r.Size, r.Conc}
		if groups[k] == nil {
			groups[k] = map[string][]result{}
			keys = append(keys, k)
		}
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		groups[k][r.Label] = append(groups[k][r.Label], r)
	}
	base := labels[len(labels)-1] // the yardstick is the last label (minio after sherd)
	fmt.Fprintf(w, "medians; ratios are each server against %s (throughput: higher is better; CPU per unit of work: lower is better)\n\n", base)
	fmt.Fprintf(w, "| workload (concurrency) | server | runs | MB/s | ops/s | p50 ms | p99 ms | errors | CPU s/GiB | CPU ms/op | throughput ratio | CPU/work ratio |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, k := range keys {
		type med struct{ mbs, ops, p50, p99, cpuGiB, cpuOp float64 }
		meds := map[string]med{}
		var errs = map[string]int64{}
		for _, l := range labels {
			rs := groups[k][l]
			if len(rs) == 0 {
				continue
			}
			var m [6][]float64
			for _, r := range rs {
				m[0] = append(m[0], float64(r.Bytes)/r.Seconds/1e6)
				m[1] = append(m[1], float64(r.Ops)/r.Seconds)
				m[2] = append(m[2], r.P50)
				m[3] = append(m[3], r.P99)
				m[4] = append(m[4], r.CPUSeconds/max(float64(r.Bytes), 1)*(1<<30))
				m[5] = append(m[5], r.CPUSeconds/max(float64(r.Ops), 1)*1e3)
				errs[l] += r.Errors
			}
			meds[l] = med{median(m[0]), median(m[1]), median(m[2]), median(m[3]), median(m[4]), median(m[5])}
		}
		b, haveBase := meds[base]
		for _, l := range labels {
			m, ok := meds[l]
			if !ok {
				continue
			}
			ratio, cpuRatio := "", ""
			if haveBase && b.ops > 0 && b.cpuOp > 0 {
				ratio = fmt.Sprintf("%.2f×", m.ops/b.ops)
				cpuRatio = fmt.Sprintf("%.2f×", m.cpuOp/b.cpuOp)
			}
			fmt.Fprintf(w, "| %s %s (%d) | %s | %d | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %s | %s |\n",
				k.workload, k.size, k.conc, l, len(groups[k][l]), m.mbs, m.ops, m.p50, m.p99, errs[l], m.cpuGiB, m.cpuOp, ratio, cpuRatio)
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
