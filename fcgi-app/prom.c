/*
 * prom.c: the Prometheus text exposition writer (see prom.h).
 *
 * Every write goes through strbuf_put(), which grows the buffer by doubling;
 * once an allocation fails the buffer is marked and later writes do
 * nothing, so the callers (dozens of them per answer) need no checks.
 */
#include "prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

void prom_init(struct strbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void prom_free(struct strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Append n bytes of s. */

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when
 * the bytes there are not one (overlong forms and surrogates included). */
static size_t prom_utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/* Append s escaped: backslash and newline always, the double quote too
 * when quote (label values); invalid UTF-8 becomes U+FFFD. */
static void prom_escape(struct strbuf *b, const char *s, int quote)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t run = 0;
        /* Copy plain bytes in runs. */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '\\' &&
               !(quote && p[run] == '"'))
            run++;
        if (run > 0) {
            strbuf_put(b, (const char *)p, run);
            p += run;
            n -= run;
            continue;
        }
        size_t k = prom_utf8_len(p, n);
        if (*p == '\\')
            strbuf_puts(b, "\\\\");
        else if (*p == '"')
            strbuf_puts(b, "\\\"");
        else if (*p == '\n')
            strbuf_puts(b, "\\n");
        else if (k == 0) {
            strbuf_puts(b, "\xef\xbf\xbd");
            k = 1;
        } else
            strbuf_put(b, (const char *)p, k);
        p += k;
        n -= k;
    }
}

void prom_family(struct strbuf *b, const char *name, const char *type,
                 const char *help)
{
    strbuf_puts(b, "# HELP ");
    strbuf_puts(b, name);
    strbuf_puts(b, " ");
    prom_escape(b, help, 0);
    strbuf_puts(b, "\n# TYPE ");
    strbuf_puts(b, name);
    strbuf_puts(b, " ");
    strbuf_puts(b, type);
    strbuf_puts(b, "\n");
}

/* Write name, suffix, the labels plus one more (extra, extra_value; extra
 * NULL: none), and the value. */
static void prom_series(struct strbuf *b, const char *name, const char *suffix,
                        const char *const *labels, const char *extra,
                        const char *extra_value, const char *value)
{
    strbuf_puts(b, name);
    strbuf_puts(b, suffix);
    int n = 0;
    for (int i = 0; labels != NULL && labels[i] != NULL; i += 2, n++) {
        strbuf_puts(b, n ? "," : "{");
        strbuf_puts(b, labels[i]);
        strbuf_puts(b, "=\"");
        prom_escape(b, labels[i + 1] ? labels[i + 1] : "", 1);
        strbuf_puts(b, "\"");
    }
    if (extra != NULL) {
        strbuf_puts(b, n++ ? "," : "{");
        strbuf_puts(b, extra);
        strbuf_puts(b, "=\"");
        prom_escape(b, extra_value, 1);
        strbuf_puts(b, "\"");
    }
    strbuf_puts(b, n ? "} " : " ");
    strbuf_puts(b, value);
    strbuf_puts(b, "\n");
}

void prom_sample(struct strbuf *b, const char *name, const char *const *labels,
                 const char *value)
{
    prom_series(b, name, "", labels, NULL, NULL, value);
}

void prom_sample_u64(struct strbuf *b, const char *name,
                     const char *const *labels, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    prom_sample(b, name, labels, num);
}

void prom_sample_f(struct strbuf *b, const char *name,
                   const char *const *labels, double v)
{
    char num[32];
    prom_double(v, num, sizeof(num));
    prom_sample(b, name, labels, num);
}

void prom_double(double v, char *buf, size_t n)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers in full (byte counts, generations), others with the
     * fewest digits that read back exactly: 0.1, not 0.10000000000000001. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void prom_hist_map(const double *le, int n, uint8_t *map)
{
    for (int k = 0; k < HIST_BUCKETS; k++) {
        double s = hist_value(k) / 1000.0;
        int i = 0;
        while (i < n && s > le[i])
            i++;
        map[k] = (uint8_t)i;
    }
}

void prom_histogram(struct strbuf *b, const char *name,
                    const char *const *labels, const double *le, int n,
                    const uint64_t *counts, double sum)
{
    char num[32], bound[32];
    uint64_t cum = 0;
    for (int i = 0; i <= n; i++) {
        cum += counts[i];
        if (i < n)
            prom_double(le[i], bound, sizeof(bound));
        else
            snprintf(bound, sizeof(bound), "+Inf");
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        prom_series(b, name, "_bucket", labels, "le", bound, num);
    }
    prom_double(sum, num, sizeof(num));
    prom_series(b, name, "_sum", labels, NULL, NULL, num);
    snprintf(num, sizeof(num), "%" PRIu64, cum);
    prom_series(b, name, "_count", labels, NULL, NULL, num);
}
