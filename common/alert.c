/*
 * alert.c: alert rules: names, durations, validation and canonical JSON
 * (alert.h).
 */
#include "alert.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "event.h"

static const char *const alert_severities[] = {"critical", "high", "medium",
                                               "low"};
static const char *const alert_metrics[] = {"requests",
                                            "errors",
                                            "error_rate",
                                            "cost",
                                            "input_tokens",
                                            "output_tokens",
                                            "total_tokens",
                                            "rps",
                                            "latency_p50",
                                            "latency_p95",
                                            "latency_p99",
                                            "ttft_p95",
                                            "cost_change_percent",
                                            "requests_change_percent",
                                            "budget_used_percent"};
static const char *const alert_ops[] = {">", ">=", "<", "<=", "==", "!="};
static const char *const alert_no_datas[] = {"ok", "keep", "alert"};
static const char *const alert_dims[] = {"provider", "model", "agent", "user",
                                         "api_key"};

#define ALERT_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(ALERT_N(alert_metrics) == AM_NMETRICS, "metric names");
_Static_assert(ALERT_N(alert_severities) == ALERT_NSEVERITIES, "severities");
_Static_assert(ALERT_N(alert_ops) == AO_NOPS, "operators");
_Static_assert(ALERT_N(alert_dims) == AD_NDIMS, "dimensions");

static const char *alert_name_of(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : NULL;
}

static int alert_index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; s != NULL && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *alert_severity_name(int s)
{
    return alert_name_of(alert_severities, ALERT_N(alert_severities), s);
}

const char *alert_metric_name(int m)
{
    return alert_name_of(alert_metrics, ALERT_N(alert_metrics), m);
}

const char *alert_op_name(int op)
{
    return alert_name_of(alert_ops, ALERT_N(alert_ops), op);
}

const char *alert_no_data_name(int n)
{
    return alert_name_of(alert_no_datas, ALERT_N(alert_no_datas), n);
}

const char *alert_dim_name(int d)
{
    return alert_name_of(alert_dims, ALERT_N(alert_dims), d);
}

int alert_severity_parse(const char *s)
{
    return alert_index_of(alert_severities, ALERT_N(alert_severities), s);
}

int alert_metric_parse(const char *s)
{
    return alert_index_of(alert_metrics, ALERT_N(alert_metrics), s);
}

int64_t alert_duration_parse(const char *s)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    if (strcmp(s, "0") == 0)
        return 0;
    int64_t n = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        n = n * 10 + (*p - '0');
        if (n > 100000000) /* far past any limit; no overflow */
            return -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (p[0] == units[i].unit && p[1] == '\0')
            return n * units[i].ms;
    return -1;
}

void alert_duration_format(int64_t ms, char *buf, size_t n)
{
    if (ms % 86400000 == 0 && ms > 0)
        snprintf(buf, n, "%lldd", (long long)(ms / 86400000));
    else if (ms % 3600000 == 0 && ms > 0)
        snprintf(buf, n, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms > 0)
        snprintf(buf, n, "%lldm", (long long)(ms / 60000));
    else
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
}

int alert_compare(int op, double v, double t)
{
    switch (op) {
    case AO_GT:
        return v > t;
    case AO_GE:
        return v >= t;
    case AO_LT:
        return v < t;
    case AO_LE:
        return v <= t;
    case AO_EQ:
        return v == t;
    case AO_NE:
        return v != t;
    default:
        return 0;
    }
}

/* ---- validation ---- */

/* Where the parser is and what went wrong. */
struct alert_parse {
    struct alert_rule *r;
    char *path;
    size_t pathlen;
    char *msg;
    size_t msglen;
};

/* Fail at path (printf-style), saying what (quoting v when given). */
static int alert_bad(struct alert_parse *p, const char *path, const json_t *v,
                     const char *fmt, ...)
{
    char what[256], got[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (v != NULL)
        ev_describe(v, got, sizeof(got));
    snprintf(p->path, p->pathlen, "%s", path);
    snprintf(p->msg, p->msglen, "%s %s%s%s", path, what, v ? ", got " : "",
             got);
    return -1;
}

/* A string member (or NULL when absent); -1 after failing when it is not
 * a string of at most max bytes. */
static int alert_str(struct alert_parse *p, const json_t *o, const char *key,
                     const char *path, size_t max, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return alert_bad(p, path, v, "must be a string");
    if (json_string_length(v) > max)
        return alert_bad(p, path, NULL, "is longer than %zu bytes", max);
    *out = json_string_value(v);
    return 0;
}

/* A duration member into *ms (def when absent), within [lo, hi]. */
static int alert_dur(struct alert_parse *p, const json_t *o, const char *key,
                     int64_t def, int64_t lo, int64_t hi, int64_t *ms)
{
    json_t *v = json_object_get(o, key);
    *ms = def;
    if (v == NULL)
        return 0;
    int64_t d =
        json_is_string(v) ? alert_duration_parse(json_string_value(v)) : -1;
    if (d < 0)
        return alert_bad(p, key, v,
                         "must be a duration such as \"30s\", \"5m\", \"1h\" "
                         "or \"7d\"");
    if (d < lo || d > hi) {
        char a[32], b[32];
        alert_duration_format(lo, a, sizeof(a));
        alert_duration_format(hi, b, sizeof(b));
        return alert_bad(p, key, v, "must be between %s and %s", a, b);
    }
    *ms = d;
    return 0;
}

/* Parse the condition node v (at path, depth) into nodes[slot]. */
static int alert_node_parse(struct alert_parse *p, const json_t *v,
                            const char *path, int depth, int slot)
{
    struct alert_rule *r = p->r;
    struct alert_node *nd = &r->nodes[slot];
    char sub[256];
    memset(nd, 0, sizeof(*nd));
    if (!json_is_object(v))
        return alert_bad(p, path, v,
                         "must be an object: a group {\"op\", \"conditions\"} "
                         "or a condition {\"metric\", \"operator\", "
                         "\"threshold\"}");
    if (depth > ALERT_MAX_DEPTH)
        return alert_bad(p, path, NULL, "is nested deeper than %d levels",
                         ALERT_MAX_DEPTH);
    json_t *op = json_object_get(v, "op");
    if (op != NULL || json_object_get(v, "conditions") != NULL) {
        /* A group. */
        const char *ops = json_string_value(op);
        snprintf(sub, sizeof(sub), "%s.op", path);
        if (ops == NULL || (strcmp(ops, "and") != 0 && strcmp(ops, "or") != 0))
            return alert_bad(p, sub, op, "must be \"and\" or \"or\"");
        nd->kind = strcmp(ops, "and") == 0 ? AK_AND : AK_OR;
        json_t *kids = json_object_get(v, "conditions");
        snprintf(sub, sizeof(sub), "%s.conditions", path);
        if (!json_is_array(kids) || json_array_size(kids) == 0)
            return alert_bad(p, sub, kids, "must be a non-empty array");
        size_t n = json_array_size(kids);
        if (r->nnodes + (int)n > ALERT_MAX_NODES)
            return alert_bad(p, sub, NULL,
                             "makes the condition larger than %d nodes",
                             ALERT_MAX_NODES);
        nd->first = r->nnodes;
        nd->n = (int)n;
        r->nnodes += (int)n;
        const char *k;
        json_t *kv;
        json_object_foreach((json_t *)v, k, kv)
        {
            if (strcmp(k, "op") != 0 && strcmp(k, "conditions") != 0) {
                snprintf(sub, sizeof(sub), "%s.%s", path, k);
                return alert_bad(p, sub, NULL,
                                 "is not a field of a condition group");
            }
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof(sub), "%s.conditions[%zu]", path, i);
            /* nodes may not move: children refer to slots, not pointers */
            if (alert_node_parse(p, json_array_get(kids, i), sub, depth + 1,
                                 r->nodes[slot].first + (int)i) != 0)
                return -1;
        }
        return 0;
    }
    /* A leaf. */
    nd->kind = AK_LEAF;
    if (++r->nleaves > ALERT_MAX_LEAVES)
        return alert_bad(p, path, NULL,
                         "is one condition too many: at most %d in a rule",
                         ALERT_MAX_LEAVES);
    json_t *m = json_object_get(v, "metric");
    snprintf(sub, sizeof(sub), "%s.metric", path);
    nd->metric = alert_metric_parse(json_string_value(m));
    if (nd->metric < 0)
        return alert_bad(p, sub, m,
                         "must be one of requests, errors, error_rate, cost, "
                         "input_tokens, output_tokens, total_tokens, rps, "
                         "latency_p50, latency_p95, latency_p99, ttft_p95, "
                         "cost_change_percent, requests_change_percent, "
                         "budget_used_percent");
    json_t *o = json_object_get(v, "operator");
    snprintf(sub, sizeof(sub), "%s.operator", path);
    nd->op = alert_index_of(alert_ops, AO_NOPS, json_string_value(o));
    if (nd->op < 0)
        return alert_bad(p, sub, o, "must be one of >, >=, <, <=, ==, !=");
    json_t *t = json_object_get(v, "threshold");
    snprintf(sub, sizeof(sub), "%s.threshold", path);
    if (!json_is_number(t) || !isfinite(json_number_value(t)))
        return alert_bad(p, sub, t, "must be a number");
    nd->threshold = json_number_value(t);
    json_t *per = json_object_get(v, "period");
    snprintf(sub, sizeof(sub), "%s.period", path);
    if (nd->metric == AM_BUDGET_USED) {
        nd->period =
            per ? budget_period_parse(json_string_value(per)) : BUDGET_DAY;
        if (nd->period == BUDGET_NONE)
            return alert_bad(p, sub, per, "must be \"day\" or \"month\"");
    } else if (per != NULL)
        return alert_bad(p, sub, NULL, "applies only to budget_used_percent");
    const char *k;
    json_t *kv;
    json_object_foreach((json_t *)v, k, kv)
    {
        if (strcmp(k, "metric") != 0 && strcmp(k, "operator") != 0 &&
            strcmp(k, "threshold") != 0 && strcmp(k, "period") != 0) {
            snprintf(sub, sizeof(sub), "%s.%s", path, k);
            return alert_bad(p, sub, NULL, "is not a field of a condition");
        }
    }
    return 0;
}

/* A labels or annotations object: string values, copied. */
static int alert_labels(struct alert_parse *p, const json_t *in,
                        const char *key, json_t **out)
{
    json_t *v = json_object_get(in, key);
    *out = json_object();
    if (*out == NULL)
        return alert_bad(p, key, NULL, "could not be stored (out of memory)");
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return alert_bad(p, key, v, "must be an object of strings");
    if (json_object_size(v) > ALERT_MAX_LABELS)
        return alert_bad(p, key, NULL, "has more than %d entries",
                         ALERT_MAX_LABELS);
    const char *k;
    json_t *kv;
    char sub[256];
    json_object_foreach((json_t *)v, k, kv)
    {
        snprintf(sub, sizeof(sub), "%s.%.64s", key, k);
        if (k[0] == '\0' || strlen(k) > 64)
            return alert_bad(p, sub, NULL, "needs a name of 1 to 64 bytes");
        if (!json_is_string(kv))
            return alert_bad(p, sub, kv, "must be a string");
        if (json_string_length(kv) > ALERT_MAX_LABEL)
            return alert_bad(p, sub, NULL, "is longer than %d bytes",
                             ALERT_MAX_LABEL);
        json_object_set_new(*out, k, json_string(json_string_value(kv)));
    }
    return 0;
}

/* The members a rule may have. */
static const char *const alert_fields[] = {
    "name",    "description", "enabled",  "severity", "condition",
    "window",  "for",         "cooldown", "renotify", "group_by",
    "filters", "no_data",     "channels", "labels",   "annotations"};

static int alert_rule_parse_in(struct alert_parse *p, const json_t *in)
{
    struct alert_rule *r = p->r;
    const char *s;
    if (!json_is_object(in))
        return alert_bad(p, "rule", in, "must be a JSON object");
    const char *k;
    json_t *kv;
    json_object_foreach((json_t *)in, k, kv)
    {
        if (alert_index_of(alert_fields, ALERT_N(alert_fields), k) < 0) {
            char sub[96];
            snprintf(sub, sizeof(sub), "%.64s", k);
            return alert_bad(p, sub, NULL, "is not a field of a rule");
        }
    }
    if (alert_str(p, in, "name", "name", ALERT_MAX_NAME, &s) != 0)
        return -1;
    if (s == NULL || s[0] == '\0')
        return alert_bad(p, "name", json_object_get(in, "name"), "is required");
    snprintf(r->name, sizeof(r->name), "%s", s);
    if (alert_str(p, in, "description", "description", ALERT_MAX_DESC, &s) != 0)
        return -1;
    snprintf(r->description, sizeof(r->description), "%s", s ? s : "");
    json_t *en = json_object_get(in, "enabled");
    if (en != NULL && !json_is_boolean(en))
        return alert_bad(p, "enabled", en, "must be true or false");
    r->enabled = en == NULL || json_is_true(en);
    if (alert_str(p, in, "severity", "severity", 16, &s) != 0)
        return -1;
    r->severity = s ? alert_severity_parse(s) : ALERT_MEDIUM;
    if (r->severity < 0)
        return alert_bad(p, "severity", json_object_get(in, "severity"),
                         "must be one of critical, high, medium, low");
    json_t *cond = json_object_get(in, "condition");
    if (cond == NULL)
        return alert_bad(p, "condition", NULL, "is required");
    r->nnodes = 1;
    if (alert_node_parse(p, cond, "condition", 1, 0) != 0)
        return -1;
    if (alert_dur(p, in, "window", 300000, 60000, ALERT_MAX_DURATION,
                  &r->window_ms) != 0 ||
        alert_dur(p, in, "for", 0, 0, ALERT_MAX_DURATION, &r->for_ms) != 0 ||
        alert_dur(p, in, "cooldown", 0, 0, ALERT_MAX_DURATION,
                  &r->cooldown_ms) != 0 ||
        alert_dur(p, in, "renotify", 0, 0, ALERT_MAX_DURATION,
                  &r->renotify_ms) != 0)
        return -1;
    json_t *g = json_object_get(in, "group_by");
    if (g != NULL && !json_is_array(g))
        return alert_bad(p, "group_by", g,
                         "must be an array of provider, model, agent, user, "
                         "api_key");
    for (size_t i = 0; g != NULL && i < json_array_size(g); i++) {
        char sub[32];
        snprintf(sub, sizeof(sub), "group_by[%zu]", i);
        json_t *d = json_array_get(g, i);
        int dim = alert_index_of(alert_dims, AD_NDIMS, json_string_value(d));
        if (dim < 0)
            return alert_bad(p, sub, d,
                             "must be one of provider, model, agent, user, "
                             "api_key");
        if (r->group_by & (1u << dim))
            return alert_bad(p, sub, d, "is listed twice");
        r->group_by |= 1u << dim;
    }
    json_t *f = json_object_get(in, "filters");
    if (f != NULL && !json_is_object(f))
        return alert_bad(p, "filters", f, "must be an object");
    json_object_foreach(f, k, kv)
    {
        char sub[96];
        snprintf(sub, sizeof(sub), "filters.%.64s", k);
        int dim = alert_index_of(alert_dims, AD_NDIMS, k);
        if (dim < 0)
            return alert_bad(p, sub, NULL,
                             "is not a filter: provider, model, agent, user "
                             "or api_key");
        if (alert_str(p, f, k, sub, sizeof(r->filters[0]) - 1, &s) != 0)
            return -1;
        if (s[0] == '\0')
            return alert_bad(p, sub, kv, "must not be empty");
        snprintf(r->filters[dim], sizeof(r->filters[dim]), "%s", s);
    }
    if (alert_str(p, in, "no_data", "no_data", 16, &s) != 0)
        return -1;
    r->no_data =
        s ? alert_index_of(alert_no_datas, ALERT_N(alert_no_datas), s) : AND_OK;
    if (r->no_data < 0)
        return alert_bad(p, "no_data", json_object_get(in, "no_data"),
                         "must be one of ok, keep, alert");
    json_t *ch = json_object_get(in, "channels");
    if (ch != NULL && !json_is_array(ch))
        return alert_bad(p, "channels", ch, "must be an array of channel ids");
    if (json_array_size(ch) > ALERT_MAX_CHANNELS)
        return alert_bad(p, "channels", NULL, "has more than %d entries",
                         ALERT_MAX_CHANNELS);
    for (size_t i = 0; ch != NULL && i < json_array_size(ch); i++) {
        char sub[32];
        snprintf(sub, sizeof(sub), "channels[%zu]", i);
        json_t *c = json_array_get(ch, i);
        if (!json_is_integer(c) || json_integer_value(c) <= 0)
            return alert_bad(p, sub, c, "must be a channel id (an integer)");
        r->channels[r->nchannels++] = json_integer_value(c);
    }
    if (alert_labels(p, in, "labels", &r->labels) != 0 ||
        alert_labels(p, in, "annotations", &r->annotations) != 0)
        return -1;
    /* Windows over an hour read the hour rollups, which keep no API key. */
    if (r->window_ms > ALERT_MAX_KEY_WINDOW &&
        ((r->group_by & (1u << AD_API_KEY)) || r->filters[AD_API_KEY][0]))
        return alert_bad(p, "window", json_object_get(in, "window"),
                         "must be at most 1h for a rule on api_key (the "
                         "hour rollups keep no API key)");
    return 0;
}

int alert_rule_parse(const json_t *in, struct alert_rule *r, char *path,
                     size_t pathlen, char *msg, size_t msglen)
{
    struct alert_parse p = {r, path, pathlen, msg, msglen};
    memset(r, 0, sizeof(*r));
    path[0] = msg[0] = '\0';
    if (alert_rule_parse_in(&p, in) == 0)
        return 0;
    alert_rule_free(r);
    return -1;
}

void alert_rule_free(struct alert_rule *r)
{
    json_decref(r->labels);
    json_decref(r->annotations);
    r->labels = r->annotations = NULL;
}

/* ---- canonical JSON ---- */

json_t *alert_condition_json(const struct alert_rule *r, int node)
{
    const struct alert_node *nd = &r->nodes[node];
    if (nd->kind == AK_LEAF) {
        json_t *o = json_pack(
            "{s:s, s:s, s:f}", "metric", alert_metric_name(nd->metric),
            "operator", alert_op_name(nd->op), "threshold", nd->threshold);
        if (o != NULL && nd->metric == AM_BUDGET_USED)
            json_object_set_new(o, "period",
                                json_string(budget_period_name(nd->period)));
        return o;
    }
    json_t *kids = json_array();
    for (int i = 0; i < nd->n; i++)
        json_array_append_new(kids, alert_condition_json(r, nd->first + i));
    return json_pack("{s:s, s:o}", "op", nd->kind == AK_AND ? "and" : "or",
                     "conditions", kids);
}

json_t *alert_rule_json(const struct alert_rule *r)
{
    char w[32], f[32], c[32], rn[32];
    alert_duration_format(r->window_ms, w, sizeof(w));
    alert_duration_format(r->for_ms, f, sizeof(f));
    alert_duration_format(r->cooldown_ms, c, sizeof(c));
    alert_duration_format(r->renotify_ms, rn, sizeof(rn));
    json_t *g = json_array(), *fl = json_object(), *ch = json_array();
    for (int d = 0; d < AD_NDIMS; d++) {
        if (r->group_by & (1u << d))
            json_array_append_new(g, json_string(alert_dims[d]));
        if (r->filters[d][0] != '\0')
            json_object_set_new(fl, alert_dims[d], json_string(r->filters[d]));
    }
    for (int i = 0; i < r->nchannels; i++)
        json_array_append_new(ch, json_integer(r->channels[i]));
    return json_pack(
        "{s:s, s:s, s:b, s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, "
        "s:O, s:O}",
        "name", r->name, "description", r->description, "enabled", r->enabled,
        "severity", alert_severity_name(r->severity), "condition",
        alert_condition_json(r, 0), "window", w, "for", f, "cooldown", c,
        "renotify", rn, "group_by", g, "filters", fl, "no_data",
        alert_no_data_name(r->no_data), "channels", ch, "labels", r->labels,
        "annotations", r->annotations);
}

/* ---- evaluation ---- */

/* Percent change from prev to cur; NAN without a previous window or from
 * zero. */
static double alert_change(int have, int64_t prev, int64_t cur)
{
    if (!have || prev == 0)
        return NAN;
    return ((double)cur - (double)prev) * 100.0 / (double)prev;
}

double alert_metric_value(const struct alert_sample *s, int m, int period)
{
    switch (m) {
    case AM_REQUESTS:
        return (double)s->requests;
    case AM_ERRORS:
        return (double)s->errors;
    case AM_ERROR_RATE:
        return s->requests ? (double)s->errors * 100.0 / (double)s->requests
                           : NAN;
    case AM_COST:
        return (double)s->cost_nusd / 1e9;
    case AM_INPUT_TOKENS:
        return (double)s->input_tokens;
    case AM_OUTPUT_TOKENS:
        return (double)s->output_tokens;
    case AM_TOTAL_TOKENS:
        return (double)s->total_tokens;
    case AM_RPS:
        return s->window_s > 0 ? (double)s->requests / s->window_s : NAN;
    case AM_LATENCY_P50:
        return s->lat_p50;
    case AM_LATENCY_P95:
        return s->lat_p95;
    case AM_LATENCY_P99:
        return s->lat_p99;
    case AM_TTFT_P95:
        return s->ttft_p95;
    case AM_COST_CHANGE:
        return alert_change(s->have_prev, s->prev_cost_nusd, s->cost_nusd);
    case AM_REQUESTS_CHANGE:
        return alert_change(s->have_prev, s->prev_requests, s->requests);
    case AM_BUDGET_USED:
        return period >= 0 && period < 3 ? s->budget_pct[period] : NAN;
    default:
        return NAN;
    }
}

static int alert_eval_node(const struct alert_rule *r, int i,
                           const struct alert_sample *s, double *values,
                           int *verdicts)
{
    const struct alert_node *nd = &r->nodes[i];
    int v;
    double x = NAN;
    if (nd->kind == AK_LEAF) {
        x = alert_metric_value(s, nd->metric, nd->period);
        v = !isnan(x) && alert_compare(nd->op, x, nd->threshold);
    } else {
        /* Every child is evaluated (its value is shown), no short cut. */
        v = nd->kind == AK_AND;
        for (int k = 0; k < nd->n; k++) {
            int c = alert_eval_node(r, nd->first + k, s, values, verdicts);
            v = nd->kind == AK_AND ? v && c : v || c;
        }
    }
    if (values != NULL)
        values[i] = x;
    if (verdicts != NULL)
        verdicts[i] = v;
    return v;
}

int alert_eval(const struct alert_rule *r, const struct alert_sample *s,
               double *values, int *verdicts)
{
    return r->nnodes > 0 && alert_eval_node(r, 0, s, values, verdicts);
}

/* May a notification go out at now (cooldown since the last one)? */
static int alert_may_notify(const struct alert_rule *r,
                            const struct alert_state *st, int64_t now)
{
    return st->last_notified_ms == 0 ||
           now - st->last_notified_ms >= r->cooldown_ms;
}

int alert_step(const struct alert_rule *r, struct alert_state *st, int input,
               int64_t now, int *notify)
{
    *notify = 0;
    if (input == AI_NO_DATA) {
        if (r->no_data == AND_KEEP)
            return AA_NONE;
        input = r->no_data == AND_ALERT ? AI_TRUE : AI_FALSE;
    }
    switch (st->status) {
    case AS_OK:
        if (input != AI_TRUE)
            return AA_NONE;
        st->since_ms = now;
        if (r->for_ms > 0) {
            st->status = AS_PENDING;
            return AA_PENDING;
        }
        break; /* fire now */
    case AS_PENDING:
        if (input != AI_TRUE) {
            st->status = AS_OK;
            return AA_CANCEL;
        }
        if (now - st->since_ms < r->for_ms)
            return AA_NONE;
        break; /* fire */
    case AS_FIRING:
    case AS_ACKED:
        if (input != AI_TRUE) {
            st->status = AS_OK;
            *notify = 1; /* the resolution always goes out */
            st->last_notified_ms = now;
            return AA_RESOLVE;
        }
        /* Still holding: renotify a firing (not acknowledged) alert. */
        if (st->status == AS_FIRING && r->renotify_ms > 0 &&
            now - st->last_notified_ms >= r->renotify_ms &&
            alert_may_notify(r, st, now)) {
            *notify = 1;
            st->last_notified_ms = now;
            return AA_RENOTIFY;
        }
        return AA_NONE;
    default:
        return AA_NONE;
    }
    st->status = AS_FIRING;
    st->since_ms = now;
    if (alert_may_notify(r, st, now)) {
        *notify = 1;
        st->last_notified_ms = now;
    }
    return AA_FIRE;
}

/* ---- silences ---- */

/* An object of non-empty strings (labels or group) under path. */
static int alert_strmap(struct alert_parse *p, const json_t *v,
                        const char *path, json_t **out)
{
    char sub[160];
    if (!json_is_object(v) || json_object_size(v) == 0)
        return alert_bad(p, path, v,
                         "must be a non-empty object of string values");
    *out = json_object();
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        snprintf(sub, sizeof(sub), "%.80s.%.64s", path, k);
        if (!json_is_string(x) || json_string_length(x) > ALERT_MAX_LABEL)
            return alert_bad(p, sub, x, "must be a string of at most %d bytes",
                             ALERT_MAX_LABEL);
        json_object_set_new(*out, k, json_string(json_string_value(x)));
    }
    return 0;
}

static int alert_matchers_in(struct alert_parse *p, const json_t *in, json_t *o)
{
    if (!json_is_object(in) || json_object_size(in) == 0)
        return alert_bad(p, "matchers", in,
                         "must be an object with at least one of rule, "
                         "severity, labels, group");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        char path[96];
        snprintf(path, sizeof(path), "matchers.%.64s", k);
        if (strcmp(k, "rule") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0)
                return alert_bad(p, path, v, "must be a rule id");
            json_object_set_new(o, "rule", json_integer(json_integer_value(v)));
        } else if (strcmp(k, "severity") == 0) {
            if (!json_is_array(v) || json_array_size(v) == 0)
                return alert_bad(p, path, v,
                                 "must be a non-empty array of severities");
            json_t *arr = json_array();
            json_object_set_new(o, "severity", arr);
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *x = json_array_get(v, i);
                char sub[128];
                snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
                if (alert_severity_parse(json_string_value(x)) < 0)
                    return alert_bad(p, sub, x,
                                     "must be one of critical, high, medium, "
                                     "low");
                json_array_append_new(arr, json_string(json_string_value(x)));
            }
        } else if (strcmp(k, "labels") == 0 || strcmp(k, "group") == 0) {
            json_t *m = NULL;
            int rc = alert_strmap(p, v, path, &m);
            if (m != NULL)
                json_object_set_new(o, k, m);
            if (rc != 0)
                return -1;
        } else
            return alert_bad(p, path, NULL,
                             "is not a matcher: rule, severity, labels or "
                             "group");
    }
    return 0;
}

int alert_matchers_parse(const json_t *in, json_t **out, char *path,
                         size_t pathlen, char *msg, size_t msglen)
{
    struct alert_parse p = {NULL, path, pathlen, msg, msglen};
    path[0] = msg[0] = '\0';
    *out = json_object();
    if (*out != NULL && alert_matchers_in(&p, in, *out) == 0)
        return 0;
    json_decref(*out);
    *out = NULL;
    if (path[0] == '\0')
        alert_bad(&p, "matchers", NULL, "could not be stored (out of memory)");
    return -1;
}

/* Is every entry of want in have (string values equal)? */
static int alert_submap(const json_t *want, const json_t *have)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)want, k, v)
    {
        const char *h = json_string_value(json_object_get(have, k));
        if (h == NULL || strcmp(h, json_string_value(v)) != 0)
            return 0;
    }
    return 1;
}

int alert_matchers_match(const json_t *m, int64_t rule, const char *sev,
                         const json_t *labels, const json_t *group)
{
    json_t *r = json_object_get(m, "rule");
    if (r != NULL && json_integer_value(r) != rule)
        return 0;
    json_t *s = json_object_get(m, "severity");
    if (s != NULL) {
        int any = 0;
        for (size_t i = 0; !any && i < json_array_size(s); i++)
            any = strcmp(json_string_value(json_array_get(s, i)), sev) == 0;
        if (!any)
            return 0;
    }
    json_t *l = json_object_get(m, "labels");
    if (l != NULL && !alert_submap(l, labels))
        return 0;
    json_t *g = json_object_get(m, "group");
    return g == NULL || alert_submap(g, group);
}
