//go:build linux

// The exec fast path: when _BERTH_EXEC_C is set, the process is set up
// and the program exec'd right here, after the namespaces are joined, so
// the Go runtime of berthd never starts for an exec (it costs tens of
// milliseconds; kubelet runs exec probes every few seconds). The Go side
// (oci.ExecMain) remains for what this does not do: terminals.
//
// _BERTH_EXEC_C is hex of NUL-terminated key, value pairs:
//
//	arg, env, group, rlimit ("res:soft:hard") repeat; path is the PATH to
//	search; cwd; uid; gid; umask; oom; nnp; capb cape capp capi capa
//	(hex masks); lastcap; seccomp (an fd of the container's compiled
//	filter, a struct sock_filter array) and seccompflags.
//
// The seccomp filter is loaded where oci.finishProcess loads it: last
// before execve with no_new_privs, first (while every capability is still
// held) without.
//
// Messages match the Go side's (and runc's) so callers see one format.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsenter.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_ITEMS 4096

// report_error writes {"type":"error","error":msg} to the sync fd and exits.
void report_error(const char *fmt, ...) {
	char msg[4096], out[8192];
	size_t o = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (const unsigned char *p = (const unsigned char *)msg; *p && o < sizeof(out) - 8; p++) {
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = *p;
		} else if (*p < 0x20) {
			o += snprintf(out + o, sizeof(out) - o, "\\u%04x", *p);
		} else {
			out[o++] = *p;
		}
	}
	out[o] = 0;
	dprintf(SYNC_FD, "{\"type\":\"error\",\"error\":\"%s\"}\n", out);
	_exit(127);
}

// lower returns strerror(e) with a lower-case first letter, as Go prints
// errno values.
static const char *lower(int e) {
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] += 'a' - 'A';
	return buf;
}

// quote writes s as Go's strconv.Quote would for printable input.
static const char *quote(const char *s) {
	static char buf[2048];
	size_t o = 0;
	buf[o++] = '"';
	for (; *s && o < sizeof(buf) - 4; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		buf[o++] = *s;
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

// parse_unsigned reads all of s as a number in base no greater than max:
// no sign, no blank, nothing after it. Anything else fails the exec with
// what in the message, so that a malformed config never runs a process as
// a wrong user or with wrong limits.
unsigned long long parse_unsigned(const char *what, const char *s, int base, unsigned long long max) {
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, base);
	if (!isxdigit((unsigned char)*s) || end == s || *end || errno || v > max)
		report_error("malformed %s %s", what, quote(s));
	return v;
}

// parse_signed is parse_unsigned for a decimal within [min, max].
long long parse_signed(const char *what, const char *s, long long min, long long max) {
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!(*s == '-' || isdigit((unsigned char)*s)) || end == s || *end || errno || v < min || v > max)
		report_error("malformed %s %s", what, quote(s));
	return v;
}

// executable checks a candidate as Go's exec.findExecutable does; 0 or an errno.
static int executable(const char *path) {
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if (!(st.st_mode & 0111))
		return EACCES;
	return 0;
}

// look_path resolves name as exec.LookPath does with the container's PATH.
static char *look_path(const char *name, const char *path) {
	static char found[4096];
	const char *p, *end;
	int e;

	if (strchr(name, '/')) {
		e = executable(name);
		if (e == 0)
			return (char *)name;
		if (e == EISDIR || e == EACCES)
			report_error("exec: %s: %s", quote(name), lower(e));
		report_error("exec: %s: stat %s: %s", quote(name), name, lower(e));
	}
	for (p = path;; p = end + 1) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		if (end == p)
			snprintf(found, sizeof(found), "./%s", name);
		else
			snprintf(found, sizeof(found), "%.*s/%s", (int)(end - p), p, name);
		if (executable(found) == 0)
			return found;
		if (!*end)
			break;
	}
	report_error("exec: %s: executable file not found in $PATH", quote(name));
	return NULL;
}

// home finds uid's home directory in the container's /etc/passwd.
static const char *home(unsigned uid) {
	static char dir[1024];
	char line[2048], id[16];
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return "/";
	// The uid field is compared as text, as oci.withHome does.
	snprintf(id, sizeof(id), "%u", uid);
	while (fgets(line, sizeof(line), f)) {
		char *fields[7] = {0}, *save = NULL, *tok;
		int n = 0;
		for (tok = strtok_r(line, ":\n", &save); tok && n < 7; tok = strtok_r(NULL, ":\n", &save))
			fields[n++] = tok;
		if (n >= 6 && !strcmp(fields[2], id) && fields[5][0]) {
			snprintf(dir, sizeof(dir), "%s", fields[5]);
			fclose(f);
			return dir;
		}
	}
	fclose(f);
	return "/";
}

static int unhex(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

// read_seccomp reads the compiled filter from fd into prog.
static void read_seccomp(int fd, struct sock_fprog *prog) {
	struct stat st;
	size_t off = 0;
	char *buf;

	if (fstat(fd, &st) < 0)
		report_error("read seccomp filter: %s", lower(errno));
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) || st.st_size / sizeof(struct sock_filter) > 0xffff)
		report_error("load seccomp filter: %lld bytes is no BPF program", (long long)st.st_size);
	buf = malloc(st.st_size);
	if (!buf)
		report_error("read seccomp filter: out of memory");
	while (off < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + off, st.st_size - off, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			report_error("read seccomp filter: %s", r < 0 ? lower(errno) : "short read");
		off += r;
	}
	close(fd);
	prog->len = st.st_size / sizeof(struct sock_filter);
	prog->filter = (struct sock_filter *)buf;
}

static void load_seccomp(struct sock_fprog *prog, unsigned flags) {
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog) < 0)
		report_error("load seccomp filter: %s", lower(errno));
}

void exec_fast(const char *hex, int behind_proxy) {
	size_t n = strlen(hex) / 2, i;
	char *blob = malloc(n + 1), *p, *key, *val;
	char *argv[MAX_ITEMS + 1], *envp[MAX_ITEMS + 2], *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char *cwd = "/", homeenv[1100];
	gid_t groups[MAX_ITEMS];
	int nargs = 0, nenv = 0, ngroups = 0, nnp = 0, has_home = 0, lastcap = CAP_LAST_CAP, umask_set = 0, oom_set = 0;
	unsigned uid = 0, gid = 0, umask_val = 0;
	long oom = 0;
	uint64_t capb = 0, cape = 0, capp = 0, capi = 0, capa = 0;
	int seccomp_fd = -1;
	unsigned seccomp_flags = 0;
	struct sock_fprog filter = {0, NULL};
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	char *exe;
	int c;

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (!blob)
		report_error("exec: out of memory");
	for (i = 0; i < n; i++) {
		int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			report_error("exec: malformed _BERTH_EXEC_C");
		blob[i] = (char)(hi << 4 | lo);
	}
	blob[n] = 0;
	for (p = blob; p < blob + n;) {
		key = p;
		p += strlen(p) + 1;
		if (p >= blob + n + 1)
			report_error("exec: malformed _BERTH_EXEC_C");
		val = p;
		p += strlen(p) + 1;
		if (!strcmp(key, "arg")) {
			if (nargs == MAX_ITEMS)
				report_error("exec: more than %d args", MAX_ITEMS);
			argv[nargs++] = val;
		} else if (!strcmp(key, "env")) {
			if (nenv == MAX_ITEMS)
				report_error("exec: more than %d environment variables", MAX_ITEMS);
			if (!strncmp(val, "HOME=", 5))
				has_home = 1;
			envp[nenv++] = val;
		} else if (!strcmp(key, "group")) {
			if (ngroups == MAX_ITEMS)
				report_error("exec: more than %d additional groups", MAX_ITEMS);
			groups[ngroups++] = parse_unsigned("group", val, 10, UINT32_MAX);
		} else if (!strcmp(key, "path"))
			path = val;
		else if (!strcmp(key, "cwd"))
			cwd = val;
		else if (!strcmp(key, "uid"))
			uid = parse_unsigned("uid", val, 10, UINT32_MAX);
		else if (!strcmp(key, "gid"))
			gid = parse_unsigned("gid", val, 10, UINT32_MAX);
		else if (!strcmp(key, "umask")) {
			umask_val = parse_unsigned("umask", val, 10, 0777);
			umask_set = 1;
		} else if (!strcmp(key, "oom")) {
			oom = parse_signed("oom_score_adj", val, -1000, 1000);
			oom_set = 1;
		} else if (!strcmp(key, "nnp"))
			nnp = 1;
		else if (!strcmp(key, "lastcap"))
			lastcap = parse_signed("lastcap", val, 0, 63);
		else if (!strcmp(key, "capb"))
			capb = parse_unsigned("capb", val, 16, UINT64_MAX);
		else if (!strcmp(key, "cape"))
			cape = parse_unsigned("cape", val, 16, UINT64_MAX);
		else if (!strcmp(key, "capp"))
			capp = parse_unsigned("capp", val, 16, UINT64_MAX);
		else if (!strcmp(key, "capi"))
			capi = parse_unsigned("capi", val, 16, UINT64_MAX);
		else if (!strcmp(key, "capa"))
			capa = parse_unsigned("capa", val, 16, UINT64_MAX);
		else if (!strcmp(key, "seccomp"))
			seccomp_fd = parse_signed("seccomp fd", val, 0, INT_MAX);
		else if (!strcmp(key, "seccompflags"))
			seccomp_flags = parse_unsigned("seccomp flags", val, 10, UINT32_MAX);
		else if (!strcmp(key, "rlimit")) {
			// "res:soft:hard"
			char *soft = strchr(val, ':'), *hard = soft ? strchr(soft + 1, ':') : NULL;
			struct rlimit rl;
			int res;
			if (!hard)
				report_error("malformed rlimit %s", quote(val));
			*soft++ = 0;
			*hard++ = 0;
			res = parse_signed("rlimit resource", val, 0, RLIM_NLIMITS - 1);
			rl.rlim_cur = parse_unsigned("rlimit", soft, 10, UINT64_MAX);
			rl.rlim_max = parse_unsigned("rlimit", hard, 10, UINT64_MAX);
			if (setrlimit(res, &rl) < 0)
				report_error("set rlimit %d to %llu:%llu: %s", res, (unsigned long long)rl.rlim_cur,
					     (unsigned long long)rl.rlim_max, lower(errno));
		}
	}
	if (nargs == 0)
		report_error("exec: no args");
	argv[nargs] = NULL;

	if (oom_set) {
		char buf[32];
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		int len = snprintf(buf, sizeof(buf), "%ld", oom);
		if (fd < 0 || write(fd, buf, len) != len)
			report_error("set oom_score_adj %ld: %s", oom, lower(errno));
		close(fd);
	}
	if (seccomp_fd >= 0)
		read_seccomp(seccomp_fd, &filter);
	if (chdir(cwd) < 0)
		report_error("chdir to cwd %s: %s", quote(cwd), lower(errno));
	{
		char wd[4096];
		if (!getcwd(wd, sizeof(wd)) || wd[0] != '/')
			report_error("cwd %s is outside the container root", quote(cwd));
	}
	// After the chdir, so a relative executable is found from the working
	// directory, as runc does.
	exe = look_path(argv[0], path);
	if (filter.filter && !nnp)
		load_seccomp(&filter, seccomp_flags);
	for (c = 0; c <= lastcap; c++) {
		if (capb & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			report_error("drop capability %d from bounding set: %s", c, lower(errno));
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		report_error("keep capabilities: %s", lower(errno));
	if (syscall(SYS_setgroups, ngroups, groups) < 0)
		report_error("setgroups: %s", lower(errno));
	if (syscall(SYS_setresgid, gid, gid, gid) < 0)
		report_error("setgid %u: %s", gid, lower(errno));
	if (syscall(SYS_setresuid, uid, uid, uid) < 0)
		report_error("setuid %u: %s", uid, lower(errno));
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		report_error("clear keep capabilities: %s", lower(errno));
	if (behind_proxy) {
		// The credential change cleared the parent death signal.
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			report_error("set parent death signal: %s", lower(errno));
		if (getppid() != 0)
			report_error("the exec proxy exited");
	}
	if (umask_set)
		umask(umask_val);
	data[0].effective = (uint32_t)cape;
	data[1].effective = (uint32_t)(cape >> 32);
	data[0].permitted = (uint32_t)capp;
	data[1].permitted = (uint32_t)(capp >> 32);
	data[0].inheritable = (uint32_t)capi;
	data[1].inheritable = (uint32_t)(capi >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		report_error("capset: %s", lower(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		report_error("clear ambient capabilities: %s", lower(errno));
	for (c = 0; c <= lastcap; c++) {
		if ((capa & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			report_error("raise ambient capability %d: %s", c, lower(errno));
	}
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		report_error("set no_new_privs: %s", lower(errno));
	if (!has_home) {
		snprintf(homeenv, sizeof(homeenv), "HOME=%s", home(uid));
		envp[nenv++] = homeenv;
	}
	envp[nenv] = NULL;
	// No fd of the runtime may reach the program (CVE-2024-21626); the
	// sync pipe closes on success.
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		report_error("mark fds close-on-exec: %s", lower(errno));
	if (filter.filter && nnp)
		load_seccomp(&filter, seccomp_flags);
	execve(exe, argv, envp);
	report_error("exec %s: %s", exe, lower(errno));
}
