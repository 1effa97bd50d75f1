package main

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-runtime/berth/test/registry"
)

func TestEveryCatalogImageIsServedUnderItsReference(t *testing.T) {
	r := registry.Start(t, registry.WithBasicAuth("berth", "berth"))
	imgs, indexes := catalog(false)
	want := map[string]string{}
	for ref, img := range imgs {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		want[r.Push(t, ref, img)] = d.String()
	}
	for ref, idx := range indexes {
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		want[r.PushIndex(t, ref, idx)] = d.String()
	}
	for ref, digest := range want {
		parsed, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(parsed, r.RemoteOptions()...)
		if err != nil {
			t.Fatalf("head %s: %v", ref, err)
		}
		if desc.Digest.String() != digest {
			t.Errorf("%s serves %s, want %s", ref, desc.Digest, digest)
		}
	}
}
