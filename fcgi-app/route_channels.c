/*
 * route_channels.c: notification channels, their routes, the delivery
 * history and the in-app inbox of the key's workspace.
 *
 *   GET    /api/v1/channels                 every channel (config redacted)
 *   POST   /api/v1/channels                 {name, type, config, enabled?}
 *                                                                 (admin)
 *   GET    /api/v1/channels/{id}
 *   PUT    /api/v1/channels/{id}            {name?, config?, enabled?}
 *                                                                 (admin)
 *   DELETE /api/v1/channels/{id}                                  (admin)
 *   POST   /api/v1/channels/{id}/test       send a test message, answer
 *                                           its delivery's outcome (admin)
 *   GET    /api/v1/channels/routes          {critical: [ids], ...,
 *                                            fallback: [id]}
 *   PUT    /api/v1/channels/routes          the same                (admin)
 *   GET    /api/v1/notifications/history    channel, alert, status, from,
 *                                           to, cursor, limit
 *   GET    /api/v1/notifications/inbox      unread=true, cursor, limit
 *   POST   /api/v1/notifications/inbox/read {ids} or {all: true}
 *
 * Secrets never leave: every config is shown through
 * channel_config_redact().  Writes are collector commands
 * (collector/notify_cmd.c); deliveries are tt-notify's (notify/).
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "event.h"
#include "proto.h"

#define API_CHANNEL_COLS                                                       \
    "id, name, type, config, enabled, disabled_reason, failures, "             \
    "last_error, created_ms, updated_ms"

/* The channel of the current row (API_CHANNEL_COLS), redacted. */
static json_t *api_channel_row(sqlite3_stmt *st)
{
    int type = channel_type_parse((const char *)sqlite3_column_text(st, 2));
    json_t *stored =
        json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
    json_t *shown = stored ? channel_config_redact(type, stored) : NULL;
    json_decref(stored);
    const unsigned char *why = sqlite3_column_text(st, 5),
                        *err = sqlite3_column_text(st, 7);
    return json_pack(
        "{s:I, s:s, s:s, s:o, s:b, s:o, s:i, s:o, s:o, s:o}", "id",
        (json_int_t)sqlite3_column_int64(st, 0), "name",
        (const char *)sqlite3_column_text(st, 1), "type",
        (const char *)sqlite3_column_text(st, 2), "config",
        shown ? shown : json_object(), "enabled", sqlite3_column_int(st, 4),
        "disabled_reason", why ? json_string((const char *)why) : json_null(),
        "consecutive_failures", sqlite3_column_int(st, 6), "last_error",
        err ? json_string((const char *)err) : json_null(), "created_at",
        api_time(sqlite3_column_int64(st, 8)), "updated_at",
        api_time(sqlite3_column_int64(st, 9)));
}

/* Answer channel id with status, or 404. */
static int api_channel_send(struct api_req *r, int64_t id, int status)
{
    return api_send_ws_row(r,
                           "SELECT " API_CHANNEL_COLS
                           " FROM channels WHERE id = ?1 AND ws = ?2",
                           id, "channel", status, api_channel_row);
}

int api_channels_list(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db,
                                     "SELECT " API_CHANNEL_COLS
                                     " FROM channels WHERE ws = ?1 ORDER BY id",
                                     -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    return api_send_rows(r, st, "channels", api_channel_row);
}

int api_channels_get(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "channel")) == 0)
        return -1;
    return api_channel_send(r, id, 200);
}

/* channel.create or channel.update from the body; then the stored
 * channel. */
static int api_channel_put(struct api_req *r, int64_t id)
{
    static const char *const fields[] = {"name", "type", "config", "enabled",
                                         NULL};
    json_t *in = api_json_body(r, 1 << 16, fields, 0);
    if (in == NULL)
        return -1;
    json_t *cmd =
        json_pack("{s:s, s:s}", "op", id ? "channel.update" : "channel.create",
                  "workspace", r->workspace);
    json_object_update(cmd, in);
    if (id)
        json_object_set_new(cmd, "id", json_integer(id));
    int status;
    json_t *o = api_command_ok(r, cmd, &status);
    json_t *got = json_object_get(o, "id");
    if (!json_is_integer(got))
        return o ? api_send_json(r, status, o, NULL) : -1;
    return api_channel_send(r, json_integer_value(got), id ? 200 : 201);
}

int api_channels_create(struct api_req *r)
{
    return api_channel_put(r, 0);
}

int api_channels_update(struct api_req *r)
{
    int64_t id = api_path_id(r, "channel");
    return id ? api_channel_put(r, id) : -1;
}

int api_channels_delete(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "channel")) == 0)
        return -1;
    return api_command_relay(r, json_pack("{s:s, s:s, s:I}", "op",
                                          "channel.delete", "workspace",
                                          r->workspace, "id", (json_int_t)id));
}

/* The attempts of notification id as JSON (SQL), for history and test. */
#define API_ATTEMPTS_SQL(id)                                                   \
    "(SELECT json_group_array(json_object('at', strftime('%Y-%m-%dT%H:%M:"     \
    "%fZ', t.ts_ms / 1000.0, 'unixepoch'), 'outcome', t.outcome, 'code', "     \
    "t.code, 'error', t.error, 'latency_ms', t.latency_ms)) FROM (SELECT * "   \
    "FROM notification_attempts WHERE notification_id = " id                   \
    " ORDER BY id) t)"

#define API_NOTE_COLS                                                          \
    "n.id, n.channel_id, c.name, c.type, n.alert_id, n.event, n.status, "      \
    "n.attempts, n.last_code, n.last_error, n.created_ms, n.updated_ms, "      \
    "n.sent_ms, nullif(n.next_ms, 0), n.fallback_of, " API_ATTEMPTS_SQL(       \
        "n.id")

static json_t *api_time_col(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
               ? json_null()
               : api_time(sqlite3_column_int64(st, i));
}

static json_t *api_int_col(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
               ? json_null()
               : json_integer(sqlite3_column_int64(st, i));
}

/* A notification of the history (API_NOTE_COLS). */
static json_t *api_note_row(sqlite3_stmt *st)
{
    const unsigned char *name = sqlite3_column_text(st, 2),
                        *type = sqlite3_column_text(st, 3),
                        *err = sqlite3_column_text(st, 9);
    json_t *attempts =
        json_loads((const char *)sqlite3_column_text(st, 15), 0, NULL);
    const char *status = (const char *)sqlite3_column_text(st, 6);
    int waiting = strcmp(status, "retrying") == 0;
    return json_pack(
        "{s:I, s:I, s:o, s:o, s:o, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, "
        "s:o, s:o, s:o}",
        "id", (json_int_t)sqlite3_column_int64(st, 0), "channel_id",
        (json_int_t)sqlite3_column_int64(st, 1), "channel",
        name ? json_string((const char *)name) : json_null(), "channel_type",
        type ? json_string((const char *)type) : json_null(), "alert_id",
        sqlite3_column_int64(st, 4) ? api_int_col(st, 4) : json_null(), "event",
        (const char *)sqlite3_column_text(st, 5), "status", status, "attempts",
        sqlite3_column_int(st, 7), "last_code", api_int_col(st, 8),
        "last_error", err ? json_string((const char *)err) : json_null(),
        "created_at", api_time_col(st, 10), "updated_at", api_time_col(st, 11),
        "sent_at", api_time_col(st, 12), "next_attempt_at",
        waiting ? api_time_col(st, 13) : json_null(), "fallback_of",
        api_int_col(st, 14), "tries", attempts ? attempts : json_array());
}

/* An optional RFC 3339 parameter into *ms (unchanged when absent);
 * -1 after answering 400. */
static int api_time_param(struct api_req *r, const char *name, int64_t *ms)
{
    const char *v = api_query(r, name);
    if (v != NULL && ev_parse_rfc3339(v, ms) != 0)
        return api_error(r, 400, "invalid_parameter", name,
                         "%s must be an RFC 3339 date-time", name);
    return 0;
}

int api_notify_history(struct api_req *r)
{
    static const char *const params[] = {"channel", "alert",  "status", "from",
                                         "to",      "cursor", "limit",  NULL};
    if (api_query_only(r, params) != 0)
        return -1;
    long limit;
    int64_t after, from = 0, to = INT64_MAX;
    if (api_parse_limit(r, 100, 1000, &limit) != 0 ||
        api_parse_id_cursor(r, &after) != 0 ||
        api_time_param(r, "from", &from) != 0 ||
        api_time_param(r, "to", &to) != 0)
        return -1;
    const char *status = api_query(r, "status");
    static const char *const statuses[] = {"pending", "sent", "failed",
                                           "retrying"};
    int ok = status == NULL;
    for (int i = 0; i < 4 && !ok; i++)
        ok = strcmp(status, statuses[i]) == 0;
    if (!ok)
        return api_error(r, 400, "invalid_parameter", "status",
                         "status must be pending, sent, failed or retrying");
    int64_t ids[2] = {0, 0};
    static const char *const idp[] = {"channel", "alert"};
    for (int i = 0; i < 2; i++) {
        const char *v = api_query(r, idp[i]);
        char *end;
        if (v == NULL)
            continue;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end != '\0' || x <= 0)
            return api_error(r, 400, "invalid_parameter", idp[i],
                             "%s must be an id", idp[i]);
        ids[i] = x;
    }
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 ||
        sqlite3_prepare_v2(
            r->t->db,
            "SELECT " API_NOTE_COLS " FROM notifications n LEFT JOIN "
            "channels c ON c.id = n.channel_id WHERE n.ws = ?1 AND (?2 = 0 OR "
            "n.id < ?2) AND (?3 = 0 OR n.channel_id = ?3) AND (?4 = 0 OR "
            "n.alert_id = ?4) AND (?5 IS NULL OR n.status = ?5) AND "
            "n.created_ms >= ?6 AND n.created_ms < ?7 ORDER BY n.id DESC "
            "LIMIT ?8",
            -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, ids[0]);
    sqlite3_bind_int64(st, 4, ids[1]);
    if (status != NULL)
        sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, from);
    sqlite3_bind_int64(st, 7, to);
    sqlite3_bind_int64(st, 8, limit + 1);
    return api_send_id_page(r, st, limit, "notifications", api_note_row);
}

/* The notification id's history row (NULL when gone). */
static json_t *api_note_get(struct api_req *r, int64_t id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT " API_NOTE_COLS
                           " FROM notifications n LEFT JOIN channels c ON "
                           "c.id = n.channel_id WHERE n.id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, id);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? api_note_row(st) : NULL;
    sqlite3_finalize(st);
    return o;
}

/* How long a test waits for its first outcome at most (under nginx's
 * fastcgi_read_timeout of 30 s): a channel slower than that answers its
 * notification still pending. */
#define API_TEST_WAIT_MS 25000

int api_channels_test(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "channel")) == 0)
        return -1;
    int status;
    json_t *o = api_command_ok(r,
                               json_pack("{s:s, s:s, s:I}", "op",
                                         "channel.test", "workspace",
                                         r->workspace, "id", (json_int_t)id),
                               &status);
    if (o == NULL)
        return -1;
    int64_t nid = json_integer_value(json_object_get(o, "notification_id"));
    /* The dispatcher takes it within a fraction of a second; the outcome
     * of its first try (or the channel's timeout) decides. */
    int64_t until = proto_now_ms() + API_TEST_WAIT_MS;
    json_t *n = NULL;
    while (proto_now_ms() < until) {
        json_decref(n);
        n = api_note_get(r, nid);
        const char *s = json_string_value(json_object_get(n, "status"));
        if (s != NULL && strcmp(s, "pending") != 0)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (n == NULL)
        return api_db_unavailable(r);
    const char *s = json_string_value(json_object_get(n, "status"));
    json_t *out = json_pack("{s:b, s:O}", "delivered", strcmp(s, "sent") == 0,
                            "notification", n);
    json_decref(n);
    return api_send_json(r, 200, out, NULL);
}

static const char *const api_route_names[] = {"critical", "high", "medium",
                                              "low", "fallback"};

int api_routes_get(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db,
                                     "SELECT route, channel_id FROM "
                                     "channel_routes WHERE ws = ?1 ORDER BY "
                                     "route, channel_id",
                                     -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    json_t *o = json_object();
    for (int i = 0; i < 5; i++)
        json_object_set_new(o, api_route_names[i], json_array());
    sqlite3_bind_int64(st, 1, ws);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *a =
            json_object_get(o, (const char *)sqlite3_column_text(st, 0));
        if (a != NULL)
            json_array_append_new(a, json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    return api_send_json(r, 200, o, NULL);
}

int api_routes_put(struct api_req *r)
{
    json_t *in = api_json_body(r, 1 << 16, api_route_names, 0);
    if (in == NULL)
        return -1;
    int status;
    json_t *cmd = json_pack("{s:s, s:s, s:O}", "op", "routes.set", "workspace",
                            r->workspace, "routes", in);
    return api_command_ok(r, cmd, &status) ? api_routes_get(r) : -1;
}

static json_t *api_inbox_row(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:o}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "at",
                     api_time_col(st, 1), "kind",
                     (const char *)sqlite3_column_text(st, 2), "severity",
                     (const char *)sqlite3_column_text(st, 3), "title",
                     (const char *)sqlite3_column_text(st, 4), "body",
                     (const char *)sqlite3_column_text(st, 5), "alert_id",
                     api_int_col(st, 6), "notification_id", api_int_col(st, 7),
                     "read", sqlite3_column_type(st, 8) != SQLITE_NULL,
                     "read_at", api_time_col(st, 8));
}

int api_inbox_list(struct api_req *r)
{
    static const char *const params[] = {"unread", "cursor", "limit", NULL};
    if (api_query_only(r, params) != 0)
        return -1;
    long limit;
    int64_t after;
    if (api_parse_limit(r, 50, 500, &limit) != 0 ||
        api_parse_id_cursor(r, &after) != 0)
        return -1;
    const char *u = api_query(r, "unread");
    if (u != NULL && strcmp(u, "true") != 0 && strcmp(u, "false") != 0)
        return api_error(r, 400, "invalid_parameter", "unread",
                         "unread must be true or false");
    int unread = u != NULL && strcmp(u, "true") == 0;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 ||
        sqlite3_prepare_v2(r->t->db,
                           "SELECT id, ts_ms, kind, severity, title, body, "
                           "alert_id, notification_id, read_ms FROM inbox "
                           "WHERE ws = ?1 AND (?2 = 0 OR id < ?2) AND (?3 = 0 "
                           "OR read_ms IS NULL) ORDER BY id DESC LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int(st, 3, unread);
    sqlite3_bind_int64(st, 4, limit + 1);
    return api_send_id_page(r, st, limit, "inbox", api_inbox_row);
}

int api_inbox_read(struct api_req *r)
{
    static const char *const fields[] = {"ids", "all", NULL};
    json_t *in = api_json_body(r, 1 << 20, fields, 0);
    if (in == NULL)
        return -1;
    json_t *cmd =
        json_pack("{s:s, s:s}", "op", "inbox.read", "workspace", r->workspace);
    json_object_update(cmd, in);
    return api_command_relay(r, cmd);
}
