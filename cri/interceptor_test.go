package cri

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGRPCErrorGivesEachErrorItsCode(t *testing.T) {
	noSpace := fmt.Errorf("save container: %w", &os.PathError{Op: "write", Path: "/x/meta.db", Err: syscall.ENOSPC})
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"no error is no status", nil, codes.OK},
		{"an errdefs class decides the code", fmt.Errorf("pod x: %w", errdefs.ErrNotFound), codes.NotFound},
		{"a full disk is ResourceExhausted", noSpace, codes.ResourceExhausted},
		{"a quota is ResourceExhausted", fmt.Errorf("write: %w", syscall.EDQUOT), codes.ResourceExhausted},
		{"a class wins over a full disk below it", fmt.Errorf("%w: %w", noSpace, errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{"an error of no class is Unknown", errors.New("something"), codes.Unknown},
		{"a status passes through", status.Error(codes.Aborted, "x"), codes.Aborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := grpcError(tc.err)
			if status.Code(got) != tc.want {
				t.Fatalf("grpcError(%v) = %v, want code %v", tc.err, got, tc.want)
			}
			if tc.err != nil && !strings.Contains(got.Error(), tc.err.Error()) {
				t.Fatalf("grpcError(%v) = %v lost the message", tc.err, got)
			}
		})
	}
}
