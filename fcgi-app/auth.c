/*
 * auth.c: API keys on every /api/v1 request.
 *
 * The key comes as "Authorization: Bearer tt_..."; its SHA-256 is looked
 * up in api_keys through the thread's read-only connection.  Roles are not
 * a ladder: an ingest key may only send events, a read key may only read,
 * an admin key may do everything.  Missing or unknown key: 401; a role that
 * may not do this: 403.
 *
 * A browser sends no key but the session cookie that POST /api/v1/session
 * gave it (route_session.c): a token naming the key's id, checked here and
 * then the key looked up by id, so the request is the key's in every way
 * and a revoked key's sessions end with it.  The cookie is SameSite=Strict,
 * but "same site" takes in every subdomain of the domain, whose pages can
 * make the browser send requests here with it: so a cookie-authenticated
 * request that may change something must also carry "X-Requested-With:
 * tokentap", a header another origin cannot set without a CORS preflight,
 * which nothing here ever grants.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static const char api_www[] = "WWW-Authenticate: Bearer realm=\"tokentap\"\r\n";

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

/* The same for a key known by id (a session's), cached by either path. */
static int api_key_cached_id(struct api_req *r, int64_t id)
{
    uint64_t gen, kgen;
    if (api_keys_gen(r, &gen, &kgen) != 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        struct api_keycache *k = &r->t->keys[i];
        if (k->generation == gen && k->keys_gen == kgen && k->id == id) {
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

/* Answer 503 after a failed key lookup. */
static int api_keys_unavailable(struct api_req *r)
{
    log_error(r->rid, "msg=\"key lookup failed\" error=\"%s\"",
              sqlite3_errmsg(r->t->db));
    return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                       "key store unavailable");
}

int api_key_check(struct api_req *r, const char *key, size_t len)
{
    if (!key_well_formed(key, len))
        return api_error_h(r, 401, api_www, "unauthorized", NULL,
                           "invalid API key");
    char hash[KEY_HASH_HEX + 1];
    key_hash(key, len, hash);
    if (api_key_cached(r, hash) == 0)
        return 0;
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
        if (rc != SQLITE_DONE)
            return api_keys_unavailable(r);
        return api_error_h(r, 401, api_www, "unauthorized", NULL,
                           "unknown or revoked API key");
    }
    if (cacheable)
        api_key_remember(r, hash, gen, kgen);
    return 0;
}

/* The key id of a session token (its subject): a canonical positive
 * integer, else 0. */
static int64_t api_session_key_id(const char *s)
{
    if (s[0] < '1' || s[0] > '9' || strlen(s) > 18)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return strtoll(s, NULL, 10);
}

/* Check the session cookie in the Cookie header h: the first tt_session
 * cookie whose token is valid and unexpired names a key that is still
 * active; fills r->key_id, role, workspace and session_exp.  Returns 0,
 * or -1 after answering 401 (503). */
static int api_session_check(struct api_req *r, const char *h)
{
    const struct api_global *g = r->t->g;
    int64_t id = 0;
    long long exp = 0;
    size_t len;
    /* Every tt_session cookie is tried: another site of the same domain
     * may have set one with a longer path, which the browser sends
     * first. */
    for (const char *v;
         id == 0 && (v = tok_cookie_next(&h, TOK_COOKIE, &len)) != NULL;) {
        char subj[24];
        if (tok_check(g->session_secret, sizeof(g->session_secret), v, len,
                      r->now_ms / 1000, subj, sizeof(subj), &exp) == 0)
            id = api_session_key_id(subj);
    }
    if (id == 0)
        return api_error_h(r, 401, api_www, "unauthorized", NULL,
                           "invalid or expired session: log in again");
    r->session_exp = exp;
    if (api_key_cached_id(r, id) == 0)
        return 0;
    uint64_t gen = 0, kgen = 0;
    int cacheable = api_keys_gen(r, &gen, &kgen) == 0;

    sqlite3_stmt *st = r->t->key_by_id;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->key_id = id;
        r->role = key_role_parse((const char *)sqlite3_column_text(st, 0));
        snprintf(r->workspace, sizeof(r->workspace), "%s",
                 (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE)
            return api_keys_unavailable(r);
        return api_error_h(r, 401, api_www, "unauthorized", NULL,
                           "the session's API key is unknown or revoked");
    }
    if (cacheable)
        api_key_remember(r, "", gen, kgen);
    return 0;
}

int api_auth(struct api_req *r, enum key_role need)
{
    char **env = r->t->fr.envp;
    const char *h = FCGX_GetParam("HTTP_AUTHORIZATION", env);
    const char *cookie = FCGX_GetParam("HTTP_COOKIE", env);
    const char *p = cookie;
    size_t len;
    if (h != NULL && h[0] != '\0') {
        if (strncasecmp(h, "Bearer ", 7) != 0)
            return api_error_h(r, 401, api_www, "unauthorized", NULL,
                               "Authorization must be \"Bearer <key>\"");
        const char *key = h + 7;
        while (*key == ' ')
            key++;
        len = strlen(key);
        while (len > 0 && key[len - 1] == ' ')
            len--;
        if (api_key_check(r, key, len) != 0)
            return -1;
    } else if (cookie != NULL && tok_cookie_next(&p, TOK_COOKIE, &len)) {
        if (api_session_check(r, cookie) != 0)
            return -1;
        const char *xrw = FCGX_GetParam("HTTP_X_REQUESTED_WITH", env);
        if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
            (xrw == NULL || strcmp(xrw, "tokentap") != 0))
            return api_error(r, 403, "csrf", NULL,
                             "a request with the session cookie that is not "
                             "GET or HEAD needs the header "
                             "X-Requested-With: tokentap");
    } else
        return api_error_h(r, 401, api_www, "unauthorized", NULL,
                           "missing Authorization: Bearer <key> header");
    if (need != KEY_ROLE_NONE && r->role != need && r->role != KEY_ROLE_ADMIN)
        return api_error(r, 403, "forbidden", NULL,
                         "a %s key may not do this; it needs a %s key",
                         key_role_name(r->role), key_role_name(need));
    api_col_touch(r->t, r->key_id, r->now_ms);
    return 0;
}
