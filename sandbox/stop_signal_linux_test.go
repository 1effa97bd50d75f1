package sandbox

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignalStatus(t *testing.T) {
	for _, tc := range []struct {
		name           string
		status         string
		sig            syscall.Signal
		nsInit, caught bool
	}{
		{name: "a namespace's init catching SIGTERM is ready for it",
			status: "Name:\tsh\nNSpid:\t4242\t1\nSigCgt:\t0000000000004000\n", sig: unix.SIGTERM, nsInit: true, caught: true},
		{name: "a namespace's init without a handler does not catch SIGTERM",
			status: "NSpid:\t4242\t1\nSigCgt:\t0000000000000000\n", sig: unix.SIGTERM, nsInit: true},
		{name: "a handler for SIGUSR1 is not one for SIGTERM",
			status: "NSpid:\t4242\t1\nSigCgt:\t0000000000000200\n", sig: unix.SIGTERM, nsInit: true},
		{name: "a real-time signal is read from the high bits",
			status: "NSpid:\t4242\t1\nSigCgt:\t0000000400000000\n", sig: syscall.Signal(35), nsInit: true, caught: true},
		{name: "a process of the host's namespace is no namespace init",
			status: "NSpid:\t1\nSigCgt:\t0000000000004000\n", sig: unix.SIGTERM, caught: true},
		{name: "a second process of a namespace is no namespace init",
			status: "NSpid:\t4243\t7\nSigCgt:\t0000000000000000\n", sig: unix.SIGTERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsInit, caught := parseSignalStatus([]byte(tc.status), tc.sig)
			if nsInit != tc.nsInit || caught != tc.caught {
				t.Errorf("nsInit %v caught %v, want %v %v", nsInit, caught, tc.nsInit, tc.caught)
			}
		})
	}
}

func TestSignalReadyWaitsWhileThePreExecBinaryRuns(t *testing.T) {
	self := os.Getpid()
	if ready, err := signalReady(self, exeOf(self), unix.SIGTERM); err != nil || ready {
		t.Errorf("process still running its pre-exec binary: ready %v, %v; want not ready", ready, err)
	}
	// This test process is no namespace init: the kernel delivers to it.
	if ready, err := signalReady(self, fileID{}, unix.SIGTERM); err != nil || !ready {
		t.Errorf("process of the host's namespace: ready %v, %v; want ready", ready, err)
	}
}
