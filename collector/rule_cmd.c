/*
 * rule_cmd.c: the alert rule commands (POST/PUT/DELETE
 * /api/v1/alerts/rules, POST .../{id}/toggle).
 *
 *   rule.create  {workspace, rule}              -> 201 {id, enabled}
 *   rule.update  {workspace, id, rule}          -> 200 {id, enabled}
 *   rule.delete  {workspace, id}                -> 200 {deleted: id}
 *   rule.toggle  {workspace, id, enabled?}      -> 200 {id, enabled}
 *   rule.test    {workspace, rule | id}         -> 200 {holds, results...}
 *
 * A rule is validated by alert_rule_parse (common/alert.c), whose path
 * names the bad node ("condition.conditions[1].operator"), and stored as
 * its canonical JSON (alert_rule_json) with its name and enabled flag as
 * columns; names are unique in a workspace (409).  A rule of another
 * workspace is not found (404).  The API reads the stored rule back for
 * its answer.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "keys.h"
#include "log.h"

/* Rules one workspace may have. */
#define COL_RULES_WS_MAX 20000

/* The workspace argument, or NULL after answering 400. */
static const char *col_rule_ws(json_t *args, json_t **reply)
{
    json_t *v = json_object_get(args, "workspace");
    const char *ws = json_string_value(v);
    if (ws == NULL || !key_workspace_ok(ws)) {
        col_bad(reply, "workspace", v, "must be 1-64 of a-z, 0-9, '-' and '_'");
        return NULL;
    }
    return ws;
}

/* The id argument (> 0), or 0 after answering 400. */
static int64_t col_rule_id(json_t *args, json_t **reply)
{
    json_t *v = json_object_get(args, "id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        col_bad(reply, "id", v, "must be a positive integer");
        return 0;
    }
    return json_integer_value(v);
}

/* Validate args.rule into *r and its canonical text into *spec (malloc'ed);
 * 0, or the status after answering. */
static int col_rule_spec(json_t *args, struct alert_rule *r, char **spec,
                         json_t **reply)
{
    char path[256], msg[512];
    if (alert_rule_parse(json_object_get(args, "rule"), r, path, sizeof(path),
                         msg, sizeof(msg)) != 0) {
        *reply = col_error("invalid_field", msg, path);
        return 400;
    }
    json_t *canon = alert_rule_json(r);
    *spec = canon ? json_dumps(canon, JSON_COMPACT) : NULL;
    json_decref(canon);
    if (*spec == NULL) {
        alert_rule_free(r);
        *reply = col_error("internal", "out of memory", NULL);
        return 500;
    }
    return 0;
}

/* Run one statement with ?1 ws id, ?2 rule id, ?3 name, ?4 enabled, ?5
 * spec, ?6 now (the ones it uses); returns sqlite3_step's code and the
 * changes in *changed. */
static int col_rule_exec(sqlite3 *db, const char *sql, int64_t wsid, int64_t id,
                         const struct alert_rule *r, const char *spec,
                         int64_t now, int *changed)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, wsid);
    sqlite3_bind_int64(st, 2, id);
    if (r != NULL) {
        sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, r->enabled);
    }
    if (spec != NULL)
        sqlite3_bind_text(st, 5, spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    rc = sqlite3_step(st);
    if (changed != NULL)
        *changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    return rc;
}

/* Finish a write that changed changed rows: commit, or roll back and
 * answer the failure (a name taken: 409; no such rule: 404). */
static int col_rule_done(struct col *c, int rc, int changed, json_t **reply)
{
    sqlite3 *db = c->store.db;
    if (rc == SQLITE_CONSTRAINT) {
        col_store_rollback(&c->store);
        *reply =
            col_error("conflict",
                      "a rule of this workspace already has that name", "name");
        return 409;
    }
    if (rc == SQLITE_DONE && changed == 0) {
        col_store_rollback(&c->store);
        *reply = col_error("not_found", "no such rule", "id");
        return 404;
    }
    if ((rc != SQLITE_DONE && rc != SQLITE_OK) ||
        col_store_commit(&c->store) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        col_store_rollback(&c->store);
        return 500;
    }
    return 0;
}

/* Resolve rule's open alerts (inside the transaction), noting why in their
 * timelines; returns [{id, key}] for col_rule_closed (NULL: failed). */
static json_t *col_rule_close(struct col *c, int64_t rule, const char *why)
{
    sqlite3 *db = c->store.db;
    int64_t now = proto_now_ms();
    sqlite3_stmt *st;
    json_t *out = json_array();
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO alert_events(alert_id, ts_ms, kind, "
                           "actor, note) SELECT id, ?2, 'resolved', 'rule', ?3 "
                           "FROM alerts WHERE rule_id = ?1 AND status IN "
                           "('pending', 'firing', 'acknowledged')",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, rule);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, why, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        sqlite3_prepare_v2(db,
                           "UPDATE alerts SET status = 'resolved', "
                           "resolved_ms = ?2, resolved_by = 'rule', notes = "
                           "?3, updated_ms = ?2 WHERE rule_id = ?1 AND status "
                           "IN ('pending', 'firing', 'acknowledged') "
                           "RETURNING id, group_key",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, rule);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, why, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(
            out, json_pack("{s:I, s:s}", "id",
                           (json_int_t)sqlite3_column_int64(st, 0), "key",
                           (const char *)sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return out;
fail:
    json_decref(out);
    return NULL;
}

/* After the commit: tell the engine and the relay about closed (from
 * col_rule_close; consumed). */
static void col_rule_closed(struct col *c, int64_t rule, const char *ws,
                            json_t *closed)
{
    size_t i;
    json_t *a;
    json_array_foreach(closed, i, a)
    {
        col_alert_control(c, rule, json_string_value(json_object_get(a, "key")),
                          AS_OK);
        col_alert_publish(c, "alert.resolved",
                          json_integer_value(json_object_get(a, "id")), ws,
                          proto_now_ms());
    }
    json_decref(closed);
}

/* Begin, and find (or make, when make) the workspace's id: > 0, or 0 after
 * answering. */
static int64_t col_rule_begin(struct col *c, const char *ws, int make,
                              json_t **reply, int *status)
{
    sqlite3 *db = c->store.db;
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        *status = 503;
        return 0;
    }
    int64_t wsid = col_ws_id(db, ws, make, proto_now_ms());
    if (wsid <= 0) {
        col_store_rollback(&c->store);
        *reply = col_error("not_found", "no such rule", "id");
        *status = 404;
    }
    return wsid;
}

/* rule.create (update 0) and rule.update. */
static int col_rule_put(struct col *c, json_t *args, json_t **reply, int update)
{
    const char *ws = col_rule_ws(args, reply);
    int64_t id = ws && update ? col_rule_id(args, reply) : 0;
    if (ws == NULL || (update && id == 0))
        return 400;
    struct alert_rule r;
    char *spec;
    int status = col_rule_spec(args, &r, &spec, reply);
    if (status != 0)
        return status;
    sqlite3 *db = c->store.db;
    int64_t wsid = col_rule_begin(c, ws, !update, reply, &status);
    int64_t n =
        wsid > 0 && !update
            ? col_q_int(db, "SELECT count(*) FROM alert_rules WHERE ws = ?1",
                        wsid, NULL, 0)
            : 0;
    /* Its channels must be the workspace's. */
    int bad = -1;
    for (int i = 0; wsid > 0 && bad < 0 && i < r.nchannels; i++)
        if (!col_channel_in_ws(db, r.channels[i], ws))
            bad = i;
    if (bad >= 0) {
        col_store_rollback(&c->store);
        char field[32];
        snprintf(field, sizeof(field), "channels[%d]", bad);
        json_t *v = json_integer(r.channels[bad]);
        status =
            col_bad(reply, field, v, "must be a channel of this workspace");
        json_decref(v);
    } else if (n >= COL_RULES_WS_MAX) {
        col_store_rollback(&c->store);
        char msg[96];
        snprintf(msg, sizeof(msg), "a workspace has at most %d rules",
                 COL_RULES_WS_MAX);
        *reply = col_error("conflict", msg, NULL);
        status = 409;
    } else if (wsid > 0) {
        int changed = 0;
        int rc = col_rule_exec(
            db,
            update ? "UPDATE alert_rules SET name = ?3, enabled = ?4, spec = "
                     "?5, updated_ms = ?6 WHERE id = ?2 AND ws = ?1"
                   : "INSERT INTO alert_rules(ws, name, enabled, spec, "
                     "created_ms, updated_ms) VALUES(?1, ?3, ?4, ?5, ?6, ?6)",
            wsid, id, &r, spec, proto_now_ms(), &changed);
        if (!update)
            id = sqlite3_last_insert_rowid(db);
        /* A changed rule starts afresh: its open alerts are resolved. */
        json_t *closed = NULL;
        if (update && rc == SQLITE_DONE && changed > 0 &&
            (closed = col_rule_close(c, id, "the rule changed")) == NULL)
            rc = SQLITE_ERROR;
        status = col_rule_done(c, rc, changed, reply);
        if (status == 0 && closed != NULL)
            col_rule_closed(c, id, ws, closed);
        else
            json_decref(closed);
    }
    if (status == 0) {
        log_info(c->cmd_rid, "msg=\"rule %s\" workspace=%s id=%lld",
                 update ? "updated" : "created", ws, (long long)id);
        *reply =
            json_pack("{s:I, s:b}", "id", (json_int_t)id, "enabled", r.enabled);
        status = update ? 200 : 201;
    }
    alert_rule_free(&r);
    free(spec);
    return status;
}

static int col_rule_delete(struct col *c, json_t *args, json_t **reply)
{
    const char *ws = col_rule_ws(args, reply);
    int64_t id = ws ? col_rule_id(args, reply) : 0;
    if (id == 0)
        return 400;
    int status = 0, changed = 0;
    int64_t wsid = col_rule_begin(c, ws, 0, reply, &status);
    if (wsid <= 0)
        return status;
    int rc = col_rule_exec(c->store.db,
                           "DELETE FROM alert_rules WHERE id = ?2 AND ws = ?1",
                           wsid, id, NULL, NULL, 0, &changed);
    json_t *closed = NULL;
    if (rc == SQLITE_DONE && changed > 0 &&
        (closed = col_rule_close(c, id, "the rule was deleted")) == NULL)
        rc = SQLITE_ERROR;
    if ((status = col_rule_done(c, rc, changed, reply)) != 0) {
        json_decref(closed);
        return status;
    }
    col_rule_closed(c, id, ws, closed);
    log_info(c->cmd_rid, "msg=\"rule deleted\" workspace=%s id=%lld", ws,
             (long long)id);
    *reply = json_pack("{s:I}", "deleted", (json_int_t)id);
    return 200;
}

static int col_rule_toggle(struct col *c, json_t *args, json_t **reply)
{
    const char *ws = col_rule_ws(args, reply);
    int64_t id = ws ? col_rule_id(args, reply) : 0;
    if (id == 0)
        return 400;
    json_t *en = json_object_get(args, "enabled");
    if (en != NULL && !json_is_boolean(en))
        return col_bad(reply, "enabled", en, "must be true or false");
    int status = 0, changed = 0;
    int64_t wsid = col_rule_begin(c, ws, 0, reply, &status);
    if (wsid <= 0)
        return status;
    /* Without "enabled", flip it; the canonical spec says the same. */
    struct alert_rule r = {.enabled = en ? json_is_true(en) : -1};
    int rc = col_rule_exec(
        c->store.db,
        "UPDATE alert_rules SET enabled = CASE WHEN ?4 < 0 THEN 1 - enabled "
        "ELSE ?4 END, spec = json_set(spec, '$.enabled', json(CASE WHEN ?4 < 0 "
        "THEN iif(enabled, 'false', 'true') ELSE iif(?4, 'true', 'false') "
        "END)), updated_ms = ?6 WHERE id = ?2 AND ws = ?1",
        wsid, id, &r, NULL, proto_now_ms(), &changed);
    int64_t now_on =
        col_q_int(c->store.db, "SELECT enabled FROM alert_rules WHERE id = ?1",
                  id, NULL, 0);
    json_t *closed = NULL;
    if (rc == SQLITE_DONE && changed > 0 && !now_on &&
        (closed = col_rule_close(c, id, "the rule was disabled")) == NULL)
        rc = SQLITE_ERROR;
    if ((status = col_rule_done(c, rc, changed, reply)) != 0) {
        json_decref(closed);
        return status;
    }
    col_rule_closed(c, id, ws, closed);
    log_info(c->cmd_rid, "msg=\"rule toggled\" workspace=%s id=%lld enabled=%d",
             ws, (long long)id, (int)now_on);
    *reply =
        json_pack("{s:I, s:b}", "id", (json_int_t)id, "enabled", (int)now_on);
    return 200;
}

/* rule.test {workspace, rule | id}: the rule evaluated now by the engine,
 * changing nothing.  Queued for the engine: COL_DEFERRED, answered later
 * (server.c parks the connection meanwhile). */
static int col_rule_test(struct col *c, json_t *args, json_t **reply)
{
    const char *ws = col_rule_ws(args, reply);
    if (ws == NULL)
        return 400;
    sqlite3 *db = c->store.db;
    int64_t wsid = col_ws_id(db, ws, 0, 0);
    json_t *rule = json_object_get(args, "rule"), *loaded = NULL;
    if (rule == NULL) {
        int64_t id = col_rule_id(args, reply);
        if (id == 0)
            return 400;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT spec FROM alert_rules WHERE id = ?1 "
                               "AND ws = ?2",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, wsid);
            if (sqlite3_step(st) == SQLITE_ROW)
                loaded = json_loads((const char *)sqlite3_column_text(st, 0), 0,
                                    NULL);
            sqlite3_finalize(st);
        }
        if (loaded == NULL) {
            *reply = col_error("not_found", "no such rule", "id");
            return 404;
        }
        rule = loaded;
    }
    struct alert_rule r;
    char path[256], msg[512];
    int rc = alert_rule_parse(rule, &r, path, sizeof(path), msg, sizeof(msg));
    json_decref(loaded);
    if (rc != 0) {
        *reply = col_error("invalid_field", msg, path);
        return 400;
    }
    rc = col_alert_test(c, wsid, ws, &r, c->cmd_id);
    if (rc == 0)
        return COL_DEFERRED;
    alert_rule_free(&r);
    *reply = col_error("unavailable",
                       rc == -2 ? "too many rule tests are waiting: try again"
                                : "the alert engine is not ready: try again",
                       NULL);
    return 503;
}

int col_rule_command(struct col *c, const char *op, json_t *args,
                     json_t **reply)
{
    if (strcmp(op, "rule.test") == 0)
        return col_rule_test(c, args, reply);
    if (strcmp(op, "rule.create") == 0)
        return col_rule_put(c, args, reply, 0);
    if (strcmp(op, "rule.update") == 0)
        return col_rule_put(c, args, reply, 1);
    if (strcmp(op, "rule.delete") == 0)
        return col_rule_delete(c, args, reply);
    if (strcmp(op, "rule.toggle") == 0)
        return col_rule_toggle(c, args, reply);
    return -1;
}
