/*
 * channel.c: notification channels' configs (channel.h): validation that
 * names the bad field and quotes the value, defaults, the redacted form
 * every reader sees, and the update rule that keeps a stored secret when
 * its redacted form (or nothing) comes back, as long as the channel still
 * sends to the same scheme, host and port.
 *
 * URLs are parsed and rebuilt with libcurl's URL API only, never by hand,
 * so what is checked here is what the sender's libcurl will connect to.
 * Secrets never reach a message: a bad secret is described by its type or
 * its length, a bad URL by its redacted form (or not quoted at all when it
 * does not parse).
 */
#include "channel.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event.h"

#define CH_MAX_URL     2048 /* bytes of a URL */
#define CH_MAX_USER    256  /* bytes of an SMTP user name */
#define CH_MAX_SECRET  256  /* bytes of a password or a signing secret */
#define CH_MAX_KEY     64   /* bytes of a PagerDuty routing key */
#define CH_MAX_ADDR    254  /* bytes of an email address */
#define CH_MAX_TO      20   /* recipients of an email */
#define CH_MAX_HEADERS 20   /* custom headers of a webhook */
#define CH_MAX_HNAME   128  /* bytes of a header name */
#define CH_MAX_HVALUE  1024 /* bytes of a header value */
#define CH_MAX_NAME    64   /* bytes of a field name quoted in a path */

#define CH_EVENTS_URL "https://events.pagerduty.com/v2/enqueue"

static const char *const ch_type_names[] = {"email", "slack", "pagerduty",
                                            "webhook", "in_app"};

#define CH_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(CH_N(ch_type_names) == CH_NTYPES, "channel type names");

const char *channel_type_name(int t)
{
    return t >= 0 && t < CH_NTYPES ? ch_type_names[t] : NULL;
}

int channel_type_parse(const char *s)
{
    for (int t = 0; s != NULL && t < CH_NTYPES; t++)
        if (strcmp(ch_type_names[t], s) == 0)
            return t;
    return -1;
}

/* ---- the fields ---- */

#define CH_T(t) (1u << (t))
#define CH_ALL  ((1u << CH_NTYPES) - 1)

/* Every field a config may have, and the types that have it. */
static const struct ch_field {
    const char *name;
    unsigned types; /* CH_T() bits */
} ch_fields[] = {{"timeout_ms", CH_ALL},
                 {"min_interval_ms", CH_ALL},
                 {"smtp_url", CH_T(CH_EMAIL)},
                 {"starttls", CH_T(CH_EMAIL)},
                 {"username", CH_T(CH_EMAIL)},
                 {"password", CH_T(CH_EMAIL)},
                 {"from", CH_T(CH_EMAIL)},
                 {"to", CH_T(CH_EMAIL)},
                 {"webhook_url", CH_T(CH_SLACK)},
                 {"routing_key", CH_T(CH_PAGERDUTY)},
                 {"events_url", CH_T(CH_PAGERDUTY)},
                 {"url", CH_T(CH_WEBHOOK)},
                 {"secret", CH_T(CH_WEBHOOK)},
                 {"headers", CH_T(CH_WEBHOOK)},
                 {"format", CH_T(CH_WEBHOOK)}};

/* Headers the sender sets itself: a channel may not override them. */
static const char *const ch_reserved_headers[] = {
    "Host", "Content-Type", "Content-Length", "Transfer-Encoding",
    "X-Tokentap-Signature"};

/* How a URL field is checked and shown. */
enum ch_url_kind {
    CU_SMTP,  /* smtp_url: smtp or smtps, host and port only; no secret */
    CU_PLAIN, /* events_url: http or https, no userinfo; no secret */
    CU_HOOK,  /* webhook url: http or https; userinfo, path, query secret */
    CU_SLACK  /* slack webhook_url: http or https; all but the host secret */
};

/* ---- URLs ---- */

/* Parse url with libcurl (any scheme: the callers check it); NULL with
 * libcurl's reason in *why (when why is not NULL) when it does not. */
static CURLU *ch_url_parse(const char *url, CURLUcode *why)
{
    CURLU *u = curl_url();
    CURLUcode rc = CURLUE_OUT_OF_MEMORY;
    if (u != NULL)
        rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (why != NULL)
        *why = rc;
    if (rc != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* Part p of u into *out (curl_free it; NULL when absent or empty).
 * Returns 1 when present, 0 when absent or empty, -1 on any other error
 * (out of memory), so that a failure never passes for "no secret". */
static int ch_url_part(CURLU *u, CURLUPart p, char **out)
{
    char *s = NULL;
    CURLUcode rc = curl_url_get(u, p, &s, 0);
    *out = NULL;
    switch (rc) {
    case CURLUE_OK:
        break;
    case CURLUE_NO_USER:
    case CURLUE_NO_PASSWORD:
    case CURLUE_NO_OPTIONS:
    case CURLUE_NO_HOST:
    case CURLUE_NO_PORT:
    case CURLUE_NO_QUERY:
    case CURLUE_NO_FRAGMENT:
        return 0;
    default:
        return -1;
    }
    if (s == NULL || s[0] == '\0') {
        curl_free(s);
        return 0;
    }
    *out = s;
    return 1;
}

/* Whether u has part p: 1, 0, or -1 on error; when is is not NULL, 1
 * only when the part is exactly is. */
static int ch_url_has(CURLU *u, CURLUPart p, const char *is)
{
    char *s;
    int rc = ch_url_part(u, p, &s);
    if (rc == 1 && is != NULL && strcmp(s, is) != 0)
        rc = 0;
    curl_free(s);
    return rc;
}

/* Whether u has userinfo (a user, password or login options): 1, 0, -1. */
static int ch_url_has_login(CURLU *u)
{
    int a = ch_url_has(u, CURLUPART_USER, NULL);
    int b = ch_url_has(u, CURLUPART_PASSWORD, NULL);
    int c = ch_url_has(u, CURLUPART_OPTIONS, NULL);
    if (a < 0 || b < 0 || c < 0)
        return -1;
    return a || b || c;
}

/* channel_url_redact() of the parsed URL u, which it cleans up. */
static char *ch_url_redact(CURLU *u, int path_secret)
{
    char *path = NULL, *built = NULL, *out = NULL;
    int login = ch_url_has_login(u);
    int query = ch_url_has(u, CURLUPART_QUERY, NULL);
    int haspath = ch_url_part(u, CURLUPART_PATH, &path);
    if (login < 0 || query < 0 || haspath < 0)
        goto done;
    /* Drop the secret parts, then put CHANNEL_REDACTED where one was; the
     * fragment goes too: it is never sent, so nobody needs to see it. */
    if (curl_url_set(u, CURLUPART_USER, login ? CHANNEL_REDACTED : NULL, 0) ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) ||
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) ||
        curl_url_set(u, CURLUPART_QUERY, query ? CHANNEL_REDACTED : NULL, 0) ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0))
        goto done;
    if (path_secret && path != NULL && strcmp(path, "/") != 0 &&
        curl_url_set(u, CURLUPART_PATH, "/" CHANNEL_REDACTED, 0))
        goto done;
    if (curl_url_get(u, CURLUPART_URL, &built, 0) == CURLUE_OK)
        out = strdup(built);
done:
    curl_free(built);
    curl_free(path);
    curl_url_cleanup(u);
    return out;
}

char *channel_url_redact(const char *url, int path_secret)
{
    CURLU *u = url != NULL ? ch_url_parse(url, NULL) : NULL;
    return u != NULL ? ch_url_redact(u, path_secret) : NULL;
}

/* What a reader sees of url, stored in a field of kind k (malloc'ed; NULL
 * when out of memory): a URL with secret parts redacted, the URL itself
 * when it has none, and CHANNEL_REDACTED when it does not even parse.
 * u is url parsed (NULL when it does not parse), cleaned up here.  The
 * webhook url's path is secret as Slack's is: Discord, Teams and
 * Mattermost put their tokens there. */
static char *ch_url_view(CURLU *u, const char *url, int k)
{
    int secret = 1;
    if (u != NULL && k != CU_SLACK) {
        secret = ch_url_has_login(u);
        if (secret == 0 && k == CU_HOOK)
            secret = ch_url_has(u, CURLUPART_QUERY, NULL);
        if (secret == 0 && k == CU_HOOK) {
            int path = ch_url_has(u, CURLUPART_PATH, NULL);
            int root = ch_url_has(u, CURLUPART_PATH, "/");
            secret = path < 0 || root < 0 ? -1 : path && !root;
        }
    }
    if (secret == 0) {
        curl_url_cleanup(u);
        return strdup(url);
    }
    char *r =
        u != NULL ? ch_url_redact(u, k == CU_SLACK || k == CU_HOOK) : NULL;
    return r != NULL ? r : strdup(CHANNEL_REDACTED);
}

/* ---- checking ---- */

/* Where the check is and what it makes. */
struct ch_check {
    int t;
    const json_t *in;   /* the config sent */
    const json_t *prev; /* the config stored (an object), or NULL */
    json_t *out;        /* the config to store */
    const char *dest;   /* the type's destination URL field, once checked */
    int moved;          /* 1: the update sends to another destination */
    char *path;
    size_t pn;
    char *msg;
    size_t mn;
};

/* Fail at config.field ("config" when field is ""), saying what (printf
 * style) and then, when got is not NULL, ", got <got>".  got must never
 * hold a secret. */
__attribute__((format(printf, 4, 5))) static int ch_bad(struct ch_check *c,
                                                        const char *field,
                                                        const char *got,
                                                        const char *fmt, ...)
{
    char what[320], p[256];
    va_list ap;
    if (field[0] != '\0')
        snprintf(p, sizeof(p), "config.%s", field);
    else
        snprintf(p, sizeof(p), "config");
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (c->pn > 0)
        snprintf(c->path, c->pn, "%s", p);
    if (c->mn > 0)
        snprintf(c->msg, c->mn, "%s %s%s%s", p, what, got ? ", got " : "",
                 got ? got : "");
    return -1;
}

static int ch_oom(struct ch_check *c, const char *field)
{
    return ch_bad(c, field, NULL, "could not be stored (out of memory)");
}

/* Describe a non-secret value for a message (into buf). */
static const char *ch_desc(const json_t *v, char *buf, size_t n)
{
    ev_describe(v, buf, n);
    return buf;
}

/* Describe a secret value by its type only. */
static const char *ch_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    case JSON_OBJECT:
        return "an object";
    default:
        return "an array";
    }
}

/* Describe the URL s of kind k for a message (into buf): its reader's
 * view when it parses; when it does not, s itself for fields without a
 * secret unless it might hold a password ('@'), else NULL. */
static const char *ch_url_got(char *buf, size_t n, const char *s, int k)
{
    CURLU *u = ch_url_parse(s, NULL);
    char *view = NULL;
    if (u != NULL)
        view = ch_url_view(u, s, k);
    else if (k != CU_HOOK && k != CU_SLACK && strchr(s, '@') == NULL)
        view = strdup(s);
    json_t *j = view ? json_stringn_nocheck(view, strlen(view)) : NULL;
    free(view);
    if (j == NULL)
        return NULL;
    ev_describe(j, buf, n);
    json_decref(j);
    return buf;
}

/* A key's length (keys may hold NUL bytes from jansson 2.14 on). */
static size_t ch_key_len(const char *key)
{
#if JANSSON_VERSION_HEX >= 0x020e00
    return json_object_iter_key_len(json_object_key_to_iter(key));
#else
    return strlen(key);
#endif
}

/* prefix + key (n bytes) into buf as a path: bytes that are not printable
 * ASCII become '?', and a long key is cut with "...". */
static void ch_key_path(char *buf, size_t bn, const char *prefix,
                        const char *key, size_t n)
{
    char safe[CH_MAX_NAME + 4];
    size_t i;
    for (i = 0; i < n && i < CH_MAX_NAME; i++)
        safe[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
    if (i < n) {
        memcpy(safe + i, "...", 3);
        i += 3;
    }
    safe[i] = '\0';
    snprintf(buf, bn, "%s%s", prefix, safe);
}

/* Store v (a new reference, NULL when out of memory) as key. */
static int ch_set(struct ch_check *c, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(c->out, key, v) != 0)
        return ch_oom(c, key);
    return 0;
}

/* Store a copy of the string v as key. */
static int ch_set_copy(struct ch_check *c, const char *key, const json_t *v)
{
    return ch_set(
        c, key,
        json_stringn_nocheck(json_string_value(v), json_string_length(v)));
}

/* The stored string at key (NULL when there is none). */
static const json_t *ch_prev_str(const struct ch_check *c, const char *key)
{
    const json_t *v = c->prev ? json_object_get(c->prev, key) : NULL;
    return json_is_string(v) ? v : NULL;
}

/* Whether the string v is exactly CHANNEL_REDACTED. */
static int ch_is_redacted(const json_t *v)
{
    return json_is_string(v) &&
           json_string_length(v) == strlen(CHANNEL_REDACTED) &&
           strcmp(json_string_value(v), CHANNEL_REDACTED) == 0;
}

#define CH_SECRET 1u /* never quote the value */
#define CH_NOCTL  2u /* no control characters (tab aside): reaches headers */

/* Check that v at field is a string of 1 to max bytes without NUL bytes
 * (and without control characters under CH_NOCTL). */
static int ch_str_check(struct ch_check *c, const char *field, const json_t *v,
                        size_t max, unsigned flags)
{
    char buf[96];
    const char *got = NULL;
    if (!(flags & CH_SECRET))
        got = ch_desc(v, buf, sizeof(buf));
    if (!json_is_string(v))
        return ch_bad(c, field, got ? got : ch_kind(v), "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return ch_bad(c, field, NULL, "must not be empty");
    if (n > max)
        return ch_bad(c, field, NULL, "is longer than %zu bytes", max);
    if (strlen(s) != n)
        return ch_bad(c, field, got, "contains a NUL byte");
    for (size_t i = 0; (flags & CH_NOCTL) && i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return ch_bad(c, field, got,
                          "contains a line break or another control "
                          "character");
    }
    return 0;
}

/* The integer key, from lo to hi, def when absent; integral reals such as
 * 3.0 count, as JSON does not tell them apart. */
static int ch_int(struct ch_check *c, const char *key, long long def,
                  long long lo, long long hi)
{
    const json_t *v = json_object_get(c->in, key);
    long long x = def;
    if (v != NULL) {
        double d = json_is_real(v) ? json_real_value(v) : 0;
        if (json_is_integer(v))
            x = json_integer_value(v);
        else if (json_is_real(v) && d >= (double)lo && d <= (double)hi &&
                 d == (double)(long long)d)
            x = (long long)d;
        else
            x = lo - 1;
        if (x < lo || x > hi) {
            char buf[96];
            return ch_bad(c, key, ch_desc(v, buf, sizeof(buf)),
                          "must be an integer from %lld to %lld", lo, hi);
        }
    }
    return ch_set(c, key, json_integer(x));
}

/* Refuse to carry the stored secret at field over to a new destination:
 * whoever can change the URL could otherwise have it sent to their own
 * host. */
static int ch_resend(struct ch_check *c, const char *field)
{
    return ch_bad(c, field, NULL,
                  "must be sent again: the destination changed (the scheme, "
                  "host or port of config.%s), and a stored secret goes only "
                  "where it was sent",
                  c->dest);
}

/* A secret string key of at most max bytes: absent keeps the stored one
 * (required: an error when there is none), CHANNEL_REDACTED keeps it too
 * (an error when there is none), null removes an optional one.  When the
 * destination moved, a stored one is never kept: absent or redacted is an
 * error. */
static int ch_secret(struct ch_check *c, const char *key, size_t max,
                     unsigned flags, int required)
{
    const json_t *v = json_object_get(c->in, key);
    const json_t *old = ch_prev_str(c, key);
    if (v == NULL && old != NULL)
        return c->moved ? ch_resend(c, key) : ch_set_copy(c, key, old);
    if (v == NULL || (json_is_null(v) && required))
        return required ? ch_bad(c, key, NULL, "is required") : 0;
    if (json_is_null(v))
        return 0;
    if (ch_is_redacted(v)) {
        if (old == NULL)
            return ch_bad(c, key, NULL, "is redacted: send the secret itself");
        return c->moved ? ch_resend(c, key) : ch_set_copy(c, key, old);
    }
    if (ch_str_check(c, key, v, max, flags | CH_SECRET) != 0)
        return -1;
    return ch_set_copy(c, key, v);
}

/* Check the parsed URL u of the field key of kind k; got describes it. */
static int ch_url_parts(struct ch_check *c, const char *key, int k, CURLU *u,
                        const char *got)
{
    char *scheme = NULL;
    int rc = ch_url_part(u, CURLUPART_SCHEME, &scheme), ok = 0;
    if (rc < 0)
        return ch_oom(c, key);
    if (k == CU_SMTP)
        ok =
            rc && (strcmp(scheme, "smtp") == 0 || strcmp(scheme, "smtps") == 0);
    else
        ok =
            rc && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    if (!ok)
        return ch_bad(c, key, got, "must be %s URL",
                      k == CU_SMTP ? "an smtp:// or smtps://"
                                   : "an http:// or https://");
    int host = ch_url_has(u, CURLUPART_HOST, NULL);
    int port0 = ch_url_has(u, CURLUPART_PORT, "0");
    int frag = ch_url_has(u, CURLUPART_FRAGMENT, NULL);
    int login = ch_url_has_login(u);
    int query = ch_url_has(u, CURLUPART_QUERY, NULL);
    int root = ch_url_has(u, CURLUPART_PATH, "/");
    if (host < 0 || port0 < 0 || frag < 0 || login < 0 || query < 0 || root < 0)
        return ch_oom(c, key);
    if (!host)
        return ch_bad(c, key, got, "has no host");
    if (port0)
        return ch_bad(c, key, got, "has port 0");
    if (frag)
        return ch_bad(c, key, got, "must not have a #fragment");
    if (k == CU_SMTP && login)
        return ch_bad(c, key, got,
                      "must not hold a user name or password: set "
                      "config.username and config.password instead");
    if (k == CU_PLAIN && login)
        return ch_bad(c, key, got, "must not hold a user name or password");
    if (k == CU_SMTP && (query || !root))
        return ch_bad(c, key, got,
                      "must be smtp://host[:port] or smtps://host[:port], "
                      "without a path or query");
    if (k == CU_HOOK || k == CU_SLACK) {
        /* A redacted URL that is not the stored one's view (checked by
         * the caller) would send notifications to "********". */
        int ru = ch_url_has(u, CURLUPART_USER, CHANNEL_REDACTED);
        int rp = ch_url_has(u, CURLUPART_PASSWORD, CHANNEL_REDACTED);
        int rq = ch_url_has(u, CURLUPART_QUERY, CHANNEL_REDACTED);
        int rpath = ch_url_has(u, CURLUPART_PATH, "/" CHANNEL_REDACTED);
        if (ru < 0 || rp < 0 || rq < 0 || rpath < 0)
            return ch_oom(c, key);
        if (ru || rp || rq || rpath)
            return ch_bad(c, key, got, "is redacted: send the URL itself");
    }
    return 0;
}

/* The URL key of kind k: def when absent (NULL: required); for the kinds
 * with secrets, absent keeps the stored one.  A value equal to the stored
 * one's view keeps the stored one. */
static int ch_url(struct ch_check *c, const char *key, int k, const char *def)
{
    const json_t *v = json_object_get(c->in, key);
    const json_t *old = ch_prev_str(c, key);
    int secret = k == CU_HOOK || k == CU_SLACK;
    char buf[96];
    if (v == NULL && secret && old != NULL)
        return ch_set_copy(c, key, old);
    if (v == NULL && def != NULL)
        return ch_set(c, key, json_string(def));
    if (v == NULL)
        return ch_bad(c, key, NULL, "is required");
    if (!json_is_string(v))
        return ch_bad(c, key,
                      secret ? ch_kind(v) : ch_desc(v, buf, sizeof(buf)),
                      "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (old != NULL) {
        const char *was = json_string_value(old);
        char *view = ch_url_view(ch_url_parse(was, NULL), was, k);
        if (view == NULL)
            return ch_oom(c, key);
        int same = strlen(view) == n && memcmp(view, s, n) == 0;
        free(view);
        if (same)
            return ch_set_copy(c, key, old);
    }
    if (n > CH_MAX_URL)
        return ch_bad(c, key, NULL, "is longer than %d bytes", CH_MAX_URL);
    if (strlen(s) != n)
        return ch_bad(c, key, NULL, "contains a NUL byte");
    const char *got = ch_url_got(buf, sizeof(buf), s, k);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return ch_bad(c, key, got,
                          "contains a space, a line break or another "
                          "control character");
    CURLUcode why;
    CURLU *u = ch_url_parse(s, &why);
    if (u == NULL && why == CURLUE_OUT_OF_MEMORY)
        return ch_oom(c, key);
    if (u == NULL)
        return ch_bad(c, key, got, "is not a valid URL (%s)",
                      curl_url_strerror(why));
    int rc = ch_url_parts(c, key, k, u, got);
    curl_url_cleanup(u);
    return rc != 0 ? -1 : ch_set_copy(c, key, v);
}

/* Where a URL connects, as libcurl reads it: its scheme, host and port
 * (the scheme's default port when none is written; NULL when libcurl
 * knows none), each curl_free'd by ch_dest_free. */
struct ch_dest {
    char *scheme, *host, *port;
};

static void ch_dest_free(struct ch_dest *d)
{
    curl_free(d->scheme);
    curl_free(d->host);
    curl_free(d->port);
}

/* url's destination into *d: 0, or -1 when url is NULL or does not parse,
 * or out of memory (free *d either way). */
static int ch_dest_get(const char *url, struct ch_dest *d)
{
    CURLU *u = url != NULL ? ch_url_parse(url, NULL) : NULL;
    *d = (struct ch_dest){NULL, NULL, NULL};
    int ok = u != NULL &&
             curl_url_get(u, CURLUPART_SCHEME, &d->scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &d->host, 0) == CURLUE_OK;
    CURLUcode rc = CURLUE_OK;
    if (ok)
        rc = curl_url_get(u, CURLUPART_PORT, &d->port, CURLU_DEFAULT_PORT);
    curl_url_cleanup(u);
    return ok && (rc == CURLUE_OK || rc == CURLUE_NO_PORT) ? 0 : -1;
}

/* Once the URL key has been checked into c->out, note whether the update
 * moves the channel to another destination: another scheme, host (compared
 * without case) or port.  When that cannot be told (nothing stored at key,
 * a URL that does not parse, out of memory), it counts as moved: the safe
 * side, as a moved channel only has to be sent its secrets again. */
static void ch_dest_check(struct ch_check *c, const char *key)
{
    const json_t *old = ch_prev_str(c, key);
    struct ch_dest a, b;
    c->dest = key;
    if (c->prev == NULL)
        return;
    int ra = ch_dest_get(old ? json_string_value(old) : NULL, &a);
    int rb = ch_dest_get(json_string_value(json_object_get(c->out, key)), &b);
    c->moved = ra != 0 || rb != 0 || strcasecmp(a.scheme, b.scheme) != 0 ||
               strcasecmp(a.host, b.host) != 0 ||
               (a.port == NULL) != (b.port == NULL) ||
               (a.port != NULL && strcmp(a.port, b.port) != 0);
    ch_dest_free(&a);
    ch_dest_free(&b);
}

/* Why s (n bytes) is not a plain address "local@domain", or NULL. */
static const char *ch_addr_problem(const char *s, size_t n)
{
    static const char plain[] =
        "must be a plain address such as \"alerts@example.com\" (no display "
        "name, no spaces, none of <>,;:\"()[]\\)";
    const char *at = memchr(s, '@', n);
    if (n > CH_MAX_ADDR)
        return "is longer than 254 bytes";
    if (strlen(s) != n)
        return "contains a NUL byte";
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b <= 0x20 || b == 0x7f || strchr("<>,;:\"()[]\\", b) != NULL)
            return plain;
    }
    if (at == NULL || at == s || at == s + n - 1 ||
        memchr(at + 1, '@', (size_t)(s + n - at - 1)) != NULL)
        return plain;
    const char *dom = at + 1;
    size_t dn = (size_t)(s + n - dom);
    if (dom[0] == '.' || dom[dn - 1] == '.' || strstr(dom, "..") != NULL)
        return plain;
    return NULL;
}

/* The address v at field, copied into *out. */
static int ch_addr(struct ch_check *c, const char *field, const json_t *v,
                   json_t **out)
{
    char buf[96];
    const char *why;
    *out = NULL;
    if (!json_is_string(v))
        return ch_bad(c, field, ch_desc(v, buf, sizeof(buf)),
                      "must be an address such as \"alerts@example.com\"");
    why = ch_addr_problem(json_string_value(v), json_string_length(v));
    if (why != NULL)
        return ch_bad(c, field,
                      json_string_length(v) > CH_MAX_ADDR
                          ? NULL
                          : ch_desc(v, buf, sizeof(buf)),
                      "%s", why);
    *out = json_string(json_string_value(v));
    return *out ? 0 : ch_oom(c, field);
}

/* email: smtp_url, starttls, username, password, from, to. */
static int ch_email(struct ch_check *c)
{
    char buf[96], field[32];
    if (ch_url(c, "smtp_url", CU_SMTP, NULL) != 0)
        return -1;
    ch_dest_check(c, "smtp_url");
    char *scheme = NULL;
    CURLU *u = ch_url_parse(
        json_string_value(json_object_get(c->out, "smtp_url")), NULL);
    int rc = u ? ch_url_part(u, CURLUPART_SCHEME, &scheme) : -1;
    int smtps = rc == 1 && strcmp(scheme, "smtps") == 0;
    curl_free(scheme);
    curl_url_cleanup(u);
    if (rc != 1)
        return ch_oom(c, "smtp_url");
    const json_t *v = json_object_get(c->in, "starttls");
    if (v != NULL && smtps)
        return ch_bad(c, "starttls", NULL,
                      "applies only to smtp:// URLs (smtps:// is TLS from "
                      "the start)");
    if (v != NULL && !json_is_boolean(v))
        return ch_bad(c, "starttls", ch_desc(v, buf, sizeof(buf)),
                      "must be true or false");
    if (!smtps &&
        ch_set(c, "starttls", json_boolean(v == NULL || json_is_true(v))) != 0)
        return -1;
    v = json_object_get(c->in, "username");
    if (v != NULL) {
        if (ch_str_check(c, "username", v, CH_MAX_USER, CH_NOCTL) != 0 ||
            ch_set_copy(c, "username", v) != 0)
            return -1;
    }
    if (ch_secret(c, "password", CH_MAX_SECRET, 0, 0) != 0)
        return -1;
    if (json_object_get(c->out, "password") != NULL &&
        json_object_get(c->out, "username") == NULL)
        return ch_bad(c, "username", NULL,
                      "is required with a password (send \"password\": null "
                      "to remove the stored one)");
    json_t *a;
    v = json_object_get(c->in, "from");
    if (v == NULL)
        return ch_bad(c, "from", NULL, "is required");
    if (ch_addr(c, "from", v, &a) != 0 || ch_set(c, "from", a) != 0)
        return -1;
    v = json_object_get(c->in, "to");
    if (v == NULL)
        return ch_bad(c, "to", NULL, "is required");
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > CH_MAX_TO)
        return ch_bad(c, "to",
                      json_is_array(v) ? NULL : ch_desc(v, buf, sizeof(buf)),
                      "must be an array of 1 to %d addresses", CH_MAX_TO);
    json_t *to = json_array();
    if (to == NULL)
        return ch_oom(c, "to");
    for (size_t i = 0; i < json_array_size(v); i++) {
        snprintf(field, sizeof(field), "to[%zu]", i);
        if (ch_addr(c, field, json_array_get(v, i), &a) != 0 ||
            json_array_append_new(to, a) != 0) {
            json_decref(to);
            return a ? ch_oom(c, field) : -1;
        }
    }
    return ch_set(c, "to", to);
}

/* events_url, then routing_key (a secret of 1 to 64 printable
 * characters): the URL comes first, as it decides whether a stored key may
 * be kept.  events_url left out is the default, so leaving it out of an
 * update moves a channel from any other URL. */
static int ch_pagerduty(struct ch_check *c)
{
    if (ch_url(c, "events_url", CU_PLAIN, CH_EVENTS_URL) != 0)
        return -1;
    ch_dest_check(c, "events_url");
    if (ch_secret(c, "routing_key", CH_MAX_KEY, CH_NOCTL, 1) != 0)
        return -1;
    const char *k = json_string_value(json_object_get(c->out, "routing_key"));
    for (size_t i = 0; k[i] != '\0'; i++)
        if ((unsigned char)k[i] <= 0x20 || (unsigned char)k[i] >= 0x7f)
            return ch_bad(c, "routing_key", NULL,
                          "must be printable ASCII without spaces");
    return 0;
}

/* Whether name (n bytes) is an HTTP token (RFC 9110 tchar). */
static int ch_is_token(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)name[i];
        if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
              (b >= '0' && b <= '9') ||
              (b != '\0' && strchr("!#$%&'*+-.^_`|~", b) != NULL)))
            return 0;
    }
    return n > 0;
}

/* The stored value of header name (names compare without case). */
static const json_t *ch_prev_header(const struct ch_check *c, const char *name)
{
    const json_t *h = c->prev ? json_object_get(c->prev, "headers") : NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)h, k, v)
    {
        if (strcasecmp(k, name) == 0 && json_is_string(v))
            return v;
    }
    return NULL;
}

/* One header name: value into hs, a copy (checked against the others). */
static int ch_header(struct ch_check *c, json_t *hs, const json_t *in,
                     const char *name, size_t nlen, const json_t *v)
{
    char field[sizeof("headers.") + CH_MAX_NAME + 4], buf[96];
    ch_key_path(field, sizeof(field), "headers.", name, nlen);
    json_t *nj = json_stringn_nocheck(name, nlen);
    if (nj == NULL)
        return ch_oom(c, "headers");
    const char *got = ch_desc(nj, buf, sizeof(buf));
    int bad = !ch_is_token(name, nlen) || nlen > CH_MAX_HNAME;
    json_decref(nj);
    if (bad)
        return ch_bad(c, field, got,
                      "is not a header name: 1 to %d letters, digits or "
                      "!#$%%&'*+-.^_`|~",
                      CH_MAX_HNAME);
    for (int i = 0; i < CH_N(ch_reserved_headers); i++)
        if (strcasecmp(name, ch_reserved_headers[i]) == 0)
            return ch_bad(c, field, NULL,
                          "is set by tokentap: a channel may not set it");
    const char *k;
    json_t *o;
    json_object_foreach((json_t *)in, k, o)
    {
        if (k != name && ch_key_len(k) == nlen && strcasecmp(k, name) == 0)
            return ch_bad(c, field, NULL,
                          "repeats a header name (names ignore case)");
    }
    if (!json_is_string(v))
        return ch_bad(c, field, ch_kind(v), "must be a string");
    if (ch_is_redacted(v)) {
        const json_t *old = ch_prev_header(c, name);
        if (old == NULL)
            return ch_bad(c, field, NULL, "is redacted: send the value itself");
        if (c->moved)
            return ch_resend(c, field);
        v = old;
    } else if (ch_str_check(c, field, v, CH_MAX_HVALUE, CH_SECRET | CH_NOCTL))
        return -1;
    json_t *copy =
        json_stringn_nocheck(json_string_value(v), json_string_length(v));
    if (copy == NULL || json_object_set_new(hs, name, copy) != 0)
        return ch_oom(c, field);
    return 0;
}

/* headers: absent keeps the stored ones (an error when the destination
 * moved), null or {} means none. */
static int ch_headers(struct ch_check *c)
{
    const json_t *v = json_object_get(c->in, "headers");
    const char *k;
    json_t *hv;
    if (v == NULL) {
        const json_t *old =
            c->prev ? json_object_get(c->prev, "headers") : NULL;
        if (!json_is_object(old) || json_object_size(old) == 0)
            return 0;
        if (c->moved)
            return ch_resend(c, "headers");
        return ch_set(c, "headers", json_deep_copy(old));
    }
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return ch_bad(c, "headers", ch_kind(v),
                      "must be an object of header names and values");
    if (json_object_size(v) > CH_MAX_HEADERS)
        return ch_bad(c, "headers", NULL, "has more than %d headers",
                      CH_MAX_HEADERS);
    if (json_object_size(v) == 0)
        return 0;
    json_t *hs = json_object();
    if (hs == NULL)
        return ch_oom(c, "headers");
    json_object_foreach((json_t *)v, k, hv)
    {
        if (ch_header(c, hs, v, k, ch_key_len(k), hv) != 0) {
            json_decref(hs);
            return -1;
        }
    }
    return ch_set(c, "headers", hs);
}

/* webhook: url, secret, headers, format. */
static int ch_webhook(struct ch_check *c)
{
    char buf[96];
    if (ch_url(c, "url", CU_HOOK, NULL) != 0)
        return -1;
    ch_dest_check(c, "url");
    if (ch_secret(c, "secret", CH_MAX_SECRET, 0, 0) != 0 || ch_headers(c) != 0)
        return -1;
    const json_t *v = json_object_get(c->in, "format");
    const char *f = v ? json_string_value(v) : "tokentap";
    if (f == NULL || (v != NULL && json_string_length(v) != strlen(f)) ||
        (strcmp(f, "tokentap") != 0 && strcmp(f, "alertmanager") != 0))
        return ch_bad(c, "format", ch_desc(v, buf, sizeof(buf)),
                      "must be \"tokentap\" or \"alertmanager\"");
    return ch_set(c, "format", json_string(f));
}

/* Refuse the fields that type t does not have. */
static int ch_known_fields(struct ch_check *c)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c->in, k, v)
    {
        size_t n = ch_key_len(k);
        int i = 0;
        while (i < CH_N(ch_fields) &&
               (strlen(k) != n || strcmp(ch_fields[i].name, k) != 0 ||
                !(ch_fields[i].types & CH_T(c->t))))
            i++;
        if (i == CH_N(ch_fields)) {
            char field[CH_MAX_NAME + 4];
            ch_key_path(field, sizeof(field), "", k, n);
            return ch_bad(c, field, NULL, "is not a field of %s %s channel",
                          c->t == CH_EMAIL || c->t == CH_IN_APP ? "an" : "a",
                          channel_type_name(c->t));
        }
    }
    return 0;
}

static int ch_check_in(struct ch_check *c)
{
    if (ch_known_fields(c) != 0 ||
        ch_int(c, "timeout_ms", 10000, 1000, 60000) != 0 ||
        ch_int(c, "min_interval_ms", c->t == CH_SLACK ? 1000 : 0, 0, 3600000) !=
            0)
        return -1;
    switch (c->t) {
    case CH_EMAIL:
        return ch_email(c);
    case CH_SLACK:
        /* No check of the destination: the URL is the only secret, and one
         * with another host is never the stored one's redacted form, so it
         * has to be sent in full. */
        return ch_url(c, "webhook_url", CU_SLACK, NULL);
    case CH_PAGERDUTY:
        return ch_pagerduty(c);
    case CH_WEBHOOK:
        return ch_webhook(c);
    default:
        return 0;
    }
}

int channel_config_check(int t, const json_t *in, const json_t *prev,
                         json_t **out, char *path, size_t pn, char *msg,
                         size_t mn)
{
    struct ch_check c = {.t = t,
                         .in = in,
                         .prev = json_is_object(prev) ? prev : NULL,
                         .path = path,
                         .pn = pn,
                         .msg = msg,
                         .mn = mn};
    char buf[96];
    *out = NULL;
    if (channel_type_name(t) == NULL) {
        if (pn > 0)
            snprintf(path, pn, "type");
        if (mn > 0)
            snprintf(msg, mn, "type %d is not a channel type", t);
        return -1;
    }
    if (!json_is_object(in))
        return ch_bad(&c, "", in ? ch_desc(in, buf, sizeof(buf)) : "nothing",
                      "must be a JSON object");
    c.out = json_object();
    if (c.out == NULL)
        return ch_oom(&c, "");
    if (ch_check_in(&c) != 0) {
        json_decref(c.out);
        return -1;
    }
    *out = c.out;
    return 0;
}

/* ---- redaction ---- */

/* Replace the value of key in o, when there is one, by CHANNEL_REDACTED. */
static int ch_redact_field(json_t *o, const char *key)
{
    if (json_object_get(o, key) == NULL)
        return 0;
    return json_object_set_new(o, key, json_string(CHANNEL_REDACTED));
}

/* Replace the URL at key in o, when there is one, by its view. */
static int ch_redact_url(json_t *o, const char *key, int k)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return ch_redact_field(o, key);
    const char *url = json_string_value(v);
    char *view = ch_url_view(ch_url_parse(url, NULL), url, k);
    if (view == NULL)
        return -1;
    int rc = json_object_set_new(o, key, json_string_nocheck(view));
    free(view);
    return rc;
}

/* Secrets are found by name whatever t says, so that a config read under
 * the wrong type still shows none. */
json_t *channel_config_redact(int t, const json_t *stored)
{
    (void)t;
    json_t *r = json_is_object(stored) ? json_deep_copy(stored) : json_object();
    if (r == NULL)
        return NULL;
    int rc = ch_redact_field(r, "password") |
             ch_redact_field(r, "routing_key") | ch_redact_field(r, "secret") |
             ch_redact_url(r, "smtp_url", CU_SMTP) |
             ch_redact_url(r, "webhook_url", CU_SLACK) |
             ch_redact_url(r, "events_url", CU_PLAIN) |
             ch_redact_url(r, "url", CU_HOOK);
    json_t *h = json_object_get(r, "headers");
    if (json_is_object(h)) {
        for (void *it = json_object_iter(h); it != NULL;
             it = json_object_iter_next(h, it))
            rc |=
                json_object_iter_set_new(h, it, json_string(CHANNEL_REDACTED));
    } else {
        rc |= ch_redact_field(r, "headers");
    }
    if (rc != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}
