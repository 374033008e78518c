/*
 * cmd.c: configuration writes, run by the collector as JSON commands.
 *
 * The API workers and tt-ctl never write the database: they send a command
 * {"op": "...", ...} and relay the answer.  Each command validates its
 * arguments (a bad one answers 400 naming the field and quoting the value)
 * and runs in its own transaction.  Answers use the API's one error shape.
 *
 *   key.create  {role, workspace, name}  -> 201 {id, key, prefix, ...}
 *   key.list    {workspace?}             -> 200 {keys: [...]}
 *   key.delete  {id}                     -> 200 {deleted: id}
 *   budget.set  {workspace, budgets}     -> 200 {created, updated, ...}
 *               (budget_cmd.c)
 *   rule.create, rule.update, rule.delete, rule.toggle (rule_cmd.c)
 *   alert.act   {workspace, action, ids, who, note} (alert_cmd.c)
 */
#include "collector.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "log.h"

/* Build the API's error object. */
json_t *col_error(const char *code, const char *message, const char *field)
{
    /* Messages quote the command's input, cut to a length: keep them
     * valid UTF-8 or jansson refuses them. */
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", message);
    ev_utf8_clean(msg);
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (field != NULL)
        json_object_set_new(e, "field", json_string(field));
    return json_pack("{s:o}", "error", e);
}

int col_bad(json_t **reply, const char *field, const json_t *v,
            const char *what)
{
    char got[96] = "", msg[384];
    if (v != NULL)
        ev_describe(v, got, sizeof(got));
    snprintf(msg, sizeof(msg), "%s %s%s%s", field, what, v ? ", got " : "",
             got);
    *reply = col_error("invalid_field", msg, field);
    return 400;
}

int64_t col_q_int(sqlite3 *db, const char *sql, int64_t a, const char *b,
                  int64_t def)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return def;
    sqlite3_bind_int64(st, 1, a);
    if (b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int64_t v =
        sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : def;
    sqlite3_finalize(st);
    return v;
}

int col_run(sqlite3 *db, const char *sql, int64_t a, const char *b, int64_t c3)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    int n = sqlite3_bind_parameter_count(st);
    sqlite3_bind_int64(st, 1, a);
    if (n >= 2 && b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    if (n >= 3)
        sqlite3_bind_int64(st, 3, c3);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

int64_t col_ws_id(sqlite3 *db, const char *ws, int make, int64_t now)
{
    if (make && col_q_int(db,
                          "INSERT OR IGNORE INTO workspaces(name, created_ms) "
                          "VALUES(?2, ?1)",
                          now, ws, 0) != 0)
        return 0;
    return col_q_int(db, "SELECT id FROM workspaces WHERE name = ?2", 0, ws, 0);
}

/* Read an optional string argument; NULL when absent, "" on wrong type. */
static const char *col_arg_str(json_t *args, const char *name)
{
    json_t *v = json_object_get(args, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    return json_is_string(v) ? json_string_value(v) : "";
}

/* One api_keys row as JSON (never the key itself: it is not stored). */
static json_t *col_key_row(sqlite3_stmt *st)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:I}", "id",
                  (json_int_t)sqlite3_column_int64(st, 0), "prefix",
                  (const char *)sqlite3_column_text(st, 1), "name",
                  (const char *)sqlite3_column_text(st, 2), "role",
                  (const char *)sqlite3_column_text(st, 3), "workspace",
                  (const char *)sqlite3_column_text(st, 4), "created_ms",
                  (json_int_t)sqlite3_column_int64(st, 5));
    char ts[40];
    ev_format_rfc3339(sqlite3_column_int64(st, 5), ts, sizeof(ts));
    json_object_set_new(o, "created", json_string(ts));
    if (sqlite3_column_type(st, 6) == SQLITE_NULL)
        json_object_set_new(o, "last_used", json_null());
    else {
        ev_format_rfc3339(sqlite3_column_int64(st, 6), ts, sizeof(ts));
        json_object_set_new(o, "last_used", json_string(ts));
    }
    return o;
}

/* key.create: make a key and show it once. */
static int col_key_create(struct col *c, json_t *args, json_t **reply)
{
    const char *role = col_arg_str(args, "role");
    const char *ws = col_arg_str(args, "workspace");
    const char *name = col_arg_str(args, "name");
    char msg[256];
    if (role == NULL || key_role_parse(role) == KEY_ROLE_NONE) {
        snprintf(msg, sizeof(msg),
                 "role must be one of admin, read, ingest, got \"%.64s\"",
                 role ? role : "");
        *reply = col_error("invalid_field", msg, "role");
        return 400;
    }
    if (ws == NULL)
        ws = "default";
    if (!key_workspace_ok(ws)) {
        snprintf(msg, sizeof(msg),
                 "workspace must be 1-64 of a-z, 0-9, '-' and '_', got "
                 "\"%.64s\"",
                 ws);
        *reply = col_error("invalid_field", msg, "workspace");
        return 400;
    }
    if (name == NULL)
        name = "";
    if (strlen(name) > 128) {
        *reply =
            col_error("invalid_field", "name is longer than 128 bytes", "name");
        return 400;
    }
    char key[KEY_LEN + 1], hash[KEY_HASH_HEX + 1];
    if (key_generate(key) != 0) {
        *reply = col_error("internal", "random source failed", NULL);
        return 500;
    }
    key_hash(key, KEY_LEN, hash);
    sqlite3_stmt *st;
    int64_t now = proto_now_ms();
    if (sqlite3_prepare_v2(c->store.db,
                           "INSERT INTO api_keys(hash, prefix, name, role, "
                           "workspace, created_ms) VALUES(?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(c->store.db), NULL);
        return 500;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, KEY_PREFIX_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ws, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        *reply = col_error("internal", sqlite3_errmsg(c->store.db), NULL);
        return 500;
    }
    int64_t id = sqlite3_last_insert_rowid(c->store.db);
    char ts[40];
    ev_format_rfc3339(now, ts, sizeof(ts));
    *reply =
        json_pack("{s:I, s:s, s:s%, s:s, s:s, s:s, s:s}", "id", (json_int_t)id,
                  "key", key, "prefix", key, (size_t)KEY_PREFIX_LEN, "name",
                  name, "role", role, "workspace", ws, "created", ts);
    log_info(c->cmd_rid, "msg=\"key created\" id=%lld role=%s workspace=%s",
             (long long)id, role, ws);
    return 201;
}

/* key.list: every active key, optionally of one workspace. */
static int col_key_list(struct col *c, json_t *args, json_t **reply)
{
    const char *ws = col_arg_str(args, "workspace");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->store.db,
                           "SELECT id, prefix, name, role, workspace, "
                           "created_ms, last_used_ms FROM api_keys WHERE "
                           "revoked_ms IS NULL AND (?1 IS NULL OR "
                           "workspace = ?1) ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(c->store.db), NULL);
        return 500;
    }
    if (ws != NULL)
        sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    json_t *keys = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(keys, col_key_row(st));
    sqlite3_finalize(st);
    *reply = json_pack("{s:o}", "keys", keys);
    return 200;
}

/* key.delete: revoke a key; the last admin key cannot go. */
static int col_key_delete(struct col *c, json_t *args, json_t **reply)
{
    json_t *idv = json_object_get(args, "id");
    if (!json_is_integer(idv)) {
        *reply = col_error("invalid_field", "id must be an integer", "id");
        return 400;
    }
    int64_t id = json_integer_value(idv);
    sqlite3 *db = c->store.db;
    sqlite3_stmt *st;
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        return 503;
    }
    const char *role = NULL;
    char rolebuf[16] = "";
    sqlite3_prepare_v2(db,
                       "SELECT role FROM api_keys WHERE id = ? AND "
                       "revoked_ms IS NULL",
                       -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(rolebuf, sizeof(rolebuf), "%s", sqlite3_column_text(st, 0));
        role = rolebuf;
    }
    sqlite3_finalize(st);
    char msg[128];
    if (role == NULL) {
        col_store_rollback(&c->store);
        snprintf(msg, sizeof(msg), "no key with id %lld", (long long)id);
        *reply = col_error("not_found", msg, "id");
        return 404;
    }
    if (strcmp(role, "admin") == 0) {
        int admins = 0;
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM api_keys WHERE role = "
                           "'admin' AND revoked_ms IS NULL",
                           -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW)
            admins = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (admins <= 1) {
            col_store_rollback(&c->store);
            *reply = col_error("conflict",
                               "cannot delete the last admin key: create "
                               "another admin key first",
                               "id");
            return 409;
        }
    }
    sqlite3_prepare_v2(db, "UPDATE api_keys SET revoked_ms = ? WHERE id = ?",
                       -1, &st, NULL);
    sqlite3_bind_int64(st, 1, proto_now_ms());
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || col_store_commit(&c->store) != SQLITE_OK) {
        col_store_rollback(&c->store);
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        return 500;
    }
    log_info(c->cmd_rid, "msg=\"key revoked\" id=%lld", (long long)id);
    *reply = json_pack("{s:I}", "deleted", (json_int_t)id);
    return 200;
}

int col_command(struct col *c, const char *text, size_t len, json_t **reply)
{
    json_error_t jerr;
    json_t *args = json_loadb(text, len, 0, &jerr);
    const char *op = args ? col_arg_str(args, "op") : NULL;
    const char *rid = args ? col_arg_str(args, "request_id") : NULL;
    snprintf(c->cmd_rid, sizeof(c->cmd_rid), "%s", rid ? rid : "");
    int status;
    if (op == NULL) {
        *reply = col_error("bad_request", "command without \"op\"", "op");
        status = 400;
    } else if (strcmp(op, "key.create") == 0)
        status = col_key_create(c, args, reply);
    else if (strcmp(op, "key.list") == 0)
        status = col_key_list(c, args, reply);
    else if (strcmp(op, "key.delete") == 0)
        status = col_key_delete(c, args, reply);
    else if (strcmp(op, "budget.set") == 0)
        status = col_budget_set(c, args, reply);
    else if (strcmp(op, "alert.act") == 0)
        status = col_alert_act(c, args, reply);
    else if (strcmp(op, "silence.create") == 0)
        status = col_silence_create(c, args, reply);
    else if (strcmp(op, "silence.expire") == 0)
        status = col_silence_expire(c, args, reply);
    else if (strcmp(op, "quiet.set") == 0 || strcmp(op, "quiet.clear") == 0)
        status = col_quiet_set(c, args, reply, strcmp(op, "quiet.clear") == 0);
    else if (strncmp(op, "rule.", 5) == 0 &&
             (status = col_rule_command(c, op, args, reply)) >= 0)
        ;
    else if ((status = col_notify_command(c, op, args, reply)) >= 0)
        ;
    else {
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown command \"%.64s\"", op);
        *reply = col_error("bad_request", msg, "op");
        status = 400;
    }
    /* The alert engine reloads rules (and the budgets they read). */
    if (status < 300 && op != NULL &&
        ((strncmp(op, "rule.", 5) == 0 && strcmp(op, "rule.test") != 0) ||
         strcmp(op, "budget.set") == 0))
        col_alert_rules_changed(c);
    /* Workers cache keys: tell them the table changed (a revoked key must
     * stop working on the next request). */
    if (status < 300 && op != NULL && strncmp(op, "key.", 4) == 0 &&
        strcmp(op, "key.list") != 0 && c->live != NULL)
        atomic_fetch_add(&live_header(c->live)->health.keys_gen, 1);
    json_decref(args); /* op points into args */
    c->cmd_rid[0] = '\0';
    return status;
}
