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
