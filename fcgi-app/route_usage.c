/*
 * route_usage.c: the usage analytics of the key's workspace.
 *
 *   GET /api/v1/usage/overview      calls, errors, unique users, active
 *                                   agents, calls per user, tokens
 *   GET /api/v1/usage/timeseries    calls, errors and tokens per bucket,
 *                                   optionally per provider, model, agent
 *                                   or user (group_by=)
 *   GET /api/v1/usage/distribution  the same totals per agent, provider,
 *                                   model or user (by=), largest first
 *   GET /api/v1/usage/top-users     the users with the most calls (limit=)
 *
 * All take the common parameters (analytics.h) and read through the query
 * engine (query.h), one read transaction per answer.
 */
#include "analytics.h"

#include <string.h>

/* The measure columns of a usage row in CSV. */
static const struct an_col usage_cols[] = {
    {"calls", "calls", -1}, {"errors", "errors", -1}, AN_TOKEN_COLS};

#define USAGE_NCOLS (int)(sizeof(usage_cols) / sizeof(usage_cols[0]))

/* calls, errors and tokens of r as members of o. */
static void usage_measures(json_t *o, const struct qry_row *r)
{
    json_object_set_new(o, "calls", json_integer(r->calls));
    json_object_set_new(o, "errors", json_integer(r->errors));
    json_object_set_new(o, "tokens", an_tokens(r));
}

int api_usage_overview(struct api_req *r)
{
    struct an_req a;
    struct qry_result tot;
    struct qry_people who;
    if (an_start(r, &a, NULL, 0) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, 0, 0, 0, &tot) != 0 ||
        an_distinct(&a, &who) != 0)
        return -1;
    static const struct qry_row zero = {0};
    const struct qry_row *t = tot.n ? &tot.rows[0] : &zero;
    int64_t user_calls = t->calls - who.anon_calls;
    int64_t nusers = who.users, nagents = who.agents;
    json_t *o = an_envelope(&a);
    usage_measures(o, t);
    json_object_set_new(o, "unique_users", json_integer(nusers));
    json_object_set_new(o, "active_agents", json_integer(nagents));
    json_object_set_new(o, "calls_per_user",
                        json_real(nusers ? (double)user_calls / nusers : 0.0));
    static const struct an_col cols[] = {
        {"from", "from", -1},
        {"to", "to", -1},
        {"calls", "calls", -1},
        {"errors", "errors", -1},
        {"unique_users", "unique_users", -1},
        {"active_agents", "active_agents", -1},
        {"calls_per_user", "calls_per_user", -1},
        AN_TOKEN_COLS};
    return an_send(&a, o, NULL, cols, (int)(sizeof(cols) / sizeof(cols[0])),
                   "usage-overview");
}

/* an_point_fn: the usage measures. */
static void usage_point(json_t *p, const struct qry_row *r, int64_t ts,
                        void *ctx)
{
    (void)ts;
    (void)ctx;
    usage_measures(p, r);
}

int api_usage_timeseries(struct api_req *r)
{
    static const char *const groups[] = {"provider", "model", "agent",
                                         "user",     "none",  NULL};
    struct an_req a;
    struct qry_result res;
    unsigned group;
    json_t *o;
    if (an_series(r, &a, groups, "none", &group, &res, &o) != 0)
        return -1;
    json_object_set_new(o, "points",
                        an_points(&a, &res, group, usage_point, NULL));
    struct an_col cols[USAGE_NCOLS + 1] = {{"ts", "ts", -1}};
    memcpy(cols + 1, usage_cols, sizeof(usage_cols));
    int n;
    const struct an_col *all = an_cols(&a, group, cols, USAGE_NCOLS + 1, &n);
    return an_send(&a, o, "points", all, n, "usage-timeseries");
}

/* The usage totals of the grouped rows res as an array of objects, each
 * with its share of all calls. */
static json_t *usage_items(const struct qry_result *res, unsigned group,
                           size_t limit)
{
    int64_t all = 0;
    for (size_t i = 0; i < res->n; i++)
        all += res->rows[i].calls;
    json_t *arr = json_array();
    for (size_t i = 0; i < res->n && i < limit; i++) {
        const struct qry_row *row = &res->rows[i];
        json_t *it = json_object();
        an_set_keys(it, row, group);
        usage_measures(it, row);
        json_object_set_new(it, "share",
                            json_real(an_pct((double)row->calls, (double)all)));
        json_object_set_new(it, "cost_usd", api_usd(row->cost_nusd));
        json_array_append_new(arr, it);
    }
    return arr;
}

/* The CSV columns of usage_items rows. */
static const struct an_col *usage_item_cols(struct an_req *a, unsigned group,
                                            int *n)
{
    struct an_col cols[USAGE_NCOLS + 2];
    memcpy(cols, usage_cols, sizeof(usage_cols));
    cols[USAGE_NCOLS] = (struct an_col){"share", "share", -1};
    cols[USAGE_NCOLS + 1] = (struct an_col){"cost_usd", "cost_usd", 9};
    return an_cols(a, group, cols, USAGE_NCOLS + 2, n);
}

int api_usage_distribution(struct api_req *r)
{
    static const char *const extra[] = {"by", NULL};
    static const char *const dims[] = {"provider", "model", "agent", "user",
                                       NULL};
    struct an_req a;
    struct qry_result res;
    unsigned group;
    const char *by;
    if (an_start(r, &a, extra, 0) != 0 ||
        an_parse_dim(&a, "by", "model", dims, &group, &by) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, group, 0, 0, &res) != 0)
        return -1;
    an_sort(&res, AN_BY_CALLS);
    int64_t calls = 0;
    for (size_t i = 0; i < res.n; i++)
        calls += res.rows[i].calls;
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "by", json_string(by));
    json_object_set_new(o, "calls", json_integer(calls));
    json_object_set_new(o, "items", usage_items(&res, group, res.n));
    int n;
    const struct an_col *cols = usage_item_cols(&a, group, &n);
    char name[48];
    snprintf(name, sizeof(name), "usage-distribution-%s", by);
    return an_send(&a, o, "items", cols, n, name);
}

int api_usage_top_users(struct api_req *r)
{
    static const char *const extra[] = {"limit", NULL};
    struct an_req a;
    struct qry_result res;
    long limit;
    if (an_start(r, &a, extra, 0) != 0 ||
        api_parse_limit(r, 10, 1000, &limit) != 0 ||
        an_run(&a, a.rg.from_ms, a.rg.to_ms, 0, QRY_USER, 0, 0, &res) != 0)
        return -1;
    /* Calls without a user are not anyone's: leave them out. */
    size_t n = 0;
    for (size_t i = 0; i < res.n; i++)
        if (res.rows[i].user[0] != '\0')
            res.rows[n++] = res.rows[i];
    res.n = n;
    an_sort(&res, AN_BY_CALLS);
    json_t *o = an_envelope(&a);
    json_object_set_new(o, "users", usage_items(&res, QRY_USER, (size_t)limit));
    int nc;
    const struct an_col *cols = usage_item_cols(&a, QRY_USER, &nc);
    return an_send(&a, o, "users", cols, nc, "usage-top-users");
}
