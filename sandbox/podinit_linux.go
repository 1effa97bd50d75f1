package sandbox

// berth-podinit: PID 1 of a pod's shared PID namespace (PID mode POD).
//
// berthd starts it by re-executing itself (argv[0] "berth-podinit") from
// the thread that made the pod's namespaces, so it inherits the pod's
// network, IPC and UTS namespaces, with CLONE_NEWPID, so it is PID 1 of a
// new PID namespace that the pod's containers join. It only reaps the
// orphans reparented to it and exits on SIGTERM or SIGINT; its exit makes
// the kernel kill everything left in the namespace. berthd holds a pidfd
// on it and pins its PID namespace at <state>/pods/<id>/ns/pid.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// podInitRole is argv[0] of berth-podinit (cmd/berthd dispatches on it).
const podInitRole = "berth-podinit"

// podInitKillTimeout bounds the wait for a killed berth-podinit to exit.
const podInitKillTimeout = 10 * time.Second

// PodInitMain is the "berth-podinit" role: PID 1 of a pod-wide PID
// namespace, reaping orphans. It never returns.
func PodInitMain() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "berth-podinit: not PID 1 of a PID namespace; berthd starts this role")
		os.Exit(2)
	}
	// It allocates next to nothing; keep the heap from growing anyway.
	debug.SetGCPercent(10)
	// PID 1 gets only the signals it has handlers for; Notify installs them.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)
	reapAll()
	for s := range sigs {
		if s != unix.SIGCHLD {
			os.Exit(0)
		}
		reapAll()
	}
	os.Exit(1)
}

// reapAll waits for every exited child without blocking. SIGCHLDs
// coalesce, so one signal may stand for many children.
func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}

// podInit is a running berth-podinit as berthd sees it.
type podInit struct {
	pid       int
	startTime uint64
	pidfd     int
	exited    chan struct{} // closed when the process has exited
}

func (i *podInit) record() *initRecord {
	return &initRecord{Pid: i.pid, StartTime: i.startTime}
}

// startPodInit starts berth-podinit. Call it on the locked thread that
// is in the pod's namespaces: the child inherits that thread's.
func startPodInit() (*podInit, error) {
	cmd, err := startRole("/proc/self/exe", podInitRole, &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID,
		Setsid:     true,
	})
	if err != nil {
		return nil, err
	}
	i, err := newPodInit(cmd)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return i, nil
}

// newPodInit watches the berth-podinit cmd has started. On error the
// caller kills and reaps it.
func newPodInit(cmd *exec.Cmd) (*podInit, error) {
	pid := cmd.Process.Pid
	// It is berthd's unreaped child, so the pid cannot be reused yet.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd of %s %d: %w", podInitRole, pid, err)
	}
	start, err := processStartTime(pid)
	if err != nil {
		unix.Close(pidfd)
		return nil, err
	}
	i := &podInit{pid: pid, startTime: start, pidfd: pidfd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(i.exited)
	}()
	return i, nil
}

// adoptPodInit finds the berth-podinit of rec again after a berthd
// restart. It fails when that process is gone.
func adoptPodInit(rec *initRecord) (*podInit, error) {
	pidfd, err := unix.PidfdOpen(rec.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("%s %d: %w", podInitRole, rec.Pid, err)
	}
	// The pidfd names one process for good; check it is ours and not a
	// new process that got the pid.
	start, err := processStartTime(rec.Pid)
	if err != nil || start != rec.StartTime {
		unix.Close(pidfd)
		return nil, fmt.Errorf("%s %d has exited", podInitRole, rec.Pid)
	}
	i := &podInit{pid: rec.Pid, startTime: start, pidfd: pidfd, exited: make(chan struct{})}
	go func() {
		// Not berthd's child any more: poll the pidfd, which becomes
		// readable when the process exits.
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(i.exited)
	}()
	return i, nil
}

// kill ends berth-podinit, and with it every process of the pod's PID
// namespace, and waits for it to exit.
func (i *podInit) kill() error {
	select {
	case <-i.exited:
		return nil
	default:
	}
	if err := unix.PidfdSendSignal(i.pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %s %d: %w", podInitRole, i.pid, err)
	}
	select {
	case <-i.exited:
		return nil
	case <-time.After(podInitKillTimeout):
		return fmt.Errorf("%s %d did not exit %s after SIGKILL", podInitRole, i.pid, podInitKillTimeout)
	}
}

// release closes the pidfd of an exited berth-podinit.
func (i *podInit) release() {
	<-i.exited
	unix.Close(i.pidfd)
}

// processStartTime reads the start time of pid (clock ticks after boot),
// which with the pid identifies a process.
func processStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its last ')' start at field 3.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("process %d: short stat line", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
