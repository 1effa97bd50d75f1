package cni

// berthd's own Prometheus metrics of CNI plugin runs.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var opDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "berth_cni_operation_duration_seconds",
	Help:    "Time a network's plugins took for one CNI ADD or DEL of a pod, by operation and result (ok or error).",
	Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
}, []string{"operation", "result"})

// Collectors are the cni package's metrics, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{opDuration}
}

func observeOp(op string, took time.Duration, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	opDuration.WithLabelValues(op, res).Observe(took.Seconds())
}
