package main

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pulls pulls the large image cold, then its sibling, recording the wall
// time of each and how many of each image's layer blobs the registry
// served: the sibling should need only its own upper layers.
func (r *runner) pulls(ctx context.Context) error {
	for _, im := range []struct {
		name, ref string
		img       v1.Image
	}{
		{"large", r.env.large, r.env.largeImg},
		{"sibling", r.env.sibling, r.env.siblingImg},
	} {
		r.env.reg.ResetCounts()
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		_, err := r.img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: im.ref}})
		cancel()
		if err != nil {
			return fmt.Errorf("pull %s: %w", im.name, err)
		}
		r.out.Set("pull."+im.name+".wall", time.Since(start).Seconds())
		layers, err := im.img.Layers()
		if err != nil {
			return err
		}
		fetched := 0
		var notFetched []string
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			if r.env.reg.BlobFetches(d) > 0 {
				fetched++
			} else {
				notFetched = append(notFetched, d.String())
			}
		}
		logf("  %s pull %s: %.2fs, %d of %d layer blobs fetched; not fetched: %v", r.runtime, im.name, time.Since(start).Seconds(), fetched, len(layers), notFetched)
		r.out.Set("pull."+im.name+".layers_fetched", float64(fetched))
	}
	return nil
}
