/*
 * supervise.c: tt-supervise, the process supervisor of one tokentap stack.
 *
 * It reads a spec file with one component per line ("NAME COMMAND..."),
 * starts each command with /bin/sh -c "exec COMMAND" in file order, and
 * keeps them alive: a child that exits or dies is started again after a
 * short backoff (100 ms, doubling on quick repeated crashes up to 1 s, reset
 * once a child has run for 10 s), so a crashed component is back within two
 * seconds.  Each child runs in its own process group with its stdout and
 * stderr appended to DIR/log/NAME.log, and its pid in DIR/run/NAME.pid while
 * it runs.  SIGTERM or SIGINT stops the children in reverse file order, one
 * at a time (SIGTERM, then SIGKILL after 3 s), so the front end goes first
 * and the collector, which flushes what it accepted, goes last.  SIGHUP is
 * forwarded to every child.  If the supervisor itself is killed, the
 * children get SIGTERM from the kernel (PR_SET_PDEATHSIG).
 *
 * This file holds main() and its arguments, the spec, the supervisor loop
 * and the helpers the other files share (clock, log, pid files, signals).
 * The process started as tt-supervise does not supervise the components
 * itself: it is the keeper (keeper.c), which forks the supervisor and starts
 * it again when it dies.  A restarted supervisor first waits for its dead
 * predecessor's components to go (procs.c).
 *
 * Signal handlers only set a flag and write a byte to a self-pipe; all the
 * work happens in one poll() loop that reaps children with waitpid().  The
 * program is single-threaded and depends on nothing but libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "supervise.h"

#define SUP_LINE_MAX      4096
#define SUP_STOP_GRACE_MS 3000

/* The self-pipe and the flags set by signal handlers. */
int sup_sigpipe[2] = {-1, -1};
volatile sig_atomic_t sup_got_term;
volatile sig_atomic_t sup_term_sig; /* SIGTERM or SIGINT */
volatile sig_atomic_t sup_got_hup;
volatile sig_atomic_t sup_got_chld;

/* Return the monotonic clock in milliseconds. */
int64_t sup_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write one key=value log line with a UTC timestamp in a single write(2). */
void sup_log(struct sup *s, const char *level, const char *fmt, ...)
{
    char line[SUP_LINE_MAX + 256];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    size_t n;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s comp=%s ",
                 ts.tv_nsec / 1000000L, level, s->comp);
    n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (write(s->log_fd, line, n) < 0) {
        /* Nowhere left to report a failing log; keep supervising. */
    }
}

/* Copy src into dst (dstlen bytes) escaping quotes, for a key="..." field. */
static const char *sup_quote(char *dst, size_t dstlen, const char *src)
{
    size_t j = 0;

    for (; *src && j + 3 < dstlen; src++) {
        if (*src == '"' || *src == '\\')
            dst[j++] = '\\';
        dst[j++] = *src;
    }
    dst[j] = '\0';
    return dst;
}

/* Describe a wait status as "exit:N" or "signal:N". */
const char *sup_status(char *buf, size_t len, int st)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "signal:%d", WTERMSIG(st));
    else
        snprintf(buf, len, "exit:%d", WEXITSTATUS(st));
    return buf;
}

/* Record a signal and wake the main loop; async-signal-safe. */
static void sup_on_signal(int sig)
{
    int saved = errno;
    char b = (char)sig;

    if (sig == SIGTERM || sig == SIGINT) {
        sup_got_term = 1;
        sup_term_sig = sig;
    } else if (sig == SIGHUP)
        sup_got_hup = 1;
    else if (sig == SIGCHLD)
        sup_got_chld = 1;
    if (write(sup_sigpipe[1], &b, 1) < 0) {
        /* The pipe is full: the loop is already due to wake up. */
    }
    errno = saved;
}

/* Create the self-pipe and install the handlers.  Returns 0 or -errno. */
int sup_signals_init(void)
{
    struct sigaction sa;
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};

    if (pipe2(sup_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sup_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    /* A write to a closed pipe (a log on a pipe) must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Return 1 if name is a usable component name (it becomes a file name). */
static int sup_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > SUP_NAME_MAX || strcmp(name, "supervise") == 0 ||
        strcmp(name, "keeper") == 0)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* Set c->comm to the name the kernel gives the component's process: the
 * base name of the command's first word (as a single-quoted word too),
 * truncated like /proc/PID/comm.  "exec" and "VAR=value" prefixes are not
 * looked through: such a component is not recognised after a restart. */
static void sup_set_comm(struct sup_comp *c)
{
    const char *p = c->command, *end, *base;
    size_t n;

    if (*p == '\'') {
        p++;
        end = strchr(p, '\'');
        if (end == NULL)
            end = p + strlen(p);
    } else {
        end = p + strcspn(p, " \t");
    }
    base = p;
    for (const char *q = p; q < end; q++)
        if (*q == '/')
            base = q + 1;
    n = (size_t)(end - base);
    if (n > SUP_COMM_MAX)
        n = SUP_COMM_MAX;
    memcpy(c->comm, base, n);
    c->comm[n] = '\0';
}

/* Parse the spec file into s->comps.  Returns 0, or -1 after printing why. */
static int sup_read_spec(struct sup *s)
{
    char line[SUP_LINE_MAX];
    int lineno = 0;
    FILE *f;

    f = fopen(s->spec_path, "re");
    if (f == NULL) {
        fprintf(stderr, "tt-supervise: cannot open spec \"%s\": %s\n",
                s->spec_path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *name, *cmd, *end;
        struct sup_comp *c;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "tt-supervise: %s:%d: line too long\n",
                    s->spec_path, lineno);
            goto fail;
        }
        line[strcspn(line, "\r\n")] = '\0';
        p += strspn(p, " \t");
        if (*p == '\0' || *p == '#')
            continue;
        name = p;
        p += strcspn(p, " \t");
        if (*p != '\0')
            *p++ = '\0';
        cmd = p + strspn(p, " \t");
        end = cmd + strlen(cmd);
        while (end > cmd && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!sup_name_ok(name)) {
            fprintf(stderr,
                    "tt-supervise: %s:%d: invalid component name \"%s\" "
                    "(letters, digits, '-', '_', at most %d; not supervise "
                    "or keeper)\n",
                    s->spec_path, lineno, name, SUP_NAME_MAX);
            goto fail;
        }
        if (*cmd == '\0') {
            fprintf(stderr, "tt-supervise: %s:%d: no command for \"%s\"\n",
                    s->spec_path, lineno, name);
            goto fail;
        }
        for (int i = 0; i < s->ncomps; i++)
            if (strcmp(s->comps[i].name, name) == 0) {
                fprintf(stderr,
                        "tt-supervise: %s:%d: duplicate component \"%s\"\n",
                        s->spec_path, lineno, name);
                goto fail;
            }
        if (s->ncomps == SUP_MAX_COMPS) {
            fprintf(stderr, "tt-supervise: %s:%d: more than %d components\n",
                    s->spec_path, lineno, SUP_MAX_COMPS);
            goto fail;
        }
        c = &s->comps[s->ncomps];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", name);
        c->command = strdup(cmd);
        if (c->command == NULL || asprintf(&c->shell_cmd, "exec %s", cmd) < 0) {
            fprintf(stderr, "tt-supervise: out of memory\n");
            goto fail;
        }
        if (snprintf(c->pid_path, sizeof(c->pid_path), "%s/%s.pid", s->run_dir,
                     name) >= (int)sizeof(c->pid_path) ||
            snprintf(c->log_path, sizeof(c->log_path), "%s/%s.log", s->log_dir,
                     name) >= (int)sizeof(c->log_path)) {
            fprintf(stderr, "tt-supervise: data directory path too long\n");
            goto fail;
        }
        sup_set_comm(c);
        c->backoff_ms = SUP_BACKOFF_MIN_MS;
        s->ncomps++;
    }
    fclose(f);
    if (s->ncomps == 0) {
        fprintf(stderr, "tt-supervise: %s: no components\n", s->spec_path);
        return -1;
    }
    return 0;
fail:
    fclose(f);
    return -1;
}

/* Create dir if it does not exist.  Returns 0 or -1 after printing why. */
static int sup_mkdir(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "tt-supervise: cannot create \"%s\": %s\n", dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Write "PID\n" to path atomically (temporary file, then rename). */
int sup_write_pid(const char *path, pid_t pid)
{
    char tmp[PATH_MAX + 8], buf[32];
    int fd, n, ok;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    errno = 0;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
    ok = write(fd, buf, (size_t)n) == n;
    if (close(fd) < 0)
        ok = 0;
    if (!ok || rename(tmp, path) < 0) {
        int e = errno ? errno : EIO;
        unlink(tmp);
        return -e;
    }
    return 0;
}

ssize_t sup_read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* Read a pid file; returns the pid, or 0 if absent or unreadable. */
pid_t sup_read_pid(const char *path)
{
    char buf[32];
    if (sup_read_file(path, buf, sizeof(buf)) < 0)
        return 0;
    long v = strtol(buf, NULL, 10);
    return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

/* In the forked child: set up process group, signals and fds, then exec. */
static void sup_child_exec(struct sup_comp *c, pid_t parent,
                           const sigset_t *mask)
{
    struct sigaction dfl;
    int fd;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    /* Handlers and ignored signals (a non-interactive shell starts
     * background jobs with SIGINT ignored) must not leak into the child. */
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    setpgid(0, 0);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* The supervisor may have died before prctl took effect. */
    if (getppid() != parent)
        _exit(0);
#endif
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != STDIN_FILENO) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        dprintf(STDERR_FILENO, "tt-supervise: cannot open \"%s\": %s\n",
                c->log_path, strerror(errno));
        _exit(126);
    }
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    /* Descriptors inherited from whoever started us (a caller's pipe, say)
     * must not be held open by the components for their whole life. */
    if (close_range(3, ~0U, 0) < 0)
        for (fd = 3; fd < 1024; fd++)
            close(fd);
    sigprocmask(SIG_SETMASK, mask, NULL);
    execl("/bin/sh", "sh", "-c", c->shell_cmd, (char *)NULL);
    dprintf(STDERR_FILENO, "tt-supervise: cannot run /bin/sh: %s\n",
            strerror(errno));
    _exit(127);
}

/* Start (or restart) component c; a failed fork is retried later. */
static void sup_start(struct sup *s, struct sup_comp *c)
{
    char qcmd[SUP_LINE_MAX * 2];
    sigset_t all, old;
    pid_t parent = getpid(), pid;
    int r;

    /* Block signals across fork so that no handler runs in the child
     * before it has reset them; the handlers would write to our pipe. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        sup_child_exec(c, parent, &old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    c->restart_at_ms = 0;
    c->term_sent = c->kill_sent = 0;
    if (pid < 0) {
        sup_log(s, "error", "msg=\"fork failed\" name=%s error=\"%s\"", c->name,
                strerror(errno));
        c->restart_at_ms = sup_now_ms() + SUP_BACKOFF_MAX_MS;
        return;
    }
    /* Also set in the parent, so the group exists before we signal it. */
    setpgid(pid, pid);
    c->pid = pid;
    c->started_ms = sup_now_ms();
    r = sup_write_pid(c->pid_path, pid);
    if (r < 0)
        sup_log(s, "warn", "msg=\"cannot write pid file\" name=%s error=\"%s\"",
                c->name, strerror(-r));
    sup_log(s, "info", "msg=\"started\" name=%s pid=%ld cmd=\"%s\"", c->name,
            (long)pid, sup_quote(qcmd, sizeof(qcmd), c->command));
}

/* Kill whatever is left in a finished child's process group (for instance
 * nginx workers whose master was SIGKILLed), so a restart can bind again. */
static void sup_kill_leftovers(struct sup *s, struct sup_comp *c, pid_t pgid)
{
    if (kill(-pgid, 0) == 0) {
        sup_log(s, "warn",
                "msg=\"killing leftover processes\" name=%s pgid=%ld", c->name,
                (long)pgid);
        kill(-pgid, SIGKILL);
    }
}

/* Handle the end of component c's child with wait status st. */
static void sup_child_gone(struct sup *s, struct sup_comp *c, int st)
{
    char sbuf[32];
    int64_t now = sup_now_ms();
    pid_t pid = c->pid;
    int delay;

    c->pid = 0;
    unlink(c->pid_path);
    if (!c->kill_sent)
        sup_kill_leftovers(s, c, pid);
    sup_status(sbuf, sizeof(sbuf), st);
    if (s->stopping) {
        sup_log(s, "info", "msg=\"stopped\" name=%s pid=%ld status=%s", c->name,
                (long)pid, sbuf);
        return;
    }
    if (now - c->started_ms >= SUP_STABLE_MS)
        c->backoff_ms = SUP_BACKOFF_MIN_MS;
    delay = c->backoff_ms;
    c->backoff_ms *= 2;
    if (c->backoff_ms > SUP_BACKOFF_MAX_MS)
        c->backoff_ms = SUP_BACKOFF_MAX_MS;
    c->restart_at_ms = now + delay;
    sup_log(s, "warn",
            "msg=\"restarting\" name=%s pid=%ld status=%s ran_ms=%lld "
            "delay_ms=%d",
            c->name, (long)pid, sbuf, (long long)(now - c->started_ms), delay);
}

/* Reap every finished child without blocking. */
static void sup_reap(struct sup *s)
{
    pid_t pid;
    int st;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < s->ncomps; i++)
            if (s->comps[i].pid == pid) {
                sup_child_gone(s, &s->comps[i], st);
                break;
            }
    }
}

/* Forward SIGHUP to every running child (they reopen their logs). */
static void sup_forward_hup(struct sup *s)
{
    for (int i = 0; i < s->ncomps; i++)
        if (s->comps[i].pid > 0)
            kill(s->comps[i].pid, SIGHUP);
    sup_log(s, "info", "msg=\"forwarded SIGHUP\"");
}

/* Reopen our own log file after rotation; keep the old one on failure. */
void sup_reopen_log(struct sup *s)
{
    int fd;

    if (s->log_path == NULL)
        return;
    fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        sup_log(s, "error", "msg=\"cannot reopen log\" error=\"%s\"",
                strerror(errno));
        return;
    }
    dup2(fd, s->log_fd);
    close(fd);
}

/* Advance the ordered stop; returns 1 once every child is gone. */
static int sup_stop_step(struct sup *s)
{
    int64_t now = sup_now_ms();

    while (s->stop_idx >= 0) {
        struct sup_comp *c = &s->comps[s->stop_idx];

        if (c->pid == 0) {
            s->stop_idx--;
            continue;
        }
        if (!c->term_sent) {
            sup_log(s, "info", "msg=\"stopping\" name=%s pid=%ld", c->name,
                    (long)c->pid);
            kill(c->pid, SIGTERM);
            c->term_sent = 1;
            c->kill_at_ms = now + SUP_STOP_GRACE_MS;
        } else if (!c->kill_sent && now >= c->kill_at_ms) {
            sup_log(s, "warn", "msg=\"killing\" name=%s pid=%ld waited_ms=%d",
                    c->name, (long)c->pid, SUP_STOP_GRACE_MS);
            kill(-c->pid, SIGKILL);
            kill(c->pid, SIGKILL);
            c->kill_sent = 1;
        }
        return 0;
    }
    return 1;
}

/* Milliseconds until the next timed event, or -1 if there is none. */
static int sup_timeout(struct sup *s)
{
    int64_t now = sup_now_ms(), next = -1;

    if (s->stopping) {
        if (s->stop_idx >= 0) {
            struct sup_comp *c = &s->comps[s->stop_idx];
            if (c->term_sent && !c->kill_sent)
                next = c->kill_at_ms;
        }
    } else {
        for (int i = 0; i < s->ncomps; i++) {
            int64_t at = s->comps[i].restart_at_ms;
            if (s->comps[i].pid == 0 && at > 0 && (next < 0 || at < next))
                next = at;
        }
    }
    if (next < 0)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

/* Start every component whose restart time has come. */
static void sup_start_due(struct sup *s)
{
    int64_t now = sup_now_ms();

    for (int i = 0; i < s->ncomps; i++) {
        struct sup_comp *c = &s->comps[i];
        if (c->pid == 0 && c->restart_at_ms > 0 && c->restart_at_ms <= now)
            sup_start(s, c);
    }
}

/* Run the supervision loop until a stop completes. */
static void sup_loop(struct sup *s)
{
    struct pollfd pfd = {.fd = sup_sigpipe[0], .events = POLLIN};
    char buf[64];

    for (int i = 0; i < s->ncomps && !sup_got_term; i++)
        sup_start(s, &s->comps[i]);
    for (;;) {
        int timeout = sup_timeout(s);

        /* Flags are checked before sleeping, and every handler also
         * writes to the pipe, so no signal is missed between the two. */
        if (!sup_got_term && !sup_got_hup && !sup_got_chld)
            poll(&pfd, 1, timeout);
        while (read(sup_sigpipe[0], buf, sizeof(buf)) > 0)
            ;
        if (sup_got_chld) {
            sup_got_chld = 0;
            sup_reap(s);
        }
        if (sup_got_hup) {
            sup_got_hup = 0;
            sup_reopen_log(s);
            sup_forward_hup(s);
        }
        if (sup_got_term) {
            /* A second request while stopping changes nothing. */
            sup_got_term = 0;
            if (!s->stopping) {
                s->stopping = 1;
                s->stop_idx = s->ncomps - 1;
                sup_log(s, "info", "msg=\"stop requested\"");
            }
        }
        if (s->stopping) {
            if (sup_stop_step(s))
                return;
        } else {
            sup_start_due(s);
        }
    }
}

/* In a supervisor just forked by the keeper (with every signal blocked,
 * mask being the mask to restore): take a self-pipe of its own, write the
 * pid file, wait for a dead predecessor's components, then supervise until
 * a stop completes.  Returns the exit status. */
int sup_supervise(struct sup *s, const sigset_t *mask)
{
    int r;
    char b = 1;

    s->comp = "supervise";
    sup_got_term = sup_got_hup = sup_got_chld = 0;
    close(sup_sigpipe[0]);
    close(sup_sigpipe[1]);
    r = sup_signals_init();
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (r < 0) {
        sup_log(s, "error", "msg=\"cannot set up signals\" error=\"%s\"",
                strerror(-r));
        return 1;
    }
    r = sup_write_pid(s->pid_path, getpid());
    if (r < 0) {
        sup_log(s, "error", "msg=\"cannot write pid file\" error=\"%s\"",
                strerror(-r));
        return 1;
    }
    if (s->ready_fd >= 0) {
        if (write(s->ready_fd, &b, 1) < 0) {
            /* The parent is gone; nobody is waiting for the answer. */
        }
        close(s->ready_fd);
        s->ready_fd = -1;
    }
    sup_log(s, "info", "msg=\"supervisor started\" pid=%ld components=%d",
            (long)getpid(), s->ncomps);
    sup_wait_previous(s);
    sup_loop(s);
    if (sup_read_pid(s->pid_path) == getpid())
        unlink(s->pid_path);
    sup_log(s, "info", "msg=\"supervisor stopped\"");
    return 0;
}

/* Print usage to f. */
static void sup_usage(FILE *f)
{
    fprintf(f,
            "usage: tt-supervise --data DIR --spec FILE [--log FILE] "
            "[--daemon]\n"
            "  FILE has one component per line: NAME COMMAND...\n"
            "  (run as /bin/sh -c \"exec COMMAND\"; '#' starts a comment)\n");
}

/* Parse arguments, start the components, supervise until told to stop. */
int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"spec", required_argument, NULL, 's'},
        {"log", required_argument, NULL, 'l'},
        {"daemon", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char default_log[PATH_MAX];
    struct sup s;
    int o, r;

    memset(&s, 0, sizeof(s));
    s.log_fd = STDERR_FILENO;
    s.ready_fd = -1;
    s.comp = "keeper";
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            s.data_dir = optarg;
            break;
        case 's':
            s.spec_path = optarg;
            break;
        case 'l':
            s.log_path = optarg;
            break;
        case 'D':
            s.daemon = 1;
            break;
        case 'h':
            sup_usage(stdout);
            return 0;
        default:
            sup_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || s.data_dir == NULL || s.spec_path == NULL) {
        sup_usage(stderr);
        return 2;
    }
    if (snprintf(s.run_dir, sizeof(s.run_dir), "%s/run", s.data_dir) >=
            (int)sizeof(s.run_dir) ||
        snprintf(s.log_dir, sizeof(s.log_dir), "%s/log", s.data_dir) >=
            (int)sizeof(s.log_dir) ||
        snprintf(s.pid_path, sizeof(s.pid_path), "%s/supervise.pid",
                 s.run_dir) >= (int)sizeof(s.pid_path) ||
        snprintf(s.keeper_path, sizeof(s.keeper_path), "%s/keeper.pid",
                 s.run_dir) >= (int)sizeof(s.keeper_path)) {
        fprintf(stderr, "tt-supervise: data directory path too long\n");
        return 1;
    }
    if (sup_mkdir(s.data_dir) < 0 || sup_mkdir(s.run_dir) < 0 ||
        sup_mkdir(s.log_dir) < 0 || sup_read_spec(&s) < 0 ||
        sup_check_running(&s) < 0)
        return 1;
    if (realpath(s.data_dir, s.real_dir) == NULL)
        s.real_dir[0] = '\0';
    if (s.daemon && s.log_path == NULL) {
        if (snprintf(default_log, sizeof(default_log), "%s/supervise.log",
                     s.log_dir) >= (int)sizeof(default_log)) {
            fprintf(stderr, "tt-supervise: data directory path too long\n");
            return 1;
        }
        s.log_path = default_log;
    }
    if (s.log_path != NULL) {
        s.log_fd =
            open(s.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s.log_fd < 0) {
            fprintf(stderr, "tt-supervise: cannot open log \"%s\": %s\n",
                    s.log_path, strerror(errno));
            return 1;
        }
    }
    /* Handlers go in before the pid file appears, so that a SIGTERM sent
     * as soon as it exists is handled (the self-pipe survives the fork). */
    r = sup_signals_init();
    if (r < 0) {
        fprintf(stderr, "tt-supervise: cannot set up signals: %s\n",
                strerror(-r));
        return 1;
    }
    if (s.daemon) {
        if (sup_daemonize(&s) < 0)
            return 1;
    } else {
        r = sup_write_pid(s.keeper_path, getpid());
        if (r < 0) {
            fprintf(stderr, "tt-supervise: cannot write \"%s\": %s\n",
                    s.keeper_path, strerror(-r));
            return 1;
        }
    }
    r = sup_keep(&s);
    for (int i = 0; i < s.ncomps; i++) {
        free(s.comps[i].command);
        free(s.comps[i].shell_cmd);
    }
    return r;
}
