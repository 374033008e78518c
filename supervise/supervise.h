/*
 * supervise.h: what the three files of tt-supervise share.
 *
 * supervise.c holds main(), the spec, the supervisor loop and the helpers
 * every file uses (clock, log, pid files, signals); keeper.c holds the
 * keeper, which forks the supervisor and starts it again, and the --daemon
 * detaching; procs.c reads /proc to tell whether a pid still belongs to
 * this stack, and waits for a dead supervisor's components.
 *
 * Ownership: one struct sup lives in main() for the whole run; each
 * supervisor the keeper forks works on its own copy (fork copies it).
 * sup_read_spec() allocates each component's command and shell_cmd; main()
 * frees them when sup_keep() returns, which it does both in the keeper and
 * in each forked supervisor.  Functions that format into a caller's buffer
 * return that buffer.
 *
 * Threads: there is one.  Signal handlers only set the sup_got_* flags and
 * write a byte to sup_sigpipe; only the poll() loop of the process that
 * installed them (the keeper's, or the supervisor's after it has taken a
 * self-pipe of its own) reads and clears them.
 *
 * Errors: functions return 0 or -errno unless their comment says otherwise;
 * the ones main() calls print why and return -1.
 */
#ifndef TT_SUPERVISE_H
#define TT_SUPERVISE_H

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#define SUP_MAX_COMPS      16
#define SUP_NAME_MAX       32
#define SUP_BACKOFF_MIN_MS 100
#define SUP_BACKOFF_MAX_MS 1000
#define SUP_STABLE_MS      10000
#define SUP_COMM_MAX       15 /* a process name's length (comm) */

/* One supervised component, from one line of the spec. */
struct sup_comp {
    char name[SUP_NAME_MAX + 1]; /* names the pid and log files */
    char *command;               /* the command as written in the spec */
    char *shell_cmd;             /* "exec " + command, given to sh -c */
    char pid_path[PATH_MAX];     /* DIR/run/NAME.pid */
    char log_path[PATH_MAX];     /* DIR/log/NAME.log */
    char comm[SUP_COMM_MAX + 1]; /* the process name the command runs as */
    pid_t pid;                   /* the running child, or 0 */
    int64_t started_ms;          /* monotonic time the child was started */
    int64_t restart_at_ms;       /* when to start again; 0 = not waiting */
    int backoff_ms;              /* delay before the next quick restart */
    int term_sent;               /* stopping: SIGTERM has been sent */
    int kill_sent;               /* stopping: SIGKILL has been sent */
    int64_t kill_at_ms;          /* stopping: when SIGTERM becomes SIGKILL */
};

/* The state of the keeper, copied into each supervisor it forks; one
 * instance lives in main(). */
struct sup {
    const char *data_dir;                 /* --data */
    const char *spec_path;                /* --spec */
    const char *log_path;                 /* --log, or NULL for stderr */
    int daemon;                           /* --daemon */
    const char *comp;                     /* "keeper" or "supervise" */
    char real_dir[PATH_MAX];              /* DIR resolved, or "" */
    char run_dir[PATH_MAX];               /* DIR/run */
    char log_dir[PATH_MAX];               /* DIR/log */
    char pid_path[PATH_MAX];              /* DIR/run/supervise.pid */
    char keeper_path[PATH_MAX];           /* DIR/run/keeper.pid */
    int log_fd;                           /* where our own lines go */
    int ready_fd;                         /* --daemon: parent's pipe, or -1 */
    struct sup_comp comps[SUP_MAX_COMPS]; /* in spec order */
    int ncomps;                           /* number of entries in comps */
    int stopping;                         /* a stop was requested */
    int stop_idx;                         /* component being stopped next */
};

/* The self-pipe and the flags set by signal handlers (supervise.c). */
extern int sup_sigpipe[2];
extern volatile sig_atomic_t sup_got_term;
extern volatile sig_atomic_t sup_term_sig; /* SIGTERM or SIGINT */
extern volatile sig_atomic_t sup_got_hup;
extern volatile sig_atomic_t sup_got_chld;

/* supervise.c: helpers, and the supervisor itself. */
int64_t sup_now_ms(void);
__attribute__((format(printf, 3, 4))) void
sup_log(struct sup *s, const char *level, const char *fmt, ...);
const char *sup_status(char *buf, size_t len, int st);
int sup_signals_init(void);
int sup_write_pid(const char *path, pid_t pid);
pid_t sup_read_pid(const char *path);

/* Read at most size - 1 bytes of a small file (a pid file, a /proc entry)
 * into buf, NUL-terminated.  Returns the length, or -1 if it cannot be read
 * or is empty. */
ssize_t sup_read_file(const char *path, char *buf, size_t size);
void sup_reopen_log(struct sup *s);
int sup_supervise(struct sup *s, const sigset_t *mask);

/* keeper.c: the keeper and --daemon. */
int sup_daemonize(struct sup *s);
int sup_keep(struct sup *s);

/* procs.c: what /proc says about a pid. */
void sup_wait_previous(struct sup *s);
int sup_check_running(struct sup *s);

#endif
