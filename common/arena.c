/*
 * arena.c: the per-request bump allocator.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A chunk: header then data. */
struct arena_chunk {
    struct arena_chunk *next; /* the previous (older) chunk */
    size_t size;              /* data bytes */
    size_t used;              /* data bytes handed out */
    _Alignas(16) unsigned char data[];
};

void arena_init(struct arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        c = malloc(sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->head;
    if (c == NULL)
        return;
    while (c->next != NULL) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    c->used = 0;
    a->head = c;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}
