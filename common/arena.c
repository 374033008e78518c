/*
 * arena.c: the per-request bump allocator.
 */
#include "arena.h"

#include <jansson.h>
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

#define ARENA_KEEP 16 /* normal chunks kept across resets */

void arena_init(struct arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->spare = NULL;
    a->nspare = 0;
    a->chunk_size = chunk_size;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        if (n <= a->chunk_size && a->spare != NULL) {
            c = a->spare;
            a->spare = c->next;
            a->nspare--;
        } else {
            size_t size = n > a->chunk_size ? n : a->chunk_size;
            c = malloc(sizeof(*c) + size);
            if (c == NULL)
                return NULL;
            c->size = size;
        }
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
    while (c != NULL) {
        struct arena_chunk *n = c->next;
        if (c->size == a->chunk_size && a->nspare < ARENA_KEEP) {
            c->next = a->spare;
            a->spare = c;
            a->nspare++;
        } else
            free(c);
        c = n;
    }
    a->head = NULL;
}

void arena_free(struct arena *a)
{
    arena_reset(a);
    struct arena_chunk *c = a->spare;
    while (c != NULL) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->spare = NULL;
    a->nspare = 0;
}

/* Tags in front of every jansson allocation, saying where it came from. */
#define ARENA_TAG_MALLOC 0x6d616c6cu
#define ARENA_TAG_ARENA  0x6172656eu

static __thread struct arena *arena_json_current;

/* jansson's allocator: the thread's arena if it has one, else malloc. */
static void *arena_json_alloc(size_t n)
{
    struct arena *a = arena_json_current;
    uint32_t *p;
    if (a != NULL) {
        p = arena_alloc(a, n + 16);
        if (p == NULL)
            return NULL;
        p[0] = ARENA_TAG_ARENA;
    } else {
        p = malloc(n + 16);
        if (p == NULL)
            return NULL;
        p[0] = ARENA_TAG_MALLOC;
    }
    return (char *)p + 16;
}

void arena_json_free(void *ptr)
{
    if (ptr == NULL)
        return;
    uint32_t *p = (uint32_t *)((char *)ptr - 16);
    if (p[0] == ARENA_TAG_MALLOC)
        free(p);
    /* Arena memory goes with arena_reset(). */
}

void arena_json_install(void)
{
    json_set_alloc_funcs(arena_json_alloc, arena_json_free);
}

void arena_json_use(struct arena *a)
{
    arena_json_current = a;
}
