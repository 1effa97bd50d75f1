package cri

import (
	"github.com/berth-runtime/berth/sandbox"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GetContainerEvents streams container and pod sandbox events until the
// client goes away (sandbox/events.go says which and when).
//
// A subscriber is never waited for: its events queue in the sandbox
// package, and when the queue is full (the client reads too slowly, or
// not at all, so gRPC's flow control holds the sends) the stream ends
// with ResourceExhausted. kubelet's evented PLEG relists and subscribes
// again on any stream error.
//
// When berthd shuts down, the stream ends with Unavailable.
//
// The sends run on their own goroutine because a send the client does not
// read blocks until the stream ends; the handler returning ends it, which
// releases that send.
func (s *runtimeService) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	sub := s.pods.SubscribeEvents()
	defer s.pods.UnsubscribeEvents(sub)
	sent := make(chan error, 1)
	go func() {
		for e := range sub.Events() {
			if err := stream.Send(containerEvent(e)); err != nil {
				sent <- err
				return
			}
		}
		select {
		case <-sub.Dropped(): // closed before the queue: the case below answers
		default:
			sent <- status.Error(codes.Unavailable, "container events: berthd is shutting down")
		}
	}()
	select {
	case err := <-sent:
		return err
	case <-sub.Dropped():
		return status.Errorf(codes.ResourceExhausted, "container events: this subscriber fell more than its queue behind and was dropped; relist and subscribe again")
	case <-stream.Context().Done():
		return status.FromContextError(stream.Context().Err()).Err()
	}
}

// containerEvent is the CRI form of an event.
func containerEvent(e sandbox.Event) *runtimeapi.ContainerEventResponse {
	out := &runtimeapi.ContainerEventResponse{
		ContainerId:        e.ID,
		ContainerEventType: e.Type,
		CreatedAt:          e.At.UnixNano(),
		ContainersStatuses: e.Containers,
	}
	if e.Pod.ID != "" {
		out.PodSandboxStatus = podSandboxStatus(e.Pod)
	}
	return out
}
