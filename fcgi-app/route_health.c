/*
 * route_health.c: /health, /healthz, /health/live and /health/ready.
 *
 * Liveness says only that this process answers.  Readiness checks each
 * component (the collector's heartbeat in shared memory, the database, the
 * segment itself, free disk space) and answers 503 naming what is wrong;
 * /health and /healthz give the same verdict in short.  None of them needs
 * a key, so load balancers and supervisors can call them.
 */
#include <config.h>

#include "api.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "proto.h"

/* The results of the checks. */
struct api_checks {
    const char *collector, *database, *shm, *disk;
    char collector_why[128], database_why[160], shm_why[96], disk_why[96];
    int ok;
    const struct shm_header *h;
    uint64_t disk_free;
};

/* Resident memory of a process in bytes (0 if unknown). */
static uint64_t api_rss(int pid)
{
    char path[64], line[256];
    uint64_t kb = 0;
    snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status",
             pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* Available system memory in bytes. */
static uint64_t api_mem_available(void)
{
    char line[256];
    uint64_t kb = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* Run every check. */
static void api_check(struct api_req *r, struct api_checks *c)
{
    memset(c, 0, sizeof(*c));
    c->ok = 1;
    c->collector = c->database = c->shm = c->disk = "ok";
    struct conf *cf = &r->t->g->conf;

    c->h = api_shm(r);
    if (c->h == NULL) {
        c->shm = c->collector = "down";
        snprintf(c->shm_why, sizeof(c->shm_why), "segment %s is missing",
                 cf->shm_name);
        snprintf(c->collector_why, sizeof(c->collector_why),
                 "no live segment: the collector has not started");
        c->ok = 0;
    } else {
        int64_t hb = atomic_load_explicit(
            &((struct shm_header *)c->h)->health.heartbeat_ms,
            memory_order_relaxed);
        int64_t age = r->now_ms - hb;
        if (age > cf->stale_after_ms || kill(c->h->pid, 0) != 0) {
            c->collector = "down";
            if (hb == 0)
                snprintf(c->collector_why, sizeof(c->collector_why),
                         "the collector (pid %d) stopped; no new one yet",
                         c->h->pid);
            else
                snprintf(c->collector_why, sizeof(c->collector_why),
                         "no heartbeat for %lld ms (pid %d)", (long long)age,
                         c->h->pid);
            c->ok = 0;
        }
        if (!atomic_load_explicit(&((struct shm_header *)c->h)->health.db_ok,
                                  memory_order_relaxed)) {
            c->database = "down";
            snprintf(c->database_why, sizeof(c->database_why),
                     "the last commit failed");
            c->ok = 0;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db, "SELECT max(version) FROM schema_version",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        c->database = "down";
        snprintf(c->database_why, sizeof(c->database_why), "%s",
                 sqlite3_errmsg(r->t->db));
        c->ok = 0;
    }
    sqlite3_finalize(st);
    struct statvfs vfs;
    if (statvfs(cf->data_dir, &vfs) == 0) {
        c->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        if (c->disk_free < (uint64_t)cf->disk_min_free_mb << 20) {
            c->disk = "down";
            snprintf(c->disk_why, sizeof(c->disk_why),
                     "%llu MB free, below disk_min_free_mb=%d",
                     (unsigned long long)(c->disk_free >> 20),
                     cf->disk_min_free_mb);
            c->ok = 0;
        }
    } else {
        c->disk = "down";
        snprintf(c->disk_why, sizeof(c->disk_why), "cannot stat the data dir");
        c->ok = 0;
    }
}

/* One component as {"status": ..., "error": ...}. */
static json_t *api_component(const char *status, const char *why)
{
    json_t *o = json_pack("{s:s}", "status", status);
    if (why[0])
        json_object_set_new(o, "error", json_string(why));
    return o;
}

/* The components object. */
static json_t *api_components(const struct api_checks *c)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "collector",
                     api_component(c->collector, c->collector_why), "database",
                     api_component(c->database, c->database_why), "shm",
                     api_component(c->shm, c->shm_why), "disk",
                     api_component(c->disk, c->disk_why));
}

int api_health(struct api_req *r)
{
    struct api_checks c;
    api_check(r, &c);
    json_t *o =
        json_pack("{s:s, s:s, s:o}", "status", c.ok ? "ok" : "down", "version",
                  PACKAGE_VERSION, "components", api_components(&c));
    return api_send_json(r, c.ok ? 200 : 503, o,
                         c.ok ? NULL : "Retry-After: 1\r\n");
}

int api_health_live(struct api_req *r)
{
    return api_send_json(
        r, 200,
        json_pack("{s:s, s:I}", "status", "alive", "uptime_s",
                  (json_int_t)((r->now_ms - r->t->g->started_ms) / 1000)),
        NULL);
}

int api_health_ready(struct api_req *r)
{
    struct api_checks c;
    api_check(r, &c);
    json_t *o =
        json_pack("{s:s, s:s, s:o}", "status", c.ok ? "ready" : "not_ready",
                  "version", PACKAGE_VERSION, "components", api_components(&c));
    json_t *mem =
        json_pack("{s:I, s:I}", "api_rss_bytes", (json_int_t)api_rss(0),
                  "system_available_bytes", (json_int_t)api_mem_available());
    json_object_set_new(o, "memory", mem);
    json_object_set_new(o, "disk_free_bytes",
                        json_integer((json_int_t)c.disk_free));
    if (c.h != NULL) {
        struct shm_header *h = (struct shm_header *)c.h;
        struct shm_health *hl = &h->health;
        json_object_set_new(
            o, "uptime_s",
            json_integer((json_int_t)((r->now_ms - h->started_ms) / 1000)));
        json_object_set_new(o, "generation",
                            json_integer((json_int_t)h->generation));
        json_object_set_new(
            o, "db_bytes",
            json_integer((json_int_t)atomic_load(&hl->db_bytes)));
        json_object_set_new(mem, "collector_rss_bytes",
                            json_integer((json_int_t)api_rss(h->pid)));
        json_object_set_new(
            o, "ingest",
            json_pack(
                "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                "events_stored", (json_int_t)atomic_load(&hl->events_stored),
                "events_duplicate",
                (json_int_t)atomic_load(&hl->events_duplicate), "commits",
                (json_int_t)atomic_load(&hl->commits), "last_commit_rows",
                (json_int_t)atomic_load(&hl->last_commit_rows), "rejected_busy",
                (json_int_t)atomic_load(&hl->rejected_busy), "rejected_failed",
                (json_int_t)atomic_load(&hl->rejected_fail), "queue_depth",
                (json_int_t)atomic_load(&hl->queue_depth),
                "unknown_model_events",
                (json_int_t)atomic_load(&hl->unknown_models), "live_dropped",
                (json_int_t)atomic_load(&hl->live_dropped), "histogram_dropped",
                (json_int_t)atomic_load(&hl->hist_dropped)));
        json_object_set_new(
            o, "alert_engine",
            json_pack("{s:I, s:I, s:I, s:f, s:f}", "rules",
                      (json_int_t)atomic_load(&hl->alert_rules), "passes",
                      (json_int_t)atomic_load(&hl->alert_passes), "cycles",
                      (json_int_t)atomic_load(&hl->alert_cycles),
                      "last_cycle_ms",
                      (double)atomic_load(&hl->alert_eval_us) / 1000.0,
                      "longest_cycle_ms",
                      (double)atomic_load(&hl->alert_max_us) / 1000.0));
    }
    return api_send_json(r, c.ok ? 200 : 503, o,
                         c.ok ? NULL : "Retry-After: 1\r\n");
}
