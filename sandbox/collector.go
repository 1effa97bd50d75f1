package sandbox

// berthd's own Prometheus metrics of pods, containers, monitors and event
// subscribers. They are counted when scraped, from the Manager's maps:
// nothing is kept up to date between scrapes.

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	podsDesc = prometheus.NewDesc("berth_pods", "Pod sandboxes, by state (ready, notready).",
		[]string{"state"}, nil)
	containersDesc = prometheus.NewDesc("berth_containers", "Containers, by state (created, running, exited, unknown).",
		[]string{"state"}, nil)
	monitorsDesc = prometheus.NewDesc("berth_monitor_processes",
		"Container monitor processes berthd watches (one per container that has not exited), not counting the spare.", nil, nil)
	subscribersDesc = prometheus.NewDesc("berth_container_event_subscribers",
		"GetContainerEvents subscribers now.", nil, nil)
	droppedDesc = prometheus.NewDesc("berth_container_event_subscribers_dropped_total",
		"GetContainerEvents subscribers dropped because their queue was full.", nil, nil)
)

type collector struct{ m *Manager }

// Collector is the Manager's metrics, for the daemon's registry.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{podsDesc, containersDesc, monitorsDesc, subscribersDesc, droppedDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	pods, ctrs := m.everything()

	podStates := map[string]int{podReady: 0, podNotReady: 0}
	for _, p := range pods {
		p.mu.RLock()
		podStates[p.state]++
		p.mu.RUnlock()
	}
	for state, n := range podStates {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), state)
	}
	ctrStates := map[string]int{}
	for _, s := range []containerState{stateCreated, stateRunning, stateExited, stateUnknown} {
		ctrStates[stateName(s)] = 0
	}
	monitors := 0
	for _, x := range ctrs {
		ctrStates[stateName(x.snapshot().State)]++
		x.mu.Lock()
		if h := x.monitor; h != nil && !closed(h.exited) {
			monitors++
		}
		x.mu.Unlock()
	}
	for state, n := range ctrStates {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), strings.ToLower(state))
	}
	ch <- prometheus.MustNewConstMetric(monitorsDesc, prometheus.GaugeValue, float64(monitors))
	subs, dropped := m.EventSubscribers()
	ch <- prometheus.MustNewConstMetric(subscribersDesc, prometheus.GaugeValue, float64(subs))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(dropped))
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
