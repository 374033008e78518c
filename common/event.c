/*
 * event.c: validation of event JSON into flat records, server-side event
 * ids, and RFC 3339 timestamps.
 *
 * This is the ingest hot path: every event that reaches tokentap passes
 * through ev_parse_body() once.  jansson parses the body; each event object
 * is then walked exactly once (one switch per key, no lookups by name), its
 * values are checked against the bounds in event.h while pointing into
 * jansson's own strings, and only when the whole event is valid is it copied
 * into the batch buffer as one record.  The only allocations are jansson's,
 * the batch buffer (grown geometrically, and kept per thread for the next
 * parse) and, for events with tags, what jansson's dumper allocates.  A
 * batch is all-or-nothing: the first bad event discards everything produced
 * so far.
 */
#include "event.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2000-01-01T00:00:00Z: numeric timestamps before this are a unit mistake. */
#define EV_TS_MIN_MS 946684800000LL
/* How far ahead of the server's clock a client's ts may be. */
#define EV_TS_SKEW_MS 86400000LL
/* Turn a numeric macro into a string literal. */
#define EV_XSTR(x) EV_STR(x)
#define EV_STR(x)  #x
/* Longest part of a bad value quoted back in an error message, in bytes. */
#define EV_QUOTE_MAX 72

/* The keys an event object may hold. */
enum ev_field {
    F_UNKNOWN,
    F_ID,
    F_TS,
    F_PROVIDER,
    F_MODEL,
    F_OPERATION,
    F_INPUT_TOKENS,
    F_OUTPUT_TOKENS,
    F_CACHE_READ_TOKENS,
    F_CACHE_WRITE_TOKENS,
    F_REASONING_TOKENS,
    F_COST_USD,
    F_LATENCY_MS,
    F_TTFT_MS,
    F_STATUS,
    F_ERROR_TYPE,
    F_USER,
    F_AGENT,
    F_API_KEY,
    F_SESSION,
    F_ROUND,
    F_REQUEST_ID,
    F_TAGS,
    F_WORKSPACE
};

/* One event between validation and packing: numbers already in place in a
 * record image, strings still pointing into the jansson tree. */
struct ev_stage {
    struct ev_rec rec;          /* fixed part; str_off/str_len unset */
    const char *str[EV_S_TAGS]; /* every string field except tags */
    size_t len[EV_S_TAGS];      /* their lengths in bytes */
    json_t *tags;               /* the tags object, NULL when absent */
    size_t tags_len;            /* length of its compact JSON text */
    bool tags_sorted;           /* its keys are already in sorted order */
    bool has_ts;                /* ts was given */
    char id[33];                /* a server-assigned id, when needed */
};

/* Map a key of length n to the field it names (F_UNKNOWN if none). */
static enum ev_field ev_field_of(const char *k, size_t n)
{
#define EV_IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
    if (n == 0)
        return F_UNKNOWN;
    switch (k[0]) {
    case 'a':
        if (EV_IS("agent"))
            return F_AGENT;
        if (EV_IS("api_key"))
            return F_API_KEY;
        break;
    case 'c':
        if (EV_IS("cost_usd"))
            return F_COST_USD;
        if (EV_IS("cache_read_tokens"))
            return F_CACHE_READ_TOKENS;
        if (EV_IS("cache_write_tokens"))
            return F_CACHE_WRITE_TOKENS;
        break;
    case 'e':
        if (EV_IS("error_type"))
            return F_ERROR_TYPE;
        break;
    case 'i':
        if (EV_IS("id"))
            return F_ID;
        if (EV_IS("input_tokens"))
            return F_INPUT_TOKENS;
        break;
    case 'l':
        if (EV_IS("latency_ms"))
            return F_LATENCY_MS;
        break;
    case 'm':
        if (EV_IS("model"))
            return F_MODEL;
        break;
    case 'o':
        if (EV_IS("output_tokens"))
            return F_OUTPUT_TOKENS;
        if (EV_IS("operation"))
            return F_OPERATION;
        break;
    case 'p':
        if (EV_IS("provider"))
            return F_PROVIDER;
        break;
    case 'r':
        if (EV_IS("round"))
            return F_ROUND;
        if (EV_IS("request_id"))
            return F_REQUEST_ID;
        if (EV_IS("reasoning_tokens"))
            return F_REASONING_TOKENS;
        break;
    case 's':
        if (EV_IS("status"))
            return F_STATUS;
        if (EV_IS("session"))
            return F_SESSION;
        break;
    case 't':
        if (EV_IS("ts"))
            return F_TS;
        if (EV_IS("tags"))
            return F_TAGS;
        if (EV_IS("ttft_ms"))
            return F_TTFT_MS;
        break;
    case 'u':
        if (EV_IS("user"))
            return F_USER;
        break;
    case 'w':
        if (EV_IS("workspace"))
            return F_WORKSPACE;
        break;
    }
    return F_UNKNOWN;
#undef EV_IS
}

/* Return how many bytes of the UTF-8 string s (n bytes) fit in max without
 * splitting a character. */
static size_t ev_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* Append s (n bytes) to buf, in double quotes if quoted, escaping quotes,
 * backslashes and control bytes, and ending in "..." if cut short; invalid
 * UTF-8 bytes become '?' so the result is always valid UTF-8. */
static void ev_escape(char *buf, size_t size, const char *s, size_t n,
                      bool quoted)
{
    size_t o = strlen(buf), i = 0;
    size_t stop = o + EV_QUOTE_MAX < size ? o + EV_QUOTE_MAX : size;

    if (o + 8 > size)
        return;
    if (quoted)
        buf[o++] = '"';
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t clen = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        bool bad = c >= 0x80 && (c < 0xC2 || c > 0xF4 || i + clen > n);

        for (size_t k = 1; !bad && k < clen; k++)
            bad = ((unsigned char)s[i + k] & 0xC0) != 0x80;
        if (bad)
            clen = 1;
        /* Room for the widest escape, the closing quote, "..." and NUL. */
        if (o + 6 + 5 > stop)
            break;
        if (bad) {
            buf[o++] = '?';
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(buf + o, 7, "\\u%04x", c);
        } else if (quoted && (c == '"' || c == '\\')) {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else {
            memcpy(buf + o, s + i, clen);
            o += clen;
        }
        i += clen;
    }
    if (quoted)
        buf[o++] = '"';
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/* Append s (n bytes) to buf as a quoted, escaped string. */
static void ev_quote(char *buf, size_t size, const char *s, size_t n)
{
    ev_escape(buf, size, s, n, true);
}

/* Describe v for an error message (see event.h). */
void ev_describe(const struct json_t *v, char *buf, size_t n)
{
    double d;

    if (n == 0)
        return;
    buf[0] = '\0';
    switch (json_typeof(v)) {
    case JSON_STRING:
        ev_quote(buf, n, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        /* The shortest of %.15g and %.17g that reads back as the value. */
        d = json_real_value(v);
        snprintf(buf, n, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, n, "%.17g", d);
        break;
    case JSON_TRUE:
        snprintf(buf, n, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, n, "false");
        break;
    case JSON_NULL:
        snprintf(buf, n, "null");
        break;
    case JSON_OBJECT:
        snprintf(buf, n, "an object");
        break;
    case JSON_ARRAY:
        snprintf(buf, n, "an array");
        break;
    }
}

/* Record that field is bad with a printf-style message; returns -1. */
__attribute__((format(printf, 3, 4))) static int
ev_fail(struct ev_error *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    size_t n = strlen(field);

    n = ev_utf8_cut(field, n, sizeof(err->field) - 1);
    memcpy(err->field, field, n);
    err->field[n] = '\0';
    va_start(ap, fmt);
    n = (size_t)vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    /* Messages fit, but if one ever did not, drop a character cut short. */
    if (n >= sizeof(err->message)) {
        size_t end = sizeof(err->message) - 1, j = end;
        unsigned char c;
        while (j > 0 && ((unsigned char)err->message[j - 1] & 0xC0) == 0x80)
            j--;
        c = j > 0 ? (unsigned char)err->message[j - 1] : 0;
        if (c >= 0xC0 && j - 1 + (c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2) > end)
            err->message[j - 1] = '\0';
    }
    return -1;
}

/* Report that field holds v where what was expected; returns -1. */
static int ev_fail_value(struct ev_error *err, const char *field,
                         const char *what, const json_t *v)
{
    char got[EV_QUOTE_MAX + 16];

    ev_describe(v, got, sizeof(got));
    return ev_fail(err, field, "%s must be %s, got %s", field, what, got);
}

/* Read v as an integer from lo to hi; integral reals such as 3.0 count as
 * integers because JSON does not tell them apart.  Returns 0 or -1. */
static int ev_get_int(const json_t *v, const char *field, long long lo,
                      long long hi, long long *out, struct ev_error *err)
{
    char what[80];
    long long x;

    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= (double)lo && d <= (double)hi) || d != (double)(long long)d)
            goto bad;
        x = (long long)d;
    } else {
        goto bad;
    }
    if (x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
bad:
    if (lo != 0)
        snprintf(what, sizeof(what), "an integer from %lld to %lld", lo, hi);
    else if (json_is_number(v) && json_number_value(v) > (double)hi)
        snprintf(what, sizeof(what), "an integer <= %lld", hi);
    else
        snprintf(what, sizeof(what), "an integer >= 0");
    return ev_fail_value(err, field, what, v);
}

/* Read v as a number from 0 to hi.  Returns 0 or -1. */
static int ev_get_num(const json_t *v, const char *field, double hi,
                      double *out, struct ev_error *err)
{
    char what[80];
    double d;

    if (json_is_number(v)) {
        d = json_number_value(v);
        if (d >= 0 && d <= hi) {
            *out = d + 0.0; /* turns -0.0 into 0.0 */
            return 0;
        }
    }
    if (json_is_number(v) && json_number_value(v) > hi)
        snprintf(what, sizeof(what), "a number <= %.0f", hi);
    else
        snprintf(what, sizeof(what), "a number >= 0");
    return ev_fail_value(err, field, what, v);
}

/* Return the offset of the first control character (C0, DEL or C1) in the
 * UTF-8 string s of n bytes, or n if there is none. */
static size_t ev_find_ctl(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
    size_t i = 0;

    /* Skip 8 bytes at a time while none is below 0x20, 0x7F or 0xC2 (the
     * lead byte of a C1 control): the usual bit tricks for "some byte is
     * less than 0x20" and "some byte is zero" after an xor. */
    for (; i + 8 <= n; i += 8) {
        uint64_t x, del, c2;
        memcpy(&x, s + i, 8);
        del = x ^ (ones * 0x7F);
        c2 = x ^ (ones * 0xC2);
        if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del) |
             ((c2 - ones) & ~c2)) &
            high)
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7F && c != 0xC2)
            continue;
        /* U+0080..U+009F are encoded C2 80..C2 9F. */
        if (c != 0xC2 ||
            (i + 1 < n && ((unsigned char)s[i + 1] & 0xE0) == 0x80))
            return i;
    }
    return n;
}

/* Read v as a string of lo..hi bytes free of control characters.
 * Returns 0 or -1. */
static int ev_get_str(const json_t *v, const char *field, size_t lo, size_t hi,
                      const char **s, size_t *n, struct ev_error *err)
{
    char got[EV_QUOTE_MAX + 16];
    const char *p;
    size_t len;

    if (!json_is_string(v))
        return ev_fail_value(err, field, "a string", v);
    p = json_string_value(v);
    len = json_string_length(v);
    if (len < lo)
        return ev_fail(err, field, "%s must not be empty", field);
    if (len > hi) {
        ev_describe(v, got, sizeof(got));
        return ev_fail(err, field,
                       "%s must be at most %zu bytes, got %zu bytes: %s", field,
                       hi, len, got);
    }
    if (ev_find_ctl(p, len) != len)
        return ev_fail_value(err, field, "free of control characters", v);
    *s = p;
    *n = len;
    return 0;
}

/* Check an id: printable ASCII without spaces.  Returns 0 or -1. */
static int ev_check_id(const json_t *v, const char *s, size_t n,
                       struct ev_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7E)
            return ev_fail_value(err, "id", "printable ASCII without spaces",
                                 v);
    return 0;
}

/* Check a provider name: lowercase letters, digits, '.', '_' and '-'.
 * Returns 0 or -1. */
static int ev_check_provider(const json_t *v, const char *s, size_t n,
                             struct ev_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return ev_fail_value(
                err, "provider",
                "lowercase letters, digits, '.', '_' or '-' (e.g. \"openai\")",
                v);
    }
    return 0;
}

/* Bytes that s (n bytes, no control characters) takes as a JSON string:
 * jansson escapes only '"' and '\\' once control characters are excluded. */
static size_t ev_json_strlen(const char *s, size_t n)
{
    size_t len = n + 2;

    for (size_t i = 0; i < n; i++)
        len += s[i] == '"' || s[i] == '\\';
    return len;
}

/* Report a bad tag as what, the quoted key k, then why. */
static int ev_tag_fail(struct ev_error *err, const char *what, const char *k,
                       size_t kn, const char *why)
{
    char got[EV_QUOTE_MAX + 16] = "";

    ev_quote(got, sizeof(got), k, kn);
    return ev_fail(err, "tags", "%s %s %s", what, got, why);
}

/* Check a tags object: at most EV_MAX_TAGS keys of 1..EV_MAX_TAG_KEY bytes
 * with string values of at most EV_MAX_TAG_VALUE bytes.  Sets *dumped to
 * the length of its compact JSON text and *sorted to whether its keys are
 * already in the order JSON_SORT_KEYS would give.  Returns 0 or -1. */
static int ev_check_tags(json_t *v, size_t *dumped, bool *sorted,
                         struct ev_error *err)
{
    size_t len = 1, pn = 0; /* '{' and '}', less the last pair's comma */
    const char *prev = NULL;

    if (!json_is_object(v))
        return ev_fail_value(err, "tags", "an object of strings", v);
    if (json_object_size(v) > EV_MAX_TAGS)
        return ev_fail(err, "tags", "tags must have at most %d keys, got %zu",
                       EV_MAX_TAGS, json_object_size(v));
    *sorted = true;
    for (void *it = json_object_iter(v); it;
         it = json_object_iter_next(v, it)) {
        const char *k = json_object_iter_key(it);
        size_t kn = json_object_iter_key_len(it);
        json_t *tv = json_object_iter_value(it);
        const char *tval;
        size_t tn;

        if (kn == 0)
            return ev_fail(err, "tags", "tag keys must not be empty");
        if (kn > EV_MAX_TAG_KEY)
            return ev_tag_fail(err, "tag key", k, kn,
                               "is too long: at most " EV_XSTR(
                                   EV_MAX_TAG_KEY) " bytes are allowed");
        if (ev_find_ctl(k, kn) != kn)
            return ev_tag_fail(err, "tag key", k, kn,
                               "must not contain control characters");
        if (!json_is_string(tv)) {
            char val[EV_QUOTE_MAX + 16], q[EV_QUOTE_MAX + 16] = "";
            ev_describe(tv, val, sizeof(val));
            ev_quote(q, sizeof(q), k, kn);
            return ev_fail(err, "tags", "tag %s must be a string, got %s", q,
                           val);
        }
        tval = json_string_value(tv);
        tn = json_string_length(tv);
        if (tn > EV_MAX_TAG_VALUE)
            return ev_tag_fail(err, "tag", k, kn,
                               "value is too long: at most " EV_XSTR(
                                   EV_MAX_TAG_VALUE) " bytes are allowed");
        if (ev_find_ctl(tval, tn) != tn)
            return ev_tag_fail(err, "tag", k, kn,
                               "value must not contain control characters");
        len += ev_json_strlen(k, kn) + 1 + ev_json_strlen(tval, tn) + 1;
        /* jansson sorts by memcmp, shorter first on a common prefix. */
        if (prev) {
            int c = memcmp(prev, k, pn < kn ? pn : kn);
            if (c > 0 || (c == 0 && pn > kn))
                *sorted = false;
        }
        prev = k;
        pn = kn;
    }
    *dumped = len;
    return 0;
}

/* Read ts: an RFC 3339 string or integer epoch ms, from 2000-01-01 to one
 * day after now_ms.  Returns 0 or -1. */
static int ev_get_ts(const json_t *v, int64_t now_ms, int64_t *out,
                     struct ev_error *err)
{
    const char *what = "an RFC 3339 date-time or integer epoch milliseconds";
    long long ms;

    if (json_is_string(v)) {
        int64_t t;
        if (json_string_length(v) > 64 ||
            ev_parse_rfc3339(json_string_value(v), &t) != 0)
            return ev_fail_value(err, "ts", what, v);
        ms = t;
    } else if (json_is_number(v)) {
        double d = json_number_value(v);
        if (json_is_real(v) &&
            (!(d > -9e15 && d < 9e15) || d != (double)(long long)d))
            return ev_fail_value(err, "ts", what, v);
        ms = json_is_integer(v) ? json_integer_value(v) : (long long)d;
    } else {
        return ev_fail_value(err, "ts", what, v);
    }
    if (ms < EV_TS_MIN_MS || ms > now_ms + EV_TS_SKEW_MS)
        return ev_fail_value(err, "ts",
                             "a time from 2000-01-01 to one day after the "
                             "server's clock (epoch milliseconds, not seconds)",
                             v);
    *out = ms;
    return 0;
}

/* Validate one event object into st.  Returns 0 or -1 with err filled
 * (except err->index, which the caller owns). */
static int ev_validate(json_t *obj, int64_t now_ms, struct ev_stage *st,
                       struct ev_error *err)
{
    struct ev_rec *r = &st->rec;
    long long x = 0;

    memset(st, 0, sizeof(*st));
    for (int f = 0; f < EV_S_TAGS; f++)
        st->str[f] = "";
    for (void *it = json_object_iter(obj); it;
         it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *v = json_object_iter_value(it);
        enum ev_field f = ev_field_of(key, klen);
        int rc = 0;

        if (f == F_UNKNOWN) {
            char q[EV_QUOTE_MAX + 16] = "";
            ev_quote(q, sizeof(q), key, klen);
            return ev_fail(err, key, "unknown field %s", q);
        }
        if (f == F_WORKSPACE)
            return ev_fail(err, key,
                           "workspace must not be in the event: the "
                           "workspace comes from the API key");
        if (json_is_null(v))
            continue;
        switch (f) {
        case F_ID:
            rc = ev_get_str(v, key, 1, EV_MAX_ID, &st->str[EV_S_ID],
                            &st->len[EV_S_ID], err);
            if (rc == 0)
                rc = ev_check_id(v, st->str[EV_S_ID], st->len[EV_S_ID], err);
            break;
        case F_TS:
            rc = ev_get_ts(v, now_ms, &r->ts_ms, err);
            st->has_ts = true;
            break;
        case F_PROVIDER:
            rc = ev_get_str(v, key, 1, EV_MAX_NAME, &st->str[EV_S_PROVIDER],
                            &st->len[EV_S_PROVIDER], err);
            if (rc == 0)
                rc = ev_check_provider(v, st->str[EV_S_PROVIDER],
                                       st->len[EV_S_PROVIDER], err);
            break;
        case F_MODEL:
            rc = ev_get_str(v, key, 1, EV_MAX_NAME, &st->str[EV_S_MODEL],
                            &st->len[EV_S_MODEL], err);
            break;
        case F_OPERATION:
            rc = ev_get_str(v, key, 0, EV_MAX_SHORT, &st->str[EV_S_OPERATION],
                            &st->len[EV_S_OPERATION], err);
            break;
        case F_INPUT_TOKENS:
            rc = ev_get_int(v, key, 0, EV_MAX_TOKENS, &x, err);
            r->input_tokens = x;
            break;
        case F_OUTPUT_TOKENS:
            rc = ev_get_int(v, key, 0, EV_MAX_TOKENS, &x, err);
            r->output_tokens = x;
            break;
        case F_CACHE_READ_TOKENS:
            rc = ev_get_int(v, key, 0, EV_MAX_TOKENS, &x, err);
            r->cache_read_tokens = x;
            break;
        case F_CACHE_WRITE_TOKENS:
            rc = ev_get_int(v, key, 0, EV_MAX_TOKENS, &x, err);
            r->cache_write_tokens = x;
            break;
        case F_REASONING_TOKENS:
            rc = ev_get_int(v, key, 0, EV_MAX_TOKENS, &x, err);
            r->reasoning_tokens = x;
            break;
        case F_COST_USD:
            rc = ev_get_num(v, key, EV_MAX_COST, &r->cost_usd, err);
            r->flags |= EV_F_COST;
            break;
        case F_LATENCY_MS:
            rc = ev_get_num(v, key, EV_MAX_LATENCY, &r->latency_ms, err);
            r->flags |= EV_F_LATENCY;
            break;
        case F_TTFT_MS:
            rc = ev_get_num(v, key, EV_MAX_LATENCY, &r->ttft_ms, err);
            r->flags |= EV_F_TTFT;
            break;
        case F_STATUS:
            rc = ev_get_int(v, key, 100, 599, &x, err);
            r->status = (int32_t)x;
            r->flags |= EV_F_STATUS;
            break;
        case F_ERROR_TYPE:
            rc = ev_get_str(v, key, 0, EV_MAX_SHORT, &st->str[EV_S_ERROR_TYPE],
                            &st->len[EV_S_ERROR_TYPE], err);
            break;
        case F_USER:
            rc = ev_get_str(v, key, 0, EV_MAX_NAME, &st->str[EV_S_USER],
                            &st->len[EV_S_USER], err);
            break;
        case F_AGENT:
            rc = ev_get_str(v, key, 0, EV_MAX_NAME, &st->str[EV_S_AGENT],
                            &st->len[EV_S_AGENT], err);
            break;
        case F_API_KEY:
            rc = ev_get_str(v, key, 0, EV_MAX_NAME, &st->str[EV_S_API_KEY],
                            &st->len[EV_S_API_KEY], err);
            break;
        case F_SESSION:
            rc = ev_get_str(v, key, 0, EV_MAX_NAME, &st->str[EV_S_SESSION],
                            &st->len[EV_S_SESSION], err);
            break;
        case F_ROUND:
            rc = ev_get_int(v, key, 0, EV_MAX_ROUND, &x, err);
            r->round = (int32_t)x;
            r->flags |= EV_F_ROUND;
            break;
        case F_REQUEST_ID:
            rc = ev_get_str(v, key, 0, EV_MAX_REQUEST_ID,
                            &st->str[EV_S_REQUEST_ID],
                            &st->len[EV_S_REQUEST_ID], err);
            break;
        case F_TAGS:
            rc = ev_check_tags(v, &st->tags_len, &st->tags_sorted, err);
            if (json_object_size(v) > 0)
                st->tags = v;
            break;
        case F_UNKNOWN:
        case F_WORKSPACE:
            break;
        }
        if (rc != 0)
            return -1;
    }

    if (st->len[EV_S_PROVIDER] == 0)
        return ev_fail(err, "provider", "provider is required");
    if (st->len[EV_S_MODEL] == 0)
        return ev_fail(err, "model", "model is required");
    if ((r->flags & (EV_F_TTFT | EV_F_LATENCY)) == (EV_F_TTFT | EV_F_LATENCY) &&
        r->ttft_ms > r->latency_ms)
        return ev_fail(err, "ttft_ms",
                       "ttft_ms must not exceed latency_ms, got ttft_ms %g "
                       "and latency_ms %g",
                       r->ttft_ms, r->latency_ms);
    if (!st->has_ts)
        r->ts_ms = now_ms;
    if (st->len[EV_S_OPERATION] == 0) {
        st->str[EV_S_OPERATION] = "chat";
        st->len[EV_S_OPERATION] = 4;
    }
    if (st->len[EV_S_ID] == 0) {
        ev_new_id(st->id);
        st->str[EV_S_ID] = st->id;
        st->len[EV_S_ID] = 32;
        r->flags |= EV_F_ID_SERVER;
    }
    if (((r->flags & EV_F_STATUS) && r->status >= 400) ||
        st->len[EV_S_ERROR_TYPE] > 0)
        r->flags |= EV_F_ERROR;
    return 0;
}

/*
 * A one-buffer cache per thread for batch buffers.  Freeing a batch buffer
 * of tens of KiB right after a jansson tree makes glibc consolidate the
 * thousands of small chunks the tree left in its fast bins, and the next
 * parse then allocates the slow way: that cost more than all the validation
 * here (measured: +10% instructions per event).  A worker parses one body
 * after another, so handing the buffer back to the next parse on the same
 * thread avoids both the free and the malloc.
 */

/* Buffers larger than this are freed rather than cached. */
#define EV_CACHE_MAX (1u << 20)

/* This thread's cached buffer, also held as the value of ev_cache_key so
 * that it is freed when the thread exits. */
static _Thread_local char *ev_cache_buf;
static _Thread_local size_t ev_cache_cap;
static pthread_key_t ev_cache_key;
static pthread_once_t ev_cache_once = PTHREAD_ONCE_INIT;
static bool ev_cache_ok; /* ev_cache_key was created */

/* Create the key whose destructor frees a thread's cached buffer. */
static void ev_cache_init(void)
{
    ev_cache_ok = pthread_key_create(&ev_cache_key, free) == 0;
}

/* Take this thread's cached buffer (NULL if none) and its size. */
static char *ev_cache_take(size_t *cap)
{
    char *buf = ev_cache_buf;

    *cap = buf ? ev_cache_cap : 0;
    if (buf) {
        ev_cache_buf = NULL;
        pthread_setspecific(ev_cache_key, NULL);
    }
    return buf;
}

/* Keep buf (cap bytes) for this thread's next parse, freeing whichever of
 * it and the buffer already cached is smaller. */
static void ev_cache_put(char *buf, size_t cap)
{
    pthread_once(&ev_cache_once, ev_cache_init);
    if (!ev_cache_ok) {
        free(buf);
        return;
    }
    if (ev_cache_buf) {
        if (ev_cache_cap >= cap) {
            free(buf);
            return;
        }
        free(ev_cache_buf);
    }
    ev_cache_buf = buf;
    ev_cache_cap = cap;
    pthread_setspecific(ev_cache_key, buf);
}

/* Make room for need bytes in b, growing it geometrically.  Returns 0 or
 * -1 when out of memory. */
static int ev_reserve(struct ev_batch *b, size_t need)
{
    size_t cap = b->cap ? b->cap * 2 : need;
    char *p;

    if (need <= b->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = realloc(b->buf, cap);
    if (!p)
        return -1;
    b->buf = p;
    b->cap = cap;
    return 0;
}

/* Append the record for a validated event to b.  Returns EV_OK,
 * EV_ERR_NOMEM, or EV_ERR_INVALID if the tags cannot be stored. */
static enum ev_result ev_pack(const struct ev_stage *st, struct ev_batch *b,
                              struct ev_error *err)
{
    /* Sorting makes jansson allocate; skip it when the keys are in order. */
    const size_t flags = JSON_COMPACT | (st->tags_sorted ? 0 : JSON_SORT_KEYS);
    struct ev_rec *r;
    size_t off = sizeof(struct ev_rec), need = off + 1, tlen = 0, avail;
    char *base;

    for (int f = 0; f < EV_S_TAGS; f++)
        need += st->len[f] + 1;
    if (st->tags)
        need += st->tags_len;
    if (ev_reserve(b, b->len + need + 8) != 0)
        return EV_ERR_NOMEM;
    base = b->buf + b->len;
    r = (struct ev_rec *)(void *)base;
    memcpy(r, &st->rec, sizeof(*r));
    for (int f = 0; f < EV_S_TAGS; f++) {
        r->str_off[f] = (uint32_t)off;
        r->str_len[f] = (uint16_t)st->len[f];
        if (st->len[f] > 0) /* most optional strings are absent */
            memcpy(base + off, st->str[f], st->len[f]);
        base[off + st->len[f]] = '\0';
        off += st->len[f] + 1;
    }
    if (st->tags) {
        avail = b->cap - b->len - off;
        tlen = json_dumpb(st->tags, base + off, avail, flags);
        if (tlen == 0)
            return EV_ERR_NOMEM;
        if (tlen > UINT16_MAX) { /* cannot happen within the tag bounds */
            ev_fail(err, "tags", "tags are too large");
            return EV_ERR_INVALID;
        }
        if (tlen + 1 > avail) {
            if (ev_reserve(b, b->len + off + tlen + 1 + 8) != 0)
                return EV_ERR_NOMEM;
            base = b->buf + b->len;
            r = (struct ev_rec *)(void *)base;
            if (json_dumpb(st->tags, base + off, tlen + 1, flags) != tlen)
                return EV_ERR_NOMEM;
        }
    }
    r->str_off[EV_S_TAGS] = (uint32_t)off;
    r->str_len[EV_S_TAGS] = (uint16_t)tlen;
    base[off + tlen] = '\0';
    off += tlen + 1;
    need = (off + 7) & ~(size_t)7;
    memset(base + off, 0, need - off);
    r->size = (uint32_t)need;
    b->len += need;
    b->count++;
    return EV_OK;
}

/* Copy jansson's error text into msg, keeping it valid UTF-8. */
static void ev_json_error(struct ev_error *err, const json_error_t *je)
{
    char text[EV_QUOTE_MAX + 16] = "";

    /* jansson's text may quote raw input; ev_quote makes it safe. */
    ev_escape(text, sizeof(text), je->text, strlen(je->text), false);
    snprintf(err->message, sizeof(err->message),
             "invalid JSON at line %d, column %d: %s", je->line, je->column,
             text);
}

/* Parse and validate a body into out, all or nothing (see event.h). */
enum ev_result ev_parse_body(const char *body, size_t len, int64_t now_ms,
                             struct ev_batch *out, struct ev_error *err)
{
    const size_t jflags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
    enum ev_result res = EV_OK;
    struct ev_stage st;
    json_error_t je;
    json_t *root;
    size_t n;

    memset(out, 0, sizeof(*out));
    err->index = -1;
    err->field[0] = '\0';
    err->message[0] = '\0';
    root = json_loadb(body, len, jflags, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory) {
            snprintf(err->message, sizeof(err->message), "out of memory");
            return EV_ERR_NOMEM;
        }
        ev_json_error(err, &je);
        return EV_ERR_JSON;
    }
    if (json_is_object(root)) {
        n = 1;
    } else if (json_is_array(root)) {
        n = json_array_size(root);
        if (n == 0) {
            ev_fail(err, "", "empty batch: send at least one event");
            res = EV_ERR_INVALID;
            goto done;
        }
        if (n > EV_MAX_BATCH) {
            ev_fail(err, "", "a batch holds at most %d events, got %zu",
                    EV_MAX_BATCH, n);
            res = EV_ERR_TOO_MANY;
            goto done;
        }
    } else {
        char got[EV_QUOTE_MAX + 16];
        ev_describe(root, got, sizeof(got));
        ev_fail(err, "",
                "the body must be an event object or an array of events, "
                "got %s",
                got);
        res = EV_ERR_INVALID;
        goto done;
    }

    /* Rich events pack smaller than their JSON, bare ones larger: guess
     * the body's size plus a little per event, and grow if needed. */
    out->buf = ev_cache_take(&out->cap);
    if (ev_reserve(out, len + n * (sizeof(struct ev_rec) + 16)) != 0) {
        res = EV_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_is_object(root) ? root : json_array_get(root, i);

        err->index = (int)i;
        if (!json_is_object(ev)) {
            char got[EV_QUOTE_MAX + 16];
            ev_describe(ev, got, sizeof(got));
            ev_fail(err, "", "event must be an object, got %s", got);
            res = EV_ERR_INVALID;
            goto done;
        }
        if (ev_validate(ev, now_ms, &st, err) != 0) {
            res = EV_ERR_INVALID;
            goto done;
        }
        res = ev_pack(&st, out, err);
        if (res != EV_OK)
            goto done;
    }
    err->index = -1;
done:
    json_decref(root);
    if (res != EV_OK) {
        if (res == EV_ERR_NOMEM)
            snprintf(err->message, sizeof(err->message), "out of memory");
        ev_batch_free(out);
    }
    return res;
}

/* Release b's buffer, keeping a small one for this thread's next parse. */
void ev_batch_free(struct ev_batch *b)
{
    if (b->buf && b->cap <= EV_CACHE_MAX) {
        ev_cache_put(b->buf, b->cap);
    } else {
        free(b->buf);
    }
    memset(b, 0, sizeof(*b));
}

/* Return the record after r in b, or the first when r is NULL. */
const struct ev_rec *ev_batch_next(const struct ev_batch *b,
                                   const struct ev_rec *r)
{
    const char *p;

    if (!r)
        p = b->buf;
    else
        p = (const char *)r + r->size;
    if (!p || p >= b->buf + b->len)
        return NULL;
    return (const struct ev_rec *)(const void *)p;
}

/* Replace every byte that is not part of a valid UTF-8 sequence in s with
 * '?', in place: error messages quote client input, which may be cut
 * mid-character or not be UTF-8 at all, and JSON strings must be. */
void ev_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80                           ? 1
                : (*p & 0xE0) == 0xC0 && *p >= 0xC2 ? 2
                : (*p & 0xF0) == 0xE0               ? 3
                : (*p & 0xF8) == 0xF0 && *p <= 0xF4 ? 4
                                                    : 0;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++)
            ok = (p[i] & 0xC0) == 0x80;
        /* Overlong three-byte forms and surrogates are not UTF-8 either. */
        if (ok && n == 3)
            ok = !(p[0] == 0xE0 && p[1] < 0xA0) &&
                 !(p[0] == 0xED && p[1] >= 0xA0);
        if (ok && n == 4)
            ok = !(p[0] == 0xF0 && p[1] < 0x90) &&
                 !(p[0] == 0xF4 && p[1] >= 0x90);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}
