/*
 * prom.h: a writer for the Prometheus text exposition format (0.0.4), the
 * body of GET /metrics (route_metrics.c).
 *
 * The text grows in one malloc'ed buffer owned by the caller's struct
 * prom_buf: prom_init() before use, prom_free() after (the buffer is
 * b->p, b->len bytes, NUL-terminated).  A writer that runs out of memory
 * sets b->oom and ignores every later write, so a caller checks once, at
 * the end.  Not thread-safe: one buffer per request.
 *
 * A family starts with prom_family() (its HELP and TYPE lines, once); its
 * samples follow.  Labels are a NULL-ended array of name, value pairs
 * ({"provider", "openai", "model", "gpt-4o", NULL}); names are the
 * caller's constants, values anything: they are escaped (backslash,
 * double quote, newline) and invalid UTF-8 becomes U+FFFD, which the
 * format requires.
 *
 * Histograms: tokentap keeps latency in the fine log buckets of
 * shm/hist.h; prom_hist_map() folds those into a few Prometheus bounds
 * ("le", in seconds) by each bucket's reported value, so a value within
 * the hist.h resolution (2%) of a bound may count on either side of it.
 */
#ifndef TT_PROM_H
#define TT_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* A growing text buffer. */

/* Prepare an empty buffer. */
void prom_init(struct strbuf *b);

/* Release the buffer's memory. */
void prom_free(struct strbuf *b);

/* Write the HELP and TYPE lines of family name (type "counter", "gauge"
 * or "histogram"); help is escaped. */
void prom_family(struct strbuf *b, const char *name, const char *type,
                 const char *help);

/* Write one sample of name with labels (may be NULL) and the value as
 * text (a number as the format spells it: "12.5", "+Inf"). */
void prom_sample(struct strbuf *b, const char *name, const char *const *labels,
                 const char *value);

/* The same with an unsigned integer or a double value. */
void prom_sample_u64(struct strbuf *b, const char *name,
                     const char *const *labels, uint64_t v);
void prom_sample_f(struct strbuf *b, const char *name,
                   const char *const *labels, double v);

/* The shortest text that reads back as v ("0.1", "1e+21"); "+Inf",
 * "-Inf" and "NaN" as the format spells them.  buf has n >= 32 bytes. */
void prom_double(double v, char *buf, size_t n);

/* Fill map[HIST_BUCKETS]: for each shm/hist.h bucket, the index of the
 * first bound of le[0..n) (seconds, ascending) that the bucket's reported
 * value is at most, or n when it is above them all. */
void prom_hist_map(const double *le, int n, uint8_t *map);

/* Write one histogram series of family name (its _bucket lines, then
 * _sum and _count) with labels: counts[i] (i < n) are the values that
 * fell in (le[i-1], le[i]], counts[n] those above le[n-1]; sum is the sum
 * of the values in seconds. */
void prom_histogram(struct strbuf *b, const char *name,
                    const char *const *labels, const double *le, int n,
                    const uint64_t *counts, double sum);

#endif
