/*
 * arena.h: a bump allocator for per-request memory.
 *
 * A FastCGI worker thread owns one arena, allocates from it while handling
 * a request and calls arena_reset() when the request is finished, which
 * frees everything at once (the first chunk is kept for the next request).
 * Not thread-safe: one arena per thread.
 */
#ifndef TT_ARENA_H
#define TT_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;  /* current chunk; older ones follow */
    struct arena_chunk *spare; /* normal chunks kept for reuse */
    size_t chunk_size;         /* size of a normal chunk */
    size_t nspare;             /* chunks on the spare list */
};

/* Prepare an empty arena whose chunks are chunk_size bytes. */
void arena_init(struct arena *a, size_t chunk_size);

/* Allocate n bytes aligned to 16; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);

/* Copy the string s (n bytes) into the arena, NUL-terminated. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

/* Release every allocation; keep up to 16 normal chunks for reuse. */
void arena_reset(struct arena *a);

/* Release everything. */
void arena_free(struct arena *a);

/*
 * jansson on arenas.  arena_json_install() (once, before threads) makes
 * jansson allocate through tokentap: while a thread has called
 * arena_json_use(a), its jansson allocations come from arena a and freeing
 * them costs nothing (they go with arena_reset); otherwise they come from
 * malloc.  A pointer jansson hands out (json_dumps) must then be released
 * with arena_json_free(), never free().  A request's jansson values must
 * not outlive the request's arena.
 */
void arena_json_install(void);
void arena_json_use(struct arena *a); /* NULL: back to malloc */
void arena_json_free(void *p);

#endif
