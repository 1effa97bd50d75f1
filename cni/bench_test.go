package cni

import (
	"context"
	"testing"
)

// BenchmarkSetupTeardown attaches a pod to the default network and
// detaches it again: the network's share of pod start and stop.
func BenchmarkSetupTeardown(b *testing.B) {
	tn := newTestNet(b)
	tn.standard(b)
	m := tn.manager(b)
	ns := newNetNS(b)
	ctx := context.Background()
	for b.Loop() {
		pod := Pod{ID: "bench" + randHex(6), NetNS: ns, Config: podConfig("bench")}
		if _, err := m.Setup(ctx, pod); err != nil {
			b.Fatal(err)
		}
		if err := m.Teardown(ctx, pod); err != nil {
			b.Fatal(err)
		}
	}
}
