/*
 * check_aggr.c: unit tests for the collector's rollup writer
 * (collector/aggr.c, col_rebuild_rollups in rebuild.c) and the histogram
 * blobs it writes (common/rollup.c).
 *
 * The rollups are checked against a brute-force aggregate computed here in
 * C from the rows of the events table: every cube at every resolution, the
 * sessions and the session rounds, row by row and measure by measure,
 * histograms included.  The events come from a seeded generator covering
 * absent dimensions, errors, absent latencies, duplicates and timestamps on
 * and around minute, hour and day boundaries; they are inserted and counted
 * the way the server does it (insert, COMMIT, then col_aggr_add) and
 * flushed every few batches.  Latencies are multiples of 1/64 ms, so every
 * sum is exact and compared with ==.
 *
 * Every test gets its own temporary directory and database.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* collector/ is not on the include path of the tests. */
#include "collector.h"
#include "event.h"
#include "hist.h"
#include "log.h"
#include "rollup.h"

#define TESTDIR_NAME "tt-aggr"
#include "testutil.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TT_HAS_ASAN 1
#endif
#endif
#ifndef TT_HAS_ASAN
#define TT_HAS_ASAN 0
#endif

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL
#define T0      1772323200000LL /* 2026-03-01T00:00:00Z */
#define NWS     3

static const char *const ws_names[NWS] = {"ws-a", "ws-b", "ws-c"};

/* An assertion for hot loops: Check records every passing ck_assert with a
 * write(2), which made comparing histograms bucket by bucket take minutes. */
#define EXPECT(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg(__VA_ARGS__);                                         \
    } while (0)

/* ---- temporary directories ---- */

/* ---- a collector on a temporary database ---- */

/* Open a collector with its database tmpdir/name and a fresh aggregator;
 * retention is off (a century) unless a test sets it. */
static void col_init(struct col *c, const char *name)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    c->conf.retention_days = 36500;
    c->conf.rollup_retention_days = 36500;
    ck_assert_msg(col_store_open(&c->store, tmp_path(name), "normal", err,
                                 sizeof(err)) == 0,
                  "col_store_open: %s", err);
    c->aggr = col_aggr_new();
    ck_assert_ptr_nonnull(c->aggr);
}

/* Close what col_init opened. */
static void col_fini(struct col *c)
{
    col_aggr_free(c->aggr);
    col_store_close(&c->store);
}

/* Rows of meta.rollup_seq: 0 before the first flush that wrote one. */
#define WATERMARK_ROWS(db)                                                     \
    q_int(db, "SELECT count(*) FROM meta WHERE key = 'rollup_seq'")

/* ---- the event generator ---- */

/* A seeded pseudo-random stream of events (splitmix64). */
struct gen {
    uint64_t state;        /* splitmix64 state */
    int next_id;           /* the number in the next new id */
    char last_id[NWS][16]; /* for duplicates */
};

/* A stream that starts from seed. */
static struct gen gen_new(uint64_t seed)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    g.state = seed;
    return g;
}

/* The next 64 pseudo-random bits. */
static uint64_t gen_next(struct gen *g)
{
    uint64_t z = (g->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A number in [0, n). */
static int64_t gen_below(struct gen *g, int64_t n)
{
    return (int64_t)(gen_next(g) % (uint64_t)n);
}

/* A latency in ms, a multiple of 1/8: sub-millisecond, ordinary, or past
 * the last histogram bucket's lower bound. */
static double gen_latency(struct gen *g)
{
    int64_t kind = gen_below(g, 10);
    double frac = (double)gen_below(g, 8) / 8;
    if (kind == 0)
        return frac;
    if (kind == 1)
        return (double)(3600000 + gen_below(g, 82000000)) + frac;
    return (double)(20 + gen_below(g, 30000)) + frac;
}

/* A timestamp in the three days from T0, a third of them on or next to a
 * minute, hour or day boundary. */
static int64_t gen_ts(struct gen *g)
{
    if (gen_below(g, 3) != 0)
        return T0 + gen_below(g, 3 * DAY_MS);
    static const int64_t off[] = {-1, 0, 1, MIN_MS - 1};
    int64_t b = T0 + gen_below(g, 3) * DAY_MS;
    int64_t kind = gen_below(g, 3);
    if (kind >= 1)
        b += gen_below(g, 24) * HOUR_MS;
    if (kind == 2)
        b += gen_below(g, 60) * MIN_MS;
    return b + off[gen_below(g, 4)];
}

/* Append text to body at *len (cap bytes). */
static void put(char *body, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *body, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body + *len, cap - *len, fmt, ap);
    va_end(ap);
    EXPECT(n >= 0 && (size_t)n < cap - *len, "body too long");
    *len += (size_t)n;
}

/* Append one pseudo-random event object to body; *ws gets its workspace. */
static void gen_event(struct gen *g, char *body, size_t cap, size_t *len,
                      int *ws)
{
    static const char *const providers[] = {"openai", "anthropic", "google"};
    static const char *const models[3][2] = {
        {"gpt-4o", "o3"},
        {"claude-sonnet-4-5", "claude-haiku-4-5"},
        {"gemini-2.5-pro", "gemini-2.5-flash"}};
    int w = (int)gen_below(g, NWS);
    *ws = w;
    char id[16];
    if (gen_below(g, 40) == 0 && g->last_id[w][0] != '\0')
        snprintf(id, sizeof(id), "%s", g->last_id[w]); /* a duplicate */
    else
        snprintf(id, sizeof(id), "e%d", g->next_id++);
    snprintf(g->last_id[w], sizeof(g->last_id[w]), "%s", id);
    int p = (int)gen_below(g, 3);
    long long nusd = (long long)gen_below(g, 5000000000LL);
    put(body, cap, len,
        "{\"id\":\"%s\",\"ts\":%lld,\"provider\":\"%s\",\"model\":\"%s\","
        "\"input_tokens\":%lld,\"output_tokens\":%lld,"
        "\"cache_read_tokens\":%lld,\"cache_write_tokens\":%lld,"
        "\"reasoning_tokens\":%lld,\"cost_usd\":%lld.%09lld",
        id, (long long)gen_ts(g), providers[p], models[p][gen_below(g, 2)],
        (long long)gen_below(g, 100000), (long long)gen_below(g, 5000),
        (long long)(gen_below(g, 2) ? gen_below(g, 50000) : 0),
        (long long)gen_below(g, 300), (long long)gen_below(g, 2000),
        nusd / 1000000000, nusd % 1000000000);
    double lat = -1;
    if (gen_below(g, 5) != 0) {
        lat = gen_latency(g);
        put(body, cap, len, ",\"latency_ms\":%.17g", lat);
    }
    if (gen_below(g, 5) < 3) {
        double ttft =
            lat >= 0 ? lat * (double)gen_below(g, 9) / 8 : gen_latency(g);
        put(body, cap, len, ",\"ttft_ms\":%.17g", ttft);
    }
    switch (gen_below(g, 20)) {
    case 0:
        put(body, cap, len, ",\"status\":429,\"error_type\":\"rate_limit\"");
        break;
    case 1:
        put(body, cap, len, ",\"status\":500");
        break;
    case 2:
        put(body, cap, len, ",\"error_type\":\"timeout\"");
        break;
    case 3:
        put(body, cap, len, ",\"status\":503,\"error_type\":\"server\"");
        break;
    case 4:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
        put(body, cap, len, ",\"status\":200");
        break;
    default:
        break;
    }
    if (gen_below(g, 4) != 0)
        put(body, cap, len, ",\"user\":\"u%d\"", (int)gen_below(g, 6));
    if (gen_below(g, 10) >= 3)
        put(body, cap, len, ",\"agent\":\"a%d\"", (int)gen_below(g, 4));
    if (gen_below(g, 10) >= 3)
        put(body, cap, len, ",\"session\":\"s%d\"", (int)gen_below(g, 25));
    if (gen_below(g, 3) != 0)
        put(body, cap, len, ",\"round\":%d", (int)gen_below(g, 5));
    put(body, cap, len, "}");
}

/* Insert the events of body (workspace ws_of[i] for record i) in one
 * transaction and, when add, count the stored ones in c's aggregator as
 * the server does after COMMIT.  Returns the highest seq stored (0: none). */
static int64_t insert_body(struct col *c, const char *body,
                           const char *const *ws_of, int add)
{
    struct ev_batch b;
    struct ev_error err;
    enum ev_result rc =
        ev_parse_body(body, strlen(body), T0 + 1000 * DAY_MS, &b, &err);
    ck_assert_msg(rc == EV_OK, "ev_parse_body: %d at %d field %s: %s", (int)rc,
                  err.index, err.field, err.message);
    static struct col_item items[EV_MAX_BATCH];
    int n = 0;
    ck_assert_int_eq(col_store_begin(&c->store), SQLITE_OK);
    for (const struct ev_rec *r = ev_batch_next(&b, NULL); r;
         r = ev_batch_next(&b, r), n++) {
        items[n] = (struct col_item){.rec = r,
                                     .workspace = ws_of[n],
                                     .request_id = "req",
                                     .received_ms = T0 + n};
        ck_assert_int_eq(col_store_insert(c, &items[n]), SQLITE_OK);
    }
    ck_assert_int_eq(col_store_commit(&c->store), SQLITE_OK);
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        if (items[i].seq == 0)
            continue;
        top = items[i].seq;
        if (add) {
            struct live_event e;
            col_live_event(&items[i], &e);
            col_aggr_add(c->aggr, items[i].ws_id, &e, items[i].seq);
        }
    }
    ev_batch_free(&b);
    return top;
}

/* Insert one batch of 1..80 generated events (see insert_body).  Returns
 * the highest seq stored. */
static int64_t run_batch(struct col *c, struct gen *g, int add)
{
    static char body[1 << 16];
    const char *ws_of[EV_MAX_BATCH];
    size_t len = 0;
    int n = 1 + (int)gen_below(g, 80);
    put(body, sizeof(body), &len, "[");
    for (int i = 0; i < n; i++) {
        int w;
        if (i > 0)
            put(body, sizeof(body), &len, ",");
        gen_event(g, body, sizeof(body), &len, &w);
        ws_of[i] = ws_names[w];
    }
    put(body, sizeof(body), &len, "]");
    return insert_body(c, body, ws_of, add);
}

/* Insert the events of body, all for workspace ws, and count them. */
static int64_t put_events(struct col *c, const char *ws, const char *body)
{
    const char *ws_of[EV_MAX_BATCH];
    for (int i = 0; i < EV_MAX_BATCH; i++)
        ws_of[i] = ws;
    return insert_body(c, body, ws_of, 1);
}

/* ---- the brute-force aggregate ---- */

/* String dimensions, in the order of the rollups key. */
enum { D_PROVIDER, D_MODEL, D_AGENT, D_USER, D_SESSION, D_ERROR, D_N };

/* One stored event, as read back from the events table. */
struct raw {
    int64_t seq, ws, ts;
    char s[D_N][EV_MAX_NAME + 1]; /* absent: "" */
    int is_error, status, round;  /* status absent: 0, round absent: -1 */
    int64_t tok[SHM_TOK_N], cost_nusd;
    double lat, ttft; /* absent: -1 */
};

/* The events read back, in seq order. */
struct raws {
    struct raw *r; /* malloc'ed */
    size_t n;      /* events in r */
};

/* Read the events with seq <= upto, in seq order. */
static struct raws raws_load(sqlite3 *db, int64_t upto)
{
    struct raws rs = {NULL, 0};
    size_t cap = 0;
    sqlite3_stmt *st;
    const char *sql =
        "SELECT seq, ws, ts, provider, model, ifnull(agent, ''), "
        "ifnull(user, ''), ifnull(session, ''), ifnull(error_type, ''), "
        "is_error, ifnull(status, 0), ifnull(round, -1), input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, CAST(round(cost_usd * 1e9) AS INTEGER), "
        "ifnull(latency_ms, -1), ifnull(ttft_ms, -1) FROM events "
        "WHERE seq <= ? ORDER BY seq";
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, upto);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (rs.n == cap) {
            cap = cap ? cap * 2 : 1024;
            rs.r = realloc(rs.r, cap * sizeof(*rs.r));
            ck_assert_ptr_nonnull(rs.r);
        }
        struct raw *r = &rs.r[rs.n++];
        r->seq = sqlite3_column_int64(st, 0);
        r->ws = sqlite3_column_int64(st, 1);
        r->ts = sqlite3_column_int64(st, 2);
        for (int d = 0; d < D_N; d++) {
            const char *t = (const char *)sqlite3_column_text(st, 3 + d);
            EXPECT(strlen(t) < sizeof(r->s[d]), "long name %s", t);
            snprintf(r->s[d], sizeof(r->s[d]), "%s", t);
        }
        r->is_error = sqlite3_column_int(st, 9);
        r->status = sqlite3_column_int(st, 10);
        r->round = sqlite3_column_int(st, 11);
        for (int t = 0; t < SHM_TOK_N; t++)
            r->tok[t] = sqlite3_column_int64(st, 12 + t);
        r->cost_nusd = sqlite3_column_int64(st, 17);
        r->lat = sqlite3_column_double(st, 18);
        r->ttft = sqlite3_column_double(st, 19);
    }
    sqlite3_finalize(st);
    return rs;
}

/* The aggregator's view of stored event r (strings point into r). */
static void raw_event(const struct raw *r, struct live_event *e)
{
    memset(e, 0, sizeof(*e));
    e->provider = r->s[D_PROVIDER];
    e->model = r->s[D_MODEL];
    e->agent = r->s[D_AGENT];
    e->user = r->s[D_USER];
    e->session = r->s[D_SESSION];
    e->error_type = r->s[D_ERROR];
    e->ts_ms = r->ts;
    memcpy(e->tokens, r->tok, sizeof(e->tokens));
    e->cost_nusd = r->cost_nusd;
    e->latency_ms = r->lat;
    e->ttft_ms = r->ttft;
    e->is_error = r->is_error;
    e->status = r->status;
    e->round = r->round;
}

/* What is compared: the cubes of rollup.h, then sessions and rounds. */
enum { V_SESSION = ROLLUP_NCUBES, V_ROUND };

/* The key of a row of a view (absent dimensions: "" and 0). */
struct key {
    int64_t ws, ts;              /* ts: the bucket start, 0 off cubes */
    const char *s[D_N];          /* string dimensions, "" when not kept */
    int is_error, status, round; /* 0 when not kept */
};

/* Order keys as the queries of view_sql order rows. */
static int key_cmp(const struct key *a, const struct key *b)
{
    if (a->ws != b->ws)
        return a->ws < b->ws ? -1 : 1;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    for (int d = D_PROVIDER; d <= D_SESSION; d++) {
        int c = strcmp(a->s[d], b->s[d]);
        if (c != 0)
            return c;
    }
    if (a->is_error != b->is_error)
        return a->is_error < b->is_error ? -1 : 1;
    int c = strcmp(a->s[D_ERROR], b->s[D_ERROR]);
    if (c != 0)
        return c;
    if (a->status != b->status)
        return a->status < b->status ? -1 : 1;
    if (a->round != b->round)
        return a->round < b->round ? -1 : 1;
    return 0;
}

/* Print a key for messages (static buffer). */
static const char *key_str(const struct key *k)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "ws=%lld ts=%lld provider='%s' model='%s' agent='%s' user='%s' "
             "session='%s' is_error=%d error_type='%s' status=%d round=%d",
             (long long)k->ws, (long long)k->ts, k->s[D_PROVIDER],
             k->s[D_MODEL], k->s[D_AGENT], k->s[D_USER], k->s[D_SESSION],
             k->is_error, k->s[D_ERROR], k->status, k->round);
    return buf;
}

/* The string dimensions each view keeps, per rollup.h, by bit. */
static unsigned view_dims(int view)
{
    const unsigned pm = 1u << D_PROVIDER | 1u << D_MODEL;
    switch (view) {
    case ROLLUP_MODEL:
        return pm;
    case ROLLUP_AGENT:
        return pm | 1u << D_AGENT;
    case ROLLUP_USER:
        return pm | 1u << D_AGENT | 1u << D_USER;
    case ROLLUP_USERS:
        return 1u << D_USER;
    case ROLLUP_AGENTS:
        return 1u << D_AGENT;
    case ROLLUP_ERRTYPES:
        return pm | 1u << D_ERROR;
    case ROLLUP_TOTAL:
        return 0;
    case ROLLUP_ERRORS:
        return pm | 1u << D_AGENT | 1u << D_USER | 1u << D_ERROR;
    case ROLLUP_SESSION:
        return pm | 1u << D_AGENT | 1u << D_USER | 1u << D_SESSION;
    case V_SESSION:
        return 1u << D_SESSION;
    default: /* V_ROUND */
        return pm | 1u << D_SESSION;
    }
}

/* Whether view keeps histograms (rollup.h). */
static int view_hist(int view)
{
    return view != ROLLUP_USERS && view != ROLLUP_ERRORS &&
           view != ROLLUP_ERRTYPES;
}

/* Whether event r counts in view. */
static int view_takes(int view, const struct raw *r)
{
    if (view == ROLLUP_ERRORS || view == ROLLUP_ERRTYPES)
        return r->is_error;
    if (view == ROLLUP_SESSION || view == V_SESSION || view == V_ROUND)
        return r->s[D_SESSION][0] != '\0';
    return 1;
}

/* The key of event r's row in view at resolution res (seconds). */
static struct key view_key(int view, int res, const struct raw *r)
{
    struct key k;
    memset(&k, 0, sizeof(k));
    unsigned dims = view_dims(view);
    k.ws = r->ws;
    k.ts = view < ROLLUP_NCUBES ? r->ts - r->ts % (res * 1000LL) : 0;
    for (int d = 0; d < D_N; d++)
        k.s[d] = (dims & 1u << d) ? r->s[d] : "";
    k.is_error = view < ROLLUP_NCUBES && r->is_error;
    k.status = view == ROLLUP_ERRORS || view == ROLLUP_ERRTYPES ? r->status : 0;
    k.round = view == V_ROUND ? r->round : 0;
    return k;
}

/* One event in the view being checked, with its row's key. */
struct item {
    struct key k;        /* the row it counts in */
    const struct raw *r; /* the event */
};

/* Order events by their row's key, then by seq (a qsort comparator). */
static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = key_cmp(&x->k, &y->k);
    if (c != 0)
        return c;
    return x->r->seq < y->r->seq ? -1 : x->r->seq > y->r->seq;
}

/* The rows of each view, in key_cmp order, in one column layout:
 * 0 ws, 1 ts, 2-6 provider model agent user session, 7 is_error,
 * 8 error_type, 9 status, 10 round, 11 calls, 12 errors, 13-17 tokens,
 * 18 cost_nusd, 19 lat_n, 20 lat_sum, 21 ttft_n, 22 ttft_sum, 23 first_ms,
 * 24 last_ms, 25 lat_hist, 26 ttft_hist, 27 user, 28 agent, 29 rounds. */
#define MEASURES                                                               \
    "calls, errors, input_tokens, output_tokens, cache_read_tokens, "          \
    "cache_write_tokens, reasoning_tokens, cost_nusd, lat_n, lat_sum, "
static const char *const view_sql[] = {
    "SELECT ws, ts, provider, model, agent, user, session, is_error, "
    "error_type, status, 0, " MEASURES "ttft_n, ttft_sum, first_ms, last_ms, "
    "lat_hist, ttft_hist, '', '', 0 FROM rollups WHERE cube = ?1 AND "
    "res = ?2 ORDER BY ws, ts, provider, model, agent, user, session, "
    "is_error, error_type, status",
    "SELECT ws, 0, '', '', '', '', session, 0, '', 0, 0, " MEASURES
    "0, 0, started_ms, last_ms, NULL, NULL, user, agent, rounds FROM "
    "sessions ORDER BY ws, session",
    "SELECT ws, 0, provider, model, '', '', session, 0, '', 0, round, " MEASURES
    "0, 0, first_ms, last_ms, lat_hist, NULL, '', '', 0 FROM session_rounds "
    "ORDER BY ws, provider, model, session, round",
};

/* Check that blob (column col of st) is a well-formed histogram blob whose
 * counts are those of the values v[0..n) (negative: absent). */
static void check_hist(sqlite3_stmt *st, int col, const double *v, size_t n,
                       const char *what, const struct key *k)
{
    static uint32_t want[HIST_BUCKETS], got[HIST_BUCKETS];
    memset(want, 0, sizeof(want));
    memset(got, 0, sizeof(got));
    int64_t nwant = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= 0) {
            want[hist_bucket(v[i])]++;
            nwant++;
        }
    const unsigned char *b = sqlite3_column_blob(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    EXPECT(sqlite3_column_type(st, col) == SQLITE_BLOB || len == 0,
           "%s of %s is not a blob", what, key_str(k));
    EXPECT(len % HIST_BLOB_ENT == 0, "%s of %s: length %zu", what, key_str(k),
           len);
    for (size_t i = 0; i < len; i += HIST_BLOB_ENT) {
        unsigned bk = (unsigned)b[i] | (unsigned)b[i + 1] << 8;
        EXPECT(i == 0 || bk > ((unsigned)b[i - HIST_BLOB_ENT] |
                               (unsigned)b[i - HIST_BLOB_ENT + 1] << 8),
               "%s of %s: buckets not increasing", what, key_str(k));
        EXPECT(b[i + 2] | b[i + 3] | b[i + 4] | b[i + 5],
               "%s of %s: zero count", what, key_str(k));
    }
    int64_t total = hist_blob_add(b, len, got);
    EXPECT(total == nwant, "%s of %s: %lld values, not %lld", what, key_str(k),
           (long long)total, (long long)nwant);
    for (int i = 0; i < HIST_BUCKETS; i++)
        EXPECT(got[i] == want[i], "%s of %s: bucket %d has %u, not %u", what,
               key_str(k), i, got[i], want[i]);
}

/* Check the row at st against the events of one group. */
static void check_group(sqlite3_stmt *st, int view, const struct item *g,
                        size_t n)
{
    const struct key *k = &g[0].k;
    int64_t calls = 0, errors = 0, tok[SHM_TOK_N] = {0}, cost = 0;
    int64_t lat_n = 0, ttft_n = 0, first = INT64_MAX, last = INT64_MIN;
    double lat_sum = 0, ttft_sum = 0;
    const char *user = "", *agent = "";
    static unsigned char rounds_seen[1024];
    int rounds = 0;
    memset(rounds_seen, 0, sizeof(rounds_seen));
    static double lat[1 << 16], ttft[1 << 16];
    EXPECT(n < sizeof(lat) / sizeof(lat[0]), "group of %zu events", n);
    for (size_t i = 0; i < n; i++) {
        const struct raw *r = g[i].r;
        calls++;
        errors += r->is_error;
        for (int t = 0; t < SHM_TOK_N; t++)
            tok[t] += r->tok[t];
        cost += r->cost_nusd;
        if (r->lat >= 0) {
            lat_n++;
            lat_sum += r->lat;
        }
        if (r->ttft >= 0) {
            ttft_n++;
            ttft_sum += r->ttft;
        }
        lat[i] = r->lat;
        ttft[i] = r->ttft;
        if (r->ts < first)
            first = r->ts;
        if (r->ts > last)
            last = r->ts;
        /* Items are in seq order within the group: the first named wins. */
        if (user[0] == '\0')
            user = r->s[D_USER];
        if (agent[0] == '\0')
            agent = r->s[D_AGENT];
        if (r->round >= 0) {
            EXPECT(r->round < (int)sizeof(rounds_seen), "round %d", r->round);
            rounds += !rounds_seen[r->round];
            rounds_seen[r->round] = 1;
        }
    }
    const char *name = view == V_SESSION ? "sessions"
                       : view == V_ROUND ? "session_rounds"
                                         : "rollups";
#define CHECK_COL(col, want)                                                   \
    EXPECT(sqlite3_column_int64(st, col) == (want),                            \
           "%s row %s: column %d is %lld, brute force %lld", name, key_str(k), \
           col, (long long)sqlite3_column_int64(st, col), (long long)(want))
    CHECK_COL(11, calls);
    CHECK_COL(12, errors);
    for (int t = 0; t < SHM_TOK_N; t++)
        CHECK_COL(13 + t, tok[t]);
    CHECK_COL(18, cost);
    CHECK_COL(19, lat_n);
    EXPECT(sqlite3_column_double(st, 20) == lat_sum,
           "%s row %s: lat_sum %.17g, brute force %.17g", name, key_str(k),
           sqlite3_column_double(st, 20), lat_sum);
    CHECK_COL(23, first);
    CHECK_COL(24, last);
    if (view < ROLLUP_NCUBES) {
        CHECK_COL(21, ttft_n);
        EXPECT(sqlite3_column_double(st, 22) == ttft_sum,
               "%s row %s: ttft_sum %.17g, brute force %.17g", name, key_str(k),
               sqlite3_column_double(st, 22), ttft_sum);
        if (view_hist(view))
            check_hist(st, 26, ttft, n, "ttft_hist", k);
        else
            EXPECT(sqlite3_column_bytes(st, 26) == 0,
                   "rollups row %s: a cube without histograms has ttft_hist",
                   key_str(k));
    }
    if (view != V_SESSION && view_hist(view))
        check_hist(st, 25, lat, n, "lat_hist", k);
    else if (view != V_SESSION)
        EXPECT(sqlite3_column_bytes(st, 25) == 0,
               "rollups row %s: a cube without histograms has lat_hist",
               key_str(k));
    if (view == V_SESSION) {
        EXPECT(strcmp((const char *)sqlite3_column_text(st, 27), user) == 0,
               "session %s: user '%s', first named '%s'", key_str(k),
               sqlite3_column_text(st, 27), user);
        EXPECT(strcmp((const char *)sqlite3_column_text(st, 28), agent) == 0,
               "session %s: agent '%s', first named '%s'", key_str(k),
               sqlite3_column_text(st, 28), agent);
        CHECK_COL(29, rounds);
    }
#undef CHECK_COL
}

/* Compare every row of view (at res for a cube) with the brute force. */
static void check_view(sqlite3 *db, const struct raws *rs, int view, int res)
{
    struct item *it = calloc(rs->n + 1, sizeof(*it));
    ck_assert_ptr_nonnull(it);
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++)
        if (view_takes(view, &rs->r[i])) {
            it[n].k = view_key(view, res, &rs->r[i]);
            it[n++].r = &rs->r[i];
        }
    qsort(it, n, sizeof(*it), item_cmp);
    sqlite3_stmt *st;
    const char *sql = view_sql[view < ROLLUP_NCUBES ? 0 : view - V_SESSION + 1];
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, view);
    sqlite3_bind_int(st, 2, res);
    size_t i = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct key rk;
        rk.ws = sqlite3_column_int64(st, 0);
        rk.ts = sqlite3_column_int64(st, 1);
        static const int scol[D_N] = {2, 3, 4, 5, 6, 8};
        for (int d = 0; d < D_N; d++)
            rk.s[d] = (const char *)sqlite3_column_text(st, scol[d]);
        rk.is_error = sqlite3_column_int(st, 7);
        rk.status = sqlite3_column_int(st, 9);
        rk.round = sqlite3_column_int(st, 10);
        char rks[512];
        snprintf(rks, sizeof(rks), "%s", key_str(&rk));
        EXPECT(i < n, "view %d res %d: row %s has no events", view, res, rks);
        int c = key_cmp(&rk, &it[i].k);
        EXPECT(c >= 0, "view %d res %d: row %s has no events", view, res, rks);
        EXPECT(c == 0, "view %d res %d: row %s; no row for %s", view, res, rks,
               key_str(&it[i].k));
        size_t j = i + 1;
        while (j < n && key_cmp(&it[j].k, &it[i].k) == 0)
            j++;
        check_group(st, view, it + i, j - i);
        i = j;
    }
    EXPECT(i == n, "view %d res %d: no row for %s", view, res,
           key_str(&it[i].k));
    sqlite3_finalize(st);
    free(it);
}

/* The GROUP BY over sessions that session_days must equal (rollup.h). */
#define SDAYS_BRUTE                                                            \
    "SELECT ws, started_ms - started_ms % 86400000 AS day_ms, count(*) AS n, " \
    "sum(calls) AS c, sum(errors) AS e, sum(input_tokens) AS t1, "             \
    "sum(output_tokens) AS t2, sum(cache_read_tokens) AS t3, "                 \
    "sum(cache_write_tokens) AS t4, sum(reasoning_tokens) AS t5, "             \
    "sum(cost_nusd) AS cost, sum(rounds) AS r, sum(lat_n) AS ln, "             \
    "total(lat_sum) AS ls, sum(errors > 0) AS es, sum(last_ms - started_ms) "  \
    "AS du FROM sessions GROUP BY 1, 2"

/* Check that session_days equals SDAYS_BRUTE row for row: every integer
 * exactly, lat_sum (sums of reals taken in another order) to 1e-9. */
static void verify_session_days(sqlite3 *db)
{
    long long groups = q_int(db, "SELECT count(*) FROM (" SDAYS_BRUTE ")");
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM session_days"), groups);
    long long same = q_int(
        db, "SELECT count(*) FROM (" SDAYS_BRUTE ") b JOIN session_days d "
            "USING (ws, day_ms) WHERE d.sessions = b.n AND d.calls = b.c AND "
            "d.errors = b.e AND d.input_tokens = b.t1 AND d.output_tokens = "
            "b.t2 AND d.cache_read_tokens = b.t3 AND d.cache_write_tokens = "
            "b.t4 AND d.reasoning_tokens = b.t5 AND d.cost_nusd = b.cost AND "
            "d.rounds = b.r AND d.lat_n = b.ln AND abs(d.lat_sum - b.ls) <= "
            "1e-9 * max(1, abs(b.ls)) AND d.err_sessions = b.es AND "
            "d.dur_ms = b.du");
    ck_assert_msg(same == groups,
                  "session_days: %lld of %lld days equal the sessions' sums",
                  same, groups);
}

/* Check that the rollups, sessions and rounds are exactly the aggregate of
 * the events 1..meta.rollup_seq, and that rollup_seq is want_seq. */
static void verify_all(sqlite3 *db, int64_t want_seq)
{
    ck_assert_int_eq(rollup_seq(db), want_seq);
    struct raws rs = raws_load(db, want_seq);
    static const int res[4] = {ROLLUP_RES_MINUTE, ROLLUP_RES_HOUR,
                               ROLLUP_RES_DAY, ROLLUP_RES_WEEK};
    /* rollup.h: minute rows only in the model cube, session rows only by
     * the hour. */
    for (int v = 0; v < ROLLUP_NCUBES; v++)
        for (int r = v == ROLLUP_MODEL || v == ROLLUP_TOTAL ? 0 : 1;
             r < (v == ROLLUP_SESSION ? 2 : 4); r++)
            check_view(db, &rs, v, res[r]);
    check_view(db, &rs, V_SESSION, 0);
    check_view(db, &rs, V_ROUND, 0);
    verify_session_days(db);
    /* Nothing outside the documented cubes and resolutions. */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM rollups WHERE NOT "
                               "((cube IN (0, 8) AND res IN (60, 3600, 86400, "
                               "604800)) OR (cube IN (1, 2, 3, 4, 6, 7) AND "
                               "res IN (3600, 86400, 604800)) OR (cube = 5 "
                               "AND res = 3600))"),
                     0);
    free(rs.r);
}

/* ---- whole tables, for comparisons ---- */

/* A growing text buffer. */
struct sbuf {
    char *p;         /* NUL-terminated text, malloc'ed */
    size_t len, cap; /* bytes used (without the NUL) and allocated */
};

/* Append formatted text to b. */
static void sb_put(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_put(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        EXPECT(n >= 0, "vsnprintf failed");
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 64;
        b->p = realloc(b->p, b->cap);
        EXPECT(b->p != NULL, "out of memory");
    }
}

/* Every row of the rollup tables and meta.rollup_seq as lines of text, in
 * key order; reals in hexadecimal, so equal text means equal values. */
static char *dump_tables(sqlite3 *db)
{
    static const char *const sql[] = {
        "SELECT * FROM rollups ORDER BY ws, cube, res, ts, provider, model, "
        "agent, user, session, is_error, error_type, status",
        "SELECT * FROM sessions ORDER BY ws, session",
        "SELECT * FROM session_rounds ORDER BY ws, session, round, provider, "
        "model",
        /* lat_sum apart: its float sums depend on the order of flushes. */
        "SELECT ws, day_ms, sessions, calls, errors, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, cost_nusd, rounds, lat_n, err_sessions, dur_ms "
        "FROM session_days ORDER BY ws, day_ms",
        "SELECT * FROM meta WHERE key = 'rollup_seq'",
    };
    struct sbuf b = {malloc(4096), 0, 4096};
    ck_assert_ptr_nonnull(b.p);
    b.p[0] = '\0';
    for (size_t q = 0; q < sizeof(sql) / sizeof(sql[0]); q++) {
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, sql[q], -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            sb_put(&b, "%zu:", q);
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                switch (sqlite3_column_type(st, i)) {
                case SQLITE_INTEGER:
                    sb_put(&b, " %lld", (long long)sqlite3_column_int64(st, i));
                    break;
                case SQLITE_FLOAT:
                    sb_put(&b, " %a", sqlite3_column_double(st, i));
                    break;
                case SQLITE_TEXT:
                    sb_put(&b, " '%s'", sqlite3_column_text(st, i));
                    break;
                case SQLITE_BLOB: {
                    const unsigned char *p = sqlite3_column_blob(st, i);
                    sb_put(&b, " x'");
                    for (int k = 0; k < sqlite3_column_bytes(st, i); k++)
                        sb_put(&b, "%02x", p[k]);
                    sb_put(&b, "'");
                    break;
                }
                default:
                    sb_put(&b, " NULL");
                }
            }
            sb_put(&b, "\n");
        }
        sqlite3_finalize(st);
    }
    return b.p;
}

/* Assert that two dumps are equal, quoting the first line that differs. */
static void dumps_equal(const char *a, const char *b, const char *what)
{
    if (strcmp(a, b) == 0)
        return;
    size_t i = 0, line = 0;
    while (a[i] == b[i]) {
        if (a[i] == '\n')
            line = i + 1;
        i++;
    }
    int la = (int)strcspn(a + line, "\n"), lb = (int)strcspn(b + line, "\n");
    ck_abort_msg("%s: tables differ at\n  %.*s\nversus\n  %.*s", what,
                 la < 400 ? la : 400, a + line, lb < 400 ? lb : 400, b + line);
}

/* ------------------------------------------------------------------ */

/* Thousands of events, flushed every few batches with every flush touching
 * many minutes, hours and days: every rollup row, session and round equals
 * the brute-force aggregate of the events. */
START_TEST(test_exact_vs_brute_force)
{
    struct col c;
    col_init(&c, "t.db");
    struct gen g = gen_new(0x5eed0001);
    int64_t top = 0;
    for (int b = 0; b < 90; b++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
        if (b % 3 == 2)
            ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    }
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_uint_eq(col_aggr_pending(c.aggr), 0);
    sqlite3 *db = c.store.db;
    ck_assert_int_ge(q_int(db, "SELECT count(*) FROM events"), 3000);
    verify_all(db, top);

    /* The generator covered what it should. */
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM events WHERE user IS "
                               "NULL AND agent IS NULL AND session IS NULL "
                               "AND round IS NULL AND latency_ms IS NULL"),
                     0);
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM events WHERE is_error "
                               "AND status IS NULL"),
                     0);
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM events WHERE is_error "
                               "AND error_type IS NULL"),
                     0);
    ck_assert_int_gt(q_int(db,
                           "SELECT count(*) FROM events WHERE ts % 86400000 "
                           "= 0"),
                     0);
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM events WHERE "
                               "latency_ms < 1"),
                     0);
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM sessions WHERE rounds "
                               "> 1"),
                     0);

    /* The dimensions each cube keeps, spelled out (rollup.h). */
    static const char *const kept[] = {
        "cube = 0 AND (agent <> '' OR user <> '' OR session <> '' OR "
        "error_type <> '' OR status <> 0)",
        "cube = 1 AND (user <> '' OR session <> '' OR error_type <> '' OR "
        "status <> 0)",
        "cube = 2 AND (session <> '' OR error_type <> '' OR status <> 0)",
        "cube = 3 AND (provider <> '' OR model <> '' OR agent <> '' OR "
        "session <> '' OR error_type <> '' OR status <> 0)",
        "cube = 6 AND (provider <> '' OR model <> '' OR user <> '' OR "
        "session <> '' OR error_type <> '' OR status <> 0)",
        "cube = 7 AND (agent <> '' OR user <> '' OR session <> '' OR "
        "is_error <> 1)",
        "cube = 4 AND (session <> '' OR is_error <> 1)",
        "cube = 5 AND (session = '' OR error_type <> '' OR status <> 0 OR "
        "res <> 3600)",
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM rollups WHERE %s",
                 kept[i]);
        ck_assert_msg(q_int(db, sql) == 0, "rows with %s", kept[i]);
    }
    /* And they are filled where the events had them. */
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM rollups WHERE cube = 4 "
                               "AND status = 503 AND error_type = 'server' "
                               "AND agent <> '' AND user <> ''"),
                     0);
    ck_assert_int_gt(q_int(db, "SELECT count(*) FROM rollups WHERE cube = 5 "
                               "AND is_error = 1 AND agent <> '' AND "
                               "user <> ''"),
                     0);
    ck_assert_int_eq(q_int(db, "SELECT sum(calls) FROM rollups WHERE cube = 4 "
                               "AND res = 86400"),
                     q_int(db, "SELECT count(*) FROM events WHERE is_error"));
    col_fini(&c);
}
END_TEST

/* A session's user and agent are the first ones its events named, in the
 * order the events were stored (not the order of their timestamps), even
 * when one flush holds several. */
START_TEST(test_session_first_named)
{
    static const char *const names[] = {"ann", "bob", "cat", "dan"};
    struct col c;
    col_init(&c, "t.db");
    char body[1 << 15];
    size_t len = 0;
    put(body, sizeof(body), &len, "[");
    /* Per session: an event naming nobody, then three naming users and
     * agents in a rotating order, each in a minute of its own (so another
     * fine entry) and each earlier than the one stored before it. */
    for (int s = 0; s < 24; s++)
        for (int i = 0; i < 4; i++) {
            put(body, sizeof(body), &len,
                "%s{\"id\":\"f%d-%d\",\"provider\":\"p\",\"model\":\"m\","
                "\"cost_usd\":0,\"ts\":%lld,\"session\":\"s%d\"",
                s + i ? "," : "", s, i, T0 + (4 - i) * MIN_MS + s, s);
            if (i > 0)
                put(body, sizeof(body), &len,
                    ",\"user\":\"%s\",\"agent\":\"%s\"", names[(i + s) % 4],
                    names[(i * 3 + s) % 4]);
            put(body, sizeof(body), &len, "}");
        }
    put(body, sizeof(body), &len, "]");
    int64_t top = put_events(&c, "ws", body);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(c.store.db, top);
    ck_assert_int_eq(q_int(c.store.db, "SELECT count(*) FROM sessions WHERE "
                                       "user = '' OR agent = ''"),
                     0);
    /* A later flush does not replace them. */
    len = 0;
    put(body, sizeof(body), &len,
        "{\"id\":\"late\",\"provider\":\"p\",\"model\":\"m\",\"cost_usd\":0,"
        "\"ts\":%lld,\"session\":\"s0\",\"user\":\"zed\",\"agent\":\"zed\"}",
        T0);
    top = put_events(&c, "ws", body);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(c.store.db, top);
    col_fini(&c);
}
END_TEST

/* meta.rollup_seq follows the flushes; events at or below the watermark
 * are ignored; a flush with nothing new writes nothing. */
START_TEST(test_watermark)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    struct gen g = gen_new(0x5eed0002);
    ck_assert_int_eq(WATERMARK_ROWS(db), 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_int_eq(WATERMARK_ROWS(db), 0);
    int64_t s1 = 0;
    while (s1 == 0)
        s1 = run_batch(&c, &g, 1);
    ck_assert_uint_gt(col_aggr_pending(c.aggr), 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_uint_eq(col_aggr_pending(c.aggr), 0);
    ck_assert_int_eq(rollup_seq(db), s1);
    int64_t s2 = 0;
    for (int i = 0; i < 5; i++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > s2)
            s2 = s;
    }
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_int_eq(rollup_seq(db), s2);
    char *before = dump_tables(db);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    char *after = dump_tables(db);
    dumps_equal(before, after, "an empty flush");
    free(after);

    /* A new aggregator told the watermark ignores every stored event. */
    col_aggr_free(c.aggr);
    c.aggr = col_aggr_new();
    col_aggr_set_flushed(c.aggr, s2);
    struct raws rs = raws_load(db, INT64_MAX);
    for (size_t i = 0; i < rs.n; i++) {
        struct live_event e;
        raw_event(&rs.r[i], &e);
        col_aggr_add(c.aggr, rs.r[i].ws, &e, rs.r[i].seq);
    }
    free(rs.r);
    ck_assert_uint_eq(col_aggr_pending(c.aggr), 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    after = dump_tables(db);
    dumps_equal(before, after, "re-adding flushed events");
    free(after);
    free(before);

    /* The next events count once, and move the watermark. */
    int64_t s3 = 0;
    while (s3 == 0)
        s3 = run_batch(&c, &g, 1);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(db, s3);

    /* col_aggr_due: nothing pending, nothing due; then after
     * ROLLUP_FLUSH_MS, or once ingest paused ROLLUP_IDLE_MS. */
    int64_t t = T0 + DAY_MS;
    ck_assert_int_eq(col_aggr_flush(&c, t), 0);
    ck_assert_int_eq(col_aggr_due(c.aggr, t + 5000, t), 0);
    while (run_batch(&c, &g, 1) == 0)
        ;
    ck_assert_int_eq(col_aggr_due(c.aggr, t + 1, t + 1), 0);
    ck_assert_int_eq(col_aggr_due(c.aggr, t + ROLLUP_IDLE_MS + 1, t + 1), 1);
    ck_assert_int_eq(
        col_aggr_due(c.aggr, t + ROLLUP_FLUSH_MS, t + ROLLUP_FLUSH_MS), 1);
    col_fini(&c);
}
END_TEST

/* A collector that loses its aggregates (a crash before the flush) and
 * catches up with col_rebuild_rollups ends with the same tables as one
 * that never crashed. */
START_TEST(test_crash_catch_up)
{
    struct col a, b;
    col_init(&a, "a.db");
    col_init(&b, "b.db");
    struct gen ga = gen_new(0x5eed0003), gb = gen_new(0x5eed0003);
    int64_t top = 0;
    for (int k = 0; k < 45; k++) {
        int64_t sa = run_batch(&a, &ga, 1), sb = run_batch(&b, &gb, 1);
        ck_assert_int_eq(sa, sb);
        if (sa > top)
            top = sa;
        if (k % 4 == 3)
            ck_assert_int_eq(col_aggr_flush(&a, T0), 0);
        if (k % 5 == 4)
            ck_assert_int_eq(col_aggr_flush(&b, T0), 0);
        if (k == 21) /* a crash right after a flush */
            ck_assert_int_eq(col_aggr_flush(&b, T0), 0);
        if (k == 12 || k == 21 || k == 33 || k == 34) {
            col_aggr_free(b.aggr);
            b.aggr = col_aggr_new();
            ck_assert_int_eq(col_rebuild_rollups(&b), 0);
            ck_assert_int_eq(rollup_seq(b.store.db), top);
        }
    }
    ck_assert_int_eq(col_aggr_flush(&a, T0), 0);
    ck_assert_int_eq(col_aggr_flush(&b, T0), 0);
    verify_all(a.store.db, top);
    char *dump_a = dump_tables(a.store.db), *dump_b = dump_tables(b.store.db);
    dumps_equal(dump_a, dump_b, "after a crash");
    verify_session_days(b.store.db);
    free(dump_a);
    free(dump_b);

    /* A catch-up with nothing to do changes nothing. */
    col_aggr_free(b.aggr);
    b.aggr = col_aggr_new();
    dump_b = dump_tables(b.store.db);
    ck_assert_int_eq(col_rebuild_rollups(&b), 0);
    char *again = dump_tables(b.store.db);
    dumps_equal(dump_b, again, "an idle catch-up");
    free(dump_b);
    free(again);
    col_fini(&a);
    col_fini(&b);
}
END_TEST

/* A flush that cannot start (another connection holds the write lock)
 * writes nothing and keeps its aggregates; the next one writes them once. */
START_TEST(test_flush_fails_locked)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    struct gen g = gen_new(0x5eed0004);
    int64_t top = 0;
    for (int k = 0; k < 12; k++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
        if (k == 5)
            ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    }
    int64_t watermark = rollup_seq(db);
    uint64_t pending = col_aggr_pending(c.aggr);
    ck_assert_uint_gt(pending, 0);
    char *before = dump_tables(db);

    sqlite3 *other;
    ck_assert_int_eq(
        sqlite3_open_v2(tmp_path("t.db"), &other, SQLITE_OPEN_READWRITE, NULL),
        SQLITE_OK);
    exec_sql(other, "BEGIN IMMEDIATE");
    sqlite3_busy_timeout(db, 10);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(col_aggr_flush(&c, T0), -1);
    ck_assert_uint_eq(col_aggr_pending(c.aggr), pending);
    char *after = dump_tables(db);
    dumps_equal(before, after, "a flush that could not start");
    ck_assert_int_eq(rollup_seq(db), watermark);
    free(after);
    free(before);
    exec_sql(other, "ROLLBACK");
    sqlite3_close(other);

    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_uint_eq(col_aggr_pending(c.aggr), 0);
    verify_all(db, top);
    for (int k = 0; k < 4; k++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
    }
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(db, top);
    col_fini(&c);
}
END_TEST

/* A flush that fails part way through its transaction (at the rollups,
 * the rounds, the sessions or the watermark, each in turn) leaves no trace;
 * events added meanwhile join the next flush, and each counts once. */
START_TEST(test_flush_fails_midway)
{
    static const char *const tables[] = {"rollups", "session_rounds",
                                         "sessions", "session_days", "meta"};
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    struct gen g = gen_new(0x5eed0005);
    int64_t top = 0;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (int k = 0; k < 6; k++) {
            int64_t s = run_batch(&c, &g, 1);
            if (s > top)
                top = s;
        }
        int64_t watermark = rollup_seq(db);
        char *before = dump_tables(db), sql[256];
        snprintf(sql, sizeof(sql),
                 "CREATE TEMP TRIGGER fail_once BEFORE INSERT ON main.%s "
                 "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                 tables[t]);
        exec_sql(db, sql);
        ck_assert_int_eq(col_aggr_flush(&c, T0), -1);
        /* Retried at the ROLLUP_FLUSH_MS pace, not at every idle turn. */
        ck_assert_int_eq(col_aggr_due(c.aggr, T0 + ROLLUP_IDLE_MS + 1, T0 - 1),
                         0);
        ck_assert_int_eq(col_aggr_due(c.aggr, T0 + ROLLUP_FLUSH_MS, T0 - 1), 1);
        char *after = dump_tables(db);
        dumps_equal(before, after, tables[t]);
        ck_assert_int_eq(rollup_seq(db), watermark);
        free(after);
        free(before);
        exec_sql(db, "DROP TRIGGER fail_once");
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
        ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
        verify_all(db, top);
    }
    col_fini(&c);
}
END_TEST

/* The address space of this process in bytes (VmSize), or 0. */
static uint64_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return (uint64_t)kb * 1024;
}

/* An event the aggregator could not count (out of memory, forced here with
 * an address-space limit) is recovered by the re-read it asks for: events
 * counted after it must not carry the watermark past it.  The re-read is
 * what the server's housekeeping does: a flush, then col_rebuild_rollups. */
START_TEST(test_lost_event_reread)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    struct gen g = gen_new(0x5eed0007);
    for (int k = 0; k < 4; k++)
        run_batch(&c, &g, 1);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    int64_t watermark = rollup_seq(db);

    /* Events with long names, each its own fine entry: stored, not yet
     * counted. */
    static char body[1 << 18];
    const char *ws_of[EV_MAX_BATCH];
    for (int i = 0; i < EV_MAX_BATCH; i++)
        ws_of[i] = "ws-a";
    int id = 0;
    for (int b = 0; b < 15; b++) {
        size_t len = 0;
        put(body, sizeof(body), &len, "[");
        for (int i = 0; i < 400; i++, id++)
            put(body, sizeof(body), &len,
                "%s{\"id\":\"big%d\",\"provider\":\"p\",\"model\":\"%0120d\","
                "\"user\":\"%0120d\",\"agent\":\"%0120d\","
                "\"session\":\"%0120d\",\"cost_usd\":1,\"ts\":%lld,"
                "\"latency_ms\":%d}",
                i ? "," : "", id, id, id, id, id, (long long)(T0 + id),
                id % 5000);
        put(body, sizeof(body), &len, "]");
        insert_body(&c, body, ws_of, 0);
    }
    struct raws rs = raws_load(db, INT64_MAX);
    size_t i = 0;
    while (i < rs.n && rs.r[i].seq <= watermark)
        i++;

    /* Count them with little room left for the aggregator to grow. */
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    uint64_t vm = vm_size();
    ck_assert_uint_gt(vm, 0);
    low = old;
    low.rlim_cur = (rlim_t)(vm + (512 << 10));
    if (old.rlim_max != RLIM_INFINITY && low.rlim_cur > old.rlim_max)
        low.rlim_cur = old.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &low), 0);
    size_t lost = 0;
    for (; i < rs.n && lost == 0; i++) {
        struct live_event e;
        raw_event(&rs.r[i], &e);
        col_aggr_add(c.aggr, rs.r[i].ws, &e, rs.r[i].seq);
        if (col_aggr_rescan_needed(c.aggr))
            lost = i + 1;
    }
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_msg(lost > 0, "the aggregator never ran out of memory");

    /* The rest, and more, as if nothing happened. */
    for (; i < rs.n; i++) {
        struct live_event e;
        raw_event(&rs.r[i], &e);
        col_aggr_add(c.aggr, rs.r[i].ws, &e, rs.r[i].seq);
    }
    free(rs.r);
    int64_t top = 0;
    for (int k = 0; k < 4; k++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
    }
    ck_assert_int_eq(col_aggr_rescan_needed(c.aggr), 1);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    ck_assert_int_eq(col_rebuild_rollups(&c), 0);
    ck_assert_int_eq(col_aggr_rescan_needed(c.aggr), 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(db, top);

    /* Counting goes on as usual afterwards. */
    for (int k = 0; k < 3; k++) {
        int64_t s = run_batch(&c, &g, 1);
        if (s > top)
            top = s;
    }
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_all(db, top);
    col_fini(&c);
}
END_TEST

/* Bytes the allocator has handed out and not had back. */
static uint64_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return (uint64_t)m.uordblks + m.hblkhd;
}

/* Flushing many fine entries that share rows stays within a small multiple
 * of the rows' size, also when flushes fail and are tried again (a row
 * takes one histogram merge per fine entry below it); and once a big flush
 * is done, its tables are given back. */
START_TEST(test_flush_memory_bounded)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    /* A day of one model: 20 users, each call in a minute of its own,
     * latencies over the whole histogram. */
    static char body[1 << 18];
    const char *ws_of[EV_MAX_BATCH];
    for (int i = 0; i < EV_MAX_BATCH; i++)
        ws_of[i] = "ws-a";
    struct gen g = gen_new(0x5eed0008);
    int64_t top = 0;
    for (int m = 0; m < 1440; m += 20) {
        size_t len = 0;
        put(body, sizeof(body), &len, "[");
        for (int k = 0; k < 20 * 40; k++)
            put(body, sizeof(body), &len,
                "%s{\"id\":\"m%d-%d\",\"provider\":\"p\",\"model\":\"m\","
                "\"agent\":\"a\",\"user\":\"u%d\",\"cost_usd\":1,"
                "\"ts\":%lld,\"latency_ms\":%lld,\"ttft_ms\":1}",
                k ? "," : "", m, k, k % 40,
                (long long)(T0 + (m + k / 40) * MIN_MS),
                (long long)(1 + gen_below(&g, 3000000)));
        put(body, sizeof(body), &len, "]");
        int64_t s = insert_body(&c, body, ws_of, 1);
        if (s > top)
            top = s;
    }
    ck_assert_uint_eq(col_aggr_pending(c.aggr), 1440 * 40);

    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    uint64_t vm = vm_size();
    ck_assert_uint_gt(vm, 0);
    low = old;
    low.rlim_cur = (rlim_t)(vm + (200 << 20));
    if (old.rlim_max != RLIM_INFINITY && low.rlim_cur > old.rlim_max)
        low.rlim_cur = old.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &low), 0);
    exec_sql(db, "CREATE TEMP TRIGGER fail_meta BEFORE INSERT ON main.meta "
                 "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(col_aggr_flush(&c, T0), -1);
    exec_sql(db, "DROP TRIGGER fail_meta");
    int rc = col_aggr_flush(&c, T0);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_int_eq(rc, 0);
    verify_all(db, top);

    uint64_t big = heap_in_use();
    size_t len = 0;
    put(body, sizeof(body), &len,
        "{\"id\":\"one\",\"provider\":\"p\",\"model\":\"m\",\"cost_usd\":1,"
        "\"ts\":%lld}",
        T0);
    const int64_t s = insert_body(&c, body, ws_of, 1);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    uint64_t small = heap_in_use();
    ck_assert_msg(small + (16 << 20) < big,
                  "in use after a big flush %llu bytes, after a small one "
                  "%llu",
                  (unsigned long long)big, (unsigned long long)small);
    verify_all(db, s);
    col_fini(&c);
}
END_TEST

/* ---- histogram blobs ---- */

/* Dense counts of a blob (asserting it is well formed). */
static void blob_counts(const unsigned char *b, size_t len, uint32_t *counts)
{
    memset(counts, 0, HIST_BUCKETS * sizeof(uint32_t));
    ck_assert_int_ge(hist_blob_add(b, len, counts), 0);
    for (size_t i = HIST_BLOB_ENT; i < len; i += HIST_BLOB_ENT)
        EXPECT(((unsigned)b[i] | (unsigned)b[i + 1] << 8) >
                   ((unsigned)b[i - 6] | (unsigned)b[i - 5] << 8),
               "buckets not increasing at byte %zu", i);
}

/* Encode, add and merge round trip; the format is the documented one. */
START_TEST(test_blob_codec)
{
    static uint32_t a[HIST_BUCKETS], b[HIST_BUCKETS], got[HIST_BUCKETS];
    static unsigned char ba[HIST_BUCKETS * HIST_BLOB_ENT],
        bb[HIST_BUCKETS * HIST_BLOB_ENT], bm[2 * HIST_BUCKETS * HIST_BLOB_ENT];
    memset(a, 0, sizeof(a));
    ck_assert_uint_eq(hist_blob_encode(a, ba), 0);
    ck_assert_int_eq(hist_blob_add(ba, 0, got), 0);
    ck_assert_int_eq(hist_blob_add(NULL, 0, got), 0);

    /* The exact bytes: little-endian bucket, then little-endian count. */
    a[3] = 1;
    a[0x123] = 0x01020304;
    a[HIST_BUCKETS - 1] = UINT32_MAX;
    size_t la = hist_blob_encode(a, ba);
    static const unsigned char want[] = {3,    0,    1,    0,    0,    0,
                                         0x23, 0x01, 4,    3,    2,    1,
                                         0xff, 0x02, 0xff, 0xff, 0xff, 0xff};
    ck_assert_uint_eq(la, sizeof(want));
    ck_assert_mem_eq(ba, want, sizeof(want));
    memset(got, 0, sizeof(got));
    ck_assert_int_eq(hist_blob_add(ba, la, got), 1 + 0x01020304LL + UINT32_MAX);
    ck_assert_mem_eq(got, a, sizeof(a));

    /* Random pairs: merge equals the sum, in either order, and merging
     * with an empty blob is the identity. */
    struct gen g = gen_new(0x5eed0006);
    for (int round = 0; round < 200; round++) {
        memset(a, 0, sizeof(a));
        memset(b, 0, sizeof(b));
        int na = (int)gen_below(&g, round % 10 == 0 ? HIST_BUCKETS : 40);
        int nb = (int)gen_below(&g, 40);
        for (int i = 0; i < na; i++)
            a[gen_below(&g, HIST_BUCKETS)] += 1 + (uint32_t)gen_below(&g, 1000);
        for (int i = 0; i < nb; i++)
            b[gen_below(&g, round % 3 ? 60 : HIST_BUCKETS)] +=
                1 + (uint32_t)gen_below(&g, 1000);
        la = hist_blob_encode(a, ba);
        size_t lb = hist_blob_encode(b, bb);
        blob_counts(ba, la, got);
        ck_assert_mem_eq(got, a, sizeof(a));
        for (int order = 0; order < 2; order++) {
            long lm = order ? hist_blob_merge(bb, lb, ba, la, bm)
                            : hist_blob_merge(ba, la, bb, lb, bm);
            ck_assert_int_ge(lm, 0);
            ck_assert_uint_le((size_t)lm, la + lb);
            blob_counts(bm, (size_t)lm, got);
            for (int i = 0; i < HIST_BUCKETS; i++)
                EXPECT(got[i] == a[i] + b[i], "bucket %d: %u, not %u + %u", i,
                       got[i], a[i], b[i]);
        }
        long lm = hist_blob_merge(ba, la, NULL, 0, bm);
        ck_assert_int_eq(lm, (long)la);
        ck_assert_mem_eq(bm, ba, la);
        lm = hist_blob_merge(NULL, 0, bb, lb, bm);
        ck_assert_int_eq(lm, (long)lb);
        ck_assert_mem_eq(bm, bb, lb);
    }
}
END_TEST

/* Malformed blobs are refused, wherever they appear. */
START_TEST(test_blob_malformed)
{
    static uint32_t counts[HIST_BUCKETS];
    unsigned char good[12] = {1, 0, 5, 0, 0, 0, 9, 0, 1, 0, 0, 0};
    unsigned char bad_bucket[6] = {
        HIST_BUCKETS & 0xff, HIST_BUCKETS >> 8, 1, 0, 0, 0};
    unsigned char huge_bucket[6] = {0xff, 0xff, 1, 0, 0, 0};
    unsigned char last_bucket[6] = {
        (HIST_BUCKETS - 1) & 0xff, (HIST_BUCKETS - 1) >> 8, 1, 0, 0, 0};
    unsigned char out[64];
    for (size_t len = 1; len < sizeof(good); len++) {
        if (len % HIST_BLOB_ENT == 0)
            continue;
        ck_assert_int_eq(hist_blob_add(good, len, counts), -1);
        ck_assert_int_eq(hist_blob_merge(good, len, good, 6, out), -1);
        ck_assert_int_eq(hist_blob_merge(good, 6, good, len, out), -1);
        ck_assert_int_eq(hist_blob_merge(good, len, NULL, 0, out), -1);
    }
    ck_assert_int_eq(hist_blob_add(bad_bucket, 6, counts), -1);
    ck_assert_int_eq(hist_blob_add(huge_bucket, 6, counts), -1);
    ck_assert_int_eq(hist_blob_merge(bad_bucket, 6, good, 12, out), -1);
    ck_assert_int_eq(hist_blob_merge(good, 12, bad_bucket, 6, out), -1);
    ck_assert_int_eq(hist_blob_merge(huge_bucket, 6, NULL, 0, out), -1);
    memset(counts, 0, sizeof(counts));
    ck_assert_int_eq(hist_blob_add(last_bucket, 6, counts), 1);
    ck_assert_uint_eq(counts[HIST_BUCKETS - 1], 1);
    ck_assert_int_eq(hist_blob_merge(last_bucket, 6, good, 12, out), 18);
}
END_TEST

/* Run a query returning one blob; its hex in buf, or "ERROR: message". */
static const char *q_hex(sqlite3 *db, const char *sql)
{
    static char buf[4096];
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        snprintf(buf, sizeof(buf), "ERROR: %s", sqlite3_errmsg(db));
    } else if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
        snprintf(buf, sizeof(buf), "NULL");
    } else {
        const unsigned char *p = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        buf[0] = '\0';
        for (int i = 0; i < n && 2 * i + 3 < (int)sizeof(buf); i++)
            snprintf(buf + 2 * i, 3, "%02x", p[i]);
    }
    sqlite3_finalize(st);
    return buf;
}

/* tt_hist_merge, tt_hist_sum and tt_hist_of. */
START_TEST(test_blob_sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ck_assert_int_eq(rollup_sql_register(db), SQLITE_OK);
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(x'010002000000', "
                               "x'010003000000050001000000')"),
                     "010005000000050001000000");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(NULL, x'020001000000')"),
                     "020001000000");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(x'020001000000', NULL)"),
                     "020001000000");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(NULL, NULL)"), "");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(x'0100020000', x'')"),
                     "ERROR: malformed histogram blob");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_merge(x'', x'000301000000')"),
                     "ERROR: malformed histogram blob");

    exec_sql(db, "CREATE TABLE h(g INTEGER, b BLOB, v REAL);"
                 "INSERT INTO h VALUES(1, x'010001000000', 0.5),"
                 "(1, x'01000200000003000a000000', NULL),"
                 "(1, NULL, 1.0), (1, x'', 1.01),"
                 "(2, x'020001000000', 3600000), (2, x'0200', 1e9),"
                 "(3, x'ffff01000000', -5), (4, x'070001000000', NULL)");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_sum(b) FROM h WHERE g = 1"),
                     "01000300000003000a000000");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_sum(b) FROM h WHERE g = 2"),
                     "ERROR: malformed histogram blob");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_sum(b) FROM h WHERE g = 3"),
                     "ERROR: malformed histogram blob");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_sum(b) FROM h WHERE g = 9"), "");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_of(v) FROM h WHERE g = 9"), "");
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_of(v) FROM h WHERE v IS NULL"),
                     "");
    ck_assert_str_eq(q_hex(db, "SELECT CAST(group_concat(hex(s), ',') AS "
                               "BLOB) FROM (SELECT g, tt_hist_sum(b) AS s "
                               "FROM h WHERE g IN (1, 4) GROUP BY g ORDER BY "
                               "g)"),
                     /* "01000300000003000A000000,070001000000" */
                     "3031303030333030303030303033303030413030303030302c"
                     "303730303031303030303030");

    /* tt_hist_of: the blob of hist_bucket counts of the non-NULL values. */
    static const double v[] = {0.5, 1.0, 1.01, 3600000, 1e9, -5};
    uint32_t counts[HIST_BUCKETS];
    unsigned char want[sizeof(v) / sizeof(v[0]) * HIST_BLOB_ENT];
    memset(counts, 0, sizeof(counts));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        counts[hist_bucket(v[i])]++;
    size_t n = hist_blob_encode(counts, want);
    char hex[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", want[i]);
    ck_assert_str_eq(q_hex(db, "SELECT tt_hist_of(v) FROM h"), hex);
    sqlite3_close(db);
}
END_TEST

/* ---- retention ---- */

/* The number of rows of table matching cond, where ?1 is bound to raw_cut
 * and ?2 to roll_cut. */
static long long count_where(sqlite3 *db, const char *table, const char *cond,
                             int64_t raw_cut, int64_t roll_cut)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s", table, cond);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, raw_cut);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, roll_cut);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Flags of put_at. */
#define PUT_OWN_SESSION 1 /* each event in a session of its own */

/* Store and count n events at ts in workspace ws, with ids from *id: in
 * session sess (NULL: none) with rounds from round0, or with
 * PUT_OWN_SESSION each in session sess-<i>, round 0. */
static void put_at(struct col *c, const char *ws, int64_t ts, int n, int *id,
                   const char *sess, int round0, int flags)
{
    static char body[1 << 18];
    size_t len = 0;
    put(body, sizeof(body), &len, "[");
    for (int i = 0; i < n; i++) {
        put(body, sizeof(body), &len,
            "%s{\"id\":\"r%d\",\"provider\":\"p\",\"model\":\"m\","
            "\"cost_usd\":0.5,\"latency_ms\":100,\"ts\":%lld,\"user\":\"u%d\"",
            i ? "," : "", (*id)++, (long long)ts, i % 7);
        if (sess != NULL && (flags & PUT_OWN_SESSION))
            put(body, sizeof(body), &len, ",\"session\":\"%s-%d\",\"round\":0",
                sess, i);
        else if (sess != NULL)
            put(body, sizeof(body), &len, ",\"session\":\"%s\",\"round\":%d",
                sess, round0 + i);
        put(body, sizeof(body), &len, "}");
    }
    put(body, sizeof(body), &len, "]");
    put_events(c, ws, body);
}

/* Rows kept by retention, with ?1 the raw cut and ?2 the rollup cut. */
/* Week rows go only once the whole week is past the cut. */
#define KEPT_ROLLUPS                                                           \
    "((res = 60 AND ts >= ?1) OR (res > 60 AND res < 604800 AND ts >= ?2) "    \
    "OR (res = 604800 AND ts + 604800000 > ?2))"
#define KEPT_ROUNDS                                                            \
    "EXISTS (SELECT 1 FROM sessions s WHERE s.ws = session_rounds.ws AND "     \
    "s.session = session_rounds.session AND s.last_ms >= ?2)"

/* Old raw events and minute rows go after retention_days; hour and day
 * rows, sessions and their rounds after rollup_retention_days.  The
 * boundaries are exact to the millisecond and what is kept is unchanged. */
START_TEST(test_retention)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    const int64_t now = T0 + 60 * DAY_MS;
    const int64_t raw = now - 7 * DAY_MS, roll = now - 30 * DAY_MS;
    c.conf.retention_days = 7;
    c.conf.rollup_retention_days = 30;
    int id = 0;
    for (int w = 0; w < 2; w++) {
        const char *ws = ws_names[w];
        put_at(&c, ws, now - 40 * DAY_MS + 5 * HOUR_MS, 5, &id, "old", 0, 0);
        put_at(&c, ws, roll - 1, 3, &id, "edge-old", 0, 0);
        put_at(&c, ws, roll, 3, &id, "edge-kept", 0, 0);
        put_at(&c, ws, now - 10 * DAY_MS, 4, &id, "mid", 0, 0);
        put_at(&c, ws, raw - 1, 2, &id, NULL, 0, 0);
        put_at(&c, ws, raw, 2, &id, NULL, 0, 0);
        put_at(&c, ws, now - DAY_MS, 6, &id, "new", 0, 0);
        /* A session that began long ago and is still active. */
        put_at(&c, ws, now - 45 * DAY_MS, 2, &id, "long", 0, 0);
        put_at(&c, ws, now - HOUR_MS, 2, &id, "long", 2, 0);
    }
    ck_assert_int_eq(col_aggr_flush(&c, now), 0);
    long long events = count_where(db, "events", "ts >= ?1", raw, roll);
    long long rollups = count_where(db, "rollups", KEPT_ROLLUPS, raw, roll);
    long long sessions =
        count_where(db, "sessions", "last_ms >= ?2", raw, roll);
    long long rounds =
        count_where(db, "session_rounds", KEPT_ROUNDS, raw, roll);
    /* There is something to delete in each table. */
    ck_assert_int_gt(count_where(db, "events", "1", raw, roll), events);
    ck_assert_int_gt(
        count_where(db, "rollups", "res = 60", raw, roll),
        count_where(db, "rollups", "res = 60 AND " KEPT_ROLLUPS, raw, roll));
    ck_assert_int_gt(
        count_where(db, "rollups", "res > 60", raw, roll),
        count_where(db, "rollups", "res > 60 AND " KEPT_ROLLUPS, raw, roll));
    ck_assert_int_gt(count_where(db, "sessions", "1", raw, roll), sessions);
    ck_assert_int_gt(count_where(db, "session_rounds", "1", raw, roll), rounds);
    exec_sql(db, "CREATE TEMP TABLE kept_r AS SELECT * FROM rollups;"
                 "CREATE TEMP TABLE kept_s AS SELECT * FROM sessions;"
                 "CREATE TEMP TABLE kept_sr AS SELECT * FROM session_rounds");

    ck_assert_int_gt(col_aggr_prune(&c, now, 1000), 0);
    ck_assert_int_eq(col_aggr_prune(&c, now, 1000), 0);
    verify_session_days(db);
    /* The long session (begun before the cutoff) keeps its old day. */
    ck_assert_int_eq(count_where(db, "session_days", "day_ms < ?2", raw, roll),
                     2);

    ck_assert_int_eq(count_where(db, "events", "1", raw, roll), events);
    ck_assert_int_eq(count_where(db, "events", "ts < ?1", raw, roll), 0);
    ck_assert_int_eq(count_where(db, "rollups", "1", raw, roll), rollups);
    ck_assert_int_eq(count_where(db, "rollups", "NOT " KEPT_ROLLUPS, raw, roll),
                     0);
    ck_assert_int_eq(count_where(db, "sessions", "1", raw, roll), sessions);
    ck_assert_int_eq(count_where(db, "session_rounds", "1", raw, roll), rounds);
    ck_assert_int_eq(
        count_where(db, "session_rounds", "NOT " KEPT_ROUNDS, raw, roll), 0);
    /* What is kept is unchanged, row for row. */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM (SELECT * FROM rollups "
                               "EXCEPT SELECT * FROM temp.kept_r)"),
                     0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM (SELECT * FROM sessions "
                               "EXCEPT SELECT * FROM temp.kept_s)"),
                     0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM (SELECT * FROM "
                               "session_rounds EXCEPT SELECT * FROM "
                               "temp.kept_sr)"),
                     0);
    /* Spelled out: the boundary events, and the sessions kept. */
    ck_assert_int_eq(count_where(db, "events", "ts = ?1", raw, roll), 4);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sessions WHERE session "
                               "IN ('edge-kept', 'mid', 'new', 'long')"),
                     8);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM session_rounds WHERE "
                               "session = 'long'"),
                     8);
    col_fini(&c);
}
END_TEST

/* With no time budget each call still deletes something, but a bounded
 * number of rows per table; repeated calls finish the job in every
 * workspace. */
START_TEST(test_retention_batches)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    const int64_t now = T0 + 60 * DAY_MS;
    const int64_t raw = now - 7 * DAY_MS, roll = now - 30 * DAY_MS;
    c.conf.retention_days = 7;
    c.conf.rollup_retention_days = 30;
    int id = 0;
    for (int w = 0; w < 2; w++) {
        /* Per workspace 5400 old events in 100 minutes, 3000 of them in
         * old sessions of their own. */
        for (int m = 0; m < 50; m++) {
            char sess[32];
            snprintf(sess, sizeof(sess), "s%d", m);
            put_at(&c, ws_names[w], roll - DAY_MS + m * MIN_MS, 60, &id, sess,
                   0, PUT_OWN_SESSION);
            put_at(&c, ws_names[w], raw - DAY_MS + m * MIN_MS, 48, &id, NULL, 0,
                   0);
        }
        put_at(&c, ws_names[w], now - HOUR_MS, 20, &id, "recent", 0, 0);
    }
    ck_assert_int_eq(col_aggr_flush(&c, now), 0);
    long long rollups = count_where(db, "rollups", KEPT_ROLLUPS, raw, roll);
    static const char *const tables[] = {"events", "rollups", "sessions",
                                         "session_rounds"};
    long long calls = 0, d;
    do {
        long long before[4];
        for (int t = 0; t < 4; t++)
            before[t] = count_where(db, tables[t], "1", raw, roll);
        d = col_aggr_prune(&c, now, 0);
        long long sum = 0;
        for (int t = 0; t < 4; t++) {
            long long gone =
                before[t] - count_where(db, tables[t], "1", raw, roll);
            ck_assert_msg(gone <= 5000, "one call deleted %lld rows of %s",
                          gone, tables[t]);
            sum += gone;
        }
        ck_assert_int_eq(d, sum);
        calls++;
    } while (d > 0 && calls < 2000);
    ck_assert_int_eq(d, 0);
    ck_assert_int_gt(calls, 4);
    ck_assert_int_eq(count_where(db, "events", "1", raw, roll), 40);
    ck_assert_int_eq(count_where(db, "rollups", "1", raw, roll), rollups);
    ck_assert_int_eq(count_where(db, "sessions", "1", raw, roll), 2);
    ck_assert_int_eq(count_where(db, "session_rounds", "1", raw, roll), 40);
    verify_session_days(db);
    col_fini(&c);
}
END_TEST

/* session_days sums the sessions by the day they started, and a late event
 * that moves a session's start to an earlier day moves all of its totals
 * there: the later day keeps only its other sessions, or goes. */
START_TEST(test_session_days_late_start)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    int id = 0;
    put_at(&c, "ws", T0 + 5 * DAY_MS + HOUR_MS, 3, &id, "late", 0, 0);
    put_at(&c, "ws", T0 + 5 * DAY_MS + 2 * HOUR_MS, 2, &id, "stays", 0, 0);
    put_at(&c, "ws", T0 + 6 * DAY_MS, 1, &id, "alone", 0, 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_session_days(db);
    ck_assert_int_eq(q_int(db, "SELECT sessions * 1000 + calls FROM "
                               "session_days WHERE day_ms = 1772755200000"),
                     2005);
    /* Late events: "late" now starts two days earlier, "alone" a day
     * earlier, which leaves its day empty. */
    put_at(&c, "ws", T0 + 3 * DAY_MS + 10, 1, &id, "late", 7, 0);
    put_at(&c, "ws", T0 + 6 * DAY_MS - 1, 1, &id, "alone", 1, 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_session_days(db);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM session_days"), 2);
    ck_assert_int_eq(q_int(db, "SELECT sessions * 1000 + calls FROM "
                               "session_days WHERE day_ms = 1772582400000"),
                     1004);
    ck_assert_int_eq(q_int(db, "SELECT sessions * 1000 + calls FROM "
                               "session_days WHERE day_ms = 1772755200000"),
                     2004);
    ck_assert_int_eq(q_int(db, "SELECT rounds * 1000000 + dur_ms / 1000 FROM "
                               "session_days WHERE day_ms = 1772582400000"),
                     4000000 + (2 * DAY_MS + HOUR_MS - 10) / 1000);
    /* And once more within one flush: a new session whose events arrive
     * latest first. */
    put_at(&c, "ws", T0 + 9 * DAY_MS, 1, &id, "new", 0, 0);
    put_at(&c, "ws", T0 + 8 * DAY_MS, 1, &id, "new", 1, 0);
    ck_assert_int_eq(col_aggr_flush(&c, T0), 0);
    verify_session_days(db);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM session_days WHERE "
                               "day_ms = 1773100800000"),
                     0);
    col_fini(&c);
}
END_TEST

/* Every workspace gets its retention, however many there are. */
START_TEST(test_retention_many_workspaces)
{
    struct col c;
    col_init(&c, "t.db");
    sqlite3 *db = c.store.db;
    const int64_t now = T0 + 60 * DAY_MS;
    c.conf.retention_days = 7;
    c.conf.rollup_retention_days = 30;
    enum { N = 300 };
    static char names[N][16], body[N * 128];
    const char *ws_of[N];
    size_t len = 0;
    put(body, sizeof(body), &len, "[");
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "w%03d", i);
        ws_of[i] = names[i];
        put(body, sizeof(body), &len,
            "%s{\"id\":\"x\",\"provider\":\"p\",\"model\":\"m\","
            "\"cost_usd\":1,\"ts\":%lld}",
            i ? "," : "", (long long)(now - 40 * DAY_MS));
    }
    put(body, sizeof(body), &len, "]");
    insert_body(&c, body, ws_of, 1);
    ck_assert_int_eq(col_aggr_flush(&c, now), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM workspaces"), N);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events"), N);
    for (int k = 0; k < 100 && col_aggr_prune(&c, now, 1000) > 0; k++)
        ;
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events"), 0);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM rollups"), 0);
    col_fini(&c);
}
END_TEST

/* Build the suite. */
static Suite *aggr_suite(void)
{
    Suite *s = suite_create("aggr");
    TCase *tc = tcase_create("aggr");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_exact_vs_brute_force);
    tcase_add_test(tc, test_session_first_named);
    tcase_add_test(tc, test_watermark);
    tcase_add_test(tc, test_crash_catch_up);
    tcase_add_test(tc, test_flush_fails_locked);
    tcase_add_test(tc, test_flush_fails_midway);
#if !defined(__SANITIZE_ADDRESS__) && !TT_HAS_ASAN
    /* They limit the address space to make malloc fail: the sanitizer's
     * allocator does not return NULL, so under it they are not run (rather
     * than counted as passes). */
    tcase_add_test(tc, test_lost_event_reread);
    tcase_add_test(tc, test_flush_memory_bounded);
#endif
    tcase_add_test(tc, test_blob_codec);
    tcase_add_test(tc, test_blob_malformed);
    tcase_add_test(tc, test_blob_sql);
    tcase_add_test(tc, test_session_days_late_start);
    tcase_add_test(tc, test_retention);
    tcase_add_test(tc, test_retention_batches);
    tcase_add_test(tc, test_retention_many_workspaces);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("check_aggr", LOG_WARN, NULL);
    SRunner *sr = srunner_create(aggr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
