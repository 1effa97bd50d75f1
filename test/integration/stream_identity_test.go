package integration

import (
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/images"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// identityScript prints what a process is: its user and groups, its
// capability sets, no_new_privs and seccomp state, its cgroup, and the
// namespaces it is in.
const identityScript = `id -u; id -g; id -G
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
cat /proc/self/cgroup
for n in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$n; done`

func TestStreamingExecRunsAsExecSyncDoes(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("identity", "sleep 3600")
		sc := cfg.Linux.SecurityContext
		sc.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: 2345}
		sc.SupplementalGroups = []int64{4242}
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE", "KILL"}}
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		sc.NoNewPrivs = true
		id := e.mustRun(t, cfg)

		sync := e.mustExec(t, id, "sh", "-c", identityScript)
		// The settings took: the comparison below is not between two
		// unconfined root shells.
		for _, want := range []string{"2345", "4242", "CapBnd:\t0000000000000420", "NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(sync, want) {
				t.Fatalf("ExecSync's identity lacks %q:\n%s", want, sync)
			}
		}
		for _, proto := range protocols {
			for _, tty := range []bool{false, true} {
				out, errOut, code := e.streamExec(t, proto, id, tty, nil, nil, "sh", "-c", identityScript)
				out = strings.TrimSpace(strings.ReplaceAll(out, "\r\n", "\n"))
				if code != 0 || errOut != "" {
					t.Fatalf("%s tty=%v: exit %d, stderr %q", proto, tty, code, errOut)
				}
				if out != sync {
					t.Errorf("%s tty=%v: streaming exec's identity differs from ExecSync's:\nstream:\n%s\nExecSync:\n%s", proto, tty, out, sync)
				}
			}
		}
	})
}
