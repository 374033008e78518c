/*
 * budget.c: budget periods, thresholds, scopes and spend cells (budget.h).
 *
 * Periods are computed with the C library's UTC calendar (gmtime_r and
 * timegm), so month lengths and leap years come from one place.  Spend
 * cells come from two reads of one snapshot: the day rows of the model
 * cube, which index (ws, cube, res, ts) makes a range scan, and the raw
 * events after meta.rollup_seq, a rowid range scan ("+" keeps SQLite from
 * trading it for the (ws, ts) index, which would walk a whole period).
 */
#include "budget.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollup.h"

int budget_period_parse(const char *s)
{
    if (s == NULL)
        return BUDGET_NONE;
    if (strcmp(s, "day") == 0)
        return BUDGET_DAY;
    if (strcmp(s, "month") == 0)
        return BUDGET_MONTH;
    return BUDGET_NONE;
}

const char *budget_period_name(int period)
{
    switch (period) {
    case BUDGET_DAY:
        return "day";
    case BUDGET_MONTH:
        return "month";
    default:
        return "?";
    }
}

/* Floor of ms to its UTC day. */
static int64_t budget_day_floor(int64_t ms)
{
    int64_t r = ms % BUDGET_DAY_MS;
    return ms - (r < 0 ? r + BUDGET_DAY_MS : r);
}

void budget_period_bounds(int period, int64_t ms, int64_t *start, int64_t *end)
{
    int64_t day = budget_day_floor(ms);
    if (period != BUDGET_MONTH) {
        *start = day;
        *end = day + BUDGET_DAY_MS;
        return;
    }
    time_t t = (time_t)(day / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    *start = (int64_t)timegm(&tm) * 1000;
    tm.tm_mon++; /* timegm normalizes December + 1 to next January */
    *end = (int64_t)timegm(&tm) * 1000;
}

int budget_thresholds_parse(const char *s, int *out)
{
    int n = 0;
    const char *p = s;
    if (s == NULL || *s == '\0')
        return -1;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 1 || v > BUDGET_MAX_PCT ||
            n == BUDGET_MAX_THRESHOLDS || (n > 0 && v <= out[n - 1]))
            return -1;
        out[n++] = (int)v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

void budget_thresholds_format(const int *t, int n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "",
                                 t[i]);
}

int budget_crossed(int64_t spend_nusd, int64_t limit_nusd, int pct)
{
    /* 128 bits: spend * 100 may pass int64 near the largest limits. */
    return (__int128)spend_nusd * 100 >= (__int128)limit_nusd * pct;
}

int budget_scope_match(const char *bprov, const char *bmodel,
                       const char *provider, const char *model)
{
    return (bprov[0] == '\0' || strcmp(bprov, provider) == 0) &&
           (bmodel[0] == '\0' || strcmp(bmodel, model) == 0);
}

/* Append one cell from a row (provider, model, day, nusd). */
static int budget_cell_add(struct budget_cells *c, sqlite3_stmt *st)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct budget_cell *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return SQLITE_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    struct budget_cell *e = &c->v[c->n++];
    const char *p = (const char *)sqlite3_column_text(st, 0);
    const char *m = (const char *)sqlite3_column_text(st, 1);
    snprintf(e->provider, sizeof(e->provider), "%s", p ? p : "");
    snprintf(e->model, sizeof(e->model), "%s", m ? m : "");
    e->day_ms = sqlite3_column_int64(st, 2);
    e->nusd = sqlite3_column_int64(st, 3);
    return SQLITE_OK;
}

/* Run one cell query with ?1 ws, ?2 from, ?3 to, ?4 rollup_seq (a query
 * without ?4 ignores it). */
static int budget_cells_query(sqlite3 *db, const char *sql, int64_t ws,
                              int64_t from_ms, int64_t to_ms,
                              struct budget_cells *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, from_ms);
    sqlite3_bind_int64(st, 3, to_ms);
    sqlite3_bind_int64(st, 4, out->rollup_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = budget_cell_add(out, st)) != SQLITE_OK)
            break;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int budget_cells_load(struct sqlite3 *db, int64_t ws, int64_t from_ms,
                      int64_t to_ms, struct budget_cells *out)
{
    char sql[512];
    out->rollup_seq = rollup_seq(db);
    if (out->rollup_seq < 0)
        return SQLITE_ERROR;
    snprintf(sql, sizeof(sql),
             "SELECT provider, model, ts, sum(cost_nusd) FROM rollups "
             "WHERE ws = ?1 AND cube = %d AND res = %d AND ts >= ?2 AND "
             "ts < ?3 GROUP BY provider, model, ts",
             ROLLUP_MODEL, ROLLUP_RES_DAY);
    int rc = budget_cells_query(db, sql, ws, from_ms, to_ms, out);
    if (rc != SQLITE_OK)
        return rc;
    /* The floor of ts to its day, also for (theoretical) negative ts. */
    return budget_cells_query(
        db,
        "SELECT provider, model, ts - ((ts % 86400000) + 86400000) % "
        "86400000 AS day, sum(CAST(round(cost_usd * 1e9) AS INTEGER)) "
        "FROM events WHERE seq > ?4 AND +ws = ?1 AND +ts >= ?2 AND "
        "+ts < ?3 GROUP BY provider, model, day",
        ws, from_ms, to_ms, out);
}

int64_t budget_cells_sum(const struct budget_cells *c, const char *bprov,
                         const char *bmodel, int64_t from_ms, int64_t to_ms)
{
    int64_t sum = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct budget_cell *e = &c->v[i];
        if (e->day_ms >= from_ms && e->day_ms < to_ms &&
            budget_scope_match(bprov, bmodel, e->provider, e->model))
            sum += e->nusd;
    }
    return sum;
}

void budget_cells_free(struct budget_cells *c)
{
    free(c->v);
    memset(c, 0, sizeof(*c));
}
