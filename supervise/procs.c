/*
 * procs.c: what /proc says about a pid, for tt-supervise.
 *
 * A pid file can outlive its process (SIGKILL, a reboot) and the pid be
 * reused, so before a pid from DIR/run is trusted its process is looked up
 * in /proc: its name (comm) and state, and whether its command line names
 * this stack's data directory.  That serves two checks: main() refuses to
 * start a second keeper or supervisor on one data directory, and a
 * restarted supervisor waits (at most 3 s, then SIGKILL) for the components
 * of the one that died, which got SIGTERM from the kernel and may still be
 * flushing, so that the collector's socket, the shm segment and nginx's port
 * are free again before it starts anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "supervise.h"

#define SUP_PREV_WAIT_MS 3000 /* for a dead supervisor's components */
#define SUP_PREV_KILL_MS 1000 /* for them to go once SIGKILLed */

/* Read process pid's name (comm, into len bytes) and state letter from
 * /proc/PID/stat.  Returns 0, or -1 if it cannot be read. */
static int sup_proc_stat(pid_t pid, char *comm, size_t len, char *state)
{
    char path[64], buf[512], *open_p, *close_p;
    size_t k;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (sup_read_file(path, buf, sizeof(buf)) < 0)
        return -1;
    /* "PID (COMM) STATE ..."; COMM may itself contain ") ". */
    open_p = strchr(buf, '(');
    close_p = strrchr(buf, ')');
    if (open_p == NULL || close_p == NULL || close_p < open_p ||
        close_p[1] != ' ')
        return -1;
    k = (size_t)(close_p - open_p - 1);
    if (k >= len)
        k = len - 1;
    memcpy(comm, open_p + 1, k);
    comm[k] = '\0';
    *state = close_p[2];
    return 0;
}

/* Return 1 if pid is a live tt-supervise process (a keeper or a
 * supervisor).  A pid file can outlive its process (SIGKILL, reboot) and the
 * pid be reused, so the process name is checked where /proc allows, and a
 * zombie does not count. */
static int sup_pid_is_supervisor(pid_t pid)
{
    char comm[SUP_COMM_MAX + 1], state;

    if (pid <= 0 || pid == getpid() || (kill(pid, 0) < 0 && errno != EPERM))
        return 0;
    if (sup_proc_stat(pid, comm, sizeof(comm), &state) < 0)
        return 1;
    if (state == 'Z' || state == 'X')
        return 0;
    return strncmp(comm, "tt-supervise", 12) == 0;
}

/* Return 1 if process pid's command line names directory dir (followed by
 * '/', a space or its end): that tells one stack's processes from those of
 * another stack running the same programs. */
static int sup_cmdline_names(pid_t pid, const char *dir)
{
    char path[64], buf[8192];
    size_t len = strlen(dir);
    const char *p;

    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len == 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    ssize_t n = sup_read_file(path, buf, sizeof(buf));
    if (n < 0)
        return 0;
    /* The arguments are NUL-separated: make them one searchable line. */
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    for (p = buf; (p = memmem(p, (size_t)(buf + n - p), dir, len)) != NULL; p++)
        if (p[len] == '/' || p[len] == ' ' || p[len] == '\0')
            return 1;
    return 0;
}

/* Return 1 if pid is a live (not zombie) process of component c of this
 * stack: it runs c's program, and its command line names the data
 * directory.  A pid file can outlive its process and the pid be reused. */
static int sup_pid_is_comp(struct sup *s, struct sup_comp *c, pid_t pid)
{
    char comm[SUP_COMM_MAX + 1], state;

    if (pid <= 0 || pid == getpid() || pid == getppid())
        return 0;
    if (sup_proc_stat(pid, comm, sizeof(comm), &state) < 0 || state == 'Z' ||
        state == 'X' || strcmp(comm, c->comm) != 0)
        return 0;
    return (s->real_dir[0] != '\0' && sup_cmdline_names(pid, s->real_dir)) ||
           sup_cmdline_names(pid, s->data_dir);
}

/* Before a supervisor starts anything, the components of a previous one
 * that was killed may still run: the kernel sent them SIGTERM and they may
 * take a second to flush, holding the collector's socket, the shm segment
 * and nginx's port until they exit.  Wait for every one still named by its
 * pid file to exit, at most SUP_PREV_WAIT_MS, then SIGKILL its process group
 * and wait at most SUP_PREV_KILL_MS more.  A stop request ends the wait. */
void sup_wait_previous(struct sup *s)
{
    struct pollfd pfd = {.fd = sup_sigpipe[0], .events = POLLIN};
    pid_t prev[SUP_MAX_COMPS];
    int64_t start = sup_now_ms(), deadline = start + SUP_PREV_WAIT_MS;
    int left = 0, killed = 0;
    char buf[64];

    for (int i = 0; i < s->ncomps; i++) {
        struct sup_comp *c = &s->comps[i];
        pid_t pid = sup_read_pid(c->pid_path);

        prev[i] = sup_pid_is_comp(s, c, pid) ? pid : 0;
        if (prev[i] > 0) {
            sup_log(s, "info",
                    "msg=\"waiting for previous process\" name=%s pid=%ld",
                    c->name, (long)pid);
            left++;
        }
    }
    if (left == 0)
        return;
    while (left > 0 && !sup_got_term) {
        int64_t now = sup_now_ms();

        if (now >= deadline) {
            if (killed)
                break;
            for (int i = 0; i < s->ncomps; i++)
                if (prev[i] > 0) {
                    sup_log(s, "warn",
                            "msg=\"killing previous process\" name=%s "
                            "pid=%ld waited_ms=%d",
                            s->comps[i].name, (long)prev[i], SUP_PREV_WAIT_MS);
                    kill(-prev[i], SIGKILL);
                    kill(prev[i], SIGKILL);
                }
            killed = 1;
            deadline = now + SUP_PREV_KILL_MS;
        }
        poll(&pfd, 1, deadline - now < 20 ? (int)(deadline - now) : 20);
        while (read(sup_sigpipe[0], buf, sizeof(buf)) > 0)
            ;
        left = 0;
        for (int i = 0; i < s->ncomps; i++) {
            if (prev[i] > 0 && !sup_pid_is_comp(s, &s->comps[i], prev[i]))
                prev[i] = 0;
            if (prev[i] > 0)
                left++;
        }
    }
    if (left > 0 && !sup_got_term)
        sup_log(s, "error", "msg=\"previous processes still running\" count=%d",
                left);
    else if (left == 0)
        sup_log(s, "info", "msg=\"previous processes gone\" waited_ms=%lld",
                (long long)(sup_now_ms() - start));
}

/* Refuse to run twice on one data directory: a keeper or a supervisor may
 * be alive (a supervisor outlives a killed keeper).  Returns 0 or -1. */
int sup_check_running(struct sup *s)
{
    const char *paths[] = {s->keeper_path, s->pid_path};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        pid_t pid = sup_read_pid(paths[i]);

        if (sup_pid_is_supervisor(pid)) {
            fprintf(stderr,
                    "tt-supervise: already running for \"%s\" (pid %ld)\n",
                    s->data_dir, (long)pid);
            return -1;
        }
    }
    return 0;
}
