/*
 * budget.c: the collector's budget tracker.
 *
 * The tracker keeps, for every budget of every workspace, the spend of its
 * current UTC period (common/budget.h), and publishes it to the budget
 * slots of the live segment so that GET /api/v1/budgets/status costs a few
 * copies.  Its state is rebuilt from the database, never saved:
 *
 *   load    at start and after every budget.set command: the budgets
 *           table, each period's spend from the day rollups plus the raw
 *           events after meta.rollup_seq (budget_cells_load), and the
 *           thresholds already crossed this period (budget_crossings);
 *   event   every committed event adds its cost to the budgets of its
 *           workspace whose period holds its ts and whose scope it matches
 *           (col_budget_event, called by the group commit after COMMIT);
 *   tick    once a second: a budget whose period ended starts the next one
 *           with that period's spend read again from the database (events
 *           dated in the future may already be there), and crossings found
 *           since the last tick are written.
 *
 * A threshold is crossed when spend * 100 >= pct * limit.  A crossing is
 * recorded once per budget, period and threshold: the tracker marks it at
 * once (so it is found once), queues it, and the next tick inserts the
 * queue into budget_crossings in a small transaction of its own; only rows
 * that this insert created are then published to the event ring
 * (SHM_RING_BUDGET), so a restart, which reloads the marks from the table,
 * never publishes a crossing twice, and a crash before the insert finds the
 * crossing again when it reloads.  A crossing therefore reaches the ring at
 * most about a second after the commit that caused it.  A row recorded
 * under another limit (the budget was changed since) does not count: a new
 * limit re-arms the thresholds of the current period.
 *
 * Single-threaded: only the collector's loop calls these.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "log.h"

/* One budget as the tracker keeps it. */
struct col_budget {
    int64_t id;
    int64_t ws;                     /* workspaces.id */
    char workspace[72];             /* its name */
    int period;                     /* enum budget_period */
    char provider[EV_MAX_NAME + 1]; /* "" = any */
    char model[EV_MAX_NAME + 1];    /* "" = any */
    int64_t limit_nusd;
    int thr[BUDGET_MAX_THRESHOLDS]; /* ascending percentages */
    int nthr;
    int64_t start_ms, end_ms; /* the current period */
    int64_t spend_nusd;       /* its spend so far */
    uint32_t crossed;         /* bit i: thr[i] crossed (recorded or queued) */
};

/* A crossing found but not yet written. */
struct col_crossing {
    int64_t budget, start_ms, end_ms, ts_ms, spend_nusd, limit_nusd;
    int threshold, period;
    char workspace[72];
    char provider[EV_MAX_NAME + 1];
    char model[EV_MAX_NAME + 1];
};

struct col_budgets {
    struct col_budget *b; /* sorted by workspace name, then id */
    uint32_t n;
    struct col_crossing *q; /* found since the last write */
    uint32_t nq, qcap;
    char last_ws[72]; /* the workspace of the last event ... */
    uint32_t first;   /* ... and its budgets: b[first, first + count) */
    uint32_t count;
};

/* Queue a crossing of threshold i of budget b at now. */
static void col_budget_queue(struct col_budgets *bs, const struct col_budget *b,
                             int i, int64_t now)
{
    if (bs->nq == bs->qcap) {
        uint32_t cap = bs->qcap ? bs->qcap * 2 : 16;
        struct col_crossing *q = realloc(bs->q, cap * sizeof(*q));
        if (q == NULL) {
            log_error(NULL,
                      "msg=\"budget crossing not queued: out of "
                      "memory\" budget=%lld threshold=%d",
                      (long long)b->id, b->thr[i]);
            return;
        }
        bs->q = q;
        bs->qcap = cap;
    }
    struct col_crossing *x = &bs->q[bs->nq++];
    x->budget = b->id;
    x->start_ms = b->start_ms;
    x->end_ms = b->end_ms;
    x->ts_ms = now;
    x->spend_nusd = b->spend_nusd;
    x->limit_nusd = b->limit_nusd;
    x->threshold = b->thr[i];
    x->period = b->period;
    memcpy(x->workspace, b->workspace, sizeof(x->workspace));
    memcpy(x->provider, b->provider, sizeof(x->provider));
    memcpy(x->model, b->model, sizeof(x->model));
}

/* Mark and queue every threshold b's spend reached that is not marked. */
static void col_budget_check(struct col_budgets *bs, struct col_budget *b,
                             int64_t now)
{
    for (int i = 0; i < b->nthr; i++) {
        if ((b->crossed & (1u << i)) ||
            !budget_crossed(b->spend_nusd, b->limit_nusd, b->thr[i]))
            continue;
        b->crossed |= 1u << i;
        col_budget_queue(bs, b, i, now);
    }
}

/* Copy budget i to its live slot (slot i). */
static void col_budget_show(struct col *c, uint32_t i, int64_t now)
{
    if (c->live == NULL)
        return;
    const struct col_budget *b = &c->budgets->b[i];
    struct shm_budget v;
    memset(&v, 0, sizeof(v));
    v.id = b->id;
    v.period_start_ms = b->start_ms;
    v.period_end_ms = b->end_ms;
    v.spend_nusd = b->spend_nusd;
    v.limit_nusd = b->limit_nusd;
    v.as_of_ms = now;
    v.crossed = b->crossed;
    v.period = (uint32_t)b->period;
    memcpy(v.workspace, b->workspace, sizeof(v.workspace));
    shm_budget_write(live_header(c->live), i, &v);
}

/* Mark the thresholds of b already recorded for its current period under
 * its current limit. */
static int col_budget_marks(sqlite3 *db, struct col_budget *b)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT threshold FROM budget_crossings "
                                "WHERE budget = ? AND period_start_ms = ? "
                                "AND limit_nusd = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, b->id);
    sqlite3_bind_int64(st, 2, b->start_ms);
    sqlite3_bind_int64(st, 3, b->limit_nusd);
    b->crossed = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int t = sqlite3_column_int(st, 0);
        for (int i = 0; i < b->nthr; i++)
            if (b->thr[i] == t)
                b->crossed |= 1u << i;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Read the spend and marks of budgets b[from, to) (one workspace) for the
 * periods holding now. */
static int col_budget_refresh(struct col *c, uint32_t from, uint32_t to,
                              int64_t now)
{
    struct col_budgets *bs = c->budgets;
    sqlite3 *db = c->store.db;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (uint32_t i = from; i < to; i++) {
        struct col_budget *b = &bs->b[i];
        budget_period_bounds(b->period, now, &b->start_ms, &b->end_ms);
        lo = b->start_ms < lo ? b->start_ms : lo;
        hi = b->end_ms > hi ? b->end_ms : hi;
    }
    struct budget_cells cells;
    memset(&cells, 0, sizeof(cells));
    int rc = budget_cells_load(db, bs->b[from].ws, lo, hi, &cells);
    for (uint32_t i = from; rc == SQLITE_OK && i < to; i++) {
        struct col_budget *b = &bs->b[i];
        b->spend_nusd = budget_cells_sum(&cells, b->provider, b->model,
                                         b->start_ms, b->end_ms);
        rc = col_budget_marks(db, b);
        col_budget_check(bs, b, now);
        col_budget_show(c, i, now);
    }
    budget_cells_free(&cells);
    return rc;
}

/* Fill b from a row of the load query. */
static int col_budget_row(sqlite3_stmt *st, struct col_budget *b)
{
    memset(b, 0, sizeof(*b));
    b->id = sqlite3_column_int64(st, 0);
    b->ws = sqlite3_column_int64(st, 1);
    snprintf(b->workspace, sizeof(b->workspace), "%s",
             (const char *)sqlite3_column_text(st, 2));
    b->period = budget_period_parse((const char *)sqlite3_column_text(st, 3));
    snprintf(b->provider, sizeof(b->provider), "%s",
             (const char *)sqlite3_column_text(st, 4));
    snprintf(b->model, sizeof(b->model), "%s",
             (const char *)sqlite3_column_text(st, 5));
    b->limit_nusd = sqlite3_column_int64(st, 6);
    b->nthr = budget_thresholds_parse((const char *)sqlite3_column_text(st, 7),
                                      b->thr);
    if (b->period == BUDGET_NONE || b->nthr < 0 || b->limit_nusd <= 0) {
        log_warn(NULL, "msg=\"budget skipped: invalid row\" id=%lld",
                 (long long)b->id);
        return -1;
    }
    return 0;
}

/* Read the budgets table into a new array (sorted by workspace name). */
static int col_budget_read(sqlite3 *db, struct col_budget **out, uint32_t *n)
{
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT b.id, b.ws, w.name, b.period, b.provider, b.model, "
        "b.limit_nusd, b.thresholds FROM budgets b JOIN workspaces w ON "
        "w.id = b.ws ORDER BY w.name, b.id",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == COL_BUDGET_MAX)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct col_budget *b = realloc(*out, cap * sizeof(*b));
            if (b == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            *out = b;
        }
        if (col_budget_row(st, &(*out)[*n]) == 0)
            (*n)++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void col_budget_close_alerts(struct col *c, const struct col_budget *b,
                                    int64_t now);

int col_budget_load(struct col *c, int64_t now)
{
    struct col_budgets *bs = c->budgets;
    if (bs == NULL) {
        bs = c->budgets = calloc(1, sizeof(*bs));
        if (bs == NULL)
            return -1;
    }
    struct col_budget *b;
    uint32_t n;
    sqlite3 *db = c->store.db;
    /* One snapshot for every read below. */
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = col_budget_read(db, &b, &n);
    if (rc != SQLITE_OK) {
        log_error(NULL, "msg=\"cannot load budgets\" error=\"%s\"",
                  sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    free(bs->b);
    bs->b = b;
    bs->n = n;
    bs->last_ws[0] = '\0';
    bs->count = 0;
    for (uint32_t i = 0; rc == SQLITE_OK && i < n;) {
        uint32_t j = i + 1;
        while (j < n && b[j].ws == b[i].ws)
            j++;
        rc = col_budget_refresh(c, i, j, now);
        i = j;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (c->live != NULL)
        shm_budget_trim(live_header(c->live), n);
    if (rc != SQLITE_OK) {
        log_error(NULL, "msg=\"cannot read budget spend\" error=\"%s\"",
                  sqlite3_errstr(rc));
        return -1;
    }
    /* Alerts of periods that ended while no collector ran. */
    for (uint32_t k = 0; k < c->budgets->n; k++)
        col_budget_close_alerts(c, &c->budgets->b[k], now);
    log_info(NULL, "msg=\"budgets loaded\" budgets=%u", n);
    return 0;
}

/* Point the cache at the budgets of workspace ws. */
static void col_budget_find(struct col_budgets *bs, const char *ws)
{
    if (bs->last_ws[0] != '\0' && strcmp(bs->last_ws, ws) == 0)
        return;
    uint32_t lo = 0, hi = bs->n;
    while (lo < hi) { /* the first budget whose workspace >= ws */
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(bs->b[mid].workspace, ws) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    bs->first = lo;
    bs->count = 0;
    while (lo + bs->count < bs->n &&
           strcmp(bs->b[lo + bs->count].workspace, ws) == 0)
        bs->count++;
    snprintf(bs->last_ws, sizeof(bs->last_ws), "%s", ws);
}

void col_budget_event(struct col *c, const struct live_event *e)
{
    struct col_budgets *bs = c->budgets;
    if (bs == NULL || bs->n == 0 || e->cost_nusd == 0)
        return;
    col_budget_find(bs, e->workspace);
    int64_t now = 0;
    for (uint32_t i = bs->first; i < bs->first + bs->count; i++) {
        struct col_budget *b = &bs->b[i];
        if (e->ts_ms < b->start_ms || e->ts_ms >= b->end_ms ||
            !budget_scope_match(b->provider, b->model, e->provider, e->model))
            continue;
        if (now == 0)
            now = proto_now_ms();
        b->spend_nusd += e->cost_nusd;
        col_budget_check(bs, b, now);
        col_budget_show(c, i, now);
    }
}

/* Publish a written crossing to the event ring. */
static void col_budget_ring(struct col *c, const struct col_crossing *x)
{
    char start[40], end[40], ts[40];
    ev_format_rfc3339(x->start_ms, start, sizeof(start));
    ev_format_rfc3339(x->end_ms, end, sizeof(end));
    ev_format_rfc3339(x->ts_ms, ts, sizeof(ts));
    json_t *scope =
        json_pack("{s:o, s:o}", "provider",
                  x->provider[0] ? json_string(x->provider) : json_null(),
                  "model", x->model[0] ? json_string(x->model) : json_null());
    json_t *o = json_pack(
        "{s:s, s:I, s:s, s:s, s:o, s:i, s:f, s:f, s:f, s:s, s:s, s:s}", "type",
        "budget.threshold_crossed", "budget", (json_int_t)x->budget,
        "workspace", x->workspace, "period", budget_period_name(x->period),
        "scope", scope, "threshold", x->threshold, "spend_usd",
        (double)x->spend_nusd / 1e9, "limit_usd", (double)x->limit_nusd / 1e9,
        "percent_used", (double)x->spend_nusd * 100.0 / (double)x->limit_nusd,
        "period_start", start, "period_end", end, "ts", ts);
    char *text =
        o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (text == NULL) {
        log_error(NULL, "msg=\"budget crossing not published: out of memory\"");
        return;
    }
    if (c->live != NULL)
        live_ring_publish(c->live, SHM_RING_BUDGET, x->workspace, text,
                          strlen(text), x->ts_ms);
    free(text);
}

/* Insert one queued crossing; returns 1 when the row is new, 0 when it was
 * there, -1 on error. */
static int col_budget_insert(sqlite3_stmt *st, const struct col_crossing *x)
{
    sqlite3_bind_int64(st, 1, x->budget);
    sqlite3_bind_int64(st, 2, x->start_ms);
    sqlite3_bind_int(st, 3, x->threshold);
    sqlite3_bind_int64(st, 4, x->ts_ms);
    sqlite3_bind_int64(st, 5, x->spend_nusd);
    sqlite3_bind_int64(st, 6, x->limit_nusd);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(st)) > 0;
}

/* The severity of a budget alert at threshold pct: 100 and over
 * critical, 95 high, 80 medium, below that low. */
static const char *col_budget_severity(int pct)
{
    return pct >= 100  ? "critical"
           : pct >= 95 ? "high"
           : pct >= 80 ? "medium"
                       : "low";
}

/* The alert of crossing x, one per budget and period (rule_id is minus the
 * budget's id): opened firing by its first crossing, raised in severity by
 * later ones.  Inside the caller's transaction; returns the alert's id
 * when it was opened or raised, 0 when not, -1 on error. */
static int64_t col_budget_alert(sqlite3 *db, const struct col_crossing *x,
                                int *opened)
{
    char key[96], name[EV_MAX_NAME * 2 + 96], scope[EV_MAX_NAME * 2 + 8];
    snprintf(key, sizeof(key), "budget=%lld\x1fperiod=%lld",
             (long long)x->budget, (long long)x->start_ms);
    snprintf(scope, sizeof(scope), "%s%s%s", x->provider,
             x->provider[0] && x->model[0] ? "/" : "", x->model);
    snprintf(name, sizeof(name), "%s budget%s%s: %d%% used",
             x->period == BUDGET_DAY ? "Daily" : "Monthly", scope[0] ? " " : "",
             scope, x->threshold);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO alerts(ws, rule_id, rule_name, severity, group_key, "
            "group_json, status, started_ms, fired_ms, values_json, "
            "last_notified_ms, updated_ms) SELECT b.ws, -b.id, ?2, ?3, ?4, "
            "json_object('budget', b.id, 'period', b.period, 'period_start', "
            "strftime('%Y-%m-%dT%H:%M:%fZ', ?5 / 1000.0, 'unixepoch')), "
            "'firing', ?6, ?6, json_array(json_object('metric', "
            "'budget_used_percent', 'operator', '>=', 'threshold', ?7, "
            "'value', ?8, 'holds', json('true'))), ?6, ?6 FROM budgets b "
            "WHERE b.id = ?1 ON CONFLICT(rule_id, group_key) WHERE status IN "
            "('pending', 'firing', 'acknowledged') DO UPDATE SET rule_name = "
            "excluded.rule_name, severity = excluded.severity, values_json = "
            "excluded.values_json, status = 'firing', updated_ms = "
            "excluded.updated_ms WHERE instr('lowmediumhighcritical', "
            "excluded.severity) > instr('lowmediumhighcritical', severity) "
            "RETURNING id, fired_ms = ?6",
            -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, x->budget);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, col_budget_severity(x->threshold), -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 4, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, x->start_ms);
    sqlite3_bind_int64(st, 6, x->ts_ms);
    sqlite3_bind_int(st, 7, x->threshold);
    sqlite3_bind_double(st, 8,
                        (double)x->spend_nusd * 100.0 / (double)x->limit_nusd);
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    *opened = rc == SQLITE_ROW && sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -1;
    if (id > 0 &&
        sqlite3_prepare_v2(db,
                           "INSERT INTO alert_events(alert_id, ts_ms, kind, "
                           "actor, values_json) SELECT id, ?2, ?3, 'budget', "
                           "values_json FROM alerts WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, x->ts_ms);
        sqlite3_bind_text(st, 3, *opened ? "firing" : "escalated", -1,
                          SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        /* Notified by the workspace's route for the severity (budget
         * alerts have no rule): opened and raised alike. */
        if (rc == SQLITE_DONE &&
            col_notify_enqueue(db, id, "firing", x->ts_ms) != 0)
            rc = SQLITE_ERROR;
        if (rc != SQLITE_DONE)
            return -1;
    }
    return id;
}

int col_budget_flush(struct col *c)
{
    struct col_budgets *bs = c->budgets;
    if (bs == NULL || bs->nq == 0)
        return 0;
    sqlite3 *db = c->store.db;
    sqlite3_stmt *st = NULL;
    /* A row under another limit is from before the budget changed: the
     * crossing under the new limit replaces it. */
    int rc = col_store_begin(&c->store);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db,
            "INSERT INTO budget_crossings VALUES(?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(budget, period_start_ms, threshold) DO UPDATE SET "
            "ts_ms = excluded.ts_ms, spend_nusd = excluded.spend_nusd, "
            "limit_nusd = excluded.limit_nusd "
            "WHERE limit_nusd != excluded.limit_nusd",
            -1, &st, NULL);
    uint8_t *fresh = calloc(bs->nq, 1);
    int64_t *alert = calloc(bs->nq, sizeof(*alert));
    int *opened = calloc(bs->nq, sizeof(*opened));
    for (uint32_t i = 0; rc == SQLITE_OK && i < bs->nq; i++) {
        int r =
            fresh && alert && opened ? col_budget_insert(st, &bs->q[i]) : -1;
        /* A new crossing opens or raises the budget's alert. */
        if (r > 0 &&
            (alert[i] = col_budget_alert(db, &bs->q[i], &opened[i])) < 0)
            r = -1;
        if (r < 0)
            rc = SQLITE_ERROR;
        else
            fresh[i] = (uint8_t)r;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = col_store_commit(&c->store);
    if (rc != SQLITE_OK) {
        log_warn(NULL,
                 "msg=\"budget crossings not written, will retry\" "
                 "count=%u error=\"%s\"",
                 bs->nq, sqlite3_errmsg(db));
        col_store_rollback(&c->store);
        free(fresh);
        free(alert);
        free(opened);
        return -1;
    }
    for (uint32_t i = 0; i < bs->nq; i++) {
        const struct col_crossing *x = &bs->q[i];
        log_info(NULL,
                 "msg=\"budget threshold crossed\" budget=%lld "
                 "workspace=%s threshold=%d spend_nusd=%lld limit_nusd=%lld "
                 "new=%d",
                 (long long)x->budget, x->workspace, x->threshold,
                 (long long)x->spend_nusd, (long long)x->limit_nusd, fresh[i]);
        if (fresh[i])
            col_budget_ring(c, x);
        if (fresh[i] && alert[i] > 0)
            col_alert_publish(c, opened[i] ? "alert.firing" : "alert.escalated",
                              alert[i], x->workspace, x->ts_ms);
    }
    free(fresh);
    free(alert);
    free(opened);
    bs->nq = 0;
    return 0;
}

/* Resolve budget b's open alerts of periods other than its current one
 * (b->start_ms): its spend starts again with each period. */
static void col_budget_close_alerts(struct col *c, const struct col_budget *b,
                                    int64_t now)
{
    sqlite3 *db = c->store.db;
    sqlite3_stmt *st;
    if (col_store_begin(&c->store) != SQLITE_OK)
        return;
    int ok = sqlite3_prepare_v2(
                 db,
                 "UPDATE alerts SET status = 'resolved', resolved_ms = ?2, "
                 "resolved_by = 'budget', updated_ms = ?2 WHERE rule_id = ?1 "
                 "AND status IN ('pending', 'firing', 'acknowledged') AND "
                 "group_key != ?3 RETURNING id",
                 -1, &st, NULL) == SQLITE_OK;
    int64_t ids[16];
    int n = 0, rc = SQLITE_DONE;
    char key[96];
    snprintf(key, sizeof(key), "budget=%lld\x1fperiod=%lld", (long long)b->id,
             (long long)b->start_ms);
    if (ok) {
        sqlite3_bind_int64(st, 1, -b->id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (n < 16)
                ids[n++] = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    for (int i = 0; ok && rc == SQLITE_DONE && i < n; i++) {
        rc = col_alert_note(db, ids[i], now, "resolved", "budget",
                            "the budget period ended");
        if (rc == SQLITE_DONE &&
            col_notify_enqueue(db, ids[i], "resolved", now) != 0)
            rc = SQLITE_ERROR;
    }
    if (!ok || rc != SQLITE_DONE || col_store_commit(&c->store) != SQLITE_OK) {
        col_store_rollback(&c->store);
        return;
    }
    for (int i = 0; i < n; i++)
        col_alert_publish(c, "alert.resolved", ids[i], b->workspace, now);
}

void col_budget_tick(struct col *c, int64_t now)
{
    struct col_budgets *bs = c->budgets;
    if (bs == NULL)
        return;
    for (uint32_t i = 0; i < bs->n; i++) {
        struct col_budget *b = &bs->b[i];
        if (now >= b->start_ms && now < b->end_ms)
            continue;
        /* Each budget whose period ended reads its new period alone: it
         * happens once a day per budget and costs one day of cells. */
        int64_t start = b->start_ms;
        if (col_budget_refresh(c, i, i + 1, now) != SQLITE_OK)
            log_warn(NULL, "msg=\"budget period not refreshed\" budget=%lld",
                     (long long)b->id);
        else
            log_info(NULL,
                     "msg=\"budget period started\" budget=%lld "
                     "previous_start_ms=%lld start_ms=%lld spend_nusd=%lld",
                     (long long)b->id, (long long)start, (long long)b->start_ms,
                     (long long)b->spend_nusd);
        col_budget_close_alerts(c, b, now);
    }
    col_budget_flush(c);
}

void col_budget_close(struct col *c)
{
    struct col_budgets *bs = c->budgets;
    if (bs == NULL)
        return;
    free(bs->b);
    free(bs->q);
    free(bs);
    c->budgets = NULL;
}
