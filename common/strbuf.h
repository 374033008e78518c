/*
 * strbuf.h: a growing string that remembers running out of memory: after
 * the first failed allocation oom is set and every later write is
 * dropped, so a writer checks once at the end.
 */
#ifndef TT_STRBUF_H
#define TT_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p;    /* the text, NUL-terminated (NULL before the first write) */
    size_t len; /* bytes of text */
    size_t cap; /* bytes allocated */
    int oom;    /* 1 once an allocation failed: the text is incomplete */
};

/* Append n bytes of s (doubling the room as needed). */
void strbuf_put(struct strbuf *b, const char *s, size_t n);

/* Append a NUL-terminated string. */
void strbuf_puts(struct strbuf *b, const char *s);

/* The text so far ("" when nothing was written), or NULL when out of
 * memory. */
const char *strbuf_str(const struct strbuf *b);

#endif
