package sandbox

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestEventHubDropsOnlyTheSubscriberWhoseQueueIsFull(t *testing.T) {
	var h eventHub
	idle, reader := h.subscribe(), h.subscribe()
	var got int
	for i := range 3 * subscriberQueue {
		h.publish(Event{Type: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, ID: string(rune('a' + i%26))})
		<-reader.Events()
		got++
	}
	select {
	case <-idle.Dropped():
	default:
		t.Fatal("a subscriber that never read was not dropped")
	}
	n := 0
	for range idle.Events() { // closed after what it had queued
		n++
	}
	if n != subscriberQueue {
		t.Errorf("the dropped subscriber kept %d events, want its queue's %d", n, subscriberQueue)
	}
	select {
	case <-reader.Dropped():
		t.Fatal("the subscriber that read was dropped")
	default:
	}
	if sub, dropped := h.n.Load(), h.dropped.Load(); sub != 1 || dropped != 1 {
		t.Errorf("%d subscribed and %d dropped, want 1 and 1", sub, dropped)
	}
	h.unsubscribe(reader)
	h.unsubscribe(idle) // already dropped: nothing happens
	if h.active() {
		t.Error("hub still active with no subscriber")
	}
	if got != 3*subscriberQueue {
		t.Errorf("reader got %d events", got)
	}
}

func TestContainerEventsComeInLifeCycleOrderWhateverOrderTheyHappenIn(t *testing.T) {
	const (
		created = runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
		started = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
		stopped = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
		deleted = runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
	)
	for _, tt := range []struct {
		name  string
		steps func(m *Manager, c *Container)
		want  []runtimeapi.ContainerEventType
	}{
		{"a container that exits while it starts sends STOPPED after STARTED", func(m *Manager, c *Container) {
			m.containerCreated(c)
			c.containerStarting()
			m.containerExited(c)
			m.containerStarted(c, true)
			m.containerExited(c) // a second report changes nothing
		}, []runtimeapi.ContainerEventType{created, started, stopped}},
		{"a container that exits before its CREATED sends STOPPED after it", func(m *Manager, c *Container) {
			m.containerExited(c)
			m.containerCreated(c)
		}, []runtimeapi.ContainerEventType{created, stopped}},
		{"a container whose start failed sends STOPPED and no STARTED", func(m *Manager, c *Container) {
			m.containerCreated(c)
			c.containerStarting()
			_ = c.update(func(s *containerStatus) error { s.State = stateExited; return nil })
			m.containerStarted(c, false)
			m.containerExited(c)
		}, []runtimeapi.ContainerEventType{created, stopped}},
		{"a container removed without an exit report sends STOPPED before DELETED", func(m *Manager, c *Container) {
			m.containerCreated(c)
			m.containerRemoved(c)
		}, []runtimeapi.ContainerEventType{created, stopped, deleted}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manager{pods: map[string]*Pod{}, containers: map[string]*Container{}}
			sub := m.SubscribeEvents()
			c := m.newContainer("c1", "p1", &runtimeapi.ContainerConfig{})
			tt.steps(m, c)
			m.UnsubscribeEvents(sub)
			var got []runtimeapi.ContainerEventType
			for e := range sub.Events() {
				got = append(got, e.Type)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("events %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestEventHubEndClosesEverySubscriberAndLaterOnes(t *testing.T) {
	var h eventHub
	s := h.subscribe()
	h.end()
	if _, open := <-s.Events(); open {
		t.Error("a subscriber's queue is open after end")
	}
	later := h.subscribe()
	if _, open := <-later.Events(); open {
		t.Error("a subscriber after end got an open queue")
	}
	h.publish(Event{}) // nobody to send to: must not panic
	h.unsubscribe(later)
	if h.active() {
		t.Error("hub active after end")
	}
}
