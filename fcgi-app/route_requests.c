/*
 * route_requests.c: raw events, newest first.
 *
 * GET /api/v1/requests takes the common range, filters and format
 * (params.c) plus limit and cursor.  JSON answers a page of at most limit
 * events (default 100, at most 1000) and a next_cursor to continue with;
 * CSV streams every matching event (at most 1,000,000) as RFC 4180 with a
 * header row.  GET /api/v1/requests/{id} answers one event.  Both read the
 * thread's read-only connection through the (ws, ts) and (ws, id) indexes
 * and see only the key's workspace.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

/* The columns every query here selects, in this order. */
#define API_REQ_COLS                                                           \
    "seq, id, ts, received, provider, model, operation, input_tokens, "        \
    "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, " \
    "cost_usd, cost_source, latency_ms, ttft_ms, status, error_type, "         \
    "is_error, user, agent, api_key, session, round, request_id, tags"

/* Names of the columns as the answers show them (CSV header, JSON keys),
 * from the second selected column on. */
static const char *const api_req_names[] = {"id",
                                            "ts",
                                            "received",
                                            "provider",
                                            "model",
                                            "operation",
                                            "input_tokens",
                                            "output_tokens",
                                            "cache_read_tokens",
                                            "cache_write_tokens",
                                            "reasoning_tokens",
                                            "cost_usd",
                                            "cost_source",
                                            "latency_ms",
                                            "ttft_ms",
                                            "status",
                                            "error_type",
                                            "error",
                                            "user",
                                            "agent",
                                            "api_key",
                                            "session",
                                            "round",
                                            "request_id",
                                            "tags"};

#define API_REQ_NCOLS (int)(sizeof(api_req_names) / sizeof(api_req_names[0]))

static const char *const api_cost_sources[] = {"client", "catalog", "unknown"};

/* The workspace id of the request's key, or 0 when it has no events yet. */
int64_t api_ws_id(struct api_req *r)
{
    sqlite3_stmt *st;
    int64_t id = 0;
    if (sqlite3_prepare_v2(r->t->db, "SELECT id FROM workspaces WHERE name = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, r->workspace, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

/* Column i of a row as text for CSV (times as RFC 3339, NULL as ""). */
static const char *api_req_text(sqlite3_stmt *st, int i, char *buf, size_t n)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return "";
    if (i == 2 || i == 3) {
        ev_format_rfc3339(sqlite3_column_int64(st, i), buf, n);
        return buf;
    }
    if (i == 13) {
        int s = sqlite3_column_int(st, i);
        return api_cost_sources[s >= 0 && s <= 2 ? s : 2];
    }
    if (i == 18)
        return sqlite3_column_int(st, i) ? "true" : "false";
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* One row as a JSON object. */
static json_t *api_req_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    char ts[40];
    for (int i = 1; i <= API_REQ_NCOLS; i++) {
        const char *name = api_req_names[i - 1];
        int type = sqlite3_column_type(st, i);
        json_t *v;
        if (type == SQLITE_NULL)
            v = i == 25 ? json_object() : json_null();
        else if (i == 2 || i == 3) {
            ev_format_rfc3339(sqlite3_column_int64(st, i), ts, sizeof(ts));
            v = json_string(ts);
        } else if (i == 13)
            v = json_string(api_req_text(st, i, ts, sizeof(ts)));
        else if (i == 18)
            v = json_boolean(sqlite3_column_int(st, i));
        else if (i == 25) {
            /* Tags are stored as compact JSON text (written by us). */
            v = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
            if (v == NULL)
                v = json_object();
        } else if (type == SQLITE_INTEGER)
            v = json_integer(sqlite3_column_int64(st, i));
        else if (type == SQLITE_FLOAT)
            v = json_real(sqlite3_column_double(st, i));
        else
            v = json_string((const char *)sqlite3_column_text(st, i));
        json_object_set_new(o, name, v ? v : json_null());
    }
    return o;
}

/* Parse a cursor "TS.SEQ" (what next_cursor holds). */
static int api_parse_cursor(const char *c, int64_t *ts, int64_t *seq)
{
    char *end;
    errno = 0;
    long long a = strtoll(c, &end, 10);
    if (end == c || *end != '.' || errno != 0)
        return -1;
    const char *s = end + 1;
    long long b = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || b <= 0)
        return -1;
    *ts = a;
    *seq = b;
    return 0;
}

int api_requests_list(struct api_req *r)
{
    static const char *const allowed[] = {
        "range",   "from",   "to",     "provider", "model",  "agent", "user",
        "session", "status", "format", "limit",    "cursor", NULL};
    struct api_range rg;
    struct api_filter f;
    int csv;
    if (api_query_only(r, allowed) != 0 ||
        api_parse_range(r, "24h", &rg) != 0 || api_parse_filters(r, &f) != 0 ||
        api_parse_format(r, &csv) != 0)
        return -1;
    long limit = csv ? 1000000 : 100, max = csv ? 1000000 : 1000;
    const char *lq = api_query(r, "limit");
    if (lq != NULL) {
        char *end;
        limit = strtol(lq, &end, 10);
        if (lq[0] == '\0' || *end != '\0' || limit < 1 || limit > max)
            return api_error(r, 400, "invalid_parameter", "limit",
                             "limit must be an integer from 1 to %ld, got "
                             "\"%.32s\"",
                             max, lq);
    }
    int64_t cts = 0, cseq = 0;
    const char *cq = api_query(r, "cursor");
    if (cq != NULL && api_parse_cursor(cq, &cts, &cseq) != 0)
        return api_error(r, 400, "invalid_parameter", "cursor",
                         "cursor must be a next_cursor from an earlier "
                         "answer, got \"%.64s\"",
                         cq);
    int64_t ws = api_ws_id(r);
    if (ws < 0)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the database is not available");

    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            r->t->db,
            "SELECT " API_REQ_COLS " FROM events WHERE ws = ?1 AND ts >= ?2 "
            "AND ts < ?3 AND (?4 IS NULL OR provider = ?4) AND (?5 IS NULL OR "
            "model = ?5) AND (?6 IS NULL OR agent = ?6) AND (?7 IS NULL OR "
            "user = ?7) AND (?8 IS NULL OR session = ?8) AND (?9 < 0 OR "
            "is_error = ?9) AND (?10 IS NULL OR ts < ?10 OR (ts = ?10 AND "
            "seq < ?11)) ORDER BY ts DESC, seq DESC LIMIT ?12",
            -1, &st, NULL) != SQLITE_OK)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the database is not available");
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, rg.from_ms);
    sqlite3_bind_int64(st, 3, rg.to_ms);
    const char *fs[] = {f.provider, f.model, f.agent, f.user, f.session};
    for (int i = 0; i < 5; i++)
        if (fs[i] != NULL)
            sqlite3_bind_text(st, 4 + i, fs[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, f.status);
    if (cq != NULL) {
        sqlite3_bind_int64(st, 10, cts);
        sqlite3_bind_int64(st, 11, cseq);
    }
    /* One row more than asked says whether there is a next page. */
    sqlite3_bind_int64(st, 12, csv ? limit : limit + 1);

    char from[40], to[40];
    ev_format_rfc3339(rg.from_ms, from, sizeof(from));
    ev_format_rfc3339(rg.to_ms, to, sizeof(to));
    if (csv) {
        char file[96], buf[64];
        snprintf(file, sizeof(file), "tokentap-requests-%.10s-%.10s.csv", from,
                 to);
        api_csv_start(r, file, api_req_names, API_REQ_NCOLS);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 1; i <= API_REQ_NCOLS; i++)
                api_csv_field(r, api_req_text(st, i, buf, sizeof(buf)),
                              i == API_REQ_NCOLS);
        sqlite3_finalize(st);
        return 0;
    }
    json_t *arr = json_array();
    long n = 0;
    int64_t last_ts = 0, last_seq = 0;
    int more = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == limit) {
            more = 1;
            break;
        }
        json_array_append_new(arr, api_req_json(st));
        last_seq = sqlite3_column_int64(st, 0);
        last_ts = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_finalize(st);
    json_t *out = json_pack("{s:o, s:i, s:s, s:s}", "requests", arr, "count",
                            (int)n, "from", from, "to", to);
    if (more) {
        char cur[48];
        snprintf(cur, sizeof(cur), "%" PRId64 ".%" PRId64, last_ts, last_seq);
        json_object_set_new(out, "next_cursor", json_string(cur));
    } else
        json_object_set_new(out, "next_cursor", json_null());
    return api_send_json(r, 200, out, NULL);
}

int api_requests_get(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db,
                                     "SELECT " API_REQ_COLS
                                     " FROM events WHERE ws = ? AND id = ?",
                                     -1, &st, NULL) != SQLITE_OK)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the database is not available");
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_text(st, 2, r->params[0], -1, SQLITE_STATIC);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? api_req_json(st) : NULL;
    sqlite3_finalize(st);
    if (o == NULL)
        return api_error(r, 404, "not_found", "id",
                         "no event with id \"%.64s\" in this workspace",
                         r->params[0]);
    return api_send_json(r, 200, o, NULL);
}
