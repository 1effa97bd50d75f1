// Command e2e starts and stops the end-to-end cluster of package
// test/e2e/cluster for use by hand (make e2e-up, make e2e-down):
//
//	go run ./hack/e2e up -dir DIR -bin K8SBIN -berthd BERTHD
//	go run ./hack/e2e down -dir DIR
//
// up starts a detached "serve" process that brings the cluster up, holds
// the in-process test registry, and tears everything down on SIGTERM; up
// returns once the node is Ready and prints how to use the cluster. down
// signals that process and then runs the cluster's Teardown itself, so it
// also cleans up after a serve process that died.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e up|down|serve -dir DIR [-bin K8SBIN -berthd BERTHD]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "/tmp/berth-e2e", "the cluster's private directory")
	bin := fs.String("bin", "", "directory of the Kubernetes binaries (hack/k8s/build.sh prints it)")
	berthd := fs.String("berthd", "bin/berthd", "the berthd binary")
	fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*dir)
	if err == nil {
		*dir = abs
		switch os.Args[1] {
		case "up":
			err = up(*dir, *bin, *berthd)
		case "serve":
			err = serve(*dir, *bin, *berthd)
		case "down":
			err = down(*dir)
		default:
			err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func pidFile(dir string) string { return dir + ".serve.pid" }
func logFile(dir string) string { return dir + ".serve.log" }

func up(dir, bin, berthd string) error {
	if bin == "" {
		return errors.New("-bin is required (make e2e-up passes hack/k8s/build.sh's directory)")
	}
	berthd, err := filepath.Abs(berthd)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log, err := os.Create(logFile(dir))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(self, "serve", "-dir", dir, "-bin", bin, "-berthd", berthd)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logFile(dir))
			return fmt.Errorf("the cluster did not start (%v):\n%s", err, out)
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Printf(`The cluster is up (node %s runs its pods on berthd at %s/berth/state/berth.sock).
  export KUBECONFIG=%s/admin.kubeconfig
  %s/kubectl get nodes -o wide
  %s/kubectl run hello --image=%s --restart=Never -- sh -c 'echo hello from Berth'
  %s/kubectl logs hello
Logs: %s/logs/*.log. Stop it with make e2e-down.
`, cluster.NodeName, dir, dir, bin, bin, cluster.Busybox, bin, dir)
	return nil
}

func serve(dir, bin, berthd string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := cluster.Start(ctx, cluster.Config{Dir: dir, Bin: bin, Berthd: berthd,
		Log: func(f string, a ...any) { fmt.Printf(time.Now().Format("15:04:05 ")+f+"\n", a...) }})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		c.Stop()
		return err
	}
	<-ctx.Done()
	fmt.Println("stopping the cluster")
	return c.Stop()
}

func down(dir string) error {
	if data, err := os.ReadFile(pidFile(dir)); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		if pid > 0 && ownServe(dir, pid) {
			syscall.Kill(pid, syscall.SIGTERM)
			for deadline := time.Now().Add(3 * time.Minute); ownServe(dir, pid) && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	// Whatever the serve process did not get to (or all of it, if it died).
	if err := cluster.Teardown(dir); err != nil {
		return err
	}
	os.Remove(pidFile(dir))
	os.Remove(logFile(dir))
	return nil
}

func ownServe(dir string, pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "serve\x00-dir\x00"+dir+"\x00")
}
