/*
 * route_cost.c: the spend of the key's workspace.
 *
 *   GET /api/v1/cost/overview     spend, cost per call and per 1k tokens,
 *                                 and the projected spend of the current
 *                                 UTC day and month
 *   GET /api/v1/cost/trend        spend per bucket, per model (default),
 *                                 per provider or in total (group_by=)
 *   GET /api/v1/cost/by-model     spend per provider and model
 *   GET /api/v1/cost/by-provider  spend per provider
 *
 * Costs are summed as integer nano-dollars (cost_nusd) and only divided
 * by 1e9 when written, so every sum is exact.  A projection is linear:
 * the spend from the start of the period to now, scaled to the whole
 * period; the filters apply, the range does not.
 */
#include "analytics.h"

#include <stdio.h>
#include <string.h>

#include "event.h"

/* Cost per call and per 1000 tokens of r as members of o. */
static void cost_ratios(json_t *o, const struct qry_row *r)
{
    int64_t tokens = an_total_tokens(r);
    double usd = (double)r->cost_nusd / 1e9;
    json_object_set_new(o, "avg_cost_per_call",
                        json_real(r->calls ? usd / (double)r->calls : 0.0));
    json_object_set_new(
        o, "cost_per_1k_tokens",
        json_real(tokens ? usd * 1000.0 / (double)tokens : 0.0));
}

/* The start of the UTC month holding ms, and of the next month. */
static void cost_month(int64_t ms, int64_t *start, int64_t *next)
{
    char now[40], buf[40];
    int y, m;
    ev_format_rfc3339(ms, now, sizeof(now));
    sscanf(now, "%4d-%2d", &y, &m);
    snprintf(buf, sizeof(buf), "%04d-%02d-01T00:00:00Z", y, m);
    ev_parse_rfc3339(buf, start);
    if (++m > 12) {
        m = 1;
        y++;
    }
    snprintf(buf, sizeof(buf), "%04d-%02d-01T00:00:00Z", y, m);
    ev_parse_rfc3339(buf, next);
}

/* The spend of [start, now) and its projection over [start, end). */
static int cost_projection(struct an_req *a, int64_t start, int64_t end,
                           json_t **out)
{
    int64_t now = a->r->now_ms, spent = 0;
    struct qry_result res;
    if (now > start) {
        if (an_run(a, start, now, 0, 0, 0, 0, &res) != 0)
            return -1;
        if (res.n > 0)
            spent = res.rows[0].cost_nusd;
    }
    double usd = (double)spent / 1e9;
    double projected =
        now > start ? usd * (double)(end - start) / (double)(now - start) : usd;
    *out = json_pack("{s:o, s:o, s:o, s:f}", "start", api_time(start), "end",
                     api_time(end), "spent_usd", api_usd(spent),
                     "projected_usd", projected);
    return 0;
}

int api_cost_overview(struct api_req *r)
{
    struct an_req a;
    struct qry_result tot;
    json_t *day, *month;
    int64_t day0 = r->now_ms - r->now_ms % 86400000LL, mon0, mon1;
    cost_month(r->now_ms, &mon0, &mon1);
    if (an_start(r, &a, NULL, 0) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, 0, 0, 0, &tot) != 0 ||
        cost_projection(&a, day0, day0 + 86400000LL, &day) != 0 ||
        cost_projection(&a, mon0, mon1, &month) != 0)
        return -1;
    static const struct qry_row zero = {0};
    const struct qry_row *t = tot.n ? &tot.rows[0] : &zero;
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "cost_usd", api_usd(t->cost_nusd));
    json_object_set_new(o, "calls", json_integer(t->calls));
    json_object_set_new(o, "tokens", json_integer(an_total_tokens(t)));
    cost_ratios(o, t);
    json_object_set_new(o, "projection",
                        json_pack("{s:o, s:o}", "day", day, "month", month));
    static const struct an_col cols[] = {
        {"from", "from", -1},
        {"to", "to", -1},
        {"cost_usd", "cost_usd", 9},
        {"calls", "calls", -1},
        {"tokens", "tokens", -1},
        {"avg_cost_per_call", "avg_cost_per_call", 12},
        {"cost_per_1k_tokens", "cost_per_1k_tokens", 12},
        {"day_start", "projection.day.start", -1},
        {"day_spent_usd", "projection.day.spent_usd", 9},
        {"day_projected_usd", "projection.day.projected_usd", 9},
        {"month_start", "projection.month.start", -1},
        {"month_spent_usd", "projection.month.spent_usd", 9},
        {"month_projected_usd", "projection.month.projected_usd", 9}};
    return an_send(&a, o, NULL, cols, (int)(sizeof(cols) / sizeof(cols[0])),
                   "cost-overview");
}

/* an_point_fn: spend and calls. */
static void cost_point(json_t *p, const struct qry_row *r, int64_t ts,
                       void *ctx)
{
    (void)ts;
    (void)ctx;
    json_object_set_new(p, "cost_usd", api_usd(r->cost_nusd));
    json_object_set_new(p, "calls", json_integer(r->calls));
}

int api_cost_trend(struct api_req *r)
{
    static const char *const groups[] = {"model", "provider", "none", NULL};
    struct an_req a;
    struct qry_result res;
    unsigned group;
    json_t *o;
    if (an_series(r, &a, groups, "model", &group, &res, &o) != 0)
        return -1;
    json_object_set_new(o, "points",
                        an_points(&a, &res, group, cost_point, NULL));
    static const struct an_col cols[] = {
        {"ts", "ts", -1}, {"cost_usd", "cost_usd", 9}, {"calls", "calls", -1}};
    int n;
    const struct an_col *all = an_cols(&a, group, cols, 3, &n);
    return an_send(&a, o, "points", all, n, "cost-trend");
}

/* GET /cost/by-model and /cost/by-provider: spend per group, largest
 * first, under member. */
static int cost_by(struct api_req *r, unsigned group, const char *member,
                   const char *name)
{
    struct an_req a;
    struct qry_result res;
    if (an_start(r, &a, NULL, 0) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, group, 0, 0, &res) != 0)
        return -1;
    an_sort(&res, AN_BY_COST);
    int64_t all = 0;
    for (size_t i = 0; i < res.n; i++)
        all += res.rows[i].cost_nusd;
    json_t *arr = json_array();
    for (size_t i = 0; i < res.n; i++) {
        const struct qry_row *row = &res.rows[i];
        json_t *it = json_object();
        an_set_keys(it, row, group);
        json_object_set_new(it, "cost_usd", api_usd(row->cost_nusd));
        json_object_set_new(
            it, "share",
            json_real(an_pct((double)row->cost_nusd, (double)all)));
        json_object_set_new(it, "calls", json_integer(row->calls));
        json_object_set_new(it, "tokens", an_tokens(row));
        cost_ratios(it, row);
        json_array_append_new(arr, it);
    }
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "cost_usd", api_usd(all));
    json_object_set_new(o, member, arr);
    static const struct an_col cols[] = {
        {"cost_usd", "cost_usd", 9},
        {"share", "share", -1},
        {"calls", "calls", -1},
        AN_TOKEN_COLS,
        {"avg_cost_per_call", "avg_cost_per_call", 12},
        {"cost_per_1k_tokens", "cost_per_1k_tokens", 12}};
    int n;
    const struct an_col *all_cols =
        an_cols(&a, group, cols, (int)(sizeof(cols) / sizeof(cols[0])), &n);
    return an_send(&a, o, member, all_cols, n, name);
}

int api_cost_by_model(struct api_req *r)
{
    return cost_by(r, QRY_PROVIDER | QRY_MODEL, "models", "cost-by-model");
}

int api_cost_by_provider(struct api_req *r)
{
    return cost_by(r, QRY_PROVIDER, "providers", "cost-by-provider");
}
