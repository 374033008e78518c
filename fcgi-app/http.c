/*
 * http.c: writing responses and reading requests for tt-api handlers.
 *
 * Responses go out as FastCGI "Status:" plus headers plus body; JSON
 * bodies are always made by jansson.  Query strings are decoded into the
 * request's arena.
 */
#include "api.h"
#include "event.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The reason phrase for a status code. */
static const char *api_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

int api_send_text(struct api_req *r, int status, const char *type,
                  const char *text, size_t len, const char *extra)
{
    FCGX_Stream *out = r->t->fr.out;
    FCGX_FPrintF(out,
                 "Status: %d %s\r\nContent-Type: %s\r\n"
                 "Cache-Control: no-store\r\n%s\r\n",
                 status, api_reason(status), type, extra ? extra : "");
    FCGX_PutStr(text, (int)len, out);
    r->status = status;
    return 0;
}

#define API_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A growing buffer that json_dump_callback writes into. */
struct api_dumpbuf {
    char *p;
    size_t len, cap;
};

static int api_dump_put(const char *s, size_t n, void *data)
{
    struct api_dumpbuf *b = data;
    if (b->len + n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 2 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

char *api_dump(json_t *v, size_t *len)
{
    /* One pass: json_dumpb would serialize twice, to size and to write. */
    struct api_dumpbuf b = {0};
    if (json_dump_callback(v, api_dump_put, &b, API_JSON_FLAGS) != 0 ||
        api_dump_put("", 0, &b) != 0) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len != NULL)
        *len = b.len;
    return b.p;
}

int api_send_json(struct api_req *r, int status, json_t *body,
                  const char *extra)
{
    size_t n;
    char *buf = api_dump(body, &n);
    json_decref(body);
    if (buf == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        return api_send_text(r, 500, "application/json", oom, sizeof(oom) - 1,
                             NULL);
    }
    buf[n++] = '\n'; /* api_dump leaves room for it */
    int rc = api_send_text(r, status, "application/json", buf, n, extra);
    free(buf);
    return rc;
}

/* Format and send an error. */
static int api_verror(struct api_req *r, int status, const char *extra,
                      const char *code, const char *field, const char *fmt,
                      va_list ap)
{
    char msg[512], fld[128];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    ev_utf8_clean(msg);
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (field != NULL) {
        snprintf(fld, sizeof(fld), "%s", field);
        ev_utf8_clean(fld);
        json_object_set_new(e, "field", json_string(fld));
    }
    if (r->rid[0] != '\0')
        json_object_set_new(e, "request_id", json_string(r->rid));
    return api_send_json(r, status, json_pack("{s:o}", "error", e), extra);
}

int api_error(struct api_req *r, int status, const char *code,
              const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    api_verror(r, status, NULL, code, field, fmt, ap);
    va_end(ap);
    return -1;
}

int api_error_h(struct api_req *r, int status, const char *extra,
                const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    api_verror(r, status, extra, code, field, fmt, ap);
    va_end(ap);
    return -1;
}

long api_read_body(struct api_req *r, long max, char **out)
{
    long want = r->content_length;
    if (want < 0)
        want = 0;
    if (want > max)
        return api_error(r, 413, "too_large", NULL,
                         "body is %ld bytes; the limit is %ld", want, max);
    char *buf = arena_alloc(r->arena, (size_t)want + 1);
    if (buf == NULL)
        return api_error(r, 500, "internal", NULL, "out of memory");
    long got = 0;
    while (got < want) {
        int n = FCGX_GetStr(buf + got, (int)(want - got), r->t->fr.in);
        if (n <= 0)
            break;
        got += n;
    }
    if (got != want)
        return api_error(r, 400, "bad_request", NULL,
                         "body ended after %ld of %ld bytes", got, want);
    buf[got] = '\0';
    *out = buf;
    return got;
}

/* Value of a hex digit, or -1. */
static int api_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode n bytes of URL-encoded text into the arena. */
static char *api_decode(struct arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            *o++ = ' ';
        else if (s[i] == '%' && i + 2 < n && api_hex(s[i + 1]) >= 0 &&
                 api_hex(s[i + 2]) >= 0) {
            *o++ = (char)(api_hex(s[i + 1]) * 16 + api_hex(s[i + 2]));
            i += 2;
        } else
            *o++ = s[i];
    }
    *o = '\0';
    return out;
}

/* Call fn for every key=value pair of the query string until it returns
 * non-zero; returns that value. */
static int api_query_each(struct api_req *r,
                          int (*fn)(void *ctx, const char *k, size_t kl,
                                    const char *v, size_t vl),
                          void *ctx)
{
    const char *q = r->query;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        const char *v = eq ? eq + 1 : q + len;
        size_t vl = eq ? len - kl - 1 : 0;
        if (kl > 0) {
            int rc = fn(ctx, q, kl, v, vl);
            if (rc != 0)
                return rc;
        }
        if (amp == NULL)
            break;
        q = amp + 1;
    }
    return 0;
}

/* State for api_query(). */
struct api_qfind {
    struct api_req *r;
    const char *name;
    const char *value;
};

/* api_query_each visitor: remember the value of the wanted key. */
static int api_qfind_fn(void *ctx, const char *k, size_t kl, const char *v,
                        size_t vl)
{
    struct api_qfind *f = ctx;
    if (strlen(f->name) != kl || memcmp(f->name, k, kl) != 0)
        return 0;
    f->value = api_decode(f->r->arena, v, vl);
    return 1;
}

const char *api_query(struct api_req *r, const char *name)
{
    struct api_qfind f = {r, name, NULL};
    api_query_each(r, api_qfind_fn, &f);
    return f.value;
}

/* State for api_query_only(). */
struct api_qonly {
    const char *const *names;
    char bad[64];
};

/* api_query_each visitor: stop at a key not in the list. */
static int api_qonly_fn(void *ctx, const char *k, size_t kl, const char *v,
                        size_t vl)
{
    struct api_qonly *o = ctx;
    for (const char *const *n = o->names; *n; n++)
        if (strlen(*n) == kl && memcmp(*n, k, kl) == 0)
            return 0;
    snprintf(o->bad, sizeof(o->bad), "%.*s", (int)(kl < 60 ? kl : 60), k);
    return 1;
}

int api_query_only(struct api_req *r, const char *const *names)
{
    struct api_qonly o = {names, ""};
    if (api_query_each(r, api_qonly_fn, &o) == 0)
        return 0;
    return api_error(r, 400, "invalid_parameter", o.bad,
                     "unknown query parameter \"%s\"", o.bad);
}

/* Check that the content type is JSON (parameters such as charset ok). */
int api_is_json(const char *ct)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

json_t *api_json_body(struct api_req *r, long max, const char *const *fields,
                      int empty_ok)
{
    static const char *const none[] = {NULL};
    char *text;
    long len;
    if (api_query_only(r, none) != 0 ||
        (len = api_read_body(r, max, &text)) < 0)
        return NULL;
    if (len == 0 && empty_ok)
        return json_object();
    if (!api_is_json(r->content_type)) {
        api_error(r, 415, "unsupported_media_type", NULL,
                  "Content-Type must be application/json, got \"%s\"",
                  r->content_type ? r->content_type : "");
        return NULL;
    }
    json_error_t jerr;
    json_t *in = json_loadb(text, (size_t)len, 0, &jerr);
    if (!json_is_object(in)) {
        api_error(r, 400, "invalid_json", NULL,
                  "the body must be a JSON object: %s",
                  in ? "got another JSON value" : jerr.text);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        int ok = fields == NULL;
        for (int i = 0; !ok && fields[i] != NULL; i++)
            ok = strcmp(k, fields[i]) == 0;
        if (!ok) {
            api_error(r, 400, "invalid_field", k, "unknown field \"%.64s\"", k);
            return NULL;
        }
    }
    return in;
}

int64_t api_path_id_only(struct api_req *r, const char *what)
{
    static const char *const none[] = {NULL};
    return api_query_only(r, none) != 0 ? 0 : api_path_id(r, what);
}

int64_t api_path_id(struct api_req *r, const char *what)
{
    char *end;
    errno = 0;
    long long id = strtoll(r->params[0], &end, 10);
    if (*end == '\0' && errno == 0 && id > 0)
        return id;
    api_error(r, 400, "invalid_parameter", "id",
              "a %s id is a positive integer, got \"%.32s\"", what,
              r->params[0]);
    return 0;
}
