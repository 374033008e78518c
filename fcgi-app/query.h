/*
 * query.h: the analytics query engine of tt-api: exact aggregates over a
 * time range, read from the rollups (common/rollup.h) plus raw events.
 *
 * A question is a range [from, to), filters, an output bucket and the
 * dimensions to group by.  The engine answers it with ONE SQL statement
 * whose arms read disjoint parts of the range (the plan, qry_plan_make):
 *
 *   from                                                               to
 *    |raw|  minutes  |  hours  |      days      |  hours  | minutes |raw|
 *        A                                                          Z
 *
 * The sub-minute edges [from, A) and [Z, to) come from raw events, the
 * aligned middle [A, Z) from rollup rows of the coarsest resolution that
 * fits (never coarser than the output bucket, so each row falls in one
 * bucket), and a last arm adds the raw events of [A, Z) that the rollups
 * do not hold yet (seq > meta.rollup_seq).  Every committed event is so
 * counted exactly once, provided the caller runs the statements of one
 * answer in one read transaction and passes the rollup_seq read in it
 * (api_read_begin in fcgi-app/snapshot.c does both).  The caller gets one
 * row per (bucket, group), with merged histograms.
 *
 * The cube read is the smallest holding every dimension the question
 * filters or groups by (qry_cube).
 *
 * Ownership and threads: a struct qry_cache belongs to one thread and one
 * read-only connection (it caches prepared statements); rows and strings
 * of a result live in the arena passed to qry_run until it is reset.
 * Errors: 0 or a negative errno (-EINVAL: no cube can answer the question;
 * -E2BIG: the answer would have more than QRY_MAX_ROWS rows; -EIO: SQLite
 * failed, see qry_errmsg; -ENOMEM).
 */
#ifndef TT_QUERY_H
#define TT_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct sqlite3;

/* Dimensions a question filters or groups by. */
#define QRY_PROVIDER 0x01u
#define QRY_MODEL    0x02u
#define QRY_AGENT    0x04u
#define QRY_USER     0x08u
#define QRY_SESSION  0x10u /* filter only */
#define QRY_ISERR    0x20u /* the ok/error split: filter only */
#define QRY_ETYPE    0x40u /* error_type: errors-only questions */
#define QRY_STATUS   0x80u /* HTTP status: errors-only questions */

/* The dimensions a question may group by. */
#define QRY_GROUPABLE                                                          \
    (QRY_PROVIDER | QRY_MODEL | QRY_AGENT | QRY_USER | QRY_ETYPE | QRY_STATUS)

#define QRY_STATUS_ANY   -1
#define QRY_STATUS_OK    0
#define QRY_STATUS_ERROR 1

/* Filters; NULL means any. */
struct qry_filter {
    const char *provider, *model, *agent, *user, *session;
    int status; /* QRY_STATUS_* */
};

/* One question. */
struct qry_spec {
    int64_t ws;          /* workspace id */
    int64_t from_ms;     /* inclusive, >= 0 */
    int64_t to_ms;       /* exclusive, > from_ms */
    struct qry_filter f; /* filters */
    int64_t bucket_ms;   /* output bucket (a multiple of a minute that
                            divides a day), or 0: one bucket, ts 0 */
    unsigned group;      /* QRY_GROUPABLE bits to group by */
    int errors_only;     /* count error events only (ROLLUP_ERRORS) */
    int hist;            /* fill the latency and TTFT histograms */
    int64_t rollup_seq;  /* meta.rollup_seq of the read transaction */
};

/* One (bucket, group) of an answer.  Dimensions not grouped by, and
 * absent ones, are "" (status 0). */
struct qry_row {
    int64_t ts; /* bucket start, epoch ms */
    const char *provider, *model, *agent, *user, *error_type;
    int status;
    int64_t calls, errors;
    int64_t tokens[5]; /* input, output, cache_read, cache_write, reasoning */
    int64_t cost_nusd; /* sum of round(cost_usd * 1e9) */
    int64_t lat_n, ttft_n;    /* events carrying the value */
    double lat_sum, ttft_sum; /* sums of the values */
    int64_t first_ms, last_ms;
    const void *lat_hist, *ttft_hist; /* histogram blobs (rollup.h) */
    size_t lat_len, ttft_len;         /* their lengths; 0 when empty */
};

/* An answer: rows ordered by ts, then by the grouped dimensions. */
struct qry_result {
    struct qry_row *rows;
    size_t n;
};

/* The arms of the statement, each a time segment [lo, hi). */
enum qry_arm {
    QRY_ARM_HEAD,   /* raw events before the first whole minute */
    QRY_ARM_TAIL,   /* raw events after the last whole minute */
    QRY_ARM_LAG,    /* raw events of [A, Z) newer than rollup_seq */
    QRY_ARM_MIN_A,  /* minute rows before the first whole hour */
    QRY_ARM_HOUR_A, /* hour rows before the first whole day */
    QRY_ARM_DAY_A,  /* day rows before the first whole week */
    QRY_ARM_WEEK,   /* week rows */
    QRY_ARM_DAY_B,  /* day rows after the last whole week */
    QRY_ARM_HOUR_B, /* hour rows after the last whole day */
    QRY_ARM_MIN_B,  /* minute rows after the last whole hour */
    QRY_NARMS
};

/* The rollup resolution (seconds) an arm reads; 0 for raw arms. */
int qry_arm_res(enum qry_arm arm);

/* A time segment in epoch ms; empty when lo == hi. */
struct qry_seg {
    int64_t lo, hi;
};

struct qry_plan {
    struct qry_seg seg[QRY_NARMS];
};

/*
 * Decompose [from, to) (0 <= from < to) into the arms, using rollup rows
 * of min_res to max_res seconds (60, 3600, 86400 or 604800): the cube's
 * finest
 * resolution and the coarsest that fits the question.  What no whole
 * bucket of min_res covers is read raw (everything, when min_res >
 * max_res).  The non-lag segments
 * are disjoint and cover [from, to) exactly; rollup segments are aligned
 * to their resolution.  Example, max_res 86400 (the day arm is DAY_A when
 * there are no weeks):
 *   [01-01 10:20:30, 01-03 05:10:00) gives head [10:20:30, 10:21:00),
 *   minutes [10:21, 11:00), hours [11:00, 01-02 00:00), days [01-02,
 *   01-03), hours [01-03 00:00, 05:00), minutes [05:00, 05:10), empty
 *   tail, lag [10:21, 01-03 05:10).
 */
void qry_plan_make(int64_t from, int64_t to, int min_res, int max_res,
                   struct qry_plan *p);

/* The cube (enum rollup_cube) holding every one of dims, the smallest
 * one first, or -1 if none does; *min_res and *max_res get its finest and
 * coarsest resolutions.
 * errors_only questions read the error cubes, the others never do; hist
 * questions (percentiles) only cubes that keep histograms. */
int qry_cube(unsigned dims, int errors_only, int hist, int *min_res,
             int *max_res);

/* The dimensions spec filters and groups by. */
unsigned qry_dims(const struct qry_spec *s);

/* The most (bucket, group) rows one answer may have. */
#define QRY_MAX_ROWS 500000

/* The longest statement text. */
#define QRY_SQL_MAX 12288

/* The text of the statement answering s into buf (n bytes); returns its
 * length, or -1 if no cube answers s or buf is too small.  Its parameters
 * are bound by qry_run. */
long qry_sql(const struct qry_spec *s, char *buf, size_t n);

/* Per-thread state: the connection and its prepared statements. */
struct qry_cache;

/* Make the state for db (NULL when out of memory); free it (finalizing
 * the statements) before closing db. */
struct qry_cache *qry_cache_new(struct sqlite3 *db);
void qry_cache_free(struct qry_cache *c);

/* Answer s inside the caller's read transaction; rows in arena a. */
int qry_run(struct qry_cache *c, struct arena *a, const struct qry_spec *s,
            struct qry_result *out);

/* Who made the calls a question selects. */
struct qry_people {
    int64_t users;      /* distinct users (not "") */
    int64_t agents;     /* distinct agents (not "") */
    int64_t anon_calls; /* calls without a user */
};

/* Count who made the calls s selects (its group, bucket and hist are
 * ignored).  Over ranges of days the users come from a walk over the
 * per-user cube's index, one probe per user, rather than from a row per
 * user and hour, day or week; the raw edges are read once for both. */
int qry_distinct(struct qry_cache *c, struct arena *a, const struct qry_spec *s,
                 struct qry_people *out);

/* The message of the last -EIO. */
const char *qry_errmsg(const struct qry_cache *c);

/* Quantiles qs[0..nq) of a histogram blob into out; returns the number of
 * values in it (0: out is left as zeros), or -1 if it is malformed. */
int64_t qry_quantiles(const void *blob, size_t len, const double *qs, int nq,
                      double *out);

/* Add row b's measures (and histograms, in arena a) into row acc. */
int qry_row_add(struct arena *a, struct qry_row *acc, const struct qry_row *b);

/* Compare two rows by their dimensions in group (and first by ts when
 * with_ts), for sorting. */
int qry_row_cmp(const struct qry_row *x, const struct qry_row *y,
                unsigned group, int with_ts);

/* Merge the rows of in with equal (ts when keep_ts, dimensions of group)
 * into out, ordered by them; other dimensions become "" (status 0), and
 * ts 0 unless kept.  Rows in arena a. */
int qry_regroup(struct arena *a, const struct qry_result *in, unsigned group,
                int keep_ts, struct qry_result *out);

#endif
