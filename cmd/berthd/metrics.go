package main

// berthd's Prometheus endpoint ([metrics] address): the CRI calls, image
// pulls, CNI runs, pods, containers, monitors and event subscribers, plus
// Go's and the process's own (go_*, process_*). The README lists them.

import (
	"net/http"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/cri"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/sandbox"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveMetrics serves /metrics on addr.
func serveMetrics(addr string, pods *sandbox.Manager) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), pods.Collector())
	for _, cs := range [][]prometheus.Collector{cri.Collectors(), image.Collectors(), cni.Collectors()} {
		reg.MustRegister(cs...)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return serveHTTP("metrics", addr, mux)
}
