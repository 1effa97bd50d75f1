package cri

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// gRPC's default buffer pool has no size between 32 KiB and 1 MiB: a
// ListContainers answer for 100 containers (about 45 KiB) was encoded into
// a 1 MiB buffer, zeroed whole at every call, and the pool kept such
// buffers on the heap. bufferPool has a size for every power of two from
// 256 B to 1 MiB, which gives that answer a 64 KiB buffer.
//
// The proto codec encodes into the process's default pool, which gRPC
// lets a program set only during initialization, hence the init below;
// the server's transport takes the pool it was built with
// (bufferPoolOption).
var bufferPool = newBufferPool()

func init() {
	experimental.SetDefaultBufferPool(bufferPool)
}

// bufferPoolOption makes a gRPC server read requests and frame responses
// with bufferPool.
func bufferPoolOption() grpc.ServerOption {
	return experimental.BufferPool(bufferPool)
}

// newBufferPool has a tier for every power of two from 2^8 to 2^20 bytes;
// larger buffers come from a pool of their own size, as in gRPC's.
func newBufferPool() mem.BufferPool {
	var exps []uint8
	for e := uint8(8); e <= 20; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(fmt.Sprintf("gRPC buffer pool: %v", err)) // the exponents are constants
	}
	return p
}
