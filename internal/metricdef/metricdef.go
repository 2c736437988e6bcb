// Package metricdef is the one way btda defines Prometheus metrics: the namespace, fully
// qualified names built from subsystem and name, and the histogram options every
// histogram uses (classic buckets plus a native histogram). Each subsystem defines its
// own families with these, in one file next to what it measures.
package metricdef

import "github.com/prometheus/client_golang/prometheus"

// Namespace prefixes every btda metric (DESIGN.md §5).
const Namespace = "btda"

// Name returns the fully qualified metric name btda_<subsystem>_<name> (btda_<name> when
// subsystem is empty).
func Name(subsystem, name string) string {
	return prometheus.BuildFQName(Namespace, subsystem, name)
}

// Desc describes a scrape-time metric of a subsystem.
func Desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(Name(subsystem, name), help, labels, nil)
}

// Native histogram settings: a bucket factor of 1.1 keeps the relative error under 5 %,
// and 160 buckets bound a series' size whatever the spread of the observations.
const (
	nativeBucketFactor = 1.1
	nativeMaxBuckets   = 160
)

// HistogramOpts are the options of every btda histogram: classic buckets (for
// Prometheus servers without native histograms) plus a native histogram.
func HistogramOpts(subsystem, name, help string, buckets []float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor: nativeBucketFactor, NativeHistogramMaxBucketNumber: nativeMaxBuckets,
	}
}

// CounterOpts are the options of a btda counter.
func CounterOpts(subsystem, name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}
}

// GaugeOpts are the options of a btda gauge.
func GaugeOpts(subsystem, name, help string) prometheus.GaugeOpts {
	return prometheus.GaugeOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}
}
