package cri

import (
	"testing"

	"google.golang.org/grpc/mem"
)

func TestResponsesAreEncodedIntoBuffersSizedToThem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, cap int
	}{
		{"a ListContainers answer for 100 containers takes 64 KiB, not 1 MiB", 45 << 10, 64 << 10},
		{"an answer of 40 KiB takes 64 KiB", 40 << 10, 64 << 10},
		{"an answer just over a power of two takes the next one", 128<<10 + 1, 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := mem.DefaultBufferPool()
			buf := pool.Get(tc.size)
			defer pool.Put(buf)
			if len(*buf) != tc.size || cap(*buf) != tc.cap {
				t.Errorf("gRPC's default pool gave a %d-byte buffer %d bytes of room, want %d", len(*buf), cap(*buf), tc.cap)
			}
		})
	}
}
