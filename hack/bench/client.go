package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// dial connects to a CRI socket the way kubelet does: one gRPC connection
// carrying both services, 16 MiB messages.
func dial(socket string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", socket, err)
	}
	return conn, nil
}

// waitReady waits until the runtime answers Version and reports its
// runtime and network ready, as kubelet waits before it starts pods.
func waitReady(ctx context.Context, rt runtimeapi.RuntimeServiceClient, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		v, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
		if err == nil {
			st, serr := rt.Status(ctx, &runtimeapi.StatusRequest{})
			if serr == nil {
				var notReady []string
				for _, c := range st.GetStatus().GetConditions() {
					if !c.Status {
						notReady = append(notReady, fmt.Sprintf("%s (%s: %s)", c.Type, c.Reason, c.Message))
					}
				}
				if len(notReady) == 0 {
					return v.RuntimeName + " " + v.RuntimeVersion, nil
				}
				last = fmt.Errorf("not ready: %v", notReady)
			} else {
				last = serr
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for the runtime to be ready: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// callTimeout bounds one CRI call, as kubelet's runtime request timeout does.
const callTimeout = 2 * time.Minute

// timed runs call with callTimeout and returns how long it took.
func timed(ctx context.Context, call func(context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	return time.Since(start), err
}
