//go:build linux && cgo

// The CRI log writer, record for record what sandbox/log.go writes:
//
//	<RFC 3339 UTC timestamp, 9 fraction digits> <stream> <P|F> <content>\n
//
// Both are tested against the same inputs (sandbox/monitor_c_test.go).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

// lower_error is strerror(e) with a lower-case first letter, as Go prints
// errno values.
const char *lower_error(int e) {
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] += 'a' - 'A';
	return buf;
}

// write_all writes the iovecs whole, as Go's File.Write does; errors
// (a full disk) drop the record.
static void write_all(int fd, struct iovec *iov, int cnt) {
	while (cnt > 0) {
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= w;
		}
	}
}

// log_record appends one record (criLog.write).
void log_record(struct crilog *l, const char *stream, int partial, const char *p, size_t n) {
	char head[96];
	struct timespec ts;
	struct tm tm;
	int h;

	if (l->fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	h = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s %c ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec, stream,
		     partial ? 'P' : 'F');
	struct iovec iov[3] = {
		{.iov_base = head, .iov_len = h},
		{.iov_base = (void *)p, .iov_len = n},
		{.iov_base = "\n", .iov_len = 1},
	};
	write_all(l->fd, iov, 3);
}

// stream_flush writes the complete lines read into s so far, splits what
// is known to be longer than MAX_LINE, and keeps the rest for the next
// read; at end of file the rest is written as a full record. The same
// steps as sandbox.copyLog, so that records match whatever the reads.
void stream_flush(struct crilog *l, struct stream *s, int eof) {
	size_t start = 0;
	char *nl;

	while ((nl = memchr(s->buf + start, '\n', s->n - start))) {
		size_t i = nl - (s->buf + start);
		log_record(l, s->name, 0, s->buf + start, i);
		start += i + 1;
	}
	// A line is split only once it is known to be longer than MAX_LINE,
	// so a line of exactly MAX_LINE stays whole.
	while (s->n - start > MAX_LINE) {
		log_record(l, s->name, 1, s->buf + start, MAX_LINE);
		start += MAX_LINE;
	}
	memmove(s->buf, s->buf + start, s->n - start);
	s->n -= start;
	if (eof && s->n > 0) {
		log_record(l, s->name, 0, s->buf, s->n);
		s->n = 0;
	}
}

// mkdir_all makes dir and its parents (os.MkdirAll); it fails naming the
// directory it could not make.
static int mkdir_all(char *dir, char *err, size_t errlen) {
	struct stat st;
	char *p;

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		snprintf(err, errlen, "mkdir %s: %s", dir, lower_error(ENOTDIR));
		return -1;
	}
	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir, lower_error(errno));
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && (errno != EEXIST || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
		snprintf(err, errlen, "mkdir %s: %s", dir, lower_error(errno == EEXIST ? ENOTDIR : errno));
		return -1;
	}
	return 0;
}

// openat2_beneath is openat2 with sandbox.openBeneath's resolve flags: no
// "..", no symlink, nothing outside dfd.
static int openat2_beneath(int dfd, const char *path, int flags) {
	struct open_how how = {
	    .flags = (unsigned long long)flags,
	    .mode = flags & O_CREAT ? 0640 : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
}

// open_beneath opens rel beneath dir for appending, making rel's parent
// directories, component by component from a descriptor of dir, as
// sandbox.openBeneath does.
static int open_beneath(const char *dir, const char *rel, char *err, size_t errlen) {
	char buf[4096];
	char *p, *slash;
	int fd, next, e;

	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", dir, lower_error(errno));
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", rel);
	for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = 0;
		if (!*p || strcmp(p, ".") == 0)
			continue;
		if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s/%s: %s", dir, rel, lower_error(errno));
			close(fd);
			return -1;
		}
		next = openat2_beneath(fd, p, O_PATH | O_DIRECTORY | O_CLOEXEC);
		e = errno;
		close(fd);
		if (next < 0)
			goto fail;
		fd = next;
	}
	next = openat2_beneath(fd, p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC);
	e = errno;
	close(fd);
	if (next >= 0)
		return next;
fail:
	if (e == ELOOP || e == EXDEV)
		snprintf(err, errlen, "open %s/%s: a symlink is in the way, and log files are not opened through symlinks", dir, rel);
	else
		snprintf(err, errlen, "open %s/%s: %s", dir, rel, lower_error(e));
	return -1;
}

// log_reopen starts a new file at the log path, as after kubelet renamed
// the old one (criLog.reopen); a log directory that vanished is made
// again. On failure the old file stays in use and err says why.
int log_reopen(struct crilog *l, char *err, size_t errlen) {
	char dir[4096], why[4096 + 128];
	int fd;

	snprintf(dir, sizeof(dir), "%s", l->dir);
	if (mkdir_all(dir, why, sizeof(why)) < 0 || (fd = open_beneath(l->dir, l->rel, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "reopen log %s/%s: %s", l->dir, l->rel, why);
		return -1;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	return 0;
}
