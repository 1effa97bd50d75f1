package cri

// berthd's own Prometheus metrics of the CRI calls (the daemon serves them
// on [metrics] address). The interceptors record every call; recording is
// an atomic add or two, and costs the same whether or not anyone scrapes.

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

var (
	rpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_cri_requests_total",
		Help: "CRI calls answered, by method and gRPC code.",
	}, []string{"method", "code"})
	rpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "berth_cri_request_duration_seconds",
		Help:    "Time to answer a CRI call, by method (a stream: its whole life).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"method"})
)

// Collectors are the cri package's metrics, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{rpcRequests, rpcDuration}
}

// observeRPC records one call of fullMethod ("/runtime.v1.RuntimeService/Version").
func observeRPC(fullMethod string, code codes.Code, took time.Duration) {
	method := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	rpcRequests.WithLabelValues(method, code.String()).Inc()
	rpcDuration.WithLabelValues(method).Observe(took.Seconds())
}
