/*
 * price.h: the price catalog, and the cost of an event computed from it.
 *
 * The catalog is a JSON file (data/pricing.json, shipped; an operator's
 * DIR/pricing.json overrides or extends it entry by entry).  Each entry gives
 * the USD price per million tokens for input, output, cache reads and cache
 * writes of one provider's model, and the date the price was taken.
 *
 * Lookup: an exact (provider, model) match first; otherwise the longest
 * catalog model that is a prefix of the event's model followed by '-', '@',
 * ':' or '.' (so "gpt-4o-2024-08-06" prices as "gpt-4o"), and finally the
 * same model name under any provider is NOT used: providers price differently.
 *
 * Ownership: price_load() returns a catalog the caller frees with
 * price_free().  Lookups never allocate and are safe from many threads on a
 * catalog that is no longer being loaded.
 */
#ifndef TT_PRICE_H
#define TT_PRICE_H

#include <stddef.h>
#include <stdint.h>

struct ev_rec;

/* One catalog entry: prices in USD per million tokens. */
struct price_entry {
    char provider[64];
    char model[128];
    double input;  /* per 1M input tokens */
    double output; /* per 1M output tokens (reasoning tokens bill as output) */
    double cache_read;  /* per 1M cache-read tokens */
    double cache_write; /* per 1M cache-write tokens */
    char date[16];      /* YYYY-MM-DD the price was taken */
    char source[16];    /* "builtin" or "override" */
};

struct price_catalog;

/*
 * Load the shipped catalog at path, then apply override_path if it exists
 * (NULL or a missing file is fine).  On failure returns NULL and writes a
 * message naming the file and the problem into err, e.g.
 * "pricing.json: models[3].input must be from 0 to 100000, got -1".
 *
 * File format: {"version": "...", "currency": "USD", "unit":
 * "per_million_tokens", "models": [{"provider", "model", "input", "output",
 * "cache_read", "cache_write", "date"}, ...]}.  Only models is required at
 * the top level; currency and unit, when present, must be those values.
 * In an entry, provider, model, input and output are required; cache_read
 * and cache_write default to the input price (a provider without a cache
 * discount or a write surcharge bills those tokens as input); date is
 * optional.  Unknown fields and a provider/model listed twice in one file
 * are errors.  Override entries replace the shipped entry with the same
 * provider and model (source "override") or are appended.
 */
struct price_catalog *price_load(const char *path, const char *override_path,
                                 char *err, size_t errlen);

/* Release a catalog. */
void price_free(struct price_catalog *c);

/* Find the entry for provider/model, or NULL if the model is unknown. */
const struct price_entry *price_find(const struct price_catalog *c,
                                     const char *provider, const char *model);

/*
 * Cost in USD of the tokens of r at price p.  Input tokens are billed at the
 * input price; cache_read and cache_write tokens at their own prices (they
 * are reported separately from input_tokens, as OpenTelemetry does);
 * output tokens at the output price.  reasoning_tokens are a breakdown of
 * output_tokens and are not billed twice.
 */
double price_cost(const struct price_entry *p, const struct ev_rec *r);

/* Number of entries, and entry i (0 <= i < count), for listing. */
int price_count(const struct price_catalog *c);
const struct price_entry *price_at(const struct price_catalog *c, int i);

#endif
