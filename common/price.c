/*
 * price.c: the price catalog: loading and validating data/pricing.json and
 * an operator's override file, looking a model up, and pricing an event.
 *
 * The collector prices every event that arrives without cost_usd, so
 * lookups must be cheap.  Entries live in one array; an open-addressing
 * hash table keyed on provider and model indexes it.  The prefix rule
 * ("gpt-4o-2024-08-06" prices as "gpt-4o") is served by the same table:
 * one pass over the event's model computes the hash of every prefix that
 * ends just before a separator, and those prefixes are probed from the
 * longest down, each an exact lookup.  A lookup never allocates.
 */
#include "price.h"

#include "event.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most a catalog may charge per million tokens, in USD: anything above
 * is a typo (the dearest list price today is a few hundred). */
#define PRICE_MAX 100000.0

/* One slot of the hash table. */
struct price_slot {
    uint64_t hash; /* hash of provider and model */
    int32_t idx;   /* index into entries, or -1 when empty */
};

/* A loaded catalog: entries and the hash table that indexes them. */
struct price_catalog {
    struct price_entry *entries; /* in file order, overrides appended */
    int count;                   /* entries in use */
    int cap;                     /* entries allocated */
    struct price_slot *slots;    /* nslots slots, a power of two */
    size_t nslots;
};

/* Loading state for one file, for error messages. */
struct price_file {
    const char *path; /* the file, as given */
    char *err;        /* where to write a message */
    size_t errlen;
    bool override; /* this is the operator's override file */
};

/* FNV-1a offset basis and prime. */
#define PRICE_FNV_BASIS 0xcbf29ce484222325ULL
#define PRICE_FNV_PRIME 0x100000001b3ULL

/* Fold n bytes of s into the FNV-1a hash h. */
static uint64_t price_hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= PRICE_FNV_PRIME;
    }
    return h;
}

/* The hash of the provider part of a key: the provider and a NUL, which no
 * name contains, so "a" + "bc" and "ab" + "c" hash apart. */
static uint64_t price_hash_provider(const char *provider)
{
    uint64_t h = price_hash_bytes(PRICE_FNV_BASIS, provider, strlen(provider));

    return price_hash_bytes(h, "", 1);
}

/* Find the entry for provider and the first mlen bytes of model, whose
 * hash is h; returns its index or -1. */
static int price_probe(const struct price_catalog *c, uint64_t h,
                       const char *provider, const char *model, size_t mlen)
{
    size_t mask = c->nslots - 1;

    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const struct price_slot *s = &c->slots[i];
        const struct price_entry *e;

        if (s->idx < 0)
            return -1;
        if (s->hash != h)
            continue;
        e = &c->entries[s->idx];
        if (strncmp(e->model, model, mlen) == 0 && e->model[mlen] == '\0' &&
            strcmp(e->provider, provider) == 0)
            return s->idx;
    }
}

/* Index entry k in the hash table, which has room for it. */
static void price_slot_insert(struct price_catalog *c, int k)
{
    const struct price_entry *e = &c->entries[k];
    uint64_t h = price_hash_bytes(price_hash_provider(e->provider), e->model,
                                  strlen(e->model));
    size_t mask = c->nslots - 1, i = (size_t)h & mask;

    while (c->slots[i].idx >= 0)
        i = (i + 1) & mask;
    c->slots[i].hash = h;
    c->slots[i].idx = k;
}

/* True when the table is too full for one more entry: it is kept at most
 * half full so that probes stay short. */
static bool price_crowded(const struct price_catalog *c)
{
    return (size_t)c->count * 2 + 2 > c->nslots;
}

/* Rebuild the hash table for the current entries, at most half full.
 * Returns 0 or -1 when out of memory. */
static int price_rehash(struct price_catalog *c)
{
    size_t n = 16;
    struct price_slot *slots;

    while (n < (size_t)c->count * 2 + 2)
        n *= 2;
    slots = malloc(n * sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < n; i++)
        slots[i].idx = -1;
    free(c->slots);
    c->slots = slots;
    c->nslots = n;
    for (int k = 0; k < c->count; k++)
        price_slot_insert(c, k);
    return 0;
}

/* Find the entry for exactly provider/model during loading; -1 if none. */
static int price_index(const struct price_catalog *c, const char *provider,
                       const char *model)
{
    uint64_t h =
        price_hash_bytes(price_hash_provider(provider), model, strlen(model));

    return price_probe(c, h, provider, model, strlen(model));
}

/* Write a message about file f into its error buffer; returns -1. */
__attribute__((format(printf, 2, 3))) static int
price_fail(const struct price_file *f, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (f->errlen > 0)
        snprintf(f->err, f->errlen, "%s: %s", f->path, msg);
    return -1;
}

/* Report that field of entry i holds v where what was expected. */
static int price_fail_field(const struct price_file *f, int i,
                            const char *field, const char *what,
                            const json_t *v)
{
    char got[128];

    ev_describe(v, got, sizeof(got));
    return price_fail(f, "models[%d].%s must be %s, got %s", i, field, what,
                      got);
}

/* Read a name field (provider or model) of entry i into out (outlen bytes
 * with the NUL); provider names also get the charset check.  Returns 0 or
 * -1. */
static int price_get_name(const struct price_file *f, int i, json_t *e,
                          const char *field, char *out, size_t outlen)
{
    json_t *v = json_object_get(e, field);
    const char *s;
    size_t n;
    bool provider = strcmp(field, "provider") == 0;

    if (!v)
        return price_fail(f, "models[%d].%s is required", i, field);
    if (!json_is_string(v))
        return price_fail_field(f, i, field, "a string", v);
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n >= outlen) {
        char what[64];
        snprintf(what, sizeof(what), "a string of 1 to %zu bytes", outlen - 1);
        return price_fail_field(f, i, field, what, v);
    }
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (provider ? !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                         c == '.' || c == '_' || c == '-')
                     : (c < 0x20 || c == 0x7F))
            return price_fail_field(
                f, i, field,
                provider ? "lowercase letters, digits, '.', '_' or '-'"
                         : "free of control characters",
                v);
    }
    memcpy(out, s, n + 1);
    return 0;
}

/* Read price field of entry i into *out; when absent use def, or fail if
 * def is negative (the field is required).  Returns 0 or -1. */
static int price_get_price(const struct price_file *f, int i, json_t *e,
                           const char *field, double def, double *out)
{
    json_t *v = json_object_get(e, field);
    char what[64];
    double d;

    if (!v || json_is_null(v)) {
        if (def < 0)
            return price_fail(f, "models[%d].%s is required", i, field);
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return price_fail_field(f, i, field,
                                "a number (USD per million tokens)", v);
    d = json_number_value(v);
    if (!(d >= 0 && d <= PRICE_MAX)) {
        snprintf(what, sizeof(what), "from 0 to %.0f", PRICE_MAX);
        return price_fail_field(f, i, field, what, v);
    }
    *out = d + 0.0;
    return 0;
}

/* Read the optional date of entry i (YYYY-MM-DD) into out.  Returns 0 or
 * -1. */
static int price_get_date(const struct price_file *f, int i, json_t *e,
                          char *out)
{
    json_t *v = json_object_get(e, "date");
    char buf[32];
    int64_t ms;

    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) != 10)
        return price_fail_field(f, i, "date", "a date YYYY-MM-DD", v);
    /* Borrow the RFC 3339 parser for the calendar checks. */
    snprintf(buf, sizeof(buf), "%sT00:00:00Z", json_string_value(v));
    if (ev_parse_rfc3339(buf, &ms) != 0)
        return price_fail_field(f, i, "date", "a date YYYY-MM-DD", v);
    memcpy(out, json_string_value(v), 11);
    return 0;
}

/* Validate entry i of a models array into *pe.  Returns 0 or -1. */
static int price_parse_entry(const struct price_file *f, int i, json_t *e,
                             struct price_entry *pe)
{
    static const char *const known[] = {"provider", "model",      "input",
                                        "output",   "cache_read", "cache_write",
                                        "date"};
    const char *key;
    json_t *v;

    if (!json_is_object(e)) {
        char got[64];
        ev_describe(e, got, sizeof(got));
        return price_fail(f, "models[%d] must be an object, got %s", i, got);
    }
    json_object_foreach(e, key, v)
    {
        size_t k = 0;
        while (k < sizeof(known) / sizeof(known[0]) && strcmp(key, known[k]))
            k++;
        if (k == sizeof(known) / sizeof(known[0]))
            return price_fail(f, "models[%d]: unknown field \"%s\"", i, key);
    }
    memset(pe, 0, sizeof(*pe));
    if (price_get_name(f, i, e, "provider", pe->provider,
                       sizeof(pe->provider)) != 0 ||
        price_get_name(f, i, e, "model", pe->model, sizeof(pe->model)) != 0 ||
        price_get_price(f, i, e, "input", -1, &pe->input) != 0 ||
        price_get_price(f, i, e, "output", -1, &pe->output) != 0 ||
        price_get_price(f, i, e, "cache_read", pe->input, &pe->cache_read) !=
            0 ||
        price_get_price(f, i, e, "cache_write", pe->input, &pe->cache_write) !=
            0 ||
        price_get_date(f, i, e, pe->date) != 0)
        return -1;
    snprintf(pe->source, sizeof(pe->source), "%s",
             f->override ? "override" : "builtin");
    return 0;
}

/* Check the top level of a catalog file and return its models array, or
 * NULL after writing a message. */
static json_t *price_check_top(const struct price_file *f, json_t *root)
{
    const char *key;
    json_t *v, *models;
    char got[64];

    if (!json_is_object(root)) {
        ev_describe(root, got, sizeof(got));
        price_fail(f, "the catalog must be a JSON object, got %s", got);
        return NULL;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "version") == 0) {
            if (!json_is_string(v)) {
                ev_describe(v, got, sizeof(got));
                price_fail(f, "version must be a string, got %s", got);
                return NULL;
            }
        } else if (strcmp(key, "currency") == 0) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "USD")) {
                ev_describe(v, got, sizeof(got));
                price_fail(f, "currency must be \"USD\", got %s", got);
                return NULL;
            }
        } else if (strcmp(key, "unit") == 0) {
            if (!json_is_string(v) ||
                strcmp(json_string_value(v), "per_million_tokens")) {
                ev_describe(v, got, sizeof(got));
                price_fail(f, "unit must be \"per_million_tokens\", got %s",
                           got);
                return NULL;
            }
        } else if (strcmp(key, "models") != 0) {
            price_fail(f, "unknown field \"%s\"", key);
            return NULL;
        }
    }
    models = json_object_get(root, "models");
    if (!models) {
        price_fail(f, "models is required");
        return NULL;
    }
    if (!json_is_array(models)) {
        ev_describe(models, got, sizeof(got));
        price_fail(f, "models must be an array, got %s", got);
        return NULL;
    }
    return models;
}

/* Add or replace entry pe, found at models[i] of file f.  Returns 0 or -1. */
static int price_add(struct price_catalog *c, const struct price_file *f, int i,
                     const struct price_entry *pe)
{
    int at = price_index(c, pe->provider, pe->model);

    if (at >= 0) {
        /* An override replaces a builtin entry; any other repeat is a
         * mistake in the file. */
        if (!f->override || strcmp(c->entries[at].source, "override") == 0)
            return price_fail(f, "models[%d]: %s/%s is listed twice", i,
                              pe->provider, pe->model);
        c->entries[at] = *pe;
        return 0;
    }
    if (c->count == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        struct price_entry *e = realloc(c->entries, (size_t)cap * sizeof(*e));
        if (!e)
            return price_fail(f, "out of memory");
        c->entries = e;
        c->cap = cap;
    }
    c->entries[c->count++] = *pe;
    if (!price_crowded(c)) {
        price_slot_insert(c, c->count - 1);
    } else if (price_rehash(c) != 0) {
        c->count--;
        return price_fail(f, "out of memory");
    }
    return 0;
}

/* Load one catalog file into c.  A missing file is fine when missing_ok.
 * Returns 0 or -1 with a message. */
static int price_load_file(struct price_catalog *c, const struct price_file *f,
                           bool missing_ok)
{
    json_error_t je;
    json_t *root, *models, *e;
    FILE *fp;
    size_t i;
    int rc = 0;

    fp = fopen(f->path, "r");
    if (!fp) {
        if (missing_ok && errno == ENOENT)
            return 0;
        return price_fail(f, "cannot open: %s", strerror(errno));
    }
    root = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
    fclose(fp);
    if (!root)
        return price_fail(f, "invalid JSON at line %d, column %d: %s", je.line,
                          je.column, je.text);
    models = price_check_top(f, root);
    if (!models) {
        json_decref(root);
        return -1;
    }
    json_array_foreach(models, i, e)
    {
        struct price_entry pe;

        if (price_parse_entry(f, (int)i, e, &pe) != 0 ||
            price_add(c, f, (int)i, &pe) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

/* Load the shipped catalog, then the optional override (see price.h). */
struct price_catalog *price_load(const char *path, const char *override_path,
                                 char *err, size_t errlen)
{
    struct price_catalog *c = calloc(1, sizeof(*c));
    struct price_file f = {path, err, errlen, false};

    if (errlen > 0)
        err[0] = '\0';
    if (!c || price_rehash(c) != 0) {
        if (errlen > 0)
            snprintf(err, errlen, "%s: out of memory", path);
        price_free(c);
        return NULL;
    }
    if (price_load_file(c, &f, false) != 0)
        goto fail;
    if (override_path) {
        f.path = override_path;
        f.override = true;
        if (price_load_file(c, &f, true) != 0)
            goto fail;
    }
    return c;
fail:
    price_free(c);
    return NULL;
}

/* Release a catalog; NULL is fine. */
void price_free(struct price_catalog *c)
{
    if (!c)
        return;
    free(c->entries);
    free(c->slots);
    free(c);
}

/* Longest model name a catalog entry can hold. */
#define PRICE_MODEL_MAX (sizeof(((struct price_entry *)0)->model) - 1)

/* Find the entry for provider/model: exact, else the longest prefix that
 * ends at a separator. */
const struct price_entry *price_find(const struct price_catalog *c,
                                     const char *provider, const char *model)
{
    /* Hashes of model[0..cut[k]) for each separator position cut[k]. */
    uint64_t hashes[PRICE_MODEL_MAX + 1];
    size_t cuts[PRICE_MODEL_MAX + 1];
    uint64_t h;
    size_t n = 0, i;
    int idx;

    if (!c || !provider || !model || c->count == 0)
        return NULL;
    h = price_hash_provider(provider);
    for (i = 0; model[i] != '\0'; i++) {
        char ch = model[i];
        if (i > PRICE_MODEL_MAX)
            break; /* longer than any entry: only prefixes can match */
        if (i > 0 && (ch == '-' || ch == '@' || ch == ':' || ch == '.')) {
            hashes[n] = h;
            cuts[n++] = i;
        }
        h ^= (unsigned char)ch;
        h *= PRICE_FNV_PRIME;
    }
    if (model[i] == '\0' && i <= PRICE_MODEL_MAX) {
        idx = price_probe(c, h, provider, model, i);
        if (idx >= 0)
            return &c->entries[idx];
    }
    while (n-- > 0) {
        idx = price_probe(c, hashes[n], provider, model, cuts[n]);
        if (idx >= 0)
            return &c->entries[idx];
    }
    return NULL;
}

/* USD cost of r's tokens at price p (see price.h). */
double price_cost(const struct price_entry *p, const struct ev_rec *r)
{
    return ((double)r->input_tokens * p->input +
            (double)r->cache_read_tokens * p->cache_read +
            (double)r->cache_write_tokens * p->cache_write +
            (double)r->output_tokens * p->output) /
           1e6;
}

/* Number of entries in c. */
int price_count(const struct price_catalog *c)
{
    return c ? c->count : 0;
}

/* Entry i of c, or NULL when out of range. */
const struct price_entry *price_at(const struct price_catalog *c, int i)
{
    if (!c || i < 0 || i >= c->count)
        return NULL;
    return &c->entries[i];
}
