/*
 * route_perf.c: latency, throughput and errors of the key's workspace.
 *
 *   GET /api/v1/performance/overview    latency and TTFT percentiles,
 *                                       error rate, calls per second
 *   GET /api/v1/performance/latency     latency percentiles per bucket
 *   GET /api/v1/performance/throughput  successful and failed calls per
 *                                       bucket
 *   GET /api/v1/performance/errors      errors by type, HTTP status and
 *                                       model, with first and last seen
 *
 * Percentiles come from the merged histograms of the rollups (shm/hist.h:
 * within 1% of the exact nearest-rank value), never from sorting events.
 */
#include "analytics.h"

#include <string.h>

/* Calls per second of calls over [lo, hi). */
static double perf_rps(int64_t calls, int64_t lo, int64_t hi)
{
    return hi > lo ? (double)calls * 1000.0 / (double)(hi - lo) : 0.0;
}

int api_perf_overview(struct api_req *r)
{
    struct an_req a;
    struct qry_result tot;
    if (an_start(r, &a, NULL, 0) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, 0, 1, 0, &tot) != 0)
        return -1;
    static const struct qry_row zero = {0};
    const struct qry_row *t = tot.n ? &tot.rows[0] : &zero;
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "calls", json_integer(t->calls));
    json_object_set_new(o, "errors", json_integer(t->errors));
    json_object_set_new(o, "error_rate",
                        json_real(an_pct((double)t->errors, (double)t->calls)));
    json_object_set_new(
        o, "throughput_rps",
        json_real(perf_rps(t->calls, a.rg.from_ms, a.rg.to_ms)));
    json_object_set_new(o, "latency_ms", an_latency(t, 0));
    json_object_set_new(o, "ttft_ms", an_latency(t, 1));
    static const struct an_col cols[] = {
        {"from", "from", -1},
        {"to", "to", -1},
        {"calls", "calls", -1},
        {"errors", "errors", -1},
        {"error_rate", "error_rate", -1},
        {"throughput_rps", "throughput_rps", -1},
        {"latency_p50_ms", "latency_ms.p50", -1},
        {"latency_p95_ms", "latency_ms.p95", -1},
        {"latency_p99_ms", "latency_ms.p99", -1},
        {"latency_avg_ms", "latency_ms.avg", -1},
        {"ttft_p50_ms", "ttft_ms.p50", -1},
        {"ttft_p95_ms", "ttft_ms.p95", -1},
        {"ttft_p99_ms", "ttft_ms.p99", -1},
        {"ttft_avg_ms", "ttft_ms.avg", -1}};
    return an_send(&a, o, NULL, cols, (int)(sizeof(cols) / sizeof(cols[0])),
                   "performance-overview");
}

/* member of a latency object, or null. */
static json_t *perf_member(json_t *lat, const char *member)
{
    json_t *v = json_object_get(lat, member);
    return v ? json_incref(v) : json_null();
}

/* an_point_fn: the latency percentiles of a bucket. */
static void perf_latency_point(json_t *p, const struct qry_row *row, int64_t ts,
                               void *ctx)
{
    static const char *const qs[] = {"p50", "p95", "p99", "avg"};
    (void)ts;
    (void)ctx;
    json_t *lat = an_latency(row, 0), *ttft = an_latency(row, 1);
    json_object_set_new(p, "samples", json_integer(row->lat_n));
    for (int q = 0; q < 4; q++)
        json_object_set_new(p, qs[q], perf_member(lat, qs[q]));
    json_object_set_new(p, "ttft_p95", perf_member(ttft, "p95"));
    json_decref(lat);
    json_decref(ttft);
}

/* an_point_fn: successes and errors of a bucket, and its rate over the
 * part of the bucket inside the range (ctx). */
static void perf_throughput_point(json_t *p, const struct qry_row *row,
                                  int64_t ts, void *ctx)
{
    const struct an_req *a = ctx;
    int64_t lo = ts < a->rg.from_ms ? a->rg.from_ms : ts;
    int64_t hi =
        ts + a->bucket_ms > a->rg.to_ms ? a->rg.to_ms : ts + a->bucket_ms;
    json_object_set_new(p, "calls", json_integer(row->calls));
    json_object_set_new(p, "success", json_integer(row->calls - row->errors));
    json_object_set_new(p, "errors", json_integer(row->errors));
    json_object_set_new(p, "rps", json_real(perf_rps(row->calls, lo, hi)));
}

/* GET /performance/latency and /performance/throughput: one point per
 * bucket, made by fn, under name. */
static int perf_series(struct api_req *r, an_point_fn fn, int hist,
                       const struct an_col *cols, int ncols, const char *name)
{
    struct an_req a;
    struct qry_result res;
    if (an_start(r, &a, NULL, AN_BUCKET) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, a.bucket_ms, 0, hist, 0, &res))
        return -1;
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "points", an_points(&a, &res, 0, fn, &a));
    return an_send(&a, o, "points", cols, ncols, name);
}

int api_perf_latency(struct api_req *r)
{
    static const struct an_col cols[] = {{"ts", "ts", -1},
                                         {"samples", "samples", -1},
                                         {"p50", "p50", -1},
                                         {"p95", "p95", -1},
                                         {"p99", "p99", -1},
                                         {"avg", "avg", -1},
                                         {"ttft_p95", "ttft_p95", -1}};
    return perf_series(r, perf_latency_point, 1, cols,
                       (int)(sizeof(cols) / sizeof(cols[0])),
                       "performance-latency");
}

int api_perf_throughput(struct api_req *r)
{
    static const struct an_col cols[] = {{"ts", "ts", -1},
                                         {"calls", "calls", -1},
                                         {"success", "success", -1},
                                         {"errors", "errors", -1},
                                         {"rps", "rps", -1}};
    return perf_series(r, perf_throughput_point, 0, cols,
                       (int)(sizeof(cols) / sizeof(cols[0])),
                       "performance-throughput");
}

/* One breakdown of the errors: rows merged by group, most errors first,
 * as objects with their shares and first and last seen; each also goes
 * into csv with "by" set to by. */
static int perf_breakdown(struct an_req *a, const struct qry_result *errs,
                          unsigned group, const char *by, int64_t calls,
                          int64_t errors, json_t *o, const char *member,
                          json_t *csv)
{
    struct qry_result res;
    if (an_regroup(a, errs, group, 0, &res) != 0)
        return -1;
    an_sort(&res, AN_BY_ERRORS);
    json_t *arr = json_array();
    for (size_t i = 0; i < res.n; i++) {
        const struct qry_row *row = &res.rows[i];
        json_t *it = json_object();
        an_set_keys(it, row, group);
        json_object_set_new(it, "errors", json_integer(row->errors));
        json_object_set_new(
            it, "share_of_errors",
            json_real(an_pct((double)row->errors, (double)errors)));
        json_object_set_new(
            it, "share_of_calls",
            json_real(an_pct((double)row->errors, (double)calls)));
        json_object_set_new(it, "first_seen", api_time(row->first_ms));
        json_object_set_new(it, "last_seen", api_time(row->last_ms));
        json_array_append_new(arr, it);
        json_t *line = json_deep_copy(it);
        json_object_set_new(line, "by", json_string(by));
        json_array_append_new(csv, line);
    }
    json_object_set_new(o, member, arr);
    return 0;
}

int api_perf_errors(struct api_req *r)
{
    struct an_req a;
    struct qry_result tot, errs;
    if (an_start(r, &a, NULL, 0) != 0)
        return -1;
    if (a.f.session != NULL)
        return api_error(r, 400, "invalid_parameter", "session",
                         "performance/errors cannot filter by session: the "
                         "error rollups do not keep it, got \"%.64s\"",
                         a.f.session);
    if (an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, 0, 0, 0, &tot) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0,
               QRY_ETYPE | QRY_STATUS | QRY_PROVIDER | QRY_MODEL, 0, 1,
               &errs) != 0)
        return -1;
    static const struct qry_row zero = {0};
    const struct qry_row *t = tot.n ? &tot.rows[0] : &zero;
    int64_t errors = 0;
    for (size_t i = 0; i < errs.n; i++)
        errors += errs.rows[i].errors;
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "calls", json_integer(t->calls));
    json_object_set_new(o, "errors", json_integer(errors));
    json_object_set_new(o, "error_rate",
                        json_real(an_pct((double)errors, (double)t->calls)));
    json_t *csv = json_array();
    if (perf_breakdown(&a, &errs, QRY_ETYPE, "error_type", t->calls, errors, o,
                       "by_type", csv) != 0 ||
        perf_breakdown(&a, &errs, QRY_STATUS, "status", t->calls, errors, o,
                       "by_status", csv) != 0 ||
        perf_breakdown(&a, &errs, QRY_PROVIDER | QRY_MODEL, "model", t->calls,
                       errors, o, "by_model", csv) != 0)
        return -1;
    static const struct an_col cols[] = {
        {"by", "by", -1},
        {"error_type", "error_type", -1},
        {"status", "status", -1},
        {"provider", "provider", -1},
        {"model", "model", -1},
        {"errors", "errors", -1},
        {"share_of_errors", "share_of_errors", -1},
        {"share_of_calls", "share_of_calls", -1},
        {"first_seen", "first_seen", -1},
        {"last_seen", "last_seen", -1}};
    if (a.csv) {
        /* CSV: the three breakdowns one after the other, told apart by
         * the "by" column. */
        json_decref(o);
        o = json_pack("{s:o}", "rows", csv);
    } else
        json_decref(csv);
    return an_send(&a, o, "rows", cols, (int)(sizeof(cols) / sizeof(cols[0])),
                   "performance-errors");
}
