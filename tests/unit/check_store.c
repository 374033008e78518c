/*
 * check_store.c: unit tests for the collector's database side
 * (collector/collector.h, store.c): schema and migrations, the group-commit
 * insert, pricing at insert time, unknown models, rollback, and the
 * bootstrap admin key.
 *
 * Every test gets its own temporary directory with its own database; the
 * price catalog is the shipped one, loaded from the source tree.  Expected
 * costs are recomputed here from the catalog entry's prices, not taken
 * from the code under test.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* collector/ is not on the include path of the tests. */
#include "collector.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "price.h"

#define TESTDIR_NAME "tt-store"
#include "testutil.h"

#define CATALOG TT_SRCDIR "/data/pricing.json"

/* Load the shipped catalog. */
static struct price_catalog *load_catalog(void)
{
    char err[512] = "";
    struct price_catalog *p = price_load(CATALOG, NULL, err, sizeof(err));
    ck_assert_msg(p != NULL, "price_load %s: %s", CATALOG, err);
    ck_assert_int_gt(price_count(p), 0);
    return p;
}

/* Set up a collector with the catalog and the database tmpdir/tokentap.db. */
static void col_init(struct col *c)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    c->prices = load_catalog();
    ck_assert_msg(col_store_open(&c->store, tmp_path("tokentap.db"), "normal",
                                 err, sizeof(err)) == 0,
                  "col_store_open: %s", err);
}

/* Close what col_init opened. */
static void col_fini(struct col *c)
{
    col_store_close(&c->store);
    price_free(c->prices);
}

/* Parse body into batch (asserting it is valid). */
static void parse(const char *body, struct ev_batch *b)
{
    struct ev_error err;
    enum ev_result rc =
        ev_parse_body(body, strlen(body), proto_now_ms(), b, &err);
    ck_assert_msg(rc == EV_OK, "ev_parse_body: %d at %d field %s: %s", (int)rc,
                  err.index, err.field, err.message);
}

/* Insert every record of body for workspace ws in one transaction;
 * seqs[i] gets each record's seq and costs[i] its cost (when not NULL). */
static int insert_body(struct col *c, const char *ws, const char *body,
                       int64_t *seqs, int64_t *costs, int commit)
{
    struct ev_batch b;
    parse(body, &b);
    ck_assert_int_eq(col_store_begin(&c->store), SQLITE_OK);
    int i = 0;
    for (const struct ev_rec *r = ev_batch_next(&b, NULL); r;
         r = ev_batch_next(&b, r), i++) {
        struct col_item it = {.rec = r,
                              .workspace = ws,
                              .request_id = "req-batch",
                              .received_ms = 1700000000123LL + i};
        ck_assert_int_eq(col_store_insert(c, &it), SQLITE_OK);
        if (seqs)
            seqs[i] = it.seq;
        if (costs)
            costs[i] = it.cost_nusd;
    }
    if (commit)
        ck_assert_int_eq(col_store_commit(&c->store), SQLITE_OK);
    else
        col_store_rollback(&c->store);
    ev_batch_free(&b);
    return i;
}

/* ------------------------------------------------------------------ */

/* A new database gets every migration: version = rows of schema_version,
 * numbered 1..N, and the tables exist. */
START_TEST(test_schema_created)
{
    struct col c;
    col_init(&c);
    sqlite3 *db = c.store.db;
    int v = col_store_version(&c.store);
    ck_assert_int_ge(v, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM schema_version"), v);
    ck_assert_int_eq(q_int(db, "SELECT min(version) FROM schema_version"), 1);
    ck_assert_int_eq(q_int(db, "SELECT max(version) FROM schema_version"), v);
    static const char *const tables[] = {
        "workspaces",      "events",      "api_keys",
        "live_seconds",    "live_totals", "pricing_catalog",
        "pricing_unknown", "meta",        "schema_version"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[200];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                 "AND name = '%s'",
                 tables[i]);
        ck_assert_msg(q_int(db, sql) == 1, "table %s missing", tables[i]);
    }
    col_fini(&c);
}
END_TEST

/* Reopening applies nothing twice and keeps the data. */
START_TEST(test_reopen_idempotent)
{
    struct col c;
    col_init(&c);
    int v = col_store_version(&c.store);
    insert_body(&c, "default",
                "{\"id\":\"a\",\"provider\":\"p\",\"model\":\"m\","
                "\"cost_usd\":1}",
                NULL, NULL, 1);
    col_fini(&c);
    for (int k = 0; k < 2; k++) {
        col_init(&c);
        ck_assert_int_eq(col_store_version(&c.store), v);
        ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM "
                                           "schema_version"),
                         v);
        ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM events"), 1);
        col_fini(&c);
    }
}
END_TEST

/* A database of every earlier version upgrades in place without loss:
 * the rows written under it survive unchanged, and the collector's
 * catch-up fills the new rollups and sessions from them exactly. */
START_TEST(test_upgrade_from_each_version)
{
    static const char *const body =
        "[{\"id\":\"u1\",\"provider\":\"openai\",\"model\":\"gpt-4o\","
        "\"input_tokens\":100,\"output_tokens\":20,\"cost_usd\":0.25,"
        "\"latency_ms\":300,\"ts\":\"2026-11-01T10:00:59.900Z\","
        "\"user\":\"ann\",\"session\":\"s1\",\"round\":1},"
        "{\"id\":\"u2\",\"provider\":\"openai\",\"model\":\"gpt-4o\","
        "\"input_tokens\":5,\"output_tokens\":7,\"cost_usd\":0.125,"
        "\"latency_ms\":900,\"status\":500,\"error_type\":\"server\","
        "\"ts\":\"2026-11-01T10:01:00.000Z\",\"user\":\"bob\","
        "\"session\":\"s1\",\"round\":2},"
        "{\"id\":\"u3\",\"provider\":\"anthropic\","
        "\"model\":\"claude-sonnet-4-5\",\"input_tokens\":1,"
        "\"cost_usd\":1e-9,\"ts\":\"2026-11-02T00:00:00Z\"}]";
    struct col c;
    char err[512] = "";
    col_init(&c);
    int latest = col_store_version(&c.store);
    col_fini(&c);
    for (int v = 1; v < latest; v++) {
        unlink(tmp_path("tokentap.db"));
        memset(&c, 0, sizeof(c));
        c.prices = load_catalog();
        ck_assert_msg(col_store_open_at(&c.store, tmp_path("tokentap.db"),
                                        "normal", v, err, sizeof(err)) == 0,
                      "open at %d: %s", v, err);
        ck_assert_int_eq(col_store_version(&c.store), v);
        ck_assert_int_eq(insert_body(&c, "default", body, NULL, NULL, 1), 3);
        ck_assert_int_eq(insert_body(&c, "other", body, NULL, NULL, 1), 3);
        char before[4096];
        snprintf(before, sizeof(before), "%s",
                 q_text(c.store.db,
                        "SELECT group_concat(seq || ws || id || ts || model "
                        "|| input_tokens || cost_usd || ifnull(user, '-') "
                        "|| ifnull(round, '-'), ';') FROM events"));
        col_fini(&c);

        col_init(&c);
        ck_assert_int_eq(col_store_version(&c.store), latest);
        ck_assert_str_eq(
            q_text(c.store.db,
                   "SELECT group_concat(seq || ws || id || ts || model "
                   "|| input_tokens || cost_usd || ifnull(user, '-') "
                   "|| ifnull(round, '-'), ';') FROM events"),
            before);
        c.aggr = col_aggr_new();
        ck_assert_int_eq(col_rebuild_rollups(&c), 0);
        sqlite3 *db = c.store.db;
        ck_assert_int_eq(
            q_int(db, "SELECT value FROM meta WHERE key = 'rollup_seq'"), 6);
        for (int cube = 0; cube <= 3; cube++)
            for (int res = cube == 0 ? 0 : 1; res < 3; res++) {
                char sql[256];
                static const int rs[3] = {60, 3600, 86400};
                snprintf(sql, sizeof(sql),
                         "SELECT sum(calls) * 1000000 + sum(input_tokens) * "
                         "10 + sum(errors) FROM rollups WHERE cube = %d AND "
                         "res = %d AND ws = 1",
                         cube, rs[res]);
                ck_assert_int_eq(q_int(db, sql), 3 * 1000000 + 106 * 10 + 1);
                snprintf(sql, sizeof(sql),
                         "SELECT sum(cost_nusd) FROM rollups WHERE cube = %d "
                         "AND res = %d AND ws = 2",
                         cube, rs[res]);
                ck_assert_int_eq(q_int(db, sql), 375000001);
            }
        /* The two gpt-4o events fall in different minutes (10:00, 10:01)
         * but the same hour and day. */
        ck_assert_int_eq(q_int(db, "SELECT count(*) FROM rollups WHERE "
                                   "cube = 0 AND res = 60 AND ws = 1"),
                         3);
        ck_assert_int_eq(q_int(db, "SELECT count(*) FROM rollups WHERE "
                                   "cube = 0 AND res = 3600 AND ws = 1 AND "
                                   "model = 'gpt-4o'"),
                         2); /* ok and error rows */
        ck_assert_int_eq(q_int(db, "SELECT calls * 100 + rounds * 10 + errors "
                                   "FROM sessions WHERE ws = 1 AND "
                                   "session = 's1'"),
                         2 * 100 + 2 * 10 + 1);
        ck_assert_int_eq(q_int(db, "SELECT count(*) FROM session_rounds "
                                   "WHERE ws = 2"),
                         2);
        ck_assert_int_eq(q_int(db, "SELECT calls FROM rollups WHERE cube = 4 "
                                   "AND ws = 1 AND res = 3600 AND status = 500 "
                                   "AND error_type = 'server'"),
                         1);
        col_aggr_free(c.aggr);
        col_fini(&c);
    }
}
END_TEST

/* A database from a newer tokentap is refused with a message. */
START_TEST(test_newer_schema_refused)
{
    struct col c;
    col_init(&c);
    ck_assert_int_eq(sqlite3_exec(c.store.db,
                                  "INSERT INTO schema_version "
                                  "VALUES(999, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    col_fini(&c);
    struct col_store s;
    char err[512] = "";
    ck_assert_int_eq(
        col_store_open(&s, tmp_path("tokentap.db"), "normal", err, sizeof(err)),
        -1);
    ck_assert_msg(strstr(err, "999") != NULL, "message \"%s\" lacks 999", err);
    col_store_close(&s);
}
END_TEST

/* The database runs in WAL mode with the synchronous level asked for. */
START_TEST(test_wal_and_synchronous)
{
    struct col c;
    col_init(&c);
    ck_assert_str_eq(q_text(c.store.db, "PRAGMA journal_mode"), "wal");
    ck_assert_int_eq(q_int(c.store.db, "PRAGMA synchronous"), 1); /* NORMAL */
    col_fini(&c);
    struct col_store s;
    char err[512] = "";
    ck_assert_int_eq(
        col_store_open(&s, tmp_path("full.db"), "full", err, sizeof(err)), 0);
    ck_assert_str_eq(q_text(s.db, "PRAGMA journal_mode"), "wal");
    ck_assert_int_eq(q_int(s.db, "PRAGMA synchronous"), 2); /* FULL */
    col_store_close(&s);
}
END_TEST

/* An event with every field is stored with every field. */
START_TEST(test_insert_all_fields)
{
    struct col c;
    col_init(&c);
    int64_t seq = 0, cost = 0;
    insert_body(&c, "team-a",
                "{\"id\":\"evt-1\",\"ts\":\"2024-01-02T03:04:05.678Z\","
                "\"provider\":\"openai\",\"model\":\"gpt-4o\","
                "\"operation\":\"embeddings\",\"input_tokens\":1000,"
                "\"output_tokens\":500,\"cache_read_tokens\":100,"
                "\"cache_write_tokens\":50,\"reasoning_tokens\":20,"
                "\"cost_usd\":0.125,\"latency_ms\":1234.5,\"ttft_ms\":200.25,"
                "\"status\":429,\"error_type\":\"rate_limit\","
                "\"user\":\"u1\",\"agent\":\"a1\",\"api_key\":\"k1\","
                "\"session\":\"s1\",\"round\":3,\"request_id\":\"r-own\","
                "\"tags\":{\"env\":\"prod\",\"app\":\"x\"}}",
                &seq, &cost, 1);
    ck_assert_int_gt(seq, 0);
    ck_assert_int_eq(cost, 125000000);
    sqlite3 *db = c.store.db;
    sqlite3_stmt *st;
    const char *sql =
        "SELECT w.name, e.id, e.ts, e.received, e.provider, e.model, "
        "e.operation, e.input_tokens, e.output_tokens, e.cache_read_tokens, "
        "e.cache_write_tokens, e.reasoning_tokens, e.cost_usd, "
        "e.cost_source, e.latency_ms, e.ttft_ms, e.status, e.error_type, "
        "e.is_error, e.user, e.agent, e.api_key, e.session, e.round, "
        "e.request_id, e.tags, e.seq FROM events e JOIN workspaces w ON "
        "w.id = e.ws";
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
#define COL_STR(i) ((const char *)sqlite3_column_text(st, (i)))
    ck_assert_str_eq(COL_STR(0), "team-a");
    ck_assert_str_eq(COL_STR(1), "evt-1");
    ck_assert_int_eq(sqlite3_column_int64(st, 2), 1704164645678LL);
    ck_assert_int_eq(sqlite3_column_int64(st, 3), 1700000000123LL);
    ck_assert_str_eq(COL_STR(4), "openai");
    ck_assert_str_eq(COL_STR(5), "gpt-4o");
    ck_assert_str_eq(COL_STR(6), "embeddings");
    ck_assert_int_eq(sqlite3_column_int64(st, 7), 1000);
    ck_assert_int_eq(sqlite3_column_int64(st, 8), 500);
    ck_assert_int_eq(sqlite3_column_int64(st, 9), 100);
    ck_assert_int_eq(sqlite3_column_int64(st, 10), 50);
    ck_assert_int_eq(sqlite3_column_int64(st, 11), 20);
    ck_assert_double_eq(sqlite3_column_double(st, 12), 0.125);
    ck_assert_int_eq(sqlite3_column_int(st, 13), 0); /* from the client */
    ck_assert_double_eq(sqlite3_column_double(st, 14), 1234.5);
    ck_assert_double_eq(sqlite3_column_double(st, 15), 200.25);
    ck_assert_int_eq(sqlite3_column_int(st, 16), 429);
    ck_assert_str_eq(COL_STR(17), "rate_limit");
    ck_assert_int_eq(sqlite3_column_int(st, 18), 1);
    ck_assert_str_eq(COL_STR(19), "u1");
    ck_assert_str_eq(COL_STR(20), "a1");
    ck_assert_str_eq(COL_STR(21), "k1");
    ck_assert_str_eq(COL_STR(22), "s1");
    ck_assert_int_eq(sqlite3_column_int(st, 23), 3);
    ck_assert_str_eq(COL_STR(24), "r-own");
    ck_assert_str_eq(COL_STR(25), "{\"app\":\"x\",\"env\":\"prod\"}");
    ck_assert_int_eq(sqlite3_column_int64(st, 26), seq);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    col_fini(&c);
}
END_TEST

/* Absent optional fields are stored as NULL or their defaults, and the
 * batch's request id stands in for a missing one. */
START_TEST(test_insert_minimal)
{
    struct col c;
    col_init(&c);
    int64_t seq = 0;
    insert_body(&c, "default",
                "{\"provider\":\"openai\",\"model\":\"gpt-4o\","
                "\"cost_usd\":0}",
                &seq, NULL, 1);
    ck_assert_int_gt(seq, 0);
    sqlite3 *db = c.store.db;
    ck_assert_str_eq(q_text(db, "SELECT operation FROM events"), "chat");
    ck_assert_int_eq(q_int(db, "SELECT length(id) FROM events"), 32);
    ck_assert_int_eq(q_int(db, "SELECT input_tokens + output_tokens + "
                               "cache_read_tokens + cache_write_tokens + "
                               "reasoning_tokens FROM events"),
                     0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events WHERE "
                               "latency_ms IS NULL AND ttft_ms IS NULL AND "
                               "status IS NULL AND error_type IS NULL AND "
                               "user IS NULL AND agent IS NULL AND api_key "
                               "IS NULL AND session IS NULL AND round IS "
                               "NULL AND tags IS NULL AND is_error = 0"),
                     1);
    ck_assert_str_eq(q_text(db, "SELECT request_id FROM events"), "req-batch");
    col_fini(&c);
}
END_TEST

/* A duplicate id in the same workspace gets seq 0 and no second row, in
 * the same transaction or a later one. */
START_TEST(test_duplicate_same_workspace)
{
    struct col c;
    col_init(&c);
    int64_t seqs[3];
    const char *body = "[{\"id\":\"dup\",\"provider\":\"p\",\"model\":\"m\","
                       "\"cost_usd\":1,\"input_tokens\":1},"
                       "{\"id\":\"dup\",\"provider\":\"p\",\"model\":\"m\","
                       "\"cost_usd\":2,\"input_tokens\":2},"
                       "{\"id\":\"other\",\"provider\":\"p\",\"model\":\"m\","
                       "\"cost_usd\":3}]";
    ck_assert_int_eq(insert_body(&c, "ws", body, seqs, NULL, 1), 3);
    ck_assert_int_gt(seqs[0], 0);
    ck_assert_int_eq(seqs[1], 0);
    ck_assert_int_gt(seqs[2], seqs[0]);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM events"), 2);
    /* The first one wins. */
    ck_assert_int_eq(q_int(c.store.db, "SELECT input_tokens FROM events "
                                       "WHERE id = 'dup'"),
                     1);
    insert_body(&c, "ws", body, seqs, NULL, 1);
    ck_assert_int_eq(seqs[0], 0);
    ck_assert_int_eq(seqs[1], 0);
    ck_assert_int_eq(seqs[2], 0);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM events"), 2);
    col_fini(&c);
}
END_TEST

/* The same id in another workspace is another event. */
START_TEST(test_same_id_other_workspace)
{
    struct col c;
    col_init(&c);
    int64_t s1 = 0, s2 = 0;
    const char *body =
        "{\"id\":\"same\",\"provider\":\"p\",\"model\":\"m\",\"cost_usd\":1}";
    insert_body(&c, "ws-one", body, &s1, NULL, 1);
    insert_body(&c, "ws-two", body, &s2, NULL, 1);
    ck_assert_int_gt(s1, 0);
    ck_assert_int_gt(s2, s1);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM events"), 2);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM workspaces"), 2);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(DISTINCT ws) FROM events"),
                     2);
    col_fini(&c);
}
END_TEST

/* The cost of tokens at an entry's prices, per the catalog's contract. */
static double expect_cost(const struct price_entry *p, long in, long out,
                          long cr, long cw)
{
    return (in * p->input + out * p->output + cr * p->cache_read +
            cw * p->cache_write) /
           1e6;
}

/* Without cost_usd the cost comes from the catalog (cost_source 1); with
 * it, the client's value is kept (cost_source 0). */
START_TEST(test_cost_from_catalog)
{
    struct col c;
    col_init(&c);
    /* Use the catalog's first entry, whatever the shipped file holds. */
    const struct price_entry *p = price_at(c.prices, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(price_find(c.prices, p->provider, p->model), p);
    char body[1024];
    snprintf(body, sizeof(body),
             "[{\"id\":\"priced\",\"provider\":\"%s\",\"model\":\"%s\","
             "\"input_tokens\":123456,\"output_tokens\":7890,"
             "\"cache_read_tokens\":1000,\"cache_write_tokens\":300,"
             "\"reasoning_tokens\":500},"
             "{\"id\":\"given\",\"provider\":\"%s\",\"model\":\"%s\","
             "\"input_tokens\":123456,\"cost_usd\":4.25}]",
             p->provider, p->model, p->provider, p->model);
    int64_t costs[2];
    insert_body(&c, "ws", body, NULL, costs, 1);
    double want = expect_cost(p, 123456, 7890, 1000, 300);
    ck_assert_msg(want > 0, "catalog entry %s/%s prices nothing", p->provider,
                  p->model);
    ck_assert_int_eq(costs[0], llround(want * 1e9));
    ck_assert_int_eq(costs[1], 4250000000LL);
    sqlite3 *db = c.store.db;
    ck_assert_int_eq(q_int(db, "SELECT CAST(round(cost_usd * 1e9) AS "
                               "INTEGER) FROM events WHERE id = 'priced'"),
                     costs[0]);
    ck_assert_int_eq(q_int(db, "SELECT cost_source FROM events WHERE id = "
                               "'priced'"),
                     1);
    ck_assert_int_eq(q_int(db, "SELECT cost_source FROM events WHERE id = "
                               "'given'"),
                     0);
    ck_assert_str_eq(q_text(db, "SELECT cost_usd FROM events WHERE id = "
                                "'given'"),
                     "4.25");
    col_fini(&c);
}
END_TEST

/* A model the catalog does not know costs 0 (cost_source 2) and is counted
 * in pricing_unknown once flushed; a duplicate or a client-priced event
 * is not counted. */
START_TEST(test_unknown_model)
{
    struct col c;
    col_init(&c);
    const char *body = "[{\"id\":\"u1\",\"provider\":\"openai\","
                       "\"model\":\"no-such-model-xyz\",\"input_tokens\":1000},"
                       "{\"id\":\"u2\",\"provider\":\"openai\","
                       "\"model\":\"no-such-model-xyz\",\"input_tokens\":1000},"
                       "{\"id\":\"u1\",\"provider\":\"openai\","
                       "\"model\":\"no-such-model-xyz\",\"input_tokens\":1000},"
                       "{\"id\":\"u3\",\"provider\":\"openai\","
                       "\"model\":\"no-such-model-xyz\",\"cost_usd\":1.5}]";
    int64_t costs[4];
    insert_body(&c, "ws", body, NULL, costs, 1);
    ck_assert_int_eq(costs[0], 0);
    ck_assert_int_eq(costs[1], 0);
    sqlite3 *db = c.store.db;
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events WHERE "
                               "cost_source = 2 AND cost_usd = 0"),
                     2);
    /* Nothing is written until the flush. */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM pricing_unknown"), 0);
    ck_assert_int_eq(col_store_begin(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_flush_unknown(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_commit(&c.store), SQLITE_OK);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM pricing_unknown"), 1);
    ck_assert_int_eq(q_int(db, "SELECT events FROM pricing_unknown WHERE "
                               "workspace = 'ws' AND provider = 'openai' AND "
                               "model = 'no-such-model-xyz'"),
                     2);
    ck_assert_int_eq(q_int(db, "SELECT last_seen_ms FROM pricing_unknown"),
                     1700000000124LL);
    /* A second flush adds only what is new. */
    insert_body(&c, "ws",
                "{\"id\":\"u9\",\"provider\":\"openai\","
                "\"model\":\"no-such-model-xyz\"}",
                NULL, NULL, 1);
    ck_assert_int_eq(col_store_begin(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_flush_unknown(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_flush_unknown(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_commit(&c.store), SQLITE_OK);
    ck_assert_int_eq(q_int(db, "SELECT events FROM pricing_unknown"), 3);
    ck_assert_int_eq(q_int(db, "SELECT first_seen_ms FROM pricing_unknown"),
                     1700000000124LL);
    col_fini(&c);
}
END_TEST

/* Many distinct unknown models (more than the in-memory set holds) are
 * all counted. */
START_TEST(test_unknown_many_models)
{
    struct col c;
    col_init(&c);
    enum { N = 300 };
    ck_assert_int_eq(col_store_begin(&c.store), SQLITE_OK);
    for (int i = 0; i < N; i++) {
        char body[200];
        snprintf(body, sizeof(body),
                 "{\"id\":\"m%d\",\"provider\":\"nobody\","
                 "\"model\":\"unknown-%d\"}",
                 i, i);
        struct ev_batch b;
        parse(body, &b);
        struct col_item it = {.rec = ev_batch_next(&b, NULL),
                              .workspace = "ws",
                              .received_ms = 1000 + i};
        ck_assert_int_eq(col_store_insert(&c, &it), SQLITE_OK);
        ev_batch_free(&b);
    }
    ck_assert_int_eq(col_store_flush_unknown(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_commit(&c.store), SQLITE_OK);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM pricing_unknown"),
                     N);
    ck_assert_int_eq(q_int(c.store.db, "SELECT sum(events) FROM "
                                       "pricing_unknown"),
                     N);
    col_fini(&c);
}
END_TEST

/* A rolled-back transaction leaves no events and no workspace, and the
 * next transaction works (the workspace cache forgot the lost id). */
START_TEST(test_rollback)
{
    struct col c;
    col_init(&c);
    const char *body = "[{\"id\":\"r1\",\"provider\":\"p\",\"model\":\"m\","
                       "\"cost_usd\":1},"
                       "{\"id\":\"r2\",\"provider\":\"p\",\"model\":\"m\","
                       "\"cost_usd\":1}]";
    int64_t seqs[2];
    insert_body(&c, "fresh-ws", body, seqs, NULL, 0);
    ck_assert_int_gt(seqs[0], 0);
    sqlite3 *db = c.store.db;
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events"), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM workspaces"), 0);
    insert_body(&c, "fresh-ws", body, seqs, NULL, 1);
    ck_assert_int_gt(seqs[0], 0);
    ck_assert_int_gt(seqs[1], 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events e JOIN "
                               "workspaces w ON w.id = e.ws WHERE w.name = "
                               "'fresh-ws'"),
                     2);
    col_fini(&c);
}
END_TEST

/* Unknown-model counts of a rolled-back transaction are not flushed
 * later: the events they counted were never stored. */
START_TEST(test_rollback_forgets_unknown)
{
    struct col c;
    col_init(&c);
    insert_body(&c, "ws",
                "{\"id\":\"x\",\"provider\":\"openai\","
                "\"model\":\"no-such-model-xyz\"}",
                NULL, NULL, 0);
    ck_assert_int_eq(col_store_begin(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_flush_unknown(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_commit(&c.store), SQLITE_OK);
    long long n = q_int(c.store.db, "SELECT count(*) FROM pricing_unknown");
    ck_assert_msg(n == 0,
                  "pricing_unknown has %lld rows for an event that was "
                  "rolled back",
                  n);
    col_fini(&c);
}
END_TEST

/* The catalog in use is written to pricing_catalog, replacing the old. */
START_TEST(test_save_catalog)
{
    struct col c;
    col_init(&c);
    ck_assert_int_eq(col_store_save_catalog(&c.store, c.prices), SQLITE_OK);
    ck_assert_int_eq(col_store_save_catalog(&c.store, c.prices), SQLITE_OK);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM pricing_catalog"),
                     price_count(c.prices));
    col_fini(&c);
}
END_TEST

/* last_used_ms only moves forward. */
START_TEST(test_touch_key)
{
    struct col c;
    col_init(&c);
    sqlite3 *db = c.store.db;
    ck_assert_int_eq(sqlite3_exec(db,
                                  "INSERT INTO api_keys(id, hash, prefix, "
                                  "name, role, workspace, created_ms) "
                                  "VALUES(7, 'h', 'tt_', 'n', 'read', 'ws', "
                                  "1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(col_store_begin(&c.store), SQLITE_OK);
    ck_assert_int_eq(col_store_touch_key(&c.store, 7, 100), SQLITE_OK);
    ck_assert_int_eq(col_store_touch_key(&c.store, 7, 50), SQLITE_OK);
    ck_assert_int_eq(col_store_commit(&c.store), SQLITE_OK);
    ck_assert_int_eq(q_int(db, "SELECT last_used_ms FROM api_keys"), 100);
    col_fini(&c);
}
END_TEST

/* The first start creates exactly one admin key, writes it to a 0600 file
 * and stores only its SHA-256; the second start does nothing. */
START_TEST(test_bootstrap_admin)
{
    struct col c;
    col_init(&c);
    char keyfile[PATH_MAX];
    snprintf(keyfile, sizeof(keyfile), "%s", tmp_path("admin.key"));
    ck_assert_int_eq(col_store_bootstrap_admin(&c.store, keyfile), 1);

    struct stat st;
    ck_assert_int_eq(stat(keyfile, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    char line[128] = "";
    FILE *f = fopen(keyfile, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    size_t n = strlen(line);
    ck_assert_int_eq(n, KEY_LEN + 1);
    ck_assert_int_eq(line[KEY_LEN], '\n');
    line[KEY_LEN] = '\0';
    ck_assert_int_eq(key_well_formed(line, KEY_LEN), 1);

    char hash[KEY_HASH_HEX + 1], sql[512];
    key_hash(line, KEY_LEN, hash);
    sqlite3 *db = c.store.db;
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM api_keys"), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM api_keys WHERE hash = '%s' AND role = "
             "'admin' AND workspace = 'default' AND revoked_ms IS NULL AND "
             "prefix = '%.11s'",
             hash, line);
    ck_assert_int_eq(q_int(db, sql), 1);
    /* The key itself is nowhere in the database. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM api_keys WHERE hash = '%s' OR prefix = "
             "'%s' OR name = '%s'",
             line, line, line);
    ck_assert_int_eq(q_int(db, sql), 0);
    /* No temporary file is left behind. */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", keyfile);
    ck_assert_int_ne(access(tmp, F_OK), 0);

    /* The second time: nothing new, the file untouched. */
    struct stat st2;
    ck_assert_int_eq(col_store_bootstrap_admin(&c.store, keyfile), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM api_keys"), 1);
    ck_assert_int_eq(stat(keyfile, &st2), 0);
    ck_assert_int_eq(st2.st_ino, st.st_ino);
    ck_assert_int_eq(st2.st_mtime, st.st_mtime);
    col_fini(&c);
}
END_TEST

/* Build the suite. */
static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_schema_created);
    tcase_add_test(tc, test_reopen_idempotent);
    tcase_add_test(tc, test_newer_schema_refused);
    tcase_add_test(tc, test_upgrade_from_each_version);
    tcase_add_test(tc, test_wal_and_synchronous);
    tcase_add_test(tc, test_insert_all_fields);
    tcase_add_test(tc, test_insert_minimal);
    tcase_add_test(tc, test_duplicate_same_workspace);
    tcase_add_test(tc, test_same_id_other_workspace);
    tcase_add_test(tc, test_cost_from_catalog);
    tcase_add_test(tc, test_unknown_model);
    tcase_add_test(tc, test_unknown_many_models);
    tcase_add_test(tc, test_rollback);
    tcase_add_test(tc, test_rollback_forgets_unknown);
    tcase_add_test(tc, test_save_catalog);
    tcase_add_test(tc, test_touch_key);
    tcase_add_test(tc, test_bootstrap_admin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("check_store", LOG_WARN, NULL);
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
