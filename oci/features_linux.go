package oci

// Runtime features, probed once per process when first asked (the
// container monitor, which also builds runtimes, never asks).
//
// The built-in runtime has what the kernel has: recursive read-only binds
// need mount_setattr(2) (Linux 5.12). An external runtime has what its
// `features` command (runc 1.1+, OCI runtime-spec features.md) lists in
// mountOptions and the kernel supports; a runtime without that command
// (Debian's crun 1.8) is taken to have none, as kubelet and containerd
// take it.

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// mountSetattrWorks says the kernel has mount_setattr(2): with a bad fd it
// fails EBADF where it exists, ENOSYS where it does not.
var mountSetattrWorks = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
})

// Features of the built-in runtime.
func (r *builtin) Features() Features {
	// Idmapped mounts came with mount_setattr(2); a filesystem without
	// them fails CreateContainer with the kernel's error.
	return Features{RecursiveReadOnly: mountSetattrWorks(), UserNamespaces: mountSetattrWorks()}
}

// Features of an external runtime, from its `features` command.
func (r *external) Features() Features {
	r.featuresOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, r.path, "features").Output()
		if err != nil {
			return // no features command: nothing beyond the basics
		}
		var f struct {
			MountOptions []string `json:"mountOptions"`
			Linux        struct {
				Namespaces []string `json:"namespaces"`
			} `json:"linux"`
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(out, &f) != nil {
			return
		}
		r.features.RecursiveReadOnly = mountSetattrWorks() && slices.Contains(f.MountOptions, "rro")
		// Berth idmaps the rootfs on the host and hands the runtime a
		// user namespace to join by path, which runc does from 1.0 on
		// (tested: test/integration/userns_test.go). crun is not tested.
		_, isRunc := f.Annotations["org.opencontainers.runc.version"]
		r.features.UserNamespaces = mountSetattrWorks() && isRunc && slices.Contains(f.Linux.Namespaces, "user")
	})
	return r.features
}
