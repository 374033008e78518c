/*
 * query.c: the analytics query engine (query.h).
 *
 * Each question becomes one statement, the arms of the plan one after the
 * other:
 *
 *   <raw head> UNION ALL <raw tail> UNION ALL <raw lag>
 *   UNION ALL <minute rows> UNION ALL <hour rows> UNION ALL <day rows> ...
 *
 * each arm yielding (bucket, grouped dimensions, measures, histograms).
 * Its text depends only on the cube, the grouped dimensions, the filters
 * present and whether histograms are wanted, never on the range: the
 * plan's segments are bound as parameters, an empty segment as [0, 0),
 * which costs one index probe.  So a thread prepares a few texts once and
 * keeps them (a small least-recently-used cache).
 *
 * Rollup arms pass their rows through (the cube's primary key
 * (ws, cube, res, ts, ...) bounds them; a user or session filter goes
 * through the cube's partial index instead); raw arms aggregate their
 * events with tt_hist_of through the (ws, ts) index, and the lag arm walks
 * the seq (rowid) range above rollup_seq, which is about a second of
 * ingest: its "+ws" and "+ts" keep the planner off the (ws, ts) index,
 * which would scan the whole range.
 *
 * The rows are summed here, in a hash table keyed by (bucket, group), not
 * by an outer GROUP BY: SQLite would sort every rollup row in a temporary
 * b-tree first, which costs about twice the scan itself.  Histograms stay
 * the blob of their one row until a second arrives, then become dense
 * counts, so grouping by user costs no 3 KiB array per user.
 */
#include "query.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "hash.h"
#include "hist.h"
#include "rollup.h"

#define QRY_MIN_MS  60000LL
#define QRY_HOUR_MS 3600000LL
#define QRY_DAY_MS  86400000LL

/* Statements a thread keeps prepared. */
#define QRY_CACHE_SIZE 24

/* Parameters of the statement: fixed ones, then two per arm. */
enum {
    QRY_P_WS = 1,
    QRY_P_BUCKET,
    QRY_P_PROVIDER,
    QRY_P_MODEL,
    QRY_P_AGENT,
    QRY_P_USER,
    QRY_P_SESSION,
    QRY_P_ISERR,
    QRY_P_SEQ,
    QRY_P_ARMS /* arm i: lo is QRY_P_ARMS + 2i, hi the next */
};

/* The cubes a question may read, smallest first, and what each holds
 * (rollup.h): its dimensions, finest and coarsest resolutions, whether it
 * keeps histograms, whether it holds only errors. */
static const struct {
    int cube;
    unsigned dims;
    int min_res, max_res, hist, errors;
} qry_cubes[] = {
    {ROLLUP_TOTAL, QRY_ISERR, ROLLUP_RES_MINUTE, ROLLUP_RES_WEEK, 1, 0},
    {ROLLUP_MODEL, QRY_PROVIDER | QRY_MODEL | QRY_ISERR, ROLLUP_RES_MINUTE,
     ROLLUP_RES_WEEK, 1, 0},
    {ROLLUP_AGENTS, QRY_AGENT | QRY_ISERR, ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 1,
     0},
    {ROLLUP_USERS, QRY_USER | QRY_ISERR, ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 0,
     0},
    {ROLLUP_AGENT, QRY_AGENT | QRY_PROVIDER | QRY_MODEL | QRY_ISERR,
     ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 1, 0},
    {ROLLUP_USER, QRY_USER | QRY_AGENT | QRY_PROVIDER | QRY_MODEL | QRY_ISERR,
     ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 1, 0},
    {ROLLUP_SESSION,
     QRY_SESSION | QRY_USER | QRY_AGENT | QRY_PROVIDER | QRY_MODEL | QRY_ISERR,
     ROLLUP_RES_HOUR, ROLLUP_RES_HOUR, 1, 0},
    {ROLLUP_ERRTYPES,
     QRY_PROVIDER | QRY_MODEL | QRY_ETYPE | QRY_STATUS | QRY_ISERR,
     ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 0, 1},
    {ROLLUP_ERRORS,
     QRY_PROVIDER | QRY_MODEL | QRY_AGENT | QRY_USER | QRY_ETYPE | QRY_STATUS |
         QRY_ISERR,
     ROLLUP_RES_HOUR, ROLLUP_RES_WEEK, 0, 1},
};

/* The groupable dimensions in column order, with their SQL. */
static const struct {
    unsigned dim;
    const char *col; /* rollup column */
    const char *raw; /* expression over events */
} qry_groups[] = {
    {QRY_PROVIDER, "provider", "provider"},
    {QRY_MODEL, "model", "model"},
    {QRY_AGENT, "agent", "coalesce(agent, '')"},
    {QRY_USER, "user", "coalesce(user, '')"},
    {QRY_ETYPE, "error_type", "coalesce(error_type, '')"},
    {QRY_STATUS, "status", "coalesce(status, 0)"},
};

#define QRY_NGROUPS (int)(sizeof(qry_groups) / sizeof(qry_groups[0]))

struct qry_stmt {
    char *sql;        /* the text, malloc'ed; NULL when the slot is free */
    sqlite3_stmt *st; /* prepared */
    uint64_t used;    /* cache clock at last use */
};

struct qry_cache {
    sqlite3 *db;
    struct qry_stmt ent[QRY_CACHE_SIZE];
    uint64_t clock;
    char err[256];
};

int qry_arm_res(enum qry_arm arm)
{
    switch (arm) {
    case QRY_ARM_MIN_A:
    case QRY_ARM_MIN_B:
        return ROLLUP_RES_MINUTE;
    case QRY_ARM_HOUR_A:
    case QRY_ARM_HOUR_B:
        return ROLLUP_RES_HOUR;
    case QRY_ARM_DAY_A:
    case QRY_ARM_DAY_B:
        return ROLLUP_RES_DAY;
    case QRY_ARM_WEEK:
        return ROLLUP_RES_WEEK;
    default:
        return 0;
    }
}

/* x rounded down and up to a multiple of unit (x >= 0). */
static int64_t qry_floor(int64_t x, int64_t unit)
{
    return x - x % unit;
}

static int64_t qry_ceil(int64_t x, int64_t unit)
{
    return qry_floor(x + unit - 1, unit);
}

void qry_plan_make(int64_t from, int64_t to, int min_res, int max_res,
                   struct qry_plan *p)
{
    static const struct {
        int res;
        enum qry_arm a, b; /* b == a: the level has one arm (weeks) */
    } levels[] = {{ROLLUP_RES_WEEK, QRY_ARM_WEEK, QRY_ARM_WEEK},
                  {ROLLUP_RES_DAY, QRY_ARM_DAY_A, QRY_ARM_DAY_B},
                  {ROLLUP_RES_HOUR, QRY_ARM_HOUR_A, QRY_ARM_HOUR_B},
                  {ROLLUP_RES_MINUTE, QRY_ARM_MIN_A, QRY_ARM_MIN_B}};
    memset(p, 0, sizeof(*p));
    int64_t unit = (int64_t)min_res * 1000;
    int64_t lo = qry_ceil(from, unit), hi = qry_floor(to, unit);
    if (min_res > max_res || lo >= hi) {
        /* No whole finest bucket inside: all raw. */
        p->seg[QRY_ARM_HEAD] = (struct qry_seg){from, to};
        return;
    }
    p->seg[QRY_ARM_HEAD] = (struct qry_seg){from, lo};
    p->seg[QRY_ARM_TAIL] = (struct qry_seg){hi, to};
    p->seg[QRY_ARM_LAG] = (struct qry_seg){lo, hi};
    /* [mlo, mhi) is covered so far, by coarser levels; it grows outwards
     * level by level until it reaches the whole minutes [lo, hi). */
    int64_t mlo = 0, mhi = 0;
    int have = 0;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (levels[i].res > max_res || levels[i].res < min_res)
            continue;
        int64_t lu = (int64_t)levels[i].res * 1000;
        int64_t c = qry_ceil(lo, lu), f = qry_floor(hi, lu);
        if (!have) {
            if (c < f) {
                p->seg[levels[i].a] = (struct qry_seg){c, f};
                mlo = c;
                mhi = f;
                have = 1;
            }
            continue;
        }
        /* Coarser levels are multiples of this one: c <= mlo, mhi <= f. */
        p->seg[levels[i].a] = (struct qry_seg){c, mlo};
        p->seg[levels[i].b] = (struct qry_seg){mhi, f};
        mlo = c;
        mhi = f;
    }
}

int qry_cube(unsigned dims, int errors_only, int hist, int *min_res,
             int *max_res)
{
    *min_res = ROLLUP_RES_MINUTE;
    *max_res = ROLLUP_RES_WEEK;
    for (size_t i = 0; i < sizeof(qry_cubes) / sizeof(qry_cubes[0]); i++)
        if ((dims & ~qry_cubes[i].dims) == 0 &&
            qry_cubes[i].errors == errors_only &&
            (qry_cubes[i].hist || !hist)) {
            *min_res = qry_cubes[i].min_res;
            *max_res = qry_cubes[i].max_res;
            return qry_cubes[i].cube;
        }
    return -1;
}

unsigned qry_dims(const struct qry_spec *s)
{
    unsigned d = s->group;
    if (s->f.provider != NULL)
        d |= QRY_PROVIDER;
    if (s->f.model != NULL)
        d |= QRY_MODEL;
    if (s->f.agent != NULL)
        d |= QRY_AGENT;
    if (s->f.user != NULL)
        d |= QRY_USER;
    if (s->f.session != NULL)
        d |= QRY_SESSION;
    if (s->f.status != QRY_STATUS_ANY)
        d |= QRY_ISERR;
    return d;
}

/* ---- the statement's text ---- */

/* A string being built into a fixed buffer; overflow is sticky. */
struct qry_buf {
    char *p;
    size_t len, cap;
    int over;
};

static void qry_put(struct qry_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->over || b->len + n + 1 > b->cap) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

/* ", <col>" for each grouped dimension (raw: the events expression). */
static void qry_put_groups(struct qry_buf *b, unsigned group, int raw)
{
    for (int i = 0; i < QRY_NGROUPS; i++)
        if (group & qry_groups[i].dim) {
            qry_put(b, ", ");
            qry_put(b, raw ? qry_groups[i].raw : qry_groups[i].col);
        }
}

/* The filters of a question as SQL terms (ERRORS rows imply is_error). */
static void qry_put_filters(struct qry_buf *b, const struct qry_spec *s,
                            int raw)
{
    if (s->f.provider != NULL)
        qry_put(b, " AND provider = ?3");
    if (s->f.model != NULL)
        qry_put(b, " AND model = ?4");
    if (s->f.agent != NULL)
        qry_put(b, " AND agent = ?5");
    if (s->f.user != NULL)
        qry_put(b, " AND user = ?6");
    if (s->f.session != NULL)
        qry_put(b, " AND session = ?7");
    if (s->errors_only) {
        if (raw)
            qry_put(b, " AND is_error = 1");
    } else if (s->f.status != QRY_STATUS_ANY)
        qry_put(b, " AND is_error = ?8");
}

/* The arm's segment parameters, "?N" and "?N+1". */
static void qry_put_seg(struct qry_buf *b, int arm, const char *col)
{
    char t[96];
    snprintf(t, sizeof(t), " AND %s >= ?%d AND %s < ?%d", col,
             QRY_P_ARMS + 2 * arm, col, QRY_P_ARMS + 2 * arm + 1);
    qry_put(b, t);
}

/* One raw arm: the events of the segment, aggregated per bucket/group. */
static void qry_put_raw(struct qry_buf *b, const struct qry_spec *s, int arm)
{
    qry_put(b, "SELECT ts - ts % ?2");
    qry_put_groups(b, s->group, 1);
    qry_put(b, ", count(*), sum(is_error), sum(input_tokens), "
               "sum(output_tokens), sum(cache_read_tokens), "
               "sum(cache_write_tokens), sum(reasoning_tokens), "
               "sum(CAST(round(cost_usd * 1e9) AS INTEGER)), "
               "count(latency_ms), total(latency_ms), count(ttft_ms), "
               "total(ttft_ms), min(ts), max(ts), ");
    qry_put(b, s->hist ? "tt_hist_of(latency_ms), tt_hist_of(ttft_ms)"
                       : "NULL, NULL");
    if (arm == QRY_ARM_LAG) {
        qry_put(b, " FROM events WHERE seq > ?9 AND +ws = ?1");
        qry_put_seg(b, arm, "+ts");
    } else {
        qry_put(b, " FROM events WHERE ws = ?1");
        qry_put_seg(b, arm, "ts");
    }
    qry_put_filters(b, s, 1);
    qry_put(b, " GROUP BY ts - ts % ?2");
    qry_put_groups(b, s->group, 1);
}

/* One rollup arm: the rows of the segment at the arm's resolution. */
static void qry_put_rollup(struct qry_buf *b, const struct qry_spec *s,
                           int cube, int arm)
{
    char t[160];
    qry_put(b, "SELECT ts - ts % ?2");
    qry_put_groups(b, s->group, 0);
    qry_put(b, ", calls, errors, input_tokens, output_tokens, "
               "cache_read_tokens, cache_write_tokens, reasoning_tokens, "
               "cost_nusd, lat_n, lat_sum, ttft_n, ttft_sum, first_ms, "
               "last_ms, ");
    qry_put(b, s->hist ? "lat_hist, ttft_hist" : "NULL, NULL");
    /* A user's or a session's rows are a small part of their cube: the
     * partial index reaches them without walking everyone's. */
    const char *idx = "";
    if (cube == ROLLUP_USER && s->f.user != NULL)
        idx = " INDEXED BY rollups_user";
    else if (cube == ROLLUP_SESSION)
        idx = " INDEXED BY rollups_session";
    snprintf(t, sizeof(t),
             " FROM rollups%s WHERE ws = ?1 AND cube = %d AND "
             "res = %d",
             idx, cube, qry_arm_res(arm));
    qry_put(b, t);
    qry_put_seg(b, arm, "ts");
    qry_put_filters(b, s, 0);
}

/* The whole statement for s reading cube: the arms, one after the other. */
static void qry_put_sql(struct qry_buf *b, const struct qry_spec *s, int cube)
{
    for (int arm = 0; arm < QRY_NARMS; arm++) {
        if (arm > 0)
            qry_put(b, " UNION ALL ");
        if (qry_arm_res(arm) == 0)
            qry_put_raw(b, s, arm);
        else
            qry_put_rollup(b, s, cube, arm);
    }
}

/* The cube answering s.  A user filter goes to ROLLUP_USER through its
 * partial index on user rather than to ROLLUP_USERS, whose key puts the
 * user after the time: one user's rows there are found only by walking
 * every user's. */
static int qry_spec_cube(const struct qry_spec *s, int *min_res, int *max_res)
{
    int cube = qry_cube(qry_dims(s), s->errors_only, s->hist, min_res, max_res);
    return cube == ROLLUP_USERS && s->f.user != NULL ? ROLLUP_USER : cube;
}

long qry_sql(const struct qry_spec *s, char *buf, size_t n)
{
    int min_res, max_res;
    int cube = qry_spec_cube(s, &min_res, &max_res);
    struct qry_buf b = {buf, 0, n, 0};
    if (cube < 0 || n == 0)
        return -1;
    buf[0] = '\0';
    qry_put_sql(&b, s, cube);
    return b.over ? -1 : (long)b.len;
}

/* ---- the cache ---- */

struct qry_cache *qry_cache_new(sqlite3 *db)
{
    struct qry_cache *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->db = db;
    return c;
}

void qry_cache_free(struct qry_cache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < QRY_CACHE_SIZE; i++) {
        sqlite3_finalize(c->ent[i].st);
        free(c->ent[i].sql);
    }
    free(c);
}

/* Remember SQLite's message for -EIO. */
static int qry_fail(struct qry_cache *c, const char *what)
{
    snprintf(c->err, sizeof(c->err), "%s: %s", what, sqlite3_errmsg(c->db));
    return -EIO;
}

/* The prepared statement of sql, from the cache or prepared now. */
static sqlite3_stmt *qry_stmt(struct qry_cache *c, const char *sql)
{
    struct qry_stmt *victim = &c->ent[0];
    c->clock++;
    for (int i = 0; i < QRY_CACHE_SIZE; i++) {
        struct qry_stmt *e = &c->ent[i];
        if (e->sql != NULL && strcmp(e->sql, sql) == 0) {
            e->used = c->clock;
            return e->st;
        }
        if (e->sql == NULL || (victim->sql != NULL && e->used < victim->used))
            victim = e;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK) {
        qry_fail(c, "prepare");
        return NULL;
    }
    char *copy = strdup(sql);
    if (copy == NULL) {
        sqlite3_finalize(st);
        snprintf(c->err, sizeof(c->err), "out of memory");
        return NULL;
    }
    sqlite3_finalize(victim->st);
    free(victim->sql);
    victim->sql = copy;
    victim->st = st;
    victim->used = c->clock;
    return st;
}

const char *qry_errmsg(const struct qry_cache *c)
{
    return c->err;
}

/* ---- running ---- */

/* Bind the parameters of s and its plan. */
static void qry_bind(sqlite3_stmt *st, const struct qry_spec *s,
                     const struct qry_plan *p)
{
    sqlite3_bind_int64(st, QRY_P_WS, s->ws);
    /* No bucket: a divisor larger than any ts puts everything in 0. */
    sqlite3_bind_int64(st, QRY_P_BUCKET,
                       s->bucket_ms > 0 ? s->bucket_ms : INT64_C(1) << 62);
    const char *fs[] = {s->f.provider, s->f.model, s->f.agent, s->f.user,
                        s->f.session};
    for (int i = 0; i < 5; i++)
        if (fs[i] != NULL)
            sqlite3_bind_text(st, QRY_P_PROVIDER + i, fs[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, QRY_P_PROVIDER + i);
    sqlite3_bind_int(st, QRY_P_ISERR, s->f.status);
    sqlite3_bind_int64(st, QRY_P_SEQ, s->rollup_seq);
    for (int i = 0; i < QRY_NARMS; i++) {
        sqlite3_bind_int64(st, QRY_P_ARMS + 2 * i, p->seg[i].lo);
        sqlite3_bind_int64(st, QRY_P_ARMS + 2 * i + 1, p->seg[i].hi);
    }
}

/* The (bucket, group) rows of an answer being summed, in a hash table
 * keyed by the arms' leading columns. */
struct qry_merge {
    struct arena *a;
    unsigned group;
    struct qry_acc *acc; /* the rows, in order of first sight */
    size_t n, cap;
    uint32_t *slots; /* 1 + index into acc; 0: free */
    size_t nslots;   /* a power of two, at least twice n */
    int err;         /* why qry_merge_find failed, when not -ENOMEM */
};

/* One row being summed.  Its histograms stay as the first blob seen (the
 * usual case when each group gets one row) and become dense counts once a
 * second one arrives. */
struct qry_acc {
    struct qry_row row;
    uint64_t hash;
    uint32_t *dense[2]; /* latency, TTFT; NULL while sparse */
};

/* The hash of the current row's key columns. */
static uint64_t qry_key_hash(sqlite3_stmt *st, unsigned group)
{
    int64_t ts = sqlite3_column_int64(st, 0);
    uint64_t h = hash_bytes(HASH_SEED, &ts, sizeof(ts));
    int col = 1;
    for (int i = 0; i < QRY_NGROUPS; i++)
        if (group & qry_groups[i].dim) {
            const unsigned char *t = sqlite3_column_text(st, col);
            h = hash_bytes(h, t ? t : (const unsigned char *)"",
                           (size_t)sqlite3_column_bytes(st, col));
            h = hash_bytes(h, "", 1);
            col++;
        }
    return h;
}

/* Do the current row's key columns equal acc's key? */
static int qry_key_eq(const struct qry_acc *acc, sqlite3_stmt *st,
                      unsigned group)
{
    const char *strs[] = {acc->row.provider, acc->row.model, acc->row.agent,
                          acc->row.user, acc->row.error_type};
    if (acc->row.ts != sqlite3_column_int64(st, 0))
        return 0;
    int col = 1;
    for (int i = 0; i < QRY_NGROUPS; i++) {
        if (!(group & qry_groups[i].dim))
            continue;
        if (qry_groups[i].dim == QRY_STATUS) {
            if (acc->row.status != sqlite3_column_int(st, col))
                return 0;
        } else {
            const char *t = (const char *)sqlite3_column_text(st, col);
            if (strcmp(strs[i], t ? t : "") != 0)
                return 0;
        }
        col++;
    }
    return 1;
}

/* A new row with the current row's key (measures zero). */
static int qry_key_copy(struct qry_merge *m, struct qry_acc *acc,
                        sqlite3_stmt *st)
{
    const char **strs[] = {&acc->row.provider, &acc->row.model, &acc->row.agent,
                           &acc->row.user, &acc->row.error_type};
    memset(acc, 0, sizeof(*acc));
    acc->row.provider = acc->row.model = acc->row.agent = acc->row.user =
        acc->row.error_type = "";
    acc->row.ts = sqlite3_column_int64(st, 0);
    int col = 1;
    for (int i = 0; i < QRY_NGROUPS; i++) {
        if (!(m->group & qry_groups[i].dim))
            continue;
        if (qry_groups[i].dim == QRY_STATUS)
            acc->row.status = sqlite3_column_int(st, col);
        else if (sqlite3_column_bytes(st, col) > 0) {
            *strs[i] =
                arena_strndup(m->a, (const char *)sqlite3_column_text(st, col),
                              (size_t)sqlite3_column_bytes(st, col));
            if (*strs[i] == NULL)
                return -ENOMEM;
        }
        col++;
    }
    return 0;
}

/* Rehash into twice as many slots (and room for as many rows). */
static int qry_merge_grow(struct qry_merge *m)
{
    size_t nslots = m->nslots ? m->nslots * 2 : 256;
    uint32_t *slots = arena_alloc(m->a, nslots * sizeof(*slots));
    struct qry_acc *acc = arena_alloc(m->a, nslots / 2 * sizeof(*acc));
    if (slots == NULL || acc == NULL)
        return -ENOMEM;
    memset(slots, 0, nslots * sizeof(*slots));
    if (m->n > 0)
        memcpy(acc, m->acc, m->n * sizeof(*acc));
    for (size_t i = 0; i < m->n; i++) {
        size_t j = (size_t)acc[i].hash & (nslots - 1);
        while (slots[j] != 0)
            j = (j + 1) & (nslots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    m->slots = slots;
    m->nslots = nslots;
    m->acc = acc;
    m->cap = nslots / 2;
    return 0;
}

/* The row of the current row's key, made if new. */
static struct qry_acc *qry_merge_find(struct qry_merge *m, sqlite3_stmt *st,
                                      int *fresh)
{
    if (m->n >= QRY_MAX_ROWS) {
        m->err = -E2BIG;
        return NULL;
    }
    if (m->n + 1 > m->cap && qry_merge_grow(m) != 0)
        return NULL;
    uint64_t h = qry_key_hash(st, m->group);
    size_t j = (size_t)h & (m->nslots - 1);
    for (; m->slots[j] != 0; j = (j + 1) & (m->nslots - 1)) {
        struct qry_acc *acc = &m->acc[m->slots[j] - 1];
        if (acc->hash == h && qry_key_eq(acc, st, m->group)) {
            *fresh = 0;
            return acc;
        }
    }
    struct qry_acc *acc = &m->acc[m->n];
    if (qry_key_copy(m, acc, st) != 0)
        return NULL;
    acc->hash = h;
    m->slots[j] = (uint32_t)++m->n;
    *fresh = 1;
    return acc;
}

/* Add the histogram blob of column col into acc's histogram i. */
static int qry_merge_hist(struct qry_merge *m, struct qry_acc *acc, int i,
                          sqlite3_stmt *st, int col)
{
    const void **blob = i ? &acc->row.ttft_hist : &acc->row.lat_hist;
    size_t *len = i ? &acc->row.ttft_len : &acc->row.lat_len;
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (p == NULL || n <= 0)
        return 0;
    if (acc->dense[i] == NULL && *len == 0) {
        void *copy = arena_alloc(m->a, (size_t)n);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, p, (size_t)n);
        *blob = copy;
        *len = (size_t)n;
        return 0;
    }
    if (acc->dense[i] == NULL) {
        acc->dense[i] = arena_alloc(m->a, HIST_BUCKETS * sizeof(uint32_t));
        if (acc->dense[i] == NULL)
            return -ENOMEM;
        memset(acc->dense[i], 0, HIST_BUCKETS * sizeof(uint32_t));
        if (hist_blob_add(*blob, *len, acc->dense[i]) < 0)
            return -EINVAL;
    }
    return hist_blob_add(p, (size_t)n, acc->dense[i]) < 0 ? -EINVAL : 0;
}

/* Add the current row of st (key, measures, histograms) into m. */
static int qry_merge_row(struct qry_merge *m, sqlite3_stmt *st)
{
    int fresh;
    struct qry_acc *acc = qry_merge_find(m, st, &fresh);
    if (acc == NULL)
        return m->err ? m->err : -ENOMEM;
    struct qry_row *r = &acc->row;
    int col = 1 + __builtin_popcount(m->group);
    r->calls += sqlite3_column_int64(st, col++);
    r->errors += sqlite3_column_int64(st, col++);
    for (int i = 0; i < 5; i++)
        r->tokens[i] += sqlite3_column_int64(st, col++);
    r->cost_nusd += sqlite3_column_int64(st, col++);
    r->lat_n += sqlite3_column_int64(st, col++);
    r->lat_sum += sqlite3_column_double(st, col++);
    r->ttft_n += sqlite3_column_int64(st, col++);
    r->ttft_sum += sqlite3_column_double(st, col++);
    int64_t first = sqlite3_column_int64(st, col++);
    int64_t last = sqlite3_column_int64(st, col++);
    if (fresh || first < r->first_ms)
        r->first_ms = first;
    if (fresh || last > r->last_ms)
        r->last_ms = last;
    int rc = qry_merge_hist(m, acc, 0, st, col);
    return rc ? rc : qry_merge_hist(m, acc, 1, st, col + 1);
}

/* What qsort_r orders rows by (qry_order_cmp). */
struct qry_order {
    unsigned group;
    int with_ts;
};

static int qry_order_cmp(const void *a, const void *b, void *ctx)
{
    const struct qry_order *o = ctx;
    return qry_row_cmp(a, b, o->group, o->with_ts);
}

/* The merged rows as an answer: dense histograms back to blobs, ordered
 * by ts, then the grouped dimensions. */
static int qry_merge_done(struct qry_merge *m, struct qry_result *out)
{
    out->n = 0;
    out->rows = m->n ? arena_alloc(m->a, m->n * sizeof(*out->rows)) : NULL;
    if (m->n > 0 && out->rows == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        struct qry_acc *acc = &m->acc[i];
        for (int h = 0; h < 2; h++) {
            if (acc->dense[h] == NULL)
                continue;
            unsigned char *b = arena_alloc(m->a, HIST_BUCKETS * HIST_BLOB_ENT);
            if (b == NULL)
                return -ENOMEM;
            size_t len = hist_blob_encode(acc->dense[h], b);
            if (h == 0) {
                acc->row.lat_hist = b;
                acc->row.lat_len = len;
            } else {
                acc->row.ttft_hist = b;
                acc->row.ttft_len = len;
            }
        }
        out->rows[out->n++] = acc->row;
    }
    struct qry_order o = {m->group, 1};
    if (out->n > 1)
        qsort_r(out->rows, out->n, sizeof(*out->rows), qry_order_cmp, &o);
    return 0;
}

/* Check s; *plan gets its plan (with the cube's resolutions, never
 * coarser than the output bucket).  -EINVAL when no cube answers it. */
static int qry_prepare(struct qry_cache *c, const struct qry_spec *s,
                       struct qry_plan *plan)
{
    int min_res, max_res;
    int cube = qry_spec_cube(s, &min_res, &max_res);
    if (cube < 0 || (s->group & ~QRY_GROUPABLE) != 0 || s->from_ms < 0 ||
        s->to_ms <= s->from_ms) {
        snprintf(c->err, sizeof(c->err), "no cube answers this question");
        return -EINVAL;
    }
    /* A rollup row must fall inside one output bucket. */
    int64_t bucket_s = s->bucket_ms / 1000;
    if (bucket_s > 0 && bucket_s < max_res)
        max_res = bucket_s >= ROLLUP_RES_DAY    ? ROLLUP_RES_DAY
                  : bucket_s >= ROLLUP_RES_HOUR ? ROLLUP_RES_HOUR
                                                : ROLLUP_RES_MINUTE;
    qry_plan_make(s->from_ms, s->to_ms, min_res, max_res, plan);
    return 0;
}

/* Answer s over the segments of plan (a plan of s, some arms possibly
 * emptied); rows in arena a. */
static int qry_exec(struct qry_cache *c, struct arena *a,
                    const struct qry_spec *s, const struct qry_plan *plan,
                    struct qry_result *out)
{
    out->rows = NULL;
    out->n = 0;
    /* Errors-only questions about successful calls have no answer rows. */
    if (s->errors_only && s->f.status == QRY_STATUS_OK)
        return 0;
    char text[QRY_SQL_MAX];
    if (qry_sql(s, text, sizeof(text)) < 0) {
        snprintf(c->err, sizeof(c->err), "statement too long");
        return -EINVAL;
    }
    sqlite3_stmt *st = qry_stmt(c, text);
    if (st == NULL)
        return -EIO;
    qry_bind(st, s, plan);
    struct qry_merge m = {.a = a, .group = s->group};
    int rc, err = 0;
    while (err == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = qry_merge_row(&m, st);
    if (err == 0 && rc != SQLITE_DONE) {
        qry_fail(c, "query");
        err = -EIO;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (err == 0)
        err = qry_merge_done(&m, out);
    if (err == -ENOMEM)
        snprintf(c->err, sizeof(c->err), "out of memory");
    else if (err == -E2BIG)
        snprintf(c->err, sizeof(c->err),
                 "the answer would have more than %d rows", QRY_MAX_ROWS);
    else if (err == -EINVAL)
        snprintf(c->err, sizeof(c->err), "malformed histogram in the rollups");
    return err;
}

int qry_run(struct qry_cache *c, struct arena *a, const struct qry_spec *s,
            struct qry_result *out)
{
    struct qry_plan plan;
    out->rows = NULL;
    out->n = 0;
    int rc = qry_prepare(c, s, &plan);
    return rc ? rc : qry_exec(c, a, s, &plan, out);
}

/* ---- distinct users ---- */

/* The rollup arms the user probes walk, the likeliest hit first. */
static const enum qry_arm qry_probe_arms[] = {
    QRY_ARM_WEEK,   QRY_ARM_DAY_A, QRY_ARM_DAY_B, QRY_ARM_HOUR_A,
    QRY_ARM_HOUR_B, QRY_ARM_MIN_A, QRY_ARM_MIN_B};

#define QRY_NPROBE_ARMS (sizeof(qry_probe_arms) / sizeof(qry_probe_arms[0]))

/* Does the answer res, grouped by dim (QRY_USER or QRY_AGENT) alone and
 * so ordered by it, hold name? */
static int qry_has(const struct qry_result *res, unsigned dim, const char *name)
{
    size_t lo = 0, hi = res->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct qry_row *r = &res->rows[mid];
        int c = strcmp(dim == QRY_USER ? r->user : r->agent, name);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Bind the filters of s (not user, not session) with the numbers qry_bind
 * gives them. */
static void qry_bind_filters(sqlite3_stmt *st, const struct qry_spec *s)
{
    sqlite3_bind_int64(st, QRY_P_WS, s->ws);
    const char *fs[] = {s->f.provider, s->f.model, s->f.agent};
    for (int i = 0; i < 3; i++)
        if (fs[i] != NULL)
            sqlite3_bind_text(st, QRY_P_PROVIDER + i, fs[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, QRY_P_ISERR, s->f.status);
}

/* Count the users with a rollup row in a rollup arm of plan that matches
 * the filters of s, except those of raw (the raw arms' answer grouped by
 * user), which are counted already: one step of a walk over the distinct users
 * of the per-user cube's index, then a probe per non-empty arm until one finds
 * a row. */
static int qry_probe_users(struct qry_cache *c, const struct qry_spec *s,
                           const struct qry_plan *plan,
                           const struct qry_result *raw, int64_t *users)
{
    char next_sql[256], probe_sql[512];
    snprintf(next_sql, sizeof(next_sql),
             "SELECT user FROM rollups INDEXED BY rollups_user WHERE ws = ?1 "
             "AND cube = %d AND user > ?6 ORDER BY user LIMIT 1",
             ROLLUP_USER);
    char filt[160];
    struct qry_buf fb = {filt, 0, sizeof(filt), 0};
    filt[0] = '\0';
    qry_put_filters(&fb, s, 0);
    snprintf(probe_sql, sizeof(probe_sql),
             "SELECT 1 FROM rollups INDEXED BY rollups_user WHERE ws = ?1 AND "
             "user = ?6 AND res = ?%d AND ts >= ?%d AND ts < ?%d AND "
             "cube = %d%s LIMIT 1",
             QRY_P_ARMS, QRY_P_ARMS + 1, QRY_P_ARMS + 2, ROLLUP_USER, filt);
    /* Two statements from the cache: preparing the second evicts the least
     * recently used, never the first. */
    sqlite3_stmt *next = qry_stmt(c, next_sql);
    sqlite3_stmt *probe = next ? qry_stmt(c, probe_sql) : NULL;
    if (probe == NULL)
        return -EIO;
    qry_bind_filters(next, s);
    qry_bind_filters(probe, s);
    char user[4 * EV_MAX_NAME + 1] = "";
    int err = 0, rc;
    while (err == 0) {
        sqlite3_bind_text(next, QRY_P_USER, user, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(next);
        if (rc != SQLITE_ROW)
            break;
        int len = sqlite3_column_bytes(next, 0);
        if ((size_t)len >= sizeof(user)) {
            snprintf(c->err, sizeof(c->err), "a user name of %d bytes", len);
            err = -EIO;
            break;
        }
        memcpy(user, sqlite3_column_text(next, 0), (size_t)len + 1);
        sqlite3_reset(next);
        if (qry_has(raw, QRY_USER, user))
            continue; /* counted with the raw arms */
        sqlite3_bind_text(probe, QRY_P_USER, user, -1, SQLITE_STATIC);
        for (size_t i = 0; i < QRY_NPROBE_ARMS; i++) {
            const struct qry_seg *g = &plan->seg[qry_probe_arms[i]];
            if (g->lo >= g->hi)
                continue;
            sqlite3_bind_int(probe, QRY_P_ARMS, qry_arm_res(qry_probe_arms[i]));
            sqlite3_bind_int64(probe, QRY_P_ARMS + 1, g->lo);
            sqlite3_bind_int64(probe, QRY_P_ARMS + 2, g->hi);
            rc = sqlite3_step(probe);
            sqlite3_reset(probe);
            if (rc == SQLITE_ROW) {
                ++*users;
                break;
            }
            if (rc != SQLITE_DONE) {
                err = qry_fail(c, "probe");
                break;
            }
        }
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = qry_fail(c, "users");
    sqlite3_reset(next);
    sqlite3_clear_bindings(next);
    sqlite3_clear_bindings(probe);
    return err;
}

/* The rows of res with a name (user or agent, by dim) into *named; the
 * calls of the unnamed ones added to *anon_calls when not NULL. */
static void qry_count_named(const struct qry_result *res, unsigned dim,
                            int64_t *named, int64_t *anon_calls)
{
    for (size_t i = 0; i < res->n; i++) {
        const struct qry_row *r = &res->rows[i];
        if ((dim == QRY_USER ? r->user : r->agent)[0] != '\0')
            ++*named;
        else if (anon_calls != NULL)
            *anon_calls += r->calls;
    }
}

/* Empty the raw arms of p (raw != 0) or its rollup arms. */
static void qry_plan_keep(struct qry_plan *p, int raw)
{
    for (int i = 0; i < QRY_NARMS; i++)
        if ((qry_arm_res(i) == 0) != (raw != 0))
            p->seg[i] = (struct qry_seg){0, 0};
}

int qry_distinct(struct qry_cache *c, struct arena *a, const struct qry_spec *s,
                 struct qry_people *out)
{
    memset(out, 0, sizeof(*out));
    struct qry_spec u = *s;
    u.group = QRY_USER | QRY_AGENT;
    u.hist = 0;
    u.bucket_ms = 0;
    struct qry_plan plan, part;
    struct qry_result res, users, agents;
    int rc = qry_prepare(c, &u, &plan);
    if (rc != 0)
        return rc;
    /* Probing pays when the range holds days of rows per user: the walk
     * costs two index seeks per user the rollups know, where reading the
     * rows costs one step per user and hour, day or week in the range. */
    int long_range = plan.seg[QRY_ARM_WEEK].lo < plan.seg[QRY_ARM_WEEK].hi ||
                     plan.seg[QRY_ARM_DAY_A].hi - plan.seg[QRY_ARM_DAY_A].lo +
                             plan.seg[QRY_ARM_DAY_B].hi -
                             plan.seg[QRY_ARM_DAY_B].lo >=
                         2 * QRY_DAY_MS;
    /* The agents' rows must fit the users' plan. */
    int amin, amax, umin, umax;
    u.group = QRY_AGENT;
    qry_spec_cube(&u, &amin, &amax);
    u.group = QRY_USER | QRY_AGENT;
    qry_spec_cube(&u, &umin, &umax);
    if (!long_range || amin != umin || amax != umax || s->f.user != NULL ||
        s->f.session != NULL || s->errors_only) {
        /* Every row per user, then every row per agent. */
        u.group = QRY_USER;
        if ((rc = qry_run(c, a, &u, &users)) != 0)
            return rc;
        qry_count_named(&users, QRY_USER, &out->users, &out->anon_calls);
        u.group = QRY_AGENT;
        if ((rc = qry_run(c, a, &u, &agents)) != 0)
            return rc;
        qry_count_named(&agents, QRY_AGENT, &out->agents, NULL);
        return 0;
    }
    /* The raw arms once, per user and agent (the user and agent cubes have
     * the same resolutions, so the same plan). */
    part = plan;
    qry_plan_keep(&part, 1);
    if ((rc = qry_exec(c, a, &u, &part, &res)) != 0 ||
        (rc = qry_regroup(a, &res, QRY_USER, 0, &users)) != 0)
        return rc;
    qry_count_named(&users, QRY_USER, &out->users, &out->anon_calls);
    /* The agents: the rollup rows per agent, plus those only raw. */
    struct qry_result raw_agents;
    u.group = QRY_AGENT;
    part = plan;
    qry_plan_keep(&part, 0);
    if ((rc = qry_regroup(a, &res, QRY_AGENT, 0, &raw_agents)) != 0 ||
        (rc = qry_exec(c, a, &u, &part, &agents)) != 0)
        return rc;
    qry_count_named(&agents, QRY_AGENT, &out->agents, NULL);
    for (size_t i = 0; i < raw_agents.n; i++)
        if (raw_agents.rows[i].agent[0] != '\0' &&
            !qry_has(&agents, QRY_AGENT, raw_agents.rows[i].agent))
            out->agents++;
    /* The calls without a user in the rollup arms: the per-user cube's
     * rows of user "" (through its index). */
    struct qry_spec anon = u;
    struct qry_result ar;
    anon.group = 0;
    anon.f.user = "";
    if ((rc = qry_exec(c, a, &anon, &part, &ar)) != 0)
        return rc;
    if (ar.n > 0)
        out->anon_calls += ar.rows[0].calls;
    return qry_probe_users(c, s, &plan, &users, &out->users);
}

/* ---- helpers over rows ---- */

int64_t qry_quantiles(const void *blob, size_t len, const double *qs, int nq,
                      double *out)
{
    uint32_t counts[HIST_BUCKETS];
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < nq; i++)
        out[i] = 0;
    int64_t n = len ? hist_blob_add(blob, len, counts) : 0;
    if (n <= 0)
        return n;
    for (int i = 0; i < nq; i++)
        out[i] = hist_quantile(counts, (uint64_t)n, qs[i]);
    return n;
}

/* Merge blob b into *a (arena memory). */
static int qry_blob_merge(struct arena *ar, const void **a, size_t *alen,
                          const void *b, size_t blen)
{
    if (blen == 0)
        return 0;
    unsigned char *out = arena_alloc(ar, *alen + blen);
    if (out == NULL)
        return -ENOMEM;
    long n = hist_blob_merge(*a, *alen, b, blen, out);
    if (n < 0)
        return -EINVAL;
    *a = out;
    *alen = (size_t)n;
    return 0;
}

int qry_row_add(struct arena *a, struct qry_row *acc, const struct qry_row *b)
{
    if (acc->calls == 0 || (b->calls > 0 && b->first_ms < acc->first_ms))
        acc->first_ms = b->first_ms;
    if (acc->calls == 0 || b->last_ms > acc->last_ms)
        acc->last_ms = b->last_ms;
    acc->calls += b->calls;
    acc->errors += b->errors;
    for (int i = 0; i < 5; i++)
        acc->tokens[i] += b->tokens[i];
    acc->cost_nusd += b->cost_nusd;
    acc->lat_n += b->lat_n;
    acc->lat_sum += b->lat_sum;
    acc->ttft_n += b->ttft_n;
    acc->ttft_sum += b->ttft_sum;
    int rc = qry_blob_merge(a, &acc->lat_hist, &acc->lat_len, b->lat_hist,
                            b->lat_len);
    if (rc == 0)
        rc = qry_blob_merge(a, &acc->ttft_hist, &acc->ttft_len, b->ttft_hist,
                            b->ttft_len);
    return rc;
}

int qry_row_cmp(const struct qry_row *x, const struct qry_row *y,
                unsigned group, int with_ts)
{
    if (with_ts && x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    const char *xs[] = {x->provider, x->model, x->agent, x->user,
                        x->error_type};
    const char *ys[] = {y->provider, y->model, y->agent, y->user,
                        y->error_type};
    for (int i = 0; i < QRY_NGROUPS; i++) {
        if (!(group & qry_groups[i].dim))
            continue;
        int c;
        if (qry_groups[i].dim == QRY_STATUS)
            c = (x->status > y->status) - (x->status < y->status);
        else
            c = strcmp(xs[i], ys[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

int qry_regroup(struct arena *a, const struct qry_result *in, unsigned group,
                int keep_ts, struct qry_result *out)
{
    out->n = 0;
    out->rows = NULL;
    if (in->n == 0)
        return 0;
    struct qry_row *rows = arena_alloc(a, in->n * sizeof(*rows));
    if (rows == NULL)
        return -ENOMEM;
    memcpy(rows, in->rows, in->n * sizeof(*rows));
    struct qry_order o = {group, keep_ts};
    qsort_r(rows, in->n, sizeof(*rows), qry_order_cmp, &o);
    size_t n = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (n > 0 && qry_row_cmp(&rows[n - 1], &rows[i], group, keep_ts) == 0) {
            int rc = qry_row_add(a, &rows[n - 1], &rows[i]);
            if (rc != 0)
                return rc;
            continue;
        }
        struct qry_row *r = &rows[n++];
        if (r != &rows[i])
            *r = rows[i];
        /* Forget the dimensions not kept. */
        if (!(group & QRY_PROVIDER))
            r->provider = "";
        if (!(group & QRY_MODEL))
            r->model = "";
        if (!(group & QRY_AGENT))
            r->agent = "";
        if (!(group & QRY_USER))
            r->user = "";
        if (!(group & QRY_ETYPE))
            r->error_type = "";
        if (!(group & QRY_STATUS))
            r->status = 0;
        if (!keep_ts)
            r->ts = 0;
    }
    out->rows = rows;
    out->n = n;
    return 0;
}
