/*
 * route_pricing.c: the price catalog in use and the models it lacks.
 *
 * The collector writes the catalog it loaded to pricing_catalog at start
 * and counts events of unknown models in pricing_unknown; these handlers
 * only read them.
 */
#include "api.h"

#include "event.h"

int api_pricing(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT provider, model, input, output, "
                           "cache_read, cache_write, date, source FROM "
                           "pricing_catalog ORDER BY provider, model",
                           -1, &st, NULL) != SQLITE_OK)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "%s", sqlite3_errmsg(r->t->db));
    json_t *arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:s}",
                           "provider", sqlite3_column_text(st, 0), "model",
                           sqlite3_column_text(st, 1), "input",
                           sqlite3_column_double(st, 2), "output",
                           sqlite3_column_double(st, 3), "cache_read",
                           sqlite3_column_double(st, 4), "cache_write",
                           sqlite3_column_double(st, 5), "date",
                           sqlite3_column_text(st, 6), "source",
                           sqlite3_column_text(st, 7)));
    sqlite3_finalize(st);
    return api_send_json(r, 200,
                         json_pack("{s:s, s:s, s:o}", "currency", "USD", "unit",
                                   "per_million_tokens", "models", arr),
                         NULL);
}

int api_pricing_unknown(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT provider, model, events, first_seen_ms, "
                           "last_seen_ms FROM pricing_unknown WHERE "
                           "workspace = ? ORDER BY events DESC",
                           -1, &st, NULL) != SQLITE_OK)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "%s", sqlite3_errmsg(r->t->db));
    sqlite3_bind_text(st, 1, r->workspace, -1, SQLITE_STATIC);
    json_t *arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        char first[40], last[40];
        ev_format_rfc3339(sqlite3_column_int64(st, 3), first, sizeof(first));
        ev_format_rfc3339(sqlite3_column_int64(st, 4), last, sizeof(last));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:I, s:s, s:s}", "provider",
                           sqlite3_column_text(st, 0), "model",
                           sqlite3_column_text(st, 1), "events",
                           (json_int_t)sqlite3_column_int64(st, 2),
                           "first_seen", first, "last_seen", last));
    }
    sqlite3_finalize(st);
    return api_send_json(r, 200, json_pack("{s:o}", "models", arr), NULL);
}
