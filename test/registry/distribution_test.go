package registry

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/berth-runtime/berth/test/images"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestDistributionServesPushedImagesBehindEachAuthKind(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"basic auth with an htpasswd file", []Option{WithBasicAuth("alice", "s3cret")}},
		{"token auth", []Option{WithBearerAuth("alice", "s3cret")}},
		{"token auth over TLS", []Option{WithBearerAuth("alice", "s3cret"), WithTLS()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := StartDistribution(t, tc.opts...)
			img := images.Layered(images.WithFormat(images.Docker))
			full := d.Push(t, "library/layered:latest", img)
			got := mustPullImage(t, full, d.RemoteOptions()...)
			if digestOf(t, got) != digestOf(t, img) {
				t.Errorf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, img))
			}
			idx := images.Index()
			idxRef := d.PushIndex(t, "library/multi:latest", idx)
			gotIdx, err := remote.Index(mustRef(t, idxRef), d.RemoteOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if digestOf(t, gotIdx) != digestOf(t, idx) {
				t.Errorf("index: pulled %s, pushed %s", digestOf(t, gotIdx), digestOf(t, idx))
			}
			if req, issued := d.TokenRequests(); (req > 0 && issued > 0) != (d.TokenURL() != "") {
				t.Errorf("token server saw %d requests, issued %d tokens (realm %q)", req, issued, d.TokenURL())
			}
			for _, auth := range []authn.Authenticator{authn.Anonymous, &authn.Basic{Username: "alice", Password: "wrong"}} {
				_, err := pullImage(full, remote.WithAuth(auth), remote.WithTransport(d.Transport()))
				if statusOf(err) != 401 {
					t.Errorf("pull with %v: %v, want 401", auth, err)
				}
			}
		})
	}
}

func TestDistributionLeavesNoProcessOrFilesAfterCleanup(t *testing.T) {
	var pid int
	var dir string
	t.Run("run", func(t *testing.T) {
		d := StartDistribution(t)
		d.Push(t, "library/busybox:latest", images.Busybox())
		pid, dir = d.cmd.Process.Pid, d.logFile
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("docker-registry pid %d still exists after cleanup (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after cleanup: %v", dir, err)
	}
}
