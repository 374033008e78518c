/*
 * log.h: one small logging module for every tokentap process.
 *
 * Lines are key=value: "ts=2026-11-22T10:00:00.123Z level=info comp=collector
 * rid=abc msg="committed" rows=1000".  Each process names its component once
 * with log_init(); the request id is passed per call (NULL when none).
 * Output goes to the file given to log_init (opened O_APPEND), or stderr.
 * log_reopen() reopens the file after rotation (call it on SIGHUP, from the
 * main loop, not from the signal handler).  Every function is thread-safe: a
 * line is written with one write(2).
 */
#ifndef TT_LOG_H
#define TT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the component name, the minimum level and the log file (NULL: stderr).
 * Returns 0, or -errno if the file cannot be opened. */
int log_init(const char *component, enum log_level min, const char *path);

/* Reopen the log file (after rotation).  Returns 0 or -errno. */
int log_reopen(void);

/* Parse "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *s);

/* Log one line.  fmt is the rest of the line after the fixed fields and is
 * usually 'msg="..." key=value ...'.  rid may be NULL. */
void log_msg(enum log_level lvl, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(rid, ...) log_msg(LOG_DEBUG, rid, __VA_ARGS__)
#define log_info(rid, ...)  log_msg(LOG_INFO, rid, __VA_ARGS__)
#define log_warn(rid, ...)  log_msg(LOG_WARN, rid, __VA_ARGS__)
#define log_error(rid, ...) log_msg(LOG_ERROR, rid, __VA_ARGS__)

#endif
