/*
 * check_budget.c: unit tests for the budget arithmetic (common/budget.h)
 * and the collector's budget tracker (collector/budget.c): UTC period
 * boundaries, threshold parsing and crossing, scopes, spend cells read
 * from hand-filled rollups plus the raw tail, and the tracker's counting,
 * its crossings recorded and published once per period (also across a
 * reload, which is what a restart does), and its period rollover.
 *
 * Tracker tests run on a database of their own (the collector's schema)
 * and a small live segment named "/tt-test-budget-<pid>-<n>", with a fake
 * clock: the tracker takes "now" from its callers.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "budget.h"
#include "collector.h"
#include "log.h"

#define TESTDIR_NAME "tt-budget"
#include "testutil.h"

#define DAY BUDGET_DAY_MS
/* 2026-03-15T12:00:00Z and the days around it. */
#define MAR15     1773576000000LL
#define MAR15_DAY 1773532800000LL
#define MAR01     1772323200000LL
#define APR01     1775001600000LL
#define NUSD(usd) ((int64_t)((usd)*1000000000.0 + 0.5))

/* Insert a raw event: workspace id, ts, provider, model, cost. */
static void add_event(sqlite3 *db, int64_t seq, int ws, int64_t ts,
                      const char *prov, const char *model, double usd)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO events(seq, ws, id, ts, received, provider, "
             "model, operation, input_tokens, output_tokens, "
             "cache_read_tokens, cache_write_tokens, reasoning_tokens, "
             "cost_usd, cost_source, is_error) VALUES(%lld, %d, 'e%lld', "
             "%lld, %lld, '%s', '%s', 'chat', 0, 0, 0, 0, 0, %.9f, 0, 0)",
             (long long)seq, ws, (long long)seq, (long long)ts, (long long)ts,
             prov, model, usd);
    exec_sql(db, sql);
}

/* Insert a rollup row of cube/res at ts with a cost. */
static void add_rollup(sqlite3 *db, int ws, int cube, int res, int64_t ts,
                       const char *prov, const char *model, int64_t nusd)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO rollups VALUES(%d, %d, %d, %lld, '%s', '%s', '', "
             "'', '', 0, '', 0, 1, 0, 0, 0, 0, 0, 0, %lld, 0, 0, 0, 0, "
             "%lld, %lld, x'', x'')",
             ws, cube, res, (long long)ts, prov, model, (long long)nusd,
             (long long)ts, (long long)ts);
    exec_sql(db, sql);
}

/* ---- periods, thresholds, scopes ---- */

START_TEST(test_day_bounds)
{
    int64_t s, e;
    budget_period_bounds(BUDGET_DAY, MAR15, &s, &e);
    ck_assert_int_eq(s, MAR15_DAY);
    ck_assert_int_eq(e, MAR15_DAY + DAY);
    budget_period_bounds(BUDGET_DAY, MAR15_DAY, &s, &e); /* 00:00:00.000 */
    ck_assert_int_eq(s, MAR15_DAY);
    budget_period_bounds(BUDGET_DAY, MAR15_DAY - 1, &s, &e); /* 23:59:59.999 */
    ck_assert_int_eq(s, MAR15_DAY - DAY);
    ck_assert_int_eq(e, MAR15_DAY);
}
END_TEST

START_TEST(test_month_bounds)
{
    int64_t s, e;
    budget_period_bounds(BUDGET_MONTH, MAR15, &s, &e);
    ck_assert_int_eq(s, MAR01);
    ck_assert_int_eq(e, APR01);
    budget_period_bounds(BUDGET_MONTH, APR01 - 1, &s, &e);
    ck_assert_int_eq(s, MAR01);
    budget_period_bounds(BUDGET_MONTH, APR01, &s, &e);
    ck_assert_int_eq(s, APR01);
    /* December rolls into the next January; February of a leap year. */
    budget_period_bounds(BUDGET_MONTH, 1798675200000LL, &s,
                         &e);             /* 2026-12-31 */
    ck_assert_int_eq(s, 1796083200000LL); /* 12-01 */
    ck_assert_int_eq(e, 1798761600000LL); /* 2027-01-01 */
    budget_period_bounds(BUDGET_MONTH, 1835308800000LL, &s,
                         &e); /* 2028-02-28 */
    ck_assert_int_eq((e - s) / DAY, 29);
    budget_period_bounds(BUDGET_MONTH, 1803772800000LL, &s,
                         &e); /* 2027-02-28 */
    ck_assert_int_eq((e - s) / DAY, 28);
}
END_TEST

START_TEST(test_thresholds)
{
    int t[BUDGET_MAX_THRESHOLDS];
    char buf[64];
    ck_assert_int_eq(budget_thresholds_parse("80,95,100", t), 3);
    ck_assert_int_eq(t[0], 80);
    ck_assert_int_eq(t[2], 100);
    budget_thresholds_format(t, 3, buf, sizeof(buf));
    ck_assert_str_eq(buf, "80,95,100");
    ck_assert_int_eq(budget_thresholds_parse("1,1000", t), 2);
    ck_assert_int_eq(budget_thresholds_parse("1,2,3,4,5,6,7,8", t), 8);
    const char *bad[] = {"",  "95,80", "80,80",
                         "0", "1001",  "80,",
                         "a", "80;95", "1,2,3,4,5,6,7,8,9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(budget_thresholds_parse(bad[i], t) == -1, "\"%s\"",
                      bad[i]);
    ck_assert_int_eq(budget_period_parse("day"), BUDGET_DAY);
    ck_assert_int_eq(budget_period_parse("month"), BUDGET_MONTH);
    ck_assert_int_eq(budget_period_parse("week"), BUDGET_NONE);
}
END_TEST

START_TEST(test_crossed_and_scope)
{
    ck_assert(budget_crossed(80, 100, 80));
    ck_assert(!budget_crossed(79, 100, 80));
    ck_assert(budget_crossed(NUSD(0.8), NUSD(1), 80));
    /* Large limits do not overflow. */
    int64_t big = NUSD(1e9);
    ck_assert(budget_crossed(big, big, 100));
    ck_assert(!budget_crossed(big - 1, big, 100));
    ck_assert(budget_crossed(big * 9, big, 900));
    ck_assert(budget_scope_match("", "", "p", "m"));
    ck_assert(budget_scope_match("p", "", "p", "m"));
    ck_assert(!budget_scope_match("p", "", "q", "m"));
    ck_assert(budget_scope_match("", "m", "q", "m"));
    ck_assert(!budget_scope_match("p", "m", "p", "n"));
}
END_TEST

/* ---- spend cells ---- */

/* A collector with its database in tmpdir and, if seg, a live segment. */
static void col_init(struct col *c, int seg)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    ck_assert_msg(col_store_open(&c->store, tmp_db_path(), "normal", err,
                                 sizeof(err)) == 0,
                  "col_store_open: %s", err);
    exec_sql(c->store.db, "INSERT INTO workspaces VALUES(1, 'w1', 0);"
                          "INSERT INTO workspaces VALUES(2, 'w2', 0)");
    if (!seg)
        return;
    struct shm_params p = {.nslots = 16,
                           .nseconds = 60,
                           .hist_entries = 16,
                           .feed_size = 4,
                           .ring_size = 16,
                           .budget_slots = 8};
    char path[64];
    snprintf(path, sizeof(path), "/tt-test-budget-%d", (int)getpid());
    c->live = live_open(path, &p, 1, MAR15);
    ck_assert_ptr_nonnull(c->live);
}

static void col_fini(struct col *c)
{
    char name[64];
    col_budget_close(c);
    if (c->live != NULL) {
        live_close(c->live);
        snprintf(name, sizeof(name), "/tt-test-budget-%d", (int)getpid());
        shm_unlink(name);
    }
    col_store_close(&c->store);
}

/* Day rollups up to rollup_seq, then the raw events after it; other cubes
 * and resolutions, other workspaces and days outside the range are not
 * read. */
START_TEST(test_cells_rollups_plus_tail)
{
    struct col c;
    col_init(&c, 0);
    sqlite3 *db = c.store.db;
    add_rollup(db, 1, 0, 86400, MAR15_DAY, "p", "m", NUSD(1.5));
    add_rollup(db, 1, 0, 86400, MAR15_DAY, "p", "n", NUSD(0.25));
    add_rollup(db, 1, 0, 86400, MAR15_DAY - DAY, "p", "m", NUSD(7));
    add_rollup(db, 1, 0, 3600, MAR15_DAY, "p", "m", NUSD(100));
    add_rollup(db, 1, 2, 86400, MAR15_DAY, "p", "m", NUSD(100));
    add_rollup(db, 2, 0, 86400, MAR15_DAY, "p", "m", NUSD(100));
    for (int i = 1; i <= 5; i++) /* in the rollups already */
        add_event(db, i, 1, MAR15, "p", "m", 100);
    exec_sql(db, "INSERT INTO meta VALUES('rollup_seq', 5)");
    add_event(db, 6, 1, MAR15, "p", "m", 0.125);
    add_event(db, 7, 1, MAR15 + DAY, "p", "m", 0.5);
    add_event(db, 8, 2, MAR15, "p", "m", 100);
    add_event(db, 9, 1, MAR15_DAY - 1, "q", "m", 3);

    struct budget_cells cells;
    memset(&cells, 0, sizeof(cells));
    ck_assert_int_eq(
        budget_cells_load(db, 1, MAR15_DAY, MAR15_DAY + 2 * DAY, &cells),
        SQLITE_OK);
    ck_assert_int_eq(cells.rollup_seq, 5);
    ck_assert_int_eq(
        budget_cells_sum(&cells, "", "", MAR15_DAY, MAR15_DAY + DAY),
        NUSD(1.5) + NUSD(0.25) + NUSD(0.125));
    ck_assert_int_eq(
        budget_cells_sum(&cells, "p", "m", MAR15_DAY, MAR15_DAY + 2 * DAY),
        NUSD(1.5) + NUSD(0.125) + NUSD(0.5));
    ck_assert_int_eq(
        budget_cells_sum(&cells, "", "n", MAR15_DAY, MAR15_DAY + 2 * DAY),
        NUSD(0.25));
    ck_assert_int_eq(budget_cells_sum(&cells, "q", "", 0, INT64_MAX), 0);
    budget_cells_free(&cells);
    col_fini(&c);
}
END_TEST

/* ---- the tracker ---- */

/* Insert a budget row for workspace 1. */
static void add_budget(sqlite3 *db, int id, const char *period,
                       const char *prov, const char *model, double limit,
                       const char *thr)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO budgets VALUES(%d, 1, '%s', '%s', '%s', %lld, "
             "'%s', 0, 0)",
             id, period, prov, model, (long long)NUSD(limit), thr);
    exec_sql(db, sql);
}

/* A committed event of workspace ws. */
static struct live_event ev(const char *ws, const char *prov, const char *model,
                            int64_t ts, double usd)
{
    struct live_event e;
    memset(&e, 0, sizeof(e));
    e.workspace = ws;
    e.provider = prov;
    e.model = model;
    e.ts_ms = ts;
    e.received_ms = ts;
    e.cost_nusd = NUSD(usd);
    e.round = -1;
    return e;
}

/* The live slot of budget id (asserted present). */
static struct shm_budget slot_of(struct col *c, int64_t id)
{
    struct shm_budget out[8];
    int n = shm_read_budgets(live_header(c->live), NULL, out, 8);
    for (int i = 0; i < n; i++)
        if (out[i].id == id)
            return out[i];
    ck_abort_msg("no live slot for budget %lld", (long long)id);
    return out[0];
}

/* Ring entries of type budget written so far. */
/* The budget entries of the event ring (each fresh crossing also opens or
 * raises the budget's alert, an SHM_RING_ALERT entry). */
static uint64_t ring_count(struct col *c)
{
    uint64_t head = atomic_load(&live_header(c->live)->ring_head), n = 0;
    for (uint64_t i = 0; i < head; i++)
        n += shm_ring(live_header(c->live), i)->type == SHM_RING_BUDGET;
    return n;
}

/* Events count when in the period, the scope and the workspace. */
START_TEST(test_tracker_counts_scope_and_period)
{
    struct col c;
    col_init(&c, 1);
    add_budget(c.store.db, 1, "day", "", "", 10, "80,95,100");
    add_budget(c.store.db, 2, "day", "p", "", 10, "80");
    add_budget(c.store.db, 3, "month", "", "m", 10, "80");
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    struct live_event es[] = {
        ev("w1", "p", "m", MAR15, 1),            /* 1, 2, 3 */
        ev("w1", "q", "m", MAR15_DAY, 0.5),      /* 1, 3 */
        ev("w1", "p", "n", MAR15_DAY - 1, 0.25), /* none: yesterday */
        ev("w1", "q", "n", MAR15_DAY + DAY, 4),  /* none: tomorrow */
        ev("w1", "p", "m", MAR01, 0.125),        /* 3 */
        ev("w2", "p", "m", MAR15, 8),            /* none: other ws */
        ev("w1", "p", "m", APR01, 8),            /* none: next month */
    };
    for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++)
        col_budget_event(&c, &es[i]);
    ck_assert_int_eq(slot_of(&c, 1).spend_nusd, NUSD(1.5));
    ck_assert_int_eq(slot_of(&c, 2).spend_nusd, NUSD(1));
    ck_assert_int_eq(slot_of(&c, 3).spend_nusd, NUSD(1.625));
    struct shm_budget s = slot_of(&c, 3);
    ck_assert_int_eq(s.period_start_ms, MAR01);
    ck_assert_int_eq(s.period_end_ms, APR01);
    ck_assert_int_eq(s.limit_nusd, NUSD(10));
    ck_assert_str_eq(s.workspace, "w1");
    ck_assert_int_eq(s.crossed, 0);
    col_fini(&c);
}
END_TEST

/* A crossing is recorded and published once; a reload (a restart) finds
 * it recorded and publishes nothing; the next threshold fires once. */
START_TEST(test_tracker_crossing_once)
{
    struct col c;
    col_init(&c, 1);
    sqlite3 *db = c.store.db;
    add_budget(db, 7, "day", "p", "", 1, "50,80,100");
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    uint64_t r0 = ring_count(&c);
    struct live_event a = ev("w1", "p", "m", MAR15, 0.3);
    col_budget_event(&c, &a);
    ck_assert_int_eq(slot_of(&c, 7).crossed, 0);
    col_budget_event(&c, &a); /* 0.6: 50% */
    ck_assert_int_eq(slot_of(&c, 7).crossed, 1);
    ck_assert_int_eq(ring_count(&c), r0); /* not before it is written */
    ck_assert_int_eq(col_budget_flush(&c), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM budget_crossings"), 1);
    ck_assert_int_eq(q_int(db, "SELECT spend_nusd FROM budget_crossings "
                               "WHERE threshold = 50"),
                     NUSD(0.6));
    ck_assert_int_eq(q_int(db, "SELECT period_start_ms FROM "
                               "budget_crossings"),
                     MAR15_DAY);
    ck_assert_int_eq(ring_count(&c), r0 + 1);
    const struct shm_ring_ent *re = shm_ring(live_header(c.live), r0);
    ck_assert_int_eq(re->type, SHM_RING_BUDGET);
    /* The crossing opened the budget's alert (50%: low), published next. */
    ck_assert_int_eq(shm_ring(live_header(c.live), r0 + 1)->type,
                     SHM_RING_ALERT);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM alerts WHERE rule_id = "
                               "-7 AND status = 'firing' AND severity = 'low'"),
                     1);
    ck_assert_str_eq(re->workspace, "w1");
    json_t *j = json_loads(re->json, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "budget")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "threshold")), 50);
    ck_assert_str_eq(json_string_value(json_object_get(j, "period")), "day");
    ck_assert_str_eq(json_string_value(json_object_get(j, "period_start")),
                     "2026-03-15T00:00:00.000Z");
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "spend_usd")),
                            0.6, 1e-12);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "scope"), "provider")),
                     "p");
    ck_assert(
        json_is_null(json_object_get(json_object_get(j, "scope"), "model")));
    json_decref(j);
    /* More spend under the next threshold: nothing new. */
    struct live_event b = ev("w1", "p", "m", MAR15, 0.1);
    col_budget_event(&c, &b);
    col_budget_flush(&c);
    ck_assert_int_eq(ring_count(&c), r0 + 1);
    /* A restart reloads from the database: the 50% mark is there.  The
     * events above went through the tracker only, so store them now. */
    add_event(db, 1, 1, MAR15, "p", "m", 0.3);
    add_event(db, 2, 1, MAR15, "p", "m", 0.3);
    add_event(db, 3, 1, MAR15, "p", "m", 0.1);
    ck_assert_int_eq(col_budget_load(&c, MAR15 + 1000), 0);
    ck_assert_int_eq(slot_of(&c, 7).spend_nusd, NUSD(0.7));
    ck_assert_int_eq(slot_of(&c, 7).crossed, 1);
    col_budget_flush(&c);
    ck_assert_int_eq(ring_count(&c), r0 + 1);
    struct live_event d = ev("w1", "p", "m", MAR15, 0.1); /* 0.8: 80% */
    col_budget_event(&c, &d);
    col_budget_flush(&c);
    ck_assert_int_eq(slot_of(&c, 7).crossed, 3);
    ck_assert_int_eq(ring_count(&c), r0 + 2);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM budget_crossings"), 2);
    col_fini(&c);
}
END_TEST

/* Spend found at load crosses at once; a crash before the write finds it
 * again at the next load. */
START_TEST(test_tracker_crossing_found_at_load)
{
    struct col c;
    col_init(&c, 1);
    sqlite3 *db = c.store.db;
    add_budget(db, 3, "month", "", "", 2, "50,100");
    add_event(db, 1, 1, MAR01 + 5, "p", "m", 1.5);
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    ck_assert_int_eq(slot_of(&c, 3).crossed, 1);
    /* "Crash": reload without flushing; the crossing is found again. */
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    ck_assert_int_eq(col_budget_flush(&c), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM budget_crossings"), 1);
    col_fini(&c);
}
END_TEST

/* At the end of a period the next one starts with its own spend from the
 * database (events dated ahead count) and no thresholds crossed. */
START_TEST(test_tracker_rollover)
{
    struct col c;
    col_init(&c, 1);
    sqlite3 *db = c.store.db;
    add_budget(db, 1, "day", "", "", 1, "50");
    add_budget(db, 2, "month", "", "", 100, "50");
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    struct live_event a = ev("w1", "p", "m", MAR15, 0.75);
    col_budget_event(&c, &a);
    add_event(db, 1, 1, MAR15, "p", "m", 0.75);
    add_event(db, 2, 1, MAR15_DAY + DAY + 10, "p", "m", 0.25); /* tomorrow */
    col_budget_flush(&c);
    ck_assert_int_eq(slot_of(&c, 1).crossed, 1);
    col_budget_tick(&c, MAR15_DAY + DAY - 1); /* still today */
    ck_assert_int_eq(slot_of(&c, 1).spend_nusd, NUSD(0.75));
    col_budget_tick(&c, MAR15_DAY + DAY);
    struct shm_budget s = slot_of(&c, 1);
    ck_assert_int_eq(s.period_start_ms, MAR15_DAY + DAY);
    ck_assert_int_eq(s.spend_nusd, NUSD(0.25));
    ck_assert_int_eq(s.crossed, 0);
    /* The month goes on: its spend counts both days. */
    ck_assert_int_eq(slot_of(&c, 2).spend_nusd, NUSD(0.75));
    struct live_event b = ev("w1", "p", "m", MAR15_DAY + DAY + 20, 0.5);
    col_budget_event(&c, &b);
    ck_assert_int_eq(slot_of(&c, 1).spend_nusd, NUSD(0.75));
    ck_assert_int_eq(slot_of(&c, 1).crossed, 1);
    ck_assert_int_eq(slot_of(&c, 2).spend_nusd, NUSD(1.25));
    col_fini(&c);
}
END_TEST

/* A changed limit re-arms the thresholds it now passes. */
START_TEST(test_tracker_new_limit_rearms)
{
    struct col c;
    col_init(&c, 1);
    sqlite3 *db = c.store.db;
    add_budget(db, 1, "day", "", "", 1, "50");
    add_event(db, 1, 1, MAR15, "p", "m", 0.6);
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    col_budget_flush(&c);
    uint64_t r0 = ring_count(&c);
    exec_sql(db, "UPDATE budgets SET limit_nusd = 1100000000");
    ck_assert_int_eq(col_budget_load(&c, MAR15), 0);
    col_budget_flush(&c);
    ck_assert_int_eq(ring_count(&c), r0 + 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM budget_crossings"), 1);
    ck_assert_int_eq(q_int(db, "SELECT limit_nusd FROM budget_crossings"),
                     1100000000);
    col_fini(&c);
}
END_TEST

static Suite *budget_suite(void)
{
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("arithmetic");
    tcase_add_test(tc, test_day_bounds);
    tcase_add_test(tc, test_month_bounds);
    tcase_add_test(tc, test_thresholds);
    tcase_add_test(tc, test_crossed_and_scope);
    suite_add_tcase(s, tc);
    tc = tcase_create("tracker");
    tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cells_rollups_plus_tail);
    tcase_add_test(tc, test_tracker_counts_scope_and_period);
    tcase_add_test(tc, test_tracker_crossing_once);
    tcase_add_test(tc, test_tracker_crossing_found_at_load);
    tcase_add_test(tc, test_tracker_rollover);
    tcase_add_test(tc, test_tracker_new_limit_rearms);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("check_budget", LOG_WARN, NULL);
    SRunner *sr = srunner_create(budget_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
