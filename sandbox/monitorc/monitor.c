//go:build linux && cgo

// The C monitor: see monitorc.go for the contract with the Go monitor.
//
// One thread, one poll loop over:
//   - a signalfd for SIGCHLD (reaping) and SIGTERM, SIGINT, SIGHUP, which
//     a monitor outlives as the Go one does;
//   - the output streams (stdout and stderr pipes, or the pty master);
//   - the listening control socket and the connections on it.
//
// CRI Attach is served here, so that berthd keeps nothing per container:
// an "attach" request carries, as SCM_RIGHTS, the sending end of one
// socket per output stream berthd wants (stdout, then stderr; a terminal
// has only stdout). From then on each chunk read from a stream is sent to
// its attachers as well as written to the log: output from the moment of
// attach, never the log replayed. The answer "ok" carries the container's
// stdin (the pipe's write end, or the pty master) when it has one, which
// berthd writes to and, for a pty, resizes directly. An attacher goes
// when its socket hangs up, or is dropped (the chunk, not the container)
// when its socket is full: a slow client never stalls the container.
// "close-stdin" closes the container's stdin pipe (stdin_once).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

#define ENV_SPEC "_BERTH_MONITOR_C"
#define ENV_LOG "_BERTH_MONITOR_LOG"
#define ENV_LOG_DIR "_BERTH_MONITOR_LOG_DIR"
#define ENV_OOM "_BERTH_MONITOR_OOM"
#define EXIT_FILE "exit.json"
#define MAX_CONNS 8
#define MAX_ATTACH 16
#define CONN_TIMEOUT_MS 10000

// params are what the Go monitor hands over (monitorc.go).
struct params {
	int pid, out, err, console, in, log, ctl, drain_ms;
	const char *log_dir, *log_path, *oom_file;
};

// conn is a connection on the control socket, reading its request line.
struct conn {
	int fd; // -1: free
	long long deadline;
	size_t n;
	char buf[128];
	int fds[2], nfds; // passed with the request
};

// attacher is an attached client: where each stream's chunks go.
struct attacher {
	int out, err; // -1: not wanted; out is -1 for a free slot
};

// streams holds stdout, stderr and the console: the Go side passes the
// pipes or the console, add_stream refuses a fourth.
#define MAX_STREAMS 3
static struct stream streams[MAX_STREAMS];
static int nstreams;
static struct conn conns[MAX_CONNS];
static struct crilog crilog = {.fd = -1};
static struct attacher attachers[MAX_ATTACH];
// stdin_fd is the container's stdin pipe (-1: none or closed); console_fd
// its pty master.
static int stdin_fd = -1, console_fd = -1;

__attribute__((noreturn)) static void die(const char *what) {
	dprintf(2, "berth-monitor-c: %s: %s\n", what, lower_error(errno));
	_exit(1);
}

static long long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// parse_int reads all of s, the value of key, as an int from -1 (no fd)
// up: no blank, nothing after it, no overflow.
static int parse_int(const char *key, const char *s) {
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!(*s == '-' || (*s >= '0' && *s <= '9')) || end == s || *end || errno || v < -1 || v > INT_MAX) {
		dprintf(2, "berth-monitor-c: parse " ENV_SPEC ": %s=%s is no number\n", key, s);
		_exit(1);
	}
	return v;
}

static void parse(const char *spec, struct params *p) {
	char *copy = strdup(spec), *item, *save = NULL;

	if (!copy)
		die("parse " ENV_SPEC);
	*p = (struct params){.out = -1, .err = -1, .console = -1, .in = -1, .log = -1, .ctl = -1, .drain_ms = 2000};
	struct {
		const char *key;
		int *into;
	} keys[] = {{"pid", &p->pid}, {"stdout", &p->out}, {"stderr", &p->err}, {"console", &p->console},
		    {"stdin", &p->in}, {"log", &p->log}, {"control", &p->ctl}, {"drain_ms", &p->drain_ms}};
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq) {
			errno = EINVAL;
			die("parse " ENV_SPEC);
		}
		*eq = 0;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(item, keys[i].key))
				*keys[i].into = parse_int(item, eq + 1);
	}
	free(copy);
	if (p->pid <= 0) {
		errno = EINVAL;
		die("parse " ENV_SPEC ": no pid");
	}
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// close_others closes every fd above stderr that is not one of p's, in
// case something in the Go monitor left one without close-on-exec.
static void close_others(struct params *p) {
	int keep[] = {p->out, p->err, p->console, p->in, p->log, p->ctl};
	int n = sizeof(keep) / sizeof(keep[0]), lo = 3;

	qsort(keep, n, sizeof(int), cmp_int);
	for (int i = 0; i < n; i++) {
		if (keep[i] < lo)
			continue;
		if (keep[i] > lo)
			syscall(SYS_close_range, lo, keep[i] - 1, 0);
		lo = keep[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0U, 0);
}

static void add_stream(int fd, const char *name) {
	if (fd < 0)
		return;
	if (nstreams == MAX_STREAMS) {
		dprintf(2, "berth-monitor-c: more than %d output streams\n", MAX_STREAMS);
		_exit(1);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	streams[nstreams].fd = fd;
	streams[nstreams].name = name;
	streams[nstreams].n = 0;
	nstreams++;
}

static void drop_attacher(struct attacher *a) {
	close(a->out);
	if (a->err >= 0)
		close(a->err);
	a->out = a->err = -1;
}

// forward sends a chunk of stream s to every attacher that wants it.
static void forward(struct stream *s, const char *p, size_t n) {
	int is_err = !strcmp(s->name, "stderr");
	for (int i = 0; i < MAX_ATTACH; i++) {
		struct attacher *a = &attachers[i];
		if (a->out < 0)
			continue;
		int fd = is_err ? a->err : a->out;
		if (fd < 0)
			continue;
		for (size_t o = 0; o < n;) {
			ssize_t w = send(fd, p + o, n - o, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN)
				break; // full: this chunk is lost to this attacher
			if (w < 0) {
				drop_attacher(a);
				break;
			}
			o += w;
		}
	}
}

// read_stream reads what is there; at end of file (or EIO, which is a pty
// master's end) or when force is set it writes the unfinished line and
// closes the stream.
static void read_stream(struct stream *s, int force) {
	for (;;) {
		ssize_t r = force ? 0 : read(s->fd, s->buf + s->n, sizeof(s->buf) - s->n);
		if (r > 0) {
			forward(s, s->buf + s->n, r);
			s->n += r;
			stream_flush(&crilog, s, 0);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		stream_flush(&crilog, s, 1);
		if (s->fd == console_fd)
			console_fd = -1;
		close(s->fd);
		s->fd = -1;
		return;
	}
}

static int open_streams(void) {
	int n = 0;
	for (int i = 0; i < nstreams; i++)
		n += streams[i].fd >= 0;
	return n;
}

static void close_conn(struct conn *c) {
	close(c->fd);
	c->fd = -1;
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

// reply_fd answers msg, with fd as SCM_RIGHTS when it is not -1.
static void reply_fd(struct conn *c, const char *msg, int fd) {
	char line[8192];
	int n = snprintf(line, sizeof(line), "%s\n", msg);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	struct iovec iov = {.iov_base = line, .iov_len = n};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	close_conn(c);
}

static void reply(struct conn *c, const char *msg) { reply_fd(c, msg, -1); }

// attach makes the connection's fds an attacher (see the head of the file).
static void attach(struct conn *c) {
	int slot = -1;
	for (int i = 0; i < MAX_ATTACH; i++)
		if (attachers[i].out < 0) {
			slot = i;
			break;
		}
	if (c->nfds < 1) {
		reply(c, "error: attach without an output socket");
		return;
	}
	if (slot < 0) {
		reply(c, "error: too many attaches at once");
		return;
	}
	attachers[slot].out = c->fds[0];
	attachers[slot].err = c->nfds > 1 ? c->fds[1] : -1;
	for (int i = 0; i < c->nfds; i++)
		fcntl(c->fds[i], F_SETFL, fcntl(c->fds[i], F_GETFL) | O_NONBLOCK);
	c->nfds = 0;
	reply_fd(c, "ok", console_fd >= 0 ? console_fd : stdin_fd);
}

// handle answers one request line (monitor.handle on the Go side).
static void handle(struct conn *c, char *line) {
	char err[8192], msg[8192 + 16];
	size_t n = strlen(line);

	while (n > 0 && strchr(" \t\r\n\v\f", line[n - 1]))
		line[--n] = 0;
	while (*line && strchr(" \t\r\n\v\f", *line))
		line++;
	if (!strcmp(line, "attach")) {
		attach(c);
		return;
	}
	if (!strcmp(line, "close-stdin")) {
		if (stdin_fd >= 0)
			close(stdin_fd);
		stdin_fd = -1;
		reply(c, "ok");
		return;
	}
	if (strcmp(line, "reopen") != 0) {
		reply(c, "error: unknown request");
		return;
	}
	if (!crilog.rel) {
		reply(c, "error: the container has no log path");
		return;
	}
	if (log_reopen(&crilog, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "error: %s", err);
		reply(c, msg);
		return;
	}
	reply(c, "ok");
}

static void read_conn(struct conn *c) {
	for (;;) {
		union {
			char buf[CMSG_SPACE(2 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = c->buf + c->n, .iov_len = sizeof(c->buf) - 1 - c->n};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
		ssize_t r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		for (struct cmsghdr *cm = r >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			int n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), fds[8];
			if (n > 8)
				n = 8;
			memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
			for (int i = 0; i < n; i++) {
				if (c->nfds < 2)
					c->fds[c->nfds++] = fds[i];
				else
					close(fds[i]);
			}
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			close_conn(c); // gone before a whole line: no answer
			return;
		}
		c->n += r;
		c->buf[c->n] = 0;
		char *nl = memchr(c->buf, '\n', c->n);
		if (nl) {
			*nl = 0;
			handle(c, c->buf);
			return;
		}
		if (c->n == sizeof(c->buf) - 1) {
			reply(c, "error: unknown request");
			return;
		}
	}
}

static void accept_conns(int ctl) {
	for (int i = 0; i < MAX_CONNS; i++) {
		if (conns[i].fd >= 0)
			continue;
		int fd = accept4(ctl, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		conns[i] = (struct conn){.fd = fd, .deadline = now_ms() + CONN_TIMEOUT_MS};
	}
}

// wait_status is the container process's end, as exit.json records it.
struct wait_status {
	int done, code, sig;
	struct timespec finished;
};

// reap reaps every child that has exited, noting the container's process.
static void reap(pid_t pid, struct wait_status *ws) {
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && !ws->done) {
			// The process is not ours to wait for (ECHILD): its status is lost.
			ws->done = 1;
			ws->code = 255;
			clock_gettime(CLOCK_REALTIME, &ws->finished);
		}
		if (w <= 0)
			return;
		if (w != pid || ws->done)
			continue;
		ws->done = 1;
		clock_gettime(CLOCK_REALTIME, &ws->finished);
		if (WIFEXITED(st)) {
			ws->code = WEXITSTATUS(st);
		} else if (WIFSIGNALED(st)) {
			ws->sig = WTERMSIG(st);
			ws->code = 128 + ws->sig;
		}
	}
}

// oom_killed reads the "oom_kill N" line of the cgroup's counter file.
static int oom_killed(const char *file) {
	char buf[4096];
	ssize_t n = 0, r;
	int fd;

	if (!file || !*file)
		return 0;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (n < (ssize_t)sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, "oom_kill ", 9)) {
			char *end;
			long long v;
			errno = 0;
			v = strtoll(l + 9, &end, 10);
			return end != l + 9 && !errno && (*end == '\n' || !*end) && v > 0;
		}
	}
	return 0;
}

// go_time formats t as Go's time.Time marshals to JSON: RFC 3339 in the
// local zone, the fraction without trailing zeros.
static void go_time(struct timespec t, char *out, size_t len) {
	struct tm tm;
	char frac[16] = "";
	long off;
	int o;

	localtime_r(&t.tv_sec, &tm);
	if (t.tv_nsec) {
		snprintf(frac, sizeof(frac), ".%09ld", t.tv_nsec);
		for (int i = strlen(frac) - 1; frac[i] == '0'; i--)
			frac[i] = 0;
	}
	o = snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		     tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	off = tm.tm_gmtoff;
	if (off == 0)
		snprintf(out + o, len - o, "Z");
	else
		snprintf(out + o, len - o, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600, labs(off) % 3600 / 60);
}

// exit_failed gives up writing exit.json: it closes fd (if open), removes
// the temporary file and dies with the error that stopped it.
static void exit_failed(int fd, const char *tmp) __attribute__((noreturn));
static void exit_failed(int fd, const char *tmp) {
	int e = errno;

	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e;
	die("write " EXIT_FILE);
}

// write_exit writes exit.json in the current directory (the container's
// state directory) atomically: a synced temporary file renamed over it,
// then the directory synced. The fields are sandbox.exitStatus's.
static void write_exit(struct wait_status *ws, int oom) {
	char json[256], ts[64], tmp[] = "." EXIT_FILE ".XXXXXX";
	int n, fd, dir;

	go_time(ws->finished, ts, sizeof(ts));
	n = snprintf(json, sizeof(json), "{\"exit_code\":%d", ws->code);
	if (ws->sig)
		n += snprintf(json + n, sizeof(json) - n, ",\"signal\":%d", ws->sig);
	n += snprintf(json + n, sizeof(json) - n, ",\"finished_at\":\"%s\"%s}", ts, oom ? ",\"oom_killed\":true" : "");
	fd = mkstemp(tmp);
	if (fd < 0)
		die("write " EXIT_FILE);
	for (int o = 0; o < n;) {
		ssize_t w = write(fd, json + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			exit_failed(fd, tmp);
		o += w;
	}
	if (fsync(fd) < 0)
		exit_failed(fd, tmp);
	if (close(fd) < 0 || rename(tmp, EXIT_FILE) < 0)
		exit_failed(-1, tmp);
	dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir >= 0) {
		fsync(dir);
		close(dir);
	}
}

static void run(struct params *p) __attribute__((noreturn));
static void run(struct params *p) {
	struct pollfd pfd[2 + MAX_STREAMS + MAX_CONNS + MAX_ATTACH];
	struct attacher *pattach[MAX_ATTACH];
	struct stream *pstream[MAX_STREAMS];
	struct conn *pconn[MAX_CONNS];
	struct wait_status ws = {0};
	long long drain_deadline = 0;
	sigset_t mask;
	int sfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	sigemptyset(&mask);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	crilog.fd = p->log;
	if (p->log_path && *p->log_path && p->log_dir && *p->log_dir) {
		crilog.dir = p->log_dir;
		crilog.rel = p->log_path;
	}
	add_stream(p->out, "stdout");
	add_stream(p->err, "stderr");
	add_stream(p->console, "stdout");
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	for (int i = 0; i < MAX_ATTACH; i++)
		attachers[i].out = attachers[i].err = -1;
	stdin_fd = p->in;
	console_fd = p->console;
	if (p->ctl >= 0)
		fcntl(p->ctl, F_SETFL, fcntl(p->ctl, F_GETFL) | O_NONBLOCK);

	// The container's process may have exited before the exec.
	reap(p->pid, &ws);
	for (;;) {
		long long now = now_ms();
		int n = 0, ns = 0, nc = 0, timeout = -1;

		if (ws.done && !drain_deadline) {
			// Input ends with the container's process; the output is
			// read until its writers are gone, for a bounded time: a
			// process outside its PID namespace may still hold it.
			if (stdin_fd >= 0)
				close(stdin_fd);
			stdin_fd = p->in = -1;
			drain_deadline = now + p->drain_ms;
		}
		if (drain_deadline && (open_streams() == 0 || now >= drain_deadline))
			break;
		if (drain_deadline)
			timeout = drain_deadline - now;

		pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		for (int i = 0; i < nstreams; i++) {
			if (streams[i].fd < 0)
				continue;
			pstream[ns++] = &streams[i];
			pfd[n++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
		}
		int ctl_slot = -1;
		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0) {
				ctl_slot = i;
				continue;
			}
			if (conns[i].deadline <= now) {
				close_conn(&conns[i]);
				ctl_slot = i;
				continue;
			}
			int left = conns[i].deadline - now;
			if (timeout < 0 || left < timeout)
				timeout = left;
			pconn[nc++] = &conns[i];
			pfd[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
		}
		int na = 0;
		for (int i = 0; i < MAX_ATTACH; i++) {
			if (attachers[i].out < 0)
				continue;
			pattach[na++] = &attachers[i];
			pfd[n++] = (struct pollfd){.fd = attachers[i].out, .events = POLLIN};
		}
		int ctl_idx = -1;
		if (p->ctl >= 0 && ctl_slot >= 0) {
			ctl_idx = n;
			pfd[n++] = (struct pollfd){.fd = p->ctl, .events = POLLIN};
		}

		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap(p->pid, &ws);
		}
		for (int i = 0; i < ns; i++)
			if (pfd[1 + i].revents)
				read_stream(pstream[i], 0);
		for (int i = 0; i < nc; i++)
			if (pfd[1 + ns + i].revents)
				read_conn(pconn[i]);
		for (int i = 0; i < na; i++)
			if (pfd[1 + ns + nc + i].revents)
				drop_attacher(pattach[i]); // berthd never writes: it hung up
		if (ctl_idx >= 0 && pfd[ctl_idx].revents)
			accept_conns(p->ctl);
	}
	for (int i = 0; i < nstreams; i++)
		if (streams[i].fd >= 0)
			read_stream(&streams[i], 1);
	if (crilog.fd >= 0)
		close(crilog.fd);
	int oom = oom_killed(p->oom_file);
	// Reap what is left (processes of a shared PID namespace that ended).
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	write_exit(&ws, oom);
	_exit(0);
}

__attribute__((constructor)) static void berth_monitor_c(void) {
	const char *spec = getenv(ENV_SPEC);
	struct params p;

	if (!spec)
		return;
	parse(spec, &p);
	p.log_path = getenv(ENV_LOG);
	p.log_dir = getenv(ENV_LOG_DIR);
	p.oom_file = getenv(ENV_OOM);
	close_others(&p);
	run(&p);
}
