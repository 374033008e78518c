/*
 * alert_cmd.c: what people do to alerts (POST /api/v1/alerts/{id}/ack,
 * .../resolve, DELETE /api/v1/alerts/{id}, POST /api/v1/alerts/bulk).
 *
 *   alert.act {workspace, action: ack|resolve|delete, ids: [..], who,
 *              note}                        -> 200 {changed, ids: [..]}
 *   silence.create {workspace, matchers, starts_ms?, ends_ms, comment,
 *              who}                         -> 201 {id}
 *   silence.expire {workspace, id}          -> 200 {expired: id}
 *   quiet.set {workspace, start_min, end_min, tz}  -> 200 {}
 *   quiet.clear {workspace}                 -> 200 {}
 *
 * ack takes firing alerts to acknowledged; resolve takes any open alert
 * (pending, firing, acknowledged) to resolved and needs a note; delete
 * removes an alert and its timeline.  An alert of another workspace, or
 * in a state the action does not apply to, is left alone and not counted.
 * Each change is written to the alert's timeline (who, when, the note),
 * published to the event ring, and told to the engine (alert_eng.c), all
 * in one transaction per command.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "alert.h"
#include "keys.h"
#include "log.h"

/* Ids one command may name. */
#define COL_ALERT_IDS_MAX 10000

enum { ACT_ACK, ACT_RESOLVE, ACT_DELETE };

/* The statement of each action: ?1 id, ?2 ws, ?3 now, ?4 who, ?5 note;
 * returns rule_id, group_key, the status before. */
static const char *const col_act_sql[] = {
    [ACT_ACK] = "UPDATE alerts SET status = 'acknowledged', acked_ms = ?3, "
                "acked_by = ?4, notes = coalesce(?5, notes), updated_ms = ?3 "
                "WHERE id = ?1 AND ws = ?2 AND status = 'firing' RETURNING "
                "rule_id, group_key, 'firing'",
    [ACT_RESOLVE] =
        "UPDATE alerts SET status = 'resolved', resolved_ms = ?3, "
        "resolved_by = ?4, notes = ?5, updated_ms = ?3 WHERE id = ?1 AND ws "
        "= ?2 AND status IN ('pending', 'firing', 'acknowledged') RETURNING "
        "rule_id, group_key, 'open'",
    [ACT_DELETE] = "DELETE FROM alerts WHERE id = ?1 AND ws = ?2 RETURNING "
                   "rule_id, group_key, status",
};

/* Apply action to alert id; 1 when it changed, 0 when not, -1 on error.
 * What to tell the ring and the engine once it commits goes to after. */
static int col_act_one(struct col *c, int act, int64_t ws, int64_t id,
                       const char *who, const char *note, int64_t now,
                       json_t *after)
{
    sqlite3 *db = c->store.db;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, col_act_sql[act], -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ws);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_text(st, 4, who, -1, SQLITE_STATIC);
    if (note != NULL)
        sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -1;
    }
    int64_t rule = sqlite3_column_int64(st, 0);
    char key[2048];
    snprintf(key, sizeof(key), "%s", (const char *)sqlite3_column_text(st, 1));
    const char *before = (const char *)sqlite3_column_text(st, 2);
    int was_open = strcmp(before, "resolved") != 0;
    sqlite3_finalize(st);
    static const char *const kinds[] = {"acknowledged", "resolved", NULL};
    /* Deleted: its timeline goes; its notifications stay, so that those
     * still waiting (a PagerDuty resolve) go out and their ids are never
     * reused. */
    if (act == ACT_DELETE)
        rc = col_q_int(db, "DELETE FROM alert_events WHERE alert_id = ?1", id,
                       NULL, 0) == 0
                 ? SQLITE_DONE
                 : SQLITE_ERROR;
    else
        rc = col_alert_note(db, id, now, kinds[act], who, note);
    if (rc != SQLITE_DONE)
        return -1;
    /* The notifications of the change, in the same transaction. */
    if (act != ACT_DELETE && col_notify_enqueue(db, id, kinds[act], now) != 0)
        return -1;
    json_array_append_new(
        after, json_pack("{s:I, s:I, s:s, s:b}", "id", (json_int_t)id, "rule",
                         (json_int_t)rule, "key", key, "open", was_open));
    return 1;
}

int col_alert_act(struct col *c, json_t *args, json_t **reply)
{
    static const char *const acts[] = {"ack", "resolve", "delete"};
    json_t *wsv = json_object_get(args, "workspace");
    const char *wsname = json_string_value(wsv);
    if (wsname == NULL || !key_workspace_ok(wsname))
        return col_bad(reply, "workspace", wsv,
                       "must be 1-64 of a-z, 0-9, '-' and '_'");
    json_t *av = json_object_get(args, "action");
    int act = -1;
    for (int i = 0; i < 3 && json_is_string(av); i++)
        if (strcmp(json_string_value(av), acts[i]) == 0)
            act = i;
    if (act < 0)
        return col_bad(reply, "action", av, "must be ack, resolve or delete");
    json_t *ids = json_object_get(args, "ids");
    if (!json_is_array(ids) || json_array_size(ids) > COL_ALERT_IDS_MAX)
        return col_bad(reply, "ids", ids,
                       "must be an array of at most 10000 alert ids");
    for (size_t i = 0; i < json_array_size(ids); i++)
        if (!json_is_integer(json_array_get(ids, i)) ||
            json_integer_value(json_array_get(ids, i)) <= 0) {
            char f[32];
            snprintf(f, sizeof(f), "ids[%zu]", i);
            return col_bad(reply, f, json_array_get(ids, i),
                           "must be an alert id");
        }
    json_t *whov = json_object_get(args, "who"),
           *notev = json_object_get(args, "note");
    const char *who = json_string_value(whov);
    const char *note = json_string_value(notev);
    if (who == NULL || who[0] == '\0' || strlen(who) > 128)
        return col_bad(reply, "who", whov, "must be 1 to 128 bytes of text");
    if (notev != NULL && (note == NULL || strlen(note) > 4096))
        return col_bad(reply, "note", notev,
                       "must be text of at most 4096 bytes");
    if (act == ACT_RESOLVE && (note == NULL || note[0] == '\0'))
        return col_bad(reply, "note", notev,
                       "is required to resolve: say what was done");
    sqlite3 *db = c->store.db;
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        return 503;
    }
    int64_t now = proto_now_ms();
    int64_t ws = col_ws_id(db, wsname, 0, now);
    json_t *changed = json_array(), *after = json_array();
    int rc = 0;
    for (size_t i = 0; ws > 0 && rc >= 0 && i < json_array_size(ids); i++) {
        int64_t id = json_integer_value(json_array_get(ids, i));
        rc = col_act_one(c, act, ws, id, who, note, now, after);
        if (rc > 0)
            json_array_append_new(changed, json_integer(id));
    }
    if (rc < 0 || col_store_commit(&c->store) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        col_store_rollback(&c->store);
        json_decref(changed);
        json_decref(after);
        return 500;
    }
    /* Only what committed is told to the relay and the engine. */
    size_t k;
    json_t *a;
    json_array_foreach(after, k, a)
    {
        int64_t id = json_integer_value(json_object_get(a, "id"));
        if (act != ACT_DELETE)
            col_alert_publish(
                c, act == ACT_ACK ? "alert.acknowledged" : "alert.resolved", id,
                wsname, now);
        if (json_is_true(json_object_get(a, "open")))
            col_alert_control(c, json_integer_value(json_object_get(a, "rule")),
                              json_string_value(json_object_get(a, "key")),
                              act == ACT_ACK ? AS_ACKED : AS_OK);
    }
    json_decref(after);
    log_info(c->cmd_rid,
             "msg=\"alerts %s\" workspace=%s changed=%zu who=\"%s\"", acts[act],
             wsname, json_array_size(changed), who);
    *reply = json_pack("{s:i, s:o}", "changed", (int)json_array_size(changed),
                       "ids", changed);
    return 200;
}

/* ---- silences ---- */

int col_silence_create(struct col *c, json_t *args, json_t **reply)
{
    json_t *wsv = json_object_get(args, "workspace");
    const char *wsname = json_string_value(wsv);
    if (wsname == NULL || !key_workspace_ok(wsname))
        return col_bad(reply, "workspace", wsv,
                       "must be 1-64 of a-z, 0-9, '-' and '_'");
    char path[256], msg[512];
    json_t *m = NULL;
    if (alert_matchers_parse(json_object_get(args, "matchers"), &m, path,
                             sizeof(path), msg, sizeof(msg)) != 0) {
        *reply = col_error("invalid_field", msg, path);
        return 400;
    }
    int64_t now = proto_now_ms();
    json_t *sv = json_object_get(args, "starts_ms"),
           *ev = json_object_get(args, "ends_ms");
    int64_t starts = sv ? json_integer_value(sv) : now;
    int64_t ends = json_integer_value(ev);
    const char *comment = json_string_value(json_object_get(args, "comment"));
    const char *who = json_string_value(json_object_get(args, "who"));
    int status = 0;
    if ((sv != NULL && !json_is_integer(sv)) || starts < 0)
        status = col_bad(reply, "starts_at", NULL, "must be a time");
    else if (!json_is_integer(ev) || ends <= starts || ends <= now)
        status = col_bad(reply, "ends_at", NULL,
                         "must be in the future and after starts_at");
    else if (ends - starts > ALERT_SILENCE_MAX_MS)
        status = col_bad(reply, "ends_at", NULL,
                         "is more than 366 days after starts_at");
    else if (comment == NULL || comment[0] == '\0' || strlen(comment) > 4096)
        status = col_bad(reply, "comment", json_object_get(args, "comment"),
                         "is required: 1 to 4096 bytes saying why");
    else if (who == NULL || who[0] == '\0')
        status = col_bad(reply, "who", NULL, "is required");
    if (status != 0) {
        json_decref(m);
        return status;
    }
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(m);
    sqlite3 *db = c->store.db;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int rc = text ? col_store_begin(&c->store) : SQLITE_NOMEM;
    int64_t ws = rc == SQLITE_OK ? col_ws_id(db, wsname, 1, now) : 0;
    if (rc == SQLITE_OK && ws > 0 &&
        (rc = sqlite3_prepare_v2(db,
                                 "INSERT INTO silences(ws, matchers, "
                                 "starts_ms, ends_ms, comment, created_by, "
                                 "created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
                                 "?7)",
                                 -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ws);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, starts);
        sqlite3_bind_int64(st, 4, ends);
        sqlite3_bind_text(st, 5, comment, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, who, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, now);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        id = sqlite3_last_insert_rowid(db);
        sqlite3_finalize(st);
    }
    free(text);
    if (rc != SQLITE_OK || ws <= 0 ||
        col_store_commit(&c->store) != SQLITE_OK) {
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        col_store_rollback(&c->store);
        return 500;
    }
    log_info(c->cmd_rid,
             "msg=\"silence created\" workspace=%s id=%lld who=\"%s\"", wsname,
             (long long)id, who);
    *reply = json_pack("{s:I}", "id", (json_int_t)id);
    return 201;
}

int col_silence_expire(struct col *c, json_t *args, json_t **reply)
{
    const char *wsname = json_string_value(json_object_get(args, "workspace"));
    json_t *idv = json_object_get(args, "id");
    if (wsname == NULL || !json_is_integer(idv))
        return col_bad(reply, "id", idv, "must be a silence id");
    sqlite3 *db = c->store.db;
    int64_t now = proto_now_ms(), id = json_integer_value(idv);
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        return 503;
    }
    int64_t ws = col_ws_id(db, wsname, 0, now);
    sqlite3_stmt *st;
    int found = 0;
    if (ws > 0 &&
        sqlite3_prepare_v2(db,
                           "UPDATE silences SET ends_ms = min(ends_ms, ?3) "
                           "WHERE id = ?1 AND ws = ?2 RETURNING id",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ws);
        sqlite3_bind_int64(st, 3, now);
        found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    if (col_store_commit(&c->store) != SQLITE_OK) {
        col_store_rollback(&c->store);
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        return 500;
    }
    if (!found) {
        *reply = col_error("not_found", "no such silence", "id");
        return 404;
    }
    *reply = json_pack("{s:I}", "expired", (json_int_t)id);
    return 200;
}

/* ---- quiet hours ---- */

/* Time zones come from ICU's calendar, which takes the zone as an
 * argument (glibc reads TZ from the environment, which no thread may
 * change while others run). */

/* tz as ICU's string into id (n units); -1 when too long. */
static int col_tz_id(const char *tz, UChar *id, int32_t n)
{
    if (tz == NULL || strlen(tz) >= (size_t)n)
        return -1;
    u_uastrncpy(id, tz, n);
    return 0;
}

int col_quiet_tz_ok(const char *tz)
{
    UChar id[72], canon[72];
    UErrorCode err = U_ZERO_ERROR;
    UBool system = 0;
    if (tz == NULL || tz[0] == '\0' || col_tz_id(tz, id, 72) != 0)
        return 0;
    /* An unknown name is an error here (ucal_open would take it as GMT). */
    ucal_getCanonicalTimeZoneID(id, -1, canon, 72, &system, &err);
    return U_SUCCESS(err) && system;
}

int col_quiet_minute(const char *tz, int64_t ms)
{
    UChar id[72];
    UErrorCode err = U_ZERO_ERROR;
    if (col_tz_id(tz, id, 72) != 0)
        return -1;
    UCalendar *cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &err);
    if (U_FAILURE(err))
        return -1;
    ucal_setMillis(cal, (UDate)ms, &err);
    int h = ucal_get(cal, UCAL_HOUR_OF_DAY, &err);
    int m = ucal_get(cal, UCAL_MINUTE, &err);
    ucal_close(cal);
    return U_SUCCESS(err) ? h * 60 + m : -1;
}

int col_quiet_set(struct col *c, json_t *args, json_t **reply, int clear)
{
    const char *wsname = json_string_value(json_object_get(args, "workspace"));
    if (wsname == NULL || !key_workspace_ok(wsname))
        return col_bad(reply, "workspace", NULL, "is required");
    json_t *sv = json_object_get(args, "start_min"),
           *ev = json_object_get(args, "end_min");
    const char *tz = json_string_value(json_object_get(args, "tz"));
    if (!clear) {
        if (!json_is_integer(sv) || json_integer_value(sv) < 0 ||
            json_integer_value(sv) >= 1440)
            return col_bad(reply, "start", NULL, "must be a time HH:MM");
        if (!json_is_integer(ev) || json_integer_value(ev) < 0 ||
            json_integer_value(ev) >= 1440 ||
            json_integer_value(ev) == json_integer_value(sv))
            return col_bad(reply, "end", NULL,
                           "must be a time HH:MM other than start");
        if (!col_quiet_tz_ok(tz))
            return col_bad(reply, "timezone", json_object_get(args, "tz"),
                           "must be a time zone name such as Europe/Berlin");
    }
    sqlite3 *db = c->store.db;
    int64_t now = proto_now_ms();
    if (col_store_begin(&c->store) != SQLITE_OK) {
        *reply = col_error("unavailable", sqlite3_errmsg(db), NULL);
        return 503;
    }
    int64_t ws = col_ws_id(db, wsname, !clear, now);
    sqlite3_stmt *st;
    int rc = SQLITE_DONE;
    if (ws > 0 &&
        sqlite3_prepare_v2(db,
                           clear ? "DELETE FROM quiet_hours WHERE ws = ?1"
                                 : "INSERT OR REPLACE INTO quiet_hours VALUES("
                                   "?1, ?2, ?3, ?4, ?5)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ws);
        if (!clear) {
            sqlite3_bind_int64(st, 2, json_integer_value(sv));
            sqlite3_bind_int64(st, 3, json_integer_value(ev));
            sqlite3_bind_text(st, 4, tz, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, now);
        }
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_DONE || col_store_commit(&c->store) != SQLITE_OK) {
        col_store_rollback(&c->store);
        *reply = col_error("internal", sqlite3_errmsg(db), NULL);
        return 500;
    }
    *reply = json_object();
    return 200;
}

/* ---- the notification outbox ---- */

int col_notify_enqueue(sqlite3 *db, int64_t alert_id, const char *event,
                       int64_t now)
{
    sqlite3_stmt *st;
    /* One row per channel of the alert's rule and of its workspace's
     * default route for its severity (each channel once, channels of the
     * alert's workspace only), unless a silence or quiet hours held the
     * alert's notifications back.  Disabled channels get theirs too: the
     * dispatcher fails them over to the fallback route. */
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO notifications(ws, alert_id, event, channel_id, "
            "status, created_ms, updated_ms) SELECT a.ws, a.id, ?2, c.id, "
            "'pending', ?3, ?3 FROM alerts a JOIN channels c ON c.ws = a.ws "
            "WHERE a.id = ?1 AND a.silenced_by IS NULL AND a.quiet = 0 AND "
            "(c.id IN (SELECT j.value FROM alert_rules r, json_each(r.spec, "
            "'$.channels') j WHERE r.id = a.rule_id) OR c.id IN (SELECT "
            "channel_id FROM channel_routes WHERE ws = a.ws AND route = "
            "a.severity)) ORDER BY c.id",
            -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, alert_id);
    sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int col_alert_note(sqlite3 *db, int64_t alert_id, int64_t ts, const char *kind,
                   const char *actor, const char *note)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO alert_events(alert_id, ts_ms, kind, "
                           "actor, note) VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, alert_id);
    sqlite3_bind_int64(st, 2, ts);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
    if (note != NULL)
        sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}
