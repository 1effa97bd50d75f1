package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestMain lets the test binary serve as the null CRI server, as the
// benchmark binary does.
func TestMain(m *testing.M) {
	if dir := os.Getenv(nullCRIEnv); dir != "" {
		if err := serveNullCRI(dir); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func nullResponses() map[string]proto.Message {
	return map[string]proto.Message{
		listCallNames[0]: &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{{Id: "p1"}, {Id: "p2"}}},
		listCallNames[1]: &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "c1", Labels: map[string]string{"a": "b"}}}},
		listCallNames[2]: &runtimeapi.ListContainerStatsResponse{Stats: []*runtimeapi.ContainerStats{{Attributes: &runtimeapi.ContainerAttributes{Id: "c1"}}}},
	}
}

// TestNullCRIAnswersTheRuntimesResponsesAndLeavesNothing: the null server
// answers each list call with the response it was given, and close stops
// its process and removes its directory.
func TestNullCRIAnswersTheRuntimesResponsesAndLeavesNothing(t *testing.T) {
	want := nullResponses()
	n, err := startNullCRI(context.Background(), t.TempDir(), want)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range listCalls(n.rt, 1) {
		got, err := c.call(context.Background())
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !proto.Equal(got, want[c.name]) {
			t.Errorf("%s answered %v, want %v", c.name, got, want[c.name])
		}
	}
	pid := n.cmd.Process.Pid
	if err := n.close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the null server (pid %d) outlived close", pid)
	}
	if _, err := os.Stat(n.dir); !os.IsNotExist(err) {
		t.Errorf("the null server's directory %s outlived close: %v", n.dir, err)
	}
}

// TestNullCRIThatCannotStartSaysSo: a server that exits (here, for want
// of a response) fails the start with an error saying it exited and where
// its log is, and leaves no directory behind.
func TestNullCRIThatCannotStartSaysSo(t *testing.T) {
	resp := nullResponses()
	delete(resp, listCallNames[2])
	before, _ := os.ReadDir(os.TempDir())
	_, err := startNullCRI(context.Background(), t.TempDir(), resp)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "null-cri.log") {
		t.Fatalf("start without a response: %v, want an error saying the server exited and naming its log", err)
	}
	after, _ := os.ReadDir(os.TempDir())
	for _, e := range after {
		if strings.HasPrefix(e.Name(), "berth-bench-null-") && !containsEntry(before, e.Name()) {
			t.Errorf("%s left in %s", e.Name(), os.TempDir())
		}
	}
}

func containsEntry(es []os.DirEntry, name string) bool {
	for _, e := range es {
		if e.Name() == name {
			return true
		}
	}
	return false
}
