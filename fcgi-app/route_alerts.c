/*
 * route_alerts.c: the alerts of the key's workspace.
 *
 *   GET    /api/v1/alerts               newest first; status=, severity=
 *                                       (comma lists), rule=, from/to or
 *                                       range (when they started), q= (text
 *                                       in the rule's name or description),
 *                                       limit=, cursor=, format=json|csv
 *   GET    /api/v1/alerts/active        the open ones (pending, firing,
 *                                       acknowledged), same parameters
 *   GET    /api/v1/alerts/stats         counts by status and severity of the
 *                                       alerts started in the range, mean
 *                                       time to acknowledge and to resolve
 *   GET    /api/v1/alerts/{id}          one alert, its timeline and the
 *                                       notifications sent for it
 *   POST   /api/v1/alerts/{id}/ack      {who?, note?}            (admin)
 *   POST   /api/v1/alerts/{id}/resolve  {who?, note}             (admin)
 *   DELETE /api/v1/alerts/{id}                                   (admin)
 *   POST   /api/v1/alerts/bulk          {action, ids | filter, who?, note?}
 *                                                                (admin)
 *
 * Reads are SQL over the alerts table on the thread's connection; changes
 * are the collector command alert.act (collector/alert_cmd.c).  "who"
 * defaults to the key ("key 12").
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "event.h"

#define API_ALERTS_PAGE     100
#define API_ALERTS_PAGE_MAX 1000
#define API_BULK_MAX        10000

/* The columns an alert is read with, in order. */
#define API_ALERT_COLS                                                         \
    "a.id, a.rule_id, a.rule_name, a.severity, a.status, a.group_json, "       \
    "a.values_json, a.started_ms, a.fired_ms, a.acked_ms, a.acked_by, "        \
    "a.resolved_ms, a.resolved_by, a.notes, a.updated_ms, a.silenced_by, "     \
    "a.quiet"

/* The filters of a list, validated. */
struct api_alert_q {
    const char *status, *severity, *q;
    int64_t rule, from_ms, to_ms, cursor;
    long limit;
    int csv;
};

/* Is every item of the comma list s one of names? */
static int api_list_ok(const char *s, const char *const *names)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        int ok = 0;
        for (int i = 0; names[i] && !ok; i++)
            ok = strcmp(t, names[i]) == 0;
        if (!ok)
            return 0;
    }
    return s[0] != '\0';
}

/* Parse the list parameters.  Returns 0, or -1 after answering 400. */
static int api_alert_params(struct api_req *r, struct api_alert_q *q, int paged)
{
    static const char *const statuses[] = {"pending", "firing", "acknowledged",
                                           "resolved", NULL};
    static const char *const sevs[] = {"critical", "high", "medium", "low",
                                       NULL};
    static const char *const paged_params[] = {
        "status", "severity", "rule",   "from",   "to", "range",
        "q",      "limit",    "cursor", "format", NULL};
    static const char *const unpaged_params[] = {
        "status", "severity", "rule", "from", "to", "range", "q", NULL};
    memset(q, 0, sizeof(*q));
    if (api_query_only(r, paged ? paged_params : unpaged_params) != 0)
        return -1;
    q->status = api_query(r, "status");
    q->severity = api_query(r, "severity");
    q->q = api_query(r, "q");
    if (q->status && !api_list_ok(q->status, statuses))
        return api_error(r, 400, "invalid_parameter", "status",
                         "status must be pending, firing, acknowledged or "
                         "resolved (or a comma list), got \"%.64s\"",
                         q->status);
    if (q->severity && !api_list_ok(q->severity, sevs))
        return api_error(r, 400, "invalid_parameter", "severity",
                         "severity must be critical, high, medium or low (or "
                         "a comma list), got \"%.64s\"",
                         q->severity);
    const char *rule = api_query(r, "rule");
    char *end;
    if (rule && ((q->rule = strtoll(rule, &end, 10)) <= 0 || *end != '\0'))
        return api_error(r, 400, "invalid_parameter", "rule",
                         "rule must be a rule id, got \"%.32s\"", rule);
    if (q->q && strlen(q->q) > 200)
        return api_error(r, 400, "invalid_parameter", "q",
                         "q must be at most 200 bytes");
    q->from_ms = 0;
    q->to_ms = INT64_MAX;
    if (api_query(r, "range") || api_query(r, "from") || api_query(r, "to")) {
        struct api_range rg;
        if (api_parse_range(r, "24h", &rg) != 0)
            return -1;
        q->from_ms = rg.from_ms;
        q->to_ms = rg.to_ms;
    }
    if (!paged)
        return 0;
    if (api_parse_id_cursor(r, &q->cursor) != 0 ||
        api_parse_limit(r, API_ALERTS_PAGE, API_ALERTS_PAGE_MAX, &q->limit) !=
            0 ||
        api_parse_format(r, &q->csv) != 0)
        return -1;
    return 0;
}

/* The statement selecting the alerts of q (open only when open), newest
 * first, at most limit (0: no limit); NULL after answering 503. */
static sqlite3_stmt *api_alert_select(struct api_req *r,
                                      const struct api_alert_q *q, int open,
                                      long limit, const char *cols)
{
    char sql[1536];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM alerts a LEFT JOIN alert_rules r ON r.id = "
             "a.rule_id WHERE a.ws = ?1 AND (?2 IS NULL OR instr(',' || ?2 "
             "|| ',', ',' || a.status || ',') > 0) AND (?3 IS NULL OR "
             "instr(',' || ?3 || ',', ',' || a.severity || ',') > 0) AND (?4 "
             "= 0 OR a.rule_id = ?4) AND a.started_ms >= ?5 AND a.started_ms "
             "< ?6 AND (?7 IS NULL OR instr(lower(a.rule_name), lower(?7)) > "
             "0 OR instr(lower(coalesce(r.spec ->> '$.description', '')), "
             "lower(?7)) > 0) AND (?8 = 0 OR a.id < ?8)%s ORDER BY a.id DESC "
             "LIMIT ?9",
             cols,
             open ? " AND a.status IN ('pending', 'firing', 'acknowledged')"
                  : "");
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 ||
        sqlite3_prepare_v2(r->t->db, sql, -1, &st, NULL) != SQLITE_OK) {
        api_db_unavailable(r);
        return NULL;
    }
    sqlite3_bind_int64(st, 1, ws);
    if (q->status)
        sqlite3_bind_text(st, 2, q->status, -1, SQLITE_STATIC);
    if (q->severity)
        sqlite3_bind_text(st, 3, q->severity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->rule);
    sqlite3_bind_int64(st, 5, q->from_ms);
    sqlite3_bind_int64(st, 6, q->to_ms);
    if (q->q)
        sqlite3_bind_text(st, 7, q->q, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, q->cursor);
    sqlite3_bind_int64(st, 9, limit > 0 ? limit : -1);
    return st;
}

static json_t *api_time_or_null(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
               ? json_null()
               : api_time(sqlite3_column_int64(st, col));
}

static json_t *api_text_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

/* The alert of the current row (API_ALERT_COLS); a budget's alert has
 * budget_id and a null rule_id. */
static json_t *api_alert_row(sqlite3_stmt *st)
{
    int64_t rule = sqlite3_column_int64(st, 1);
    json_t *group =
        json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
    json_t *values =
        json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
    json_t *o = json_pack(
        "{s:I, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
        "s:o, s:o}",
        "id", (json_int_t)sqlite3_column_int64(st, 0), "rule_id",
        (json_int_t)sqlite3_column_int64(st, 1), "rule_name",
        (const char *)sqlite3_column_text(st, 2), "severity",
        (const char *)sqlite3_column_text(st, 3), "status",
        (const char *)sqlite3_column_text(st, 4), "group",
        group ? group : json_object(), "values", values ? values : json_array(),
        "started_at", api_time_or_null(st, 7), "fired_at",
        api_time_or_null(st, 8), "acknowledged_at", api_time_or_null(st, 9),
        "acknowledged_by", api_text_or_null(st, 10), "resolved_at",
        api_time_or_null(st, 11), "resolved_by", api_text_or_null(st, 12),
        "notes", api_text_or_null(st, 13), "updated_at",
        api_time_or_null(st, 14));
    if (o != NULL)
        json_object_set_new(o, "silenced_by",
                            sqlite3_column_type(st, 15) == SQLITE_NULL
                                ? json_null()
                                : json_integer(sqlite3_column_int64(st, 15)));
    if (o != NULL)
        json_object_set_new(o, "quiet_hours",
                            json_boolean(sqlite3_column_int(st, 16)));
    /* A budget's alert has no rule: rule_id holds minus the budget's id. */
    if (o != NULL && rule < 0) {
        json_object_set_new(o, "rule_id", json_null());
        json_object_set_new(o, "budget_id", json_integer(-rule));
    }
    return o;
}

/* The CSV columns of an alert. */
static const char *const api_alert_csv[] = {"id",
                                            "rule_id",
                                            "rule_name",
                                            "severity",
                                            "status",
                                            "group",
                                            "started_at",
                                            "fired_at",
                                            "acknowledged_at",
                                            "acknowledged_by",
                                            "resolved_at",
                                            "resolved_by",
                                            "notes"};

#define API_ALERT_NCSV (int)(sizeof(api_alert_csv) / sizeof(api_alert_csv[0]))

static void api_alert_csv_row(struct api_req *r, sqlite3_stmt *st)
{
    static const int cols[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13};
    for (int i = 0; i < API_ALERT_NCSV; i++) {
        int c = cols[i];
        char buf[40];
        const char *s;
        if (sqlite3_column_type(st, c) == SQLITE_NULL)
            s = "";
        else if (c == 7 || c == 8 || c == 9 || c == 11) {
            ev_format_rfc3339(sqlite3_column_int64(st, c), buf, sizeof(buf));
            s = buf;
        } else
            s = (const char *)sqlite3_column_text(st, c);
        api_csv_field(r, s, i == API_ALERT_NCSV - 1);
    }
}

/* A page of alerts (open only when open). */
static int api_alerts_page(struct api_req *r, int open)
{
    struct api_alert_q q;
    if (api_alert_params(r, &q, 1) != 0)
        return -1;
    sqlite3_stmt *st =
        api_alert_select(r, &q, open, q.csv ? 0 : q.limit + 1, API_ALERT_COLS);
    if (st == NULL)
        return -1;
    if (q.csv) {
        api_csv_start(r, open ? "alerts-active" : "alerts", api_alert_csv,
                      API_ALERT_NCSV);
        while (sqlite3_step(st) == SQLITE_ROW)
            api_alert_csv_row(r, st);
        sqlite3_finalize(st);
        return 0;
    }
    return api_send_id_page(r, st, q.limit, "alerts", api_alert_row);
}

int api_alerts_list(struct api_req *r)
{
    return api_alerts_page(r, 0);
}

int api_alerts_active(struct api_req *r)
{
    return api_alerts_page(r, 1);
}

int api_alerts_get(struct api_req *r)
{
    int64_t id, ws;
    if ((id = api_path_id_only(r, "alert")) == 0)
        return -1;
    if ((ws = api_ws_id(r)) < 0 || api_read_begin(r) < 0)
        return ws < 0 ? api_db_unavailable(r) : -1;
    sqlite3_stmt *st;
    json_t *o = NULL;
    int rc = sqlite3_prepare_v2(r->t->db,
                                "SELECT " API_ALERT_COLS
                                " FROM alerts a WHERE a.id = ?1 AND a.ws = ?2",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ws);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            o = api_alert_row(st);
        sqlite3_finalize(st);
    }
    if (o == NULL) {
        api_read_end(r);
        return rc == SQLITE_DONE ? api_error(r, 404, "not_found", "id",
                                             "no alert %lld", (long long)id)
                                 : api_db_unavailable(r);
    }
    /* The timeline, oldest first. */
    json_t *tl = json_array();
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT ts_ms, kind, actor, note, values_json FROM "
                           "alert_events WHERE alert_id = ?1 ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(st, 4);
            json_t *vals = v ? json_loads(v, 0, NULL) : NULL;
            json_array_append_new(
                tl, json_pack("{s:o, s:s, s:o, s:o, s:o}", "at",
                              api_time(sqlite3_column_int64(st, 0)), "event",
                              (const char *)sqlite3_column_text(st, 1), "by",
                              api_text_or_null(st, 2), "note",
                              api_text_or_null(st, 3), "values",
                              vals ? vals : json_null()));
        }
        sqlite3_finalize(st);
    }
    /* Its notifications: the outbox rows (delivery is issue 5). */
    json_t *nl = json_array();
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT id, event, channel_id, status, attempts, "
                           "last_error, created_ms, updated_ms FROM "
                           "notifications WHERE alert_id = ?1 ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(
                nl,
                json_pack("{s:I, s:s, s:I, s:s, s:I, s:o, s:o, s:o}", "id",
                          (json_int_t)sqlite3_column_int64(st, 0), "event",
                          (const char *)sqlite3_column_text(st, 1),
                          "channel_id", (json_int_t)sqlite3_column_int64(st, 2),
                          "status", (const char *)sqlite3_column_text(st, 3),
                          "attempts", (json_int_t)sqlite3_column_int64(st, 4),
                          "error", api_text_or_null(st, 5), "created_at",
                          api_time(sqlite3_column_int64(st, 6)), "updated_at",
                          api_time(sqlite3_column_int64(st, 7))));
        sqlite3_finalize(st);
    }
    api_read_end(r);
    json_object_set_new(o, "timeline", tl);
    json_object_set_new(o, "notifications", nl);
    return api_send_json(r, 200, o, NULL);
}

/* Who acts: the body's "who", else the key. */
static const char *api_alert_who(struct api_req *r, json_t *in)
{
    const char *who = json_string_value(json_object_get(in, "who"));
    if (who != NULL)
        return who;
    char *buf = arena_alloc(r->arena, 32);
    if (buf != NULL)
        snprintf(buf, 32, "key %lld", (long long)r->key_id);
    return buf ? buf : "key";
}

/* Send alert.act and relay its answer. */
static int api_alert_act(struct api_req *r, const char *action, json_t *ids,
                         json_t *in)
{
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:o, s:s}", "op", "alert.act",
                            "workspace", r->workspace, "action", action, "ids",
                            ids, "who", api_alert_who(r, in));
    json_t *note = json_object_get(in, "note");
    if (note != NULL)
        json_object_set(cmd, "note", note);
    return api_command_relay(r, cmd);
}

/* One alert: the action, 404 when it did not exist, 409 when its state
 * did not allow the action. */
static int api_alert_one(struct api_req *r, const char *action,
                         const char *const *fields)
{
    int64_t id = api_path_id(r, "alert");
    json_t *in = id ? api_json_body(r, 1 << 20, fields, 1) : NULL;
    if (in == NULL)
        return -1;
    int64_t ws = api_ws_id(r);
    if (ws < 0)
        return api_db_unavailable(r);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            r->t->db, "SELECT status FROM alerts WHERE id = ?1 AND ws = ?2", -1,
            &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ws);
    char status[16] = "";
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(status, sizeof(status), "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (status[0] == '\0')
        return api_error(r, 404, "not_found", "id", "no alert %lld",
                         (long long)id);
    if ((strcmp(action, "ack") == 0 && strcmp(status, "firing") != 0) ||
        (strcmp(action, "resolve") == 0 && strcmp(status, "resolved") == 0))
        return api_error(
            r, 409, "conflict", "status", "alert %lld is %s: it cannot be %s",
            (long long)id, status,
            strcmp(action, "ack") == 0 ? "acknowledged" : "resolved");
    return api_alert_act(r, action, json_pack("[I]", (json_int_t)id), in);
}

int api_alerts_ack(struct api_req *r)
{
    static const char *const fields[] = {"who", "note", NULL};
    return api_alert_one(r, "ack", fields);
}

int api_alerts_resolve(struct api_req *r)
{
    static const char *const fields[] = {"who", "note", NULL};
    return api_alert_one(r, "resolve", fields);
}

int api_alerts_delete(struct api_req *r)
{
    static const char *const fields[] = {NULL};
    return api_alert_one(r, "delete", fields);
}

int api_alerts_bulk(struct api_req *r)
{
    static const char *const fields[] = {"action", "ids",  "filter",
                                         "who",    "note", NULL};
    json_t *in = api_json_body(r, 1 << 20, fields, 1);
    if (in == NULL)
        return -1;
    const char *action = json_string_value(json_object_get(in, "action"));
    if (action == NULL ||
        (strcmp(action, "ack") != 0 && strcmp(action, "resolve") != 0 &&
         strcmp(action, "delete") != 0))
        return api_error(r, 400, "invalid_field", "action",
                         "action must be ack, resolve or delete");
    json_t *ids = json_object_get(in, "ids");
    json_t *filter = json_object_get(in, "filter");
    if ((ids == NULL) == (filter == NULL))
        return api_error(r, 400, "invalid_field", "ids",
                         "give either ids or filter");
    if (ids != NULL)
        return api_alert_act(r, action, json_incref(ids), in);
    if (!json_is_object(filter))
        return api_error(r, 400, "invalid_field", "filter",
                         "filter must be an object with the parameters of GET "
                         "/api/v1/alerts (status, severity, rule, from, to, "
                         "range, q)");
    /* The filter's fields are the list's query parameters: check them the
     * same way by making them the request's query. */
    struct api_alert_q q;
    const char *k;
    json_t *v;
    char query[1024] = "";
    size_t len = 0;
    json_object_foreach(filter, k, v)
    {
        char val[300];
        if (json_is_string(v))
            snprintf(val, sizeof(val), "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(val, sizeof(val), "%lld",
                     (long long)json_integer_value(v));
        else
            return api_error(r, 400, "invalid_field", "filter",
                             "filter.%.64s must be a string", k);
        if (strchr(val, '&') || strchr(val, '%') || strchr(val, '='))
            return api_error(r, 400, "invalid_field", "filter",
                             "filter.%.64s must not hold '&', '%%' or '='", k);
        len += (size_t)snprintf(query + len, sizeof(query) - len, "%s%s=%s",
                                len ? "&" : "", k, val);
        if (len >= sizeof(query))
            return api_error(r, 400, "invalid_field", "filter",
                             "filter is too long");
    }
    r->query = arena_strndup(r->arena, query, len);
    if (api_alert_params(r, &q, 0) != 0)
        return -1;
    sqlite3_stmt *st = api_alert_select(r, &q, 0, API_BULK_MAX + 1, "a.id");
    if (st == NULL)
        return -1;
    json_t *found = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(found, json_integer(sqlite3_column_int64(st, 0)));
    sqlite3_finalize(st);
    if (json_array_size(found) > API_BULK_MAX)
        return api_error(r, 400, "invalid_field", "filter",
                         "the filter selects more than %d alerts: narrow it",
                         API_BULK_MAX);
    return api_alert_act(r, action, found, in);
}

int api_alerts_stats(struct api_req *r)
{
    static const char *const params[] = {"range", "from", "to", NULL};
    if (api_query_only(r, params) != 0)
        return -1;
    struct api_range rg;
    if (api_parse_range(r, "7d", &rg) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 ||
        sqlite3_prepare_v2(
            r->t->db,
            "SELECT status, severity, count(*), total(acked_ms - fired_ms), "
            "count(acked_ms), total(resolved_ms - coalesce(fired_ms, "
            "started_ms)), count(resolved_ms) FROM alerts WHERE ws = ?1 AND "
            "started_ms >= ?2 AND started_ms < ?3 GROUP BY 1, 2",
            -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, rg.from_ms);
    sqlite3_bind_int64(st, 3, rg.to_ms);
    static const char *const statuses[] = {"pending", "firing", "acknowledged",
                                           "resolved"};
    json_t *by_status = json_object(), *by_sev = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(by_status, statuses[i], json_integer(0));
    for (int i = 0; i < ALERT_NSEVERITIES; i++)
        json_object_set_new(by_sev, alert_severity_name(i), json_integer(0));
    int64_t total = 0, nack = 0, nres = 0;
    double ack_ms = 0, res_ms = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        int64_t n = sqlite3_column_int64(st, 2);
        json_t *a = json_object_get(by_status, s),
               *b = json_object_get(by_sev, v);
        if (a)
            json_integer_set(a, json_integer_value(a) + n);
        if (b)
            json_integer_set(b, json_integer_value(b) + n);
        total += n;
        ack_ms += sqlite3_column_double(st, 3);
        nack += sqlite3_column_int64(st, 4);
        res_ms += sqlite3_column_double(st, 5);
        nres += sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    return api_send_json(
        r, 200,
        json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "from",
                  api_time(rg.from_ms), "to", api_time(rg.to_ms), "total",
                  (json_int_t)total, "by_status", by_status, "by_severity",
                  by_sev, "mean_time_to_acknowledge_s",
                  nack ? json_real(ack_ms / nack / 1000.0) : json_null(),
                  "mean_time_to_resolve_s",
                  nres ? json_real(res_ms / nres / 1000.0) : json_null()),
        NULL);
}
