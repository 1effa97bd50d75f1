package cri

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus answers an empty response, not an error, for an image that
// is not there: kubelet decides to pull on that.
func (s *imageService) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("image status: no image named: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.images.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if req.GetVerbose() {
		cfg, err := s.images.ConfigJSON(ctx, img.ID)
		if err != nil {
			return nil, fmt.Errorf("image status %s: %w", img.ID, err)
		}
		info, err := json.Marshal(struct {
			ID        string          `json:"id"`
			ChainIDs  []string        `json:"chainIDs"`
			ImageSpec json.RawMessage `json:"imageSpec"`
		}{img.ID, img.ChainIDs, cfg})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}
