package cri

import (
	"context"

	"github.com/berth-runtime/berth/image"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *imageService) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	images, containers, err := s.images.FsInfo(ctx)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     toCRIFilesystems(images),
		ContainerFilesystems: toCRIFilesystems(containers),
	}, nil
}

func toCRIFilesystems(fss []image.Filesystem) []*runtimeapi.FilesystemUsage {
	out := make([]*runtimeapi.FilesystemUsage, 0, len(fss))
	for _, f := range fss {
		out = append(out, &runtimeapi.FilesystemUsage{
			Timestamp:  f.Timestamp.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: f.Mountpoint},
			UsedBytes:  &runtimeapi.UInt64Value{Value: f.UsedBytes},
			InodesUsed: &runtimeapi.UInt64Value{Value: f.InodesUsed},
		})
	}
	return out
}
