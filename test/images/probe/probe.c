// probe: calls the system calls the security tests ask about, directly,
// and prints "<name> <errno>" for each (0: the call succeeded). Each runs
// in a child of its own, so one that succeeds (unshare, a keyring) changes
// nothing for the next. Built static: the images have no C library of
// their own for it.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int ret(long r) { return r < 0 ? errno : 0; }

static int probe_ptrace(void) {
	int e;
	pid_t t = fork();
	if (t == 0) {
		pause();
		_exit(0);
	}
	e = ret(ptrace(PTRACE_ATTACH, t, 0, 0));
	kill(t, SIGKILL);
	waitpid(t, NULL, 0);
	return e;
}

// i386 and x32 system calls from this x86_64 program: the filter must
// catch the compat ABIs too. unshare is 310 on i386, 272 with the x32 bit.
static int probe_unshare_i386(void) {
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(310), "b"(CLONE_NEWUSER) : "memory");
	return r < 0 ? (int)-r : 0;
}

static int probe_unshare_x32(void) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | 272), "D"((long)CLONE_NEWUSER) : "rcx", "r11", "memory");
	return r < 0 ? (int)-r : 0;
}

// Syscalls newer than the default profile's highest known one (mseal
// 462, listmount 458) get ENOSYS from the filter's stub, as under runc;
// fchmodat2 (452) is one the profile allows. Each fails harmlessly when
// let through: mseal with an unknown flag (EINVAL), listmount with no
// request (EFAULT), fchmodat2 on fd -1 (EBADF).
static int probe_i386(long nr) {
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(0), "c"(0), "d"(0), "S"(0) : "memory");
	return r < 0 ? (int)-r : 0;
}

static int probe_x32(long nr) {
	long r;
	register long r10 __asm__("r10") = 0;
	__asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | nr), "D"(0L), "S"(0L), "d"(0L), "r"(r10) : "rcx", "r11", "memory");
	return r < 0 ? (int)-r : 0;
}

static int run(const char *name) {
	if (!strcmp(name, "unshare_user"))
		return ret(unshare(CLONE_NEWUSER));
	if (!strcmp(name, "unshare_user_i386"))
		return probe_unshare_i386();
	if (!strcmp(name, "unshare_user_x32"))
		return probe_unshare_x32();
	if (!strcmp(name, "mount")) {
		// On a directory of its own, undone at once should it succeed.
		char dir[64];
		int e;
		snprintf(dir, sizeof(dir), "/tmp/probe-mnt-%d", (int)getpid());
		if (mkdir(dir, 0700) < 0)
			return 254;
		e = ret(mount("tmpfs", dir, "tmpfs", 0, ""));
		if (e == 0)
			umount2(dir, MNT_DETACH);
		rmdir(dir);
		return e;
	}
	if (!strcmp(name, "keyctl"))
		return ret(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 1));
	if (!strcmp(name, "add_key"))
		return ret(syscall(SYS_add_key, "user", "berth-probe", "x", 1, -2 /* process keyring */));
	if (!strcmp(name, "kexec_load"))
		return ret(syscall(SYS_kexec_load, 0, 0, NULL, 0));
	if (!strcmp(name, "ptrace"))
		return probe_ptrace();
	if (!strcmp(name, "mkdir")) {
		int e = ret(mkdir("/tmp/probe-dir", 0755));
		rmdir("/tmp/probe-dir");
		return e;
	}
	if (!strcmp(name, "mseal"))
		return ret(syscall(462, 0, 0, 1));
	if (!strcmp(name, "listmount"))
		return ret(syscall(458, NULL, NULL, 0, 0));
	if (!strcmp(name, "listmount_i386"))
		return probe_i386(458);
	if (!strcmp(name, "listmount_x32"))
		return probe_x32(458);
	if (!strcmp(name, "fchmodat2"))
		return ret(syscall(452, -1, "x", 0644, 0));
	if (!strcmp(name, "getpid"))
		return ret(getpid());
	return 255;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		int st, e;
		pid_t p = fork();
		if (p == 0)
			_exit(run(argv[i]));
		if (p < 0 || waitpid(p, &st, 0) < 0)
			return 1;
		e = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		printf("%s %d\n", argv[i], e);
	}
	return 0;
}
