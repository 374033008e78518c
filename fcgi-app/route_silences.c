/*
 * route_silences.c: silences of the key's workspace.
 *
 *   POST   /api/v1/silences        {matchers, starts_at?, ends_at |
 *                                   duration, comment, who?}      (admin)
 *   GET    /api/v1/silences        state=active|pending|expired|all
 *                                   (default: not expired), newest first
 *   GET    /api/v1/silences/{id}
 *   DELETE /api/v1/silences/{id}   expire it now                  (admin)
 *
 * A silence holds back the notifications of the alerts its matchers
 * select (common/alert.h) while it is active; the alerts still change
 * state, and an alert whose notification it held records it in
 * silenced_by.  Writes are the collector commands silence.create and
 * silence.expire (collector/alert_cmd.c).
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "event.h"
#include "proto.h"

#define API_SILENCE_COLS                                                       \
    "id, matchers, starts_ms, ends_ms, comment, created_by, created_ms"

/* The silence of the current row (API_SILENCE_COLS) at now. */
static json_t *api_silence_row(sqlite3_stmt *st, int64_t now)
{
    int64_t starts = sqlite3_column_int64(st, 2),
            ends = sqlite3_column_int64(st, 3);
    json_t *m = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
    return json_pack("{s:I, s:o, s:o, s:o, s:s, s:s, s:o, s:s}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "matchers",
                     m ? m : json_object(), "starts_at", api_time(starts),
                     "ends_at", api_time(ends), "comment",
                     (const char *)sqlite3_column_text(st, 4), "created_by",
                     (const char *)sqlite3_column_text(st, 5), "created_at",
                     api_time(sqlite3_column_int64(st, 6)), "state",
                     now < starts ? "pending"
                     : now < ends ? "active"
                                  : "expired");
}

/* The silence of the current row as of now (not the request's start: an
 * expiry the collector just wrote is later than that). */
static json_t *api_silence_row_now(sqlite3_stmt *st)
{
    return api_silence_row(st, proto_now_ms());
}

/* Answer silence id with status, or 404. */
static int api_silence_send(struct api_req *r, int64_t id, int status)
{
    return api_send_ws_row(r,
                           "SELECT " API_SILENCE_COLS
                           " FROM silences WHERE id = ?1 AND ws = ?2",
                           id, "silence", status, api_silence_row_now);
}

/* Send a silence command (cmd consumed); the stored silence with status
 * on success, the command's answer otherwise. */
static int api_silence_cmd(struct api_req *r, json_t *cmd, const char *idkey,
                           int status_ok)
{
    int status;
    json_t *o = api_command_ok(r, cmd, &status);
    json_t *id = json_object_get(o, idkey);
    if (!json_is_integer(id))
        return o ? api_send_json(r, status, o, NULL) : -1;
    return api_silence_send(r, json_integer_value(id), status_ok);
}

/* An RFC 3339 time member of in, into *ms; 1 when present, 0 when absent,
 * -1 after answering 400. */
static int api_silence_time(struct api_req *r, json_t *in, const char *name,
                            int64_t *ms)
{
    json_t *v = json_object_get(in, name);
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || ev_parse_rfc3339(json_string_value(v), ms) != 0)
        return api_error(r, 400, "invalid_field", name,
                         "%s must be an RFC 3339 date-time", name);
    return 1;
}

int api_silences_create(struct api_req *r)
{
    static const char *const fields[] = {
        "matchers", "starts_at", "ends_at", "duration", "comment", "who", NULL};
    json_t *in = api_json_body(r, 1 << 20, fields, 0);
    if (in == NULL)
        return -1;
    int64_t starts = r->now_ms, ends = 0;
    int rc = api_silence_time(r, in, "starts_at", &starts);
    if (rc < 0 || (rc = api_silence_time(r, in, "ends_at", &ends)) < 0)
        return -1;
    json_t *dur = json_object_get(in, "duration");
    if ((rc == 1) == (dur != NULL))
        return api_error(r, 400, "invalid_field", "ends_at",
                         "give either ends_at or duration (e.g. \"2h\")");
    if (dur != NULL) {
        int64_t d = json_is_string(dur)
                        ? alert_duration_parse(json_string_value(dur))
                        : -1;
        if (d <= 0)
            return api_error(r, 400, "invalid_field", "duration",
                             "duration must be like \"30m\", \"2h\" or "
                             "\"7d\"");
        ends = starts + d;
    }
    const char *who = json_string_value(json_object_get(in, "who"));
    char whobuf[32];
    if (who == NULL) {
        snprintf(whobuf, sizeof(whobuf), "key %lld", (long long)r->key_id);
        who = whobuf;
    }
    json_t *cmd =
        json_pack("{s:s, s:s, s:I, s:I, s:s}", "op", "silence.create",
                  "workspace", r->workspace, "starts_ms", (json_int_t)starts,
                  "ends_ms", (json_int_t)ends, "who", who);
    if (json_object_get(in, "matchers") != NULL)
        json_object_set(cmd, "matchers", json_object_get(in, "matchers"));
    if (json_object_get(in, "comment") != NULL)
        json_object_set(cmd, "comment", json_object_get(in, "comment"));
    return api_silence_cmd(r, cmd, "id", 201);
}

int api_silences_list(struct api_req *r)
{
    static const char *const params[] = {"state", NULL};
    if (api_query_only(r, params) != 0)
        return -1;
    const char *state = api_query(r, "state");
    static const char *const states[] = {"active", "pending", "expired", "all",
                                         NULL};
    int which = -1;
    for (int i = 0; state != NULL && states[i]; i++)
        if (strcmp(state, states[i]) == 0)
            which = i;
    if (state != NULL && which < 0)
        return api_error(r, 400, "invalid_parameter", "state",
                         "state must be active, pending, expired or all, got "
                         "\"%.32s\"",
                         state);
    static const char *const where[] = {"starts_ms <= ?2 AND ends_ms > ?2",
                                        "starts_ms > ?2", "ends_ms <= ?2", "1",
                                        "ends_ms > ?2"};
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT " API_SILENCE_COLS " FROM silences WHERE ws = ?1 AND %s "
             "ORDER BY id DESC LIMIT 1000",
             where[which < 0 ? 4 : which]);
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db, sql, -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, r->now_ms);
    return api_send_rows(r, st, "silences", api_silence_row_now);
}

int api_silences_get(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "silence")) == 0)
        return -1;
    return api_silence_send(r, id, 200);
}

int api_silences_delete(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "silence")) == 0)
        return -1;
    return api_silence_cmd(r,
                           json_pack("{s:s, s:s, s:I}", "op", "silence.expire",
                                     "workspace", r->workspace, "id",
                                     (json_int_t)id),
                           "expired", 200);
}

/* ---- quiet hours ----
 *
 *   GET    /api/v1/quiet-hours   {start, end, timezone} or {} when none
 *   PUT    /api/v1/quiet-hours   {start: "22:00", end: "07:00",
 *                                 timezone: "Europe/Berlin"}  (admin)
 *   DELETE /api/v1/quiet-hours                                (admin)
 *
 * While they are on, notifications of alerts below critical are held back
 * (alerts.quiet); the alerts still change state.  An end before the start
 * spans midnight. */

/* "HH:MM" into minutes of the day; -1 if bad. */
static int api_hhmm(const char *s)
{
    int h, m;
    char tail;
    if (s == NULL || sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2 ||
        strlen(s) != 5 || h < 0 || h > 23 || m < 0 || m > 59)
        return -1;
    return h * 60 + m;
}

int api_quiet_get(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db,
                                     "SELECT start_min, end_min, tz FROM "
                                     "quiet_hours WHERE ws = ?1",
                                     -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    json_t *o = json_object();
    if (sqlite3_step(st) == SQLITE_ROW) {
        char a[24], b[24];
        int s = sqlite3_column_int(st, 0), e = sqlite3_column_int(st, 1);
        snprintf(a, sizeof(a), "%02d:%02d", s / 60, s % 60);
        snprintf(b, sizeof(b), "%02d:%02d", e / 60, e % 60);
        json_object_set_new(o, "start", json_string(a));
        json_object_set_new(o, "end", json_string(b));
        json_object_set_new(
            o, "timezone",
            json_string((const char *)sqlite3_column_text(st, 2)));
    }
    sqlite3_finalize(st);
    return api_send_json(r, 200, o, NULL);
}

/* Send quiet.set or quiet.clear, then answer what is stored. */
static int api_quiet_cmd(struct api_req *r, json_t *cmd)
{
    int status;
    return api_command_ok(r, cmd, &status) ? api_quiet_get(r) : -1;
}

int api_quiet_put(struct api_req *r)
{
    static const char *const fields[] = {"start", "end", "timezone", NULL};
    json_t *in = api_json_body(r, 1 << 16, fields, 0);
    if (in == NULL)
        return -1;
    int s = api_hhmm(json_string_value(json_object_get(in, "start")));
    int e = api_hhmm(json_string_value(json_object_get(in, "end")));
    if (s < 0)
        return api_error(r, 400, "invalid_field", "start",
                         "start must be a time HH:MM, e.g. \"22:00\"");
    if (e < 0)
        return api_error(r, 400, "invalid_field", "end",
                         "end must be a time HH:MM, e.g. \"07:00\"");
    const char *tz = json_string_value(json_object_get(in, "timezone"));
    json_t *cmd = json_pack("{s:s, s:s, s:i, s:i, s:s}", "op", "quiet.set",
                            "workspace", r->workspace, "start_min", s,
                            "end_min", e, "tz", tz ? tz : "");
    return api_quiet_cmd(r, cmd);
}

int api_quiet_delete(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    return api_quiet_cmd(r, json_pack("{s:s, s:s}", "op", "quiet.clear",
                                      "workspace", r->workspace));
}
