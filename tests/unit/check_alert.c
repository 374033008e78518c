/*
 * check_alert.c: unit tests for alert rules (common/alert.h): the names of
 * the enums both ways, durations, comparisons, validation of a rule (its
 * defaults, every field, the shape of the condition tree, its limits, and
 * the path and message of each kind of error), the canonical JSON, which
 * must read back as the same rule, and evaluation: every metric's value,
 * conditions with every node's value and verdict, and the state machine of
 * one rule x group driven by an injected clock.
 *
 * Rules are written in C strings with ' for " (see load()) so that they
 * stay readable.  Every test frees what it allocates, so the suite can run
 * under LeakSanitizer.
 */
#include "alert.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"

/* A leaf condition, and a rule made of it plus extra members. */
#define LEAF    "{'metric':'cost','operator':'>','threshold':1}"
#define RULE(x) "{'name':'r','condition':" LEAF x "}"
#define COND(c) "{'name':'r','condition':" c "}"

/* Assert that haystack contains needle, printing both. */
#define ck_assert_contains(haystack, needle)                                   \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                        \
                  "\"%s\" does not contain \"%s\"", (haystack), (needle))

/* Load JSON written with ' for "; the text must be valid. */
static json_t *load(const char *text)
{
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", s, e.text);
    free(s);
    return j;
}

/* Parse the rule in (which is released) into *r; it must be valid. */
static void parse_json_ok(json_t *in, struct alert_rule *r)
{
    char path[256], msg[512];
    ck_assert_ptr_nonnull(in);
    int rc = alert_rule_parse(in, r, path, sizeof(path), msg, sizeof(msg));
    json_decref(in);
    ck_assert_msg(rc == 0, "rejected at %s: %s", path, msg);
}

static void parse_ok(const char *text, struct alert_rule *r)
{
    parse_json_ok(load(text), r);
}

/* Parse the rule in (which is released); it must fail at path, with a
 * message naming path and containing got and says (each when not NULL).
 * A failed parse leaves nothing to free. */
static void parse_json_bad(json_t *in, const char *path, const char *got,
                           const char *says)
{
    struct alert_rule r;
    char p[256], msg[512];
    ck_assert_ptr_nonnull(in);
    int rc = alert_rule_parse(in, &r, p, sizeof(p), msg, sizeof(msg));
    json_decref(in);
    ck_assert_msg(rc == -1, "accepted, expected an error at %s", path);
    ck_assert_str_eq(p, path);
    ck_assert_contains(msg, path);
    if (got != NULL)
        ck_assert_contains(msg, got);
    if (says != NULL)
        ck_assert_contains(msg, says);
    ck_assert_ptr_null(r.labels);
    ck_assert_ptr_null(r.annotations);
}

/* A leaf {"metric": "cost", "operator": ">", "threshold": 1}. */
static json_t *leaf_json(void)
{
    return json_pack("{s:s, s:s, s:i}", "metric", "cost", "operator", ">",
                     "threshold", 1);
}

/* A condition depth levels deep: depth - 1 nested groups, then a leaf. */
static json_t *chain(int depth)
{
    json_t *n = leaf_json();
    for (int i = 1; i < depth; i++)
        n = json_pack("{s:s, s:[o]}", "op", "and", "conditions", n);
    return n;
}

/* An "or" group of n children, each a chain depth levels deep. */
static json_t *group_of(int n, int depth)
{
    json_t *kids = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(kids, chain(depth));
    return json_pack("{s:s, s:o}", "op", "or", "conditions", kids);
}

/* A rule named "r" with the condition cond (a reference it steals). */
static json_t *rule_with(json_t *cond)
{
    return json_pack("{s:s, s:o}", "name", "r", "condition", cond);
}

/* ---- names, durations, comparisons ---- */

/* Assert that name(0 .. n - 1) are the words of list, in order, that
 * parse (when given) maps each back, and that name is NULL outside. */
static void check_names(const char *(*name)(int), int (*parse)(const char *),
                        int n, const char *list)
{
    char buf[512], *save = NULL;
    int i = 0;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *w = strtok_r(buf, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save), i++) {
        ck_assert_ptr_nonnull(name(i));
        ck_assert_str_eq(name(i), w);
        if (parse != NULL)
            ck_assert_int_eq(parse(w), i);
    }
    ck_assert_int_eq(i, n);
    ck_assert_ptr_null(name(-1));
    ck_assert_ptr_null(name(n));
}

START_TEST(test_names)
{
    check_names(alert_severity_name, alert_severity_parse, ALERT_NSEVERITIES,
                "critical high medium low");
    check_names(alert_metric_name, alert_metric_parse, AM_NMETRICS,
                "requests errors error_rate cost input_tokens output_tokens "
                "total_tokens rps latency_p50 latency_p95 latency_p99 "
                "ttft_p95 cost_change_percent requests_change_percent "
                "budget_used_percent");
    check_names(alert_op_name, NULL, AO_NOPS, "> >= < <= == !=");
    check_names(alert_no_data_name, NULL, AND_ALERT + 1, "ok keep alert");
    check_names(alert_dim_name, NULL, AD_NDIMS,
                "provider model agent user api_key");

    ck_assert_int_eq(alert_severity_parse("urgent"), -1);
    ck_assert_int_eq(alert_severity_parse("HIGH"), -1);
    ck_assert_int_eq(alert_severity_parse(""), -1);
    ck_assert_int_eq(alert_severity_parse(NULL), -1);
    ck_assert_int_eq(alert_metric_parse("latency"), -1);
    ck_assert_int_eq(alert_metric_parse("cost "), -1);
    ck_assert_int_eq(alert_metric_parse(NULL), -1);
}
END_TEST

/* The names that have no parse function of their own are read by the rule
 * parser: each must come back as its enum, and go out again as its name. */
START_TEST(test_names_through_rules)
{
    struct alert_rule r;
    for (int op = 0; op < AO_NOPS; op++) {
        parse_json_ok(
            rule_with(json_pack("{s:s, s:s, s:i}", "metric", "rps", "operator",
                                alert_op_name(op), "threshold", 1)),
            &r);
        ck_assert_int_eq(r.nodes[0].op, op);
        ck_assert_int_eq(r.nodes[0].metric, AM_RPS);
        alert_rule_free(&r);
    }
    for (int d = 0; d < AD_NDIMS; d++) {
        json_t *in = rule_with(leaf_json());
        json_object_set_new(in, "group_by",
                            json_pack("[s]", alert_dim_name(d)));
        json_object_set_new(in, "filters",
                            json_pack("{s:s}", alert_dim_name(d), "x"));
        parse_json_ok(in, &r);
        ck_assert_uint_eq(r.group_by, 1u << d);
        for (int e = 0; e < AD_NDIMS; e++)
            ck_assert_str_eq(r.filters[e], e == d ? "x" : "");
        alert_rule_free(&r);
    }
    for (int n = 0; n <= AND_ALERT; n++) {
        json_t *in = rule_with(leaf_json());
        json_object_set_new(in, "no_data", json_string(alert_no_data_name(n)));
        parse_json_ok(in, &r);
        ck_assert_int_eq(r.no_data, n);
        alert_rule_free(&r);
    }
}
END_TEST

START_TEST(test_duration_parse)
{
    ck_assert_int_eq(alert_duration_parse("0"), 0);
    ck_assert_int_eq(alert_duration_parse("0s"), 0);
    ck_assert_int_eq(alert_duration_parse("30s"), 30000);
    ck_assert_int_eq(alert_duration_parse("90s"), 90000);
    ck_assert_int_eq(alert_duration_parse("5m"), 300000);
    ck_assert_int_eq(alert_duration_parse("2h"), 7200000);
    ck_assert_int_eq(alert_duration_parse("7d"), 7 * 86400000LL);
    ck_assert_int_eq(alert_duration_parse("30d"), ALERT_MAX_DURATION);

    static const char *const bad[] = {"",    "5",   "5x",   "m",         "-5m",
                                      "+5m", "5m ", " 5m",  "1.5h",      "5mm",
                                      "5M",  "00",  "0x5m", "100000001s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(alert_duration_parse(bad[i]) == -1,
                      "\"%s\" parsed as %lld", bad[i],
                      (long long)alert_duration_parse(bad[i]));
    /* Far past any limit, and past int64. */
    ck_assert_int_eq(alert_duration_parse("9999999999999999999999s"), -1);
    ck_assert_int_eq(alert_duration_parse("9223372036854775808s"), -1);
    ck_assert_int_eq(alert_duration_parse(NULL), -1);
}
END_TEST

START_TEST(test_duration_format)
{
    static const char *const round[] = {"5m", "90s", "2h",  "1d", "0s",
                                        "7d", "30d", "59s", "61m"};
    char buf[32];
    for (size_t i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
        alert_duration_format(alert_duration_parse(round[i]), buf, sizeof(buf));
        ck_assert_str_eq(buf, round[i]);
    }
    /* The largest whole unit. */
    alert_duration_format(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "0s");
    alert_duration_format(300000, buf, sizeof(buf));
    ck_assert_str_eq(buf, "5m");
    alert_duration_format(60000, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1m");
    alert_duration_format(24 * 3600000LL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1d");
    alert_duration_format(90 * 60000LL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "90m");
}
END_TEST

START_TEST(test_compare)
{
    /* For each operator: value below, equal to, above the threshold. */
    static const int want[AO_NOPS][3] = {
        [AO_GT] = {0, 0, 1}, [AO_GE] = {0, 1, 1}, [AO_LT] = {1, 0, 0},
        [AO_LE] = {1, 1, 0}, [AO_EQ] = {0, 1, 0}, [AO_NE] = {1, 0, 1}};
    static const double value[3] = {4.999, 5, 5.001};
    for (int op = 0; op < AO_NOPS; op++)
        for (int i = 0; i < 3; i++)
            ck_assert_msg(alert_compare(op, value[i], 5) == want[op][i],
                          "%g %s 5", value[i], alert_op_name(op));
    ck_assert_int_eq(alert_compare(AO_EQ, 0.0, -0.0), 1);
    ck_assert_int_eq(alert_compare(AO_LT, -1, 0), 1);
    ck_assert_int_eq(alert_compare(AO_NOPS, 1, 0), 0);
    ck_assert_int_eq(alert_compare(-1, 1, 0), 0);
}
END_TEST

/* ---- parsing ---- */

/* Assert that node n is a leaf comparing metric with threshold by op. */
static void assert_leaf(const struct alert_node *n, int metric, int op,
                        double threshold)
{
    ck_assert_int_eq(n->kind, AK_LEAF);
    ck_assert_int_eq(n->metric, metric);
    ck_assert_int_eq(n->op, op);
    ck_assert_double_eq(n->threshold, threshold);
}

/* Assert that node n is a group of kind with children [first, first + k). */
static void assert_group(const struct alert_node *n, int kind, int first, int k)
{
    ck_assert_int_eq(n->kind, kind);
    ck_assert_int_eq(n->first, first);
    ck_assert_int_eq(n->n, k);
}

START_TEST(test_minimal_defaults)
{
    struct alert_rule r;
    parse_ok(RULE(""), &r);
    ck_assert_str_eq(r.name, "r");
    ck_assert_str_eq(r.description, "");
    ck_assert_int_eq(r.enabled, 1);
    ck_assert_int_eq(r.severity, ALERT_MEDIUM);
    ck_assert_int_eq(r.nnodes, 1);
    ck_assert_int_eq(r.nleaves, 1);
    assert_leaf(&r.nodes[0], AM_COST, AO_GT, 1);
    ck_assert_int_eq(r.window_ms, 300000);
    ck_assert_int_eq(r.for_ms, 0);
    ck_assert_int_eq(r.cooldown_ms, 0);
    ck_assert_int_eq(r.renotify_ms, 0);
    ck_assert_uint_eq(r.group_by, 0);
    for (int d = 0; d < AD_NDIMS; d++)
        ck_assert_str_eq(r.filters[d], "");
    ck_assert_int_eq(r.no_data, AND_OK);
    ck_assert_int_eq(r.nchannels, 0);
    ck_assert_ptr_nonnull(r.labels);
    ck_assert_ptr_nonnull(r.annotations);
    ck_assert_int_eq(json_object_size(r.labels), 0);
    ck_assert_int_eq(json_object_size(r.annotations), 0);
    alert_rule_free(&r);
    ck_assert_ptr_null(r.labels);
}
END_TEST

/* A rule with every field, and a tree whose groups are not all at the end
 * of their parent, so that slots and written order differ. */
#define FULL                                                                   \
    "{'name':'gpt-4o errors','description':'too many errors',"                 \
    "'enabled':false,'severity':'high',"                                       \
    "'condition':{'op':'and','conditions':["                                   \
    "{'metric':'error_rate','operator':'>','threshold':5},"                    \
    "{'op':'or','conditions':["                                                \
    "{'metric':'latency_p95','operator':'>=','threshold':2000.5},"             \
    "{'metric':'budget_used_percent','operator':'>=','threshold':80,"          \
    "'period':'month'}]},"                                                     \
    "{'metric':'requests','operator':'!=','threshold':0}]},"                   \
    "'window':'10m','for':'90s','cooldown':'1h','renotify':'1d',"              \
    "'group_by':['model','provider'],"                                         \
    "'filters':{'provider':'openai','api_key':'k1'},'no_data':'alert',"        \
    "'channels':[3,1],'labels':{'team':'infra'},"                              \
    "'annotations':{'runbook':'https://x/rb'}}"

START_TEST(test_full_rule)
{
    struct alert_rule r;
    parse_ok(FULL, &r);
    ck_assert_str_eq(r.name, "gpt-4o errors");
    ck_assert_str_eq(r.description, "too many errors");
    ck_assert_int_eq(r.enabled, 0);
    ck_assert_int_eq(r.severity, ALERT_HIGH);

    /* and(error_rate, or(latency_p95, budget), requests): the root's
     * children take slots 1..3, the or's children 4..5. */
    ck_assert_int_eq(r.nnodes, 6);
    ck_assert_int_eq(r.nleaves, 4);
    assert_group(&r.nodes[0], AK_AND, 1, 3);
    assert_leaf(&r.nodes[1], AM_ERROR_RATE, AO_GT, 5);
    assert_group(&r.nodes[2], AK_OR, 4, 2);
    assert_leaf(&r.nodes[3], AM_REQUESTS, AO_NE, 0);
    assert_leaf(&r.nodes[4], AM_LATENCY_P95, AO_GE, 2000.5);
    assert_leaf(&r.nodes[5], AM_BUDGET_USED, AO_GE, 80);
    ck_assert_int_eq(r.nodes[5].period, BUDGET_MONTH);

    ck_assert_int_eq(r.window_ms, 600000);
    ck_assert_int_eq(r.for_ms, 90000);
    ck_assert_int_eq(r.cooldown_ms, 3600000);
    ck_assert_int_eq(r.renotify_ms, 86400000);
    ck_assert_uint_eq(r.group_by, (1u << AD_MODEL) | (1u << AD_PROVIDER));
    ck_assert_str_eq(r.filters[AD_PROVIDER], "openai");
    ck_assert_str_eq(r.filters[AD_API_KEY], "k1");
    ck_assert_str_eq(r.filters[AD_MODEL], "");
    ck_assert_int_eq(r.no_data, AND_ALERT);
    ck_assert_int_eq(r.nchannels, 2);
    ck_assert_int_eq(r.channels[0], 3);
    ck_assert_int_eq(r.channels[1], 1);
    ck_assert_int_eq(json_object_size(r.labels), 1);
    ck_assert_str_eq(json_string_value(json_object_get(r.labels, "team")),
                     "infra");
    ck_assert_str_eq(
        json_string_value(json_object_get(r.annotations, "runbook")),
        "https://x/rb");
    alert_rule_free(&r);
}
END_TEST

/* One bad rule: where it must fail, and what its message must contain. */
struct bad_case {
    const char *json, *path, *got, *says;
};

static const struct bad_case bad_cases[] = {
    {"[1]", "rule", "got an array", "must be a JSON object"},
    {"{'condition':" LEAF "}", "name", NULL, "is required"},
    {"{'name':5,'condition':" LEAF "}", "name", "got 5", "must be a string"},
    {"{'name':'','condition':" LEAF "}", "name", "got \"\"", "is required"},
    {RULE(",'colour':'red'"), "colour", NULL, "is not a field of a rule"},
    {RULE(",'enabled':'yes'"), "enabled", "got \"yes\"", NULL},
    {RULE(",'severity':'urgent'"), "severity", "got \"urgent\"", "critical"},
    {RULE(",'severity':2"), "severity", "got 2", NULL},
    {"{'name':'r'}", "condition", NULL, "is required"},
    {COND("[1]"), "condition", "got an array", "must be an object"},
    {COND("'cost > 1'"), "condition", "got \"cost > 1\"", NULL},
    {COND("{'op':'xor','conditions':[" LEAF "]}"), "condition.op",
     "got \"xor\"", "\"and\" or \"or\""},
    {COND("{'conditions':[" LEAF "]}"), "condition.op", NULL, "\"and\""},
    {COND("{'op':'and','conditions':[]}"), "condition.conditions",
     "got an array", "non-empty"},
    {COND("{'op':'and'}"), "condition.conditions", NULL, "non-empty"},
    {COND("{'op':'and','conditions':[5]}"), "condition.conditions[0]", "got 5",
     "must be an object"},
    {COND("{'op':'and','conditions':[" LEAF "],'metric':'cost'}"),
     "condition.metric", NULL, "is not a field of a condition group"},
    {COND("{'op':'and','conditions':[" LEAF ",{'metric':'cost',"
          "'operator':'=>','threshold':1}]}"),
     "condition.conditions[1].operator", "got \"=>\"", NULL},
    {COND("{'op':'or','conditions':[{'op':'and','conditions':[" LEAF "," LEAF
          ",{'metric':'latency','operator':'>','threshold':1}]}," LEAF "]}"),
     "condition.conditions[0].conditions[2].metric", "got \"latency\"",
     "budget_used_percent"},
    {COND("{'operator':'>','threshold':1}"), "condition.metric", NULL, NULL},
    {COND("{'metric':'cost','operator':'>','threshold':'5'}"),
     "condition.threshold", "got \"5\"", "must be a number"},
    {COND("{'metric':'cost','operator':'>'}"), "condition.threshold", NULL,
     "must be a number"},
    {COND("{'metric':'cost','operator':'>','threshold':1,'period':'day'}"),
     "condition.period", NULL, "only to budget_used_percent"},
    {COND("{'metric':'budget_used_percent','operator':'>=','threshold':80,"
          "'period':'week'}"),
     "condition.period", "got \"week\"", "\"day\" or \"month\""},
    {COND("{'metric':'budget_used_percent','operator':'>=','threshold':80,"
          "'period':5}"),
     "condition.period", "got 5", NULL},
    {COND("{'metric':'cost','operator':'>','threshold':1,'value':2}"),
     "condition.value", NULL, "is not a field of a condition"},
    {RULE(",'window':'30s'"), "window", "got \"30s\"", "between 1m and 30d"},
    {RULE(",'window':'0'"), "window", "got \"0\"", "between 1m and 30d"},
    {RULE(",'window':'31d'"), "window", "got \"31d\"", "between 1m and 30d"},
    {RULE(",'for':'soon'"), "for", "got \"soon\"", "must be a duration"},
    {RULE(",'for':60"), "for", "got 60", "must be a duration"},
    {RULE(",'cooldown':'1.5h'"), "cooldown", "got \"1.5h\"", NULL},
    {RULE(",'renotify':'721h'"), "renotify", "got \"721h\"", "30d"},
    {RULE(",'group_by':'model'"), "group_by", "got \"model\"", NULL},
    {RULE(",'group_by':['model','model']"), "group_by[1]", "got \"model\"",
     "twice"},
    {RULE(",'group_by':['model','region']"), "group_by[1]", "got \"region\"",
     "api_key"},
    {RULE(",'filters':['model']"), "filters", "got an array", NULL},
    {RULE(",'filters':{'foo':'x'}"), "filters.foo", NULL, "is not a filter"},
    {RULE(",'filters':{'model':''}"), "filters.model", "got \"\"",
     "must not be empty"},
    {RULE(",'filters':{'model':5}"), "filters.model", "got 5", NULL},
    {RULE(",'no_data':'maybe'"), "no_data", "got \"maybe\"", "ok, keep"},
    {RULE(",'channels':7"), "channels", "got 7", NULL},
    {RULE(",'channels':['1']"), "channels[0]", "got \"1\"", "channel id"},
    {RULE(",'channels':[1,0]"), "channels[1]", "got 0", NULL},
    {RULE(",'channels':[2.5]"), "channels[0]", "got 2.5", NULL},
    {RULE(",'channels':[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"),
     "channels", NULL, "more than 16"},
    {RULE(",'labels':['team']"), "labels", "got an array", NULL},
    {RULE(",'labels':{'team':5}"), "labels.team", "got 5", "must be a string"},
    {RULE(",'labels':{'':'x'}"), "labels.", NULL, "1 to 64 bytes"},
    {RULE(",'annotations':{'runbook':true}"), "annotations.runbook", "got true",
     NULL},
};

START_TEST(test_bad_rule)
{
    const struct bad_case *c = &bad_cases[_i];
    parse_json_bad(load(c->json), c->path, c->got, c->says);
}
END_TEST

START_TEST(test_string_lengths)
{
    char big[ALERT_MAX_DESC + 2];
    struct alert_rule r;

    memset(big, 'n', sizeof(big));
    big[ALERT_MAX_NAME] = '\0';
    json_t *in = rule_with(leaf_json());
    json_object_set_new(in, "name", json_string(big));
    parse_json_ok(in, &r);
    ck_assert_int_eq(strlen(r.name), ALERT_MAX_NAME);
    alert_rule_free(&r);
    big[ALERT_MAX_NAME] = 'n';
    big[ALERT_MAX_NAME + 1] = '\0';
    in = rule_with(leaf_json());
    json_object_set_new(in, "name", json_string(big));
    parse_json_bad(in, "name", NULL, "longer than 128 bytes");

    memset(big, 'd', sizeof(big));
    big[ALERT_MAX_DESC + 1] = '\0';
    in = rule_with(leaf_json());
    json_object_set_new(in, "description", json_string(big));
    parse_json_bad(in, "description", NULL, "longer than 2048 bytes");

    /* Label keys: 64 bytes at most (the path shows the first 64). */
    memset(big, 'k', sizeof(big));
    big[64] = '\0';
    in = rule_with(leaf_json());
    json_object_set_new(in, "labels", json_pack("{s:s}", big, "v"));
    parse_json_ok(in, &r);
    ck_assert_int_eq(json_object_size(r.labels), 1);
    alert_rule_free(&r);
    char path[80];
    snprintf(path, sizeof(path), "labels.%.64s", big);
    big[64] = 'k';
    big[65] = '\0';
    in = rule_with(leaf_json());
    json_object_set_new(in, "labels", json_pack("{s:s}", big, "v"));
    parse_json_bad(in, path, NULL, "1 to 64 bytes");
}
END_TEST

START_TEST(test_depth_limit)
{
    struct alert_rule r;
    parse_json_ok(rule_with(chain(ALERT_MAX_DEPTH)), &r);
    ck_assert_int_eq(r.nnodes, ALERT_MAX_DEPTH);
    ck_assert_int_eq(r.nleaves, 1);
    for (int i = 0; i < ALERT_MAX_DEPTH - 1; i++)
        assert_group(&r.nodes[i], AK_AND, i + 1, 1);
    assert_leaf(&r.nodes[ALERT_MAX_DEPTH - 1], AM_COST, AO_GT, 1);
    alert_rule_free(&r);

    parse_json_bad(rule_with(chain(ALERT_MAX_DEPTH + 1)),
                   "condition.conditions[0].conditions[0].conditions[0]"
                   ".conditions[0].conditions[0]",
                   NULL, "deeper than 5 levels");
}
END_TEST

START_TEST(test_leaf_and_node_limits)
{
    struct alert_rule r;
    parse_json_ok(rule_with(group_of(ALERT_MAX_LEAVES, 1)), &r);
    ck_assert_int_eq(r.nleaves, ALERT_MAX_LEAVES);
    ck_assert_int_eq(r.nnodes, ALERT_MAX_LEAVES + 1);
    ck_assert_int_eq(r.nodes[0].kind, AK_OR);
    ck_assert_int_eq(r.nodes[0].n, ALERT_MAX_LEAVES);
    alert_rule_free(&r);
    parse_json_bad(rule_with(group_of(ALERT_MAX_LEAVES + 1, 1)),
                   "condition.conditions[32]", NULL, "at most 32");

    /* 15 chains of 3 groups and a leaf: 61 nodes; 16 would need 65. */
    parse_json_ok(rule_with(group_of(15, 4)), &r);
    ck_assert_int_eq(r.nnodes, 61);
    ck_assert_int_eq(r.nleaves, 15);
    alert_rule_free(&r);
    parse_json_bad(rule_with(group_of(16, 4)),
                   "condition.conditions[15].conditions[0].conditions[0]"
                   ".conditions",
                   NULL, "larger than 64 nodes");
}
END_TEST

/* ---- canonical JSON ---- */

START_TEST(test_json_defaults)
{
    struct alert_rule r;
    parse_ok(RULE(""), &r);
    json_t *j = alert_rule_json(&r);
    json_t *want =
        load("{'name':'r','description':'','enabled':true,'severity':'medium',"
             "'condition':{'metric':'cost','operator':'>','threshold':1.0},"
             "'window':'5m','for':'0s','cooldown':'0s','renotify':'0s',"
             "'group_by':[],'filters':{},'no_data':'ok','channels':[],"
             "'labels':{},'annotations':{}}");
    char *got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_msg(json_equal(j, want), "got %s", got);
    free(got);
    json_decref(want);
    json_decref(j);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_json_durations_and_period)
{
    struct alert_rule r;
    parse_ok(COND("{'op':'or','conditions':[{'metric':'budget_used_percent',"
                  "'operator':'>=','threshold':80},{'metric':'cost',"
                  "'operator':'>','threshold':1}]},'window':'300s',"
                  "'for':'120m','cooldown':'24h','renotify':'90s'"),
             &r);
    ck_assert_int_eq(r.window_ms, 300000);
    ck_assert_int_eq(r.nodes[1].period, BUDGET_DAY);
    json_t *j = alert_rule_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "window")), "5m");
    ck_assert_str_eq(json_string_value(json_object_get(j, "for")), "2h");
    ck_assert_str_eq(json_string_value(json_object_get(j, "cooldown")), "1d");
    ck_assert_str_eq(json_string_value(json_object_get(j, "renotify")), "90s");
    /* The budget leaf carries its (default) period; the other has none. */
    json_t *kids =
        json_object_get(json_object_get(j, "condition"), "conditions");
    ck_assert_int_eq(json_array_size(kids), 2);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(kids, 0), "period")),
        "day");
    ck_assert_ptr_null(json_object_get(json_array_get(kids, 1), "period"));
    json_decref(j);

    /* A subtree alone. */
    j = alert_condition_json(&r, 2);
    json_t *want = load("{'metric':'cost','operator':'>','threshold':1.0}");
    ck_assert(json_equal(j, want));
    json_decref(want);
    json_decref(j);
    alert_rule_free(&r);
}
END_TEST

/* Assert that two parsed rules are the same, field by field. */
static void assert_same_rule(const struct alert_rule *a,
                             const struct alert_rule *b)
{
    ck_assert_str_eq(a->name, b->name);
    ck_assert_str_eq(a->description, b->description);
    ck_assert_int_eq(a->enabled, b->enabled);
    ck_assert_int_eq(a->severity, b->severity);
    ck_assert_int_eq(a->nnodes, b->nnodes);
    ck_assert_int_eq(a->nleaves, b->nleaves);
    for (int i = 0; i < a->nnodes; i++) {
        const struct alert_node *x = &a->nodes[i], *y = &b->nodes[i];
        ck_assert_int_eq(x->kind, y->kind);
        if (x->kind == AK_LEAF) {
            ck_assert_int_eq(x->metric, y->metric);
            ck_assert_int_eq(x->op, y->op);
            ck_assert_double_eq(x->threshold, y->threshold);
            ck_assert_int_eq(x->period, y->period);
        } else {
            ck_assert_int_eq(x->first, y->first);
            ck_assert_int_eq(x->n, y->n);
        }
    }
    ck_assert_int_eq(a->window_ms, b->window_ms);
    ck_assert_int_eq(a->for_ms, b->for_ms);
    ck_assert_int_eq(a->cooldown_ms, b->cooldown_ms);
    ck_assert_int_eq(a->renotify_ms, b->renotify_ms);
    ck_assert_uint_eq(a->group_by, b->group_by);
    for (int d = 0; d < AD_NDIMS; d++)
        ck_assert_str_eq(a->filters[d], b->filters[d]);
    ck_assert_int_eq(a->no_data, b->no_data);
    ck_assert_int_eq(a->nchannels, b->nchannels);
    for (int i = 0; i < a->nchannels; i++)
        ck_assert_int_eq(a->channels[i], b->channels[i]);
    ck_assert(json_equal(a->labels, b->labels));
    ck_assert(json_equal(a->annotations, b->annotations));
}

/* parse -> json -> parse -> json: the same rule and the same text. */
static void round_trip(const char *text)
{
    struct alert_rule a, b;
    parse_ok(text, &a);
    json_t *ja = alert_rule_json(&a);
    ck_assert_ptr_nonnull(ja);
    parse_json_ok(json_incref(ja), &b);
    assert_same_rule(&a, &b);
    json_t *jb = alert_rule_json(&b);
    ck_assert_ptr_nonnull(jb);
    char *sa = json_dumps(ja, JSON_SORT_KEYS);
    char *sb = json_dumps(jb, JSON_SORT_KEYS);
    ck_assert_str_eq(sa, sb);
    free(sa);
    free(sb);
    json_decref(ja);
    json_decref(jb);
    alert_rule_free(&a);
    alert_rule_free(&b);
}

START_TEST(test_json_round_trip)
{
    round_trip(RULE(""));
    round_trip(FULL);
    round_trip(COND("{'metric':'budget_used_percent','operator':'<',"
                    "'threshold':-2.25},'window':'30d','for':'0',"
                    "'group_by':['user','agent'],"
                    "'filters':{'user':'u \\u00e9'}"));
    round_trip(COND("{'metric':'cost','operator':'>','threshold':1},"
                    "'window':'1h','group_by':['api_key']"));
}
END_TEST

/* A rule on api_key may not look back over an hour (the hour rollups keep
 * no API key); an hour is fine, and so is a long window without it. */
START_TEST(test_api_key_window)
{
    static const char *const bad[] = {
        COND("{'metric':'cost','operator':'>','threshold':1},"
             "'window':'61m','group_by':['api_key']"),
        COND("{'metric':'cost','operator':'>','threshold':1},"
             "'window':'2h','filters':{'api_key':'k1'}")};
    for (size_t i = 0; i < 2; i++) {
        struct alert_rule r;
        char path[256], msg[512];
        json_t *in = load(bad[i]);
        ck_assert_int_eq(
            alert_rule_parse(in, &r, path, sizeof(path), msg, sizeof(msg)), -1);
        ck_assert_str_eq(path, "window");
        ck_assert_ptr_nonnull(strstr(msg, "api_key"));
        json_decref(in);
    }
}
END_TEST

/* ---- evaluation: metric values ---- */

/* Assert that x is NAN, printing it when it is not. */
#define ck_assert_nan(x)                                                       \
    do {                                                                       \
        double nan_x_ = (x);                                                   \
        ck_assert_msg(isnan(nan_x_), "%s is %g, want NAN", #x, nan_x_);        \
    } while (0)

/* A sample with no traffic: counts 0, latencies and budgets unknown. */
static struct alert_sample quiet(void)
{
    struct alert_sample s;
    memset(&s, 0, sizeof(s));
    s.window_s = 300;
    s.lat_p50 = s.lat_p95 = s.lat_p99 = s.ttft_p95 = NAN;
    s.budget_pct[0] = s.budget_pct[1] = s.budget_pct[2] = NAN;
    return s;
}

START_TEST(test_metric_counts)
{
    struct alert_sample s = quiet();
    s.requests = 200;
    s.errors = 30;
    s.input_tokens = 1000;
    s.output_tokens = 250;
    s.total_tokens = 1300; /* distinct from input + output on purpose */
    s.cost_nusd = 1234567890;
    ck_assert_double_eq(alert_metric_value(&s, AM_REQUESTS, 0), 200);
    ck_assert_double_eq(alert_metric_value(&s, AM_ERRORS, 0), 30);
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_ERROR_RATE, 0), 15,
                            1e-12);
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_COST, 0), 1.23456789,
                            1e-15);
    ck_assert_double_eq(alert_metric_value(&s, AM_INPUT_TOKENS, 0), 1000);
    ck_assert_double_eq(alert_metric_value(&s, AM_OUTPUT_TOKENS, 0), 250);
    ck_assert_double_eq(alert_metric_value(&s, AM_TOTAL_TOKENS, 0), 1300);
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_RPS, 0), 200.0 / 300,
                            1e-12);

    s.errors = 200;
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_ERROR_RATE, 0), 100,
                            1e-12);
    s.window_s = 0;
    ck_assert_nan(alert_metric_value(&s, AM_RPS, 0));

    /* No requests: an error rate cannot be said; a rate of 0 can. */
    s = quiet();
    ck_assert_nan(alert_metric_value(&s, AM_ERROR_RATE, 0));
    s.errors = 5;
    ck_assert_nan(alert_metric_value(&s, AM_ERROR_RATE, 0));
    ck_assert_double_eq(alert_metric_value(&s, AM_RPS, 0), 0);
    ck_assert_double_eq(alert_metric_value(&s, AM_COST, 0), 0);
}
END_TEST

START_TEST(test_metric_latency)
{
    struct alert_sample s = quiet();
    ck_assert_nan(alert_metric_value(&s, AM_LATENCY_P50, 0));
    ck_assert_nan(alert_metric_value(&s, AM_LATENCY_P95, 0));
    ck_assert_nan(alert_metric_value(&s, AM_LATENCY_P99, 0));
    ck_assert_nan(alert_metric_value(&s, AM_TTFT_P95, 0));
    s.lat_p50 = 12.5;
    s.lat_p95 = 80;
    s.lat_p99 = 250.75;
    s.ttft_p95 = 40.25;
    ck_assert_double_eq(alert_metric_value(&s, AM_LATENCY_P50, 0), 12.5);
    ck_assert_double_eq(alert_metric_value(&s, AM_LATENCY_P95, 0), 80);
    ck_assert_double_eq(alert_metric_value(&s, AM_LATENCY_P99, 0), 250.75);
    ck_assert_double_eq(alert_metric_value(&s, AM_TTFT_P95, 0), 40.25);
}
END_TEST

START_TEST(test_metric_change)
{
    struct alert_sample s = quiet();
    s.requests = 150;
    s.cost_nusd = 3000000000;
    s.prev_requests = 200;
    s.prev_cost_nusd = 2000000000;
    /* Without the previous window, neither change is known. */
    ck_assert_nan(alert_metric_value(&s, AM_COST_CHANGE, 0));
    ck_assert_nan(alert_metric_value(&s, AM_REQUESTS_CHANGE, 0));

    s.have_prev = 1;
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_COST_CHANGE, 0), 50,
                            1e-12);
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_REQUESTS_CHANGE, 0), -25,
                            1e-12);
    s.requests = 0;
    ck_assert_double_eq_tol(alert_metric_value(&s, AM_REQUESTS_CHANGE, 0), -100,
                            1e-12);
    s.requests = 200;
    ck_assert_double_eq(alert_metric_value(&s, AM_REQUESTS_CHANGE, 0), 0);

    /* A change from 0 has no percentage. */
    s.prev_requests = 0;
    s.prev_cost_nusd = 0;
    ck_assert_nan(alert_metric_value(&s, AM_COST_CHANGE, 0));
    ck_assert_nan(alert_metric_value(&s, AM_REQUESTS_CHANGE, 0));
}
END_TEST

START_TEST(test_metric_budget_and_unknown)
{
    struct alert_sample s = quiet();
    s.budget_pct[BUDGET_DAY] = 42.5;
    s.budget_pct[BUDGET_MONTH] = 97;
    ck_assert_double_eq(alert_metric_value(&s, AM_BUDGET_USED, BUDGET_DAY),
                        42.5);
    ck_assert_double_eq(alert_metric_value(&s, AM_BUDGET_USED, BUDGET_MONTH),
                        97);
    ck_assert_nan(alert_metric_value(&s, AM_BUDGET_USED, 3));
    ck_assert_nan(alert_metric_value(&s, AM_BUDGET_USED, -1));
    s.budget_pct[BUDGET_MONTH] = NAN;
    ck_assert_nan(alert_metric_value(&s, AM_BUDGET_USED, BUDGET_MONTH));
    ck_assert_double_eq(alert_metric_value(&s, AM_BUDGET_USED, BUDGET_DAY),
                        42.5);

    s.requests = 7;
    ck_assert_nan(alert_metric_value(&s, AM_NMETRICS, 0));
    ck_assert_nan(alert_metric_value(&s, -1, 0));
}
END_TEST

/* ---- evaluation: conditions ---- */

START_TEST(test_eval_operators)
{
    /* For each operator: 4, 5, 6 requests against a threshold of 5. */
    static const int want[AO_NOPS][3] = {
        [AO_GT] = {0, 0, 1}, [AO_GE] = {0, 1, 1}, [AO_LT] = {1, 0, 0},
        [AO_LE] = {1, 1, 0}, [AO_EQ] = {0, 1, 0}, [AO_NE] = {1, 0, 1}};
    struct alert_rule r;
    struct alert_sample s = quiet();
    for (int op = 0; op < AO_NOPS; op++) {
        parse_json_ok(
            rule_with(json_pack("{s:s, s:s, s:i}", "metric", "requests",
                                "operator", alert_op_name(op), "threshold", 5)),
            &r);
        for (int i = 0; i < 3; i++) {
            double value = -1;
            int verdict = -1;
            s.requests = 4 + i;
            int got = alert_eval(&r, &s, &value, &verdict);
            ck_assert_msg(got == want[op][i], "%d %s 5: got %d",
                          (int)s.requests, alert_op_name(op), got);
            ck_assert_int_eq(verdict, got);
            ck_assert_double_eq(value, (double)s.requests);
        }
        alert_rule_free(&r);
    }
}
END_TEST

START_TEST(test_eval_nan_never_holds)
{
    struct alert_rule r;
    struct alert_sample s = quiet(); /* no latencies, no requests */
    for (int op = 0; op < AO_NOPS; op++) {
        static const char *const metric[] = {"latency_p95", "error_rate",
                                             "budget_used_percent"};
        for (int m = 0; m < 3; m++) {
            parse_json_ok(rule_with(json_pack(
                              "{s:s, s:s, s:i}", "metric", metric[m],
                              "operator", alert_op_name(op), "threshold", 100)),
                          &r);
            double value = 0;
            int verdict = -1;
            ck_assert_msg(alert_eval(&r, &s, &value, &verdict) == 0,
                          "NAN %s 100 held for %s", alert_op_name(op),
                          metric[m]);
            ck_assert_int_eq(verdict, 0);
            ck_assert_nan(value);
            alert_rule_free(&r);
        }
    }
}
END_TEST

/* and(or(requests > 5, and(errors >= 3, cost > 1)),
 *     or(latency_p95 != 0, and(rps < 1, or(error_rate == 20,
 *                                          total_tokens > 0))),
 *     input_tokens <= 100): five levels, groups of both kinds whose first
 * child fails while a later one holds, and the reverse. */
#define TREE                                                                   \
    COND("{'op':'and','conditions':["                                          \
         "{'op':'or','conditions':["                                           \
         "{'metric':'requests','operator':'>','threshold':5},"                 \
         "{'op':'and','conditions':["                                          \
         "{'metric':'errors','operator':'>=','threshold':3},"                  \
         "{'metric':'cost','operator':'>','threshold':1}]}]},"                 \
         "{'op':'or','conditions':["                                           \
         "{'metric':'latency_p95','operator':'!=','threshold':0},"             \
         "{'op':'and','conditions':["                                          \
         "{'metric':'rps','operator':'<','threshold':1},"                      \
         "{'op':'or','conditions':["                                           \
         "{'metric':'error_rate','operator':'==','threshold':20},"             \
         "{'metric':'total_tokens','operator':'>','threshold':0}]}]}]},"       \
         "{'metric':'input_tokens','operator':'<=','threshold':100}]}")

/* Evaluate r on s and compare every node's value and verdict with want
 * (groups must get NAN, whatever the arrays held before). */
static void assert_eval(const struct alert_rule *r,
                        const struct alert_sample *s, int verdict,
                        const double *value, const int *want)
{
    double values[ALERT_MAX_NODES];
    int verdicts[ALERT_MAX_NODES];
    for (int i = 0; i < ALERT_MAX_NODES; i++) {
        values[i] = -12345;
        verdicts[i] = -1;
    }
    ck_assert_int_eq(alert_eval(r, s, values, verdicts), verdict);
    ck_assert_int_eq(alert_eval(r, s, NULL, NULL), verdict);
    for (int i = 0; i < r->nnodes; i++) {
        ck_assert_msg(verdicts[i] == want[i], "node %d: verdict %d, want %d", i,
                      verdicts[i], want[i]);
        if (r->nodes[i].kind != AK_LEAF || isnan(value[i]))
            ck_assert_msg(isnan(values[i]), "node %d: value %g, want NAN", i,
                          values[i]);
        else
            ck_assert_msg(fabs(values[i] - value[i]) < 1e-9,
                          "node %d: value %g, want %g", i, values[i], value[i]);
    }
}

START_TEST(test_eval_tree)
{
    struct alert_rule r;
    parse_ok(TREE, &r);
    /* Children get their slots together, then each subtree in turn. */
    ck_assert_int_eq(r.nnodes, 14);
    assert_group(&r.nodes[0], AK_AND, 1, 3);
    assert_group(&r.nodes[1], AK_OR, 4, 2);
    assert_group(&r.nodes[2], AK_OR, 8, 2);
    assert_leaf(&r.nodes[3], AM_INPUT_TOKENS, AO_LE, 100);
    assert_leaf(&r.nodes[4], AM_REQUESTS, AO_GT, 5);
    assert_group(&r.nodes[5], AK_AND, 6, 2);
    assert_leaf(&r.nodes[6], AM_ERRORS, AO_GE, 3);
    assert_leaf(&r.nodes[7], AM_COST, AO_GT, 1);
    assert_leaf(&r.nodes[8], AM_LATENCY_P95, AO_NE, 0);
    assert_group(&r.nodes[9], AK_AND, 10, 2);
    assert_leaf(&r.nodes[10], AM_RPS, AO_LT, 1);
    assert_group(&r.nodes[11], AK_OR, 12, 2);
    assert_leaf(&r.nodes[12], AM_ERROR_RATE, AO_EQ, 20);
    assert_leaf(&r.nodes[13], AM_TOTAL_TOKENS, AO_GT, 0);

    struct alert_sample s = quiet();
    s.requests = 10;
    s.errors = 2; /* error rate 20% */
    s.cost_nusd = 1500000000;
    s.window_s = 100; /* 0.1 rps */
    s.input_tokens = 100;
    /* The and at 5 fails on its first child (errors), yet cost is shown;
     * the or at 1 holds on its first child, yet its second is evaluated;
     * latency is NAN, so != 0 does not hold and the or at 2 needs 9. */
    static const double v1[14] = {NAN, NAN, NAN, 100, 10,  NAN, 2,
                                  1.5, NAN, NAN, 0.1, NAN, 20,  0};
    static const int w1[14] = {1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 0};
    assert_eval(&r, &s, 1, v1, w1);

    /* Now every branch of the root but the last fails. */
    s.requests = 5;
    s.errors = 4; /* 80% */
    s.cost_nusd = 900000000;
    s.window_s = 2.5; /* 2 rps */
    s.total_tokens = 9;
    static const double v2[14] = {NAN, NAN, NAN, 100, 5,   NAN, 4,
                                  0.9, NAN, NAN, 2,   NAN, 80,  9};
    static const int w2[14] = {0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1};
    assert_eval(&r, &s, 0, v2, w2);
    alert_rule_free(&r);
}
END_TEST

/* ---- evaluation: the state machine ---- */

#define T0  1700000000000LL /* any clock but 0, which means "never" */
#define MIN 60000LL

static const char *const action_names[] = {"none", "pending",  "cancel",
                                           "fire", "renotify", "resolve"};

/* Step st with input at T0 + at ms; it must decide action and notify. */
static void step(const struct alert_rule *r, struct alert_state *st, int input,
                 int64_t at, int action, int notify)
{
    int n = -1;
    int a = alert_step(r, st, input, T0 + at, &n);
    ck_assert_msg(a == action && n == notify,
                  "input %d at T0%+lld: %s notify %d, want %s notify %d", input,
                  (long long)at,
                  a >= 0 && a <= AA_RESOLVE ? action_names[a] : "?", n,
                  action_names[action], notify);
}

/* Assert st is {status, T0 + since, T0 + last} (last -T0: never). */
static void assert_state(const struct alert_state *st, int status,
                         int64_t since, int64_t last)
{
    ck_assert_int_eq(st->status, status);
    ck_assert_int_eq(st->since_ms, T0 + since);
    ck_assert_int_eq(st->last_notified_ms, T0 + last);
}

START_TEST(test_step_fire_at_once)
{
    struct alert_rule r;
    struct alert_state st = {AS_OK, 0, 0};
    parse_ok(RULE(""), &r);
    step(&r, &st, AI_FALSE, 0, AA_NONE, 0);
    ck_assert_int_eq(st.status, AS_OK);
    step(&r, &st, AI_TRUE, MIN, AA_FIRE, 1);
    assert_state(&st, AS_FIRING, MIN, MIN);
    step(&r, &st, AI_TRUE, 2 * MIN, AA_NONE, 0);
    step(&r, &st, AI_FALSE, 3 * MIN, AA_RESOLVE, 1);
    assert_state(&st, AS_OK, MIN, 3 * MIN);
    step(&r, &st, AI_FALSE, 4 * MIN, AA_NONE, 0);

    /* An acknowledged alert resolves, with a notification. */
    st = (struct alert_state){AS_ACKED, T0, T0};
    step(&r, &st, AI_TRUE, MIN, AA_NONE, 0);
    ck_assert_int_eq(st.status, AS_ACKED);
    step(&r, &st, AI_FALSE, 2 * MIN, AA_RESOLVE, 1);
    assert_state(&st, AS_OK, 0, 2 * MIN);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_step_for)
{
    struct alert_rule r;
    struct alert_state st = {AS_OK, 0, 0};
    parse_ok(RULE(",'for':'2m'"), &r);
    step(&r, &st, AI_TRUE, 0, AA_PENDING, 0);
    assert_state(&st, AS_PENDING, 0, -T0);
    step(&r, &st, AI_TRUE, MIN, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 2 * MIN - 1, AA_NONE, 0);
    ck_assert_int_eq(st.status, AS_PENDING);
    step(&r, &st, AI_TRUE, 2 * MIN, AA_FIRE, 1);
    ck_assert_int_eq(st.status, AS_FIRING);
    ck_assert_int_eq(st.last_notified_ms, T0 + 2 * MIN);

    /* Pending that stops holding is cancelled quietly, and the next
     * pending counts for from its own start. */
    st = (struct alert_state){AS_OK, 0, 0};
    step(&r, &st, AI_TRUE, 0, AA_PENDING, 0);
    step(&r, &st, AI_FALSE, MIN, AA_CANCEL, 0);
    assert_state(&st, AS_OK, 0, -T0);
    step(&r, &st, AI_TRUE, 90000, AA_PENDING, 0);
    assert_state(&st, AS_PENDING, 90000, -T0);
    step(&r, &st, AI_TRUE, 90000 + 2 * MIN - 1, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 90000 + 2 * MIN, AA_FIRE, 1);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_step_renotify)
{
    struct alert_rule r;
    struct alert_state st = {AS_OK, 0, 0};
    parse_ok(RULE(",'renotify':'1h'"), &r);
    step(&r, &st, AI_TRUE, 0, AA_FIRE, 1);
    step(&r, &st, AI_TRUE, 60 * MIN - 1, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 60 * MIN, AA_RENOTIFY, 1);
    assert_state(&st, AS_FIRING, 0, 60 * MIN);
    step(&r, &st, AI_TRUE, 90 * MIN, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 120 * MIN, AA_RENOTIFY, 1);

    /* Acknowledged: never again while it holds. */
    st.status = AS_ACKED;
    step(&r, &st, AI_TRUE, 300 * MIN, AA_NONE, 0);
    assert_state(&st, AS_ACKED, 0, 120 * MIN);
    alert_rule_free(&r);

    /* renotify 0: never. */
    parse_ok(RULE(""), &r);
    st = (struct alert_state){AS_OK, 0, 0};
    step(&r, &st, AI_TRUE, 0, AA_FIRE, 1);
    step(&r, &st, AI_TRUE, 29 * 1440 * MIN, AA_NONE, 0);
    alert_rule_free(&r);

    /* A cooldown longer than the interval holds renotification back. */
    parse_ok(RULE(",'renotify':'1h','cooldown':'2h'"), &r);
    st = (struct alert_state){AS_OK, 0, 0};
    step(&r, &st, AI_TRUE, 0, AA_FIRE, 1);
    step(&r, &st, AI_TRUE, 60 * MIN, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 120 * MIN - 1, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 120 * MIN, AA_RENOTIFY, 1);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_step_cooldown)
{
    struct alert_rule r;
    struct alert_state st = {AS_OK, 0, 0};
    parse_ok(RULE(",'cooldown':'15m'"), &r);
    step(&r, &st, AI_TRUE, 0, AA_FIRE, 1);
    step(&r, &st, AI_FALSE, MIN, AA_RESOLVE, 1); /* the last notification */
    struct alert_state later = st;

    /* Within the cooldown: it fires, silently. */
    step(&r, &st, AI_TRUE, 16 * MIN - 1, AA_FIRE, 0);
    assert_state(&st, AS_FIRING, 16 * MIN - 1, MIN);

    /* Once the cooldown has passed: it notifies. */
    step(&r, &later, AI_TRUE, 16 * MIN, AA_FIRE, 1);
    assert_state(&later, AS_FIRING, 16 * MIN, 16 * MIN);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_step_no_data)
{
    struct alert_rule r;
    struct alert_state st;

    /* ok: as not holding. */
    parse_ok(RULE(",'for':'2m'"), &r);
    st = (struct alert_state){AS_OK, 0, 0};
    step(&r, &st, AI_NO_DATA, 0, AA_NONE, 0);
    st = (struct alert_state){AS_PENDING, T0, 0};
    step(&r, &st, AI_NO_DATA, MIN, AA_CANCEL, 0);
    st = (struct alert_state){AS_FIRING, T0, T0};
    step(&r, &st, AI_NO_DATA, MIN, AA_RESOLVE, 1);
    assert_state(&st, AS_OK, 0, MIN);
    alert_rule_free(&r);

    /* keep: nothing moves, whatever the state and however late. */
    parse_ok(RULE(",'for':'2m','renotify':'1h','no_data':'keep'"), &r);
    for (int status = AS_OK; status <= AS_ACKED; status++) {
        st = (struct alert_state){status, T0, T0};
        step(&r, &st, AI_NO_DATA, 1440 * MIN, AA_NONE, 0);
        assert_state(&st, status, 0, 0);
    }
    alert_rule_free(&r);

    /* alert: as holding, for included. */
    parse_ok(RULE(",'for':'2m','no_data':'alert'"), &r);
    st = (struct alert_state){AS_OK, 0, 0};
    step(&r, &st, AI_NO_DATA, 0, AA_PENDING, 0);
    step(&r, &st, AI_NO_DATA, MIN, AA_NONE, 0);
    step(&r, &st, AI_NO_DATA, 2 * MIN, AA_FIRE, 1);
    step(&r, &st, AI_NO_DATA, 3 * MIN, AA_NONE, 0);
    ck_assert_int_eq(st.status, AS_FIRING);
    step(&r, &st, AI_FALSE, 4 * MIN, AA_RESOLVE, 1);
    alert_rule_free(&r);
}
END_TEST

START_TEST(test_step_restart)
{
    struct alert_rule r;
    parse_ok(RULE(",'for':'2m','cooldown':'15m','renotify':'1h'"), &r);
    /* As loaded after a restart: firing for 10m, notified then. */
    struct alert_state st = {AS_FIRING, T0 - 10 * MIN, T0 - 10 * MIN};
    step(&r, &st, AI_TRUE, 0, AA_NONE, 0);
    assert_state(&st, AS_FIRING, -10 * MIN, -10 * MIN);
    step(&r, &st, AI_TRUE, 50 * MIN - 1, AA_NONE, 0);
    step(&r, &st, AI_TRUE, 50 * MIN, AA_RENOTIFY, 1);
    step(&r, &st, AI_FALSE, 51 * MIN, AA_RESOLVE, 1);
    assert_state(&st, AS_OK, -10 * MIN, 51 * MIN);
    alert_rule_free(&r);
}
END_TEST

/* Silence matchers: validation paths, canonical form, matching. */
START_TEST(test_matchers)
{
    char path[256], msg[512];
    json_t *out = NULL;
    static const struct {
        const char *in, *path;
    } bad[] = {
        {"{}", "matchers"},
        {"[]", "matchers"},
        {"{\"rule\": 0}", "matchers.rule"},
        {"{\"rule\": \"1\"}", "matchers.rule"},
        {"{\"severity\": []}", "matchers.severity"},
        {"{\"severity\": [\"high\", \"urgent\"]}", "matchers.severity[1]"},
        {"{\"labels\": {}}", "matchers.labels"},
        {"{\"labels\": {\"team\": 5}}", "matchers.labels.team"},
        {"{\"group\": \"x\"}", "matchers.group"},
        {"{\"color\": 1}", "matchers.color"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *in = load(bad[i].in);
        ck_assert_int_eq(alert_matchers_parse(in, &out, path, sizeof(path), msg,
                                              sizeof(msg)),
                         -1);
        ck_assert_ptr_null(out);
        ck_assert_msg(strcmp(path, bad[i].path) == 0, "%s: path %s, want %s",
                      bad[i].in, path, bad[i].path);
        ck_assert_ptr_nonnull(strstr(msg, bad[i].path));
        json_decref(in);
    }
    json_t *in = load("{\"rule\": 7, \"severity\": [\"low\", \"high\"], "
                      "\"labels\": {\"team\": \"infra\"}, \"group\": "
                      "{\"model\": \"m1\"}}");
    ck_assert_int_eq(
        alert_matchers_parse(in, &out, path, sizeof(path), msg, sizeof(msg)),
        0);
    json_t *labels = load("{\"team\": \"infra\", \"tier\": \"1\"}");
    json_t *group = load("{\"model\": \"m1\", \"user\": \"ann\"}");
    json_t *other = load("{\"model\": \"m2\"}");
    ck_assert(alert_matchers_match(out, 7, "high", labels, group));
    ck_assert(!alert_matchers_match(out, 8, "high", labels, group));
    ck_assert(!alert_matchers_match(out, 7, "critical", labels, group));
    ck_assert(!alert_matchers_match(out, 7, "high", NULL, group));
    ck_assert(!alert_matchers_match(out, 7, "high", labels, other));
    json_t *only = load("{\"severity\": [\"low\"]}");
    json_t *m2 = NULL;
    ck_assert_int_eq(
        alert_matchers_parse(only, &m2, path, sizeof(path), msg, sizeof(msg)),
        0);
    ck_assert(alert_matchers_match(m2, 0, "low", NULL, other));
    ck_assert(!alert_matchers_match(m2, 0, "medium", NULL, other));
    json_t *objs[] = {in, out, labels, group, other, only, m2};
    for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++)
        json_decref(objs[i]);
}
END_TEST

static Suite *alert_suite(void)
{
    Suite *s = suite_create("alert");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_names_through_rules);
    tcase_add_test(tc, test_duration_parse);
    tcase_add_test(tc, test_duration_format);
    tcase_add_test(tc, test_compare);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse");
    tcase_add_test(tc, test_minimal_defaults);
    tcase_add_test(tc, test_full_rule);
    tcase_add_loop_test(tc, test_bad_rule, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_string_lengths);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_leaf_and_node_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, test_json_defaults);
    tcase_add_test(tc, test_json_durations_and_period);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_api_key_window);
    suite_add_tcase(s, tc);
    tc = tcase_create("silences");
    tcase_add_test(tc, test_matchers);
    suite_add_tcase(s, tc);
    tc = tcase_create("eval");
    tcase_add_test(tc, test_metric_counts);
    tcase_add_test(tc, test_metric_latency);
    tcase_add_test(tc, test_metric_change);
    tcase_add_test(tc, test_metric_budget_and_unknown);
    tcase_add_test(tc, test_eval_operators);
    tcase_add_test(tc, test_eval_nan_never_holds);
    tcase_add_test(tc, test_eval_tree);
    tcase_add_test(tc, test_step_fire_at_once);
    tcase_add_test(tc, test_step_for);
    tcase_add_test(tc, test_step_renotify);
    tcase_add_test(tc, test_step_cooldown);
    tcase_add_test(tc, test_step_no_data);
    tcase_add_test(tc, test_step_restart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(alert_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
