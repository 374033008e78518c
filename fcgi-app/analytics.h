/*
 * analytics.h: what the analytics endpoints (route_usage.c, route_cost.c,
 * route_perf.c) share: their parameters, their one read transaction, and
 * the conversion of an answer to JSON or CSV.
 *
 * A handler calls an_start() (parses and checks the common parameters,
 * answering 400 on a bad one), then an_run() for each question (the first
 * opens the read transaction; every later one sees the same snapshot),
 * then an_finish() to end the transaction before it answers, and
 * an_send() to answer.  Every an_* that fails has already answered the
 * request and ended the transaction; the handler just returns -1.
 *
 * Memory: rows, strings and JSON values live in the request's arena.
 */
#ifndef TT_ANALYTICS_H
#define TT_ANALYTICS_H

#include "api.h"
#include "query.h"

/* an_start flags. */
#define AN_BUCKET 0x1 /* the endpoint takes bucket= */

/* Points an answer may have (buckets over the range). */
#define AN_MAX_POINTS 10000

/* The auto bucket is the finest giving at most this many points. */
#define AN_AUTO_POINTS 300

/* One analytics request. */
struct an_req {
    struct api_req *r;
    struct api_range rg;
    struct qry_filter f;
    int csv;
    int64_t bucket_ms;  /* output bucket, 0 when the endpoint has none */
    const char *bucket; /* its name: "1m", "5m", "1h", "1d" */
    int64_t ws;         /* workspace id (0: the workspace has no events) */
    int open;           /* the read transaction is open */
    int64_t rollup_seq; /* its meta.rollup_seq */
};

/* Parse the common parameters (and allow the extra ones, NULL-ended).
 * Returns 0, or -1 after answering 400. */
int an_start(struct api_req *r, struct an_req *a, const char *const *extra,
             int flags);

/* Answer one question over [from, to) (the transaction opens on the first
 * call).  Returns 0, or -1 after answering 503/500. */
int an_run(struct an_req *a, int64_t from, int64_t to, int64_t bucket_ms,
           unsigned group, int hist, int errors_only, struct qry_result *out);

/* Who made the calls of the answer's range and filters (qry_distinct).
 * Returns 0, or -1 after answering 503/500. */
int an_distinct(struct an_req *a, struct qry_people *out);

/* End the read transaction. */
void an_finish(struct an_req *a);

/* Parse a dimension parameter (group_by=, by=): one of names (a
 * NULL-ended subset of "provider", "model", "agent", "user", "none"), def
 * when absent.  *dims gets the QRY_* bits (a model is grouped with its
 * provider), *name the value.  Returns 0, or -1 after answering 400. */
int an_parse_dim(struct an_req *a, const char *param, const char *def,
                 const char *const *names, unsigned *dims, const char **name);

/* Start a series endpoint: an_start with bucket= and group_by= (one of
 * groups, def when absent), then the question grouped so per bucket.
 * *out gets the envelope with "group_by".  Returns 0 or -1 (answered). */
int an_series(struct api_req *r, struct an_req *a, const char *const *groups,
              const char *def, unsigned *group, struct qry_result *res,
              json_t **out);

/* Fill point p (its "ts" and group members already set) from row r of
 * bucket ts. */
typedef void (*an_point_fn)(json_t *p, const struct qry_row *r, int64_t ts,
                            void *ctx);

/* The points of a series: without group one per bucket of the range, a
 * zero row for an empty one; with group one per row of res (each with its
 * group's members).  fn fills each. */
json_t *an_points(const struct an_req *a, const struct qry_result *res,
                  unsigned group, an_point_fn fn, void *ctx);

/* Merge in of rows with equal (ts when keep_ts, dimensions of group) into
 * out, ordered by ts then the dimensions.  Returns 0 or -1 after answering
 * 500. */
int an_regroup(struct an_req *a, const struct qry_result *in, unsigned group,
               int keep_ts, struct qry_result *out);

/* Sort rows by a measure, largest first (ties by dimensions). */
enum an_sort { AN_BY_CALLS, AN_BY_COST, AN_BY_ERRORS };
void an_sort(struct qry_result *res, enum an_sort by);

/* The row of bucket ts in res (ordered by ts, at most one per ts),
 * advancing *i; a zero row when there is none. */
const struct qry_row *an_bucket_row(const struct qry_result *res, size_t *i,
                                    int64_t ts);

/* The first bucket of the range. */
int64_t an_first_bucket(const struct an_req *a);

/* ---- JSON values ---- */

/* 100 * part / whole; 0 when whole is 0. */
double an_pct(double part, double whole);

/* {"input", "output", "cache_read", "cache_write", "reasoning", "total"} */
json_t *an_tokens(const struct qry_row *r);

/* input + output + cache_read + cache_write. */
int64_t an_total_tokens(const struct qry_row *r);

/* Set the members of o for the grouped dimensions of r (null when ""). */
void an_set_keys(json_t *o, const struct qry_row *r, unsigned group);

/* {"p50", "p95", "p99", "avg"} of r's latency (ttft: of its TTFT), or
 * null when no event had the value. */
json_t *an_latency(const struct qry_row *r, int ttft);

/* ---- answers ---- */

/* The CSV columns of a "tokens" object. */
#define AN_TOKEN_COLS                                                          \
    {"input_tokens", "tokens.input", -1},                                      \
        {"output_tokens", "tokens.output", -1},                                \
        {"cache_read_tokens", "tokens.cache_read", -1},                        \
        {"cache_write_tokens", "tokens.cache_write", -1},                      \
        {"reasoning_tokens", "tokens.reasoning", -1},                          \
    {                                                                          \
        "total_tokens", "tokens.total", -1                                     \
    }

/* A CSV column: its header, the path of its value in a row object
 * ("tokens.input": member input of member tokens) and the decimals of a
 * real (-1: as JSON writes it). */
struct an_col {
    const char *name;
    const char *path;
    int decimals;
};

/* The key columns of group followed by cols (n of them), in the arena;
 * *ncols gets the total. */
const struct an_col *an_cols(struct an_req *a, unsigned group,
                             const struct an_col *cols, int n, int *ncols);

/*
 * Answer out.  JSON: out as it is.  CSV: the rows of out's array member
 * rows (or out itself, one row, when rows is NULL) as RFC 4180 under a
 * header of the columns' names, as an attachment named
 * NAME-YYYYMMDD-YYYYMMDD.csv (the range's first and last day).  Consumes
 * out.  Returns 0.
 */
int an_send(struct an_req *a, json_t *out, const char *rows,
            const struct an_col *cols, int ncols, const char *name);

/* A JSON object with the range ("from", "to") and, with a bucket,
 * "bucket": what every answer starts with. */
json_t *an_envelope(const struct an_req *a);

#endif
