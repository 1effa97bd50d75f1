package cri

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-runtime/berth/image"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *imageService) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.images.Get(ctx, ref)
		if errdefs.IsNotFound(err) {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{toCRIImage(img)}}, nil
	}
	imgs, err := s.images.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toCRIImage(img))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// toCRIImage describes an image as kubelet sees it. The config's user
// becomes uid when it is numeric (the part before ':'), username otherwise.
func toCRIImage(img image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
		Pinned:      img.Pinned,
	}
	user, _, _ := strings.Cut(img.Config.User, ":")
	if user != "" {
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}
