package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadyReportsWhatIsWrongWithTheConfDir(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		binDirs func(tn *testNet) []string
		want    string // in Ready's error; empty: ready
	}{
		{
			name: "an empty conf dir is not ready",
			want: "no network configuration",
		},
		{
			name:  "a conflist that is not JSON is not ready",
			files: map[string]string{"10-broken.conflist": `{"cniVersion": "1.0.0", "name": `},
			want:  "10-broken.conflist",
		},
		{
			name:  "a conflist without plugins is not ready",
			files: map[string]string{"10-empty.conflist": `{"cniVersion": "1.0.0", "name": "empty", "plugins": []}`},
			want:  "no plugins",
		},
		{
			name:  "a conflist from a newer CNI spec is not ready",
			files: map[string]string{"10-new.conflist": `{"cniVersion": "9.0.0", "name": "new", "plugins": [{"type": "bridge"}]}`},
			want:  "newer than",
		},
		{
			name:  "a conflist naming a plugin that is not installed is not ready",
			files: map[string]string{"10-x.conflist": `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}, {"type": "no-such-plugin"}]}`},
			want:  `plugin "no-such-plugin" not found`,
		},
		{
			name:    "plugins missing from every bin dir is not ready",
			files:   map[string]string{"10-x.conflist": `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}`},
			binDirs: func(tn *testNet) []string { return []string{filepath.Join(tn.confDir, "nothing-here")} },
			want:    `plugin "bridge" not found`,
		},
		{
			name: "only the first file in lexical order counts",
			files: map[string]string{
				"05-broken.conflist": `not json`,
				"10-good.conflist":   `{"cniVersion": "1.0.0", "name": "good", "plugins": [{"type": "bridge"}]}`,
			},
			want: "05-broken.conflist",
		},
		{
			name:  "a usable conflist is ready",
			files: map[string]string{"10-good.conflist": `{"cniVersion": "1.0.0", "name": "good", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}`},
		},
		{
			name:  "a single plugin .conf is ready",
			files: map[string]string{"10-good.conf": `{"cniVersion": "0.4.0", "name": "good", "type": "bridge"}`},
		},
		{
			name:  "files with other extensions are ignored",
			files: map[string]string{"README": "not a config", "10-good.json": `{"cniVersion": "1.0.0", "name": "good", "type": "bridge"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNet(t)
			for name, data := range tc.files {
				tn.writeConf(t, name, []byte(data))
			}
			if tc.binDirs != nil {
				tn.binDirs = tc.binDirs(tn)
			}
			err := tn.manager(t).Ready()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Ready = %v, want ready", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Ready = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadyFollowsTheConfDirWithoutRestart(t *testing.T) {
	tn := newTestNet(t)
	m := tn.manager(t)
	if m.Ready() == nil {
		t.Fatal("ready with an empty conf dir")
	}
	tn.writeConf(t, "10-net.conflist", []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [`))
	eventually(t, "a broken conflist is reported", func() bool {
		err := m.Ready()
		return err != nil && strings.Contains(err.Error(), "10-net.conflist")
	})
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin()))
	eventually(t, "fixing the conflist turns the network ready", func() bool { return m.Ready() == nil })
	if err := os.Remove(filepath.Join(tn.confDir, "10-net.conflist")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removing the conflist turns the network not ready", func() bool { return m.Ready() != nil })
}

func TestReadyNoticesAPluginInstalledLater(t *testing.T) {
	tn := newTestNet(t)
	bin := filepath.Join(t.TempDir(), "bin")
	tn.binDirs = []string{debianPlugins, bin}
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin(), map[string]any{"type": "later"}))
	m := tn.manager(t)
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), `"later"`) {
		t.Fatalf("Ready = %v, want the missing plugin named", err)
	}
	writePlugin(t, bin, "later", "exit 0\n")
	if err := m.Ready(); err != nil {
		t.Errorf("Ready after installing the plugin = %v", err)
	}
}

func TestReadyFollowsAConfDirRemovedAndRecreated(t *testing.T) {
	tn := newTestNet(t)
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin()))
	m := tn.manager(t)
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if err := os.RemoveAll(tn.confDir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removing the conf dir turns the network not ready", func() bool { return m.Ready() != nil })
	if err := os.MkdirAll(tn.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin()))
	eventually(t, "a recreated conf dir turns the network ready", func() bool { return m.Ready() == nil })
}
