/*
 * check_query.c: unit tests for the analytics query engine
 * (fcgi-app/query.h) and the histogram blobs it reads (common/rollup.h).
 *
 * The engine is tested on a database of its own: the collector's schema
 * (col_store_open), random events inserted with SQL, and rollups built
 * here by a reference aggregation over events 1..K, so that the events
 * above K play the part of the rollups' lag.  Every answer is compared
 * with a brute-force GROUP BY over the raw events: counts, tokens, cost,
 * first/last and the histogram blobs byte for byte (merging histograms is
 * exact, so the merged blob must equal the blob of the raw values).
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fcgi-app/ and collector/ are not on the include path of the tests. */
#include "budget.h"
#include "collector.h"
#include "hist.h"
#include "query.h"
#include "rollup.h"

#define TESTDIR_NAME "tt-query"
#include "testutil.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* 2026-11-20T00:00:00Z: a day boundary. */
#define T0 1795132800000LL

/* A directory per test case, made and removed by the runner's process
 * (an unchecked fixture), so it goes even when a test fails. */
static void query_tmp_setup(void)
{
    testdir_make(tmpdir, sizeof(tmpdir));
}

static void query_tmp_teardown(void)
{
    testdir_remove(tmpdir);
}

/* A small deterministic generator (the tests must not depend on libc's). */
static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t rnd(int64_t n)
{
    return (int64_t)(rng() % (uint64_t)n);
}

/* ---- the plan ---- */

/* Check the invariants of a plan for [from, to) and min_res..max_res. */
static void check_plan_min(int64_t from, int64_t to, int min_res, int max_res)
{
    struct qry_plan p;
    qry_plan_make(from, to, min_res, max_res, &p);
    /* The non-lag segments tile [from, to): sort them by lo and walk. */
    int64_t at = from;
    for (int pass = 0; pass < QRY_NARMS; pass++) {
        int found = -1;
        for (int i = 0; i < QRY_NARMS; i++)
            if (i != QRY_ARM_LAG && p.seg[i].lo == at && p.seg[i].hi > at)
                found = i;
        if (found < 0)
            break;
        int res = qry_arm_res(found);
        ck_assert_int_le(res, max_res);
        ck_assert(res == 0 || res >= min_res);
        if (res > 0) {
            ck_assert_int_eq(p.seg[found].lo % (res * 1000LL), 0);
            ck_assert_int_eq(p.seg[found].hi % (res * 1000LL), 0);
        }
        at = p.seg[found].hi;
    }
    ck_assert_msg(at == to, "plan of [%lld, %lld) max_res %d stops at %lld",
                  (long long)from, (long long)to, max_res, (long long)at);
    int64_t total = 0, rolled = 0;
    for (int i = 0; i < QRY_NARMS; i++) {
        ck_assert_int_le(p.seg[i].lo, p.seg[i].hi);
        if (i == QRY_ARM_LAG)
            continue;
        total += p.seg[i].hi - p.seg[i].lo;
        if (qry_arm_res(i) > 0)
            rolled += p.seg[i].hi - p.seg[i].lo;
    }
    ck_assert_int_eq(total, to - from); /* disjoint */
    /* The lag arm covers exactly what the rollups serve. */
    ck_assert_int_eq(p.seg[QRY_ARM_LAG].hi - p.seg[QRY_ARM_LAG].lo, rolled);
    /* Raw edges are shorter than a finest bucket each (unless all raw). */
    if (rolled > 0) {
        ck_assert_int_lt(p.seg[QRY_ARM_HEAD].hi - p.seg[QRY_ARM_HEAD].lo,
                         min_res * 1000LL);
        ck_assert_int_lt(p.seg[QRY_ARM_TAIL].hi - p.seg[QRY_ARM_TAIL].lo,
                         min_res * 1000LL);
    }
    if (min_res > max_res)
        ck_assert_int_eq(rolled, 0);
}

static void check_plan(int64_t from, int64_t to, int max_res)
{
    check_plan_min(from, to, ROLLUP_RES_MINUTE, max_res);
}

/* The example of query.h, segment by segment. */
START_TEST(test_plan_example)
{
    struct qry_plan p;
    int64_t from = T0 + 10 * HOUR_MS + 20 * MIN_MS + 30000;
    int64_t to = T0 + 2 * DAY_MS + 5 * HOUR_MS + 10 * MIN_MS;
    qry_plan_make(from, to, ROLLUP_RES_MINUTE, ROLLUP_RES_DAY, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_HEAD].lo, from);
    ck_assert_int_eq(p.seg[QRY_ARM_HEAD].hi, T0 + 10 * HOUR_MS + 21 * MIN_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_A].lo, T0 + 10 * HOUR_MS + 21 * MIN_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_A].hi, T0 + 11 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].lo, T0 + 11 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].hi, T0 + DAY_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].lo, T0 + DAY_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].hi, T0 + 2 * DAY_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_B].lo, T0 + 2 * DAY_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_B].hi, T0 + 2 * DAY_MS + 5 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_B].lo, T0 + 2 * DAY_MS + 5 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_B].hi, to);
    ck_assert_int_eq(p.seg[QRY_ARM_TAIL].hi - p.seg[QRY_ARM_TAIL].lo, 0);
    ck_assert_int_eq(p.seg[QRY_ARM_LAG].lo, T0 + 10 * HOUR_MS + 21 * MIN_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_LAG].hi, to);

    /* With hour buckets no day rows: the hours span the middle. */
    qry_plan_make(from, to, ROLLUP_RES_MINUTE, ROLLUP_RES_HOUR, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].hi - p.seg[QRY_ARM_DAY_A].lo, 0);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].lo, T0 + 11 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].hi, T0 + 2 * DAY_MS + 5 * HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_B].hi - p.seg[QRY_ARM_HOUR_B].lo, 0);
    check_plan(from, to, ROLLUP_RES_HOUR);
}
END_TEST

/* Ranges inside one minute, across one minute boundary, and exactly on
 * boundaries. */
START_TEST(test_plan_edges)
{
    struct qry_plan p;
    /* Inside a minute: all raw, no lag. */
    qry_plan_make(T0 + 1000, T0 + 59000, ROLLUP_RES_MINUTE, ROLLUP_RES_DAY, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_HEAD].lo, T0 + 1000);
    ck_assert_int_eq(p.seg[QRY_ARM_HEAD].hi, T0 + 59000);
    for (int i = 1; i < QRY_NARMS; i++)
        ck_assert_int_eq(p.seg[i].hi - p.seg[i].lo, 0);
    /* Across a minute boundary but no whole minute: still all raw. */
    qry_plan_make(T0 + 30000, T0 + MIN_MS + 30000, ROLLUP_RES_MINUTE,
                  ROLLUP_RES_DAY, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_HEAD].hi, T0 + MIN_MS + 30000);
    ck_assert_int_eq(p.seg[QRY_ARM_LAG].hi - p.seg[QRY_ARM_LAG].lo, 0);
    /* Exactly whole days: day rows only, no raw edges. */
    qry_plan_make(T0, T0 + 3 * DAY_MS, ROLLUP_RES_MINUTE, ROLLUP_RES_DAY, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].lo, T0);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].hi, T0 + 3 * DAY_MS);
    for (int i = 0; i < QRY_NARMS; i++)
        if (i != QRY_ARM_DAY_A && i != QRY_ARM_LAG)
            ck_assert_int_eq(p.seg[i].hi - p.seg[i].lo, 0);
    /* Exactly one hour with minute buckets: minutes. */
    qry_plan_make(T0 + HOUR_MS, T0 + 2 * HOUR_MS, ROLLUP_RES_MINUTE,
                  ROLLUP_RES_MINUTE, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_A].lo, T0 + HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_A].hi, T0 + 2 * HOUR_MS);
    /* A day boundary inside a range shorter than a day: hours and
     * minutes on both sides. */
    int64_t from = T0 + DAY_MS - 90 * MIN_MS - 5,
            to = T0 + DAY_MS + 61 * MIN_MS;
    qry_plan_make(from, to, ROLLUP_RES_MINUTE, ROLLUP_RES_DAY, &p);
    ck_assert_int_eq(p.seg[QRY_ARM_DAY_A].hi - p.seg[QRY_ARM_DAY_A].lo, 0);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].lo, T0 + DAY_MS - HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_HOUR_A].hi, T0 + DAY_MS + HOUR_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_A].lo, T0 + DAY_MS - 90 * MIN_MS);
    ck_assert_int_eq(p.seg[QRY_ARM_MIN_B].hi, T0 + DAY_MS + 61 * MIN_MS);
    check_plan(from, to, ROLLUP_RES_DAY);
}
END_TEST

/* Random ranges, some on boundaries, keep every invariant. */
START_TEST(test_plan_random)
{
    static const int64_t grains[] = {1, 1000, MIN_MS, HOUR_MS, DAY_MS};
    static const int res[] = {ROLLUP_RES_MINUTE, ROLLUP_RES_HOUR,
                              ROLLUP_RES_DAY, ROLLUP_RES_WEEK};
    rng_state = 42;
    for (int i = 0; i < 20000; i++) {
        int64_t g1 = grains[rnd(5)], g2 = grains[rnd(5)];
        int64_t from = T0 + rnd(5 * DAY_MS) / g1 * g1;
        int64_t to = from + 1 + rnd(4 * DAY_MS);
        to = to / g2 * g2 > from ? to / g2 * g2 : to;
        check_plan(from, to, res[rnd(4)]);
        check_plan_min(from, to, ROLLUP_RES_HOUR, res[rnd(4)]);
    }
}
END_TEST

/* ---- cubes ---- */

START_TEST(test_cube_choice)
{
    int nr, mr;
    ck_assert_int_eq(qry_cube(0, 0, 1, &nr, &mr), ROLLUP_TOTAL);
    ck_assert_int_eq(qry_cube(QRY_ISERR, 0, 1, &nr, &mr), ROLLUP_TOTAL);
    ck_assert_int_eq(qry_cube(QRY_MODEL, 0, 1, &nr, &mr), ROLLUP_MODEL);
    ck_assert_int_eq(mr, ROLLUP_RES_WEEK);
    ck_assert_int_eq(qry_cube(QRY_PROVIDER, 0, 1, &nr, &mr), ROLLUP_MODEL);
    ck_assert_int_eq(
        qry_cube(QRY_PROVIDER | QRY_MODEL | QRY_ISERR, 0, 1, &nr, &mr),
        ROLLUP_MODEL);
    /* USERS keeps no histograms: percentiles by user read USER. */
    ck_assert_int_eq(qry_cube(QRY_USER, 0, 0, &nr, &mr), ROLLUP_USERS);
    ck_assert_int_eq(qry_cube(QRY_USER | QRY_ISERR, 0, 0, &nr, &mr),
                     ROLLUP_USERS);
    ck_assert_int_eq(qry_cube(QRY_USER, 0, 1, &nr, &mr), ROLLUP_USER);
    ck_assert_int_eq(qry_cube(QRY_AGENT, 0, 1, &nr, &mr), ROLLUP_AGENTS);
    ck_assert_int_eq(qry_cube(QRY_AGENT | QRY_ISERR, 0, 0, &nr, &mr),
                     ROLLUP_AGENTS);
    ck_assert_int_eq(qry_cube(QRY_AGENT | QRY_MODEL, 0, 1, &nr, &mr),
                     ROLLUP_AGENT);
    ck_assert_int_eq(qry_cube(QRY_USER | QRY_PROVIDER, 0, 0, &nr, &mr),
                     ROLLUP_USER);
    ck_assert_int_eq(qry_cube(QRY_USER | QRY_AGENT, 0, 0, &nr, &mr),
                     ROLLUP_USER);
    ck_assert_int_eq(qry_cube(QRY_SESSION, 0, 1, &nr, &mr), ROLLUP_SESSION);
    ck_assert_int_eq(nr, ROLLUP_RES_HOUR);
    ck_assert_int_eq(mr, ROLLUP_RES_HOUR);
    qry_cube(QRY_MODEL, 0, 1, &nr, &mr);
    ck_assert_int_eq(nr, ROLLUP_RES_MINUTE);
    qry_cube(QRY_USER, 0, 0, &nr, &mr);
    ck_assert_int_eq(nr, ROLLUP_RES_HOUR);
    ck_assert_int_eq(
        qry_cube(QRY_SESSION | QRY_USER | QRY_MODEL, 0, 1, &nr, &mr),
        ROLLUP_SESSION);
    /* Error types and statuses only in the error cubes, the small one
     * unless agent or user is asked. */
    ck_assert_int_eq(qry_cube(QRY_ETYPE, 0, 0, &nr, &mr), -1);
    ck_assert_int_eq(
        qry_cube(QRY_ETYPE | QRY_STATUS | QRY_MODEL, 1, 0, &nr, &mr),
        ROLLUP_ERRTYPES);
    ck_assert_int_eq(qry_cube(QRY_ETYPE | QRY_AGENT, 1, 0, &nr, &mr),
                     ROLLUP_ERRORS);
    ck_assert_int_eq(qry_cube(QRY_USER | QRY_AGENT | QRY_ISERR, 1, 0, &nr, &mr),
                     ROLLUP_ERRORS);
    ck_assert_int_eq(qry_cube(QRY_SESSION, 1, 0, &nr, &mr), -1);
    /* No error cube keeps histograms. */
    ck_assert_int_eq(qry_cube(QRY_MODEL, 1, 1, &nr, &mr), -1);
}
END_TEST

/* ---- histogram blobs ---- */

START_TEST(test_blob_codec)
{
    static uint32_t dense[HIST_BUCKETS], back[HIST_BUCKETS];
    static unsigned char blob[HIST_BUCKETS * HIST_BLOB_ENT];
    rng_state = 7;
    for (int round = 0; round < 50; round++) {
        memset(dense, 0, sizeof(dense));
        memset(back, 0, sizeof(back));
        int64_t total = 0;
        int n = (int)rnd(40);
        for (int i = 0; i < n; i++) {
            uint32_t c = (uint32_t)(1 + rnd(round == 3 ? 0xfffffffe : 1000));
            int b = (int)rnd(HIST_BUCKETS);
            if (dense[b] != 0)
                continue;
            dense[b] = c;
            total += c;
        }
        size_t len = hist_blob_encode(dense, blob);
        ck_assert_int_eq(len % HIST_BLOB_ENT, 0);
        /* Sorted, no zero counts, little-endian. */
        for (size_t i = 0; i < len; i += HIST_BLOB_ENT) {
            unsigned b = blob[i] | (unsigned)blob[i + 1] << 8;
            uint32_t c = blob[i + 2] | (uint32_t)blob[i + 3] << 8 |
                         (uint32_t)blob[i + 4] << 16 |
                         (uint32_t)blob[i + 5] << 24;
            ck_assert_uint_eq(c, dense[b]);
            ck_assert_uint_ne(c, 0);
            if (i > 0)
                ck_assert_uint_gt(b, blob[i - 6] | (unsigned)blob[i - 5] << 8);
        }
        ck_assert_int_eq(hist_blob_add(blob, len, back), total);
        ck_assert_mem_eq(dense, back, sizeof(dense));
    }
    /* An empty histogram is an empty blob. */
    memset(dense, 0, sizeof(dense));
    ck_assert_uint_eq(hist_blob_encode(dense, blob), 0);
    ck_assert_int_eq(hist_blob_add(blob, 0, back), 0);
    /* Malformed: a partial entry, a bucket out of range. */
    ck_assert_int_eq(hist_blob_add(blob, 5, back), -1);
    unsigned char bad[6] = {0x00, 0x03, 1, 0, 0, 0}; /* bucket 768 */
    ck_assert_int_eq(hist_blob_add(bad, 6, back), -1);
}
END_TEST

START_TEST(test_blob_merge)
{
    static uint32_t da[HIST_BUCKETS], db[HIST_BUCKETS], dm[HIST_BUCKETS];
    static unsigned char a[HIST_BUCKETS * 6], b[HIST_BUCKETS * 6],
        m[HIST_BUCKETS * 12], want[HIST_BUCKETS * 6];
    rng_state = 9;
    for (int round = 0; round < 100; round++) {
        memset(da, 0, sizeof(da));
        memset(db, 0, sizeof(db));
        for (int i = 0; i < (int)rnd(60); i++)
            da[rnd(HIST_BUCKETS)] += (uint32_t)(1 + rnd(100));
        for (int i = 0; i < (int)rnd(60); i++)
            db[rnd(HIST_BUCKETS)] += (uint32_t)(1 + rnd(100));
        size_t al = hist_blob_encode(da, a), bl = hist_blob_encode(db, b);
        long ml = hist_blob_merge(a, al, b, bl, m);
        for (int i = 0; i < HIST_BUCKETS; i++)
            dm[i] = da[i] + db[i];
        size_t wl = hist_blob_encode(dm, want);
        ck_assert_int_eq(ml, (long)wl);
        ck_assert_mem_eq(m, want, wl);
    }
    ck_assert_int_eq(hist_blob_merge(a, 0, b, 0, m), 0);
    ck_assert_int_eq(hist_blob_merge(a, 4, b, 0, m), -1);
}
END_TEST

/* Quantiles of a blob agree with hist_quantile over the dense counts, and
 * stay within 1% of the exact nearest-rank value. */
START_TEST(test_quantiles)
{
    static uint32_t dense[HIST_BUCKETS];
    static unsigned char blob[HIST_BUCKETS * 6];
    static double vals[1000];
    rng_state = 5;
    memset(dense, 0, sizeof(dense));
    for (int i = 0; i < 1000; i++) {
        vals[i] = 1.0 + (double)rnd(5000000) / 100.0;
        dense[hist_bucket(vals[i])]++;
    }
    size_t len = hist_blob_encode(dense, blob);
    static const double qs[] = {0.5, 0.95, 0.99};
    double out[3];
    ck_assert_int_eq(qry_quantiles(blob, len, qs, 3, out), 1000);
    for (int i = 0; i < 1000; i++)
        for (int j = i + 1; j < 1000; j++)
            if (vals[j] < vals[i]) {
                double t = vals[i];
                vals[i] = vals[j];
                vals[j] = t;
            }
    for (int q = 0; q < 3; q++) {
        ck_assert(out[q] == hist_quantile(dense, 1000, qs[q]));
        double exact = vals[(int)ceil(qs[q] * 1000 - 1e-9) - 1];
        ck_assert_msg(fabs(out[q] - exact) <= 0.01 * exact, "q %g: %g vs %g",
                      qs[q], out[q], exact);
    }
    ck_assert_int_eq(qry_quantiles(blob, 0, qs, 3, out), 0);
    ck_assert(out[0] == 0 && out[2] == 0);
}
END_TEST

/* ---- the engine against brute force ---- */

static const char *const providers[] = {"openai", "anthropic", "mistral_ai"};
static const char *const models[] = {"m-a", "m-b", "m-c", "m-d"};
static const char *const agents[] = {"a1", "a2", "a3", NULL};
static const char *const users[] = {"ann", "bob", "cy", "dee", NULL};
static const char *const sessions[] = {"s1", "s2", NULL, NULL};
static const char *const etypes[] = {"rate_limit", "timeout", NULL};

/* Span of the test data: from T0 - 2 h to T0 + 3 days + 2 h, or over
 * several weeks when a test sets span_hi (week rows then serve). */
#define SPAN_LO (T0 - 2 * HOUR_MS)
#define SPAN_HI (T0 + 3 * DAY_MS + 2 * HOUR_MS)
static int64_t span_hi = SPAN_HI;

static sqlite3 *db;
static struct col_store store;

/* Run SQL that returns no rows on db. */
static void exec(const char *sql)
{
    exec_sql(db, sql);
}

/* Bind a string or NULL. */
static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Insert n random events; times cluster on boundaries now and then. */
static void insert_events(int n)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(
        sqlite3_prepare_v2(
            db,
            "INSERT INTO events(ws, id, ts, received, provider, model, "
            "operation, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, reasoning_tokens, cost_usd, cost_source, "
            "latency_ms, ttft_ms, status, error_type, is_error, user, agent, "
            "session) VALUES(?1, ?2, ?3, ?3, ?4, ?5, 'chat', ?6, ?7, ?8, ?9, "
            "?10, ?11, 0, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            -1, &st, NULL),
        SQLITE_OK);
    exec("BEGIN");
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "e%d", i);
        int64_t ts = SPAN_LO + rnd(span_hi - SPAN_LO);
        if (rnd(5) == 0) /* right on or next to a boundary */
            ts = ts - ts % (rnd(2) ? HOUR_MS : MIN_MS) - rnd(2);
        sqlite3_bind_int64(st, 1, 1 + rnd(4) / 3); /* workspaces 1 and 2 */
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, ts);
        sqlite3_bind_text(st, 4, providers[rnd(3)], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, models[rnd(4)], -1, SQLITE_STATIC);
        for (int k = 0; k < 5; k++)
            sqlite3_bind_int64(st, 6 + k, rnd(k < 2 ? 5000 : 50));
        /* Costs stored as the collector stores them: nano-dollars / 1e9. */
        sqlite3_bind_double(st, 11, (double)rnd(100000000) / 1e9);
        if (rnd(6) != 0)
            sqlite3_bind_double(st, 12, 1.0 + (double)rnd(3000000) / 100.0);
        else
            sqlite3_bind_null(st, 12);
        if (rnd(3) != 0)
            sqlite3_bind_double(st, 13, 1.0 + (double)rnd(50000) / 100.0);
        else
            sqlite3_bind_null(st, 13);
        int err = rnd(8) == 0;
        const char *et = err ? etypes[rnd(3)] : NULL;
        if (err && (et == NULL || rnd(2)))
            sqlite3_bind_int(st, 14, rnd(2) ? 429 : 503);
        else if (!err && rnd(2))
            sqlite3_bind_int(st, 14, 200);
        else
            sqlite3_bind_null(st, 14);
        bind_opt(st, 15, et);
        sqlite3_bind_int(st, 16, err);
        bind_opt(st, 17, users[rnd(5)]);
        bind_opt(st, 18, agents[rnd(4)]);
        bind_opt(st, 19, sessions[rnd(4)]);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    exec("COMMIT");
    sqlite3_finalize(st);
}

/* Build every cube at every resolution from the events 1..upto, as the
 * collector is meant to, and record rollup_seq. */
static void build_rollups(int64_t upto)
{
    static const struct {
        int cube;
        const char *dims; /* provider, model, agent, user, session,
                             is_error, error_type, status */
        const char *where;
    } cubes[] = {
        {ROLLUP_MODEL, "provider, model, '', '', '', is_error, '', 0", ""},
        {ROLLUP_AGENT,
         "provider, model, coalesce(agent, ''), '', '', is_error, '', 0", ""},
        {ROLLUP_USER,
         "provider, model, coalesce(agent, ''), coalesce(user, ''), '', "
         "is_error, '', 0",
         ""},
        {ROLLUP_USERS, "'', '', '', coalesce(user, ''), '', is_error, '', 0",
         ""},
        {ROLLUP_AGENTS, "'', '', coalesce(agent, ''), '', '', is_error, '', 0",
         ""},
        {ROLLUP_TOTAL, "'', '', '', '', '', is_error, '', 0", ""},
        {ROLLUP_ERRTYPES,
         "provider, model, '', '', '', 1, coalesce(error_type, ''), "
         "coalesce(status, 0)",
         " AND is_error = 1"},
        {ROLLUP_ERRORS,
         "provider, model, coalesce(agent, ''), coalesce(user, ''), '', 1, "
         "coalesce(error_type, ''), coalesce(status, 0)",
         " AND is_error = 1"},
        {ROLLUP_SESSION,
         "provider, model, coalesce(agent, ''), coalesce(user, ''), session, "
         "is_error, '', 0",
         " AND session IS NOT NULL"}};
    static const int res[] = {ROLLUP_RES_MINUTE, ROLLUP_RES_HOUR,
                              ROLLUP_RES_DAY, ROLLUP_RES_WEEK};
    exec("BEGIN; DELETE FROM rollups");
    for (size_t c = 0; c < sizeof(cubes) / sizeof(cubes[0]); c++)
        for (int r = 0; r < 4; r++) {
            if (cubes[c].cube == ROLLUP_SESSION && r != 1)
                continue;
            char sql[2048];
            snprintf(
                sql, sizeof(sql),
                "INSERT INTO rollups SELECT ws, %d, %d, ts - ts %% %lld, %s, "
                "count(*), sum(is_error), sum(input_tokens), "
                "sum(output_tokens), sum(cache_read_tokens), "
                "sum(cache_write_tokens), sum(reasoning_tokens), "
                "sum(CAST(round(cost_usd * 1e9) AS INTEGER)), "
                "count(latency_ms), total(latency_ms), count(ttft_ms), "
                "total(ttft_ms), min(ts), max(ts), tt_hist_of(latency_ms), "
                "tt_hist_of(ttft_ms) FROM events WHERE seq <= %lld%s "
                "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
                cubes[c].cube, res[r], (long long)res[r] * 1000, cubes[c].dims,
                (long long)upto, cubes[c].where);
            exec(sql);
        }
    char sql[128];
    snprintf(sql, sizeof(sql),
             "INSERT OR REPLACE INTO meta VALUES('rollup_seq', %lld); COMMIT",
             (long long)upto);
    exec(sql);
}

/* Open the test database name with n events, rolled up to upto. */
static void db_setup(const char *name, int n, int64_t upto)
{
    char path[PATH_MAX], err[256] = "";
    snprintf(path, sizeof(path), "%s/%s.db", tmpdir, name);
    ck_assert_msg(col_store_open(&store, path, "normal", err, sizeof(err)) == 0,
                  "col_store_open: %s", err);
    db = store.db;
    rng_state = 1234;
    insert_events(n);
    build_rollups(upto);
}

/* Column i of st's row, a blob, copied into a; *len gets its length. */
static const void *copy_blob(struct arena *a, sqlite3_stmt *st, int i,
                             size_t *len)
{
    *len = (size_t)sqlite3_column_bytes(st, i);
    void *h = arena_alloc(a, *len + 1);
    if (*len > 0) /* an empty blob reads as NULL */
        memcpy(h, sqlite3_column_blob(st, i), *len);
    return h;
}

/* Bind s as ?1 ws, ?2 from, ?3 to, ?4..?8 the filters, ?9 status. */
static void bind_spec(sqlite3_stmt *st, const struct qry_spec *s)
{
    sqlite3_bind_int64(st, 1, s->ws);
    sqlite3_bind_int64(st, 2, s->from_ms);
    sqlite3_bind_int64(st, 3, s->to_ms);
    bind_opt(st, 4, s->f.provider);
    bind_opt(st, 5, s->f.model);
    bind_opt(st, 6, s->f.agent);
    bind_opt(st, 7, s->f.user);
    bind_opt(st, 8, s->f.session);
    sqlite3_bind_int(st, 9, s->f.status);
}

/* The brute-force answer to s: one GROUP BY over the raw events. */
static void brute(const struct qry_spec *s, struct arena *a,
                  struct qry_result *out)
{
    static const struct {
        unsigned dim;
        const char *expr;
    } g[] = {{QRY_PROVIDER, "provider"},
             {QRY_MODEL, "model"},
             {QRY_AGENT, "coalesce(agent, '')"},
             {QRY_USER, "coalesce(user, '')"},
             {QRY_ETYPE, "coalesce(error_type, '')"},
             {QRY_STATUS, "coalesce(status, 0)"}};
    char keys[256] = "", sql[2048];
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        if (s->group & g[i].dim) {
            strcat(keys, ", ");
            strcat(keys, g[i].expr);
        }
    int64_t b = s->bucket_ms ? s->bucket_ms : INT64_C(1) << 62;
    snprintf(sql, sizeof(sql),
             "SELECT ts - ts %% %lld AS b%s, count(*), sum(is_error), "
             "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
             "sum(cache_write_tokens), sum(reasoning_tokens), "
             "sum(CAST(round(cost_usd * 1e9) AS INTEGER)), count(latency_ms), "
             "total(latency_ms), count(ttft_ms), total(ttft_ms), min(ts), "
             "max(ts), tt_hist_of(latency_ms), tt_hist_of(ttft_ms) FROM events "
             "WHERE ws = ?1 AND ts >= ?2 AND ts < ?3 AND (?4 IS NULL OR "
             "provider = ?4) AND (?5 IS NULL OR model = ?5) AND (?6 IS NULL "
             "OR agent = ?6) AND (?7 IS NULL OR user = ?7) AND (?8 IS NULL OR "
             "session = ?8) AND (?9 < 0 OR is_error = ?9) AND (?10 = 0 OR "
             "is_error = 1) GROUP BY b%s ORDER BY b%s",
             (long long)b, keys, keys, keys);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(db));
    bind_spec(st, s);
    sqlite3_bind_int(st, 10, s->errors_only);
    size_t cap = 4096;
    out->rows = arena_alloc(a, cap * sizeof(*out->rows));
    out->n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ck_assert_uint_lt(out->n, cap);
        struct qry_row *r = &out->rows[out->n++];
        memset(r, 0, sizeof(*r));
        r->provider = r->model = r->agent = r->user = r->error_type = "";
        int col = 0;
        r->ts = sqlite3_column_int64(st, col++);
        const char **strs[] = {&r->provider, &r->model, &r->agent, &r->user,
                               &r->error_type};
        for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
            if (!(s->group & g[i].dim))
                continue;
            if (g[i].dim == QRY_STATUS)
                r->status = sqlite3_column_int(st, col++);
            else {
                const char *t = (const char *)sqlite3_column_text(st, col++);
                *strs[i] = arena_strndup(a, t, strlen(t));
            }
        }
        r->calls = sqlite3_column_int64(st, col++);
        r->errors = sqlite3_column_int64(st, col++);
        for (int k = 0; k < 5; k++)
            r->tokens[k] = sqlite3_column_int64(st, col++);
        r->cost_nusd = sqlite3_column_int64(st, col++);
        r->lat_n = sqlite3_column_int64(st, col++);
        r->lat_sum = sqlite3_column_double(st, col++);
        r->ttft_n = sqlite3_column_int64(st, col++);
        r->ttft_sum = sqlite3_column_double(st, col++);
        r->first_ms = sqlite3_column_int64(st, col++);
        r->last_ms = sqlite3_column_int64(st, col++);
        r->lat_hist = copy_blob(a, st, col++, &r->lat_len);
        r->ttft_hist = copy_blob(a, st, col, &r->ttft_len);
    }
    sqlite3_finalize(st);
}

/* Describe s for failure messages. */
static const char *describe(const struct qry_spec *s)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "ws %lld [%lld, %lld) bucket %lld group %#x errors_only %d "
             "p=%s m=%s a=%s u=%s s=%s status=%d",
             (long long)s->ws, (long long)s->from_ms, (long long)s->to_ms,
             (long long)s->bucket_ms, s->group, s->errors_only,
             s->f.provider ? s->f.provider : "-", s->f.model ? s->f.model : "-",
             s->f.agent ? s->f.agent : "-", s->f.user ? s->f.user : "-",
             s->f.session ? s->f.session : "-", s->f.status);
    return buf;
}

/* Are two blobs the same bytes?  (An empty one may be NULL.) */
static int same_blob(const void *a, size_t al, const void *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* Run s as the API does: in one read transaction, with the rollup_seq of
 * its snapshot.  Returns qry_run's result. */
static int run(struct qry_cache *c, struct arena *a, struct qry_spec *s,
               struct qry_result *out)
{
    exec("BEGIN");
    s->rollup_seq = rollup_seq(db);
    ck_assert_int_ge(s->rollup_seq, 0);
    int rc = qry_run(c, a, s, out);
    exec("COMMIT");
    return rc;
}

/* Compare the engine's answer to s with brute force. */
static void check_answer(struct qry_cache *c, struct qry_spec *s)
{
    struct arena a;
    struct qry_result got, want;
    arena_init(&a, 1 << 20);
    int rc = run(c, &a, s, &got);
    ck_assert_msg(rc == 0, "qry_run %s: %d %s", describe(s), rc, qry_errmsg(c));
    brute(s, &a, &want);
    ck_assert_msg(got.n == want.n, "%s: %zu rows, want %zu", describe(s), got.n,
                  want.n);
    for (size_t i = 0; i < got.n; i++) {
        const struct qry_row *x = &got.rows[i], *y = &want.rows[i];
        ck_assert_msg(x->ts == y->ts && qry_row_cmp(x, y, s->group, 1) == 0,
                      "%s: row %zu keys differ", describe(s), i);
        ck_assert_msg(
            x->calls == y->calls && x->errors == y->errors &&
                x->cost_nusd == y->cost_nusd &&
                memcmp(x->tokens, y->tokens, sizeof(x->tokens)) == 0 &&
                x->lat_n == y->lat_n && x->ttft_n == y->ttft_n &&
                x->first_ms == y->first_ms && x->last_ms == y->last_ms,
            "%s: row %zu: calls %lld/%lld cost %lld/%lld", describe(s), i,
            (long long)x->calls, (long long)y->calls, (long long)x->cost_nusd,
            (long long)y->cost_nusd);
        ck_assert(fabs(x->lat_sum - y->lat_sum) <= 1e-6 * (1 + y->lat_sum));
        if (s->hist) {
            ck_assert_msg(
                same_blob(x->lat_hist, x->lat_len, y->lat_hist, y->lat_len),
                "%s: row %zu: latency histograms differ", describe(s), i);
            ck_assert(same_blob(x->ttft_hist, x->ttft_len, y->ttft_hist,
                                y->ttft_len));
        }
    }
    arena_free(&a);
}

/* A random question over the test data. */
static void random_spec(struct qry_spec *s)
{
    static const int64_t buckets[] = {0, MIN_MS, 5 * MIN_MS, HOUR_MS, DAY_MS};
    static const unsigned groups[] = {0,
                                      QRY_PROVIDER,
                                      QRY_PROVIDER | QRY_MODEL,
                                      QRY_AGENT,
                                      QRY_USER,
                                      QRY_USER | QRY_MODEL,
                                      QRY_ETYPE | QRY_STATUS | QRY_MODEL};
    static const int64_t grains[] = {1, 1000, MIN_MS, HOUR_MS, DAY_MS};
    memset(s, 0, sizeof(*s));
    s->ws = 1 + rnd(2);
    int64_t g = grains[rnd(5)];
    s->from_ms = (SPAN_LO - HOUR_MS + rnd(span_hi - SPAN_LO)) / g * g;
    s->to_ms = s->from_ms + 1 + rnd(rnd(2) ? 3 * DAY_MS : 3 * HOUR_MS);
    if (span_hi != SPAN_HI && rnd(2)) /* weeks: from the start, long */
        s->to_ms = s->from_ms + 1 + rnd(span_hi - SPAN_LO);
    g = grains[rnd(5)];
    if (s->to_ms / g * g > s->from_ms)
        s->to_ms = s->to_ms / g * g;
    s->bucket_ms = buckets[rnd(5)];
    s->group = groups[rnd(7)];
    s->errors_only = (s->group & QRY_ETYPE) != 0 || rnd(8) == 0;
    s->hist = rnd(2) && !s->errors_only; /* error cubes keep none */
    s->f.status = (int)rnd(3) - 1;
    if (rnd(4) == 0)
        s->f.provider = providers[rnd(3)];
    if (rnd(5) == 0)
        s->f.model = models[rnd(4)];
    if (rnd(5) == 0)
        s->f.agent = agents[rnd(3)];
    if (rnd(5) == 0)
        s->f.user = users[rnd(4)];
    if (!s->errors_only && rnd(6) == 0)
        s->f.session = sessions[rnd(2)];
    /* Keep to a day of minute buckets and a few days of hour buckets:
     * brute force keeps 4096 rows. */
    if (s->bucket_ms && s->bucket_ms < HOUR_MS &&
        s->to_ms - s->from_ms > DAY_MS / 2)
        s->bucket_ms = HOUR_MS;
    if (s->bucket_ms && s->bucket_ms < DAY_MS &&
        s->to_ms - s->from_ms > 4 * DAY_MS)
        s->bucket_ms = rnd(2) ? DAY_MS : 0;
}

/* Check n random questions against brute force. */
static void check_random(struct qry_cache *c, int n)
{
    for (int i = 0; i < n; i++) {
        struct qry_spec s;
        random_spec(&s);
        check_answer(c, &s);
    }
}

/* The engine equals brute force with rollups complete. */
START_TEST(test_engine_exact)
{
    db_setup("exact", 6000, INT64_MAX);
    struct qry_cache *c = qry_cache_new(db);
    ck_assert_ptr_nonnull(c);
    rng_state = 77;
    check_random(c, 400);
    qry_cache_free(c);
    col_store_close(&store);
}
END_TEST

/* Over several weeks, with week rows in the plans, the same holds. */
START_TEST(test_engine_weeks)
{
    span_hi = T0 + 40 * DAY_MS;
    db_setup("weeks", 6000, 5000);
    struct qry_cache *c = qry_cache_new(db);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sqlite3_exec(db, "SELECT 1", NULL, NULL, NULL), SQLITE_OK);
    rng_state = 79;
    check_random(c, 300);
    qry_cache_free(c);
    col_store_close(&store);
    span_hi = SPAN_HI;
}
END_TEST

/* The engine still equals brute force when the rollups lag (the last
 * events are only raw), or are missing altogether. */
START_TEST(test_engine_lag)
{
    db_setup("lag", 6000, 4000);
    struct qry_cache *c = qry_cache_new(db);
    rng_state = 78;
    ck_assert_int_eq(rollup_seq(db), 4000);
    check_random(c, 300);
    /* No rollups and no rollup_seq: everything from raw events. */
    exec("DELETE FROM rollups; DELETE FROM meta WHERE key = 'rollup_seq'");
    check_random(c, 100);
    qry_cache_free(c);
    col_store_close(&store);
}
END_TEST

/* The brute-force count of distinct non-empty values of col (user or
 * agent) among the events s selects; *anon gets the calls without a user. */
static int64_t brute_distinct(const struct qry_spec *s, const char *col,
                              int64_t *anon)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT nullif(coalesce(%s, ''), '')), "
             "total(user IS NULL) FROM events WHERE ws = ?1 AND ts >= ?2 AND "
             "ts < ?3 AND (?4 IS NULL OR provider = ?4) AND (?5 IS NULL OR "
             "model = ?5) AND (?6 IS NULL OR agent = ?6) AND (?7 IS NULL OR "
             "user = ?7) AND (?8 IS NULL OR session = ?8) AND (?9 < 0 OR "
             "is_error = ?9)",
             col);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    bind_spec(st, s);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    *anon = (int64_t)sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    return n;
}

/* qry_distinct counts users and agents exactly: over weeks of data with
 * rare users (active on a few days only, so most probes miss), lagging
 * rollups, calls without a user, filters, and ranges short and long. */
START_TEST(test_engine_distinct)
{
    span_hi = T0 + 40 * DAY_MS;
    db_setup("distinct", 6000, 6000);
    /* 37 rare users and a rare agent, some of them only raw (lag). */
    exec("INSERT INTO events(ws, id, ts, received, provider, model, "
         "operation, input_tokens, output_tokens, cache_read_tokens, "
         "cache_write_tokens, reasoning_tokens, cost_usd, cost_source, "
         "latency_ms, is_error, user, agent) SELECT ws, id || 'r', ts, ts, "
         "provider, model, 'chat', 1, 1, 0, 0, 0, 0, 0, 5, is_error, "
         "'r' || (seq % 37), CASE WHEN seq % 7 = 0 THEN 'rare' ELSE agent "
         "END FROM events WHERE seq % 50 = 0");
    build_rollups(6080);
    struct qry_cache *c = qry_cache_new(db);
    struct arena a;
    arena_init(&a, 1 << 16);
    rng_state = 81;
    for (int i = 0; i < 400; i++) {
        struct qry_spec s;
        random_spec(&s);
        s.errors_only = 0;
        if (rnd(2)) /* long: the probe path */
            s.to_ms = s.from_ms + 2 * DAY_MS + rnd(span_hi - s.from_ms);
        exec("BEGIN");
        s.rollup_seq = rollup_seq(db);
        struct qry_people got;
        int rc = qry_distinct(c, &a, &s, &got);
        exec("COMMIT");
        ck_assert_msg(rc == 0, "%s: %d %s", describe(&s), rc, qry_errmsg(c));
        int64_t anon, anon2;
        int64_t nusers = brute_distinct(&s, "user", &anon);
        int64_t nagents = brute_distinct(&s, "agent", &anon2);
        ck_assert_msg(got.users == nusers && got.agents == nagents &&
                          got.anon_calls == anon,
                      "%s: users %lld/%lld agents %lld/%lld anon %lld/%lld",
                      describe(&s), (long long)got.users, (long long)nusers,
                      (long long)got.agents, (long long)nagents,
                      (long long)got.anon_calls, (long long)anon);
        arena_reset(&a);
    }
    arena_free(&a);
    qry_cache_free(c);
    col_store_close(&store);
    span_hi = SPAN_HI;
}
END_TEST

/* A whole-range question with fixed expectations: the rollup rows are
 * really read (changing one changes the answer) and other workspaces are
 * never seen. */
START_TEST(test_engine_reads_rollups)
{
    db_setup("reads", 3000, INT64_MAX);
    struct qry_cache *c = qry_cache_new(db);
    struct arena a;
    arena_init(&a, 1 << 16);
    struct qry_spec s = {.ws = 1,
                         .from_ms = T0,
                         .to_ms = T0 + 2 * DAY_MS,
                         .f = {.status = QRY_STATUS_ANY}};
    struct qry_result r1, r2;
    ck_assert_int_eq(run(c, &a, &s, &r1), 0);
    ck_assert_uint_eq(r1.n, 1);
    /* One day row of the totals cube gets 1000 more calls. */
    exec("UPDATE rollups SET calls = calls + 1000 WHERE (ws, cube, res, ts, "
         "provider, model, is_error) IN (SELECT ws, cube, res, ts, provider, "
         "model, is_error FROM rollups WHERE ws = 1 AND cube = 8 AND res = "
         "86400 AND ts = 1795132800000 LIMIT 1)");
    ck_assert_int_eq(run(c, &a, &s, &r2), 0);
    ck_assert_int_eq(r2.rows[0].calls, r1.rows[0].calls + 1000);
    /* Workspace 3 has nothing. */
    s.ws = 3;
    ck_assert_int_eq(run(c, &a, &s, &r2), 0);
    ck_assert_uint_eq(r2.n, 0);
    arena_free(&a);
    qry_cache_free(c);
    col_store_close(&store);
}
END_TEST

/* Every statement reads through an index: no full scan of events or
 * rollups, whatever the question. */
START_TEST(test_engine_indexed)
{
    db_setup("indexed", 200, INT64_MAX);
    static const unsigned groups[] = {0, QRY_USER, QRY_AGENT,
                                      QRY_PROVIDER | QRY_MODEL};
    for (int g = 0; g < 4; g++)
        for (int f = 0; f < 4; f++) {
            struct qry_spec s = {.ws = 1,
                                 .from_ms = T0,
                                 .to_ms = T0 + DAY_MS,
                                 .group = groups[g],
                                 .hist = 1,
                                 .f = {.status = QRY_STATUS_ANY}};
            if (f == 1)
                s.f.user = "ann";
            if (f == 2)
                s.f.session = "s1";
            if (f == 3) {
                s.f.user = "ann";
                s.f.model = "m-a";
            }
            char sql[QRY_SQL_MAX + 32] = "EXPLAIN QUERY PLAN ";
            ck_assert_int_gt(qry_sql(&s, sql + strlen(sql), QRY_SQL_MAX), 0);
            sqlite3_stmt *st;
            ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) ==
                              SQLITE_OK,
                          "%s", sqlite3_errmsg(db));
            int lag = 0;
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *d = (const char *)sqlite3_column_text(st, 3);
                ck_assert_msg(strncmp(d, "SCAN events", 11) != 0 &&
                                  strncmp(d, "SCAN rollups", 12) != 0,
                              "group %#x filter %d: %s", groups[g], f, d);
                if (strstr(d, "INTEGER PRIMARY KEY (rowid>?)") != NULL)
                    lag = 1;
            }
            ck_assert_msg(lag, "the lag arm does not walk the seq range");
            sqlite3_finalize(st);
        }
    col_store_close(&store);
}
END_TEST

/* A row of n errors of provider "p", model and error type etype, seen
 * from first to last, with a latency histogram blob. */
static struct qry_row error_row(const char *model, const char *etype, int64_t n,
                                int64_t first, int64_t last, const void *hist,
                                size_t len)
{
    struct qry_row r = {.provider = "p",
                        .model = model,
                        .agent = "",
                        .user = "",
                        .error_type = etype,
                        .calls = n,
                        .errors = n,
                        .first_ms = first,
                        .last_ms = last,
                        .lat_hist = hist,
                        .lat_len = len};
    return r;
}

/* The snapshot's rollup_seq: 0 without rollups, -1 when it cannot be read
 * (0 would count every raw event on top of the rollups). */
START_TEST(test_rollup_seq_read)
{
    sqlite3 *m;
    ck_assert_int_eq(sqlite3_open(":memory:", &m), SQLITE_OK);
    ck_assert_int_eq(rollup_seq(m), -1); /* no meta table */
    ck_assert_int_eq(
        sqlite3_exec(m, "CREATE TABLE meta(key, value)", NULL, NULL, NULL),
        SQLITE_OK);
    ck_assert_int_eq(rollup_seq(m), 0);
    ck_assert_int_eq(sqlite3_exec(m,
                                  "INSERT INTO meta VALUES('rollup_seq', 42)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(rollup_seq(m), 42);
    sqlite3_close(m);
}
END_TEST

/* Regrouping merges rows and their histograms. */
START_TEST(test_regroup)
{
    struct arena a;
    arena_init(&a, 1 << 16);
    static uint32_t d1[HIST_BUCKETS], d2[HIST_BUCKETS];
    static unsigned char b1[600], b2[600];
    d1[10] = 2;
    d2[10] = 1;
    d2[20] = 4;
    size_t l1 = hist_blob_encode(d1, b1), l2 = hist_blob_encode(d2, b2);
    struct qry_row rows[3] = {error_row("b", "x", 2, 50, 60, b1, l1),
                              error_row("a", "y", 1, 10, 20, NULL, 0),
                              error_row("c", "x", 5, 30, 90, b2, l2)};
    struct qry_result in = {rows, 3}, out;
    ck_assert_int_eq(qry_regroup(&a, &in, QRY_ETYPE, 0, &out), 0);
    ck_assert_uint_eq(out.n, 2);
    ck_assert_str_eq(out.rows[0].error_type, "x");
    ck_assert_str_eq(out.rows[0].model, "");
    ck_assert_int_eq(out.rows[0].calls, 7);
    ck_assert_int_eq(out.rows[0].first_ms, 30);
    ck_assert_int_eq(out.rows[0].last_ms, 90);
    static uint32_t back[HIST_BUCKETS];
    ck_assert_int_eq(
        hist_blob_add(out.rows[0].lat_hist, out.rows[0].lat_len, back), 7);
    ck_assert_uint_eq(back[10], 3);
    ck_assert_uint_eq(back[20], 4);
    ck_assert_str_eq(out.rows[1].error_type, "y");
    ck_assert_int_eq(out.rows[1].calls, 1);
    arena_free(&a);
}
END_TEST

static Suite *query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, test_plan_example);
    tcase_add_test(tc, test_plan_edges);
    tcase_add_test(tc, test_plan_random);
    tcase_add_test(tc, test_cube_choice);
    tcase_add_test(tc, test_blob_codec);
    tcase_add_test(tc, test_blob_merge);
    tcase_add_test(tc, test_quantiles);
    tcase_add_test(tc, test_regroup);
    tcase_add_test(tc, test_rollup_seq_read);
    tcase_set_timeout(tc, 60); /* the random plans, under sanitizers */
    suite_add_tcase(s, tc);
    tc = tcase_create("engine");
    tcase_add_unchecked_fixture(tc, query_tmp_setup, query_tmp_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_engine_exact);
    tcase_add_test(tc, test_engine_lag);
    tcase_add_test(tc, test_engine_weeks);
    tcase_add_test(tc, test_engine_reads_rollups);
    tcase_add_test(tc, test_engine_indexed);
    tcase_add_test(tc, test_engine_distinct);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(query_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
