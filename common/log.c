/*
 * log.c: key=value log lines, one write(2) each, for every tokentap process.
 *
 * The state (component name, level, file) is set once by log_init() before
 * threads start.  log_reopen() opens the file again and dup3()s it onto the
 * same descriptor number, so a writer can never write into a descriptor
 * that was closed and reused meanwhile.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_comp[32] = "tokentap";
static enum log_level log_min = LOG_INFO;
static char log_path[512];
static atomic_int log_fd = 2;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

/* Open the configured log file, returning a descriptor or -errno. */
static int log_open(void)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int log_init(const char *component, enum log_level min, const char *path)
{
    snprintf(log_comp, sizeof(log_comp), "%s", component);
    log_min = min;
    if (path == NULL || path[0] == '\0') {
        log_path[0] = '\0';
        atomic_store(&log_fd, 2);
        return 0;
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    int fd = log_open();
    if (fd < 0)
        return fd;
    atomic_store(&log_fd, fd);
    return 0;
}

int log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    int fd = log_open();
    if (fd < 0)
        return fd;
    /* Put the new file under the descriptor number writers already use:
     * the number never changes, so no thread can write a line into a
     * descriptor that was closed and reused meanwhile. */
    int cur = atomic_load(&log_fd);
    if (cur > 2) {
        int rc = dup3(fd, cur, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        return rc;
    }
    atomic_store(&log_fd, fd);
    return 0;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, log_names[i]) == 0)
            return i;
    return -1;
}

void log_msg(enum log_level lvl, const char *rid, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s comp=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                     log_names[lvl], log_comp);
    if (rid != NULL && rid[0] != '\0' && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, "rid=%s ", rid);
    if (n < (int)sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, n);
    (void)w;
}
