// Signal dispositions are reset before anything else runs in the berthd
// binary, whatever role it plays.
//
// An ignored signal survives execve, so whatever berthd was started under
// would reach every container: GNU make, for one, starts its recipes with
// signals 32 and 33 ignored, and nohup ignores SIGHUP. A container's
// process must start with default dispositions (as it would under a
// kubelet on a clean node), and neither the OCI runtimes nor the Go
// runtime reset an inherited SIG_IGN: Go keeps it ignored for its children
// on purpose. Resetting here, in the first constructor of every process of
// this binary, covers berthd, its monitors and inits, the exec fast path
// and the external runtimes they start.

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

// The kernel's struct sigaction for rt_sigaction(2). The raw system call is
// used because glibc's sigaction refuses the two signals it keeps for
// itself (32 and 33), which are the ones make leaves ignored.
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

__attribute__((constructor(101))) static void berth_reset_signals(void) {
	for (int sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction old, dfl = {.handler = SIG_DFL};
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(old.mask)) == 0 && old.handler == SIG_IGN)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	}
}
