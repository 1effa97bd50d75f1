package report

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	tests := []struct {
		name    string
		samples []float64
		p       float64
		want    float64
	}{
		{name: "the median of 1..100 is 50", samples: hundred, p: 50, want: 50},
		{name: "p99 of 1..100 is 99", samples: hundred, p: 99, want: 99},
		{name: "p90 of 1..100 is 90", samples: hundred, p: 90, want: 90},
		{name: "p99 of three samples is the largest", samples: []float64{3, 1, 2}, p: 99, want: 3},
		{name: "p50 of one sample is that sample", samples: []float64{7}, p: 50, want: 7},
		{name: "no samples give NaN", samples: nil, p: 50, want: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Percentile(tt.samples, tt.p)
			if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		want   float64
	}{
		{name: "an odd count gives the middle value", values: []float64{5, 1, 3}, want: 3},
		{name: "an even count gives the mean of the middle two", values: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "failed repetitions are left out", values: []float64{math.NaN(), 2, 4}, want: 3},
		{name: "only failures give NaN", values: []float64{math.NaN()}, want: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Median(tt.values)
			if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Errorf("Median(%v) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}
