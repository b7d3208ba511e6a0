package test

import (
	dto0 "github.com/prometheus/client_model/go"
)

// dto is one metric family with a sum over label matches.
type dto struct{ f *dto0.MetricFamily }

// sum adds the values of the samples whose labels include want: counter
// and gauge values, histogram sample counts.
func (d *dto) sum(want map[string]string) float64 {
	total := 0.0
outer:
	for _, m := range d.f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}
