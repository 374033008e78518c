/*
 * auth.c: API keys on every /api/v1 request.
 *
 * The key comes as "Authorization: Bearer tt_..."; its SHA-256 is looked
 * up in api_keys through the thread's read-only connection.  Roles are not
 * a ladder: an ingest key may only send events, a read key may only read,
 * an admin key may do everything.  Missing or unknown key: 401; a role that
 * may not do this: 403.
 */
#include "api.h"

#include <string.h>
#include <strings.h>

#include "log.h"

int api_auth(struct api_req *r, enum key_role need)
{
    static const char www[] = "WWW-Authenticate: Bearer realm=\"tokentap\"\r\n";
    const char *h = FCGX_GetParam("HTTP_AUTHORIZATION", r->t->fr.envp);
    if (h == NULL || h[0] == '\0')
        return api_error_h(r, 401, www, "unauthorized", NULL,
                           "missing Authorization: Bearer <key> header");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return api_error_h(r, 401, www, "unauthorized", NULL,
                           "Authorization must be \"Bearer <key>\"");
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    while (len > 0 && key[len - 1] == ' ')
        len--;
    if (!key_well_formed(key, len))
        return api_error_h(r, 401, www, "unauthorized", NULL,
                           "invalid API key");
    char hash[KEY_HASH_HEX + 1];
    key_hash(key, len, hash);

    sqlite3_stmt *st = r->t->key_lookup;
    sqlite3_bind_text(st, 1, hash, KEY_HASH_HEX, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->key_id = sqlite3_column_int64(st, 0);
        r->role = key_role_parse((const char *)sqlite3_column_text(st, 1));
        snprintf(r->workspace, sizeof(r->workspace), "%s",
                 (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE) {
            log_error(r->rid, "msg=\"key lookup failed\" error=\"%s\"",
                      sqlite3_errmsg(r->t->db));
            return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable",
                               NULL, "key store unavailable");
        }
        return api_error_h(r, 401, www, "unauthorized", NULL,
                           "unknown or revoked API key");
    }
    if (r->role != need && r->role != KEY_ROLE_ADMIN)
        return api_error(r, 403, "forbidden", NULL,
                         "a %s key may not do this; it needs a %s key",
                         key_role_name(r->role), key_role_name(need));
    api_col_touch(r->t, r->key_id, r->now_ms);
    return 0;
}
