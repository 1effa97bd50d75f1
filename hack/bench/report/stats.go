package report

import (
	"math"
	"sort"
	"time"
)

// Percentile is the p-th percentile (0 < p <= 100) of samples by the
// nearest-rank method: the smallest sample at or above p percent of them.
// It is NaN when there are no samples.
func Percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Median is the middle of values, or the mean of the two middle ones; NaN
// values (failed repetitions) are left out, and none at all gives NaN.
func Median(values []float64) float64 {
	s := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Millis is d in milliseconds, the unit of every latency figure.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
