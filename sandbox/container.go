package sandbox

// Containers. The container state machine:
//
//	                CreateContainer
//	                      │
//	                      ▼         StartContainer
//	                  CREATED ───────────────────────> RUNNING
//	                      │                               │
//	                      │ killed before start, or        │ its process exits (the
//	                      │ Start failed (StartError)      │ monitor writes exit.json)
//	                      ▼                               ▼
//	                   EXITED <───────────────────────────┘
//
//	   UNKNOWN: recovery after a berthd restart found neither a live
//	   monitor nor an exit status (the state dir was lost in a reboot).
//
//	   RemoveContainer removes a container in any state, killing it first.
//
// Every status change goes through Container.update, which holds the
// container's lock; readers take a copy with Container.snapshot.
//
// On disk, for container <id>:
//
//	<berthd root>/sandbox/containers/<id>/config.json  the OCI bundle
//	<state>/containers/<id>/rootfs                     the overlay rootfs mount point
//	<state>/containers/<id>/monitor.json, monitor.log, m.sock, exit.json (monitor.go)
//	<state>/containers/<id>/status.json                pids and start time (berthd writes it)
//
// (<berthd root> and <state> are berthd's root and state directories, as
// in pod.go.)
//
// The record in the database (containers/<id>, JSON containerRecord) holds
// what CreateContainer was asked and decided; it does not change after.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerState is where a container is in the state machine above.
type containerState = runtimeapi.ContainerState

const (
	stateCreated = runtimeapi.ContainerState_CONTAINER_CREATED
	stateRunning = runtimeapi.ContainerState_CONTAINER_RUNNING
	stateExited  = runtimeapi.ContainerState_CONTAINER_EXITED
	stateUnknown = runtimeapi.ContainerState_CONTAINER_UNKNOWN
)

// Container is a container of a pod.
type Container struct {
	// Fixed at creation.
	id        string
	podID     string
	name      string // unique name: <name>_<pod name>_<pod namespace>_<pod uid>_<attempt>
	config    *runtimeapi.ContainerConfig
	imageID   string
	imageRef  string // repo digest, else the image ID
	handler   string
	logPath   string // "" when the pod or container gives none
	logDir    string // the pod's log directory, logPath's base
	createdAt time.Time
	bundle    string // <berthd root>/sandbox/containers/<id>
	stateDir  string // <state>/containers/<id>
	// stopSignal is the image's STOPSIGNAL ("" for SIGTERM).
	stopSignal  string
	cgroupsPath string
	// process is the spec of the container's process, the template of
	// its execs (loaded from config.json at recovery).
	process *specs.Process

	// stopMu serialises Start, Stop and Remove of this container, and
	// guards preExec.
	stopMu sync.Mutex
	// preExec is the executable the runtime's init ran when
	// StartContainer released it (zero after a restart of berthd).
	preExec fileID

	// stats is what the stats calls keep between calls (stats.go).
	stats statsState
	// events orders the container's events (events.go).
	events containerEvents

	// mu guards the fields below.
	mu        sync.Mutex
	status    containerStatus
	monitor   *monitorHandle
	resources *runtimeapi.LinuxContainerResources // current, after updates
}

// containerStatus is a container's mutable state.
type containerStatus struct {
	State      containerState
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Reason     string
	Message    string
	// Removing is set once RemoveContainer began; the container then
	// refuses to start.
	Removing bool
}

// update changes the container's status through fn, under its lock. An
// error from fn leaves the status as it was.
func (c *Container) update(fn func(*containerStatus) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	if err := fn(&st); err != nil {
		return err
	}
	c.status = st
	return nil
}

// snapshot returns a copy of the status.
func (c *Container) snapshot() containerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// setExited records the exit status the monitor wrote, once.
func (c *Container) setExited(st exitStatus, ok bool) {
	_ = c.update(func(s *containerStatus) error {
		if s.State == stateExited {
			return nil
		}
		s.State = stateExited
		s.FinishedAt = st.FinishedAt
		s.ExitCode = st.ExitCode
		switch {
		case !ok:
			s.State = stateUnknown
			s.ExitCode = 255
			s.Reason = "Unknown"
			s.Message = "the container's monitor exited without recording an exit status"
			if s.FinishedAt.IsZero() {
				s.FinishedAt = time.Now()
			}
			if s.StartedAt.IsZero() {
				// Never ran: it cannot be running now.
				s.State = stateExited
			}
		case st.OOMKilled:
			s.Reason = "OOMKilled"
			s.Message = "the container's memory cgroup ran out of memory and the OOM killer ended a process"
		case st.ExitCode == 0:
			s.Reason = "Completed"
		default:
			s.Reason = "Error"
			if st.Signal != 0 {
				s.Message = fmt.Sprintf("killed by signal %d", st.Signal)
			}
		}
		return nil
	})
}

// containerRecord is a container in the database.
type containerRecord struct {
	ID        string    `json:"id"`
	PodID     string    `json:"pod_id"`
	Name      string    `json:"name"`
	Config    []byte    `json:"config"` // protobuf runtimeapi.ContainerConfig
	ImageID   string    `json:"image_id"`
	ImageRef  string    `json:"image_ref"`
	Handler   string    `json:"handler"`
	LogPath   string    `json:"log_path,omitempty"`
	LogDir    string    `json:"log_dir,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// StopSignal is the image's STOPSIGNAL.
	StopSignal  string `json:"stop_signal,omitempty"`
	CgroupsPath string `json:"cgroups_path,omitempty"`
}

func (c *Container) record() (*containerRecord, error) {
	cfg, err := proto.Marshal(c.config)
	if err != nil {
		return nil, fmt.Errorf("encode container config: %w", err)
	}
	return &containerRecord{
		ID: c.id, PodID: c.podID, Name: c.name, Config: cfg, ImageID: c.imageID, ImageRef: c.imageRef,
		Handler: c.handler, LogPath: c.logPath, LogDir: c.logDir, CreatedAt: c.createdAt,
		StopSignal: c.stopSignal, CgroupsPath: c.cgroupsPath,
	}, nil
}

// containerFromRecord rebuilds a container's fixed part.
func (m *Manager) containerFromRecord(id string, data []byte) (*Container, error) {
	var rec containerRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("container %s: parse record: %w", id, err)
	}
	cfg := &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(rec.Config, cfg); err != nil {
		return nil, fmt.Errorf("container %s: parse config: %w", id, err)
	}
	c := m.newContainer(rec.ID, rec.PodID, cfg)
	c.name, c.imageID, c.imageRef, c.handler, c.logPath, c.createdAt =
		rec.Name, rec.ImageID, rec.ImageRef, rec.Handler, rec.LogPath, rec.CreatedAt
	c.stopSignal, c.cgroupsPath, c.logDir = rec.StopSignal, rec.CgroupsPath, rec.LogDir
	return c, nil
}

func (m *Manager) newContainer(id, podID string, cfg *runtimeapi.ContainerConfig) *Container {
	return &Container{
		id:        id,
		podID:     podID,
		config:    cfg,
		bundle:    filepath.Join(m.root, "containers", id),
		stateDir:  filepath.Join(m.state, "containers", id),
		resources: cfg.GetLinux().GetResources(),
		status:    containerStatus{State: stateCreated},
	}
}

// containerByID resolves a container ID or unique ID prefix.
func (m *Manager) containerByID(prefix string) (*Container, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, err := m.ctrIDs.resolve("container", prefix)
	if err != nil {
		return nil, err
	}
	c, ok := m.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// everything returns every pod and container, for walks that must not
// hold m.mu.
func (m *Manager) everything() ([]*Pod, []*Container) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ps := make([]*Pod, 0, len(m.pods))
	for _, p := range m.pods {
		ps = append(ps, p)
	}
	cs := make([]*Container, 0, len(m.containers))
	for _, c := range m.containers {
		cs = append(cs, c)
	}
	return ps, cs
}

// podContainers returns the containers of pod podID.
func (m *Manager) podContainers(podID string) []*Container {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Container
	for _, c := range m.containers {
		if c.podID == podID {
			out = append(out, c)
		}
	}
	return out
}

// stopPodContainers stops every container of pod podID, giving each
// timeout for its stop signal. StopPodSandbox calls it.
func (m *Manager) stopPodContainers(ctx context.Context, podID string, timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for _, c := range m.podContainers(podID) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.stopContainer(ctx, c, timeout); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// removePodContainers removes every container of pod podID.
// RemovePodSandbox calls it.
func (m *Manager) removePodContainers(ctx context.Context, podID string) error {
	for _, c := range m.podContainers(podID) {
		if err := m.removeContainer(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
