/*
 * check_alert_eng.c: unit tests for the collector's alert engine
 * (collector/alert_eng.c), run without its thread on a database of its
 * own: events are fed as the main thread would (col_alert_event), each
 * turn runs at an injected time (col_alert_turn) and its transitions are
 * written (col_alert_apply); the outcomes are read back from the alerts
 * and alert_events tables.  Covered: every operator and a nested and/or
 * tree on fed events, group_by and filters, "for" (pending, firing,
 * cancelled), resolution, the no_data policies, quiet groups, percentiles,
 * the change metrics (rates: the previous window scaled to the current
 * one's length), a restart mid-firing (open alerts and the events
 * table read back) and many rules sharing one pass.
 *
 * Rules are written in C strings with ' for " (see rule_add(), LEAF).  Times
 * are fixed: T0 is 2026-03-15T12:00:00Z, a whole minute.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "collector.h"
#include "log.h"
#include "rollup.h"

#define TESTDIR_NAME "tt-alert-eng"
#include "testutil.h"

#define T0  1773576000000LL
#define MIN 60000LL
#define SEC 1000LL
#define USD 1000000000LL /* nano-USD */

/* A collector with a fresh database (workspace 1, "w1"), no live segment,
 * and the engine open without its thread. */
static void eng_init(struct col *c)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    conf_defaults(&c->conf);
    ck_assert_msg(col_store_open(&c->store, tmp_db_path(), "normal", err,
                                 sizeof(err)) == 0,
                  "col_store_open: %s", err);
    exec_sql(c->store.db, "INSERT INTO workspaces VALUES(1, 'w1', 0)");
    ck_assert_int_eq(col_alert_open(c, tmp_db_path(), 0, 0), 0);
}

static void eng_fini(struct col *c)
{
    col_alert_stop(c);
    col_store_close(&c->store);
}

/* A leaf, and groups of two leaves or groups, as rule text. */
#define LEAF(m, op, t)                                                         \
    "{'metric':'" m "','operator':'" op "','threshold':" #t "}"
#define AND(a, b) "{'op':'and','conditions':[" a "," b "]}"
#define OR(a, b)  "{'op':'or','conditions':[" a "," b "]}"

/* Parse rule text (' for ") into r; it must be valid. */
static void rule_parse(const char *text, struct alert_rule *r)
{
    char buf[2048], path[256], msg[512];
    int n = snprintf(buf, sizeof(buf), "%s", text);
    ck_assert_msg(n >= 0 && (size_t)n < sizeof(buf), "rule too long");
    for (char *p = buf; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *in = json_loads(buf, 0, &jerr);
    ck_assert_msg(in != NULL, "%s: %s", buf, jerr.text);
    ck_assert_msg(
        alert_rule_parse(in, r, path, sizeof(path), msg, sizeof(msg)) == 0,
        "%s: %s", path, msg);
    json_decref(in);
}

/* Store rule name (options opts, e.g. "'window':'1m'", and condition
 * cond; ' for ") in workspace 1 as rule_cmd.c does, as its canonical
 * JSON; returns its id. */
static int64_t rule_add(struct col *c, const char *name, const char *opts,
                        const char *cond)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "{'name':'%s',%s%s'condition':%s}", name, opts,
             opts[0] ? "," : "", cond);
    struct alert_rule r;
    rule_parse(buf, &r);
    json_t *canon = alert_rule_json(&r);
    char *spec = json_dumps(canon, JSON_COMPACT);
    char *sql = sqlite3_mprintf("INSERT INTO alert_rules(ws, name, enabled, "
                                "spec, created_ms, updated_ms) VALUES(1, "
                                "%Q, 1, %Q, 0, 0)",
                                r.name, spec);
    exec_sql(c->store.db, sql);
    sqlite3_free(sql);
    free(spec);
    json_decref(canon);
    alert_rule_free(&r);
    col_alert_rules_changed(c);
    return sqlite3_last_insert_rowid(c->store.db);
}

/* An event of workspace 1 at ts: no latency unless set. */
static struct live_event ev(int64_t ts, const char *prov, const char *model,
                            int is_error)
{
    struct live_event e;
    memset(&e, 0, sizeof(e));
    e.workspace = "w1";
    e.provider = prov;
    e.model = model;
    e.ts_ms = e.received_ms = ts;
    e.latency_ms = e.ttft_ms = -1;
    e.is_error = is_error;
    e.round = -1;
    return e;
}

/* Feed n events of (prov, model) at ts, errors or not. */
static void feed(struct col *c, int n, int64_t ts, const char *prov,
                 const char *model, int is_error)
{
    for (int i = 0; i < n; i++) {
        struct live_event e = ev(ts, prov, model, is_error);
        col_alert_event(c, 1, &e, NULL);
    }
}

/* One engine turn at now, its transitions written. */
static void turn(struct col *c, int64_t now)
{
    col_alert_turn(c, now);
    col_alert_apply(c);
}

/* q_intf and q_textf on collector c's database. */
#define qi(c, ...) q_intf((c)->store.db, __VA_ARGS__)
#define qs(c, ...) q_textf((c)->store.db, __VA_ARGS__)

/* Alerts of rule id with status (NULL: any). */
static long long n_alerts(struct col *c, int64_t id, const char *status)
{
    return qi(c,
              "SELECT count(*) FROM alerts WHERE rule_id = %lld AND (status "
              "= '%s' OR '%s' = '')",
              (long long)id, status ? status : "", status ? status : "");
}

/* The status of rule id's newest alert ("" when none). */
static const char *status_of(struct col *c, int64_t id)
{
    return qs(c,
              "SELECT coalesce(max(status), '') FROM alerts WHERE id = "
              "(SELECT max(id) FROM alerts WHERE rule_id = %lld)",
              (long long)id);
}

/* The timeline kinds of rule id's alerts, in order: "pending,firing". */
static const char *timeline(struct col *c, int64_t id)
{
    return qs(c,
              "SELECT coalesce(group_concat(kind, ','), '') FROM (SELECT "
              "e.kind FROM alert_events e JOIN alerts a ON a.id = "
              "e.alert_id WHERE a.rule_id = %lld ORDER BY e.id)",
              (long long)id);
}

/* The value of leaf i (in order written) recorded in the values_json of
 * rule id's newest alert whose group_key is key; NAN for null. */
static double leaf_value(struct col *c, int64_t id, const char *key, int i)
{
    const char *text = qs(c,
                          "SELECT values_json FROM alerts WHERE rule_id = "
                          "%lld AND group_key = '%s' ORDER BY id DESC LIMIT 1",
                          (long long)id, key);
    json_t *v = json_loads(text, 0, NULL);
    ck_assert_msg(json_is_array(v), "values_json %s", text);
    json_t *x = json_object_get(json_array_get(v, (size_t)i), "value");
    ck_assert_msg(x != NULL, "no value for leaf %d in %s", i, text);
    double d = json_is_null(x) ? NAN : json_number_value(x);
    json_decref(v);
    return d;
}

/* ---- conditions ---- */

/* Every operator on the counting metrics and nested trees: 10 requests of
 * which 3 errors in the 1m window (90 s long at T0+30s), 100 input, 50
 * output and 10 cache tokens and 0.01 USD each; 5 errors two minutes back
 * are outside it. */
START_TEST(test_operators_and_trees)
{
    static const struct {
        const char *cond;
        int fires;
    } cases[] = {
        {LEAF("errors", ">", 2), 1},
        {LEAF("errors", ">", 3), 0},
        {LEAF("errors", ">=", 3), 1},
        {LEAF("errors", ">=", 4), 0},
        {LEAF("requests", "<", 11), 1},
        {LEAF("requests", "<", 10), 0},
        {LEAF("requests", "<=", 10), 1},
        {LEAF("requests", "<=", 9), 0},
        {LEAF("error_rate", "==", 30), 1},
        {LEAF("error_rate", "==", 31), 0},
        {LEAF("error_rate", "!=", 30), 0},
        {LEAF("error_rate", "!=", 29), 1},
        {LEAF("cost", ">=", 0.1), 1},
        {LEAF("cost", ">", 0.1), 0},
        {LEAF("input_tokens", "==", 1000), 1},
        {LEAF("output_tokens", "==", 500), 1},
        {LEAF("total_tokens", "==", 1600), 1},
        {LEAF("total_tokens", ">", 1600), 0},
        {LEAF("rps", ">", 0.111), 1},
        {LEAF("rps", ">", 0.112), 0},
        {AND(LEAF("errors", ">=", 3),
             OR(LEAF("requests", ">", 100), LEAF("error_rate", ">=", 30))),
         1},
        {AND(LEAF("errors", ">=", 3),
             OR(LEAF("requests", ">", 100), LEAF("error_rate", ">", 30))),
         0},
        {OR(AND(LEAF("errors", ">", 5), LEAF("requests", ">", 1)),
            AND(LEAF("cost", "<", 1), LEAF("total_tokens", ">=", 1600))),
         1},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    struct col c;
    eng_init(&c);
    int64_t id[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        id[i] = rule_add(&c, name, "'window':'1m'", cases[i].cond);
    }
    feed(&c, 5, T0 - 2 * MIN + 5 * SEC, "p", "m", 1);
    for (int i = 0; i < 10; i++) {
        struct live_event e = ev(T0 + (5 + i) * SEC, "p", "m", i < 3);
        e.tokens[SHM_TOK_INPUT] = 100;
        e.tokens[SHM_TOK_OUTPUT] = 50;
        e.tokens[SHM_TOK_CACHE_READ] = 10;
        e.cost_nusd = USD / 100;
        col_alert_event(&c, 1, &e, NULL);
    }
    turn(&c, T0 + 30 * SEC);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(n_alerts(&c, id[i], "firing") == cases[i].fires,
                      "case %d %s: %lld firing", i, cases[i].cond,
                      n_alerts(&c, id[i], "firing"));
        ck_assert_int_eq(n_alerts(&c, id[i], NULL), cases[i].fires);
    }
    /* The values recorded: the first leaf, and rps = 10 / 90 s. */
    ck_assert(leaf_value(&c, id[0], "", 0) == 3);
    ck_assert_double_eq_tol(leaf_value(&c, id[18], "", 0), 10.0 / 90, 1e-9);
    ck_assert_double_eq_tol(leaf_value(&c, id[20], "", 2), 30, 1e-9);
    ck_assert_str_eq(timeline(&c, id[0]), "firing");
    eng_fini(&c);
}
END_TEST

/* group_by: one alert per breaking group, with its key and JSON. */
START_TEST(test_group_by)
{
    struct col c;
    eng_init(&c);
    int64_t r1 =
        rule_add(&c, "r1", "'group_by':['model']", LEAF("errors", ">=", 2));
    int64_t r2 = rule_add(&c, "r2", "'group_by':['provider','model']",
                          LEAF("error_rate", ">", 50));
    feed(&c, 5, T0 - 3 * MIN, "p1", "a", 0);
    feed(&c, 1, T0 - 3 * MIN, "p1", "a", 1);
    feed(&c, 3, T0 - 1 * MIN, "p2", "b", 1);
    feed(&c, 2, T0 + 1 * SEC, "p2", "c", 1);
    feed(&c, 2, T0 + 1 * SEC, "p2", "c", 0);
    for (int k = 0; k < 2; k++) /* a second turn changes nothing */
        turn(&c, T0 + 30 * SEC + k * 10 * SEC);
    ck_assert_int_eq(n_alerts(&c, r1, NULL), 2);
    ck_assert_int_eq(n_alerts(&c, r1, "firing"), 2);
    ck_assert_str_eq(qs(&c,
                        "SELECT group_concat(group_key || ' ' || group_json, "
                        "';') FROM (SELECT * FROM alerts WHERE rule_id = %lld "
                        "ORDER BY group_key)",
                        (long long)r1),
                     "model=b {\"model\":\"b\"};model=c {\"model\":\"c\"}");
    ck_assert(leaf_value(&c, r1, "model=b", 0) == 3);
    ck_assert(leaf_value(&c, r1, "model=c", 0) == 2);
    /* r2: b 100% > 50 fires, c 50% does not, a 1/6 does not. */
    ck_assert_int_eq(n_alerts(&c, r2, NULL), 1);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM alerts WHERE rule_id = %lld AND "
                        "status = 'firing' AND group_key = 'provider=p2' || "
                        "char(31) || 'model=b' AND group_json = "
                        "'{\"model\":\"b\",\"provider\":\"p2\"}'",
                        (long long)r2),
                     1);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM alert_events"), 3);
    eng_fini(&c);
}
END_TEST

/* Filters select the cells they name, alone and with group_by over
 * another dimension. */
START_TEST(test_filters)
{
    struct col c;
    eng_init(&c);
    int64_t f1 = rule_add(&c, "f1", "'filters':{'provider':'openai'}",
                          LEAF("errors", ">=", 1));
    int64_t f2 = rule_add(&c, "f2", "'filters':{'model':'mini'}",
                          LEAF("errors", ">=", 1));
    int64_t f3 = rule_add(&c, "f3", "'filters':{'provider':'anthropic'}",
                          LEAF("errors", ">=", 5));
    int64_t f4 =
        rule_add(&c, "f4", "'filters':{'provider':'openai','model':'mini'}",
                 LEAF("requests", "==", 3));
    int64_t f5 = rule_add(
        &c, "f5", "'filters':{'provider':'openai'},'group_by':['model']",
        LEAF("errors", ">=", 1));
    int64_t f6 = rule_add(&c, "f6", "'filters':{'model':'nope'}",
                          LEAF("requests", "==", 0));
    feed(&c, 2, T0, "openai", "gpt", 1);
    feed(&c, 3, T0, "openai", "mini", 0);
    feed(&c, 5, T0, "anthropic", "claude", 1);
    turn(&c, T0 + 30 * SEC);
    ck_assert_int_eq(n_alerts(&c, f1, "firing"), 1);
    ck_assert(leaf_value(&c, f1, "", 0) == 2); /* not 7 */
    ck_assert_int_eq(n_alerts(&c, f2, NULL), 0);
    ck_assert_int_eq(n_alerts(&c, f3, "firing"), 1);
    ck_assert_int_eq(n_alerts(&c, f4, "firing"), 1);
    ck_assert_int_eq(n_alerts(&c, f5, NULL), 1);
    ck_assert_str_eq(qs(&c,
                        "SELECT group_json FROM alerts WHERE rule_id = %lld",
                        (long long)f5),
                     "{\"model\":\"gpt\"}");
    ck_assert_int_eq(n_alerts(&c, f6, "firing"), 1);
    eng_fini(&c);
}
END_TEST

/* A rule that filters by a dimension it also groups by keeps only the
 * matching groups (the run's table holds every group of those dims). */
START_TEST(test_filter_on_grouped_dim)
{
    struct col c;
    eng_init(&c);
    int64_t g1 = rule_add(
        &c, "g1",
        "'filters':{'provider':'openai'},'group_by':['provider','model']",
        LEAF("errors", ">=", 1));
    int64_t g2 =
        rule_add(&c, "g2", "'filters':{'model':'gpt'},'group_by':['model']",
                 LEAF("errors", ">=", 1));
    feed(&c, 2, T0, "openai", "gpt", 1);
    feed(&c, 5, T0, "anthropic", "claude", 1);
    turn(&c, T0 + 30 * SEC);
    long long n1 = n_alerts(&c, g1, NULL), n2 = n_alerts(&c, g2, NULL);
    ck_assert_msg(n1 == 1 && n2 == 1, "alerts: g1 %lld, g2 %lld (want 1, 1)",
                  n1, n2);
    ck_assert_str_eq(qs(&c,
                        "SELECT group_json FROM alerts WHERE rule_id = %lld",
                        (long long)g2),
                     "{\"model\":\"gpt\"}");
    eng_fini(&c);
}
END_TEST

/* ---- the state machine on the clock ---- */

/* for 2m: pending, still pending at 60 s, firing at 120 s on the same row;
 * a pending alert whose condition clears first is deleted. */
START_TEST(test_for)
{
    struct col c;
    eng_init(&c);
    int64_t keep =
        rule_add(&c, "keep", "'window':'1m','for':'2m','filters':{'model':'y'}",
                 LEAF("errors", ">=", 1));
    int64_t gone =
        rule_add(&c, "gone", "'window':'1m','for':'2m','filters':{'model':'x'}",
                 LEAF("errors", ">=", 1));
    feed(&c, 1, T0 + 10 * SEC, "p", "x", 1);
    feed(&c, 1, T0 + 10 * SEC, "p", "y", 1); /* y: one a minute */
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, keep), "pending");
    ck_assert_str_eq(status_of(&c, gone), "pending");
    int64_t id =
        qi(&c, "SELECT id FROM alerts WHERE rule_id = %lld", (long long)keep);
    feed(&c, 1, T0 + 70 * SEC, "p", "y", 1);
    turn(&c, T0 + 90 * SEC);
    ck_assert_str_eq(status_of(&c, keep), "pending");
    ck_assert_str_eq(status_of(&c, gone), "pending"); /* x's minute is in */
    feed(&c, 1, T0 + 130 * SEC, "p", "y", 1);
    turn(&c, T0 + 150 * SEC);
    ck_assert_str_eq(status_of(&c, keep), "firing");
    ck_assert_int_eq(n_alerts(&c, keep, NULL), 1);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM alerts WHERE id = %lld AND "
                        "started_ms = %lld AND fired_ms = %lld",
                        (long long)id, T0 + 30 * SEC, T0 + 150 * SEC),
                     1);
    ck_assert_str_eq(timeline(&c, keep), "pending,firing");
    ck_assert_int_eq(n_alerts(&c, gone, NULL), 0); /* cancelled */
    eng_fini(&c);
}
END_TEST

/* Resolution: the errors leave the window; good events dilute an error
 * rate.  Then the rule can fire again, as a new alert. */
START_TEST(test_resolution)
{
    struct col c;
    eng_init(&c);
    int64_t cnt = rule_add(&c, "cnt", "'window':'1m','filters':{'model':'a'}",
                           LEAF("errors", ">=", 2));
    int64_t rate = rule_add(&c, "rate", "'window':'5m','filters':{'model':'b'}",
                            LEAF("error_rate", ">", 50));
    feed(&c, 2, T0 + 5 * SEC, "p", "a", 1);
    feed(&c, 2, T0 + 5 * SEC, "p", "b", 1);
    feed(&c, 1, T0 + 5 * SEC, "p", "b", 0);
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, cnt), "firing");
    ck_assert_str_eq(status_of(&c, rate), "firing");
    turn(&c, T0 + 90 * SEC); /* both still in their windows */
    ck_assert_str_eq(status_of(&c, cnt), "firing");
    ck_assert_str_eq(status_of(&c, rate), "firing");
    feed(&c, 10, T0 + 140 * SEC, "p", "b", 0); /* 2 / 13 */
    turn(&c, T0 + 150 * SEC);
    for (int k = 0; k < 2; k++) {
        int64_t r = k ? rate : cnt;
        ck_assert_int_eq(n_alerts(&c, r, NULL), 1);
        ck_assert_int_eq(qi(&c,
                            "SELECT count(*) FROM alerts WHERE rule_id = "
                            "%lld AND status = 'resolved' AND resolved_by = "
                            "'engine' AND resolved_ms = %lld AND fired_ms = "
                            "%lld",
                            (long long)r, T0 + 150 * SEC, T0 + 30 * SEC),
                         1);
        ck_assert_str_eq(timeline(&c, r), "firing,resolved");
    }
    ck_assert_double_eq_tol(leaf_value(&c, rate, "", 0), 200.0 / 13, 1e-6);
    feed(&c, 3, T0 + 200 * SEC, "p", "a", 1);
    turn(&c, T0 + 210 * SEC);
    ck_assert_int_eq(n_alerts(&c, cnt, NULL), 2);
    ck_assert_int_eq(n_alerts(&c, cnt, "firing"), 1);
    ck_assert_str_eq(timeline(&c, cnt), "firing,resolved,firing");
    eng_fini(&c);
}
END_TEST

/* no_data on latency_p95: events without latencies give no value; ok
 * resolves, keep keeps, alert fires (even a rule that did not hold). */
START_TEST(test_no_data)
{
    struct col c;
    eng_init(&c);
    static const char *const pol[] = {"ok", "keep", "alert"};
    int64_t r[4];
    for (int i = 0; i < 4; i++) {
        char name[16], opts[64];
        snprintf(name, sizeof(name), "n%d", i);
        snprintf(opts, sizeof(opts), "'window':'1m','no_data':'%s'",
                 pol[i < 3 ? i : 2]);
        r[i] = rule_add(&c, name, opts,
                        i < 3 ? LEAF("latency_p95", ">", 100)
                              : LEAF("latency_p95", ">", 100000));
    }
    for (int i = 0; i < 5; i++) {
        struct live_event e = ev(T0 + 5 * SEC, "p", "m", 0);
        e.latency_ms = 500;
        col_alert_event(&c, 1, &e, NULL);
    }
    turn(&c, T0 + 30 * SEC);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(status_of(&c, r[i]), "firing");
    ck_assert_int_eq(n_alerts(&c, r[3], NULL), 0);
    feed(&c, 5, T0 + 125 * SEC, "p", "m", 0); /* no latencies */
    turn(&c, T0 + 150 * SEC);
    ck_assert_str_eq(status_of(&c, r[0]), "resolved");
    ck_assert(isnan(leaf_value(&c, r[0], "", 0)));
    ck_assert_str_eq(status_of(&c, r[1]), "firing");
    ck_assert_str_eq(status_of(&c, r[2]), "firing");
    ck_assert_str_eq(status_of(&c, r[3]), "firing");
    ck_assert_str_eq(timeline(&c, r[1]), "firing");
    ck_assert_str_eq(timeline(&c, r[2]), "firing");
    for (int i = 0; i < 5; i++) { /* fast again: nothing holds */
        struct live_event e = ev(T0 + 245 * SEC, "p", "m", 0);
        e.latency_ms = 50;
        col_alert_event(&c, 1, &e, NULL);
    }
    turn(&c, T0 + 270 * SEC);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(status_of(&c, r[i]), "resolved");
        ck_assert_int_eq(n_alerts(&c, r[i], NULL), 1);
    }
    eng_fini(&c);
}
END_TEST

/* A firing group that stops sending is evaluated on zero counts and
 * resolves; "requests < 1" fires when all traffic stops. */
START_TEST(test_quiet_group)
{
    struct col c;
    eng_init(&c);
    int64_t q1 = rule_add(&c, "q1", "'window':'1m','group_by':['model']",
                          LEAF("errors", ">=", 2));
    int64_t q2 = rule_add(&c, "q2", "'window':'1m','group_by':['model']",
                          LEAF("error_rate", ">", 50));
    int64_t q3 = rule_add(&c, "q3", "'window':'1m'", LEAF("requests", "<", 1));
    feed(&c, 3, T0 + 5 * SEC, "p", "a", 1);
    feed(&c, 2, T0 + 5 * SEC, "p", "b", 0);
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, q1), "firing");
    ck_assert_str_eq(status_of(&c, q2), "firing");
    ck_assert_int_eq(n_alerts(&c, q3, NULL), 0);
    feed(&c, 2, T0 + 125 * SEC, "p", "b", 0); /* a is quiet */
    turn(&c, T0 + 150 * SEC);
    ck_assert_str_eq(status_of(&c, q1), "resolved");
    ck_assert_str_eq(status_of(&c, q2), "resolved");
    ck_assert_str_eq(qs(&c, "SELECT group_key FROM alerts WHERE rule_id = %lld",
                        (long long)q1),
                     "model=a");
    ck_assert(leaf_value(&c, q1, "model=a", 0) == 0);
    ck_assert_int_eq(n_alerts(&c, q3, NULL), 0);
    turn(&c, T0 + 270 * SEC); /* no traffic at all */
    ck_assert_str_eq(status_of(&c, q3), "firing");
    ck_assert(leaf_value(&c, q3, "", 0) == 0);
    ck_assert_int_eq(n_alerts(&c, q1, NULL), 1);
    ck_assert_int_eq(n_alerts(&c, q2, NULL), 1);
    eng_fini(&c);
}
END_TEST

/* A grouped rule that holds on no traffic fires for a group of the window
 * before that has none now ("requests < 1" by model: a model stopped). */
START_TEST(test_absent_group)
{
    struct col c;
    eng_init(&c);
    int64_t r = rule_add(&c, "stopped", "'window':'1m','group_by':['model']",
                         LEAF("requests", "<", 1));
    feed(&c, 3, T0 + 5 * SEC, "p", "a", 0);
    feed(&c, 3, T0 + 5 * SEC, "p", "b", 0);
    turn(&c, T0 + 30 * SEC);
    ck_assert_int_eq(n_alerts(&c, r, NULL), 0);
    /* At T0 + 150 s the window is T0 + 1m .. now, the one before T0 - 1m ..
     * T0 + 1m: a was there and is gone; b still sends. */
    feed(&c, 3, T0 + 125 * SEC, "p", "b", 0);
    turn(&c, T0 + 150 * SEC);
    ck_assert_int_eq(n_alerts(&c, r, NULL), 1);
    ck_assert_str_eq(qs(&c, "SELECT group_key FROM alerts WHERE rule_id = %lld",
                        (long long)r),
                     "model=a");
    ck_assert_str_eq(status_of(&c, r), "firing");
    ck_assert(leaf_value(&c, r, "model=a", 0) == 0);
    /* Then b stops too; a stays firing (its open alert). */
    turn(&c, T0 + 270 * SEC);
    ck_assert_int_eq(n_alerts(&c, r, "firing"), 2);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM alerts WHERE rule_id = %lld "
                        "AND group_key = 'model=b'",
                        (long long)r),
                     1);
    eng_fini(&c);
}
END_TEST

/* A firing group that went quiet is compared with its own previous
 * window: a fall to nothing stays a fall (-100%), not "no data". */
START_TEST(test_quiet_group_change)
{
    struct col c;
    eng_init(&c);
    int64_t r = rule_add(&c, "fall", "'window':'1m','group_by':['model']",
                         LEAF("requests_change_percent", "<", -50));
    feed(&c, 20, T0 - 2 * MIN + SEC, "p", "a", 0); /* before */
    feed(&c, 2, T0 + SEC, "p", "a", 0);            /* now */
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, r), "firing");
    ck_assert_int_eq(n_alerts(&c, r, NULL), 1);
    /* At T0 + 150 s a has nothing in its window and 2 in the one before
     * (its own: found by its dims, which only its key still holds):
     * -100%, not "no data" (which would resolve it). */
    turn(&c, T0 + 150 * SEC);
    ck_assert_str_eq(status_of(&c, r), "firing");
    ck_assert_str_eq(timeline(&c, r), "firing");
    eng_fini(&c);
}
END_TEST

/* ---- values ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* P50/P95/P99 of latency and P95 of TTFT over 200 latencies spread over
 * the 5m window's six minutes: within 1% of the exact nearest-rank
 * values; events without latency and slow events before the window do
 * not count. */
START_TEST(test_percentiles)
{
    enum { N = 200 };
    struct col c;
    eng_init(&c);
    int64_t r = rule_add(
        &c, "p", "",
        OR(OR(LEAF("latency_p50", ">", 0), LEAF("latency_p95", ">", 0)),
           OR(LEAF("latency_p99", ">", 0), LEAF("ttft_p95", ">", 0))));
    double lat[N], ttft[N];
    for (int i = 0; i < N; i++) {
        struct live_event e =
            ev(T0 - (i % 6) * MIN + (i % 50) * SEC, "p", "m", 0);
        e.latency_ms = lat[i] = 40 + (double)((i * 7919) % 1009) * 3.7;
        e.ttft_ms = ttft[i] = lat[i] / 4 + (i % 7);
        col_alert_event(&c, 1, &e, NULL);
    }
    feed(&c, 30, T0 - 2 * MIN, "p", "m", 0);
    struct live_event slow = ev(T0 - 6 * MIN, "p", "m", 0);
    slow.latency_ms = slow.ttft_ms = 90000;
    for (int i = 0; i < 20; i++)
        col_alert_event(&c, 1, &slow, NULL);
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, r), "firing");
    qsort(lat, N, sizeof(double), cmp_double);
    qsort(ttft, N, sizeof(double), cmp_double);
    /* Nearest rank ceil(q * 200): 100, 190, 198. */
    double want[4] = {lat[99], lat[189], lat[197], ttft[189]};
    for (int k = 0; k < 4; k++) {
        double got = leaf_value(&c, r, "", k);
        ck_assert_msg(fabs(got - want[k]) <= 0.01 * want[k],
                      "leaf %d: %.3f, exact %.3f", k, got, want[k]);
    }
    eng_fini(&c);
}
END_TEST

/* requests_change_percent and cost_change_percent: a 5m window (minutes
 * 0..5 back) against minutes 6..11 back, and a 1m window (0..1) against
 * 2..3, all in one run (the dims are the model). */
START_TEST(test_change)
{
    struct col c;
    eng_init(&c);
    int64_t c1 = rule_add(&c, "c1", "'filters':{'model':'a'}",
                          LEAF("requests_change_percent", ">=", 50));
    int64_t c2 = rule_add(&c, "c2", "'filters':{'model':'a'}",
                          LEAF("cost_change_percent", ">", 199));
    int64_t c3 = rule_add(&c, "c3", "'group_by':['model']",
                          LEAF("requests_change_percent", "<", -40));
    int64_t c4 = rule_add(&c, "c4", "'filters':{'model':'a'}",
                          LEAF("requests_change_percent", ">", 50));
    int64_t c5 = rule_add(&c, "c5", "'window':'1m','filters':{'model':'a'}",
                          LEAF("requests_change_percent", "==", 0));
    for (int k = 0; k <= 4; k++) /* a now: 15 requests, 3 USD */
        for (int i = 0; i < 3; i++) {
            struct live_event e = ev(T0 - k * MIN + SEC, "p", "a", 0);
            e.cost_nusd = USD / 5;
            col_alert_event(&c, 1, &e, NULL);
        }
    for (int k = 6; k <= 10; k++) /* a before: 10 requests, 1 USD */
        for (int i = 0; i < 2; i++) {
            struct live_event e = ev(T0 - k * MIN + SEC, "p", "a", 0);
            e.cost_nusd = USD / 10;
            col_alert_event(&c, 1, &e, NULL);
        }
    feed(&c, 7, T0 - 12 * MIN + SEC, "p", "a", 0); /* in neither */
    feed(&c, 5, T0 - 5 * MIN + SEC, "p", "b", 0);  /* b: 10 -> 5 */
    feed(&c, 10, T0 - 11 * MIN + SEC, "p", "b", 0);
    /* At T0 + 30s a 5m window holds 330 s (the minutes T0 - 5m .. now) and
     * is compared with the 6 whole minutes before, scaled to 330 s (rates,
     * not counts): a: 15 now against 10 * 330 / 360 = 9 (rounded). */
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, c1), "firing");
    ck_assert_double_eq_tol(leaf_value(&c, c1, "", 0), 600.0 / 9, 1e-6);
    ck_assert_str_eq(status_of(&c, c2), "firing"); /* 3 USD vs 0.9167 */
    ck_assert_double_eq_tol(leaf_value(&c, c2, "", 0),
                            (3e9 - 916666667.0) * 100 / 916666667.0, 1e-6);
    ck_assert_int_eq(n_alerts(&c, c3, NULL), 1); /* b: 5 vs 9 */
    ck_assert_double_eq_tol(leaf_value(&c, c3, "model=b", 0), -400.0 / 9, 1e-6);
    ck_assert_int_eq(n_alerts(&c, c4, NULL), 1); /* 66.7% > 50 */
    /* 1m: 6 in 90 s against 6 in the 120 s before, scaled: 4.5 -> 5. */
    ck_assert_int_eq(n_alerts(&c, c5, NULL), 0);
    eng_fini(&c);
}
END_TEST

/* Many window lengths comparing with their previous windows in one run:
 * every one gets its previous window. */
START_TEST(test_many_change_windows)
{
    struct col c;
    eng_init(&c);
    int64_t r[12];
    for (int i = 0; i < 12; i++) {
        char name[16], opts[64];
        snprintf(name, sizeof(name), "w%d", i + 1);
        snprintf(opts, sizeof(opts), "'window':'%dm'", i + 1);
        r[i] =
            rule_add(&c, name, opts, LEAF("requests_change_percent", ">", 50));
    }
    for (int k = 1; k <= 30; k++) /* one a minute, then a burst now */
        feed(&c, 1, T0 - k * MIN + SEC, "p", "m", 0);
    feed(&c, 100, T0 + SEC, "p", "m", 0);
    turn(&c, T0 + 30 * SEC);
    for (int i = 0; i < 12; i++) {
        ck_assert_msg(n_alerts(&c, r[i], "firing") == 1, "window %dm", i + 1);
        /* w whole minutes and now: 100 + w against w + 1 scaled. */
        double w = i + 1, len = w * 60 + 30;
        double prev = llround((w + 1) * len / ((w + 1) * 60));
        ck_assert_double_eq_tol(leaf_value(&c, r[i], "", 0),
                                (100 + w - prev) * 100 / prev, 1e-6);
    }
    eng_fini(&c);
}
END_TEST

/* ---- rule tests ---- */

/* The answers col_alert_tests_done hands over, by id. */
struct answers {
    uint64_t id[32];
    json_t *reply[32];
    int n;
};

static void collect(void *arg, uint64_t id, json_t *reply)
{
    struct answers *a = arg;
    ck_assert_int_lt(a->n, 32);
    a->id[a->n] = id;
    a->reply[a->n++] = json_incref(reply);
}

static void answers_free(struct answers *a)
{
    for (int i = 0; i < a->n; i++)
        json_decref(a->reply[i]);
    a->n = 0;
}

static void hour_row(struct col *c, int cube, int64_t ts, const char *prov,
                     const char *model, int calls, int errors);

/* rule.test: refused until the engine has loaded, answered by a later
 * turn through col_alert_tests_done with its id; a window over the ring
 * reads the hour sums as a pass does; too many waiting are refused. */
START_TEST(test_rule_test)
{
    struct col c;
    eng_init(&c);
    int64_t hour = 3600000LL, now = T0 + 30000;
    for (int h = 1; h <= 8; h++)
        hour_row(&c, ROLLUP_MODEL, T0 - h * hour, "p", "m", 10 * h, h);
    feed(&c, 5, T0 - 20 * MIN, "p", "m", 1);
    struct alert_rule r;
    rule_parse(
        "{'name':'t','window':'6h','group_by':['model'],'condition':" LEAF(
            "requests", ">=", 200) "}",
        &r);
    ck_assert_int_eq(col_alert_test(&c, 1, "w1", &r, 7), -1); /* loading */
    turn(&c, now);
    ck_assert_int_eq(col_alert_test(&c, 1, "w1", &r, 7), 0); /* r taken */
    struct answers a = {.n = 0};
    col_alert_tests_done(&c, collect, &a);
    ck_assert_int_eq(a.n, 0); /* not yet evaluated */
    turn(&c, now + 1000);
    col_alert_tests_done(&c, collect, &a);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_eq(a.id[0], 7);
    json_t *o = a.reply[0],
           *res = json_array_get(json_object_get(o, "results"), 0);
    ck_assert(json_is_true(json_object_get(o, "holds")));
    ck_assert_str_eq(json_string_value(json_object_get(o, "from")),
                     "2026-03-15T06:00:00.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(res, "group"), "model")),
                     "m");
    /* Hours 06:00-11:00 (200) and the ring's 5, as test_long_window. */
    ck_assert_double_eq(json_number_value(json_object_get(
                            json_object_get(res, "condition"), "value")),
                        205);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM alerts"), 0); /* none */
    answers_free(&a);
    /* A queue of 16 at most. */
    for (int i = 0; i < 17; i++) {
        struct alert_rule q;
        rule_parse("{'name':'q','window':'1m','condition':" LEAF("requests",
                                                                 ">", 0) "}",
                   &q);
        int rc = col_alert_test(&c, 1, "w1", &q, 100 + i);
        ck_assert_int_eq(rc, i < 16 ? 0 : -2);
        if (rc != 0)
            alert_rule_free(&q);
    }
    turn(&c, now + 2000);
    col_alert_tests_done(&c, collect, &a);
    ck_assert_int_eq(a.n, 16);
    answers_free(&a);
    eng_fini(&c);
}
END_TEST

/* ---- restart, many rules ---- */

/* Store an event (seq, at ts, model m, an error) as the collector would
 * have committed it. */
static void store_event(struct col *c, int seq, int64_t ts, const char *m)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO events(seq, ws, id, ts, received, provider, "
             "model, operation, input_tokens, output_tokens, "
             "cache_read_tokens, cache_write_tokens, reasoning_tokens, "
             "cost_usd, cost_source, is_error) VALUES(%d, 1, 'e%d', %lld, "
             "%lld, 'p', '%s', 'chat', 0, 0, 0, 0, 0, 0, 0, 1)",
             seq, seq, (long long)ts, (long long)ts, m);
    exec_sql(c->store.db, sql);
}

/* Stopped mid-firing and reopened on the same database: the open alerts
 * are loaded and the window is refilled from the events table, so the
 * firing alert stays one row without a new timeline entry, a pending one
 * fires on its first start's clock, and both resolve later. */
START_TEST(test_restart)
{
    struct col c;
    eng_init(&c);
    int64_t r =
        rule_add(&c, "r", "'group_by':['model']", LEAF("errors", ">=", 2));
    int64_t w = rule_add(&c, "w", "'for':'3m','filters':{'model':'n'}",
                         LEAF("errors", ">=", 1));
    int seq = 0;
    for (int i = 0; i < 3; i++) {
        feed(&c, 1, T0 + 5 * SEC, "p", "m", 1);
        store_event(&c, ++seq, T0 + 5 * SEC, "m");
    }
    feed(&c, 1, T0 + 5 * SEC, "p", "n", 1);
    store_event(&c, ++seq, T0 + 5 * SEC, "n");
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, r), "firing");
    ck_assert_str_eq(status_of(&c, w), "pending");

    col_alert_stop(&c);
    ck_assert_int_eq(col_alert_open(&c, tmp_db_path(), seq, 0), 0);
    for (int k = 0; k < 5; k++) {
        turn(&c, T0 + 90 * SEC + k * 30 * SEC);
        /* Pending since T0+30s: 3m elapse at T0+210s, the turn of k = 4
         * (a state lost in the restart would restart the clock). */
        ck_assert_str_eq(status_of(&c, w), k < 4 ? "pending" : "firing");
        ck_assert_int_eq(n_alerts(&c, r, NULL), 1);
        ck_assert_str_eq(status_of(&c, r), "firing");
        ck_assert_str_eq(timeline(&c, r), "firing");
        ck_assert_str_eq(qs(&c,
                            "SELECT group_key FROM alerts WHERE rule_id "
                            "= %lld",
                            (long long)r),
                         "model=m");
    }
    ck_assert_int_eq(n_alerts(&c, w, NULL), 1);
    ck_assert_int_eq(qi(&c, "SELECT fired_ms FROM alerts WHERE rule_id = %lld",
                        (long long)w),
                     T0 + 210 * SEC);
    ck_assert_str_eq(timeline(&c, w), "pending,firing");
    turn(&c, T0 + 7 * MIN); /* the errors have left the 5m window */
    ck_assert_str_eq(status_of(&c, r), "resolved");
    ck_assert_str_eq(status_of(&c, w), "resolved");
    ck_assert_int_eq(n_alerts(&c, r, NULL), 1);
    ck_assert_str_eq(timeline(&c, r), "firing,resolved");
    eng_fini(&c);
}
END_TEST

#define REQUESTS_EQ "{'metric':'requests','operator':'==','threshold':%d}"

/* Rules of one run (same dims) with windows of 1m to 60m: one request in
 * each of the last 71 minutes (the current one's dated ahead of the
 * clock), so a window of w minutes sees w + 1. */
START_TEST(test_shared_run)
{
    static const int win[] = {1, 2, 5, 10, 30, 60};
    enum { NW = sizeof(win) / sizeof(win[0]) };
    struct col c;
    eng_init(&c);
    int64_t hit[NW], miss[NW], rps[NW];
    for (int i = 0; i < NW; i++) {
        char name[16], opts[32], cond[128];
        snprintf(opts, sizeof(opts), "'window':'%dm'", win[i]);
        snprintf(name, sizeof(name), "h%d", i);
        snprintf(cond, sizeof(cond), REQUESTS_EQ, win[i] + 1);
        hit[i] = rule_add(&c, name, opts, cond);
        snprintf(name, sizeof(name), "m%d", i);
        snprintf(cond, sizeof(cond), REQUESTS_EQ, win[i]);
        miss[i] = rule_add(&c, name, opts, cond);
        snprintf(name, sizeof(name), "r%d", i);
        rps[i] = rule_add(&c, name, opts, LEAF("rps", ">", 0));
    }
    for (int k = 1; k <= 70; k++)
        feed(&c, 1, T0 - k * MIN + SEC, "p", "m", 0);
    /* Dated ahead of the clock: it counts in the current minute. */
    feed(&c, 1, T0 + 3 * MIN, "p", "m", 0);
    turn(&c, T0 + 30 * SEC);
    for (int i = 0; i < NW; i++) {
        ck_assert_msg(n_alerts(&c, hit[i], "firing") == 1, "window %dm",
                      win[i]);
        ck_assert(leaf_value(&c, hit[i], "", 0) == win[i] + 1);
        ck_assert_msg(n_alerts(&c, miss[i], NULL) == 0, "window %dm", win[i]);
        /* rps: w + 1 requests over w minutes and 30 s. */
        ck_assert_double_eq_tol(leaf_value(&c, rps[i], "", 0),
                                (win[i] + 1) / (win[i] * 60.0 + 30), 1e-9);
    }
    eng_fini(&c);
}
END_TEST

/* A rollup hour row of workspace 1: cube, hour start, provider, model,
 * calls, errors. */
static void hour_row(struct col *c, int cube, int64_t ts, const char *prov,
                     const char *model, int calls, int errors)
{
    char *sql = sqlite3_mprintf(
        "INSERT INTO rollups(ws, cube, res, ts, provider, model, agent, user, "
        "session, is_error, error_type, status, calls, errors, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, cost_nusd, lat_n, lat_sum, ttft_n, ttft_sum, "
        "first_ms, last_ms, lat_hist, ttft_hist) VALUES(1, %d, 3600, %lld, "
        "%Q, %Q, '', '', '', 0, '', 0, %d, %d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "
        "%lld, %lld, x'', x'')",
        cube, (long long)ts, prov, model, calls, errors, (long long)ts,
        (long long)ts);
    exec_sql(c->store.db, sql);
    sqlite3_free(sql);
}

/* A window over the ring: the hours before it come from the hour rollups
 * (whole hours, from the one holding the window's start), the rest from
 * the ring; the sums slide as time moves on by hours. */
START_TEST(test_long_window)
{
    struct col c;
    eng_init(&c);
    int64_t hour = 3600000LL, now = T0 + 30000; /* T0: 12:00:00 */
    /* 6h window at 12:00:30: hours from 06:00 up to the ring's first whole
     * hour, 11:00; the ring has 11:00 to now. */
    for (int h = 1; h <= 8; h++) {
        hour_row(&c, ROLLUP_MODEL, T0 - h * hour, "p", "m", 10 * h, h);
        hour_row(&c, ROLLUP_TOTAL, T0 - h * hour, "", "", 10 * h, h);
    }
    int64_t six =
        rule_add(&c, "six hours", "'window':'6h','group_by':['model']",
                 LEAF("requests", ">=", 200));
    int64_t errs = rule_add(&c, "six hours, errors", "'window':'6h'",
                            LEAF("errors", "==", 25));
    feed(&c, 5, T0 - 20 * 60000, "p", "m", 1); /* 11:40, in the ring */
    turn(&c, now);
    /* Hours 06:00-11:00 (h = 2..6: 20+30+40+50+60 = 200 calls, 2+..+6 = 20
     * errors; the model cube for the grouped rule, the totals cube for the
     * other) plus the ring's 5 calls, 5 errors: 205 and 25. */
    ck_assert_str_eq(qs(&c,
                        "SELECT coalesce(json_extract(values_json, "
                        "'$[0].value'), -1) FROM alerts WHERE rule_id = "
                        "%lld",
                        (long long)six),
                     "205.0");
    ck_assert_int_eq(n_alerts(&c, errs, "firing"), 1);
    /* A 3h window compares with the 3 hours before: now hours 09:00-11:00
     * (20 + 30) and the ring's 5 = 55 calls against 06:00-09:00 (60 + 50
     * + 40 = 150): -63.33%. */
    int64_t chg = rule_add(&c, "three hours change", "'window':'3h'",
                           LEAF("requests_change_percent", "<", -50));
    turn(&c, now + 1000);
    ck_assert_int_eq(n_alerts(&c, chg, "firing"), 1);
    ck_assert_str_eq(qs(&c,
                        "SELECT printf('%%.2f', json_extract(values_json, "
                        "'$[0].value')) FROM alerts WHERE rule_id = %lld",
                        (long long)chg),
                     "-63.33");
    /* An hour later the window starts at 07:00 and the ring at 12:00: the
     * sums slide, the 06:00 hour (60 calls) out and the 11:00 one (10) in;
     * the events at 11:40 are now before the ring, where the engine reads
     * the rollups (which, in this test, do not hold them): 150 calls. */
    turn(&c, now + hour);
    ck_assert_str_eq(qs(&c,
                        "SELECT json_extract(values_json, '$[0].value') "
                        "FROM alerts WHERE rule_id = %lld",
                        (long long)six),
                     "150.0");
    ck_assert_str_eq(status_of(&c, six), "resolved");
    eng_fini(&c);
}
END_TEST

/* The cooldown and renotify, seen in the outbox: a notification row per
 * channel when the state machine notifies, none inside the cooldown; a
 * renotify once its interval has passed. */
START_TEST(test_cooldown_outbox)
{
    struct col c;
    eng_init(&c);
    exec_sql(c.store.db,
             "INSERT INTO channels(id, ws, name, type, config, "
             "created_ms, updated_ms) VALUES(4, 1, 'a', 'webhook', "
             "'{}', 0, 0), (5, 1, 'b', 'in_app', '{}', 0, 0), (6, 2, "
             "'other workspace', 'in_app', '{}', 0, 0)");
    exec_sql(c.store.db, "INSERT INTO channel_routes VALUES(1, 'low', 6)");
    int64_t r = rule_add(&c, "cool",
                         "'window':'1m','cooldown':'10m','renotify':'30m',"
                         "'severity':'low','channels':[4,5]",
                         LEAF("errors", ">=", 2));
#define NOTES(ev)                                                              \
    qi(&c,                                                                     \
       "SELECT count(*) FROM notifications n JOIN alerts a ON a.id = "         \
       "n.alert_id WHERE a.rule_id = %lld AND n.event = '%s'",                 \
       (long long)r, ev)
    feed(&c, 2, T0 + 5 * SEC, "p", "m", 1);
    turn(&c, T0 + 30 * SEC);
    ck_assert_str_eq(status_of(&c, r), "firing");
    ck_assert_int_eq(NOTES("firing"), 2); /* channels 4 and 5 */
    turn(&c, T0 + 3 * MIN); /* out of the window: resolved, notified */
    ck_assert_str_eq(status_of(&c, r), "resolved");
    ck_assert_int_eq(NOTES("resolved"), 2);
    /* Again at T0 + 5m, inside the cooldown of the resolve at T0 + 3m: a
     * new alert fires, silently. */
    feed(&c, 2, T0 + 5 * MIN, "p", "m", 1);
    turn(&c, T0 + 5 * MIN + 10 * SEC);
    ck_assert_int_eq(n_alerts(&c, r, "firing"), 1);
    ck_assert_int_eq(NOTES("firing"), 2);
    /* Still holding (events every minute): a renotify once 30m have
     * passed since the last notification sent (the resolve at T0 + 3m,
     * the silent fire sent none), so at T0 + 33m, not before. */
    for (int m = 6; m <= 32; m += 1) {
        feed(&c, 2, T0 + m * MIN, "p", "m", 1);
        turn(&c, T0 + m * MIN + 10 * SEC);
    }
    ck_assert_int_eq(NOTES("renotify"), 0);
    feed(&c, 2, T0 + 33 * MIN, "p", "m", 1);
    turn(&c, T0 + 33 * MIN + 10 * SEC);
    ck_assert_int_eq(NOTES("renotify"), 2);
    ck_assert_int_eq(n_alerts(&c, r, "firing"), 1);
#undef NOTES
    eng_fini(&c);
}
END_TEST

static Suite *alert_eng_suite(void)
{
    Suite *s = suite_create("alert_eng");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_operators_and_trees);
    tcase_add_test(tc, test_group_by);
    tcase_add_test(tc, test_filters);
    tcase_add_test(tc, test_filter_on_grouped_dim);
    tcase_add_test(tc, test_long_window);
    tcase_add_test(tc, test_cooldown_outbox);
    tcase_add_test(tc, test_for);
    tcase_add_test(tc, test_resolution);
    tcase_add_test(tc, test_no_data);
    tcase_add_test(tc, test_quiet_group);
    tcase_add_test(tc, test_absent_group);
    tcase_add_test(tc, test_quiet_group_change);
    tcase_add_test(tc, test_many_change_windows);
    tcase_add_test(tc, test_rule_test);
    tcase_add_test(tc, test_percentiles);
    tcase_add_test(tc, test_change);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_shared_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("check_alert_eng", LOG_WARN, NULL);
    SRunner *sr = srunner_create(alert_eng_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
