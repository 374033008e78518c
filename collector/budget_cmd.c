/*
 * budget_cmd.c: the budget.set command, which replaces the budget set of
 * one workspace (PUT /api/v1/budgets).
 *
 *   {"op": "budget.set", "workspace": "default", "budgets": [
 *       {"period": "day", "limit_usd": 50, "provider": "openai",
 *        "model": "gpt-4o", "thresholds": [80, 95, 100]}, ...]}
 *
 * The set is declarative: a budget is known by its workspace, period and
 * scope (provider and model, each optional), so sending the same set twice
 * changes nothing (ids and created times stay), a budget whose limit or
 * thresholds differ is updated in place, and budgets of the workspace that
 * are not in the set are deleted with their crossings.  Everything is
 * validated before anything is written; a bad value answers 400 naming the
 * field ("budgets[2].limit_usd") and quoting the value.  The writes run in
 * one transaction, and then the tracker reloads (budget.c).
 */
#include "collector.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "keys.h"
#include "log.h"

/* Budgets one workspace may have. */
#define COL_BUDGET_WS_MAX 100

/* One validated budget of the command. */
struct col_bspec {
    int period;
    const char *provider, *model; /* "" = any; point into the args */
    int64_t limit_nusd;
    char thresholds[64]; /* "80,95,100" */
};

/* What the transaction did. */
struct col_bcount {
    int created, updated, unchanged, deleted;
};

/* Validate an optional scope string (provider or model) into *out. */
static int col_bscope(json_t *o, const char *name, const char *prefix,
                      const char **out, json_t **reply)
{
    json_t *v = json_object_get(o, name);
    char field[64];
    *out = "";
    if (v == NULL || json_is_null(v))
        return 0;
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (n == 0 || n > EV_MAX_NAME ||
        strlen(json_string_value(v)) != n) { /* no NUL inside */
        snprintf(field, sizeof(field), "%s.%s", prefix, name);
        return col_bad(reply, field, v,
                       "must be a string of 1 to 128 bytes or null");
    }
    *out = json_string_value(v);
    return 0;
}

/* Compare ints for qsort. */
static int col_int_cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Validate thresholds (absent or null: the default) into s->thresholds. */
static int col_bthresholds(json_t *o, const char *prefix, struct col_bspec *s,
                           json_t **reply)
{
    json_t *v = json_object_get(o, "thresholds");
    char field[64];
    int t[BUDGET_MAX_THRESHOLDS];
    snprintf(field, sizeof(field), "%s.thresholds", prefix);
    if (v == NULL || json_is_null(v)) {
        snprintf(s->thresholds, sizeof(s->thresholds), BUDGET_DEFAULT_THR);
        return 0;
    }
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n == 0 || n > BUDGET_MAX_THRESHOLDS)
        return col_bad(reply, field, v,
                       "must be an array of 1 to 8 percentages");
    for (size_t j = 0; j < n; j++) {
        json_t *e = json_array_get(v, j);
        double d = json_number_value(e);
        if (!json_is_number(e) || d != floor(d) || d < 1 ||
            d > BUDGET_MAX_PCT) {
            snprintf(field, sizeof(field), "%s.thresholds[%zu]", prefix, j);
            return col_bad(reply, field, e,
                           "must be an integer percentage from 1 to 1000");
        }
        t[j] = (int)d;
    }
    qsort(t, n, sizeof(t[0]), col_int_cmp);
    for (size_t j = 1; j < n; j++)
        if (t[j] == t[j - 1]) {
            char what[64];
            snprintf(what, sizeof(what), "must not repeat %d", t[j]);
            return col_bad(reply, field, v, what);
        }
    budget_thresholds_format(t, (int)n, s->thresholds, sizeof(s->thresholds));
    return 0;
}

/* Validate budgets[i] into *s. */
static int col_bspec_parse(json_t *o, size_t i, struct col_bspec *s,
                           json_t **reply)
{
    char prefix[32], field[80];
    snprintf(prefix, sizeof(prefix), "budgets[%zu]", i);
    if (!json_is_object(o))
        return col_bad(reply, prefix, o, "must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        static const char *const known[] = {"period", "limit_usd", "provider",
                                            "model", "thresholds"};
        int ok = 0;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            ok |= strcmp(k, known[j]) == 0;
        if (!ok) {
            snprintf(field, sizeof(field), "%s.%.40s", prefix, k);
            return col_bad(reply, field, NULL,
                           "is not a budget field (period, limit_usd, "
                           "provider, model, thresholds)");
        }
    }
    v = json_object_get(o, "period");
    s->period = budget_period_parse(json_string_value(v));
    snprintf(field, sizeof(field), "%s.period", prefix);
    if (v == NULL)
        return col_bad(reply, field, NULL, "is required (day or month)");
    if (s->period == BUDGET_NONE)
        return col_bad(reply, field, v, "must be \"day\" or \"month\"");
    v = json_object_get(o, "limit_usd");
    snprintf(field, sizeof(field), "%s.limit_usd", prefix);
    if (v == NULL)
        return col_bad(reply, field, NULL, "is required");
    double lim = json_number_value(v);
    if (!json_is_number(v) || !(lim > 0) || lim > BUDGET_MAX_USD ||
        llround(lim * 1e9) < 1)
        return col_bad(reply, field, v,
                       "must be a number of US dollars above 0 and at most "
                       "1000000000");
    s->limit_nusd = llround(lim * 1e9);
    int rc = col_bscope(o, "provider", prefix, &s->provider, reply);
    if (rc == 0)
        rc = col_bscope(o, "model", prefix, &s->model, reply);
    if (rc == 0)
        rc = col_bthresholds(o, prefix, s, reply);
    return rc;
}

/* Validate the whole command into specs (COL_BUDGET_WS_MAX entries). */
static int col_bspecs(json_t *args, struct col_bspec *specs, size_t *n,
                      json_t **reply)
{
    json_t *arr = json_object_get(args, "budgets");
    if (!json_is_array(arr) || json_array_size(arr) > COL_BUDGET_WS_MAX)
        return col_bad(reply, "budgets", arr,
                       "must be an array of at most 100 budgets");
    *n = json_array_size(arr);
    for (size_t i = 0; i < *n; i++) {
        int rc = col_bspec_parse(json_array_get(arr, i), i, &specs[i], reply);
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (specs[j].period == specs[i].period &&
                strcmp(specs[j].provider, specs[i].provider) == 0 &&
                strcmp(specs[j].model, specs[i].model) == 0) {
                char field[32], what[96];
                snprintf(field, sizeof(field), "budgets[%zu]", i);
                snprintf(what, sizeof(what),
                         "has the same period, provider and model as "
                         "budgets[%zu]",
                         j);
                return col_bad(reply, field, NULL, what);
            }
    }
    return 0;
}

/* Bind ?1 ws and ?2..?6 period, provider, model, limit, thresholds. */
static void col_bbind(sqlite3_stmt *st, int64_t ws, const struct col_bspec *s)
{
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_text(st, 2, budget_period_name(s->period), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, s->limit_nusd);
    sqlite3_bind_text(st, 6, s->thresholds, -1, SQLITE_STATIC);
}

/* Insert or update one budget of workspace ws; its id goes to *id. */
static int col_bput(sqlite3 *db, int64_t ws, const struct col_bspec *s,
                    int64_t now, int64_t *id, struct col_bcount *cnt)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT id, limit_nusd = ?5 AND thresholds = "
                                "?6 FROM budgets WHERE ws = ?1 AND period = "
                                "?2 AND provider = ?3 AND model = ?4",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    col_bbind(st, ws, s);
    int found = sqlite3_step(st) == SQLITE_ROW;
    int same = found && sqlite3_column_int(st, 1);
    *id = found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (same) {
        cnt->unchanged++;
        return SQLITE_OK;
    }
    rc = sqlite3_prepare_v2(
        db,
        found ? "UPDATE budgets SET limit_nusd = ?5, thresholds = ?6, "
                "updated_ms = ?7 WHERE id = ?8"
              : "INSERT INTO budgets(ws, period, provider, model, limit_nusd, "
                "thresholds, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, "
                "?5, ?6, ?7, ?7)",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    col_bbind(st, ws, s);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, *id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (!found)
        *id = sqlite3_last_insert_rowid(db);
    if (found)
        cnt->updated++;
    else
        cnt->created++;
    return SQLITE_OK;
}

/* Run a statement with integer ?1 and text ?2 (either may be unused) that
 * returns no rows.  Returns a SQLite code. */
static int col_bexec(sqlite3 *db, const char *sql, int64_t a, const char *b)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, a);
    if (b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Delete the budgets of ws whose ids are not in keep[n], with their
 * crossings. */
static int col_bsweep(sqlite3 *db, int64_t ws, const int64_t *keep, size_t n,
                      struct col_bcount *cnt)
{
    sqlite3_stmt *st;
    int64_t gone[COL_BUDGET_WS_MAX * 2];
    size_t ngone = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT id FROM budgets WHERE ws = ?", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, ws);
    while (sqlite3_step(st) == SQLITE_ROW && ngone < COL_BUDGET_WS_MAX * 2) {
        int64_t id = sqlite3_column_int64(st, 0);
        size_t j = 0;
        while (j < n && keep[j] != id)
            j++;
        if (j == n)
            gone[ngone++] = id;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; rc == SQLITE_OK && i < ngone; i++) {
        rc = col_bexec(db, "DELETE FROM budget_crossings WHERE budget = ?1",
                       gone[i], NULL);
        if (rc == SQLITE_OK)
            rc = col_bexec(db, "DELETE FROM budgets WHERE id = ?1", gone[i],
                           NULL);
        cnt->deleted++;
    }
    return rc;
}

/* Write the set in one transaction. */
static int col_bwrite(struct col *c, const char *ws,
                      const struct col_bspec *specs, size_t n,
                      struct col_bcount *cnt, json_t **reply)
{
    sqlite3 *db = c->store.db;
    int64_t now = proto_now_ms(), ids[COL_BUDGET_WS_MAX];
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        return 503;
    }
    /* A workspace may get budgets before its first event. */
    int64_t wsid = col_ws_id(db, ws, 1, now);
    int rc = wsid > 0 ? SQLITE_OK : SQLITE_ERROR;
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = col_bput(db, wsid, &specs[i], now, &ids[i], cnt);
    if (rc == SQLITE_OK)
        rc = col_bsweep(db, wsid, ids, n, cnt);
    int64_t total = col_q_int(db, "SELECT count(*) FROM budgets", 0, NULL, 0);
    if (rc == SQLITE_OK && total > COL_BUDGET_MAX) {
        col_store_rollback(&c->store);
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the stack holds at most %d budgets over all workspaces; "
                 "this set would make %lld",
                 COL_BUDGET_MAX, (long long)total);
        *reply = col_error("conflict", msg, "budgets");
        return 409;
    }
    if (rc != SQLITE_OK || col_store_commit(&c->store) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        col_store_rollback(&c->store);
        return 500;
    }
    return 0;
}

int col_budget_set(struct col *c, json_t *args, json_t **reply)
{
    json_t *wsv = json_object_get(args, "workspace");
    const char *ws = json_string_value(wsv);
    if (ws == NULL || !key_workspace_ok(ws))
        return col_bad(reply, "workspace", wsv,
                       "must be 1-64 of a-z, 0-9, '-' and '_'");
    struct col_bspec specs[COL_BUDGET_WS_MAX];
    struct col_bcount cnt = {0, 0, 0, 0};
    size_t n = 0;
    int status = col_bspecs(args, specs, &n, reply);
    if (status != 0)
        return status;
    /* Crossings found under the old set are written first: a budget the
     * new set deletes takes its crossings with it. */
    col_budget_flush(c);
    status = col_bwrite(c, ws, specs, n, &cnt, reply);
    if (status != 0)
        return status;
    if (col_budget_load(c, proto_now_ms()) != 0)
        log_warn(c->cmd_rid, "msg=\"budgets written but not reloaded\"");
    log_info(c->cmd_rid,
             "msg=\"budgets set\" workspace=%s budgets=%zu created=%d "
             "updated=%d unchanged=%d deleted=%d",
             ws, n, cnt.created, cnt.updated, cnt.unchanged, cnt.deleted);
    *reply =
        json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "workspace", ws, "budgets",
                  (int)n, "created", cnt.created, "updated", cnt.updated,
                  "unchanged", cnt.unchanged, "deleted", cnt.deleted);
    return 200;
}
