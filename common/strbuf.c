/*
 * strbuf.c: a growing string (strbuf.h).
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strbuf_grow(void *pv, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / size)
        return -1;
    /* pv points at the caller's T *: read and write it as bytes. */
    void *p;
    memcpy(&p, pv, sizeof(p));
    p = realloc(p, n * size);
    if (p == NULL)
        return -1;
    memcpy(pv, &p, sizeof(p));
    *cap = n;
    return 0;
}

void strbuf_put(struct strbuf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (strbuf_grow(&b->p, &b->cap, b->len + n + 1, 1, 256) != 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
    strbuf_put(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (w <= 0 || b->oom)
        return;
    if ((size_t)w < sizeof(tmp)) {
        strbuf_put(b, tmp, (size_t)w);
        return;
    }
    /* Longer than the usual number or short line: format in place. */
    if (strbuf_grow(&b->p, &b->cap, b->len + (size_t)w + 1, 1, 256) != 0) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)w + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)w;
}

const char *strbuf_str(const struct strbuf *b)
{
    return b->oom ? NULL : b->p != NULL ? b->p : "";
}
