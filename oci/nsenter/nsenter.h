#ifndef BERTH_NSENTER_H
#define BERTH_NSENTER_H

#include <signal.h>

#define SYNC_FD 3

void report_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
unsigned long long parse_unsigned(const char *what, const char *s, int base, unsigned long long max);
long long parse_signed(const char *what, const char *s, long long min, long long max);
void exec_fast(const char *hex, int behind_proxy) __attribute__((noreturn));

#endif
