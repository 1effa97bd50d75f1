//go:build linux

// See nsenter_linux.go for what this does and why it is C.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsenter.h"

static pid_t child_pid;

// fail reports on the sync fd and exits. what must need no JSON escaping.
static void fail(const char *what) {
	int e = errno;
	dprintf(SYNC_FD, "{\"type\":\"error\",\"error\":\"nsenter: %s: %s\"}\n", what, strerror(e));
	_exit(1);
}

static void forward(int sig) {
	if (child_pid > 0)
		kill(child_pid, sig);
}

// forwarded are the signals the proxy passes on: those someone sends to
// ask the program something (stop, reload, dump, continue), plus the
// real-time ones, which have no meaning of their own. The others keep
// their default action. A fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
// SIGSYS, SIGABRT) is the proxy's own: forwarded with SA_RESTART, the
// faulting instruction would run again and fault forever; by default it
// kills the proxy, and the child dies with it (PR_SET_PDEATHSIG).
// SIGCHLD, SIGPIPE, SIGXCPU, SIGXFSZ, SIGPROF and SIGVTALRM speak of the
// proxy's own child, writes, limits and timers, nothing of the program's.
static int forwarded(int sig) {
	switch (sig) {
	case SIGHUP:
	case SIGINT:
	case SIGQUIT:
	case SIGTERM:
	case SIGUSR1:
	case SIGUSR2:
	case SIGALRM:
	case SIGCONT:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU:
	case SIGWINCH:
	case SIGURG:
		return 1;
	}
	return sig >= SIGRTMIN && sig <= SIGRTMAX;
}

// proxy waits for the child, forwarding signals, and exits as it did.
static void proxy(pid_t pid, sigset_t *oldmask) {
	int sig, status;
	struct sigaction sa;

	child_pid = pid;
	// The runtime signals the child directly (a SIGKILL cannot be
	// forwarded); tell it the child's PID.
	dprintf(SYNC_FD, "{\"type\":\"pid\",\"pid\":%d}\n", pid);
	// Keep nothing of the exec: the sync pipe must close when the child
	// execs, and stdio belongs to the child.
	syscall(SYS_close_range, 0, ~0U, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (forwarded(sig))
			sigaction(sig, &sa, NULL);
	}
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	for (;;) {
		if (waitpid(pid, &status, 0) < 0) {
			if (errno == EINTR)
				continue;
			_exit(255);
		}
		if (WIFEXITED(status))
			_exit(WEXITSTATUS(status));
		if (WIFSIGNALED(status))
			_exit(128 + WTERMSIG(status));
	}
}

static void join_cgroups(const char *list) {
	char *copy, *line, *save = NULL;
	int fd;

	if (!list || !*list)
		return;
	copy = strdup(list);
	if (!copy)
		fail("join cgroup");
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		fd = open(line, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail("open cgroup.procs");
		if (write(fd, "0", 1) != 1)
			fail("join cgroup");
		close(fd);
	}
	free(copy);
}

// become_root makes the process root of the user namespace it joined:
// setns leaves its host IDs, which the namespace does not map.
static void become_root(void) {
	if (setgroups(0, NULL) < 0)
		fail("setgroups in the user namespace");
	if (setresgid(0, 0, 0) < 0)
		fail("become gid 0 in the user namespace");
	if (setresuid(0, 0, 0) < 0)
		fail("become uid 0 in the user namespace");
}

__attribute__((constructor)) static void berth_nsenter(void) {
	const char *spec = getenv("_BERTH_NSENTER");
	const char *unshare_flags = getenv("_BERTH_NSENTER_UNSHARE");
	int init = getenv("_BERTH_NSENTER_INIT") != NULL;
	char *copy, *item, *save = NULL;
	int mntfd = -1, need_fork = 0, userns = 0, fd, flags;
	sigset_t all, old;
	pid_t pid;

	if (!spec || !*spec)
		return;
	copy = strdup(spec);
	if (!copy)
		fail("parse _BERTH_NSENTER");
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (strlen(item) < 3 || item[1] != ':') {
			errno = EINVAL;
			fail("parse _BERTH_NSENTER");
		}
		fd = parse_signed("_BERTH_NSENTER fd", item + 2, 0, INT_MAX);
		if (item[0] == 'm') {
			mntfd = fd;
			continue;
		}
		if (setns(fd, 0) < 0)
			fail("setns");
		close(fd);
		if (item[0] == 'p')
			need_fork = 1;
		if (item[0] == 'U')
			userns = 1;
	}
	free(copy);
	// New namespaces after the joined user namespace, so that it owns
	// them (a container's init).
	flags = unshare_flags ? atoi(unshare_flags) : 0;
	if (flags) {
		if (unshare(flags) < 0)
			fail("unshare");
		if (flags & CLONE_NEWPID)
			need_fork = 1;
	}

	if (need_fork && init) {
		// A container's init: the child is the init, reparented to the
		// runtime's subreaper; the runtime learns its PID here.
		pid = fork();
		if (pid < 0)
			fail("fork into the pid namespace");
		if (pid > 0) {
			dprintf(SYNC_FD, "{\"type\":\"pid\",\"pid\":%d}\n", pid);
			_exit(0);
		}
	} else if (need_fork) {
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		pid = fork();
		if (pid < 0)
			fail("fork into the pid namespace");
		if (pid > 0)
			proxy(pid, &old);
		// The child: die with the proxy. Its parent is outside this PID
		// namespace, so getppid() is 0 while the proxy lives.
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			fail("set parent death signal");
		if (getppid() != 0)
			_exit(1);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	// Still the host's root (setns changes no IDs): cgroup.procs is
	// writable.
	join_cgroups(getenv("_BERTH_NSENTER_CGROUP"));
	if (userns)
		become_root();
	if (mntfd >= 0) {
		if (setns(mntfd, CLONE_NEWNS) < 0)
			fail("setns mount namespace");
		close(mntfd);
	}
	unsetenv("_BERTH_NSENTER");
	unsetenv("_BERTH_NSENTER_CGROUP");
	unsetenv("_BERTH_NSENTER_UNSHARE");
	unsetenv("_BERTH_NSENTER_INIT");
	spec = getenv("_BERTH_EXEC_C");
	if (spec)
		exec_fast(spec, need_fork);
}
