/*
 * route_ws.c: who may open a live stream (the relay, relay/).
 *
 *   POST /api/v1/ws-token   (read)  {"token", "expires_at"}: a token for
 *                                   browsers, which cannot send headers on
 *                                   a WebSocket, valid WS_TOKEN_SECONDS
 *   GET  /_tt/ws-auth       nginx's auth_request for /ws/: 204 with
 *                           X-Tokentap-Workspace when the original request
 *                           carries a key (Authorization: Bearer) or a
 *                           token (?token=), else 401
 *
 * The relay reads shared memory only, never the keys: nginx asks here and
 * passes the workspace on in a header it sets itself.  A token is
 * "<workspace>.<expiry unix seconds>.<hex HMAC-SHA256 of the two>"
 * (token.h), keyed by a secret this process draws at start: tokens live a
 * minute, and a restart of tt-api only makes browsers ask for a new one.
 * A browser with a session cookie (route_session.c) may also open a
 * stream without a token: the cookie comes along with the handshake.
 */
#include "api.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "token.h"

#define WS_TOKEN_SECONDS 60

static unsigned char ws_secret[TOK_SECRET_LEN];
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_secret_ok;

static void ws_secret_init(void)
{
    ws_secret_ok = RAND_bytes(ws_secret, sizeof(ws_secret)) == 1;
}

int api_ws_token(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    long long exp = r->now_ms / 1000 + WS_TOKEN_SECONDS;
    char tok[TOK_MAX];
    pthread_once(&ws_once, ws_secret_init);
    if (!ws_secret_ok || tok_make(ws_secret, sizeof(ws_secret), r->workspace,
                                  exp, tok, sizeof(tok)) != 0)
        return api_error(r, 500, "internal", NULL, "no token secret");
    return api_send_json(r, 200,
                         json_pack("{s:s, s:o}", "token", tok, "expires_at",
                                   api_time(exp * 1000)),
                         NULL);
}

/* The workspace of a valid, unexpired token t (into ws, n bytes); 0 or
 * -1. */
static int ws_token_check(const char *t, size_t tlen, int64_t now_ms, char *ws,
                          size_t n)
{
    long long exp;
    pthread_once(&ws_once, ws_secret_init);
    if (!ws_secret_ok || tok_check(ws_secret, sizeof(ws_secret), t, tlen,
                                   now_ms / 1000, ws, n, &exp) != 0)
        return -1;
    return key_workspace_ok(ws) ? 0 : -1;
}

/* The token parameter of the original request's URI (nginx passes it as
 * TT_ORIGINAL_URI), or NULL; *len its length. */
static const char *ws_uri_token(struct api_req *r, size_t *len)
{
    const char *uri = FCGX_GetParam("TT_ORIGINAL_URI", r->t->fr.envp);
    const char *q = uri ? strchr(uri, '?') : NULL;
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, "token=", 6) == 0) {
            const char *v = p + 7;
            *len = strcspn(v, "&#");
            return v;
        }
    }
    return NULL;
}

int api_ws_auth(struct api_req *r)
{
    size_t len = 0;
    const char *t = ws_uri_token(r, &len);
    char ws[72], extra[128];
    if (t != NULL) {
        if (ws_token_check(t, len, r->now_ms, ws, sizeof(ws)) != 0)
            return api_error(r, 401, "unauthorized", "token",
                             "invalid or expired token: ask POST "
                             "/api/v1/ws-token for another");
    } else {
        if (api_auth(r, KEY_ROLE_READ) != 0)
            return -1;
        snprintf(ws, sizeof(ws), "%s", r->workspace);
    }
    snprintf(extra, sizeof(extra), "X-Tokentap-Workspace: %s\r\n", ws);
    return api_send_text(r, 204, "text/plain", "", 0, extra);
}
