package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"go.uber.org/zap"
)

// pluginWaitDelay bounds how long a killed plugin's descendants may hold
// its output open.
const pluginWaitDelay = 2 * time.Second

// pluginExec runs plugins like libcni's RawExec, but kills a plugin's whole
// process group when the call's context ends (a plugin timed out or the
// RPC was cancelled), so a plugin that forked cannot keep the call waiting,
// and logs the plugins' stderr (left by the CNI for diagnostics) instead of
// mixing it into berthd's.
type pluginExec struct {
	version.PluginDecoder
	log *zap.Logger
}

func newExec(log *zap.Logger) invoke.Exec { return &pluginExec{log: log} }

func (e *pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = pluginWaitDelay
	start := time.Now()
	err := cmd.Run()
	if ce := e.log.Check(zap.DebugLevel, "plugin ran"); ce != nil {
		ce.Write(zap.String("plugin", path), zap.String("command", pluginCommand(environ)),
			zap.Duration("duration", time.Since(start)), zap.ByteString("stderr", bytes.TrimSpace(stderr.Bytes())))
	}
	if err != nil {
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// pluginCommand is the CNI_COMMAND of a plugin's environment.
func pluginCommand(environ []string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], "CNI_COMMAND="); ok {
			return v
		}
	}
	return ""
}

// pluginError is the plugin's own error (a CNI error object on stdout),
// else its stderr, else how it ended.
func pluginError(err error, stdout, stderr []byte) error {
	var e types.Error
	switch {
	case len(bytes.TrimSpace(stdout)) > 0:
		if json.Unmarshal(stdout, &e) != nil || e.Msg == "" {
			e = types.Error{Msg: fmt.Sprintf("plugin failed (%v) with output %q", err, bytes.TrimSpace(stdout))}
		}
	case len(bytes.TrimSpace(stderr)) > 0:
		e.Msg = fmt.Sprintf("plugin failed (%v): %s", err, bytes.TrimSpace(stderr))
	default:
		e.Msg = fmt.Sprintf("plugin failed with no message: %v", err)
	}
	return &e
}
