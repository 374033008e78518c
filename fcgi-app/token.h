/*
 * token.h: signed, expiring tokens of tt-api, and where browsers keep them.
 *
 * A token is "<subject>.<expiry unix seconds>.<mac>": mac is the lower-case
 * hex HMAC-SHA256, under a secret, of the token's own first two parts
 * ("<subject>.<expiry>"), so nothing but the secret's holder can make one.
 * Two kinds use it, each with its own secret (a token of one kind must
 * never pass for the other: "5.1795352249.<mac>" is a stream token of
 * workspace "5" as well as a session of key 5):
 *
 *   - stream tokens (route_ws.c): subject a workspace, secret drawn at
 *     each start of tt-api, a minute of life;
 *   - browser sessions (route_session.c): subject a key id, secret kept in
 *     DIR/session.secret (tok_secret_load), conf.session_hours of life,
 *     carried in the cookie TOK_COOKIE.
 *
 * Everything here is pure but tok_secret_load (files) and thread-safe; the
 * caller owns every buffer.  Functions return 0 or -1.
 */
#ifndef TT_TOKEN_H
#define TT_TOKEN_H

#include <stddef.h>

#define TOK_SECRET_LEN 32  /* bytes of secret */
#define TOK_MAC_HEX    64  /* hex digits of a MAC */
#define TOK_MAX        160 /* longest token, NUL included */
#define TOK_COOKIE     "tt_session"

/* Make the token of subject (1 or more bytes, no '.', no NUL) expiring at
 * exp (>= 0) into out (n bytes); -1 when it does not fit or HMAC failed.
 * Example: tok_make(s, 32, "7", 1795352249, out, n) gives
 * "7.1795352249.<64 hex>". */
int tok_make(const unsigned char *secret, size_t slen, const char *subject,
             long long exp, char *out, size_t n);

/* Check token t (len bytes, not NUL-terminated): three parts, a canonical
 * expiry (digits without a leading zero), a MAC that matches (compared in
 * constant time) and an expiry not before now (unix seconds).  On success
 * the subject goes into subj (n bytes) and the expiry into *exp. */
int tok_check(const unsigned char *secret, size_t slen, const char *t,
              size_t len, long long now, char *subj, size_t n, long long *exp);

/* The value of the next cookie called name in a Cookie header ("a=1;
 * tt_session=..."), from *p on; NULL when there is none.  *len gets the
 * value's length (double quotes around it removed) and *p moves past it,
 * so a loop visits every cookie of that name, in header order. */
const char *tok_cookie_next(const char **p, const char *name, size_t *len);

/* Read the secret (TOK_SECRET_LEN bytes) from path, or make it when path
 * does not exist: random bytes written to a private temporary file
 * (O_EXCL, mode 0600) that is then linked to path, so the file is never
 * seen half-written and, of two processes starting at once, the first
 * link wins and the other reads the winner's secret.  -1 with a message
 * naming path in err. */
int tok_secret_load(const char *path, unsigned char *secret, char *err,
                    size_t errlen);

#endif
