package cri

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// MaxMsgSize matches kubelet's CRI client limit.
const MaxMsgSize = 16 << 20

// ServerOptions are the gRPC options berthd serves the CRI with.
func ServerOptions(log *zap.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
		grpc.ChainUnaryInterceptor(unaryInterceptor(log)),
		grpc.ChainStreamInterceptor(streamInterceptor(log)),
		bufferPoolOption(),
	}
}

// unaryInterceptor recovers panics, turns the handlers' errors into gRPC
// status codes in this one place, and logs each call. Requests are never
// logged whole: PullImage carries registry credentials.
func unaryInterceptor(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", zap.String("method", info.FullMethod),
					zap.String("panic", fmt.Sprint(p)), zap.ByteString("stack", debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, p)
			}
			err = grpcError(err)
			code := status.Code(err)
			observeRPC(info.FullMethod, code, time.Since(start))
			fields := append(objectFields(req),
				zap.String("method", info.FullMethod),
				zap.Duration("duration", time.Since(start)),
				zap.String("code", code.String()))
			switch {
			case err == nil:
				if ce := log.Check(zap.DebugLevel, "rpc"); ce != nil {
					ce.Write(fields...)
				}
			case expected(code):
				log.Debug("rpc", append(fields, zap.Error(err))...)
			default:
				log.Error("rpc", append(fields, zap.Error(err))...)
			}
		}()
		return handler(ctx, req)
	}
}

// streamInterceptor does for streaming calls (GetContainerEvents) what
// unaryInterceptor does for the others.
func streamInterceptor(log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", zap.String("method", info.FullMethod),
					zap.String("panic", fmt.Sprint(p)), zap.ByteString("stack", debug.Stack()))
				err = status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, p)
			}
			err = grpcError(err)
			code := status.Code(err)
			observeRPC(info.FullMethod, code, time.Since(start))
			fields := []zap.Field{zap.String("method", info.FullMethod), zap.Duration("duration", time.Since(start)),
				zap.String("code", code.String())}
			// Unavailable: the stream ended because berthd is shutting down.
			if err == nil || expected(code) || code == codes.Unavailable {
				log.Debug("rpc stream", append(fields, zap.Error(err))...)
			} else {
				log.Warn("rpc stream", append(fields, zap.Error(err))...)
			}
		}()
		return handler(srv, ss)
	}
}

// grpcError turns a handler's error into a gRPC status: the errdefs class
// it wraps decides the code. An error of no class that a full disk caused
// (ENOSPC, EDQUOT: a record, a file of a pod) is ResourceExhausted rather
// than Unknown, so that kubelet's events and a crictl user see the cause.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err // nil, or already a status
	}
	s := errgrpc.ToGRPC(err)
	if status.Code(s) == codes.Unknown && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return errgrpc.ToGRPC(fmt.Errorf("%w: %w", err, errdefs.ErrResourceExhausted))
	}
	return s
}

// expected codes are answers, not faults: kubelet asks about objects that
// are gone and calls what berthd does not offer.
func expected(c codes.Code) bool {
	return c == codes.NotFound || c == codes.Unimplemented || c == codes.Canceled
}

// objectFields names the object a request is about, for the log.
func objectFields(req any) []zap.Field {
	var f []zap.Field
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		f = append(f, zap.String("sandbox", r.GetPodSandboxId()))
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		f = append(f, zap.String("container", r.GetContainerId()))
	}
	if r, ok := req.(interface{ GetImage() *runtimeapi.ImageSpec }); ok && r.GetImage().GetImage() != "" {
		f = append(f, zap.String("image", r.GetImage().GetImage()))
	}
	return f
}
