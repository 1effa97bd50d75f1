package sandbox

// Container events, for the CRI's GetContainerEvents (kubelet's evented
// PLEG).
//
// Every container of a pod sends, in this order and once each:
//
//	CONTAINER_CREATED_EVENT   CreateContainer made it
//	CONTAINER_STARTED_EVENT   StartContainer started it (not if it never started)
//	CONTAINER_STOPPED_EVENT   it exited: stopped, killed, died on its own
//	                          (the monitor's exit, also for a container
//	                          adopted after a restart), or its start failed
//	CONTAINER_DELETED_EVENT   RemoveContainer removed it
//
// A pod sandbox sends the same four with its own ID as the container's,
// as containerd 2.x does: CREATED and STARTED when RunPodSandbox made it
// ready, STOPPED when it stops being ready (StopPodSandbox, or its
// berth-podinit died), DELETED when RemovePodSandbox removed it.
//
// An event carries what kubelet's evented PLEG reads to update its pod
// cache without asking again: the pod's status and the statuses of every
// container of the pod, taken when the event happened. Nothing is built
// while nobody subscribes, and nothing is kept for a later subscriber
// (containerd keeps 5 minutes of events; kubelet relists when it
// subscribes anyway).
//
// Each subscriber has its own queue of subscriberQueue events. Publishing
// never waits: when a subscriber's queue is full (it does not read, or
// reads slower than events come), it is dropped and its queue closed with
// Dropped set, and the CRI ends its stream with an error. kubelet then
// relists and subscribes again, which is what it does for any stream
// error. So no RPC ever waits for a subscriber, and a subscriber costs at
// most its queue.
//
// One container's events are ordered by its evMu: an exit the monitor
// sees while StartContainer has not yet sent STARTED (or before
// CreateContainer sent CREATED) is held and sent right after it.

import (
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// subscriberQueue is how many events a subscriber may fall behind before
// it is dropped (containerd's subscriber channel holds 100).
const subscriberQueue = 128

// Event is a container or pod sandbox event.
type Event struct {
	Type runtimeapi.ContainerEventType
	// ID is the container's, or the pod sandbox's for its own events.
	ID string
	At time.Time
	// Pod is the pod's status at the event; its ID is "" if the pod is
	// gone.
	Pod PodInfo
	// Containers are the statuses of the pod's containers at the event.
	Containers []*runtimeapi.ContainerStatus
}

// EventSub is one subscriber's queue.
type EventSub struct {
	c       chan Event
	dropped chan struct{}
}

// Events delivers the events in order. It is closed when the subscriber
// is unsubscribed or dropped.
func (s *EventSub) Events() <-chan Event { return s.c }

// Dropped is closed when the subscriber was dropped for a full queue.
func (s *EventSub) Dropped() <-chan struct{} { return s.dropped }

// eventHub fans events out to the subscribers.
type eventHub struct {
	// n is the number of subscribers, read without mu so that no event
	// is built when there are none.
	n atomic.Int32
	// dropped counts subscribers dropped for a full queue.
	dropped atomic.Uint64

	// mu guards subs and ended; it is held while an event is queued to
	// every subscriber, so that all see the same order.
	mu    sync.Mutex
	subs  map[*EventSub]struct{}
	ended bool // EndEvents: berthd is shutting down
}

func (h *eventHub) subscribe() *EventSub {
	s := &EventSub{c: make(chan Event, subscriberQueue), dropped: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		close(s.c)
		return s
	}
	if h.subs == nil {
		h.subs = map[*EventSub]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.n.Add(1)
	return s
}

func (h *eventHub) unsubscribe(s *EventSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.n.Add(-1)
		close(s.c)
	}
}

// end closes every subscriber's queue, and those of later subscribers.
func (h *eventHub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for s := range h.subs {
		delete(h.subs, s)
		h.n.Add(-1)
		close(s.c)
	}
}

func (h *eventHub) active() bool { return h.n.Load() > 0 }

// publish queues e to every subscriber without waiting, dropping those
// whose queue is full.
func (h *eventHub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			close(s.dropped)
			delete(h.subs, s)
			h.n.Add(-1)
			h.dropped.Add(1)
			close(s.c)
		}
	}
}

// SubscribeEvents adds a subscriber; UnsubscribeEvents must follow.
func (m *Manager) SubscribeEvents() *EventSub { return m.events.subscribe() }

// UnsubscribeEvents removes a subscriber and closes its queue; it does
// nothing for one already dropped.
func (m *Manager) UnsubscribeEvents(s *EventSub) { m.events.unsubscribe(s) }

// EndEvents closes every subscriber's queue, and those of later ones: a
// shutting-down berthd ends its event streams, which would otherwise keep
// a graceful stop waiting.
func (m *Manager) EndEvents() { m.events.end() }

// EventSubscribers is the number of subscribers, and of those dropped so
// far for a full queue.
func (m *Manager) EventSubscribers() (subscribed int, dropped uint64) {
	return int(m.events.n.Load()), m.events.dropped.Load()
}

// containerEvents orders one container's events (see the file comment).
type containerEvents struct {
	mu       sync.Mutex
	created  bool // CREATED is sent
	starting bool // StartContainer is between starting it and STARTED
	exitHeld bool // it exited while created or starting was pending
	stopped  bool // STOPPED is sent
}

// podEvent builds an event of pod podID (info, when not zero, is the
// pod's status; else it is looked up) and publishes it, if anyone listens.
func (m *Manager) podEvent(typ runtimeapi.ContainerEventType, id, podID string, info *PodInfo) {
	if !m.events.active() {
		return
	}
	e := Event{Type: typ, ID: id, At: time.Now()}
	if info != nil {
		e.Pod = *info
	} else {
		m.mu.RLock()
		p := m.pods[podID]
		m.mu.RUnlock()
		if p != nil {
			e.Pod = p.info()
		}
	}
	e.Containers = m.PodContainerStatuses(podID)
	m.events.publish(e)
}

// containerCreated sends CREATED, and STOPPED if it exited meanwhile.
func (m *Manager) containerCreated(c *Container) {
	ev := &c.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.created = true
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, c.id, c.podID, nil)
	m.sendHeldExitLocked(c)
}

// containerStarting holds exits until containerStarted.
func (c *Container) containerStarting() {
	c.events.mu.Lock()
	c.events.starting = true
	c.events.mu.Unlock()
}

// containerStarted ends a start: STARTED if it started, then STOPPED if
// it exited meanwhile or its start failed.
func (m *Manager) containerStarted(c *Container, started bool) {
	ev := &c.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.starting = false
	if started {
		m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, c.id, c.podID, nil)
	}
	if st := c.snapshot().State; st == stateExited || st == stateUnknown {
		ev.exitHeld = true
	}
	m.sendHeldExitLocked(c)
}

// containerExited sends STOPPED once, or holds it while CREATED or
// STARTED is pending.
func (m *Manager) containerExited(c *Container) {
	ev := &c.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.exitHeld = true
	m.sendHeldExitLocked(c)
}

func (m *Manager) sendHeldExitLocked(c *Container) {
	ev := &c.events
	if !ev.exitHeld || !ev.created || ev.starting || ev.stopped {
		return
	}
	ev.stopped = true
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, c.id, c.podID, nil)
}

// containerRemoved sends DELETED; c is out of m.containers.
func (m *Manager) containerRemoved(c *Container) {
	ev := &c.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if !ev.stopped && ev.created {
		ev.stopped = true // a removed container has stopped
		m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, c.id, c.podID, nil)
	}
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, c.id, c.podID, nil)
}
