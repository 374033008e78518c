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

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* The current key generation: the segment's and its keys_gen.  Returns
 * -1 when no segment is mapped (then nothing is cached). */
static int api_keys_gen(struct api_req *r, uint64_t *gen, uint64_t *kgen)
{
    const struct shm_header *h = api_shm(r);
    if (h == NULL)
        return -1;
    *gen = h->generation;
    *kgen = atomic_load_explicit(&((struct shm_header *)h)->health.keys_gen,
                                 memory_order_acquire);
    return 0;
}

/* Fill r from this thread's cache if hash was verified under the current
 * key generation.  Returns 0 on a hit. */
static int api_key_cached(struct api_req *r, const char *hash)
{
    uint64_t gen, kgen;
    if (api_keys_gen(r, &gen, &kgen) != 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        struct api_keycache *k = &r->t->keys[i];
        if (k->generation == gen && k->keys_gen == kgen &&
            strcmp(k->hash, hash) == 0) {
            r->key_id = k->id;
            r->role = k->role;
            snprintf(r->workspace, sizeof(r->workspace), "%s", k->workspace);
            return 0;
        }
    }
    return -1;
}

/* Remember a key just verified against the database, under the key
 * generation read before the lookup: a change that raced with the lookup
 * then invalidates the entry at once. */
static void api_key_remember(struct api_req *r, const char *hash, uint64_t gen,
                             uint64_t kgen)
{
    struct api_keycache *k = &r->t->keys[r->t->keys_next++ % 8];
    snprintf(k->hash, sizeof(k->hash), "%s", hash);
    k->id = r->key_id;
    k->role = r->role;
    snprintf(k->workspace, sizeof(k->workspace), "%s", r->workspace);
    k->generation = gen;
    k->keys_gen = kgen;
}

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
    if (api_key_cached(r, hash) == 0)
        goto check_role;
    uint64_t gen = 0, kgen = 0;
    int cacheable = api_keys_gen(r, &gen, &kgen) == 0;

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
    if (cacheable)
        api_key_remember(r, hash, gen, kgen);
check_role:
    if (r->role != need && r->role != KEY_ROLE_ADMIN)
        return api_error(r, 403, "forbidden", NULL,
                         "a %s key may not do this; it needs a %s key",
                         key_role_name(r->role), key_role_name(need));
    api_col_touch(r->t, r->key_id, r->now_ms);
    return 0;
}
