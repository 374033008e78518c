/*
 * strbuf.h: a growing string that remembers running out of memory: after
 * the first failed allocation oom is set and every later write is
 * dropped, so a writer checks once at the end.  strbuf_grow() is the same
 * doubling for any array.
 *
 * Ownership: the caller owns struct strbuf (zeroed before the first
 * write) and frees p.  Nothing here keeps state: any thread may call
 * anything on buffers of its own.
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

/* Append printf-style text. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The text so far ("" when nothing was written), or NULL when out of
 * memory. */
const char *strbuf_str(const struct strbuf *b);

/* Make room for need elements of size bytes in the array *(T **)pv of
 * *cap elements: first elements at first, then doubling, as strbuf does.
 * Returns 0, or -1 with the array unchanged when out of memory.  For
 * example: if (strbuf_grow(&v, &cap, n + 1, sizeof(*v), 16) != 0) ... */
int strbuf_grow(void *pv, size_t *cap, size_t need, size_t size, size_t first);

#endif
