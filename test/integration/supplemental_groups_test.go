package integration

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSupplementalGroupsPolicyMergeAddsTheImagesGroupsAndStrictDoesNot(t *testing.T) {
	// The image's /etc/group lists berth (uid 1000, group 1000) in
	// GroupBuilders and GroupTesters.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		for _, tc := range []struct {
			name   string
			policy runtimeapi.SupplementalGroupsPolicy
			want   []int64
		}{
			{"merge", runtimeapi.SupplementalGroupsPolicy_Merge, []int64{1000, images.GroupBuilders, images.GroupTesters, 4242}},
			{"strict", runtimeapi.SupplementalGroupsPolicy_Strict, []int64{1000, 4242}},
		} {
			cfg := e.config(tc.name, "id -u; id -g; id -G")
			cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
			cfg.Linux.SecurityContext.SupplementalGroups = []int64{4242}
			cfg.Linux.SecurityContext.SupplementalGroupsPolicy = tc.policy
			id := e.mustCreate(t, cfg)
			e.mustStart(t, id)
			st := e.waitExited(t, id)
			out := logContent(t, filepath.Join(e.logDir, cfg.LogPath))
			var inside []string
			for _, g := range tc.want {
				inside = append(inside, strconv.FormatInt(g, 10))
			}
			if got, want := strings.Fields(out), append([]string{"1000", "1000"}, inside...); !slices.Equal(got, want) {
				t.Errorf("%s: the container's ids are %q, want %q", tc.name, got, want)
			}
			u := st.GetUser().GetLinux()
			if u.GetUid() != images.UserBerth || u.GetGid() != 1000 || !slices.Equal(u.GetSupplementalGroups(), tc.want) {
				t.Errorf("%s: ContainerStatus.user is %v, want uid 1000 gid 1000 groups %v", tc.name, u, tc.want)
			}
		}
	})
}

func TestStatusReportsSupplementalGroupsPolicyAndEachHandlersRecursiveReadOnly(t *testing.T) {
	d := harness.Start(t)
	resp, err := d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("features %v: supplemental_groups_policy is not reported", resp.GetFeatures())
	}
	// runc 1.1 lists "rro" in `runc features`; Debian's crun 1.8 has no
	// features command.
	want := map[string]bool{"": true, "berth": true, "runc": true, "crun": false}
	for _, h := range resp.GetRuntimeHandlers() {
		if w, ok := want[h.GetName()]; ok && h.GetFeatures().GetRecursiveReadOnlyMounts() != w {
			t.Errorf("handler %q: recursive_read_only_mounts %v, want %v", h.GetName(), h.GetFeatures().GetRecursiveReadOnlyMounts(), w)
		}
		delete(want, h.GetName())
	}
	if len(want) != 0 {
		t.Errorf("handlers missing from Status: %v", want)
	}
}
