/*
 * route_session.c: browser sessions, so the web UI never keeps a key in
 * JavaScript's reach.
 *
 *   POST   /api/v1/session  {"key": "tt_..."}: 201 and the cookie
 *   GET    /api/v1/session  who the cookie (or a key) stands for: 200
 *   DELETE /api/v1/session  204 and a cookie that clears it (never fails)
 *
 * The cookie is "tt_session=<key id>.<expiry unix seconds>.<mac>"
 * (token.h), HttpOnly (no script reads it), SameSite=Strict (no other
 * site's page sends it), Secure when the request came over https.  It
 * holds no state on the server: the MAC's secret (DIR/session.secret)
 * survives restarts, and the key it names is looked up on every request
 * (auth.c), so revoking the key ends its sessions.  Logging out only
 * clears the browser's copy; a copied cookie lives until it expires or
 * its key is revoked.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Did the request reach nginx over https?  nginx passes REQUEST_SCHEME;
 * HTTPS ("on") is the CGI convention other front ends follow. */
static int session_https(struct api_req *r)
{
    const char *https = FCGX_GetParam("HTTPS", r->t->fr.envp);
    const char *scheme = FCGX_GetParam("REQUEST_SCHEME", r->t->fr.envp);
    return (https != NULL && https[0] != '\0' &&
            strcasecmp(https, "off") != 0) ||
           (scheme != NULL && strcasecmp(scheme, "https") == 0);
}

/* The Set-Cookie header line for value, living max_age seconds (0: clear
 * it), into out (n bytes). */
static void session_cookie(struct api_req *r, const char *value, long max_age,
                           char *out, size_t n)
{
    snprintf(out, n,
             "Set-Cookie: " TOK_COOKIE "=%s; Path=/; HttpOnly; "
             "SameSite=Strict; Max-Age=%ld%s\r\n",
             value, max_age, session_https(r) ? "; Secure" : "");
}

/* Answer status with who r's key is: {key_id, name, role, workspace,
 * expires_at} (null for a key, which does not expire), plus the header
 * lines extra. */
static int session_answer(struct api_req *r, int status, long long exp,
                          const char *extra)
{
    sqlite3_stmt *st = r->t->key_by_id;
    sqlite3_bind_int64(st, 1, r->key_id);
    int rc = sqlite3_step(st);
    json_t *name = rc == SQLITE_ROW
                       ? json_string((const char *)sqlite3_column_text(st, 2))
                       : NULL;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return api_error_h(r, 401,
                           "WWW-Authenticate: Bearer realm=\"tokentap\"\r\n",
                           "unauthorized", NULL, "unknown or revoked API key");
    if (rc != SQLITE_ROW)
        return api_db_unavailable(r);
    return api_send_json(
        r, status,
        json_pack("{s:I, s:o, s:s, s:s, s:o}", "key_id", (json_int_t)r->key_id,
                  "name", name, "role", key_role_name(r->role), "workspace",
                  r->workspace, "expires_at",
                  exp > 0 ? api_time(exp * 1000) : json_null()),
        extra);
}

int api_session_create(struct api_req *r)
{
    static const char *const fields[] = {"key", NULL};
    json_t *in = api_json_body(r, 4096, fields, 0);
    if (in == NULL)
        return -1;
    json_t *k = json_object_get(in, "key");
    if (!json_is_string(k)) {
        json_decref(in);
        return api_error(r, 400, "invalid_field", "key",
                         k == NULL ? "key is required"
                                   : "key must be a string");
    }
    int rc = api_key_check(r, json_string_value(k), json_string_length(k));
    json_decref(in);
    if (rc != 0)
        return -1;
    api_col_touch(r->t, r->key_id, r->now_ms);
    const struct api_global *g = r->t->g;
    long max_age = (long)g->conf.session_hours * 3600;
    long long exp = r->now_ms / 1000 + max_age;
    char id[24], tok[TOK_MAX], extra[TOK_MAX + 128];
    snprintf(id, sizeof(id), "%lld", (long long)r->key_id);
    if (tok_make(g->session_secret, sizeof(g->session_secret), id, exp, tok,
                 sizeof(tok)) != 0)
        return api_error(r, 500, "internal", NULL, "cannot sign the session");
    session_cookie(r, tok, max_age, extra, sizeof(extra));
    return session_answer(r, 201, exp, extra);
}

int api_session_get(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0 || api_auth(r, KEY_ROLE_NONE) != 0)
        return -1;
    return session_answer(r, 200, r->session_exp, NULL);
}

int api_session_delete(struct api_req *r)
{
    char extra[160];
    session_cookie(r, "", 0, extra, sizeof(extra));
    return api_send_text(r, 204, "application/json", "", 0, extra);
}
