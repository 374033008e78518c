/*
 * route_budgets.c: budgets of the key's workspace.
 *
 *   GET /api/v1/budgets           the budget set
 *   PUT /api/v1/budgets           replace it (admin; collector command
 *                                 budget.set, which validates)
 *   GET /api/v1/budgets/status    spend of the current period, percent,
 *                                 remaining, linear projection, thresholds
 *   GET /api/v1/budgets/history   spend per UTC day against the limit
 *
 * Status reads the spend from the live segment's budget slots, which the
 * collector's tracker keeps current with every commit; a budget without a
 * current slot (no collector, or its period just began) is computed from
 * the day rollups plus the raw events after them instead, in one read
 * transaction (snapshot.c).  History always reads the rollups that way.
 * Budget arithmetic (periods, scopes, cells) is common/budget.c, shared
 * with the tracker, so both sides count the same events.
 */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "event.h"

/* Days a history answer covers at most. */
#define API_HISTORY_DAYS 400

/* One row of the budgets table. */
struct api_budget {
    int64_t id;
    int period;
    const char *provider, *model; /* arena copies; "" = any */
    int64_t limit_nusd;
    int thr[BUDGET_MAX_THRESHOLDS];
    int nthr;
    int64_t created_ms, updated_ms;
};

/* Read the budgets of workspace ws (ordered by id) into the arena; *out
 * gets them.  Returns their count, or -1 on a database error. */
static int api_budgets_read(struct api_req *r, int64_t ws,
                            struct api_budget **out)
{
    sqlite3_stmt *st;
    int cap = 16, n = 0;
    *out = arena_alloc(r->arena, (size_t)cap * sizeof(**out));
    if (*out == NULL ||
        sqlite3_prepare_v2(r->t->db,
                           "SELECT id, period, provider, model, limit_nusd, "
                           "thresholds, created_ms, updated_ms FROM budgets "
                           "WHERE ws = ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, ws);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            struct api_budget *b =
                arena_alloc(r->arena, (size_t)cap * 2 * sizeof(*b));
            if (b == NULL)
                break;
            memcpy(b, *out, (size_t)cap * sizeof(*b));
            *out = b;
            cap *= 2;
        }
        struct api_budget *b = &(*out)[n];
        const char *p = (const char *)sqlite3_column_text(st, 2);
        const char *m = (const char *)sqlite3_column_text(st, 3);
        b->id = sqlite3_column_int64(st, 0);
        b->period =
            budget_period_parse((const char *)sqlite3_column_text(st, 1));
        b->provider = arena_strndup(r->arena, p ? p : "", p ? strlen(p) : 0);
        b->model = arena_strndup(r->arena, m ? m : "", m ? strlen(m) : 0);
        b->limit_nusd = sqlite3_column_int64(st, 4);
        b->nthr = budget_thresholds_parse(
            (const char *)sqlite3_column_text(st, 5), b->thr);
        b->created_ms = sqlite3_column_int64(st, 6);
        b->updated_ms = sqlite3_column_int64(st, 7);
        if (b->provider == NULL || b->model == NULL)
            break;
        if (b->period != BUDGET_NONE && b->nthr >= 0 && b->limit_nusd > 0)
            n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* The fields every answer shows of a budget. */
static json_t *api_budget_json(const struct api_budget *b)
{
    json_t *thr = json_array();
    for (int i = 0; i < b->nthr; i++)
        json_array_append_new(thr, json_integer(b->thr[i]));
    return json_pack("{s:I, s:s, s:{s:o, s:o}, s:o, s:o}", "id",
                     (json_int_t)b->id, "period", budget_period_name(b->period),
                     "scope", "provider", api_str_or_null(b->provider), "model",
                     api_str_or_null(b->model), "limit_usd",
                     api_usd(b->limit_nusd), "thresholds", thr);
}

/* The workspace's budgets as {"budgets": [...]}, or NULL after answering
 * 503. */
static json_t *api_budgets_body(struct api_req *r)
{
    int64_t ws = api_ws_id(r);
    struct api_budget *b = NULL;
    int n = ws > 0 ? api_budgets_read(r, ws, &b) : ws == 0 ? 0 : -1;
    if (n < 0) {
        api_db_unavailable(r);
        return NULL;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = api_budget_json(&b[i]);
        json_object_set_new(o, "created", api_time(b[i].created_ms));
        json_object_set_new(o, "updated", api_time(b[i].updated_ms));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "budgets", arr);
}

int api_budgets_list(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    json_t *body = api_budgets_body(r);
    return body ? api_send_json(r, 200, body, NULL) : -1;
}

int api_budgets_put(struct api_req *r)
{
    static const char *const fields[] = {"budgets", NULL};
    json_t *in = api_json_body(r, 1 << 20, fields, 0);
    if (in == NULL)
        return -1;
    json_t *arr = json_object_get(in, "budgets");
    if (arr == NULL)
        return api_error(r, 400, "invalid_field", "budgets",
                         "budgets is required (an empty array deletes "
                         "every budget)");
    json_t *cmd = json_pack("{s:s, s:s, s:O}", "op", "budget.set", "workspace",
                            r->workspace, "budgets", arr);
    int status;
    json_t *counts = api_command_ok(r, cmd, &status);
    if (counts == NULL)
        return -1;
    json_t *body = api_budgets_body(r);
    if (body == NULL)
        return -1;
    if (json_is_object(counts)) {
        static const char *const keys[] = {"created", "updated", "unchanged",
                                           "deleted"};
        for (size_t i = 0; i < 4; i++)
            json_object_set(body, keys[i], json_object_get(counts, keys[i]));
    }
    return api_send_json(r, 200, body, NULL);
}

/* Find the live slot of b for the period starting at start, or NULL. */
static const struct shm_budget *api_budget_slot(const struct shm_budget *slots,
                                                int n,
                                                const struct api_budget *b,
                                                int64_t start)
{
    for (int i = 0; i < n; i++)
        if (slots[i].id == b->id && slots[i].period_start_ms == start &&
            slots[i].limit_nusd == b->limit_nusd)
            return &slots[i];
    return NULL;
}

/* The thresholds of b with their crossings in the period at start. */
static json_t *api_budget_thresholds(struct api_req *r,
                                     const struct api_budget *b, int64_t start,
                                     int64_t spend)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    sqlite3_prepare_v2(r->t->db,
                       "SELECT ts_ms, spend_nusd FROM budget_crossings WHERE "
                       "budget = ? AND period_start_ms = ? AND limit_nusd = ? "
                       "AND threshold = ?",
                       -1, &st, NULL);
    for (int i = 0; i < b->nthr; i++) {
        json_t *at = json_null(), *was = json_null();
        if (st != NULL) {
            sqlite3_bind_int64(st, 1, b->id);
            sqlite3_bind_int64(st, 2, start);
            sqlite3_bind_int64(st, 3, b->limit_nusd);
            sqlite3_bind_int(st, 4, b->thr[i]);
            if (sqlite3_step(st) == SQLITE_ROW) {
                at = api_time(sqlite3_column_int64(st, 0));
                was = api_usd(sqlite3_column_int64(st, 1));
            }
            sqlite3_reset(st);
        }
        /* Crossed as soon as the spend says so; the row that records it
         * follows within a second. */
        int crossed = !json_is_null(at) ||
                      budget_crossed(spend, b->limit_nusd, b->thr[i]);
        json_array_append_new(arr, json_pack("{s:i, s:b, s:o, s:o}", "percent",
                                             b->thr[i], "crossed", crossed,
                                             "crossed_at", at,
                                             "spend_usd_at_crossing", was));
    }
    sqlite3_finalize(st);
    return arr;
}

/* The status object of one budget. */
static json_t *api_budget_status(struct api_req *r, const struct api_budget *b,
                                 int64_t start, int64_t end, int64_t spend,
                                 const char *source)
{
    json_t *o = api_budget_json(b);
    double elapsed = (double)(r->now_ms - start);
    double projected = elapsed > 0
                           ? (double)spend * (double)(end - start) / elapsed
                           : (double)spend;
    int64_t left = b->limit_nusd - spend;
    json_object_set_new(o, "period_start", api_time(start));
    json_object_set_new(o, "period_end", api_time(end));
    json_object_set_new(o, "spend_usd", api_usd(spend));
    json_object_set_new(
        o, "percent_used",
        json_real((double)spend * 100.0 / (double)b->limit_nusd));
    json_object_set_new(o, "remaining_usd", api_usd(left > 0 ? left : 0));
    json_object_set_new(o, "projected_usd", json_real(projected / 1e9));
    json_object_set_new(o, "projected_percent",
                        json_real(projected * 100.0 / (double)b->limit_nusd));
    json_object_set_new(o, "thresholds",
                        api_budget_thresholds(r, b, start, spend));
    json_object_set_new(o, "source", json_string(source));
    return o;
}

int api_budgets_status(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    if (ws < 0 || api_read_begin(r) < 0)
        return ws < 0 ? api_db_unavailable(r) : -1;
    struct api_budget *b = NULL;
    int n = ws > 0 ? api_budgets_read(r, ws, &b) : 0;
    /* The workspace's slots: one per budget, and room for more in case
     * the set just changed. */
    int cap = (n > 0 ? n : 0) + 16;
    struct shm_budget *slots = arena_alloc(r->arena, cap * sizeof(*slots));
    const struct shm_header *h = api_shm(r);
    int nslots = h && slots ? shm_read_budgets(h, r->workspace, slots, cap) : 0;
    struct budget_cells cells;
    memset(&cells, 0, sizeof(cells));
    int have_cells = 0, rc = n < 0 ? SQLITE_ERROR : SQLITE_OK;
    json_t *arr = json_array();
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        int64_t start, end, spend;
        budget_period_bounds(b[i].period, r->now_ms, &start, &end);
        const struct shm_budget *s =
            api_budget_slot(slots, nslots, &b[i], start);
        if (s != NULL)
            spend = s->spend_nusd;
        else {
            /* One read of the month covers every budget's period. */
            if (!have_cells) {
                int64_t ms, me;
                budget_period_bounds(BUDGET_MONTH, r->now_ms, &ms, &me);
                rc = budget_cells_load(r->t->db, ws, ms, me, &cells);
                have_cells = 1;
            }
            spend =
                budget_cells_sum(&cells, b[i].provider, b[i].model, start, end);
        }
        json_array_append_new(arr,
                              api_budget_status(r, &b[i], start, end, spend,
                                                s ? "live" : "rollups"));
    }
    api_read_end(r);
    budget_cells_free(&cells);
    if (rc != SQLITE_OK)
        return api_db_unavailable(r);
    return api_send_json(
        r, 200,
        json_pack("{s:o, s:o}", "as_of", api_time(r->now_ms), "budgets", arr),
        NULL);
}

/* The spend of b on each of ndays days from from (day-aligned). */
static int64_t *api_budget_days(struct api_req *r, const struct budget_cells *c,
                                const struct api_budget *b, int64_t from,
                                int ndays)
{
    int64_t *d = arena_alloc(r->arena, (size_t)ndays * sizeof(*d));
    if (d == NULL)
        return NULL;
    memset(d, 0, (size_t)ndays * sizeof(*d));
    for (size_t i = 0; i < c->n; i++) {
        const struct budget_cell *e = &c->v[i];
        int64_t k = (e->day_ms - from) / BUDGET_DAY_MS;
        if (e->day_ms >= from && k < ndays &&
            budget_scope_match(b->provider, b->model, e->provider, e->model))
            d[k] += e->nusd;
    }
    return d;
}

/* One day of a budget's history, as JSON and as a CSV row. */
struct api_hday {
    const struct api_budget *b;
    int64_t day_ms, spend, mtd; /* mtd: month to date (month budgets) */
};

/* The percent of the limit a day shows: its spend for a daily budget, the
 * month to date for a monthly one. */
static double api_hday_pct(const struct api_hday *d)
{
    int64_t used = d->b->period == BUDGET_MONTH ? d->mtd : d->spend;
    return (double)used * 100.0 / (double)d->b->limit_nusd;
}

static json_t *api_hday_json(const struct api_hday *d)
{
    char date[40];
    ev_format_rfc3339(d->day_ms, date, sizeof(date));
    json_t *o =
        json_pack("{s:s%, s:o, s:f}", "date", date, (size_t)10, "spend_usd",
                  api_usd(d->spend), "percent_used", api_hday_pct(d));
    if (d->b->period == BUDGET_MONTH)
        json_object_set_new(o, "month_to_date_usd", api_usd(d->mtd));
    return o;
}

static const char *const api_hday_cols[] = {
    "budget_id",   "period",    "provider",          "model",
    "date",        "spend_usd", "month_to_date_usd", "limit_usd",
    "percent_used"};

static void api_hday_csv(struct api_req *r, const struct api_hday *d)
{
    char id[24], date[40], spend[32], mtd[32] = "", lim[32], pct[32];
    snprintf(id, sizeof(id), "%lld", (long long)d->b->id);
    ev_format_rfc3339(d->day_ms, date, sizeof(date));
    date[10] = '\0';
    api_usd_text(d->spend, spend, sizeof(spend));
    if (d->b->period == BUDGET_MONTH)
        api_usd_text(d->mtd, mtd, sizeof(mtd));
    api_usd_text(d->b->limit_nusd, lim, sizeof(lim));
    snprintf(pct, sizeof(pct), "%.4f", api_hday_pct(d));
    const char *f[] = {id,
                       budget_period_name(d->b->period),
                       d->b->provider,
                       d->b->model,
                       date,
                       spend,
                       mtd,
                       lim,
                       pct};
    for (int i = 0; i < 9; i++)
        api_csv_field(r, f[i], i == 8);
}

/* Parse the optional budget=ID of history into *id (0: every budget). */
static int api_history_budget(struct api_req *r, int64_t *id)
{
    const char *q = api_query(r, "budget");
    *id = 0;
    if (q == NULL)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(q, &end, 10);
    if (q[0] == '\0' || *end != '\0' || errno != 0 || v <= 0)
        return api_error(r, 400, "invalid_parameter", "budget",
                         "budget must be a budget id, got \"%.32s\"", q);
    *id = v;
    return 0;
}

/* Stream or gather the history of budgets b[n] over ndays days. */
static json_t *api_history_walk(struct api_req *r, const struct api_budget *b,
                                int n, const struct budget_cells *cells,
                                int64_t from, int64_t first, int ndays, int csv)
{
    json_t *arr = csv ? NULL : json_array();
    int lead = (int)((first - from) / BUDGET_DAY_MS);
    for (int i = 0; i < n; i++) {
        int64_t *d = api_budget_days(r, cells, &b[i], from, lead + ndays);
        if (d == NULL)
            break;
        json_t *days = csv ? NULL : json_array();
        struct api_hday h = {&b[i], 0, 0, 0};
        for (int k = 0; k < lead + ndays; k++) {
            int64_t ms, me, day = from + k * BUDGET_DAY_MS;
            budget_period_bounds(BUDGET_MONTH, day, &ms, &me);
            h.mtd = (day == ms ? 0 : h.mtd) + d[k];
            if (k < lead)
                continue;
            h.day_ms = day;
            h.spend = d[k];
            if (csv)
                api_hday_csv(r, &h);
            else
                json_array_append_new(days, api_hday_json(&h));
        }
        if (!csv) {
            json_t *o = api_budget_json(&b[i]);
            json_object_set_new(o, "days", days);
            json_array_append_new(arr, o);
        }
    }
    return arr;
}

int api_budgets_history(struct api_req *r)
{
    static const char *const allowed[] = {"range",  "from",   "to",
                                          "format", "budget", NULL};
    struct api_range rg;
    int csv;
    int64_t only;
    if (api_query_only(r, allowed) != 0 ||
        api_parse_range(r, "30d", &rg) != 0 || api_parse_format(r, &csv) != 0 ||
        api_history_budget(r, &only) != 0)
        return -1;
    int64_t first, last, ms, me, x;
    budget_period_bounds(BUDGET_DAY, rg.from_ms, &first, &x);
    budget_period_bounds(BUDGET_DAY, rg.to_ms - 1, &last, &x);
    int64_t ndays = (last - first) / BUDGET_DAY_MS + 1;
    if (ndays > API_HISTORY_DAYS)
        return api_error(r, 400, "invalid_parameter", "from",
                         "the range covers %lld days; history answers at "
                         "most %d",
                         (long long)ndays, API_HISTORY_DAYS);
    int64_t ws = api_ws_id(r);
    if (ws < 0 || api_read_begin(r) < 0)
        return ws < 0 ? api_db_unavailable(r) : -1;
    struct api_budget *b = NULL;
    int n = ws > 0 ? api_budgets_read(r, ws, &b) : 0;
    int kept = 0; /* only the asked budget, if one was */
    for (int i = 0; i < n; i++)
        if (only == 0 || b[i].id == only)
            b[kept++] = b[i];
    if (n > 0)
        n = kept;
    /* Monthly budgets count from the first day's month start. */
    budget_period_bounds(BUDGET_MONTH, first, &ms, &me);
    struct budget_cells cells;
    memset(&cells, 0, sizeof(cells));
    int rc = n < 0 ? SQLITE_ERROR
                   : budget_cells_load(r->t->db, ws, ms, last + BUDGET_DAY_MS,
                                       &cells);
    api_read_end(r);
    if (rc != SQLITE_OK) {
        budget_cells_free(&cells);
        return api_db_unavailable(r);
    }
    if (only != 0 && n == 0) {
        budget_cells_free(&cells);
        return api_error(r, 404, "not_found", "budget",
                         "no budget with id %lld in this workspace",
                         (long long)only);
    }
    char from[40], to[40];
    ev_format_rfc3339(first, from, sizeof(from));
    ev_format_rfc3339(last + BUDGET_DAY_MS, to, sizeof(to));
    if (csv) {
        char file[96];
        snprintf(file, sizeof(file), "tokentap-budget-history-%.10s-%.10s.csv",
                 from, to);
        api_csv_start(r, file, api_hday_cols, 9);
        api_history_walk(r, b, n, &cells, ms, first, (int)ndays, 1);
        budget_cells_free(&cells);
        return 0;
    }
    json_t *arr = api_history_walk(r, b, n, &cells, ms, first, (int)ndays, 0);
    budget_cells_free(&cells);
    return api_send_json(
        r, 200,
        json_pack("{s:s, s:s, s:o}", "from", from, "to", to, "budgets", arr),
        NULL);
}
