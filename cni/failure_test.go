package cni

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// versionCase answers CNI VERSION for the shell plugins below.
const versionCase = `VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}'; exit 0;;
`

func TestFailingPluginFailsSetupWithItsMessageAndUndoesTheNetwork(t *testing.T) {
	tn := newTestNet(t)
	tn.plugin(t, "fail", `case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":100,"msg":"fake failure: no quota left"}'; exit 1;;
`+versionCase+`esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin(),
		map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		map[string]any{"type": "fail"}))
	m := tn.manager(t)
	pod := newPod(t, "a")
	_, err := m.Setup(context.Background(), pod)
	if err == nil || !strings.Contains(err.Error(), "fake failure: no quota left") {
		t.Fatalf("Setup = %v, want the plugin's message", err)
	}
	assertNoTrace(t, tn, m, pod)
	if err := m.Ready(); err != nil {
		t.Errorf("a plugin failing ADD made the network not ready: %v", err)
	}
}

func TestPluginTimeoutFailsSetupAndUndoesTheNetwork(t *testing.T) {
	tn := newTestNet(t)
	// The shell stays the parent of sleep: killing only the plugin would
	// leave sleep holding its stdout.
	tn.plugin(t, "hang", `case "$CNI_COMMAND" in
ADD) sleep 600; exit 0;;
`+versionCase+`esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin(), map[string]any{"type": "hang"}))
	// Long enough for the bridge plugin before it on a loaded machine, and
	// for the DEL that undoes it.
	m := tn.manager(t, func(c *Config) { c.PluginTimeout = 5 })
	pod := newPod(t, "a")
	_, err := m.Setup(context.Background(), pod)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Setup = %v, want a timeout", err)
	}
	assertNoTrace(t, tn, m, pod)
}

func TestCancelledSetupUndoesTheNetwork(t *testing.T) {
	tn := newTestNet(t)
	started := filepath.Join(t.TempDir(), "started")
	tn.plugin(t, "hang", `case "$CNI_COMMAND" in
ADD) touch `+started+`; sleep 600; exit 0;;
`+versionCase+`esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin(), map[string]any{"type": "hang"}))
	m := tn.manager(t)
	pod := newPod(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		eventually(t, "the plugin starts", func() bool { _, err := os.Stat(started); return err == nil })
		cancel()
	}()
	if _, err := m.Setup(ctx, pod); err == nil {
		t.Fatal("Setup succeeded with its context cancelled")
	}
	assertNoTrace(t, tn, m, pod)
}

func TestFailedTeardownIsRetriedAndThenGivenUp(t *testing.T) {
	tn := newTestNet(t)
	broken := filepath.Join(t.TempDir(), "broken")
	// First in the chain, so its ADD result (none) is nobody's prevResult.
	tn.plugin(t, "flaky", `case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0"}'; exit 0;;
DEL) if [ -e `+broken+` ]; then echo '{"cniVersion":"1.0.0","code":999,"msg":"fake teardown failure"}'; exit 1; fi; exit 0;;
`+versionCase+`esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(map[string]any{"type": "flaky"}, tn.bridgePlugin()))

	t.Run("a DEL that fails once succeeds at the next teardown, also from a new Manager", func(t *testing.T) {
		m := tn.manager(t)
		pod := newPod(t, "a")
		mustSetup(t, m, pod)
		os.WriteFile(broken, nil, 0o644)
		err := m.Teardown(context.Background(), pod)
		if err == nil || !strings.Contains(err.Error(), "fake teardown failure") || !strings.Contains(err.Error(), "attempt 1 of 3") {
			t.Fatalf("Teardown = %v, want the plugin's failure, attempt 1 of 3", err)
		}
		if _, err := os.Stat(m.recordPath(pod.ID)); err != nil {
			t.Fatalf("the record of a failed teardown is gone: %v", err)
		}
		os.Remove(broken)
		m.Close()
		m2 := tn.manager(t)
		if err := m2.Teardown(context.Background(), pod); err != nil {
			t.Fatalf("retried Teardown = %v", err)
		}
		assertNoTrace(t, tn, m2, pod)
	})

	t.Run("a DEL that keeps failing is given up after three attempts", func(t *testing.T) {
		m := tn.manager(t)
		pod := newPod(t, "b")
		mustSetup(t, m, pod)
		os.WriteFile(broken, nil, 0o644)
		defer os.Remove(broken)
		for i := 1; i < maxTeardownAttempts; i++ {
			if err := m.Teardown(context.Background(), pod); err == nil {
				t.Fatalf("Teardown attempt %d succeeded with DEL failing", i)
			}
		}
		if err := m.Teardown(context.Background(), pod); err != nil {
			t.Fatalf("Teardown attempt %d = %v, want the pod given up", maxTeardownAttempts, err)
		}
		if _, err := os.Stat(m.recordPath(pod.ID)); !os.IsNotExist(err) {
			t.Errorf("record of a given-up pod: %v", err)
		}
		if err := m.Teardown(context.Background(), pod); err != nil {
			t.Errorf("Teardown after giving up = %v", err)
		}
		// DEL runs the chain in reverse: the bridge plugin released the
		// address before the flaky one failed.
		assertNetworkEmpty(t, tn)
	})
}

func TestSetupAfterACrashedSetupReleasesTheFirstAttempt(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	mustSetup(t, m, pod)
	// berthd died between ADD and recording its success.
	rec, err := m.loadRecord(pod.ID)
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	rec.Attached, rec.IPs = false, nil
	if err := m.saveRecord(rec); err != nil {
		t.Fatal(err)
	}
	res := mustSetup(t, tn.manager(t), pod)
	if got := tn.reservations(t); len(got) != 1 || got[0] != res.IPs[0].String() {
		t.Errorf("reservations %v, want only %s", got, res.IPs[0])
	}
}

func TestDamagedRecordIsTornDownWithTheCurrentNetwork(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	mustSetup(t, m, pod)
	if err := os.WriteFile(m.recordPath(pod.ID), []byte(`{"version": 1, "id": `), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Attached(); err != nil || len(got) != 1 || got[0] != pod.ID {
		t.Errorf("Attached with a damaged record = %v, %v; want the pod", got, err)
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatalf("Teardown with a damaged record: %v", err)
	}
	assertNoTrace(t, tn, m, pod)
}
