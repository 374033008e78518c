/*
 * aggr.c: the collector's rollup writer (rollup.h has the tables).
 *
 * Committed events are aggregated in memory in two steps.  For each event
 * only one entry is touched: the "fine" entry of its minute and its full
 * key (workspace, provider, model, agent, user, session, round, error
 * type, status, error flag).  A flush, at most ROLLUP_FLUSH_MS apart and
 * whenever ingest goes idle, derives from the fine entries every cube at
 * every resolution, plus the sessions and session rounds, in a second
 * table, upserts those rows and sets meta.rollup_seq in one transaction.
 * Under load many events share a fine entry and many fine entries share a
 * cube row, so the database sees a bounded number of upserts per second
 * whatever the event rate.
 *
 * The events are in the database before they reach this aggregator, so a
 * crash loses only aggregates: at start, col_rebuild_rollups() re-adds the
 * events with seq > rollup_seq.  A flush that fails keeps the fine
 * entries for the next try; if they grow past AGGR_MAX_FINE it drops them
 * and asks for the same re-read of the events instead of growing without
 * bound.
 *
 * Retention runs in the same loop: col_aggr_prune() deletes in small
 * batches under a time budget, so it never holds the write lock for long.
 */
#include "collector.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "hash.h"
#include "log.h"
#include "rollup.h"

/* String dimensions of an entry, in key order. */
enum { AS_PROVIDER, AS_MODEL, AS_AGENT, AS_USER, AS_SESSION, AS_ERROR, AS_N };

/* Kinds of entries besides the cubes of rollup.h. */
#define AGGR_FINE    -1 /* one minute of one full key */
#define AGGR_SESSION -2 /* a session: (ws, session) */
#define AGGR_ROUND   -3 /* a session round: (ws, session, round, p, m) */

#define AGGR_MAX_FINE   2000000 /* fine entries kept while flushes fail */
#define AGGR_PRUNE_ROWS 2000    /* rows per retention statement */
#define AGGR_KEEP_CAP   65536   /* table slots always kept between flushes */
/* Fine entries that make a flush due before its time: one flush holds the
 * loop (and ingest) while it runs, so history spread over many buckets,
 * where nearly every event is an entry of its own, is written in pieces
 * of bounded duration rather than once a second. */
#define AGGR_FLUSH_ENTRIES 4096

/* A sparse histogram in the blob format of rollup.h. */
struct aggr_hist {
    unsigned char *b;
    uint32_t len, cap;
};

struct aggr_ent {
    uint64_t hash; /* 0: free slot */
    int64_t ws, ts;
    const char *s[AS_N];
    const char *user, *agent; /* a session's user and agent */
    int32_t kind, res, status, round;
    int is_error;
    int64_t calls, errors, tok[SHM_TOK_N], cost_nusd;
    int64_t lat_n, ttft_n, first_ms, last_ms;
    double lat_sum, ttft_sum;
    struct aggr_hist lat, ttft;
    int64_t first_seq;           /* a fine entry's lowest event seq */
    int64_t user_seq, agent_seq; /* a session's: first_seq of user, agent */
};

struct aggr_tab {
    struct aggr_ent *e;
    uint32_t cap, n;
};

struct col_aggr {
    struct aggr_tab fine, out;
    struct arena arena;     /* strings and histograms of the fine table */
    struct arena out_arena; /* histograms of the derived rows */
    /* Scratch for merging two histograms (each of HIST_BUCKETS at most). */
    unsigned char merge_buf[2 * HIST_BUCKETS * HIST_BLOB_ENT];
    int64_t seq; /* highest event seq added */
    int64_t flushed_seq;
    uint64_t events; /* added since the last flush */
    int64_t flushed_ms;
    int rescan; /* aggregates were dropped: re-read the events */
    int failed; /* the last flush failed: retry at the ROLLUP_FLUSH_MS pace */
    sqlite3_stmt *up_roll, *up_sess, *up_round, *set_rounds, *seq_put;
    sqlite3_stmt *sess_get; /* a session's totals, for session_days */
    sqlite3_stmt *day_put;  /* add to a session_days row */
    sqlite3_stmt *day_gc;   /* drop a session_days row left with none */
};

/* ---- the tables ---- */

static uint64_t aggr_hash(const struct aggr_ent *k)
{
    int64_t ints[6] = {k->ws,  k->ts,     k->kind,
                       k->res, k->status, (int64_t)k->round * 2 + k->is_error};
    uint64_t h = hash_bytes(HASH_SEED, ints, sizeof(ints));
    for (int i = 0; i < AS_N; i++)
        h = hash_str(h, k->s[i]);
    return h ? h : 1;
}

static int aggr_same(const struct aggr_ent *a, const struct aggr_ent *b)
{
    if (a->hash != b->hash || a->ws != b->ws || a->ts != b->ts ||
        a->kind != b->kind || a->res != b->res || a->status != b->status ||
        a->round != b->round || a->is_error != b->is_error)
        return 0;
    for (int i = 0; i < AS_N; i++)
        if (a->s[i] != b->s[i] && strcmp(a->s[i], b->s[i]) != 0)
            return 0;
    return 1;
}

static int aggr_grow(struct aggr_tab *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 1024;
    struct aggr_ent *e = calloc(cap, sizeof(*e));
    if (e == NULL)
        return -1;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->e[i].hash == 0)
            continue;
        uint32_t j = (uint32_t)t->e[i].hash & (cap - 1);
        while (e[j].hash != 0)
            j = (j + 1) & (cap - 1);
        e[j] = t->e[i];
    }
    free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

static void aggr_clear(struct aggr_tab *t)
{
    if (t->n > 0)
        memset(t->e, 0, t->cap * sizeof(*t->e));
    t->n = 0;
}

/* Empty t after a flush.  A table far larger than this flush needed (grown
 * by a catch-up slice or a burst) is given back rather than swept by every
 * later flush. */
static void aggr_shrink(struct aggr_tab *t)
{
    if (t->cap > AGGR_KEEP_CAP && t->n < t->cap / 16) {
        free(t->e);
        t->e = NULL;
        t->cap = t->n = 0;
    } else
        aggr_clear(t);
}

/* The entry with k's key, created empty if new; copy says whether k's
 * strings must be copied (they are the caller's) or already live in the
 * arena.  NULL when out of memory. */
static struct aggr_ent *aggr_get(struct col_aggr *g, struct aggr_tab *t,
                                 struct aggr_ent *k, int copy)
{
    k->hash = aggr_hash(k);
    if ((t->n + 1) * 10 > t->cap * 7 && aggr_grow(t) != 0)
        return NULL;
    uint32_t i = (uint32_t)k->hash & (t->cap - 1);
    for (; t->e[i].hash != 0; i = (i + 1) & (t->cap - 1))
        if (aggr_same(&t->e[i], k))
            return &t->e[i];
    struct aggr_ent *e = &t->e[i];
    memset(e, 0, sizeof(*e));
    e->hash = k->hash;
    e->ws = k->ws;
    e->ts = k->ts;
    e->kind = k->kind;
    e->res = k->res;
    e->status = k->status;
    e->round = k->round;
    e->is_error = k->is_error;
    for (int j = 0; j < AS_N; j++) {
        e->s[j] =
            copy ? arena_strndup(&g->arena, k->s[j], strlen(k->s[j])) : k->s[j];
        if (e->s[j] == NULL) {
            e->hash = 0; /* the slot ends its probe chain: free it again */
            return NULL;
        }
    }
    e->user = e->agent = "";
    e->first_seq = e->user_seq = e->agent_seq = INT64_MAX;
    e->first_ms = INT64_MAX;
    e->last_ms = INT64_MIN;
    t->n++;
    return e;
}

/* ---- histograms ---- */

/* Make room for n bytes in h, allocating from arena a. */
static int aggr_hist_room(struct arena *a, struct aggr_hist *h, uint32_t n)
{
    if (h->cap >= n)
        return 0;
    uint32_t cap = h->cap ? h->cap * 2 : 8 * HIST_BLOB_ENT;
    while (cap < n)
        cap *= 2;
    unsigned char *b = arena_alloc(a, cap);
    if (b == NULL)
        return -1;
    if (h->len > 0)
        memcpy(b, h->b, h->len);
    h->b = b;
    h->cap = cap;
    return 0;
}

/* Add n to bucket bk of h, growing h from arena a if bk is new.  Returns 0
 * or -1 (out of memory; h is unchanged). */
static int aggr_hist_put(struct arena *a, struct aggr_hist *h, unsigned bk,
                         uint32_t n)
{
    uint32_t lo = 0, hi = h->len / HIST_BLOB_ENT;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        unsigned char *p = h->b + mid * HIST_BLOB_ENT;
        unsigned b = (unsigned)p[0] | (unsigned)p[1] << 8;
        if (b == bk) {
            unsigned char *c = p + 2;
            n += (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 |
                 (uint32_t)c[3] << 24;
            c[0] = (unsigned char)n;
            c[1] = (unsigned char)(n >> 8);
            c[2] = (unsigned char)(n >> 16);
            c[3] = (unsigned char)(n >> 24);
            return 0;
        }
        if (b < bk)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (aggr_hist_room(a, h, h->len + HIST_BLOB_ENT) != 0)
        return -1;
    unsigned char *p = h->b + lo * HIST_BLOB_ENT;
    memmove(p + HIST_BLOB_ENT, p, h->len - lo * HIST_BLOB_ENT);
    p[0] = (unsigned char)bk;
    p[1] = (unsigned char)(bk >> 8);
    p[2] = (unsigned char)n;
    p[3] = (unsigned char)(n >> 8);
    p[4] = (unsigned char)(n >> 16);
    p[5] = (unsigned char)(n >> 24);
    h->len += HIST_BLOB_ENT;
    return 0;
}

/* Count one value in h (a fine entry's). */
static void aggr_hist_add(struct col_aggr *g, struct aggr_hist *h, double ms)
{
    /* Out of memory: the percentile loses one value. */
    (void)aggr_hist_put(&g->arena, h, (unsigned)hist_bucket(ms), 1);
}

/* Entries of a source histogram merged one by one rather than in a pass. */
#define AGGR_MERGE_PUTS 8

/*
 * Add histogram src into dst, a derived row's (in out_arena).  A row takes
 * one merge per fine entry below it, so a merge must cost about the size of
 * src, not of dst: a fine entry usually holds a few buckets, each added in
 * place; a larger one is merged in a pass through the scratch buffer.  dst
 * grows by doubling, so a row's memory stays within a few times its final
 * size.  Returns 0 or -1 (out of memory).
 */
static int aggr_hist_merge(struct col_aggr *g, struct aggr_hist *dst,
                           const struct aggr_hist *src)
{
    if (src->len <= AGGR_MERGE_PUTS * HIST_BLOB_ENT) {
        for (uint32_t i = 0; i < src->len; i += HIST_BLOB_ENT) {
            const unsigned char *p = src->b + i;
            if (aggr_hist_put(
                    &g->out_arena, dst, (unsigned)p[0] | (unsigned)p[1] << 8,
                    (uint32_t)p[2] | (uint32_t)p[3] << 8 |
                        (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24) != 0)
                return -1;
        }
        return 0;
    }
    /* Both hold at most HIST_BUCKETS entries: the scratch holds their sum. */
    long n = hist_blob_merge(dst->b, dst->len, src->b, src->len, g->merge_buf);
    if (n < 0 || aggr_hist_room(&g->out_arena, dst, (uint32_t)n) != 0)
        return -1;
    memcpy(dst->b, g->merge_buf, (size_t)n);
    dst->len = (uint32_t)n;
    return 0;
}

/* Add the measures of src into dst.  Returns 0 or -1 (out of memory). */
static int aggr_merge(struct col_aggr *g, struct aggr_ent *dst,
                      const struct aggr_ent *src, int hist)
{
    dst->calls += src->calls;
    dst->errors += src->errors;
    for (int t = 0; t < SHM_TOK_N; t++)
        dst->tok[t] += src->tok[t];
    dst->cost_nusd += src->cost_nusd;
    dst->lat_n += src->lat_n;
    dst->lat_sum += src->lat_sum;
    dst->ttft_n += src->ttft_n;
    dst->ttft_sum += src->ttft_sum;
    if (src->first_ms < dst->first_ms)
        dst->first_ms = src->first_ms;
    if (src->last_ms > dst->last_ms)
        dst->last_ms = src->last_ms;
    if (hist && (aggr_hist_merge(g, &dst->lat, &src->lat) != 0 ||
                 aggr_hist_merge(g, &dst->ttft, &src->ttft) != 0))
        return -1;
    return 0;
}

/* ---- adding events ---- */

struct col_aggr *col_aggr_new(void)
{
    struct col_aggr *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    arena_init(&g->arena, 1 << 20);
    arena_init(&g->out_arena, 1 << 20);
    return g;
}

static void aggr_reset(struct col_aggr *g)
{
    aggr_shrink(&g->fine);
    aggr_shrink(&g->out);
    arena_reset(&g->arena);
    arena_reset(&g->out_arena);
    g->events = 0;
}

void col_aggr_free(struct col_aggr *g)
{
    if (g == NULL)
        return;
    sqlite3_stmt *all[] = {g->up_roll, g->up_sess,  g->up_round, g->set_rounds,
                           g->seq_put, g->sess_get, g->day_put,  g->day_gc};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    free(g->fine.e);
    free(g->out.e);
    arena_free(&g->arena);
    arena_free(&g->out_arena);
    free(g);
}

void col_aggr_add(struct col_aggr *g, int64_t ws, const struct live_event *e,
                  int64_t seq)
{
    if (seq <= g->flushed_seq)
        return; /* already in the rollups */
    /* After a lost event, count nothing more: the watermark must stay below
     * it, and the re-read brings these events back in order. */
    if (g->rescan)
        return;
    struct aggr_ent k;
    memset(&k, 0, sizeof(k));
    k.ws = ws;
    k.ts = e->ts_ms - e->ts_ms % (ROLLUP_RES_MINUTE * 1000);
    k.kind = AGGR_FINE;
    k.res = ROLLUP_RES_MINUTE;
    k.status = e->status;
    k.round = e->round < 0 ? -1 : e->round;
    k.is_error = e->is_error != 0;
    k.s[AS_PROVIDER] = e->provider;
    k.s[AS_MODEL] = e->model;
    k.s[AS_AGENT] = e->agent ? e->agent : "";
    k.s[AS_USER] = e->user ? e->user : "";
    k.s[AS_SESSION] = e->session ? e->session : "";
    k.s[AS_ERROR] = e->error_type ? e->error_type : "";
    struct aggr_ent *f = aggr_get(g, &g->fine, &k, 1);
    if (f == NULL) {
        g->rescan = 1; /* out of memory: count it again from the events */
        return;
    }
    f->calls++;
    f->errors += k.is_error;
    for (int t = 0; t < SHM_TOK_N; t++)
        f->tok[t] += e->tokens[t];
    f->cost_nusd += e->cost_nusd;
    if (e->latency_ms >= 0) {
        f->lat_n++;
        f->lat_sum += e->latency_ms;
        aggr_hist_add(g, &f->lat, e->latency_ms);
    }
    if (e->ttft_ms >= 0) {
        f->ttft_n++;
        f->ttft_sum += e->ttft_ms;
        aggr_hist_add(g, &f->ttft, e->ttft_ms);
    }
    if (e->ts_ms < f->first_ms)
        f->first_ms = e->ts_ms;
    if (e->ts_ms > f->last_ms)
        f->last_ms = e->ts_ms;
    if (seq < f->first_seq)
        f->first_seq = seq;
    if (seq > g->seq)
        g->seq = seq;
    g->events++;
}

uint64_t col_aggr_pending(const struct col_aggr *g)
{
    return g->events;
}

int col_aggr_due(const struct col_aggr *g, int64_t now_ms,
                 int64_t last_commit_ms)
{
    if (g->events == 0)
        return 0;
    /* Not at every idle turn of the loop while the database refuses. */
    if (g->failed)
        return now_ms - g->flushed_ms >= ROLLUP_FLUSH_MS;
    return now_ms - g->flushed_ms >= ROLLUP_FLUSH_MS ||
           g->fine.n >= AGGR_FLUSH_ENTRIES ||
           now_ms - last_commit_ms >= ROLLUP_IDLE_MS;
}

/* ---- deriving the rows ---- */

/* What each cube keeps (rollup.h): string dimensions by bit (1 << AS_*),
 * whether it keeps the error flag, the HTTP status and the histograms,
 * which events it takes, and its resolutions as indexes into
 * aggr_res[] (first..last).  Only the totals and model cubes have minute
 * rows: the wide cubes would get about one minute row per event. */
#define AGGR_ALL_EVENTS 0
#define AGGR_ERRORS     1 /* only events with is_error */
#define AGGR_SESSIONS   2 /* only events with a session */
static const int aggr_res[4] = {ROLLUP_RES_MINUTE, ROLLUP_RES_HOUR,
                                ROLLUP_RES_DAY, ROLLUP_RES_WEEK};
static const struct {
    unsigned dims;
    int error, status, hist, takes, first, last;
} aggr_cubes[ROLLUP_NCUBES] = {
    [ROLLUP_MODEL] = {1u << AS_PROVIDER | 1u << AS_MODEL, 1, 0, 1,
                      AGGR_ALL_EVENTS, 0, 3},
    [ROLLUP_AGENT] = {1u << AS_PROVIDER | 1u << AS_MODEL | 1u << AS_AGENT, 1, 0,
                      1, AGGR_ALL_EVENTS, 1, 3},
    [ROLLUP_USER] = {1u << AS_PROVIDER | 1u << AS_MODEL | 1u << AS_AGENT |
                         1u << AS_USER,
                     1, 0, 1, AGGR_ALL_EVENTS, 1, 3},
    [ROLLUP_USERS] = {1u << AS_USER, 1, 0, 0, AGGR_ALL_EVENTS, 1, 3},
    [ROLLUP_ERRORS] = {1u << AS_PROVIDER | 1u << AS_MODEL | 1u << AS_AGENT |
                           1u << AS_USER | 1u << AS_ERROR,
                       1, 1, 0, AGGR_ERRORS, 1, 3},
    [ROLLUP_SESSION] = {1u << AS_PROVIDER | 1u << AS_MODEL | 1u << AS_AGENT |
                            1u << AS_USER | 1u << AS_SESSION,
                        1, 0, 1, AGGR_SESSIONS, 1, 1},
    [ROLLUP_AGENTS] = {1u << AS_AGENT, 1, 0, 1, AGGR_ALL_EVENTS, 1, 3},
    [ROLLUP_TOTAL] = {0, 1, 0, 1, AGGR_ALL_EVENTS, 0, 3},
    [ROLLUP_ERRTYPES] = {1u << AS_PROVIDER | 1u << AS_MODEL | 1u << AS_ERROR, 1,
                         1, 0, AGGR_ERRORS, 1, 3},
};

/* Add fine entry f into the out entry of kind/res keeping dims. */
static int aggr_project(struct col_aggr *g, const struct aggr_ent *f, int kind,
                        int res, unsigned dims, int keep_error, int keep_status,
                        int keep_round, int keep_hist)
{
    struct aggr_ent k;
    memset(&k, 0, sizeof(k));
    k.ws = f->ws;
    k.kind = kind;
    k.res = res;
    k.ts = res ? f->ts - f->ts % ((int64_t)res * 1000) : 0;
    k.is_error = keep_error ? f->is_error : 0;
    k.status = keep_status ? f->status : 0;
    k.round = keep_round ? f->round : 0;
    for (int i = 0; i < AS_N; i++)
        k.s[i] = (dims & 1u << i) ? f->s[i] : "";
    struct aggr_ent *o = aggr_get(g, &g->out, &k, 0);
    if (o == NULL || aggr_merge(g, o, f, keep_hist) != 0)
        return -1;
    if (kind == AGGR_SESSION) {
        /* A session's user and agent: the first ones it named, by seq (the
         * order of the fine table is the hash's, and the row keeps what an
         * earlier flush named). */
        if (f->s[AS_USER][0] != '\0' && f->first_seq < o->user_seq) {
            o->user = f->s[AS_USER];
            o->user_seq = f->first_seq;
        }
        if (f->s[AS_AGENT][0] != '\0' && f->first_seq < o->agent_seq) {
            o->agent = f->s[AS_AGENT];
            o->agent_seq = f->first_seq;
        }
    }
    return 0;
}

static int aggr_derive(struct col_aggr *g)
{
    /* The rows of a failed flush are derived again: drop the old ones. */
    aggr_clear(&g->out);
    arena_reset(&g->out_arena);
    for (uint32_t i = 0; i < g->fine.cap; i++) {
        const struct aggr_ent *f = &g->fine.e[i];
        if (f->hash == 0)
            continue;
        for (int c = 0; c < ROLLUP_NCUBES; c++) {
            if ((aggr_cubes[c].takes == AGGR_ERRORS && !f->is_error) ||
                (aggr_cubes[c].takes == AGGR_SESSIONS &&
                 f->s[AS_SESSION][0] == '\0'))
                continue;
            for (int r = aggr_cubes[c].first; r <= aggr_cubes[c].last; r++)
                if (aggr_project(g, f, c, aggr_res[r], aggr_cubes[c].dims,
                                 aggr_cubes[c].error, aggr_cubes[c].status, 0,
                                 aggr_cubes[c].hist) != 0)
                    return -1;
        }
        if (f->s[AS_SESSION][0] == '\0')
            continue;
        if (aggr_project(g, f, AGGR_SESSION, 0, 1u << AS_SESSION, 0, 0, 0, 0) !=
                0 ||
            aggr_project(g, f, AGGR_ROUND, 0,
                         1u << AS_SESSION | 1u << AS_PROVIDER | 1u << AS_MODEL,
                         0, 0, 1, 1) != 0)
            return -1;
    }
    return 0;
}

/* ---- writing them ---- */

static int aggr_prepare(struct col_aggr *g, sqlite3 *db)
{
    if (g->up_roll != NULL)
        return SQLITE_OK;
    static const char *const sql[8] = {
        "INSERT INTO rollups VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
        "?24, ?25, ?26, ?27, ?28) "
        "ON CONFLICT(ws, cube, res, ts, provider, model, agent, user, "
        "session, is_error, error_type, status) DO UPDATE SET "
        "calls = calls + ?13, errors = errors + ?14, "
        "input_tokens = input_tokens + ?15, "
        "output_tokens = output_tokens + ?16, "
        "cache_read_tokens = cache_read_tokens + ?17, "
        "cache_write_tokens = cache_write_tokens + ?18, "
        "reasoning_tokens = reasoning_tokens + ?19, "
        "cost_nusd = cost_nusd + ?20, lat_n = lat_n + ?21, "
        "lat_sum = lat_sum + ?22, ttft_n = ttft_n + ?23, "
        "ttft_sum = ttft_sum + ?24, first_ms = min(first_ms, ?25), "
        "last_ms = max(last_ms, ?26), "
        "lat_hist = tt_hist_merge(lat_hist, ?27), "
        "ttft_hist = tt_hist_merge(ttft_hist, ?28)",

        "INSERT INTO sessions VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13, ?14, ?15, ?16, 0) "
        "ON CONFLICT(ws, session) DO UPDATE SET "
        "user = CASE WHEN user = '' THEN ?3 ELSE user END, "
        "agent = CASE WHEN agent = '' THEN ?4 ELSE agent END, "
        "started_ms = min(started_ms, ?5), last_ms = max(last_ms, ?6), "
        "calls = calls + ?7, errors = errors + ?8, "
        "input_tokens = input_tokens + ?9, "
        "output_tokens = output_tokens + ?10, "
        "cache_read_tokens = cache_read_tokens + ?11, "
        "cache_write_tokens = cache_write_tokens + ?12, "
        "reasoning_tokens = reasoning_tokens + ?13, "
        "cost_nusd = cost_nusd + ?14, lat_n = lat_n + ?15, "
        "lat_sum = lat_sum + ?16",

        "INSERT INTO session_rounds VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
        "ON CONFLICT(ws, session, round, provider, model) DO UPDATE SET "
        "calls = calls + ?6, errors = errors + ?7, "
        "input_tokens = input_tokens + ?8, "
        "output_tokens = output_tokens + ?9, "
        "cache_read_tokens = cache_read_tokens + ?10, "
        "cache_write_tokens = cache_write_tokens + ?11, "
        "reasoning_tokens = reasoning_tokens + ?12, "
        "cost_nusd = cost_nusd + ?13, lat_n = lat_n + ?14, "
        "lat_sum = lat_sum + ?15, first_ms = min(first_ms, ?16), "
        "last_ms = max(last_ms, ?17), "
        "lat_hist = tt_hist_merge(lat_hist, ?18)",

        "UPDATE sessions SET rounds = (SELECT count(DISTINCT round) FROM "
        "session_rounds r WHERE r.ws = ?1 AND r.session = ?2 AND "
        "r.round >= 0) WHERE ws = ?1 AND session = ?2",

        "INSERT OR REPLACE INTO meta VALUES('rollup_seq', ?)",

        "SELECT started_ms, last_ms, calls, errors, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, cost_nusd, rounds, lat_n, lat_sum FROM sessions "
        "WHERE ws = ?1 AND session = ?2",

        "INSERT INTO session_days VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "?10, ?11, ?12, ?13, ?14, ?15, ?16) "
        "ON CONFLICT(ws, day_ms) DO UPDATE SET "
        "sessions = sessions + ?3, calls = calls + ?4, errors = errors + ?5, "
        "input_tokens = input_tokens + ?6, "
        "output_tokens = output_tokens + ?7, "
        "cache_read_tokens = cache_read_tokens + ?8, "
        "cache_write_tokens = cache_write_tokens + ?9, "
        "reasoning_tokens = reasoning_tokens + ?10, "
        "cost_nusd = cost_nusd + ?11, rounds = rounds + ?12, "
        "lat_n = lat_n + ?13, lat_sum = lat_sum + ?14, "
        "err_sessions = err_sessions + ?15, dur_ms = dur_ms + ?16",

        "DELETE FROM session_days WHERE ws = ?1 AND day_ms = ?2 AND "
        "sessions = 0",
    };
    sqlite3_stmt **st[8] = {&g->up_roll,    &g->up_sess, &g->up_round,
                            &g->set_rounds, &g->seq_put, &g->sess_get,
                            &g->day_put,    &g->day_gc};
    for (int i = 0; i < 8; i++) {
        int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    st[i], NULL);
        if (rc != SQLITE_OK) {
            log_error(NULL,
                      "msg=\"cannot prepare rollup statement\" "
                      "error=\"%s\"",
                      sqlite3_errmsg(db));
            return rc;
        }
    }
    return SQLITE_OK;
}

/* Bind the measures of e from index i on: calls, errors, tokens, cost,
 * then (when lat) lat_n, lat_sum. */
static int aggr_bind_measures(sqlite3_stmt *st, int i, const struct aggr_ent *e)
{
    sqlite3_bind_int64(st, i++, e->calls);
    sqlite3_bind_int64(st, i++, e->errors);
    for (int t = 0; t < SHM_TOK_N; t++)
        sqlite3_bind_int64(st, i++, e->tok[t]);
    sqlite3_bind_int64(st, i++, e->cost_nusd);
    sqlite3_bind_int64(st, i++, e->lat_n);
    sqlite3_bind_double(st, i++, e->lat_sum);
    return i;
}

static void aggr_bind_hist(sqlite3_stmt *st, int i, const struct aggr_hist *h)
{
    sqlite3_bind_blob(st, i, h->len ? (const void *)h->b : "", (int)h->len,
                      SQLITE_STATIC);
}

static int aggr_step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int aggr_put_rollup(struct col_aggr *g, const struct aggr_ent *e)
{
    sqlite3_stmt *st = g->up_roll;
    sqlite3_bind_int64(st, 1, e->ws);
    sqlite3_bind_int(st, 2, e->kind);
    sqlite3_bind_int(st, 3, e->res);
    sqlite3_bind_int64(st, 4, e->ts);
    sqlite3_bind_text(st, 5, e->s[AS_PROVIDER], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e->s[AS_MODEL], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, e->s[AS_AGENT], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, e->s[AS_USER], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, e->s[AS_SESSION], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 10, e->is_error);
    sqlite3_bind_text(st, 11, e->s[AS_ERROR], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 12, e->status);
    int i = aggr_bind_measures(st, 13, e);
    sqlite3_bind_int64(st, i++, e->ttft_n);
    sqlite3_bind_double(st, i++, e->ttft_sum);
    sqlite3_bind_int64(st, i++, e->first_ms);
    sqlite3_bind_int64(st, i++, e->last_ms);
    aggr_bind_hist(st, i++, &e->lat);
    aggr_bind_hist(st, i, &e->ttft);
    return aggr_step(st);
}

/* A session's row as session_days sums it: present, the start day, and
 * the measures in the order of session_days from `sessions` on. */
struct aggr_sday {
    int present;
    int64_t day_ms;
    int64_t v[14]; /* sessions, calls, errors, tokens, cost, rounds, lat_n,
                    * (lat_sum apart), err_sessions, dur_ms */
    double lat_sum;
};

/* Read the stored row of session e into d (absent: d->present = 0). */
static int aggr_sday_read(struct col_aggr *g, const struct aggr_ent *e,
                          struct aggr_sday *d)
{
    sqlite3_stmt *st = g->sess_get;
    memset(d, 0, sizeof(*d));
    sqlite3_bind_int64(st, 1, e->ws);
    sqlite3_bind_text(st, 2, e->s[AS_SESSION], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t started = sqlite3_column_int64(st, 0);
        int64_t last = sqlite3_column_int64(st, 1);
        d->present = 1;
        d->day_ms = started - started % ((int64_t)ROLLUP_RES_DAY * 1000);
        d->v[0] = 1;
        /* calls .. rounds, lat_n: columns 2..11 */
        for (int i = 0; i < 10; i++)
            d->v[1 + i] = sqlite3_column_int64(st, 2 + i);
        d->lat_sum = sqlite3_column_double(st, 12);
        d->v[11] = d->v[2] > 0;
        d->v[12] = last - started;
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Add sign times d's row to its session_days row (sign -1 takes it out,
 * and drops the day's row once it holds no session). */
static int aggr_sday_put(struct col_aggr *g, int64_t ws,
                         const struct aggr_sday *d, int sign)
{
    sqlite3_stmt *st = g->day_put;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, d->day_ms);
    for (int i = 0; i < 11; i++)
        sqlite3_bind_int64(st, 3 + i, sign * d->v[i]);
    sqlite3_bind_double(st, 14, sign * d->lat_sum);
    sqlite3_bind_int64(st, 15, sign * d->v[11]);
    sqlite3_bind_int64(st, 16, sign * d->v[12]);
    int rc = aggr_step(st);
    if (rc != SQLITE_OK || sign > 0)
        return rc;
    sqlite3_bind_int64(g->day_gc, 1, ws);
    sqlite3_bind_int64(g->day_gc, 2, d->day_ms);
    return aggr_step(g->day_gc);
}

static int aggr_put_session(struct col_aggr *g, const struct aggr_ent *e)
{
    struct aggr_sday before, after;
    int rc = aggr_sday_read(g, e, &before);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = g->up_sess;
    sqlite3_bind_int64(st, 1, e->ws);
    sqlite3_bind_text(st, 2, e->s[AS_SESSION], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->agent, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, e->first_ms);
    sqlite3_bind_int64(st, 6, e->last_ms);
    aggr_bind_measures(st, 7, e);
    rc = aggr_step(st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(g->set_rounds, 1, e->ws);
    sqlite3_bind_text(g->set_rounds, 2, e->s[AS_SESSION], -1, SQLITE_STATIC);
    rc = aggr_step(g->set_rounds);
    /* The session leaves the day it started in and joins the day it starts
     * in now, which a late event may have moved earlier. */
    if (rc == SQLITE_OK)
        rc = aggr_sday_read(g, e, &after);
    if (rc == SQLITE_OK && before.present)
        rc = aggr_sday_put(g, e->ws, &before, -1);
    if (rc == SQLITE_OK && after.present)
        rc = aggr_sday_put(g, e->ws, &after, 1);
    return rc;
}

static int aggr_put_round(struct col_aggr *g, const struct aggr_ent *e)
{
    sqlite3_stmt *st = g->up_round;
    sqlite3_bind_int64(st, 1, e->ws);
    sqlite3_bind_text(st, 2, e->s[AS_SESSION], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, e->round);
    sqlite3_bind_text(st, 4, e->s[AS_PROVIDER], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e->s[AS_MODEL], -1, SQLITE_STATIC);
    int i = aggr_bind_measures(st, 6, e);
    sqlite3_bind_int64(st, i++, e->first_ms);
    sqlite3_bind_int64(st, i++, e->last_ms);
    aggr_bind_hist(st, i, &e->lat);
    return aggr_step(st);
}

/* Write every derived row; rounds before sessions (sessions count them). */
static int aggr_write(struct col_aggr *g)
{
    int rc = SQLITE_OK;
    for (int pass = 0; pass < 2 && rc == SQLITE_OK; pass++)
        for (uint32_t i = 0; i < g->out.cap && rc == SQLITE_OK; i++) {
            const struct aggr_ent *e = &g->out.e[i];
            if (e->hash == 0)
                continue;
            if (pass == 0 && e->kind >= 0)
                rc = aggr_put_rollup(g, e);
            else if (pass == 0 && e->kind == AGGR_ROUND)
                rc = aggr_put_round(g, e);
            else if (pass == 1 && e->kind == AGGR_SESSION)
                rc = aggr_put_session(g, e);
        }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(g->seq_put, 1, g->seq);
        rc = aggr_step(g->seq_put);
    }
    return rc;
}

int col_aggr_flush(struct col *c, int64_t now_ms)
{
    struct col_aggr *g = c->aggr;
    sqlite3 *db = c->store.db;
    g->flushed_ms = now_ms;
    if (g->events == 0 && g->seq <= g->flushed_seq)
        return 0;
    int rc = aggr_prepare(g, db);
    if (rc == SQLITE_OK && aggr_derive(g) != 0)
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK)
        rc = col_store_begin(&c->store);
    char why[160] = "";
    if (rc == SQLITE_OK) {
        rc = aggr_write(g);
        if (rc == SQLITE_OK)
            rc = col_store_commit(&c->store);
        if (rc != SQLITE_OK) {
            /* The message before the rollback replaces it. */
            snprintf(why, sizeof(why), "%s", sqlite3_errmsg(db));
            col_store_rollback(&c->store);
        }
    }
    if (why[0] == '\0')
        snprintf(why, sizeof(why), "%s", sqlite3_errstr(rc));
    g->failed = rc != SQLITE_OK;
    if (rc == SQLITE_OK) {
        g->flushed_seq = g->seq;
        aggr_reset(g);
        return 0;
    }
    log_warn(NULL, "msg=\"rollup flush failed\" events=%llu error=\"%s\"",
             (unsigned long long)g->events, why);
    aggr_clear(&g->out);
    arena_reset(&g->out_arena);
    if (g->fine.n > AGGR_MAX_FINE) {
        log_error(NULL,
                  "msg=\"rollup aggregates dropped; they will be "
                  "re-read from the events\" entries=%u",
                  g->fine.n);
        aggr_reset(g);
        g->seq = g->flushed_seq;
        g->rescan = 1;
    }
    return -1;
}

void col_aggr_set_flushed(struct col_aggr *g, int64_t seq)
{
    g->flushed_seq = g->seq = seq;
}

int col_aggr_rescan_needed(const struct col_aggr *g)
{
    return g->rescan;
}

void col_aggr_rescan_done(struct col_aggr *g)
{
    g->rescan = 0;
}

void col_aggr_rescan_ask(struct col_aggr *g)
{
    g->rescan = 1;
}

/* ---- retention ---- */

/* Run one bounded DELETE; returns rows deleted or -1. */
static int aggr_delete(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    sqlite3_bind_int(st, 3, AGGR_PRUNE_ROWS);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

/* One small step of retention in its own transaction: the next batch of
 * old rows for workspace ws.  Returns rows deleted (0: nothing left for
 * ws) or -1. */
static int aggr_prune_ws(struct col *c, int64_t ws, int64_t now_ms)
{
    static const char *const sql[] = {
        /* raw events: (ws, ts) index */
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events "
        "WHERE ws = ?1 AND ts < ?2 LIMIT ?3)",
        /* minute rollups (the model cube's) keep as long as raw events */
        "DELETE FROM rollups WHERE ws = ?1 AND cube IN (0, 8) "
        "AND res = 60 AND ts = (SELECT min(ts) FROM rollups WHERE ws = ?1 "
        "AND cube = 0 AND res = 60) AND ts < ?2 AND ?3 > 0",
        "DELETE FROM rollups WHERE ws = ?1 AND cube IN (0, 1, 2, 3, 4, 5, 6, "
        "7, 8) AND res = 3600 AND ts = (SELECT min(ts) FROM rollups WHERE ws = "
        "?1 "
        "AND cube = 0 AND res = 3600) AND ts < ?2 AND ?3 > 0",
        "DELETE FROM rollups WHERE ws = ?1 AND cube IN (0, 1, 2, 3, 4, 6, 7, "
        "8) "
        "AND res = 86400 AND ts = (SELECT min(ts) FROM rollups WHERE ws = ?1 "
        "AND cube = 0 AND res = 86400) AND ts < ?2 AND ?3 > 0",
        "DELETE FROM rollups WHERE ws = ?1 AND cube IN (0, 1, 2, 3, 4, 6, 7, "
        "8) "
        "AND res = 604800 AND ts = (SELECT min(ts) FROM rollups WHERE ws = ?1 "
        "AND cube = 0 AND res = 604800) AND ts + 604800000 <= ?2 AND ?3 > 0",
        "DELETE FROM session_rounds WHERE ws = ?1 AND session IN (SELECT "
        "session FROM sessions WHERE ws = ?1 AND last_ms < ?2 LIMIT ?3)",
        /* session_days first takes out exactly the sessions the next
         * statement deletes (the same rows: same condition, same state),
         * so that it keeps equal to its GROUP BY over sessions. */
        "INSERT INTO session_days SELECT ws, started_ms - started_ms % "
        "86400000 AS d, -count(*), -sum(calls), -sum(errors), "
        "-sum(input_tokens), -sum(output_tokens), -sum(cache_read_tokens), "
        "-sum(cache_write_tokens), -sum(reasoning_tokens), -sum(cost_nusd), "
        "-sum(rounds), -sum(lat_n), -total(lat_sum), -sum(errors > 0), "
        "-sum(last_ms - started_ms) FROM sessions WHERE ws = ?1 AND session "
        "IN (SELECT session FROM sessions WHERE ws = ?1 AND last_ms < ?2 "
        "LIMIT ?3) AND NOT EXISTS (SELECT 1 FROM session_rounds r WHERE "
        "r.ws = ?1 AND r.session = sessions.session) GROUP BY ws, d "
        "ON CONFLICT(ws, day_ms) DO UPDATE SET "
        "sessions = sessions + excluded.sessions, "
        "calls = calls + excluded.calls, errors = errors + excluded.errors, "
        "input_tokens = input_tokens + excluded.input_tokens, "
        "output_tokens = output_tokens + excluded.output_tokens, "
        "cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens, "
        "cache_write_tokens = cache_write_tokens + "
        "excluded.cache_write_tokens, "
        "reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, "
        "cost_nusd = cost_nusd + excluded.cost_nusd, "
        "rounds = rounds + excluded.rounds, lat_n = lat_n + excluded.lat_n, "
        "lat_sum = lat_sum + excluded.lat_sum, "
        "err_sessions = err_sessions + excluded.err_sessions, "
        "dur_ms = dur_ms + excluded.dur_ms",
        "DELETE FROM sessions WHERE ws = ?1 AND session IN (SELECT "
        "session FROM sessions WHERE ws = ?1 AND last_ms < ?2 LIMIT ?3) "
        "AND NOT EXISTS (SELECT 1 FROM session_rounds r WHERE r.ws = ?1 AND "
        "r.session = sessions.session)",
        /* Days left without a session; only those before the cutoff can
         * be (a later day's sessions are all kept). */
        "DELETE FROM session_days WHERE ws = ?1 AND day_ms < ?2 AND "
        "sessions = 0 AND ?3 > 0",
    };
    int64_t raw = now_ms - (int64_t)c->conf.retention_days * 86400000LL;
    int64_t kept = now_ms - (int64_t)c->conf.rollup_retention_days * 86400000LL;
    int64_t cut[] = {raw, raw, kept, kept, kept, kept, kept, kept, kept};
    /* session_days only follows the sessions: its rows are not counted
     * as retention's (they change only when sessions are deleted). */
    static const int counted[] = {1, 1, 1, 1, 1, 1, 0, 1, 0};
    int total = 0;
    if (col_store_begin(&c->store) != SQLITE_OK)
        return -1;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        int n = aggr_delete(c->store.db, sql[i], ws, cut[i]);
        if (n < 0) {
            col_store_rollback(&c->store);
            return -1;
        }
        total += counted[i] ? n : 0;
    }
    if (total == 0) {
        col_store_rollback(&c->store);
        return 0;
    }
    if (col_store_commit(&c->store) != SQLITE_OK) {
        col_store_rollback(&c->store);
        return -1;
    }
    return total;
}

/* Up to max workspace ids above after, in order; returns how many. */
static int aggr_workspaces(sqlite3 *db, int64_t after, int64_t *ids, int max)
{
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM workspaces WHERE id > ? "
                           "ORDER BY id LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, max);
    while (n < max && sqlite3_step(st) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int64_t aggr_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t col_aggr_prune(struct col *c, int64_t now_ms, int budget_ms)
{
    int64_t ids[256], deleted = 0, t0 = aggr_us();
    int n;
    /* Every workspace, a page of ids at a time. */
    for (int64_t after = 0;
         (n = aggr_workspaces(c->store.db, after, ids, 256)) > 0;
         after = ids[n - 1]) {
        for (int i = 0; i < n; i++) {
            int d;
            while ((d = aggr_prune_ws(c, ids[i], now_ms)) > 0) {
                deleted += d;
                if (aggr_us() - t0 > (int64_t)budget_ms * 1000)
                    goto done;
            }
            if (d < 0)
                goto done;
        }
    }
done:
    if (deleted > 0)
        log_debug(NULL, "msg=\"retention\" rows=%lld", (long long)deleted);
    return deleted;
}
