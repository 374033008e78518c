/*
 * snapshot.c: consistent reads for the endpoints that combine rollups
 * with raw events (sessions, budgets), and the small helpers they share.
 *
 * The collector commits rollups together with meta.rollup_seq, the highest
 * event seq they include (rollup.h).  An answer that must count every
 * committed event reads the rollups and then the raw events with seq >
 * rollup_seq, a rowid range of at most about a second of ingest.  Both
 * reads must see the same database state, or an event flushed in between
 * would count twice or not at all: so they run in one read transaction on
 * the thread's read-only connection (WAL gives it a snapshot that the
 * collector's commits do not disturb).
 */
#include "api.h"
#include "rollup.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "event.h"

int api_db_unavailable(struct api_req *r)
{
    return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                       "the database is not available");
}

int64_t api_read_begin(struct api_req *r)
{
    if (sqlite3_exec(r->t->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        api_db_unavailable(r);
        return -1;
    }
    /* The first read fixes the snapshot: every later query sees it. */
    int64_t seq = rollup_seq(r->t->db);
    if (seq < 0) {
        api_read_end(r);
        api_db_unavailable(r);
    }
    return seq;
}

void api_read_end(struct api_req *r)
{
    if (!sqlite3_get_autocommit(r->t->db))
        sqlite3_exec(r->t->db, "COMMIT", NULL, NULL, NULL);
}

void api_usd_text(int64_t nusd, char *buf, size_t n)
{
    uint64_t a = nusd < 0 ? (uint64_t)0 - (uint64_t)nusd : (uint64_t)nusd;
    int len = snprintf(buf, n, "%s%" PRIu64 ".%09" PRIu64, nusd < 0 ? "-" : "",
                       a / 1000000000u, a % 1000000000u);
    /* Exact decimal, without the zeros that say nothing: "12.5". */
    while (len > 0 && (size_t)len < n && buf[len - 1] == '0')
        buf[--len] = '\0';
    if (len > 0 && (size_t)len < n && buf[len - 1] == '.')
        buf[--len] = '\0';
}

json_t *api_usd(int64_t nusd)
{
    return json_real((double)nusd / 1e9);
}

json_t *api_time(int64_t ms)
{
    char ts[40];
    ev_format_rfc3339(ms, ts, sizeof(ts));
    return json_string(ts);
}

int api_send_id_page(struct api_req *r, sqlite3_stmt *st, long limit,
                     const char *name, json_t *(*row)(sqlite3_stmt *st))
{
    json_t *arr = json_array();
    int rc;
    int64_t last = 0;
    long n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
        json_array_append_new(arr, row(st));
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    int more = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return api_db_unavailable(r);
    char next[32];
    snprintf(next, sizeof(next), "%lld", (long long)last);
    return api_send_json(r, 200,
                         json_pack("{s:o, s:o}", name, arr, "next_cursor",
                                   more ? json_string(next) : json_null()),
                         NULL);
}

int api_send_rows(struct api_req *r, sqlite3_stmt *st, const char *name,
                  json_t *(*row)(sqlite3_stmt *st))
{
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row(st));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return api_db_unavailable(r);
    }
    return api_send_json(r, 200, json_pack("{s:o}", name, arr), NULL);
}

int api_send_ws_row(struct api_req *r, const char *sql, int64_t id,
                    const char *what, int status,
                    json_t *(*row)(sqlite3_stmt *st))
{
    int64_t ws = api_ws_id(r);
    sqlite3_stmt *st;
    if (ws < 0 || sqlite3_prepare_v2(r->t->db, sql, -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ws);
    int rc = sqlite3_step(st);
    json_t *o = rc == SQLITE_ROW ? row(st) : NULL;
    sqlite3_finalize(st);
    if (o != NULL)
        return api_send_json(r, status, o, NULL);
    return rc == SQLITE_DONE ? api_error(r, 404, "not_found", "id",
                                         "no %s %lld", what, (long long)id)
                             : api_db_unavailable(r);
}

json_t *api_str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}
