package integration

// berthd's Prometheus endpoint ([metrics] address), scraped as Prometheus
// would: it counts the CRI calls a test makes, by method and code, and
// reports pods, containers and monitors as they are.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// scrape fetches /metrics from the unix socket at sock and returns each
// series ("name{labels}") with its value.
func scrape(t *testing.T, sock string) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get("http://berthd/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape metrics: %s: %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestPrometheusEndpointCountsTheCallsAndReportsPodsAndContainers(t *testing.T) {
	var sock string
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		before := scrape(t, sock)
		const versions = 3
		for range versions {
			if _, err := e.d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil {
				t.Fatalf("Version: %v", err)
			}
		}
		_, _ = e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: "absent"})
		e.mustRun(t, e.config("running", "exec sleep 1000"))
		after := scrape(t, sock)

		ok := `berth_cri_requests_total{code="OK",method="Version"}`
		if got := after[ok] - before[ok]; got != versions {
			t.Errorf("%s rose by %v across %d Version calls", ok, got, versions)
		}
		nf := `berth_cri_requests_total{code="NotFound",method="ContainerStatus"}`
		if got := after[nf] - before[nf]; got != 1 {
			t.Errorf("%s rose by %v across one ContainerStatus of an unknown ID", nf, got)
		}
		if after[`berth_cri_request_duration_seconds_count{method="CreateContainer"}`] < 1 {
			t.Errorf("no CreateContainer latency observed")
		}
		if after[`berth_containers{state="running"}`] < 1 || after[`berth_pods{state="ready"}`] < 1 {
			t.Errorf("running containers %v, ready pods %v; want at least one each",
				after[`berth_containers{state="running"}`], after[`berth_pods{state="ready"}`])
		}
		if after["berth_monitor_processes"] < 1 {
			t.Errorf("berth_monitor_processes %v with a container running", after["berth_monitor_processes"])
		}
		if after["berth_image_pull_bytes_total"] == 0 || after[`berth_image_pull_duration_seconds_count{result="ok"}`] < 1 {
			t.Errorf("the busybox pull is not counted: %v bytes, %v pulls", after["berth_image_pull_bytes_total"],
				after[`berth_image_pull_duration_seconds_count{result="ok"}`])
		}
		if after["process_resident_memory_bytes"] == 0 {
			t.Errorf("no process_resident_memory_bytes")
		}
	}, harness.WithConfig(func(c *config.Config) {
		sock = filepath.Join(filepath.Dir(c.Socket), "metrics.sock")
		c.Metrics.Address = sock
	}))
}
