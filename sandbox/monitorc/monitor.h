// See monitorc.go for what this program is and why it is C.
#ifndef BERTH_MONITORC_H
#define BERTH_MONITORC_H

#include <stddef.h>

// MAX_LINE is sandbox.maxLogLine: longer lines are split into partial
// records of this many bytes.
#define MAX_LINE (16 << 10)

// crilog is the container's CRI log file (sandbox/log.go).
struct crilog {
	int fd;		  // -1: no log; output is read and dropped
	const char *dir;  // the pod's log directory
	const char *rel;  // the log path beneath it, reopened on request
};

// stream is one output stream copied into the log.
struct stream {
	int fd; // -1 once it reached end of file
	const char *name;
	size_t n;		 // bytes of an unfinished line in buf
	char buf[MAX_LINE + 1]; // as sandbox.copyLog's buffer
};

void log_record(struct crilog *l, const char *stream, int partial, const char *p, size_t n);
void stream_flush(struct crilog *l, struct stream *s, int eof);
int log_reopen(struct crilog *l, char *err, size_t errlen);
const char *lower_error(int e);

#endif
