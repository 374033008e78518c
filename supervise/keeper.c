/*
 * keeper.c: the keeper of tt-supervise, and --daemon.
 *
 * The process started as tt-supervise (or, with --daemon, its detached
 * child) does not supervise the components itself: it is the keeper, which
 * writes DIR/run/keeper.pid and forks the supervisor (DIR/run/supervise.pid)
 * and does nothing but start it again, with the components' backoff, when it
 * dies of a signal or exits non-zero.  A supervisor that exits 0 (after a
 * stop) ends the keeper too.  The keeper forwards SIGTERM, SIGINT and SIGHUP
 * to the supervisor and, when told to stop, waits for the supervisor's
 * ordered stop before exiting.  The supervisor is not tied to the keeper: a
 * killed keeper leaves the stack running.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervise.h"

/* Detach into the background and write the keeper's pid file.  The parent
 * exits 0 once the first supervisor has written its own pid file (it writes
 * a byte to s->ready_fd), or 1 if it never does. */
int sup_daemonize(struct sup *s)
{
    int ready[2], fd, r;
    pid_t pid;
    char b;

    if (pipe2(ready, O_CLOEXEC) < 0) {
        perror("tt-supervise: pipe");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        perror("tt-supervise: fork");
        return -1;
    }
    if (pid > 0) {
        close(ready[1]);
        while ((r = (int)read(ready[0], &b, 1)) < 0 && errno == EINTR)
            ;
        if (r != 1)
            fprintf(stderr, "tt-supervise: the supervisor did not start\n");
        _exit(r == 1 ? 0 : 1);
    }
    close(ready[0]);
    setsid();
    r = sup_write_pid(s->keeper_path, getpid());
    if (r < 0) {
        fprintf(stderr, "tt-supervise: cannot write \"%s\": %s\n",
                s->keeper_path, strerror(-r));
        _exit(1);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    dup2(s->log_fd, STDOUT_FILENO);
    dup2(s->log_fd, STDERR_FILENO);
    s->ready_fd = ready[1];
    return 0;
}

/* In the keeper: handle the end of supervisor pid with wait status st.
 * Returns 1 if the keeper is done (*rc set), or 0 after scheduling a
 * restart with the components' backoff. */
static int sup_supervisor_gone(struct sup *s, pid_t pid, int st, int stopping,
                               int64_t started_ms, int64_t *restart_at_ms,
                               int *backoff_ms, int *rc)
{
    int64_t now = sup_now_ms();
    char sbuf[32];
    int delay;

    if (sup_read_pid(s->pid_path) == pid)
        unlink(s->pid_path);
    sup_status(sbuf, sizeof(sbuf), st);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        sup_log(s, "info", "msg=\"supervisor exited\" pid=%ld status=%s",
                (long)pid, sbuf);
        *rc = 0;
        return 1;
    }
    if (stopping) {
        sup_log(s, "warn", "msg=\"supervisor ended\" pid=%ld status=%s",
                (long)pid, sbuf);
        *rc = 1;
        return 1;
    }
    if (now - started_ms >= SUP_STABLE_MS)
        *backoff_ms = SUP_BACKOFF_MIN_MS;
    delay = *backoff_ms;
    *backoff_ms *= 2;
    if (*backoff_ms > SUP_BACKOFF_MAX_MS)
        *backoff_ms = SUP_BACKOFF_MAX_MS;
    *restart_at_ms = now + delay;
    sup_log(s, "warn",
            "msg=\"restarting supervisor\" pid=%ld status=%s ran_ms=%lld "
            "delay_ms=%d",
            (long)pid, sbuf, (long long)(now - started_ms), delay);
    return 0;
}

/* The keeper: fork the supervisor, fork it again when it dies abnormally,
 * pass stop and reload requests on to it.  It does nothing else, so that
 * nothing can make it fail.  Returns the exit status, both in the keeper
 * when it ends and in each forked supervisor when that one ends. */
int sup_keep(struct sup *s)
{
    struct pollfd pfd = {.fd = sup_sigpipe[0], .events = POLLIN};
    int64_t started_ms = 0, restart_at_ms = 0;
    int backoff_ms = SUP_BACKOFF_MIN_MS, stopping = 0, rc = 0;
    pid_t pid = 0;
    char buf[64];

    sup_log(s, "info", "msg=\"keeper started\" pid=%ld", (long)getpid());
    for (;;) {
        int timeout = -1, st;
        pid_t w;

        if (pid == 0 && !stopping) {
            int64_t now = sup_now_ms();

            if (now >= restart_at_ms) {
                sigset_t all, old;

                /* Signals stay blocked until the child has its own
                 * self-pipe: the handlers would write to ours. */
                sigfillset(&all);
                sigprocmask(SIG_BLOCK, &all, &old);
                pid = fork();
                if (pid == 0)
                    return sup_supervise(s, &old);
                sigprocmask(SIG_SETMASK, &old, NULL);
                if (pid < 0) {
                    sup_log(s, "error", "msg=\"fork failed\" error=\"%s\"",
                            strerror(errno));
                    pid = 0;
                    restart_at_ms = now + SUP_BACKOFF_MAX_MS;
                } else {
                    started_ms = now;
                    sup_log(s, "info", "msg=\"started supervisor\" pid=%ld",
                            (long)pid);
                }
                /* Only the first supervisor answers a waiting parent. */
                if (s->ready_fd >= 0) {
                    close(s->ready_fd);
                    s->ready_fd = -1;
                }
                continue;
            }
            timeout = (int)(restart_at_ms - now);
        }
        if (!sup_got_term && !sup_got_hup && !sup_got_chld)
            poll(&pfd, 1, timeout);
        while (read(sup_sigpipe[0], buf, sizeof(buf)) > 0)
            ;
        if (sup_got_term) {
            sup_got_term = 0;
            if (!stopping)
                sup_log(s, "info", "msg=\"stop requested\"");
            stopping = 1;
            if (pid > 0)
                kill(pid, sup_term_sig ? sup_term_sig : SIGTERM);
        }
        if (sup_got_hup) {
            sup_got_hup = 0;
            sup_reopen_log(s);
            if (pid > 0)
                kill(pid, SIGHUP);
        }
        if (sup_got_chld) {
            sup_got_chld = 0;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                if (w != pid)
                    continue;
                pid = 0;
                if (sup_supervisor_gone(s, w, st, stopping, started_ms,
                                        &restart_at_ms, &backoff_ms, &rc))
                    stopping = 1;
            }
        }
        if (stopping && pid == 0)
            break;
    }
    if (sup_read_pid(s->keeper_path) == getpid())
        unlink(s->keeper_path);
    sup_log(s, "info", "msg=\"keeper stopped\" status=%d", rc);
    return rc;
}
