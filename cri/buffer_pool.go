package cri

import (
	"fmt"

	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// gRPC encodes every response into a buffer from its default pool, whose
// sizes jump from 32 KiB to 1 MiB: a ListContainers answer for 100
// containers (about 45 KiB) took a 1 MiB buffer, zeroed whole at every
// call, and the pool kept such buffers on the heap. A pool with a size
// for every power of two from 256 B to 1 MiB gives that answer a 64 KiB
// buffer.
//
// gRPC takes the pool only during initialization; it serves the proto
// codec, which no server option reaches, and every server and client of
// the process.
func init() {
	experimental.SetDefaultBufferPool(bufferPool())
}

// bufferPool has a tier for every power of two from 2^8 to 2^20 bytes;
// larger buffers come from a pool of their own size, as in gRPC's.
func bufferPool() mem.BufferPool {
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
