/*
 * main.c: tt-collector, the one writer of tokentap's database and live
 * segment.
 *
 * Usage: tt-collector --data DIR [-c FILE] [--set key=value]...
 *        [--check-config | --print-config | --describe-config]
 *
 * It opens (creating and migrating) DIR/tokentap.db, loads the price
 * catalog, makes sure an admin key exists (writing a new one to
 * DIR/admin.key), creates the live segment with a new generation, rebuilds
 * the live window from the database, and serves DIR/run/collector.sock
 * until SIGTERM, when it commits what it has read and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector.h"
#include "log.h"
#include "sig.h"

/* Create dir (and DIR/run, DIR/log) if missing. */
static int col_mkdirs(const char *data)
{
    char p[CONF_PATH_MAX + 16];
    const char *subs[] = {"", "/run", "/log"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", data, subs[i]);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "tt-collector: cannot create %s: %s\n", p,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The shipped catalog: the configured one, else the source tree's, else
 * the installed one. */
static const char *col_pricing_path(const struct conf *cf)
{
    if (cf->pricing_file[0] != '\0')
        return cf->pricing_file;
    if (access(TT_SRC_PRICING, R_OK) == 0)
        return TT_SRC_PRICING;
    return TT_INSTALLED_PRICING;
}

/* Save a closed second (live.h callback). */
static void col_on_close(void *ctx, int64_t sec, const void *blob, size_t len)
{
    col_store_save_second(ctx, sec, blob, len);
}

int main(int argc, char **argv)
{
    static struct col c;
    char err[512];
    /* Before any thread exists (the checkpointer): a thread with the stop
     * signals unblocked would die of SIGTERM without the flush. */
    sigset_t mask;
    sig_block_stop(&mask);
    if (conf_from_args(&c.conf, argc, argv, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "tt-collector: %s\n", err);
        return 1;
    }
    struct conf *cf = &c.conf;
    if (col_mkdirs(cf->data_dir) != 0)
        return 1;
    if (conf_open_log(cf, "collector") != 0)
        return 1;
    char path[CONF_PATH_MAX + 32];
    /* One collector per data directory: a second one would take over the
     * socket and the segment while the first still writes.  The lock goes
     * with the process, however it ends. */
    snprintf(path, sizeof(path), "%s/run/collector.lock", cf->data_dir);
    int lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "tt-collector: another collector is running on %s\n",
                cf->data_dir);
        log_error(NULL, "msg=\"another collector holds the lock\" path=\"%s\"",
                  path);
        return 1;
    }
    c.started_ms = proto_now_ms();
    /* Each connection is used by one thread: no mutexes per connection,
     * no memory statistics. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

    snprintf(path, sizeof(path), "%s/tokentap.db", cf->data_dir);
    if (col_store_open(&c.store, path, cf->db_synchronous, err, sizeof(err)) !=
        0) {
        log_error(NULL, "msg=\"cannot open database\" error=\"%s\"", err);
        fprintf(stderr, "tt-collector: %s\n", err);
        return 1;
    }

    if (col_checkpoint_start(path) == 0)
        sqlite3_exec(c.store.db, "PRAGMA wal_autocheckpoint=0", NULL, NULL,
                     NULL);

    /* The default override (DATA/pricing.json) is optional; one named
     * explicitly must exist, or a typo would silently keep old prices. */
    char def_override[CONF_PATH_MAX + 32];
    snprintf(def_override, sizeof(def_override), "%s/pricing.json",
             cf->data_dir);
    if (strcmp(cf->pricing_override, def_override) != 0 &&
        access(cf->pricing_override, R_OK) != 0) {
        fprintf(stderr, "tt-collector: pricing_override \"%s\": %s\n",
                cf->pricing_override, strerror(errno));
        log_error(NULL, "msg=\"cannot read pricing_override\" path=\"%s\"",
                  cf->pricing_override);
        return 1;
    }
    const char *pricing = col_pricing_path(cf);
    c.prices = price_load(pricing, cf->pricing_override, err, sizeof(err));
    if (c.prices == NULL) {
        log_error(NULL, "msg=\"cannot load price catalog\" error=\"%s\"", err);
        fprintf(stderr, "tt-collector: %s\n", err);
        return 1;
    }
    if (col_store_save_catalog(&c.store, c.prices) != SQLITE_OK)
        log_warn(NULL, "msg=\"cannot save the catalog in use\"");
    log_info(NULL, "msg=\"price catalog loaded\" file=\"%s\" entries=%d",
             pricing, price_count(c.prices));

    snprintf(path, sizeof(path), "%s/admin.key", cf->data_dir);
    int made = col_store_bootstrap_admin(&c.store, path);
    if (made < 0) {
        log_error(NULL, "msg=\"cannot create the admin key\"");
        return 1;
    }
    if (made == 1)
        log_info(NULL, "msg=\"admin key created\" file=\"%s\"", path);

    uint64_t generation = 0;
    if (getrandom(&generation, sizeof(generation), 0) !=
        (ssize_t)sizeof(generation))
        generation = (uint64_t)c.started_ms ^ ((uint64_t)getpid() << 40);
    generation &= 0x1fffffffffffffull; /* exact in JSON numbers */
    struct shm_params sp = {.nslots = (uint32_t)cf->live_slots,
                            .nseconds = (uint32_t)cf->live_seconds,
                            .hist_entries = (uint32_t)cf->live_hist_entries,
                            .feed_size = (uint32_t)cf->feed_size,
                            .ring_size = 1024,
                            .budget_slots = COL_BUDGET_MAX};
    int64_t now = proto_now_ms();
    c.live = live_open(cf->shm_name, &sp, generation,
                       now - (int64_t)cf->live_seconds * 1000);
    if (c.live == NULL) {
        log_error(NULL,
                  "msg=\"cannot create shared memory\" name=%s error=\"%s\"",
                  cf->shm_name, strerror(errno));
        return 1;
    }
    struct shm_header *h = live_header(c.live);
    h->started_ms = c.started_ms;
    h->pid = getpid();
    atomic_store(&h->health.db_ok, 1);
    live_on_close(c.live, col_on_close, &c);
    if (col_rebuild(&c, proto_now_ms()) != 0)
        log_warn(NULL, "msg=\"live rebuild incomplete\"");
    c.aggr = col_aggr_new();
    if (c.aggr == NULL || col_rebuild_rollups(&c) != 0) {
        log_error(NULL, "msg=\"cannot bring the rollups up to date\"");
        return 1;
    }
    col_budget_load(&c, proto_now_ms());
    char dbpath[CONF_PATH_MAX + 32];
    snprintf(dbpath, sizeof(dbpath), "%s/tokentap.db", cf->data_dir);
    if (col_alert_start(&c, dbpath,
                        col_q_int(c.store.db,
                                  "SELECT coalesce(max(seq), 0) FROM events", 0,
                                  NULL, 0)) != 0)
        log_warn(NULL, "msg=\"alert engine not started\"");
    /* Readers switch to the new segment only now that it holds the rebuilt
     * window: they never see it empty. */
    live_publish(c.live);
    log_info(NULL, "msg=\"collector started\" generation=%llu shm=%s",
             (unsigned long long)generation, cf->shm_name);

    int rc = col_serve(&c);
    col_alert_stop(&c);
    /* A heartbeat of 0 tells readers at once that this segment is done, so
     * they look for the next collector's instead of waiting to call it
     * stale. */
    atomic_store(&live_header(c.live)->health.heartbeat_ms, 0);
    col_checkpoint_stop();
    live_close(c.live);
    /* A clean stop removes the segment; readers keep their mapping (and
     * report it stale) until a new collector creates the next one. */
    shm_unlink(cf->shm_name);
    price_free(c.prices);
    col_aggr_free(c.aggr);
    col_budget_close(&c);
    col_store_close(&c.store);
    return rc;
}
