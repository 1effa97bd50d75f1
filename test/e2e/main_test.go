package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/e2e/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	cl     *cluster.Cluster
	kube   kubernetes.Interface
	cri    runtimeapi.RuntimeServiceClient
	criImg runtimeapi.ImageServiceClient
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/e2e: needs root (kubelet and berthd make namespaces, mounts and cgroups)")
		return 1
	}
	bin, berthd, err := binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/e2e:", err)
		return 1
	}
	_, err = os.Stat("/var/lib/kubelet")
	hadVarLibKubelet := err == nil
	start := time.Now()
	cl, err = cluster.Start(context.Background(), cluster.Config{Dir: dir, Bin: bin, Berthd: berthd,
		Log: func(f string, a ...any) { fmt.Printf("e2e cluster: "+f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/e2e: start the cluster:", err)
		return 1
	}
	fmt.Printf("e2e cluster: up in %s\n", time.Since(start).Round(time.Millisecond))
	code := func() int {
		cfg, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, "test/e2e:", err)
			return 1
		}
		cfg.QPS, cfg.Burst = 50, 100
		if kube, err = kubernetes.NewForConfig(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "test/e2e:", err)
			return 1
		}
		conn, err := grpc.NewClient("unix://"+cl.BerthSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "test/e2e:", err)
			return 1
		}
		defer conn.Close()
		cri = runtimeapi.NewRuntimeServiceClient(conn)
		criImg = runtimeapi.NewImageServiceClient(conn)
		return m.Run()
	}()
	stopped := time.Now()
	if err := cl.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "test/e2e: tear the cluster down:", err)
		code = 1
	}
	if left := cluster.Leftovers(dir, hadVarLibKubelet); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "test/e2e: the cluster left on the host:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	fmt.Printf("e2e cluster: down in %s\n", time.Since(stopped).Round(time.Millisecond))
	return code
}

// binaries finds the Kubernetes binaries (E2E_BIN, or hack/k8s/build.sh's
// cache, building them if needed) and berthd (BERTHD, or built here).
func binaries() (bin, berthd string, err error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", "", err
	}
	bin = os.Getenv("E2E_BIN")
	if bin == "" {
		var out bytes.Buffer
		cmd := exec.Command("sh", filepath.Join(root, "hack/k8s/build.sh"))
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("hack/k8s/build.sh: %w", err)
		}
		bin = strings.TrimSpace(out.String())
	}
	berthd = os.Getenv("BERTHD")
	if berthd == "" {
		berthd = filepath.Join(os.TempDir(), "berth-e2e-bin", "berthd")
		cmd := exec.Command("go", "build", "-o", berthd, "./cmd/berthd")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("build berthd: %w", err)
		}
	}
	return bin, berthd, nil
}
