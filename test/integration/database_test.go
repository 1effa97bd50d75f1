package integration

// The databases under faults (issue 16): a corrupt meta.db stops berthd at
// start with a message saying how to recover, rather than a berthd that
// starts empty and orphans what runs.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/harness"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestACorruptDatabaseStopsBerthdAtStartAndTheRestoredOneRecoversThePod(t *testing.T) {
	for _, db := range []string{"sandbox", "image"} {
		t.Run(db, func(t *testing.T) {
			d := harness.Start(t)
			cfg := podConfig(d, "corrupt-db-"+db)
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			pod, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			d.Kill(t)
			path := filepath.Join(d.Root, db, "meta.db")
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			junk := []byte(strings.Repeat("not a database ", 300))
			if err := os.WriteFile(path, junk, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, harness.Binary(t), "--config", d.ConfigPath).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("berthd on a corrupt %s database: %v, want it to exit with an error; output:\n%s", db, err, out)
			}
			for _, want := range []string{path, "corrupt database", "mv " + path} {
				if !strings.Contains(string(out), want) {
					t.Errorf("berthd's message does not say %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(d.Socket); err == nil {
				if c, err := os.ReadFile(path); err == nil && string(c) != string(junk) {
					t.Errorf("berthd rewrote the corrupt database")
				}
			}

			// The restored file: the pod is there again.
			if err := os.WriteFile(path, good, 0o600); err != nil {
				t.Fatal(err)
			}
			d.Restart(t)
			resp, err := d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.PodSandboxId})
			if err != nil || resp.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Fatalf("the pod after restoring the database: %v, %v", resp.GetStatus().GetState(), err)
			}
			if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
		})
	}
}
