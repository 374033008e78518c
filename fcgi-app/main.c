/*
 * main.c: tt-api, the FastCGI workers behind nginx.
 *
 * Usage: tt-api --data DIR [-c FILE] [--set key=value]...
 *
 * It listens on DIR/run/api.sock and runs conf.api_threads worker threads,
 * each accepting and answering one request at a time.  At start it reads
 * DIR/session.secret, the key of browser sessions (making it the first
 * time; token.h), and stops if it cannot.
 *
 * nginx keeps at most two idle FastCGI connections per worker, for the
 * live reads only (see nginx/tokentap.conf.in); a thread waiting on such a
 * connection is one of api_threads, so the default leaves most threads
 * free for ingest.
 *
 * Shutdown: the signals are blocked in every thread and taken by the main
 * thread with sigwait().  On SIGTERM it shuts the listening socket down,
 * which makes the threads' accept() fail; they finish the request they are
 * in and return.  libfcgi's own signal handling never sees SIGTERM.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "mapvfs.h"
#include "query.h"
#include "rollup.h"
#include "log.h"
#include "sig.h"
#include "proto.h"

static volatile sig_atomic_t api_stopping;

/* Fill a request from the FastCGI parameters. */
static void api_req_init(struct api_req *r, struct api_thread *t)
{
    memset(r, 0, sizeof(*r));
    r->t = t;
    r->arena = &t->arena;
    r->now_ms = proto_now_ms();
    char **env = t->fr.envp;
    const char *m = FCGX_GetParam("REQUEST_METHOD", env);
    r->method = m ? m : "GET";
    const char *uri = FCGX_GetParam("DOCUMENT_URI", env);
    if (uri == NULL)
        uri = FCGX_GetParam("REQUEST_URI", env);
    if (uri == NULL)
        uri = "/";
    const char *q = strchr(uri, '?');
    r->path = q ? arena_strndup(r->arena, uri, (size_t)(q - uri)) : uri;
    const char *qs = FCGX_GetParam("QUERY_STRING", env);
    r->query = qs ? qs : "";
    r->content_type = FCGX_GetParam("CONTENT_TYPE", env);
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", env);
    r->content_length = cl && cl[0] ? strtol(cl, NULL, 10) : -1;
    const char *rid = FCGX_GetParam("REQUEST_ID", env);
    if (rid == NULL)
        rid = FCGX_GetParam("HTTP_X_REQUEST_ID", env);
    snprintf(r->rid, sizeof(r->rid), "%s", rid ? rid : "");
    r->role = KEY_ROLE_NONE;
}

/* Open this thread's read-only database connection. */
static int api_open_db(struct api_thread *t)
{
    if (t->db != NULL)
        return 0;
    /* Pages are read from the process's one mapping of the file (mapvfs.c;
     * the default VFS if it could not be registered). */
    const char *vfs = mapvfs_register() == 0 ? MAPVFS_NAME : NULL;
    if (sqlite3_open_v2(t->g->db_path, &t->db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        vfs) != SQLITE_OK ||
        sqlite3_prepare_v3(t->db,
                           "SELECT id, role, workspace FROM api_keys WHERE "
                           "hash = ? AND revoked_ms IS NULL",
                           -1, SQLITE_PREPARE_PERSISTENT, &t->key_lookup,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(t->db,
                           "SELECT role, workspace, name FROM api_keys WHERE "
                           "id = ? AND revoked_ms IS NULL",
                           -1, SQLITE_PREPARE_PERSISTENT, &t->key_by_id,
                           NULL) != SQLITE_OK) {
        log_error(NULL, "msg=\"cannot open database\" path=\"%s\" error=\"%s\"",
                  t->g->db_path, t->db ? sqlite3_errmsg(t->db) : "?");
        sqlite3_finalize(t->key_lookup);
        sqlite3_finalize(t->key_by_id);
        sqlite3_close(t->db);
        t->db = NULL;
        t->key_lookup = NULL;
        t->key_by_id = NULL;
        return -1;
    }
    sqlite3_busy_timeout(t->db, 2000);
    rollup_sql_register(t->db);
    /* SQLite's own mapping stays off: it stops at 2 GiB and remaps as the
     * file grows; the VFS maps all of it, once. */
    return 0;
}

/* A worker thread: accept, answer, repeat until shutdown. */
static void *api_worker(void *arg)
{
    struct api_thread *t = arg;
    while (!api_stopping) {
        /* No accept lock: accept(2) is thread-safe on Linux and wakes one
         * waiter per connection. */
        if (FCGX_Accept_r(&t->fr) < 0 || api_stopping)
            break;
        atomic_store(&t->kept_fd, -1);
        struct api_req r;
        arena_json_use(&t->arena);
        api_req_init(&r, t);
        /* Liveness must not depend on the database. */
        if (api_open_db(t) != 0 && strcmp(r.path, "/health/live") != 0)
            api_error_h(&r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                        "the database is not available yet");
        else
            api_dispatch(&r);
        /* No read transaction outlives its request (it would hold back
         * the collector's checkpoints). */
        if (t->db != NULL)
            api_read_end(&r);
        log_debug(r.rid, "msg=\"request\" method=%s path=\"%s\" status=%d",
                  r.method, r.path, r.status);
        /* Detached, the connection closes at once: libfcgi's lingering
         * close (shutdown, wait for nginx to close first) buys nothing on
         * a UNIX socket, where nginx reads all we wrote before EOF. */
        FCGX_Detach(&t->fr);
        FCGX_Finish_r(&t->fr);
        /* A kept connection stays open: the next accept reads from it. */
        atomic_store(&t->kept_fd, t->fr.ipcFd);
        arena_json_use(NULL);
        arena_reset(&t->arena);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static struct api_global g;
    char err[512];
    /* Keep freed memory for the next answer: a large answer (a megabyte of
     * JSON, its objects, the engine's tables) would otherwise be mapped
     * and unmapped each time, and every page of fresh memory costs a page
     * fault (tens of microseconds on a virtual machine).  Memory use stays
     * bounded by the largest answers' peak. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (conf_from_args(&g.conf, argc, argv, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "tt-api: %s\n", err);
        return 1;
    }
    if (conf_open_log(&g.conf, "api") != 0)
        return 1;
    g.started_ms = proto_now_ms();
    snprintf(g.db_path, sizeof(g.db_path), "%s/tokentap.db", g.conf.data_dir);
    snprintf(g.col_path, sizeof(g.col_path), "%s/run/collector.sock",
             g.conf.data_dir);
    if (api_cache_init(&g) != 0)
        return 1;
    /* Browser sessions outlive this process: their secret is on disk. */
    char path[CONF_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/session.secret", g.conf.data_dir);
    if (tok_secret_load(path, g.session_secret, err, sizeof(err)) != 0) {
        log_error(NULL, "msg=\"no session secret\" error=\"%s\"", err);
        return 1;
    }

    /* Before any thread starts: all inherit the mask. */
    sigset_t mask;
    sig_block_stop(&mask);

    arena_json_install();
    /* Each thread has its own connection: SQLite needs no mutexes. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (FCGX_Init() != 0) {
        log_error(NULL, "msg=\"FCGX_Init failed\"");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/run/api.sock", g.conf.data_dir);
    unlink(path);
    int lfd = FCGX_OpenSocket(path, 1024);
    if (lfd < 0) {
        log_error(NULL, "msg=\"cannot listen\" path=\"%s\"", path);
        return 1;
    }
    chmod(path, 0666);

    int n = g.conf.api_threads;
    struct api_thread *threads = calloc((size_t)n, sizeof(*threads));
    pthread_t *tids = calloc((size_t)n, sizeof(*tids));
    if (threads == NULL || tids == NULL)
        return 1;
    for (int i = 0; i < n; i++) {
        struct api_thread *t = &threads[i];
        t->idx = i;
        t->g = &g;
        t->col_fd = -1;
        atomic_store(&t->kept_fd, -1);
        arena_init(&t->arena, 256 * 1024);
        shm_reader_init(&t->shm, g.conf.shm_name);
        FCGX_InitRequest(&t->fr, lfd, 0);
        if (pthread_create(&tids[i], NULL, api_worker, t) != 0) {
            log_error(NULL, "msg=\"cannot start worker\"");
            return 1;
        }
    }
    log_info(NULL, "msg=\"api ready\" socket=\"%s\" threads=%d", path, n);

    for (;;) {
        int sig = 0;
        if (sigwait(&mask, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_reopen();
            continue;
        }
        break;
    }
    log_info(NULL, "msg=\"api stopping\"");
    api_stopping = 1;
    FCGX_ShutdownPending();
    /* accept() on a shut-down socket fails at once: the threads return.
     * A thread waiting for the next request on a kept connection is woken
     * by shutting that connection down too. */
    shutdown(lfd, SHUT_RDWR);
    for (int i = 0; i < n; i++) {
        int fd = atomic_load(&threads[i].kept_fd);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 900 * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int joined = 0;
    while (joined < n &&
           pthread_timedjoin_np(tids[joined], NULL, &deadline) == 0)
        joined++;
    unlink(path);
    if (joined < n) {
        /* A worker is still in a request: exit anyway, within the second
         * the supervisor expects; the process's memory goes with it. */
        log_warn(NULL, "msg=\"a worker did not finish in time\"");
        /* Not exit(): library clean-up must not run under live threads. */
        _exit(0);
    }
    for (int i = 0; i < n; i++) {
        struct api_thread *t = &threads[i];
        qry_cache_free(t->qcache);
        sqlite3_finalize(t->key_lookup);
        sqlite3_finalize(t->key_by_id);
        sqlite3_close(t->db);
        arena_free(&t->arena);
        shm_reader_close(&t->shm);
        if (t->col_fd >= 0)
            close(t->col_fd);
        FCGX_Free(&t->fr, 1);
    }
    api_cache_free(&g);
    free(threads);
    free(tids);
    return 0;
}
