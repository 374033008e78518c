/*
 * analytics.c: the machinery the analytics endpoints share (analytics.h).
 *
 * Parameters: the common range, filters and format of params.c, plus
 * bucket=auto|1m|5m|1h|1d on the endpoints that have points.  auto picks
 * the finest bucket that gives at most AN_AUTO_POINTS points over the
 * range (counting every UTC-aligned bucket the range touches), 1d when
 * none does; an explicit bucket may give at most AN_MAX_POINTS.
 *
 * Answers are built as JSON values in the request's arena; CSV is written
 * from them through a table of columns, so the two forms cannot disagree.
 */
#include "analytics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

/* The parameters every analytics endpoint takes. */
static const char *const an_common[] = {"range",  "from",  "to",   "provider",
                                        "model",  "agent", "user", "session",
                                        "status", "format"};

#define AN_NCOMMON (int)(sizeof(an_common) / sizeof(an_common[0]))

/* The buckets, finest first. */
static const struct {
    const char *name;
    int64_t ms;
} an_buckets[] = {
    {"1m", 60000LL}, {"5m", 300000LL}, {"1h", 3600000LL}, {"1d", 86400000LL}};

#define AN_NBUCKETS (int)(sizeof(an_buckets) / sizeof(an_buckets[0]))

/* The number of aligned buckets of bucket_ms the range touches. */
static int64_t an_npoints(const struct api_range *rg, int64_t bucket_ms)
{
    return (rg->to_ms - 1) / bucket_ms - rg->from_ms / bucket_ms + 1;
}

/* Parse bucket= for the range already parsed. */
static int an_parse_bucket(struct an_req *a)
{
    const char *v = api_query(a->r, "bucket");
    int pick = -1;
    if (v == NULL || strcmp(v, "auto") == 0) {
        pick = AN_NBUCKETS - 1;
        for (int i = 0; i < AN_NBUCKETS; i++)
            if (an_npoints(&a->rg, an_buckets[i].ms) <= AN_AUTO_POINTS) {
                pick = i;
                break;
            }
    } else {
        for (int i = 0; i < AN_NBUCKETS; i++)
            if (strcmp(v, an_buckets[i].name) == 0)
                pick = i;
        if (pick < 0)
            return api_error(a->r, 400, "invalid_parameter", "bucket",
                             "bucket must be one of auto, 1m, 5m, 1h, 1d, "
                             "got \"%.32s\"",
                             v);
    }
    int64_t n = an_npoints(&a->rg, an_buckets[pick].ms);
    if (n > AN_MAX_POINTS)
        return api_error(a->r, 400, "invalid_parameter", "bucket",
                         "bucket \"%s\" gives %lld points over this range; "
                         "at most %d are allowed",
                         v ? v : "auto", (long long)n, AN_MAX_POINTS);
    a->bucket_ms = an_buckets[pick].ms;
    a->bucket = an_buckets[pick].name;
    return 0;
}

int an_start(struct api_req *r, struct an_req *a, const char *const *extra,
             int flags)
{
    const char *names[AN_NCOMMON + 8];
    int n = 0;
    memset(a, 0, sizeof(*a));
    a->r = r;
    for (int i = 0; i < AN_NCOMMON; i++)
        names[n++] = an_common[i];
    if (flags & AN_BUCKET)
        names[n++] = "bucket";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < AN_NCOMMON + 7;
         i++)
        names[n++] = extra[i];
    names[n] = NULL;
    struct api_filter f;
    if (api_query_only(r, names) != 0 || api_parse_range(r, "24h", &a->rg) ||
        api_parse_filters(r, &f) != 0 || api_parse_format(r, &a->csv) != 0)
        return -1;
    if (a->rg.from_ms < 0)
        return api_error(r, 400, "invalid_parameter", "from",
                         "from must not be before 1970-01-01T00:00:00Z");
    a->f = (struct qry_filter){f.provider, f.model,   f.agent,
                               f.user,     f.session, f.status};
    if ((flags & AN_BUCKET) && an_parse_bucket(a) != 0)
        return -1;
    a->ws = api_ws_id(r);
    if (a->ws < 0)
        return api_db_unavailable(r);
    return 0;
}

/* The thread's query state, made on first use. */
static struct qry_cache *an_cache(struct api_req *r)
{
    struct api_thread *t = r->t;
    if (t->qcache == NULL)
        t->qcache = qry_cache_new(t->db);
    return t->qcache;
}

/* The thread's query state with the answer's read transaction open (the
 * first question opens it), or NULL after answering the error. */
static struct qry_cache *an_open(struct an_req *a)
{
    struct qry_cache *c = an_cache(a->r);
    if (c == NULL) {
        api_error(a->r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    if (!a->open) {
        /* Every question of the answer sees this one snapshot. */
        a->rollup_seq = api_read_begin(a->r);
        if (a->rollup_seq < 0)
            return NULL;
        a->open = 1;
    }
    return c;
}

/* Answer the engine's error rc (the question had bucket bucket_ms). */
static int an_fail(struct an_req *a, struct qry_cache *c, int rc,
                   int64_t bucket_ms)
{
    an_finish(a);
    if (rc == -ENOMEM)
        return api_error(a->r, 500, "internal", NULL, "out of memory");
    if (rc == -E2BIG)
        return api_error(a->r, 400, "invalid_parameter",
                         bucket_ms ? "bucket" : "range",
                         "%s: ask for a coarser bucket, a shorter range or "
                         "fewer groups",
                         qry_errmsg(c));
    if (rc == -EINVAL)
        return api_error(a->r, 500, "internal", NULL, "%s", qry_errmsg(c));
    return api_error_h(a->r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                       "the database is not available: %s", qry_errmsg(c));
}

int an_run(struct an_req *a, int64_t from, int64_t to, int64_t bucket_ms,
           unsigned group, int hist, int errors_only, struct qry_result *out)
{
    struct qry_cache *c = an_open(a);
    if (c == NULL)
        return -1;
    out->rows = NULL;
    out->n = 0;
    if (to <= from)
        return 0; /* range=today in its first millisecond: nothing to count */
    struct qry_spec s = {.ws = a->ws,
                         .from_ms = from,
                         .to_ms = to,
                         .f = a->f,
                         .bucket_ms = bucket_ms,
                         .group = group,
                         .errors_only = errors_only,
                         .hist = hist,
                         .rollup_seq = a->rollup_seq};
    int rc = qry_run(c, a->r->arena, &s, out);
    return rc ? an_fail(a, c, rc, bucket_ms) : 0;
}

int an_distinct(struct an_req *a, struct qry_people *out)
{
    struct qry_cache *c = an_open(a);
    if (c == NULL)
        return -1;
    memset(out, 0, sizeof(*out));
    if (a->rg.to_ms <= a->rg.from_ms)
        return 0;
    struct qry_spec s = {.ws = a->ws,
                         .from_ms = a->rg.from_ms,
                         .to_ms = a->rg.to_ms,
                         .f = a->f,
                         .rollup_seq = a->rollup_seq};
    int rc = qry_distinct(c, a->r->arena, &s, out);
    return rc ? an_fail(a, c, rc, 0) : 0;
}

void an_finish(struct an_req *a)
{
    if (a->open)
        api_read_end(a->r);
    a->open = 0;
}

int an_parse_dim(struct an_req *a, const char *param, const char *def,
                 const char *const *names, unsigned *dims, const char **name)
{
    static const struct {
        const char *name;
        unsigned dims;
    } opts[] = {{"provider", QRY_PROVIDER},
                {"model", QRY_PROVIDER | QRY_MODEL},
                {"agent", QRY_AGENT},
                {"user", QRY_USER},
                {"none", 0}};
    const char *v = api_query(a->r, param);
    char list[96] = "";
    if (v == NULL)
        v = def;
    for (int i = 0; names[i] != NULL; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                 names[i]);
        if (strcmp(v, names[i]) != 0)
            continue;
        for (size_t j = 0; j < sizeof(opts) / sizeof(opts[0]); j++)
            if (strcmp(v, opts[j].name) == 0) {
                *dims = opts[j].dims;
                *name = opts[j].name;
                return 0;
            }
    }
    return api_error(a->r, 400, "invalid_parameter", param,
                     "%s must be one of %s, got \"%.32s\"", param, list, v);
}

int an_series(struct api_req *r, struct an_req *a, const char *const *groups,
              const char *def, unsigned *group, struct qry_result *res,
              json_t **out)
{
    static const char *const extra[] = {"group_by", NULL};
    const char *gname;
    if (an_start(r, a, extra, AN_BUCKET) != 0 ||
        an_parse_dim(a, "group_by", def, groups, group, &gname) != 0 ||
        an_run(a, a->rg.from_ms, a->rg.to_ms, a->bucket_ms, *group, 0, 0,
               res) != 0)
        return -1;
    *out = an_envelope(a);
    json_object_set_new(*out, "group_by",
                        *group ? json_string(gname) : json_null());
    return 0;
}

json_t *an_points(const struct an_req *a, const struct qry_result *res,
                  unsigned group, an_point_fn fn, void *ctx)
{
    json_t *pts = json_array();
    size_t i = 0;
    for (int64_t ts = an_first_bucket(a); group == 0 && ts < a->rg.to_ms;
         ts += a->bucket_ms) {
        json_t *p = json_pack("{s:o}", "ts", api_time(ts));
        fn(p, an_bucket_row(res, &i, ts), ts, ctx);
        json_array_append_new(pts, p);
    }
    for (i = 0; group != 0 && i < res->n; i++) {
        json_t *p = json_pack("{s:o}", "ts", api_time(res->rows[i].ts));
        an_set_keys(p, &res->rows[i], group);
        fn(p, &res->rows[i], res->rows[i].ts, ctx);
        json_array_append_new(pts, p);
    }
    return pts;
}

int an_regroup(struct an_req *a, const struct qry_result *in, unsigned group,
               int keep_ts, struct qry_result *out)
{
    if (qry_regroup(a->r->arena, in, group, keep_ts, out) == 0)
        return 0;
    return api_error(a->r, 500, "internal", NULL,
                     "cannot merge the answer's rows");
}

/* The measure rows are sorted by. */
static int64_t an_measure(const struct qry_row *r, enum an_sort by)
{
    switch (by) {
    case AN_BY_COST:
        return r->cost_nusd;
    case AN_BY_ERRORS:
        return r->errors;
    default:
        return r->calls;
    }
}

/* qsort_r comparator: the measure, largest first, then the keys. */
static int an_sort_cmp(const void *x, const void *y, void *ctx)
{
    enum an_sort by = *(const enum an_sort *)ctx;
    int64_t mx = an_measure(x, by), my = an_measure(y, by);
    if (mx != my)
        return mx > my ? -1 : 1;
    return qry_row_cmp(x, y, QRY_GROUPABLE, 0);
}

void an_sort(struct qry_result *res, enum an_sort by)
{
    if (res->n > 1)
        qsort_r(res->rows, res->n, sizeof(*res->rows), an_sort_cmp, &by);
}

const struct qry_row *an_bucket_row(const struct qry_result *res, size_t *i,
                                    int64_t ts)
{
    static const struct qry_row zero = {
        .provider = "", .model = "", .agent = "", .user = "", .error_type = ""};
    while (*i < res->n && res->rows[*i].ts < ts)
        (*i)++;
    if (*i < res->n && res->rows[*i].ts == ts)
        return &res->rows[(*i)++];
    return &zero;
}

int64_t an_first_bucket(const struct an_req *a)
{
    return a->rg.from_ms - a->rg.from_ms % a->bucket_ms;
}

/* ---- JSON values ---- */

double an_pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

int64_t an_total_tokens(const struct qry_row *r)
{
    return r->tokens[0] + r->tokens[1] + r->tokens[2] + r->tokens[3];
}

json_t *an_tokens(const struct qry_row *r)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I}", "input", (json_int_t)r->tokens[0],
        "output", (json_int_t)r->tokens[1], "cache_read",
        (json_int_t)r->tokens[2], "cache_write", (json_int_t)r->tokens[3],
        "reasoning", (json_int_t)r->tokens[4], "total",
        (json_int_t)an_total_tokens(r));
}

void an_set_keys(json_t *o, const struct qry_row *r, unsigned group)
{
    if (group & QRY_PROVIDER)
        json_object_set_new(o, "provider", api_str_or_null(r->provider));
    if (group & QRY_MODEL)
        json_object_set_new(o, "model", api_str_or_null(r->model));
    if (group & QRY_AGENT)
        json_object_set_new(o, "agent", api_str_or_null(r->agent));
    if (group & QRY_USER)
        json_object_set_new(o, "user", api_str_or_null(r->user));
    if (group & QRY_ETYPE)
        json_object_set_new(o, "error_type", api_str_or_null(r->error_type));
    if (group & QRY_STATUS)
        json_object_set_new(o, "status",
                            r->status ? json_integer(r->status) : json_null());
}

/* Milliseconds rounded to 0.001, as the live stats report them. */
static json_t *an_ms(double ms)
{
    return json_real(round(ms * 1000.0) / 1000.0);
}

json_t *an_latency(const struct qry_row *r, int ttft)
{
    static const double qs[] = {0.50, 0.95, 0.99};
    double v[3];
    int64_t n = ttft ? r->ttft_n : r->lat_n;
    double sum = ttft ? r->ttft_sum : r->lat_sum;
    int64_t h = ttft ? qry_quantiles(r->ttft_hist, r->ttft_len, qs, 3, v)
                     : qry_quantiles(r->lat_hist, r->lat_len, qs, 3, v);
    if (n <= 0 || h <= 0)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:o}", "p50", an_ms(v[0]), "p95",
                     an_ms(v[1]), "p99", an_ms(v[2]), "avg",
                     an_ms(sum / (double)n));
}

/* ---- answers ---- */

const struct an_col *an_cols(struct an_req *a, unsigned group,
                             const struct an_col *cols, int n, int *ncols)
{
    static const struct {
        unsigned dim;
        struct an_col col;
    } keys[] = {{QRY_PROVIDER, {"provider", "provider", -1}},
                {QRY_MODEL, {"model", "model", -1}},
                {QRY_AGENT, {"agent", "agent", -1}},
                {QRY_USER, {"user", "user", -1}},
                {QRY_ETYPE, {"error_type", "error_type", -1}},
                {QRY_STATUS, {"status", "status", -1}}};
    struct an_col *out =
        arena_alloc(a->r->arena, (size_t)(n + 8) * sizeof(*out));
    int k = 0;
    if (out == NULL) {
        *ncols = n;
        return cols;
    }
    /* The time comes first when there is one. */
    int skip = n > 0 && strcmp(cols[0].name, "ts") == 0;
    if (skip)
        out[k++] = cols[0];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (group & keys[i].dim)
            out[k++] = keys[i].col;
    for (int i = skip; i < n; i++)
        out[k++] = cols[i];
    *ncols = k;
    return out;
}

/* The value at path ("a.b") in o, or NULL. */
static json_t *an_path(json_t *o, const char *path)
{
    const char *dot = strchr(path, '.');
    if (dot == NULL)
        return json_object_get(o, path);
    char head[64];
    snprintf(head, sizeof(head), "%.*s", (int)(dot - path), path);
    return an_path(json_object_get(o, head), dot + 1);
}

/* Write one row of the CSV. */
static void an_csv_row(struct an_req *a, json_t *o, const struct an_col *cols,
                       int ncols)
{
    char buf[64];
    for (int i = 0; i < ncols; i++) {
        json_t *v = an_path(o, cols[i].path);
        const char *s = buf;
        buf[0] = '\0';
        if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(buf, sizeof(buf), "%lld",
                     (long long)json_integer_value(v));
        else if (json_is_real(v) && cols[i].decimals >= 0)
            snprintf(buf, sizeof(buf), "%.*f", cols[i].decimals,
                     json_real_value(v));
        else if (json_is_real(v))
            snprintf(buf, sizeof(buf), "%.15g", json_real_value(v));
        else if (json_is_boolean(v))
            s = json_is_true(v) ? "true" : "false";
        api_csv_field(a->r, s, i == ncols - 1);
    }
}

/* Write the range's first and last days as YYYYMMDD-YYYYMMDD into buf. */
static void an_file_days(const struct an_req *a, char *buf, size_t n)
{
    char f[40], t[40];
    ev_format_rfc3339(a->rg.from_ms, f, sizeof(f));
    ev_format_rfc3339(a->rg.to_ms - 1, t, sizeof(t));
    snprintf(buf, n, "%.4s%.2s%.2s-%.4s%.2s%.2s", f, f + 5, f + 8, t, t + 5,
             t + 8);
}

int an_send(struct an_req *a, json_t *out, const char *rows,
            const struct an_col *cols, int ncols, const char *name)
{
    an_finish(a);
    if (!a->csv)
        return api_send_json(a->r, 200, out, NULL);
    char days[32], file[128];
    const char **names = arena_alloc(a->r->arena, sizeof(*names) * ncols);
    if (names == NULL) {
        json_decref(out);
        return api_error(a->r, 500, "internal", NULL, "out of memory");
    }
    for (int i = 0; i < ncols; i++)
        names[i] = cols[i].name;
    an_file_days(a, days, sizeof(days));
    snprintf(file, sizeof(file), "%s-%s.csv", name, days);
    api_csv_start(a->r, file, names, ncols);
    if (rows == NULL)
        an_csv_row(a, out, cols, ncols);
    else {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(out, rows), i, v)
            an_csv_row(a, v, cols, ncols);
    }
    json_decref(out);
    return 0;
}

json_t *an_envelope(const struct an_req *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "from", api_time(a->rg.from_ms));
    json_object_set_new(o, "to", api_time(a->rg.to_ms));
    if (a->bucket != NULL)
        json_object_set_new(o, "bucket", json_string(a->bucket));
    return o;
}
