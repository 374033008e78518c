/*
 * notify_cmd.c: the collector's notification commands: channels, their
 * routes, the dispatcher's delivery outcomes, the in-app inbox.
 *
 *   channel.create {workspace, name, type, config, enabled?}  -> channel
 *   channel.update {workspace, id, name?, config?, enabled?}  -> channel
 *   channel.delete {workspace, id}                             -> {deleted}
 *   channel.test   {workspace, id}                  -> {notification_id}
 *   routes.set     {workspace, routes: {critical: [ids], high, medium, low,
 *                   fallback: [id]}}                           -> {}
 *   notify.result  {results: [{id, outcome: sent|retry|failed, code,
 *                   error, latency_ms, ts_ms, next_ms}]}       -> {applied}
 *   inbox.read     {workspace, ids | all: true}                -> {changed}
 *
 * The dispatcher (notify/) only reads the database: every outcome it sees
 * comes back here as notify.result and is written in one transaction:
 * the attempt, the notification's new status, the channel's run of
 * notifications that failed for good (at notify_disable_after in a row
 * the channel is disabled, its waiting notifications fail over and the
 * inbox says why; tries to be retried do not count), and, for a notification
 * that failed for good, a copy to the workspace's fallback channel.  An in-app
 * channel's delivery is its inbox row, written here and published to the event
 * ring for the relay. Outcomes of notifications no longer waiting are ignored,
 * so a result sent twice (the dispatcher restarted) is harmless.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "keys.h"
#include "log.h"

#define COL_CHANNELS_WS_MAX 200 /* channels one workspace may have */
#define COL_RESULTS_MAX     1000

static const char *const col_routes[] = {"critical", "high", "medium", "low",
                                         "fallback"};
#define COL_NROUTES 5

/* The workspace of args ("workspace"), its id into *ws; NULL after an
 * answer when bad or unknown (make: created when unknown). */
static const char *col_nws(struct col *c, json_t *args, int make, int64_t *ws,
                           json_t **reply, int *status)
{
    json_t *v = json_object_get(args, "workspace");
    const char *name = json_string_value(v);
    if (name == NULL || !key_workspace_ok(name)) {
        *status = col_bad(reply, "workspace", v,
                          "must be 1-64 of a-z, 0-9, '-' and '_'");
        return NULL;
    }
    *ws = col_ws_id(c->store.db, name, make, proto_now_ms());
    if (*ws <= 0 && !make) {
        *reply = col_error("not_found", "no such channel", "id");
        *status = 404;
        return NULL;
    }
    return name;
}

int col_channel_in_ws(sqlite3 *db, int64_t id, const char *workspace)
{
    return col_q_int(db,
                     "SELECT count(*) FROM channels WHERE id = ?1 AND ws = "
                     "(SELECT id FROM workspaces WHERE name = ?2)",
                     id, workspace, 0) > 0;
}

/* A channel's name: 1..64 bytes of printable text. */
static int col_channel_name_ok(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL || json_string_length(v) == 0 || json_string_length(v) > 64 ||
        strlen(s) != json_string_length(v))
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Begin a transaction or answer 503. */
static int col_nbegin(struct col *c, json_t **reply)
{
    if (col_store_begin(&c->store) == SQLITE_OK)
        return 0;
    *reply = col_error("unavailable", sqlite3_errmsg(c->store.db), NULL);
    return -1;
}

/* Commit and answer ok (taken; 200), or roll back and answer 500 (or 409
 * for a taken name). */
static int col_ncommit(struct col *c, int rc, json_t **reply, json_t *ok)
{
    sqlite3 *db = c->store.db;
    if (rc == SQLITE_DONE && col_store_commit(&c->store) == SQLITE_OK) {
        *reply = ok;
        return 200;
    }
    json_decref(ok);
    int ext = sqlite3_extended_errcode(db);
    *reply =
        ext == SQLITE_CONSTRAINT_UNIQUE
            ? col_error("conflict", "a channel of this workspace has that name",
                        "name")
            : col_error("internal", sqlite3_errmsg(db), NULL);
    col_store_rollback(&c->store);
    return ext == SQLITE_CONSTRAINT_UNIQUE ? 409 : 500;
}

/* Validate args' config for type t (prev: the stored one) into *out. */
static int col_channel_config(int t, json_t *args, const json_t *prev,
                              json_t **out, json_t **reply)
{
    char path[128], msg[512];
    json_t *in = json_object_get(args, "config");
    json_t *empty = in == NULL ? json_object() : NULL;
    int rc = channel_config_check(t, in ? in : empty, prev, out, path,
                                  sizeof(path), msg, sizeof(msg));
    json_decref(empty);
    if (rc == 0)
        return 0;
    *reply = col_error("invalid_field", msg, path);
    return -1;
}

static int col_channel_put(struct col *c, json_t *args, json_t **reply,
                           int update)
{
    int status = 0;
    int64_t ws, id = 0;
    if (col_nws(c, args, !update, &ws, reply, &status) == NULL)
        return status;
    sqlite3 *db = c->store.db;
    json_t *namev = json_object_get(args, "name"),
           *env = json_object_get(args, "enabled");
    if ((namev != NULL || !update) && !col_channel_name_ok(namev))
        return col_bad(reply, "name", namev,
                       "must be 1 to 64 bytes of printable text");
    if (env != NULL && !json_is_boolean(env))
        return col_bad(reply, "enabled", env, "must be true or false");
    int type;
    json_t *prev = NULL;
    if (update) {
        id = json_integer_value(json_object_get(args, "id"));
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT type, config FROM channels WHERE id = "
                               "?1 AND ws = ?2",
                               -1, &st, NULL) != SQLITE_OK)
            return 500;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ws);
        type = -1;
        if (sqlite3_step(st) == SQLITE_ROW) {
            type = channel_type_parse((const char *)sqlite3_column_text(st, 0));
            prev =
                json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        }
        sqlite3_finalize(st);
        if (type < 0 || prev == NULL) {
            json_decref(prev);
            *reply = col_error("not_found", "no such channel", "id");
            return 404;
        }
        json_t *tv = json_object_get(args, "type");
        if (tv != NULL && channel_type_parse(json_string_value(tv)) != type) {
            json_decref(prev);
            return col_bad(reply, "type", tv,
                           "cannot change: create another channel");
        }
    } else {
        json_t *tv = json_object_get(args, "type");
        type = channel_type_parse(json_string_value(tv));
        if (type < 0)
            return col_bad(reply, "type", tv,
                           "must be email, slack, pagerduty, webhook or "
                           "in_app");
        if (col_q_int(db, "SELECT count(*) FROM channels WHERE ws = ?1", ws,
                      NULL, 0) >= COL_CHANNELS_WS_MAX) {
            *reply = col_error("limit", "a workspace has 200 channels at most",
                               NULL);
            return 409;
        }
    }
    json_t *config = NULL;
    if ((update && json_object_get(args, "config") == NULL)
            ? (config = json_incref(prev)) == NULL
            : col_channel_config(type, args, prev, &config, reply) != 0) {
        json_decref(prev);
        return 400;
    }
    json_decref(prev);
    char *text = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(config);
    if (text == NULL) {
        *reply = col_error("internal", "out of memory", NULL);
        return 500;
    }
    if (col_nbegin(c, reply) != 0) {
        free(text);
        return 503;
    }
    int64_t now = proto_now_ms();
    sqlite3_stmt *st;
    int rc = SQLITE_ERROR;
    /* Enabling (again) clears the run of failures and the reason. */
    const char *sql =
        update ? "UPDATE channels SET name = coalesce(?3, name), config = ?4, "
                 "enabled = coalesce(?5, enabled), disabled_reason = "
                 "iif(?5 = 1, NULL, disabled_reason), failures = iif(?5 = 1, "
                 "0, failures), updated_ms = ?6 WHERE id = ?1 AND ws = ?2"
               : "INSERT INTO channels(ws, name, type, config, enabled, "
                 "created_ms, updated_ms) VALUES(?2, ?3, ?7, ?4, "
                 "coalesce(?5, 1), ?6, ?6)";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ws);
        if (namev != NULL)
            sqlite3_bind_text(st, 3, json_string_value(namev), -1,
                              SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
        if (env != NULL)
            sqlite3_bind_int(st, 5, json_is_true(env));
        sqlite3_bind_int64(st, 6, now);
        sqlite3_bind_text(st, 7, channel_type_name(type), -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(text);
    if (!update && rc == SQLITE_DONE)
        id = sqlite3_last_insert_rowid(db);
    status =
        col_ncommit(c, rc, reply, json_pack("{s:I}", "id", (json_int_t)id));
    if (status != 200)
        return status;
    log_info(c->cmd_rid, "msg=\"channel %s\" id=%lld type=%s",
             update ? "updated" : "created", (long long)id,
             channel_type_name(type));
    return update ? 200 : 201;
}

/* Fail notification n for good with error: status failed and, unless it
 * is a fallback copy itself or its channel is the fallback, a copy to the
 * workspace's fallback channel, unless that channel already has this
 * event of the alert or a later one (a late copy would arrive after it:
 * a "firing" after the "resolved"). */
static int col_notify_fail(sqlite3 *db, int64_t n, const char *error,
                           int64_t now)
{
    sqlite3_stmt *st;
    int rc = col_run(db,
                     "UPDATE notifications SET status = 'failed', "
                     "last_error = ?2, updated_ms = ?3 WHERE id = ?1",
                     n, error, now);
    if (rc != SQLITE_DONE)
        return rc;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO notifications(ws, alert_id, event, channel_id, "
            "status, created_ms, updated_ms, fallback_of) SELECT n.ws, "
            "n.alert_id, n.event, r.channel_id, 'pending', ?2, ?2, n.id FROM "
            "notifications n JOIN channel_routes r ON r.ws = n.ws AND "
            "r.route = 'fallback' JOIN channels c ON c.id = r.channel_id AND "
            "c.enabled WHERE n.id = ?1 AND n.fallback_of IS NULL AND "
            "r.channel_id != n.channel_id AND NOT EXISTS (SELECT 1 FROM "
            "notifications x WHERE n.alert_id != 0 AND x.alert_id = "
            "n.alert_id AND x.channel_id = r.channel_id AND (x.event = "
            "n.event OR coalesce(x.fallback_of, x.id) > n.id))",
            -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, n);
    sqlite3_bind_int64(st, 2, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

/* Fail every waiting notification of channel ch for good with error
 * (oldest first, each to the fallback: col_notify_fail). */
static int col_channel_fail_waiting(sqlite3 *db, int64_t ch, const char *error,
                                    int64_t now)
{
    for (;;) {
        int64_t n = col_q_int(db,
                              "SELECT coalesce(min(id), 0) FROM notifications "
                              "WHERE channel_id = ?1 AND status IN ('pending', "
                              "'retrying')",
                              ch, NULL, -1);
        if (n <= 0)
            return n == 0 ? SQLITE_DONE : SQLITE_ERROR;
        int rc = col_notify_fail(db, n, error, now); /* n waits no more */
        if (rc != SQLITE_DONE)
            return rc;
    }
}

/* Add an inbox row of workspace ws. */
static int col_inbox_add(struct col *c, int64_t ws, const char *kind,
                         const char *severity, const char *title,
                         const char *body, int64_t alert_id, int64_t nid,
                         int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->store.db,
                           "INSERT INTO inbox(ws, ts_ms, kind, severity, "
                           "title, body, alert_id, notification_id) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, nullif(?7, 0), "
                           "nullif(?8, 0))",
                           -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, severity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, alert_id);
    sqlite3_bind_int64(st, 8, nid);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

/* Disable channel ch (of workspace ws, named name) after its run of
 * failures: its waiting notifications fail over; the inbox says so. */
static int col_channel_disable(struct col *c, int64_t ch, int64_t ws,
                               const char *name, int failures,
                               const char *error, int64_t now)
{
    sqlite3 *db = c->store.db;
    char reason[768], title[160];
    snprintf(reason, sizeof(reason),
             "disabled after %d consecutive failed deliveries; the last: %s",
             failures, error);
    snprintf(title, sizeof(title), "Channel \"%s\" was disabled", name);
    int rc = col_run(db,
                     "UPDATE channels SET enabled = 0, disabled_reason "
                     "= ?2, updated_ms = ?3 WHERE id = ?1",
                     ch, reason, now);
    if (rc == SQLITE_DONE)
        rc = col_inbox_add(c, ws, "channel_disabled", "high", title, reason, 0,
                           0, now);
    if (rc == SQLITE_DONE)
        rc = col_channel_fail_waiting(db, ch, "the channel is disabled", now);
    log_warn(c->cmd_rid, "msg=\"channel disabled\" id=%lld failures=%d",
             (long long)ch, failures);
    return rc;
}

/* Publish an inbox row to the event ring (for the relay). */
static void col_inbox_publish(struct col *c, int64_t ws, int64_t since_id,
                              int64_t now)
{
    sqlite3_stmt *st;
    if (c->live == NULL ||
        sqlite3_prepare_v2(c->store.db,
                           "SELECT w.name, json_object('type', 'inbox', 'id', "
                           "i.id, 'kind', i.kind, 'severity', i.severity, "
                           "'title', i.title, 'body', i.body, 'alert', "
                           "i.alert_id) FROM inbox i JOIN workspaces w ON "
                           "w.id = i.ws WHERE i.ws = ?1 AND i.id > ?2 ORDER "
                           "BY i.id",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, since_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 1);
        live_ring_publish(c->live, SHM_RING_NOTIFY,
                          (const char *)sqlite3_column_text(st, 0), text,
                          strlen(text), now);
    }
    sqlite3_finalize(st);
}

/* The in-app delivery of notification n: its inbox row. */
static int col_inbox_deliver(struct col *c, int64_t n, int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            c->store.db,
            "INSERT INTO inbox(ws, ts_ms, kind, severity, title, body, "
            "alert_id, notification_id) SELECT n.ws, ?2, n.event, "
            "coalesce(a.severity, 'low'), iif(n.event = 'test', 'Test "
            "notification', coalesce(a.rule_name, '') || ': ' || n.event), "
            "iif(n.event = 'test', 'This channel works.', "
            "coalesce(a.rule_name, "
            "'') || ' (' || coalesce(a.group_json, '{}') || ') is ' || "
            "coalesce(a.status, '') || '.'), nullif(n.alert_id, 0), n.id FROM "
            "notifications n LEFT JOIN alerts a ON a.id = n.alert_id WHERE "
            "n.id = ?1",
            -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, n);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

/* Apply one outcome r (inside the transaction); *inbox_ws gets the
 * workspace whose inbox grew (0: none). */
static int col_result_one(struct col *c, json_t *r, int64_t now,
                          int64_t *inbox_ws)
{
    sqlite3 *db = c->store.db;
    int64_t n = json_integer_value(json_object_get(r, "id"));
    const char *outcome = json_string_value(json_object_get(r, "outcome"));
    const char *error = json_string_value(json_object_get(r, "error"));
    json_t *codev = json_object_get(r, "code");
    int64_t code = json_integer_value(codev);
    int64_t ts = json_integer_value(json_object_get(r, "ts_ms"));
    int64_t latency = json_integer_value(json_object_get(r, "latency_ms"));
    int64_t next = json_integer_value(json_object_get(r, "next_ms"));
    int64_t attempt = json_integer_value(json_object_get(r, "attempt"));
    /* Only a failure of the channel's own counts towards disabling it
     * (not a deleted alert or channel). */
    int fault = !json_is_false(json_object_get(r, "channel_fault"));
    if (outcome == NULL ||
        (strcmp(outcome, "sent") != 0 && strcmp(outcome, "retry") != 0 &&
         strcmp(outcome, "failed") != 0))
        return SQLITE_DONE; /* not ours to judge: dropped */
    sqlite3_stmt *st;
    /* The notification must still wait for this very try (attempt: its
     * number), or the outcome is stale: one sent again after a lost
     * answer is not counted twice. */
    int64_t ch = 0, ws = 0;
    char type[16] = "", name[72] = "";
    int failures = 0, enabled = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT n.channel_id, n.ws, c.type, c.name, "
                           "c.failures, c.enabled FROM notifications n LEFT "
                           "JOIN channels c ON c.id = n.channel_id AND c.ws = "
                           "n.ws WHERE n.id = ?1 AND n.status IN ('pending', "
                           "'retrying') AND n.attempts = ?2 - 1",
                           -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, n);
    sqlite3_bind_int64(st, 2, attempt);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ch = sqlite3_column_int64(st, 0);
        ws = sqlite3_column_int64(st, 1);
        snprintf(type, sizeof(type), "%s",
                 sqlite3_column_text(st, 2)
                     ? (const char *)sqlite3_column_text(st, 2)
                     : "");
        snprintf(name, sizeof(name), "%s",
                 sqlite3_column_text(st, 3)
                     ? (const char *)sqlite3_column_text(st, 3)
                     : "");
        failures = sqlite3_column_int(st, 4);
        enabled = sqlite3_column_int(st, 5);
        fault &= type[0] != '\0'; /* the channel is gone */
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SQLITE_DONE : SQLITE_ERROR;
    int sent = strcmp(outcome, "sent") == 0;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO notification_attempts("
                           "notification_id, ts_ms, outcome, code, error, "
                           "latency_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, n);
    sqlite3_bind_int64(st, 2, ts > 0 ? ts : now);
    sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
    if (json_is_integer(codev))
        sqlite3_bind_int64(st, 4, code);
    if (error != NULL)
        sqlite3_bind_text(st, 5, error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, latency);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (sqlite3_prepare_v2(db,
                           "UPDATE notifications SET attempts = attempts + 1, "
                           "status = ?2, last_error = ?3, last_code = ?4, "
                           "next_ms = ?5, sent_ms = iif(?2 = 'sent', ?6, "
                           "NULL), updated_ms = ?6 WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, n);
    sqlite3_bind_text(st, 2,
                      sent                            ? "sent"
                      : strcmp(outcome, "retry") == 0 ? "retrying"
                                                      : "pending",
                      -1, SQLITE_STATIC);
    if (error != NULL)
        sqlite3_bind_text(st, 3, error, -1, SQLITE_TRANSIENT);
    if (json_is_integer(codev))
        sqlite3_bind_int64(st, 4, code);
    sqlite3_bind_int64(st, 5, next);
    sqlite3_bind_int64(st, 6, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    /* "failed" is final: failed over (col_notify_fail sets the status). */
    if (strcmp(outcome, "failed") == 0 &&
        (rc = col_notify_fail(db, n, error ? error : "failed", now)) !=
            SQLITE_DONE)
        return rc;
    if (sent && strcmp(type, "in_app") == 0) {
        rc = col_inbox_deliver(c, n, now);
        *inbox_ws = ws;
        if (rc != SQLITE_DONE)
            return rc;
    }
    /* The channel's run of notifications that failed for good (a try to be
     * retried is not one: a receiver down for a minute must not disable
     * it); one sent ends the run. */
    int failed = strcmp(outcome, "failed") == 0 && fault;
    if (!sent && !failed)
        return SQLITE_DONE;
    rc = col_run(db,
                 "UPDATE channels SET failures = iif(?3, 0, failures + 1), "
                 "last_error = iif(?3, last_error, ?2) WHERE id = ?1",
                 ch, error, sent);
    if (rc != SQLITE_DONE)
        return rc;
    if (!sent && enabled && failures + 1 >= c->conf.notify_disable_after) {
        rc = col_channel_disable(c, ch, ws, name, failures + 1,
                                 error ? error : "failed", now);
        *inbox_ws = ws;
    }
    return rc;
}

/* notify.result: the dispatcher's outcomes, in one transaction. */
static int col_notify_result(struct col *c, json_t *args, json_t **reply)
{
    json_t *rs = json_object_get(args, "results");
    if (!json_is_array(rs) || json_array_size(rs) > COL_RESULTS_MAX)
        return col_bad(reply, "results", rs,
                       "must be an array of at most 1000 outcomes");
    if (col_nbegin(c, reply) != 0)
        return 503;
    int64_t now = proto_now_ms();
    int64_t before = col_q_int(c->store.db,
                               "SELECT coalesce(max(id), 0) FROM "
                               "inbox",
                               0, NULL, 0);
    int64_t wss[COL_RESULTS_MAX];
    size_t nws = 0;
    int rc = SQLITE_DONE;
    /* Each outcome in a savepoint: one that cannot be written is left out
     * (logged), not the whole batch, which would come back forever. */
    for (size_t i = 0; rc == SQLITE_DONE && i < json_array_size(rs); i++) {
        int64_t ws = 0;
        rc = sqlite3_exec(c->store.db, "SAVEPOINT result", NULL, NULL, NULL) ==
                     SQLITE_OK
                 ? SQLITE_DONE
                 : SQLITE_ERROR;
        int one = rc == SQLITE_DONE
                      ? col_result_one(c, json_array_get(rs, i), now, &ws)
                      : rc;
        if (one != SQLITE_DONE) {
            log_warn(c->cmd_rid,
                     "msg=\"delivery outcome not written\" notification=%lld "
                     "error=\"%s\"",
                     (long long)json_integer_value(
                         json_object_get(json_array_get(rs, i), "id")),
                     sqlite3_errmsg(c->store.db));
            sqlite3_exec(c->store.db, "ROLLBACK TO result", NULL, NULL, NULL);
            ws = 0;
        }
        if (rc == SQLITE_DONE && sqlite3_exec(c->store.db, "RELEASE result",
                                              NULL, NULL, NULL) != SQLITE_OK)
            rc = SQLITE_ERROR;
        if (ws > 0)
            wss[nws++] = ws;
    }
    int status = col_ncommit(
        c, rc, reply,
        json_pack("{s:I}", "applied", (json_int_t)json_array_size(rs)));
    for (size_t i = 0; status == 200 && i < nws; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= wss[j] == wss[i];
        if (!seen)
            col_inbox_publish(c, wss[i], before, now);
    }
    return status;
}

/* The channel args names ("id") in its workspace into *id (*ws: the
 * workspace's id); 0, or the status after an answer (404 when none). */
static int col_channel_of(struct col *c, json_t *args, int64_t *ws, int64_t *id,
                          json_t **reply)
{
    int status = 0;
    if (col_nws(c, args, 0, ws, reply, &status) == NULL)
        return status;
    *id = json_integer_value(json_object_get(args, "id"));
    if (col_channel_in_ws(
            c->store.db, *id,
            json_string_value(json_object_get(args, "workspace"))))
        return 0;
    *reply = col_error("not_found", "no such channel", "id");
    return 404;
}

/* channel.delete: the channel, its routes; its waiting notifications
 * fail (to the fallback). */
static int col_channel_delete(struct col *c, json_t *args, json_t **reply)
{
    int64_t ws, id;
    int status = col_channel_of(c, args, &ws, &id, reply);
    if (status != 0)
        return status;
    sqlite3 *db = c->store.db;
    if (col_nbegin(c, reply) != 0)
        return 503;
    int64_t now = proto_now_ms();
    int rc = col_channel_fail_waiting(db, id, "the channel was deleted", now);
    if (rc == SQLITE_DONE)
        rc = col_run(db, "DELETE FROM channel_routes WHERE channel_id = ?1", id,
                     NULL, 0);
    if (rc == SQLITE_DONE)
        rc = col_run(db, "DELETE FROM channels WHERE id = ?1", id, NULL, 0);
    status = col_ncommit(c, rc, reply,
                         json_pack("{s:I}", "deleted", (json_int_t)id));
    if (status == 200)
        log_info(c->cmd_rid, "msg=\"channel deleted\" id=%lld", (long long)id);
    return status;
}

/* channel.test: a test notification for the channel, delivered like any
 * other (the API waits for its outcome). */
static int col_channel_test(struct col *c, json_t *args, json_t **reply)
{
    int64_t ws, id;
    int status = col_channel_of(c, args, &ws, &id, reply);
    if (status != 0)
        return status;
    sqlite3 *db = c->store.db;
    if (col_nbegin(c, reply) != 0)
        return 503;
    int64_t now = proto_now_ms();
    sqlite3_stmt *st;
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO notifications(ws, alert_id, event, "
                           "channel_id, status, created_ms, updated_ms) "
                           "VALUES(?1, 0, 'test', ?2, 'pending', ?3, ?3)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ws);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_int64(st, 3, now);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    int64_t nid = sqlite3_last_insert_rowid(db);
    return col_ncommit(c, rc, reply,
                       json_pack("{s:I}", "notification_id", (json_int_t)nid));
}

/* routes.set: replace the workspace's default routes. */
static int col_routes_set(struct col *c, json_t *args, json_t **reply)
{
    int status = 0;
    int64_t ws;
    if (col_nws(c, args, 1, &ws, reply, &status) == NULL)
        return status;
    sqlite3 *db = c->store.db;
    json_t *routes = json_object_get(args, "routes");
    if (!json_is_object(routes))
        return col_bad(reply, "routes", routes,
                       "must be an object of severity: [channel ids] and "
                       "fallback: [channel id]");
    const char *k;
    json_t *v;
    json_object_foreach(routes, k, v)
    {
        int known = -1;
        for (int i = 0; i < COL_NROUTES; i++)
            if (strcmp(k, col_routes[i]) == 0)
                known = i;
        char field[64];
        snprintf(field, sizeof(field), "routes.%.32s", k);
        if (known < 0)
            return col_bad(reply, field, NULL,
                           "is not critical, high, medium, low or fallback");
        if (!json_is_array(v) || json_array_size(v) > 20 ||
            (known == 4 && json_array_size(v) > 1))
            return col_bad(reply, field, v,
                           known == 4 ? "must be [] or [one channel id]"
                                      : "must be an array of at most 20 "
                                        "channel ids");
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            snprintf(field, sizeof(field), "routes.%.32s[%zu]", k, i);
            if (!json_is_integer(x) ||
                !col_channel_in_ws(
                    db, json_integer_value(x),
                    json_string_value(json_object_get(args, "workspace"))))
                return col_bad(reply, field, x,
                               "must be a channel of this workspace");
        }
    }
    if (col_nbegin(c, reply) != 0)
        return 503;
    int rc =
        col_run(db, "DELETE FROM channel_routes WHERE ws = ?1", ws, NULL, 0);
    json_object_foreach(routes, k, v)
    {
        for (size_t i = 0; rc == SQLITE_DONE && i < json_array_size(v); i++)
            rc = col_run(db,
                         "INSERT OR IGNORE INTO channel_routes(ws, route, "
                         "channel_id) VALUES(?1, ?2, ?3)",
                         ws, k, json_integer_value(json_array_get(v, i)));
    }
    return col_ncommit(c, rc, reply, json_object());
}

/* inbox.read: mark inbox rows (ids, or all) of the workspace read. */
static int col_inbox_read(struct col *c, json_t *args, json_t **reply)
{
    int status = 0;
    int64_t ws;
    if (col_nws(c, args, 1, &ws, reply, &status) == NULL)
        return status;
    json_t *ids = json_object_get(args, "ids");
    int all = json_is_true(json_object_get(args, "all"));
    if (!all && (!json_is_array(ids) || json_array_size(ids) > 10000))
        return col_bad(reply, "ids", ids,
                       "must be an array of at most 10000 inbox ids, or "
                       "give all: true");
    char *list = ids ? json_dumps(ids, JSON_COMPACT) : NULL;
    sqlite3_stmt *st;
    int rc = SQLITE_ERROR;
    int64_t changed = 0;
    if (col_nbegin(c, reply) != 0) {
        free(list);
        return 503;
    }
    if (sqlite3_prepare_v2(c->store.db,
                           "UPDATE inbox SET read_ms = ?2 WHERE ws = ?1 AND "
                           "read_ms IS NULL AND (?3 OR id IN (SELECT value "
                           "FROM json_each(?4)))",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ws);
        sqlite3_bind_int64(st, 2, proto_now_ms());
        sqlite3_bind_int(st, 3, all);
        sqlite3_bind_text(st, 4, list ? list : "[]", -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        changed = sqlite3_changes(c->store.db);
        sqlite3_finalize(st);
    }
    free(list);
    return col_ncommit(c, rc, reply,
                       json_pack("{s:I}", "changed", (json_int_t)changed));
}

int col_notify_command(struct col *c, const char *op, json_t *args,
                       json_t **reply)
{
    if (strcmp(op, "channel.create") == 0)
        return col_channel_put(c, args, reply, 0);
    if (strcmp(op, "channel.update") == 0)
        return col_channel_put(c, args, reply, 1);
    if (strcmp(op, "channel.delete") == 0)
        return col_channel_delete(c, args, reply);
    if (strcmp(op, "channel.test") == 0)
        return col_channel_test(c, args, reply);
    if (strcmp(op, "routes.set") == 0)
        return col_routes_set(c, args, reply);
    if (strcmp(op, "notify.result") == 0)
        return col_notify_result(c, args, reply);
    if (strcmp(op, "inbox.read") == 0)
        return col_inbox_read(c, args, reply);
    return -1;
}
