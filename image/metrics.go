package image

// berthd's own Prometheus metrics of image pulls.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	pullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "berth_image_pull_bytes_total",
		Help: "Bytes of blobs downloaded by image pulls (what was already stored is not downloaded).",
	})
	pullDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "berth_image_pull_duration_seconds",
		Help:    "Time an image pull took, by result (ok or error).",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"result"})
)

// Collectors are the image package's metrics, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{pullBytes, pullDuration}
}

func observePull(downloaded int64, took time.Duration, err error) {
	pullBytes.Add(float64(downloaded))
	pullDuration.WithLabelValues(result(err)).Observe(took.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
