/*
 * hash.h: FNV-1a, the hash of tokentap's in-memory tables.
 *
 * The tables it serves (live dims, unknown models, rollup aggregates) are
 * keyed by short strings and small integers chosen by our own clients,
 * so a simple, fast, non-cryptographic hash suffices; nothing here is
 * exposed to hash flooding beyond what the bounded tables already limit.
 */
#ifndef TT_HASH_H
#define TT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED 1469598103934665603ull

/* Continue hash h over n bytes at p. */
static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Continue hash h over the NUL-terminated string s and a terminator, so
 * that ("ab", "c") and ("a", "bc") differ. */
static inline uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h ^= 0xff;
    return h * 1099511628211ull;
}

#endif
