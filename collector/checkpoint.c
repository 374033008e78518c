/*
 * checkpoint.c: WAL checkpoints on their own thread.
 *
 * In WAL mode every commit appends pages to the WAL, and a checkpoint
 * copies them back into the database file and fsyncs it.  Done inline
 * (SQLite's autocheckpoint) that fsync stalls the collector's only thread,
 * and with it every ingest request, several times a second under load.  So
 * the main connection never checkpoints; this thread, with its own
 * connection, runs a PASSIVE checkpoint (which never blocks the writer or
 * readers) every CKPT_INTERVAL_MS.  Under a steady stream of commits a
 * PASSIVE checkpoint never quite catches up, and the WAL can only start
 * over from its beginning once every frame is back in the database; so
 * when the WAL holds more than CKPT_RESTART_FRAMES the thread runs a
 * RESTART checkpoint, which holds the writer back only for the few frames
 * the PASSIVE one left (milliseconds) and lets the WAL start over.
 *
 * Threading: the thread touches only its own connection and the stop flag.
 */
#include "collector.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define CKPT_INTERVAL_MS    200
#define CKPT_RESTART_FRAMES 8192 /* 64 MiB of 8 KiB pages */

/* The checkpointer's state. */
struct col_ckpt {
    pthread_t tid;
    sqlite3 *db;
    atomic_int stop;
    int started;
};

static struct col_ckpt col_ckpt_state;

/* Sleep ms milliseconds. */
static void col_ckpt_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The thread: checkpoint whenever the WAL holds frames. */
static void *col_ckpt_main(void *arg)
{
    struct col_ckpt *k = arg;
    while (!atomic_load(&k->stop)) {
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(
            k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc == SQLITE_OK && log >= CKPT_RESTART_FRAMES)
            rc = sqlite3_wal_checkpoint_v2(
                k->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn(NULL, "msg=\"checkpoint failed\" error=\"%s\"",
                     sqlite3_errmsg(k->db));
        col_ckpt_sleep(CKPT_INTERVAL_MS);
    }
    return NULL;
}

int col_checkpoint_start(const char *path)
{
    struct col_ckpt *k = &col_ckpt_state;
    memset(k, 0, sizeof(*k));
    if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
        log_error(NULL, "msg=\"checkpoint connection failed\" error=\"%s\"",
                  k->db ? sqlite3_errmsg(k->db) : "out of memory");
        sqlite3_close(k->db);
        k->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(k->db, 1000);
    /* A connection learns that the database is in WAL mode only when it
     * first reads it; until then a checkpoint through it silently does
     * nothing (and the WAL would grow without bound). */
    if (sqlite3_exec(k->db, "SELECT count(*) FROM sqlite_master", NULL, NULL,
                     NULL) != SQLITE_OK) {
        log_error(NULL,
                  "msg=\"checkpoint connection cannot read\" "
                  "error=\"%s\"",
                  sqlite3_errmsg(k->db));
        sqlite3_close(k->db);
        k->db = NULL;
        return -1;
    }
    if (pthread_create(&k->tid, NULL, col_ckpt_main, k) != 0) {
        sqlite3_close(k->db);
        k->db = NULL;
        return -1;
    }
    k->started = 1;
    return 0;
}

void col_checkpoint_stop(void)
{
    struct col_ckpt *k = &col_ckpt_state;
    if (!k->started)
        return;
    atomic_store(&k->stop, 1);
    pthread_join(k->tid, NULL);
    sqlite3_close(k->db);
    k->started = 0;
}
