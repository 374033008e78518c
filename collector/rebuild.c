/*
 * rebuild.c: refill the live segment from SQLite when the collector starts.
 *
 * Three sources, in order: the all-time totals saved with every closed
 * second (live_totals); the saved seconds of the last hour (live_seconds),
 * replayed into the windows; and the events committed after the last saved
 * second (seq > meta.live_seq), which a crash left out of both and which
 * are added like fresh events.  Finally the feed gets the newest events.
 * The cost is bounded by the ring length, not by the number of events.
 */
#include "collector.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rollup.h"

/* Text of column i, "" for NULL. */
static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* Fill e from a row of COL_EVENT_COLS; strings point into the row. */
void col_row_event(sqlite3_stmt *st, struct live_event *e)
{
    memset(e, 0, sizeof(*e));
    e->workspace = col_text(st, 1);
    e->id = col_text(st, 2);
    e->ts_ms = sqlite3_column_int64(st, 3);
    e->received_ms = sqlite3_column_int64(st, 4);
    e->provider = col_text(st, 5);
    e->model = col_text(st, 6);
    e->operation = col_text(st, 7);
    for (int t = 0; t < SHM_TOK_N; t++)
        e->tokens[t] = sqlite3_column_int64(st, 8 + t);
    e->cost_nusd = llround(sqlite3_column_double(st, 13) * 1e9);
    e->latency_ms = sqlite3_column_type(st, 14) == SQLITE_NULL
                        ? -1
                        : sqlite3_column_double(st, 14);
    e->ttft_ms = sqlite3_column_type(st, 15) == SQLITE_NULL
                     ? -1
                     : sqlite3_column_double(st, 15);
    e->status = sqlite3_column_int(st, 16);
    e->error_type = col_text(st, 17);
    e->is_error = sqlite3_column_int(st, 18);
    e->user = col_text(st, 19);
    e->agent = col_text(st, 20);
    e->session = col_text(st, 21);
    e->round = sqlite3_column_type(st, 22) == SQLITE_NULL
                   ? -1
                   : sqlite3_column_int(st, 22);
    e->request_id = col_text(st, 23);
    e->flags = (e->is_error ? EV_F_ERROR : 0) |
               (e->latency_ms >= 0 ? EV_F_LATENCY : 0) |
               (e->ttft_ms >= 0 ? EV_F_TTFT : 0) |
               (sqlite3_column_type(st, 16) != SQLITE_NULL ? EV_F_STATUS : 0) |
               (e->round >= 0 ? EV_F_ROUND : 0);
}

/* Prepare a statement on the collector's database or log why not. */
static sqlite3_stmt *col_query(struct col *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->store.db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error(NULL, "msg=\"rebuild query failed\" error=\"%s\"",
                  sqlite3_errmsg(c->store.db));
        return NULL;
    }
    return st;
}

int col_rebuild(struct col *c, int64_t now_ms)
{
    sqlite3_stmt *st;
    int64_t seconds = 0, tail = 0, totals = 0;

    c->persist = 0;
    st = col_query(c, "SELECT kind, workspace, provider, model, data "
                      "FROM live_totals");
    if (st == NULL)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct shm_agg a;
        if (sqlite3_column_bytes(st, 4) != (int)sizeof(a))
            continue;
        memcpy(&a, sqlite3_column_blob(st, 4), sizeof(a));
        live_set_total(c->live, sqlite3_column_int(st, 0), col_text(st, 1),
                       col_text(st, 2), col_text(st, 3), &a);
        totals++;
    }
    sqlite3_finalize(st);

    c->live_seq = 0;
    st = col_query(c, "SELECT value FROM meta WHERE key = 'live_seq'");
    if (st == NULL)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        c->live_seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);

    st = col_query(c, "SELECT sec, data FROM live_seconds WHERE sec >= ? "
                      "ORDER BY sec");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, live_open_sec(c->live));
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (live_inject(c->live, sqlite3_column_int64(st, 0),
                        sqlite3_column_blob(st, 1),
                        (size_t)sqlite3_column_bytes(st, 1)) != 0)
            log_warn(NULL, "msg=\"skipped a damaged live second\" sec=%lld",
                     (long long)sqlite3_column_int64(st, 0));
        seconds++;
    }
    sqlite3_finalize(st);

    /* From here on, closed seconds are saved again. */
    c->persist = 1;
    st = col_query(c, "SELECT " COL_EVENT_COLS "WHERE e.seq > ? "
                      "ORDER BY e.seq");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, c->live_seq);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct live_event e;
        col_row_event(st, &e);
        live_add(c->live, &e);
        c->live_seq = sqlite3_column_int64(st, 0);
        tail++;
    }
    sqlite3_finalize(st);

    /* The feed: the newest events, written oldest first. */
    st = col_query(c, "SELECT * FROM (SELECT " COL_EVENT_COLS
                      "ORDER BY e.seq DESC LIMIT ?) ORDER BY seq");
    if (st == NULL)
        return -1;
    sqlite3_bind_int(st, 1, c->conf.feed_size);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct live_event e;
        col_row_event(st, &e);
        live_feed(c->live, &e);
    }
    sqlite3_finalize(st);

    live_tick(c->live, now_ms);
    log_info(NULL,
             "msg=\"live window rebuilt\" totals=%lld seconds=%lld "
             "tail_events=%lld live_seq=%lld",
             (long long)totals, (long long)seconds, (long long)tail,
             (long long)c->live_seq);
    return 0;
}

int col_rebuild_rollups(struct col *c)
{
    int64_t added = 0;
    /* Read in slices so each flush commits a bounded amount of work and a
     * long catch-up (an upgrade from a database without rollups) makes
     * progress that survives a stop.  Each slice starts at the watermark
     * in the database: an event the aggregator could not count stops the
     * counting (col_aggr_add ignores events while a re-read is pending),
     * and the next slice reads on from the last one counted. */
    for (;;) {
        int64_t n = 0, seq = rollup_seq(c->store.db), last = seq;
        if (seq < 0)
            goto fail;
        col_aggr_set_flushed(c->aggr, seq);
        col_aggr_rescan_done(c->aggr);
        sqlite3_stmt *st =
            col_query(c, "SELECT " COL_EVENT_COLS "WHERE e.seq > ? "
                         "ORDER BY e.seq LIMIT 200000");
        if (st == NULL)
            goto fail;
        sqlite3_bind_int64(st, 1, seq);
        while (sqlite3_step(st) == SQLITE_ROW) {
            struct live_event e;
            col_row_event(st, &e);
            last = sqlite3_column_int64(st, 0);
            col_aggr_add(c->aggr, sqlite3_column_int64(st, 24), &e, last);
            n++;
        }
        sqlite3_finalize(st);
        if (n == 0)
            break;
        if (col_aggr_flush(c, proto_now_ms()) != 0)
            goto fail;
        /* A slice that could not count even its first event. */
        if (col_aggr_rescan_needed(c->aggr) && rollup_seq(c->store.db) == seq)
            goto fail;
        added += n;
        log_info(NULL, "msg=\"rollups catching up\" events=%lld seq=%lld",
                 (long long)added, (long long)last);
    }
    if (added > 0)
        log_info(NULL, "msg=\"rollups up to date\" events=%lld",
                 (long long)added);
    return 0;
fail:
    /* The rest is read at the next try. */
    col_aggr_rescan_ask(c->aggr);
    return -1;
}
