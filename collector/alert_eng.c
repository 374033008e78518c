/*
 * alert_eng.c: the alert engine, on a thread of its own in the collector.
 *
 * Data.  The main thread appends a compact record of every committed event
 * to a feed buffer (col_alert_event: a memcpy) and, once a second, hands
 * the buffer to the engine (a pointer swap under the engine's mutex).  The
 * engine folds the records into a ring of minute buckets kept in memory:
 * per minute, one cell per workspace and (provider, model, agent, user,
 * api_key, error flag) with counts, tokens, cost and sparse latency and
 * TTFT histograms.  The ring holds AENG_RING_MIN minutes, enough for
 * windows up to AENG_SHORT_MIN minutes and the window before them (the
 * *_change_percent metrics); longer windows add the hour rollups.  It
 * reads the events table once, at start (aeng_prefill), never to
 * evaluate.
 *
 * Windows are whole minutes: a window of W is the current (partial) minute
 * and the W/1m minutes before it, so it covers between W and W + 1m; rps
 * divides by the seconds it covers.
 *
 * Evaluation, every alert_eval_interval: rules with the same workspace,
 * filters, group_by and window share one pass over the ring (a
 * "signature"), which yields a sample per group; each rule then evaluates
 * its condition per group (alert_eval) and advances the group's state
 * (alert_step, common/alert.c).  A group with an open alert but absent now
 * is evaluated on an empty sample (counts 0) so rate conditions resolve,
 * and a grouped rule that holds on no traffic also takes the groups of its
 * previous window absent now, so "requests < 1" by model fires for a
 * model that stopped; no_data applies when no leaf has a value.
 *
 * Writes.  The engine never writes the database: the transitions it
 * decides go to an outbox that the main thread applies once a second
 * (col_alert_apply) in one transaction, with the alerts table's unique
 * index on open alerts (rule, group) making a duplicate impossible, and
 * publishes firing and resolved events to the shm event ring.  Manual
 * changes (acknowledge, resolve) reach the engine as control messages.
 * At start the engine loads the open alerts, so a restart neither loses
 * nor duplicates them.
 *
 * Rules reload when their generation changes (bumped by rule commands).
 */
#include "collector.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "arena.h"
#include "budget.h"
#include "hash.h"
#include "hist.h"
#include "log.h"
#include "rollup.h"

#define AENG_MIN_MS       60000LL
#define AENG_RING_MIN     122 /* two longest windows and their partial minutes */
#define AENG_SHORT_MIN    60  /* the longest window of the ring alone */
#define AENG_HOUR_MS      3600000LL
#define AENG_FEED_MAX     (64u << 20) /* bytes of feed kept per second */
#define AENG_APPLY_MAX    2000        /* transitions written per second */
#define AENG_OUT_MAX      20000       /* waiting: the engine pauses above */
#define AENG_FIRE_PENDING (AA_RESOLVE + 1) /* aeng_tx: fire a pending alert */
#define AENG_IS_FIRE(a)   ((a) == AA_FIRE || (a) == AENG_FIRE_PENDING)

/* ---- the feed: one record per committed event ---- */

struct aeng_rec {
    int64_t ws, ts_ms, cost_nusd;
    int64_t input_tokens, output_tokens, total_tokens;
    float latency_ms, ttft_ms; /* < 0: absent */
    uint8_t is_error;
    uint8_t len[AD_NDIMS]; /* string lengths; the strings follow */
};

struct aeng_buf {
    unsigned char *p;
    size_t len, cap;
};

/* ---- the ring ---- */

struct aeng_hent {
    uint16_t b;
    uint32_t n;
};

/* A sparse histogram: (bucket, count) pairs, unsorted. */
struct aeng_hist {
    struct aeng_hent *e;
    uint32_t n, cap;
};

struct aeng_cell {
    uint64_t hash;
    int64_t ws;
    const char *dims[AD_NDIMS]; /* in the minute's arena */
    int is_error;
    int64_t requests, errors, input_tokens, output_tokens, total_tokens;
    int64_t cost_nusd;
    struct aeng_hist lat, ttft;
};

struct aeng_mtab;

struct aeng_minute {
    int64_t start_ms; /* 0: unused */
    struct arena a;
    struct aeng_cell *cells; /* open addressing on hash */
    size_t n, nslots;
    uint64_t gen;            /* bumped by every fold */
    struct aeng_mtab *cache; /* its cells by (workspace, dims), made on use */
    size_t ncache;
};

/* ---- rules, states, transitions ---- */

struct aeng_rule {
    int64_t id, ws;
    char workspace[72];
    struct alert_rule r;
    int hist, prev; /* it needs percentiles, the previous window */
    int zero;       /* its condition holds on no traffic */
};

/* The state of one rule x group, in a hash table. */
struct aeng_state {
    int64_t rule_id;
    char *group_key; /* malloc'ed; "" without group_by */
    char *group_json;
    struct alert_state st;
    int64_t seen_ms; /* last evaluation that saw the group */
};

/* A transition for the main thread to write. */
struct aeng_tx {
    int action, notify;
    int64_t rule_id, ws, now;
    char *rule_name, *workspace, *group_key, *group_json, *values;
    char *labels; /* the rule's, as JSON */
    int severity;
};

/* A slot of the states table: the hash beside the pointer, so that a probe
 * reads no state it does not want. */
struct aeng_sslot {
    uint64_t hash;
    struct aeng_state *s; /* NULL: free */
};

/* A control message from the main thread. */
struct aeng_ctl {
    int64_t rule_id;
    char *group_key;
    int status; /* AS_OK (resolved or deleted) or AS_ACKED */
};

struct aeng_long;

/* A rule test: the rule (owned), and the engine's answer. */
struct aeng_test {
    uint64_t id; /* the command's, for the main thread */
    struct aeng_rule ar;
    json_t *out;
    struct aeng_test *next;
};

#define AENG_TESTS_MAX 16 /* tests waiting at most: more are refused */

struct col_alerts {
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* shared, under mu */
    struct aeng_buf inbox; /* feeds handed over, appended */
    uint64_t dropped;      /* records not kept (feed full) */
    struct aeng_tx *out;   /* transitions for the main thread */
    size_t nout, capout;
    struct aeng_ctl *ctl;
    size_t nctl, capctl;
    uint64_t rules_gen;
    struct aeng_test *tests; /* rule tests waiting (rule.test) ... */
    struct aeng_test *done;  /* ... and answered, for the main thread */
    int ntests;              /* waiting or being evaluated */
    int ready;               /* open alerts and recent events loaded */
    int wake_fd;             /* eventfd: a test was answered */
    /* main thread only */
    struct aeng_buf feed;
    /* engine thread only */
    sqlite3 *db;
    char path[CONF_PATH_MAX + 32];
    int64_t interval_ms;
    uint64_t rules_seen;
    struct aeng_rule *rules;
    size_t nrules;
    struct aeng_minute ring[AENG_RING_MIN];
    struct aeng_sslot *states; /* open addressing; states allocated apart */
    size_t nstates, nstate_slots;
    struct live *live; /* budget slots (read only) */
    int64_t *wide;     /* ids of whole-workspace budgets */
    size_t nwide;
    int64_t (*clock)(void);
    int64_t seq_hi;           /* the last event seq stored before this start */
    int loaded;               /* open alerts and recent events read */
    struct aeng_long **longs; /* hour sums for windows over the ring */
    size_t nlongs;
    int64_t next; /* when the next evaluation is due */
};

/* ---- helpers ---- */

static int aeng_buf_put(struct aeng_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (q == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static size_t aeng_rec_size(const struct aeng_rec *r)
{
    size_t n = sizeof(*r);
    for (int d = 0; d < AD_NDIMS; d++)
        n += r->len[d];
    return (n + 7) & ~(size_t)7;
}

/* ---- main thread: feeding ---- */

/* Append the record of event e (workspace id ws) to b; 0, or -1 when b
 * is full (at most max bytes) or out of memory. */
static int aeng_rec_put(struct aeng_buf *b, size_t max, int64_t ws,
                        const struct live_event *e, const char *api_key)
{
    struct aeng_rec r;
    memset(&r, 0, sizeof(r));
    const char *dims[AD_NDIMS] = {e->provider, e->model, e->agent, e->user,
                                  api_key};
    r.ws = ws;
    r.ts_ms = e->ts_ms;
    r.cost_nusd = e->cost_nusd;
    r.input_tokens = e->tokens[SHM_TOK_INPUT];
    r.output_tokens = e->tokens[SHM_TOK_OUTPUT];
    for (int k = 0; k < SHM_TOK_N; k++)
        r.total_tokens += e->tokens[k];
    r.latency_ms = (float)e->latency_ms;
    r.ttft_ms = (float)e->ttft_ms;
    r.is_error = (uint8_t)(e->is_error != 0);
    for (int d = 0; d < AD_NDIMS; d++) {
        size_t n = dims[d] ? strlen(dims[d]) : 0;
        r.len[d] = (uint8_t)(n > 255 ? 255 : n);
    }
    if (b->len + aeng_rec_size(&r) > max)
        return -1;
    size_t at = b->len;
    static const char pad[8] = {0};
    int rc = aeng_buf_put(b, &r, sizeof(r));
    for (int d = 0; rc == 0 && d < AD_NDIMS; d++)
        if (r.len[d] > 0)
            rc = aeng_buf_put(b, dims[d], r.len[d]);
    if (rc == 0)
        rc = aeng_buf_put(b, pad, at + aeng_rec_size(&r) - b->len);
    if (rc != 0)
        b->len = at;
    return rc;
}

void col_alert_event(struct col *c, int64_t ws, const struct live_event *e,
                     const char *api_key)
{
    struct col_alerts *al = c->alerts;
    if (al != NULL &&
        aeng_rec_put(&al->feed, AENG_FEED_MAX, ws, e, api_key) != 0)
        al->dropped++;
}

/* Hand the feed to the engine (once a second). */
static void col_alert_handover(struct col_alerts *al)
{
    if (al->feed.len == 0 && al->dropped == 0)
        return;
    pthread_mutex_lock(&al->mu);
    if (al->inbox.len + al->feed.len <= 4 * (size_t)AENG_FEED_MAX &&
        aeng_buf_put(&al->inbox, al->feed.p, al->feed.len) == 0)
        ;
    else
        al->dropped++;
    pthread_mutex_unlock(&al->mu);
    al->feed.len = 0;
}

/* ---- engine thread: the ring ---- */

static void aeng_cache_free(struct aeng_minute *mn);

static struct aeng_minute *aeng_minute(struct col_alerts *al, int64_t ts,
                                       int64_t now)
{
    int64_t m = ts - ts % AENG_MIN_MS;
    int64_t cur = now - now % AENG_MIN_MS;
    /* Only minutes the ring covers; a record dated a little ahead of the
     * collector's clock counts in the current minute. */
    if (m > cur)
        m = cur;
    if (m <= cur - AENG_RING_MIN * AENG_MIN_MS)
        return NULL;
    struct aeng_minute *mn = &al->ring[(m / AENG_MIN_MS) % AENG_RING_MIN];
    if (mn->start_ms != m) {
        if (mn->start_ms != 0) {
            aeng_cache_free(mn);
            for (size_t i = 0; i < mn->nslots; i++) {
                free(mn->cells[i].lat.e);
                free(mn->cells[i].ttft.e);
            }
            free(mn->cells);
            arena_free(&mn->a);
        }
        memset(mn, 0, sizeof(*mn));
        arena_init(&mn->a, 64 * 1024);
        mn->start_ms = m;
    }
    return mn;
}

static int aeng_hist_add(struct aeng_hist *h, double ms)
{
    if (ms < 0)
        return 0;
    uint16_t b = (uint16_t)hist_bucket(ms);
    for (uint32_t i = 0; i < h->n; i++)
        if (h->e[i].b == b) {
            h->e[i].n++;
            return 0;
        }
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 4;
        struct aeng_hent *e = realloc(h->e, cap * sizeof(*e));
        if (e == NULL)
            return -1;
        h->e = e;
        h->cap = cap;
    }
    h->e[h->n++] = (struct aeng_hent){b, 1};
    return 0;
}

/* The key hash of a record. */
static uint64_t aeng_key_hash(int64_t ws, const char *const *dims,
                              const uint8_t *len, int is_error)
{
    uint64_t h = hash_bytes(HASH_SEED, &ws, sizeof(ws));
    for (int d = 0; d < AD_NDIMS; d++) {
        h = hash_bytes(h, dims[d], len[d]);
        h = hash_bytes(h, "", 1);
    }
    return hash_bytes(h, &is_error, sizeof(is_error));
}

static int aeng_minute_grow(struct aeng_minute *mn)
{
    size_t nslots = mn->nslots ? mn->nslots * 2 : 256;
    struct aeng_cell *cells = calloc(nslots, sizeof(*cells));
    if (cells == NULL)
        return -1;
    for (size_t i = 0; i < mn->nslots; i++) {
        if (mn->cells[i].dims[0] == NULL)
            continue;
        size_t j = mn->cells[i].hash & (nslots - 1);
        while (cells[j].dims[0] != NULL)
            j = (j + 1) & (nslots - 1);
        cells[j] = mn->cells[i];
    }
    free(mn->cells);
    mn->cells = cells;
    mn->nslots = nslots;
    return 0;
}

/* Fold one record into the ring. */
static void aeng_fold(struct col_alerts *al, const struct aeng_rec *r,
                      int64_t now)
{
    struct aeng_minute *mn = aeng_minute(al, r->ts_ms, now);
    if (mn == NULL)
        return;
    const char *dims[AD_NDIMS];
    const char *p = (const char *)(r + 1);
    for (int d = 0; d < AD_NDIMS; d++) {
        dims[d] = p;
        p += r->len[d];
    }
    int is_error = r->is_error;
    uint64_t h = aeng_key_hash(r->ws, dims, r->len, is_error);
    if ((mn->n + 1) * 2 > mn->nslots && aeng_minute_grow(mn) != 0)
        return;
    size_t j = h & (mn->nslots - 1);
    struct aeng_cell *c;
    for (;; j = (j + 1) & (mn->nslots - 1)) {
        c = &mn->cells[j];
        if (c->dims[0] == NULL)
            break;
        if (c->hash != h || c->ws != r->ws || c->is_error != is_error)
            continue;
        int same = 1;
        for (int d = 0; same && d < AD_NDIMS; d++)
            same = strlen(c->dims[d]) == r->len[d] &&
                   memcmp(c->dims[d], dims[d], r->len[d]) == 0;
        if (same)
            break;
    }
    if (c->dims[0] == NULL) {
        for (int d = 0; d < AD_NDIMS; d++) {
            c->dims[d] = arena_strndup(&mn->a, dims[d], r->len[d]);
            if (c->dims[d] == NULL) {
                memset(c, 0, sizeof(*c));
                return;
            }
        }
        c->hash = h;
        c->ws = r->ws;
        c->is_error = is_error;
        mn->n++;
    }
    mn->gen++;
    c->requests++;
    c->errors += is_error;
    c->input_tokens += r->input_tokens;
    c->output_tokens += r->output_tokens;
    c->total_tokens += r->total_tokens;
    c->cost_nusd += r->cost_nusd;
    aeng_hist_add(&c->lat, r->latency_ms);
    aeng_hist_add(&c->ttft, r->ttft_ms);
}

/* Take the inbox and fold it. */
static void aeng_take_inbox(struct col_alerts *al, int64_t now)
{
    struct aeng_buf b;
    pthread_mutex_lock(&al->mu);
    b = al->inbox;
    memset(&al->inbox, 0, sizeof(al->inbox));
    pthread_mutex_unlock(&al->mu);
    for (size_t at = 0; at < b.len;) {
        const struct aeng_rec *r = (const struct aeng_rec *)(b.p + at);
        aeng_fold(al, r, now);
        at += aeng_rec_size(r);
    }
    free(b.p);
}

/* Fold the stored events of the ring's span with seq <= seq_hi (those
 * committed before this start; later ones come through the feed), so that
 * windows are whole from the first evaluation after a restart. */
static int aeng_prefill(struct col_alerts *al, int64_t now)
{
    sqlite3_stmt *st;
    int64_t lo = now - now % AENG_MIN_MS - (AENG_RING_MIN - 1) * AENG_MIN_MS;
    if (sqlite3_prepare_v2(
            al->db, "SELECT " COL_EVENT_COLS "WHERE e.ts >= ?1 AND e.seq <= ?2",
            -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, al->seq_hi);
    struct aeng_buf b = {0};
    int64_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct live_event e;
        col_row_event(st, &e);
        const char *key = (const char *)sqlite3_column_text(st, 25);
        b.len = 0;
        if (aeng_rec_put(&b, SIZE_MAX, sqlite3_column_int64(st, 24), &e,
                         key ? key : "") == 0) {
            aeng_fold(al, (const struct aeng_rec *)b.p, now);
            n++;
        }
    }
    sqlite3_finalize(st);
    free(b.p);
    log_info(NULL, "msg=\"alert engine prefilled\" events=%lld", (long long)n);
    return 0;
}

/* ---- engine thread: rules ---- */

static void aeng_rules_free(struct col_alerts *al)
{
    for (size_t i = 0; i < al->nrules; i++)
        alert_rule_free(&al->rules[i].r);
    free(al->rules);
    al->rules = NULL;
    al->nrules = 0;
}

static int aeng_rule_cmp(const void *x, const void *y);
static void aeng_rule_init(struct aeng_rule *ar);
static unsigned aeng_rule_dims(const struct alert_rule *r);
static size_t aeng_open_of(struct aeng_state **open, size_t n, int64_t id,
                           size_t *count);

/* Load the ids of whole-workspace budgets. */
static void aeng_wide_load(struct col_alerts *al)
{
    sqlite3_stmt *st;
    free(al->wide);
    al->wide = NULL;
    al->nwide = 0;
    if (sqlite3_prepare_v2(al->db,
                           "SELECT id FROM budgets WHERE provider = '' AND "
                           "model = ''",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (al->nwide == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *w = realloc(al->wide, cap * sizeof(*w));
            if (w == NULL)
                break;
            al->wide = w;
        }
        al->wide[al->nwide++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
}

/* Load the enabled rules (and the budgets they may ask about). */
static int aeng_rules_load(struct col_alerts *al)
{
    sqlite3_stmt *st;
    aeng_wide_load(al);
    if (sqlite3_prepare_v2(al->db,
                           "SELECT r.id, r.ws, w.name, r.spec FROM alert_rules "
                           "r JOIN workspaces w ON w.id = r.ws WHERE "
                           "r.enabled ORDER BY r.id",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    aeng_rules_free(al);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (al->nrules == cap) {
            cap = cap ? cap * 2 : 64;
            struct aeng_rule *n = realloc(al->rules, cap * sizeof(*n));
            if (n == NULL)
                break;
            al->rules = n;
        }
        struct aeng_rule *ar = &al->rules[al->nrules];
        memset(ar, 0, sizeof(*ar));
        ar->id = sqlite3_column_int64(st, 0);
        ar->ws = sqlite3_column_int64(st, 1);
        snprintf(ar->workspace, sizeof(ar->workspace), "%s",
                 (const char *)sqlite3_column_text(st, 2));
        json_t *spec =
            json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
        char path[256], msg[512];
        int ok = alert_rule_parse(spec, &ar->r, path, sizeof(path), msg,
                                  sizeof(msg)) == 0;
        json_decref(spec);
        if (!ok) {
            log_warn(NULL,
                     "msg=\"stored rule not loaded\" id=%lld error=\"%s\"",
                     (long long)ar->id, msg);
            continue;
        }
        aeng_rule_init(ar);
        al->nrules++;
    }
    sqlite3_finalize(st);
    /* Runs of rules that share a pass are adjacent. */
    if (al->nrules > 1)
        qsort(al->rules, al->nrules, sizeof(*al->rules), aeng_rule_cmp);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- engine thread: states ---- */

static uint64_t aeng_state_hash(int64_t rule, const char *key)
{
    uint64_t h = hash_bytes(HASH_SEED, &rule, sizeof(rule));
    return hash_bytes(h, key, strlen(key));
}

/* The state of rule x key (made when make).  States are allocated one by
 * one: their addresses stay while the table of pointers grows (the
 * evaluation keeps pointers to the open ones). */
static struct aeng_state *aeng_state(struct col_alerts *al, int64_t rule,
                                     const char *key, int make)
{
    uint64_t h = aeng_state_hash(rule, key);
    size_t mask = al->nstate_slots - 1;
    if (al->nstate_slots > 0)
        for (size_t j = h & mask; al->states[j].s != NULL; j = (j + 1) & mask) {
            struct aeng_state *s = al->states[j].s;
            if (al->states[j].hash == h && s->rule_id == rule &&
                strcmp(s->group_key, key) == 0)
                return s;
        }
    if (!make)
        return NULL;
    if ((al->nstates + 1) * 2 > al->nstate_slots) {
        size_t ns = al->nstate_slots ? al->nstate_slots * 2 : 256;
        struct aeng_sslot *t = calloc(ns, sizeof(*t));
        if (t == NULL)
            return NULL;
        for (size_t i = 0; i < al->nstate_slots; i++) {
            if (al->states[i].s == NULL)
                continue;
            size_t j = al->states[i].hash & (ns - 1);
            while (t[j].s != NULL)
                j = (j + 1) & (ns - 1);
            t[j] = al->states[i];
        }
        free(al->states);
        al->states = t;
        al->nstate_slots = ns;
        mask = ns - 1;
    }
    struct aeng_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->rule_id = rule;
    s->group_key = strdup(key);
    s->group_json = strdup("{}");
    size_t j = h & mask;
    while (al->states[j].s != NULL)
        j = (j + 1) & mask;
    al->states[j] = (struct aeng_sslot){h, s};
    al->nstates++;
    return s;
}

/* Load the open alerts (at start). */
static int aeng_states_load(struct col_alerts *al)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(al->db,
                           "SELECT rule_id, group_key, group_json, status, "
                           "coalesce(fired_ms, started_ms), last_notified_ms "
                           "FROM alerts WHERE status IN ('pending', "
                           "'firing', 'acknowledged')",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct aeng_state *s =
            aeng_state(al, sqlite3_column_int64(st, 0),
                       (const char *)sqlite3_column_text(st, 1), 1);
        if (s == NULL)
            break;
        free(s->group_json);
        s->group_json = strdup((const char *)sqlite3_column_text(st, 2));
        const char *status = (const char *)sqlite3_column_text(st, 3);
        s->st.status = strcmp(status, "pending") == 0  ? AS_PENDING
                       : strcmp(status, "firing") == 0 ? AS_FIRING
                                                       : AS_ACKED;
        s->st.since_ms = sqlite3_column_int64(st, 4);
        s->st.last_notified_ms = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    /* The cooldowns of groups without an open alert: the last notification
     * of their latest alerts (within the longest cooldown). */
    if (sqlite3_prepare_v2(al->db,
                           "SELECT rule_id, group_key, max(last_notified_ms) "
                           "FROM alerts WHERE status = 'resolved' AND "
                           "rule_id > 0 AND last_notified_ms > ?1 GROUP BY "
                           "1, 2",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, al->clock() - ALERT_MAX_DURATION);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct aeng_state *s =
            aeng_state(al, sqlite3_column_int64(st, 0),
                       (const char *)sqlite3_column_text(st, 1), 1);
        if (s != NULL && s->st.status == AS_OK &&
            sqlite3_column_int64(st, 2) > s->st.last_notified_ms)
            s->st.last_notified_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return 0;
}

/* Apply the control messages. */
static void aeng_take_ctl(struct col_alerts *al)
{
    pthread_mutex_lock(&al->mu);
    struct aeng_ctl *ctl = al->ctl;
    size_t n = al->nctl;
    al->ctl = NULL;
    al->nctl = al->capctl = 0;
    pthread_mutex_unlock(&al->mu);
    for (size_t i = 0; i < n; i++) {
        struct aeng_state *s =
            aeng_state(al, ctl[i].rule_id, ctl[i].group_key, 0);
        if (s != NULL) {
            if (ctl[i].status == AS_ACKED && s->st.status == AS_FIRING)
                s->st.status = AS_ACKED;
            else if (ctl[i].status == AS_OK)
                s->st.status = AS_OK;
        }
        free(ctl[i].group_key);
    }
    free(ctl);
}

/* ---- engine thread: evaluation ----
 *
 * Rules are evaluated in runs that share a pass over the ring: the same
 * workspace, window (in whole minutes) and "dims", the dimensions the rule
 * groups or filters by.  A pass aggregates the window's cells of the
 * workspace by those dims (and the window before, for the change metrics);
 * each rule of the run then keeps the pass's groups that match its filters
 * and, when it filters by a dimension it does not group by, adds them up
 * by its own group_by.  A pass's cost is the cells of its window, so
 * 10,000 rules cost as many passes as they have distinct (workspace,
 * window, dims), not 10,000. */

/* Budget percent used per period for a workspace: its whole-workspace
 * budgets (no provider or model scope), from the live segment's slots;
 * NAN when it has none. */
static void aeng_budgets(struct col_alerts *al, const char *workspace,
                         double pct[3])
{
    pct[0] = pct[1] = pct[2] = NAN;
    if (al->live == NULL || al->nwide == 0)
        return;
    struct shm_budget slots[64];
    int n = shm_read_budgets(live_header(al->live), workspace, slots, 64);
    for (int i = 0; i < n; i++) {
        int wide = 0;
        for (size_t k = 0; !wide && k < al->nwide; k++)
            wide = al->wide[k] == slots[i].id;
        if (wide && slots[i].limit_nusd > 0 && slots[i].period >= 1 &&
            slots[i].period <= 2)
            pct[slots[i].period] = (double)slots[i].spend_nusd * 100.0 /
                                   (double)slots[i].limit_nusd;
    }
}

/* Record a transition for the main thread. */
static void aeng_tx_free(struct aeng_tx *t)
{
    free(t->rule_name);
    free(t->workspace);
    free(t->group_key);
    free(t->group_json);
    free(t->values);
    free(t->labels);
}

/* Queue a transition of rule ar's state s for the main thread; -1 when out
 * of memory (nothing queued). */
static int aeng_emit(struct col_alerts *al, const struct aeng_rule *ar,
                     const struct aeng_state *s, int action, int notify,
                     const char *values, int64_t now)
{
    struct aeng_tx t = {.action = action,
                        .notify = notify,
                        .rule_id = ar->id,
                        .ws = ar->ws,
                        .now = now,
                        .severity = ar->r.severity,
                        .rule_name = strdup(ar->r.name),
                        .workspace = strdup(ar->workspace),
                        .group_key = strdup(s->group_key),
                        .group_json = strdup(s->group_json),
                        .values = strdup(values ? values : "{}"),
                        .labels = json_dumps(ar->r.labels, JSON_COMPACT)};
    if (t.rule_name == NULL || t.workspace == NULL || t.group_key == NULL ||
        t.group_json == NULL || t.values == NULL || t.labels == NULL) {
        aeng_tx_free(&t);
        return -1;
    }
    pthread_mutex_lock(&al->mu);
    if (al->nout == al->capout) {
        size_t cap = al->capout ? al->capout * 2 : 64;
        struct aeng_tx *o = realloc(al->out, cap * sizeof(*o));
        if (o == NULL) {
            pthread_mutex_unlock(&al->mu);
            aeng_tx_free(&t);
            return -1;
        }
        al->out = o;
        al->capout = cap;
    }
    al->out[al->nout++] = t;
    pthread_mutex_unlock(&al->mu);
    return 0;
}

/* The values of r's leaves as JSON, {"metric op threshold": value}. */
static char *aeng_values(const struct aeng_rule *ar, const double *vals,
                         const int *verdicts)
{
    json_t *arr = json_array();
    for (int i = 0; i < ar->r.nnodes; i++) {
        const struct alert_node *nd = &ar->r.nodes[i];
        if (nd->kind != AK_LEAF)
            continue;
        /* The condition as the rule has it (a budget's period too), with
         * its value and verdict. */
        json_t *v = alert_condition_json(&ar->r, i);
        if (v == NULL)
            continue;
        json_object_set_new(v, "value",
                            isnan(vals[i]) ? json_null() : json_real(vals[i]));
        json_object_set_new(v, "holds", json_boolean(verdicts[i]));
        json_array_append_new(arr, v);
    }
    char *t = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(arr);
    return t;
}

/* One group of a pass, or of a rule. */
struct aeng_group {
    uint64_t hash;
    int used;
    const char *dims[AD_NDIMS]; /* the table's dims; others "" */
    struct alert_sample cur;    /* the counts */
    int64_t prev_requests, prev_cost;
    struct aeng_hist lat, ttft; /* sparse (minute tables); malloc'ed */
    uint32_t *dense[2];         /* latency, TTFT (window tables); malloc'ed */
    uint64_t ndense[2];
    double q[4]; /* aeng_group_quantiles, when q_ok */
    int q_ok;
};

/* A hash table of groups keyed by some dims. */
struct aeng_gtab {
    struct aeng_group *g;
    size_t n, nslots;
    unsigned dims;
    double span_s; /* a previous window's length (0: not one) */
};

/* A minute's cells of one workspace by dims, as of the minute's gen. */
struct aeng_mtab {
    int64_t ws;
    unsigned dims;
    int hist;
    uint64_t gen;
    struct aeng_gtab t;
};

static uint64_t aeng_dims_hash(const char *const *dims, unsigned which)
{
    uint64_t h = HASH_SEED;
    for (int d = 0; d < AD_NDIMS; d++)
        if (which & (1u << d)) {
            h = hash_bytes(h, dims[d], strlen(dims[d]));
            h = hash_bytes(h, "", 1);
        }
    return h;
}

static void aeng_gtab_free(struct aeng_gtab *t)
{
    for (size_t i = 0; i < t->nslots; i++) {
        free(t->g[i].lat.e);
        free(t->g[i].ttft.e);
        free(t->g[i].dense[0]);
        free(t->g[i].dense[1]);
    }
    free(t->g);
    memset(t, 0, sizeof(*t));
}

/* The group of dims (by t->dims) in t, made when new. */
static struct aeng_group *aeng_gtab_get(struct aeng_gtab *t,
                                        const char *const *dims)
{
    static const char empty[] = "";
    if ((t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        struct aeng_group *g = calloc(ns, sizeof(*g));
        if (g == NULL)
            return NULL;
        for (size_t i = 0; i < t->nslots; i++) {
            if (!t->g[i].used)
                continue;
            size_t j = t->g[i].hash & (ns - 1);
            while (g[j].used)
                j = (j + 1) & (ns - 1);
            g[j] = t->g[i];
        }
        free(t->g);
        t->g = g;
        t->nslots = ns;
    }
    uint64_t h = aeng_dims_hash(dims, t->dims);
    size_t j = h & (t->nslots - 1);
    for (; t->g[j].used; j = (j + 1) & (t->nslots - 1)) {
        struct aeng_group *g = &t->g[j];
        if (g->hash != h)
            continue;
        int same = 1;
        for (int d = 0; same && d < AD_NDIMS; d++)
            same = !(t->dims & (1u << d)) || strcmp(g->dims[d], dims[d]) == 0;
        if (same)
            return g;
    }
    struct aeng_group *g = &t->g[j];
    memset(g, 0, sizeof(*g));
    g->used = 1;
    g->hash = h;
    for (int d = 0; d < AD_NDIMS; d++)
        g->dims[d] = (t->dims & (1u << d)) ? dims[d] : empty;
    t->n++;
    return g;
}

/* Add the sparse histogram b into a. */
static void aeng_hist_merge(struct aeng_hist *a, const struct aeng_hist *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t k = 0;
        while (k < a->n && a->e[k].b != b->e[i].b)
            k++;
        if (k < a->n) {
            a->e[k].n += b->e[i].n;
            continue;
        }
        if (a->n == a->cap) {
            uint32_t cap = a->cap ? a->cap * 2 : 8;
            struct aeng_hent *e = realloc(a->e, cap * sizeof(*e));
            if (e == NULL)
                return;
            a->e = e;
            a->cap = cap;
        }
        a->e[a->n++] = b->e[i];
    }
}

/* Add group b's counts into a. */
static void aeng_group_add(struct aeng_group *a, const struct aeng_group *b)
{
    a->cur.requests += b->cur.requests;
    a->cur.errors += b->cur.errors;
    a->cur.input_tokens += b->cur.input_tokens;
    a->cur.output_tokens += b->cur.output_tokens;
    a->cur.total_tokens += b->cur.total_tokens;
    a->cur.cost_nusd += b->cur.cost_nusd;
    a->prev_requests += b->prev_requests;
    a->prev_cost += b->prev_cost;
}

/* The dims rule r groups or filters by. */
static unsigned aeng_rule_dims(const struct alert_rule *r)
{
    unsigned d = r->group_by;
    for (int k = 0; k < AD_NDIMS; k++)
        if (r->filters[k][0] != '\0')
            d |= 1u << k;
    return d;
}

/* Does r need percentiles (hist) or the previous window (prev)? */
static void aeng_rule_needs(const struct alert_rule *r, int *hist, int *prev)
{
    for (int i = 0; i < r->nnodes; i++) {
        int m = r->nodes[i].metric;
        if (r->nodes[i].kind != AK_LEAF)
            continue;
        if (m == AM_LATENCY_P50 || m == AM_LATENCY_P95 || m == AM_LATENCY_P99 ||
            m == AM_TTFT_P95)
            *hist = 1;
        if (m == AM_COST_CHANGE || m == AM_REQUESTS_CHANGE)
            *prev = 1;
    }
}

/* What ar needs (aeng_rule_needs), and whether its condition holds on
 * no traffic (then its grouped form needs the previous window too, to know
 * the groups that went quiet: aeng_rule_groups). */
static void aeng_rule_init(struct aeng_rule *ar)
{
    ar->hist = ar->prev = 0;
    aeng_rule_needs(&ar->r, &ar->hist, &ar->prev);
    struct alert_sample s;
    memset(&s, 0, sizeof(s));
    s.window_s = (double)ar->r.window_ms / 1000.0;
    s.lat_p50 = s.lat_p95 = s.lat_p99 = s.ttft_p95 = NAN;
    for (int k = 0; k < 3; k++)
        s.budget_pct[k] = NAN;
    ar->zero = alert_eval(&ar->r, &s, NULL, NULL);
    ar->prev |= ar->zero && ar->r.group_by != 0;
}

/* The whole minutes of r's window before the current one. */
static int64_t aeng_rule_wmin(const struct alert_rule *r)
{
    return (r->window_ms + AENG_MIN_MS - 1) / AENG_MIN_MS;
}

/* Rules in evaluation order: by workspace and dims (a run shares one walk
 * over the minutes), then window, then id. */
static int aeng_rule_cmp(const void *x, const void *y)
{
    const struct aeng_rule *a = x, *b = y;
    int64_t wa = aeng_rule_wmin(&a->r), wb = aeng_rule_wmin(&b->r);
    unsigned da = aeng_rule_dims(&a->r), db = aeng_rule_dims(&b->r);
    if (a->ws != b->ws)
        return a->ws < b->ws ? -1 : 1;
    if (da != db)
        return da < db ? -1 : 1;
    if (wa != wb)
        return wa < wb ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Free minute mn's tables. */
static void aeng_cache_free(struct aeng_minute *mn)
{
    for (size_t i = 0; i < mn->ncache; i++)
        aeng_gtab_free(&mn->cache[i].t);
    free(mn->cache);
    mn->cache = NULL;
    mn->ncache = 0;
}

/* Minute mn's cells of workspace ws by dims (with their histograms when
 * hist), made or remade when the minute changed since. */
static const struct aeng_gtab *aeng_mtab(struct aeng_minute *mn, int64_t ws,
                                         unsigned dims, int hist)
{
    struct aeng_mtab *c = NULL;
    for (size_t i = 0; c == NULL && i < mn->ncache; i++)
        if (mn->cache[i].ws == ws && mn->cache[i].dims == dims)
            c = &mn->cache[i];
    if (c != NULL && c->gen == mn->gen && c->hist >= hist)
        return &c->t;
    if (c == NULL) {
        struct aeng_mtab *n = realloc(mn->cache, (mn->ncache + 1) * sizeof(*n));
        if (n == NULL)
            return NULL;
        mn->cache = n;
        c = &mn->cache[mn->ncache++];
        memset(c, 0, sizeof(*c));
    }
    aeng_gtab_free(&c->t);
    c->ws = ws;
    c->dims = c->t.dims = dims;
    c->hist = hist;
    c->gen = mn->gen;
    for (size_t i = 0; i < mn->nslots; i++) {
        const struct aeng_cell *cell = &mn->cells[i];
        if (cell->dims[0] == NULL || cell->ws != ws)
            continue;
        struct aeng_group *g = aeng_gtab_get(&c->t, cell->dims);
        if (g == NULL)
            break;
        g->cur.requests += cell->requests;
        g->cur.errors += cell->errors;
        g->cur.input_tokens += cell->input_tokens;
        g->cur.output_tokens += cell->output_tokens;
        g->cur.total_tokens += cell->total_tokens;
        g->cur.cost_nusd += cell->cost_nusd;
        if (hist) {
            aeng_hist_merge(&g->lat, &cell->lat);
            aeng_hist_merge(&g->ttft, &cell->ttft);
        }
    }
    return &c->t;
}

/* Add group b into a: the counts, and when hist the histograms into a's
 * dense ones (from b's dense or sparse ones). */
static void aeng_group_fold(struct aeng_group *a, const struct aeng_group *b,
                            int hist)
{
    aeng_group_add(a, b);
    a->q_ok = 0;
    for (int i = 0; hist && i < 2; i++) {
        const struct aeng_hist *h = i ? &b->ttft : &b->lat;
        if (b->dense[i] == NULL && h->n == 0)
            continue;
        if (a->dense[i] == NULL &&
            (a->dense[i] = calloc(HIST_BUCKETS, sizeof(uint32_t))) == NULL)
            continue;
        if (b->dense[i] != NULL) {
            for (int k = 0; k < HIST_BUCKETS; k++)
                a->dense[i][k] += b->dense[i][k];
            a->ndense[i] += b->ndense[i];
        } else
            for (uint32_t k = 0; k < h->n; k++) {
                a->dense[i][h->e[k].b] += h->e[k].n;
                a->ndense[i] += h->e[k].n;
            }
    }
}

/* Add minute cur - k min of workspace ws, by t's dims, into t. */
static void aeng_add_minute(struct col_alerts *al, struct aeng_gtab *t,
                            int64_t ws, int hist, int64_t cur, int64_t k)
{
    int64_t m = cur - k * AENG_MIN_MS;
    struct aeng_minute *mn = &al->ring[(m / AENG_MIN_MS) % AENG_RING_MIN];
    if (mn->start_ms != m)
        return;
    const struct aeng_gtab *mt = aeng_mtab(mn, ws, t->dims, hist);
    for (size_t i = 0; mt != NULL && i < mt->nslots; i++) {
        if (!mt->g[i].used)
            continue;
        struct aeng_group *g = aeng_gtab_get(t, mt->g[i].dims);
        if (g != NULL)
            aeng_group_fold(g, &mt->g[i], hist);
    }
}

/* Does group g (of a table with at least r's dims) match r's filters? */
static int aeng_filters_ok(const struct alert_rule *r,
                           const struct aeng_group *g)
{
    for (int d = 0; d < AD_NDIMS; d++)
        if (r->filters[d][0] != '\0' && strcmp(r->filters[d], g->dims[d]) != 0)
            return 0;
    return 1;
}

/* A copy of t's counts (requests, cost) in c. */
static void aeng_gtab_counts(const struct aeng_gtab *t, struct aeng_gtab *c)
{
    memset(c, 0, sizeof(*c));
    c->dims = t->dims;
    for (size_t i = 0; i < t->nslots; i++) {
        if (!t->g[i].used)
            continue;
        struct aeng_group *g = aeng_gtab_get(c, t->g[i].dims);
        if (g != NULL) {
            g->cur.requests = t->g[i].cur.requests;
            g->cur.cost_nusd = t->g[i].cur.cost_nusd;
        }
    }
}

/* The group of t with g's dims (by t's dims), or NULL. */
static struct aeng_group *aeng_gtab_find(const struct aeng_gtab *t,
                                         const struct aeng_group *g)
{
    if (t->n == 0)
        return NULL;
    uint64_t h = aeng_dims_hash(g->dims, t->dims);
    for (size_t j = h & (t->nslots - 1); t->g[j].used;
         j = (j + 1) & (t->nslots - 1)) {
        struct aeng_group *x = &t->g[j];
        int same = x->hash == h;
        for (int d = 0; same && d < AD_NDIMS; d++)
            same =
                !(t->dims & (1u << d)) || strcmp(x->dims[d], g->dims[d]) == 0;
        if (same)
            return x;
    }
    return NULL;
}

/* The previous windows of a run: for each window length w (whole minutes)
 * that a rule of the run compares with the one before, the counts of the
 * minutes w + 1 .. 2w + 1, by the run's dims.  One walk: running sums P
 * over minutes 0..k; the previous window of w is P(2w + 1) - P(w).
 * (Windows over the ring have theirs in aeng_long_window.) */
struct aeng_prevs {
    int64_t *w;          /* the window lengths ... */
    struct aeng_gtab *t; /* ... and their previous windows */
    int n;
};

static void aeng_prevs_free(struct aeng_prevs *pv);

static void aeng_prevs_make(struct col_alerts *al, int64_t ws, unsigned dims,
                            const struct aeng_rule *rules, size_t n,
                            int64_t cur, struct aeng_prevs *pv)
{
    memset(pv, 0, sizeof(*pv));
    /* The distinct lengths: rules come sorted by window. */
    int64_t maxw = -1;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (rules[i].prev && aeng_rule_wmin(&rules[i].r) > maxw &&
            aeng_rule_wmin(&rules[i].r) <= AENG_SHORT_MIN) {
            maxw = aeng_rule_wmin(&rules[i].r);
            cnt++;
        }
    if (cnt == 0)
        return;
    struct aeng_gtab p = {.dims = dims};
    struct aeng_gtab *snap = calloc(cnt, sizeof(*snap));
    pv->w = malloc(cnt * sizeof(*pv->w));
    pv->t = calloc(cnt, sizeof(*pv->t));
    if (snap == NULL || pv->w == NULL || pv->t == NULL) {
        free(snap);
        aeng_prevs_free(pv); /* the change metrics have no value */
        return;
    }
    maxw = -1;
    for (size_t i = 0; i < n && pv->n < (int)cnt; i++)
        if (rules[i].prev && aeng_rule_wmin(&rules[i].r) > maxw)
            pv->w[pv->n++] = maxw = aeng_rule_wmin(&rules[i].r);
    for (int64_t k = 0; k <= 2 * maxw + 1; k++) {
        aeng_add_minute(al, &p, ws, 0, cur, k);
        for (int j = 0; j < pv->n; j++) {
            if (k == pv->w[j])
                aeng_gtab_counts(&p, &snap[j]);
            if (k != 2 * pv->w[j] + 1)
                continue;
            aeng_gtab_counts(&p, &pv->t[j]);
            pv->t[j].span_s = (double)(pv->w[j] + 1) * 60.0;
            for (size_t i = 0; i < pv->t[j].nslots; i++) {
                struct aeng_group *g = &pv->t[j].g[i];
                const struct aeng_group *s =
                    g->used ? aeng_gtab_find(&snap[j], g) : NULL;
                if (s != NULL) {
                    g->cur.requests -= s->cur.requests;
                    g->cur.cost_nusd -= s->cur.cost_nusd;
                }
            }
            aeng_gtab_free(&snap[j]);
        }
    }
    aeng_gtab_free(&p);
    free(snap);
}

static void aeng_prevs_free(struct aeng_prevs *pv)
{
    for (int j = 0; pv->t != NULL && j < pv->n; j++)
        aeng_gtab_free(&pv->t[j]);
    free(pv->w);
    free(pv->t);
    memset(pv, 0, sizeof(*pv));
}

/* Rule ar's previous window by its group_by into p, from its run's table
 * r (by the run's dims): r's groups matching its filters, added up. */
static void aeng_prev(const struct aeng_rule *ar, const struct aeng_gtab *r,
                      struct aeng_gtab *p)
{
    memset(p, 0, sizeof(*p));
    p->dims = ar->r.group_by;
    p->span_s = r != NULL ? r->span_s : 0;
    for (size_t i = 0; r != NULL && i < r->nslots; i++) {
        if (!r->g[i].used || !aeng_filters_ok(&ar->r, &r->g[i]))
            continue;
        struct aeng_group *g = aeng_gtab_get(p, r->g[i].dims);
        if (g != NULL)
            aeng_group_add(g, &r->g[i]);
    }
}

/* The table of the previous window of length w in pv, or NULL. */
static const struct aeng_gtab *aeng_prevs_get(const struct aeng_prevs *pv,
                                              int64_t w)
{
    for (int j = 0; j < pv->n; j++)
        if (pv->w[j] == w)
            return &pv->t[j];
    return NULL;
}

/* ---- windows longer than the ring ----
 *
 * A window over AENG_SHORT_MIN minutes is the ring's minutes from the hour
 * boundary H0 at most AENG_SHORT_MIN minutes back, plus whole hours of the
 * hour rollups from the hour holding the window's start up to H0: it
 * covers between W and W + 1h.  The hours' sums are kept per (workspace,
 * dims, window) and slide: each hour H0 moves, the hour that left the
 * ring is added and the one that left the window subtracted; a full
 * reload every AENG_LONG_RELOAD_H hours takes in late events.  The
 * change metrics compare with a second sum: as many whole hours as the
 * window spans, before it. */

#define AENG_LONG_RELOAD_H 6

struct aeng_long {
    int64_t ws;
    unsigned dims;
    int hist;
    int prev;         /* a previous window's sums (counts only) */
    int64_t lo, hi;   /* hours [lo, hi) summed */
    int64_t built_hi; /* hi at the last full reload */
    struct arena a;   /* the groups' strings */
    struct aeng_gtab t;
    int used; /* in this cycle */
};

/* The rollup cube holding dims (no API key), with histograms when hist. */
static int aeng_cube(unsigned dims, int hist)
{
    unsigned pm = (1u << AD_PROVIDER) | (1u << AD_MODEL);
    unsigned a = 1u << AD_AGENT, u = 1u << AD_USER;
    if (dims == 0)
        return ROLLUP_TOTAL;
    if ((dims & ~pm) == 0)
        return ROLLUP_MODEL;
    if (dims == a)
        return ROLLUP_AGENTS;
    if (dims == u && !hist)
        return ROLLUP_USERS;
    if ((dims & ~(pm | a)) == 0)
        return ROLLUP_AGENT;
    return ROLLUP_USER;
}

/* Add (sign 1) or subtract (-1) the hour rollups [lo, hi) into l. */
static int aeng_long_add(struct col_alerts *al, struct aeng_long *l, int64_t lo,
                         int64_t hi, int sign)
{
    sqlite3_stmt *st;
    if (lo >= hi)
        return 0;
    if (sqlite3_prepare_v2(
            al->db,
            "SELECT provider, model, agent, user, calls, errors, "
            "input_tokens, output_tokens, input_tokens + output_tokens + "
            "cache_read_tokens + cache_write_tokens + reasoning_tokens, "
            "cost_nusd, lat_hist, ttft_hist FROM rollups WHERE ws = ?1 AND "
            "cube = ?2 AND res = 3600 AND ts >= ?3 AND ts < ?4",
            -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, l->ws);
    sqlite3_bind_int(st, 2, aeng_cube(l->dims, l->hist));
    sqlite3_bind_int64(st, 3, lo);
    sqlite3_bind_int64(st, 4, hi);
    uint32_t tmp[HIST_BUCKETS];
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *dims[AD_NDIMS] = {"", "", "", "", ""};
        for (int d = 0; d < AD_API_KEY; d++)
            dims[d] = (const char *)sqlite3_column_text(st, d);
        struct aeng_group *g = aeng_gtab_get(&l->t, dims);
        if (g == NULL)
            break;
        /* The group's strings live as long as the table. */
        for (int d = 0; d < AD_NDIMS; d++)
            if ((l->dims & (1u << d)) && g->dims[d] == dims[d])
                g->dims[d] = arena_strndup(&l->a, dims[d], strlen(dims[d]));
        g->cur.requests += sign * sqlite3_column_int64(st, 4);
        g->cur.errors += sign * sqlite3_column_int64(st, 5);
        g->cur.input_tokens += sign * sqlite3_column_int64(st, 6);
        g->cur.output_tokens += sign * sqlite3_column_int64(st, 7);
        g->cur.total_tokens += sign * sqlite3_column_int64(st, 8);
        g->cur.cost_nusd += sign * sqlite3_column_int64(st, 9);
        g->q_ok = 0;
        for (int i = 0; l->hist && i < 2; i++) {
            const void *b = sqlite3_column_blob(st, 10 + i);
            int n = sqlite3_column_bytes(st, 10 + i);
            if (b == NULL || n <= 0)
                continue;
            if (g->dense[i] == NULL &&
                (g->dense[i] = calloc(HIST_BUCKETS, sizeof(uint32_t))) == NULL)
                continue;
            memset(tmp, 0, sizeof(tmp));
            int64_t cnt = hist_blob_add(b, (size_t)n, tmp);
            if (cnt <= 0)
                continue;
            for (int k = 0; k < HIST_BUCKETS; k++)
                g->dense[i][k] += (uint32_t)sign * tmp[k];
            g->ndense[i] += (uint64_t)(sign * cnt);
        }
    }
    sqlite3_finalize(st);
    return 0;
}

static void aeng_long_free(struct aeng_long *l)
{
    aeng_gtab_free(&l->t);
    arena_free(&l->a);
}

/* The sums of hours [lo, hi) for workspace ws by dims: slid, reloaded or
 * made. */
static struct aeng_long *aeng_long_get(struct col_alerts *al, int64_t ws,
                                       unsigned dims, int hist, int prev,
                                       int64_t lo, int64_t hi)
{
    struct aeng_long *l = NULL;
    for (size_t i = 0; l == NULL && i < al->nlongs; i++)
        if (al->longs[i]->ws == ws && al->longs[i]->dims == dims &&
            al->longs[i]->prev == prev &&
            al->longs[i]->hi - al->longs[i]->lo == hi - lo)
            l = al->longs[i];
    if (l == NULL) {
        /* Entries are allocated apart: a caller may hold two at once. */
        struct aeng_long **n =
            realloc(al->longs, (al->nlongs + 1) * sizeof(*n));
        if (n == NULL || (l = calloc(1, sizeof(*l))) == NULL) {
            if (n != NULL)
                al->longs = n;
            return NULL;
        }
        al->longs = n;
        al->longs[al->nlongs++] = l;
        l->prev = prev;
        l->ws = ws;
        l->dims = dims;
        arena_init(&l->a, 64 * 1024);
    }
    l->used = 1;
    if (l->hi == hi && l->lo == lo && l->hist >= hist)
        return l;
    int slide = l->hi > 0 && l->hist >= hist && hi > l->hi &&
                hi - l->built_hi < AENG_LONG_RELOAD_H * AENG_HOUR_MS &&
                hi - l->hi < hi - lo;
    if (slide) {
        aeng_long_add(al, l, l->hi, hi, 1);
        aeng_long_add(al, l, l->lo, lo, -1);
    } else {
        aeng_gtab_free(&l->t);
        arena_free(&l->a);
        arena_init(&l->a, 64 * 1024);
        l->t.dims = dims;
        l->hist = hist;
        aeng_long_add(al, l, lo, hi, 1);
        l->built_hi = hi;
    }
    l->lo = lo;
    l->hi = hi;
    return l;
}

/* Drop the sums no rule used this cycle. */
static void aeng_longs_sweep(struct col_alerts *al)
{
    size_t n = 0;
    for (size_t i = 0; i < al->nlongs; i++) {
        if (!al->longs[i]->used) {
            aeng_long_free(al->longs[i]);
            free(al->longs[i]);
            continue;
        }
        al->longs[i]->used = 0;
        al->longs[n++] = al->longs[i];
    }
    al->nlongs = n;
}

/* Evaluate the long rules rules[0..n) of a run (ws, dims): the ring from
 * H0, then per window length the hour sums, added into a copy. */
static void aeng_eval_long(struct col_alerts *al, struct aeng_rule *rules,
                           size_t n, int hist, struct aeng_state **open,
                           size_t nopen, int64_t cur, int64_t now);

/* The latency P50/P95/P99 and TTFT P95 of g into out (NAN when none). */
static void aeng_group_quantiles(struct aeng_group *g, double out[4])
{
    static const double qs[] = {0.5, 0.95, 0.99, 0.95};
    if (g->q_ok) {
        memcpy(out, g->q, sizeof(g->q));
        return;
    }
    /* Window tables hold dense histograms (aeng_group_fold): latency for
     * the first three, TTFT for the last. */
    for (int k = 0; k < 4; k++) {
        int i = k == 3;
        out[k] = g->dense[i] != NULL && g->ndense[i] > 0
                     ? hist_quantile(g->dense[i], g->ndense[i], qs[k])
                     : NAN;
    }
    memcpy(g->q, out, sizeof(g->q));
    g->q_ok = 1;
}

/* The sample of group g: its counts, percentiles, the previous window's
 * counts from p (by g's dims; none when p is NULL), the budgets. */
static void aeng_sample(struct aeng_group *g, const struct aeng_gtab *pt,
                        const double *budget, double window_s, int hist,
                        struct alert_sample *s)
{
    *s = g->cur;
    double q[4] = {NAN, NAN, NAN, NAN};
    if (hist)
        aeng_group_quantiles(g, q);
    s->lat_p50 = q[0];
    s->lat_p95 = q[1];
    s->lat_p99 = q[2];
    s->ttft_p95 = q[3];
    s->window_s = window_s;
    s->have_prev = pt != NULL;
    const struct aeng_group *x = pt != NULL ? aeng_gtab_find(pt, g) : NULL;
    if (x != NULL) {
        /* The previous window is whole minutes (or hours); the current one
         * ends now: compare rates, the previous scaled to this length. */
        double k = pt->span_s > 0 ? window_s / pt->span_s : 1.0;
        s->prev_requests = llround((double)x->cur.requests * k);
        s->prev_cost_nusd = llround((double)x->cur.cost_nusd * k);
    }
    memcpy(s->budget_pct, budget, sizeof(s->budget_pct));
}

/* The key of rule ar's group g (by its group_by): "model=m\x1fuser=u". */
static void aeng_group_key(const struct aeng_rule *ar,
                           const struct aeng_group *g, char *key, size_t n)
{
    size_t len = 0;
    key[0] = '\0';
    for (int d = 0; d < AD_NDIMS; d++) {
        if (!(ar->r.group_by & (1u << d)))
            continue;
        const char *name = alert_dim_name(d), *v = g->dims[d];
        size_t nl = strlen(name), vl = strlen(v);
        if (len + nl + vl + 3 > n)
            break; /* names are at most 255 bytes: never with AD_NDIMS*300 */
        if (len > 0)
            key[len++] = '\x1f';
        memcpy(key + len, name, nl);
        key[len + nl] = '=';
        memcpy(key + len + nl + 1, v, vl + 1);
        len += nl + 1 + vl;
    }
}

/* The dims of a group key (aeng_group_key's), split in place: the others
 * "". */
static void aeng_key_dims(char *key, const char *dims[AD_NDIMS])
{
    for (int d = 0; d < AD_NDIMS; d++)
        dims[d] = "";
    for (char *p = key, *next; p != NULL && *p != '\0'; p = next) {
        next = strchr(p, '\x1f');
        if (next != NULL)
            *next++ = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        for (int d = 0; d < AD_NDIMS; d++)
            if (strcmp(p, alert_dim_name(d)) == 0)
                dims[d] = eq + 1;
    }
}

/* The group as JSON, {"model": "m"} (malloc'ed; NULL when out of
 * memory). */
static char *aeng_group_json(const struct aeng_rule *ar,
                             const struct aeng_group *g)
{
    json_t *o = json_object();
    for (int d = 0; d < AD_NDIMS; d++)
        if (ar->r.group_by & (1u << d))
            json_object_set_new(o, alert_dim_name(d), json_string(g->dims[d]));
    char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return t;
}

/* Evaluate rule ar on its group g (key; its JSON when known, else made
 * when needed) at now; pt: the previous window's table, or NULL. */
static void aeng_eval_group(struct col_alerts *al, const struct aeng_rule *ar,
                            struct aeng_group *g, const struct aeng_gtab *pt,
                            const double *budget, double window_s,
                            const char *key, const char *json, int any_open,
                            int64_t now)
{
    double vals[ALERT_MAX_NODES];
    int verdicts[ALERT_MAX_NODES];
    struct alert_sample s;
    aeng_sample(g, pt, budget, window_s, ar->hist, &s);
    int holds = alert_eval(&ar->r, &s, vals, verdicts);
    int any = 0;
    for (int k = 0; k < ar->r.nnodes; k++)
        any |= ar->r.nodes[k].kind == AK_LEAF && !isnan(vals[k]);
    int input = any ? (holds ? AI_TRUE : AI_FALSE) : AI_NO_DATA;
    /* A state is kept for groups that ever held (for the cooldown). */
    int make =
        input == AI_TRUE || (input == AI_NO_DATA && ar->r.no_data == AND_ALERT);
    /* Not holding, and the rule has no open alert: nothing can change
     * (the common case, which needs no key). */
    if (!make && !any_open)
        return;
    char kbuf[AD_NDIMS * 300];
    if (key == NULL) {
        aeng_group_key(ar, g, kbuf, sizeof(kbuf));
        key = kbuf;
    }
    struct aeng_state *st = aeng_state(al, ar->id, key, make);
    if (st == NULL)
        return;
    if (json == NULL) {
        char *made = aeng_group_json(ar, g);
        if (made != NULL && strcmp(st->group_json, made) != 0) {
            free(st->group_json);
            st->group_json = made;
        } else
            free(made);
    }
    st->seen_ms = now;
    int notify, was = st->st.status;
    struct alert_state before = st->st;
    int act = alert_step(&ar->r, &st->st, input, now, &notify);
    if (act != AA_NONE) {
        char *v = aeng_values(ar, vals, verdicts);
        /* From pending, the row must still be pending (someone may have
         * resolved it meanwhile): AA_FIRE_PENDING updates, never inserts.
         * Not queued (out of memory): the state stays as it was, and the
         * next pass decides again. */
        if (aeng_emit(al, ar, st,
                      act == AA_FIRE && was == AS_PENDING ? AENG_FIRE_PENDING
                                                          : act,
                      notify, v, now) != 0)
            st->st = before;
        free(v);
    }
}

/* Rule ar's groups from t (its run's window table): t itself when ar
 * filters by nothing, else t's groups matching its filters added up by its
 * group_by into mine.  An ungrouped rule always has its one group.  A
 * rule whose condition holds on no traffic (ar->zero) also gets, with
 * zero counts, the groups of its previous window prev (by its group_by)
 * that are absent now: "requests < 1" by model fires for a model that
 * stopped. */
static struct aeng_gtab *aeng_rule_groups(const struct aeng_rule *ar,
                                          struct aeng_gtab *t, int hist,
                                          const struct aeng_gtab *prev,
                                          struct aeng_gtab *mine)
{
    memset(mine, 0, sizeof(*mine));
    mine->dims = ar->r.group_by;
    /* t itself only when the rule filters by nothing: a filter on a
     * grouped dimension must still drop the other groups. */
    int filtered = aeng_rule_dims(&ar->r) != ar->r.group_by;
    for (int d = 0; d < AD_NDIMS; d++)
        filtered |= ar->r.filters[d][0] != '\0';
    int absent = ar->zero && ar->r.group_by != 0 && prev != NULL;
    filtered |= absent && prev->n > 0;
    struct aeng_gtab *use = filtered ? mine : t;
    for (size_t i = 0; use == mine && i < t->nslots; i++) {
        struct aeng_group *g = &t->g[i];
        if (!g->used || !aeng_filters_ok(&ar->r, g))
            continue;
        struct aeng_group *m = aeng_gtab_get(mine, g->dims);
        if (m != NULL)
            aeng_group_fold(m, g, hist);
    }
    for (size_t i = 0; absent && i < prev->nslots; i++)
        if (prev->g[i].used && aeng_gtab_find(mine, &prev->g[i]) == NULL)
            aeng_gtab_get(mine, prev->g[i].dims);
    if (ar->r.group_by == 0 && use->n == 0) {
        static const char *const none[AD_NDIMS] = {"", "", "", "", ""};
        aeng_gtab_get(use, none);
    }
    return use;
}

/* Evaluate rule ar on t, its run's table of its window; open[0..nopen)
 * are its open states. */
static void aeng_eval_rule(struct col_alerts *al, const struct aeng_rule *ar,
                           struct aeng_gtab *t, int hist,
                           const struct aeng_prevs *pv,
                           struct aeng_state **open, size_t nopen,
                           double window_s, int64_t now)
{
    double budget[3];
    aeng_budgets(al, ar->workspace, budget);
    int need_prev = ar->prev;
    struct aeng_gtab prev = {0}, mine;
    if (need_prev)
        aeng_prev(ar, aeng_prevs_get(pv, aeng_rule_wmin(&ar->r)), &prev);
    struct aeng_gtab *use =
        aeng_rule_groups(ar, t, hist, need_prev ? &prev : NULL, &mine);
    for (size_t i = 0; i < use->nslots; i++) {
        struct aeng_group *g = &use->g[i];
        if (g->used)
            aeng_eval_group(al, ar, g, need_prev ? &prev : NULL, budget,
                            window_s, NULL, NULL, nopen > 0, now);
    }
    /* Open groups without data this time (their state was not seen now):
     * evaluated on zero counts. */
    for (size_t k = 0; k < nopen; k++) {
        if (open[k]->seen_ms == now)
            continue;
        struct aeng_group z;
        memset(&z, 0, sizeof(z));
        /* Its dims from its key, for its previous window. */
        char *k2 = strdup(open[k]->group_key),
             *j2 = strdup(open[k]->group_json), *dims = strdup(k2 ? k2 : "");
        if (k2 != NULL && j2 != NULL && dims != NULL) {
            aeng_key_dims(dims, z.dims);
            aeng_eval_group(al, ar, &z, need_prev ? &prev : NULL, budget,
                            window_s, k2, j2, 1, now);
        }
        free(k2);
        free(j2);
        free(dims);
    }
    aeng_gtab_free(&mine);
    aeng_gtab_free(&prev);
}

/* The ring's minutes from the hour boundary H0 (at most AENG_SHORT_MIN
 * minutes back from cur) into ring, by dims, for workspace ws; returns H0. */
static int64_t aeng_ring_h0(struct col_alerts *al, int64_t ws, unsigned dims,
                            int hist, int64_t cur, struct aeng_gtab *ring)
{
    int64_t h0 = cur - AENG_SHORT_MIN * AENG_MIN_MS;
    h0 = (h0 + AENG_HOUR_MS - 1) / AENG_HOUR_MS * AENG_HOUR_MS;
    memset(ring, 0, sizeof(*ring));
    ring->dims = dims;
    for (int64_t k = 0; k <= (cur - h0) / AENG_MIN_MS; k++)
        aeng_add_minute(al, ring, ws, hist, cur, k);
    return h0;
}

/* The table tw (by dims) of a window of w minutes, over the ring, for
 * workspace ws: ring (aeng_ring_h0's) plus the hour sums from the hour
 * holding the window's start up to h0.  With prev, the window before
 * into *pt (a shallow copy of cached sums, with its span; no groups when
 * unknown): as many whole hours as the window spans, before it.  Returns
 * the window's start. */
static int64_t aeng_long_window(struct col_alerts *al, int64_t ws,
                                unsigned dims, int hist, int prev, int64_t w,
                                const struct aeng_gtab *ring, int64_t h0,
                                int64_t cur, struct aeng_gtab *tw,
                                struct aeng_gtab *pt)
{
    int64_t lo = cur - w * AENG_MIN_MS;
    lo -= lo % AENG_HOUR_MS;
    struct aeng_long *l =
        lo < h0 ? aeng_long_get(al, ws, dims, hist, 0, lo, h0) : NULL;
    int64_t span = h0 - lo + AENG_HOUR_MS;
    struct aeng_long *pl =
        prev ? aeng_long_get(al, ws, dims, 0, 1, lo - span, lo) : NULL;
    memset(pt, 0, sizeof(*pt));
    pt->dims = dims;
    if (pl != NULL)
        *pt = pl->t; /* shallow: the cache keeps it */
    pt->span_s = (double)span / 1000.0;
    memset(tw, 0, sizeof(*tw));
    tw->dims = dims;
    const struct aeng_gtab *parts[] = {ring, l ? &l->t : NULL};
    for (int p = 0; p < 2; p++)
        for (size_t j = 0; parts[p] != NULL && j < parts[p]->nslots; j++) {
            const struct aeng_group *g = &parts[p]->g[j];
            if (!g->used || (p == 1 && g->cur.requests == 0))
                continue;
            struct aeng_group *t = aeng_gtab_get(tw, g->dims);
            if (t != NULL)
                aeng_group_fold(t, g, hist);
        }
    return lo;
}

static void aeng_eval_long(struct col_alerts *al, struct aeng_rule *rules,
                           size_t n, int hist, struct aeng_state **open,
                           size_t nopen, int64_t cur, int64_t now)
{
    int64_t ws = rules[0].ws;
    unsigned dims = aeng_rule_dims(&rules[0].r);
    struct aeng_gtab ring;
    int64_t h0 = aeng_ring_h0(al, ws, dims, hist, cur, &ring);
    for (size_t i = 0; i < n;) {
        int64_t w = aeng_rule_wmin(&rules[i].r);
        int prev = 0;
        for (size_t j = i; j < n && aeng_rule_wmin(&rules[j].r) == w; j++)
            prev |= rules[j].prev;
        struct aeng_gtab tw, pt;
        int64_t lo = aeng_long_window(al, ws, dims, hist, prev, w, &ring, h0,
                                      cur, &tw, &pt);
        struct aeng_prevs pv = {.w = &w, .t = &pt, .n = prev}; /* shallow */
        double window_s = (double)(now - lo) / 1000.0;
        for (; i < n && aeng_rule_wmin(&rules[i].r) == w; i++) {
            size_t cnt, at = aeng_open_of(open, nopen, rules[i].id, &cnt);
            aeng_eval_rule(al, &rules[i], &tw, hist, &pv, open + at, cnt,
                           window_s, now);
        }
        aeng_gtab_free(&tw);
    }
    aeng_gtab_free(&ring);
}

static int aeng_state_cmp(const void *a, const void *b)
{
    const struct aeng_state *x = *(struct aeng_state *const *)a;
    const struct aeng_state *y = *(struct aeng_state *const *)b;
    return (x->rule_id > y->rule_id) - (x->rule_id < y->rule_id);
}

/* The open states of rule id among open[0..n) (sorted by rule): *count of
 * them from the returned index. */
static size_t aeng_open_of(struct aeng_state **open, size_t n, int64_t id,
                           size_t *count)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (open[mid]->rule_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < n && open[end]->rule_id == id)
        end++;
    *count = end - lo;
    return lo;
}

/* The condition tree of r at node i with the values and verdicts. */
static json_t *aeng_tree_json(const struct alert_rule *r, int i,
                              const double *vals, const int *verdicts)
{
    const struct alert_node *nd = &r->nodes[i];
    json_t *o;
    if (nd->kind == AK_LEAF) {
        o = alert_condition_json(r, i);
        json_object_set_new(o, "value",
                            isnan(vals[i]) ? json_null() : json_real(vals[i]));
    } else {
        json_t *kids = json_array();
        for (int k = 0; k < nd->n; k++)
            json_array_append_new(
                kids, aeng_tree_json(r, nd->first + k, vals, verdicts));
        o = json_pack("{s:s, s:o}", "op", nd->kind == AK_AND ? "and" : "or",
                      "conditions", kids);
    }
    json_object_set_new(o, "holds", json_boolean(verdicts[i]));
    return o;
}

#define AENG_TEST_GROUPS 100 /* groups a test answer lists at most */

/* Evaluate rule ar alone at now, changing nothing: every group's tree
 * with values and verdicts, those that hold first. */
static json_t *aeng_test(struct col_alerts *al, const struct aeng_rule *ar,
                         int64_t now)
{
    int64_t cur = now - now % AENG_MIN_MS, w = aeng_rule_wmin(&ar->r);
    int hist = ar->hist, need_prev = ar->prev;
    unsigned dims = aeng_rule_dims(&ar->r);
    struct aeng_gtab t = {.dims = dims}, prev = {0}, mine;
    int64_t from = cur - w * AENG_MIN_MS;
    if (w > AENG_SHORT_MIN) {
        /* The same sums as the engine's pass (aeng_eval_long). */
        struct aeng_gtab ring, pt;
        int64_t h0 = aeng_ring_h0(al, ar->ws, dims, hist, cur, &ring);
        from = aeng_long_window(al, ar->ws, dims, hist, need_prev, w, &ring, h0,
                                cur, &t, &pt);
        if (need_prev)
            aeng_prev(ar, &pt, &prev);
        aeng_gtab_free(&ring);
    } else {
        for (int64_t k = 0; k <= w; k++)
            aeng_add_minute(al, &t, ar->ws, hist, cur, k);
        if (need_prev) {
            struct aeng_prevs pv;
            aeng_prevs_make(al, ar->ws, dims, ar, 1, cur, &pv);
            aeng_prev(ar, aeng_prevs_get(&pv, w), &prev);
            aeng_prevs_free(&pv);
        }
    }
    struct aeng_gtab *use =
        aeng_rule_groups(ar, &t, hist, need_prev ? &prev : NULL, &mine);
    double budget[3];
    aeng_budgets(al, ar->workspace, budget);
    json_t *holding = json_array(), *other = json_array();
    size_t nhold = 0;
    double window_s = (double)(now - from) / 1000.0;
    for (size_t i = 0; i < use->nslots; i++) {
        struct aeng_group *g = &use->g[i];
        if (!g->used)
            continue;
        struct alert_sample s;
        double vals[ALERT_MAX_NODES];
        int verdicts[ALERT_MAX_NODES];
        aeng_sample(g, need_prev ? &prev : NULL, budget, window_s, hist, &s);
        int holds = alert_eval(&ar->r, &s, vals, verdicts);
        nhold += holds;
        if (json_array_size(holding) + json_array_size(other) >=
            AENG_TEST_GROUPS)
            continue;
        char *gj = aeng_group_json(ar, g);
        json_t *group = gj ? json_loads(gj, 0, NULL) : NULL;
        free(gj);
        json_array_append_new(
            holds ? holding : other,
            json_pack("{s:o, s:b, s:I, s:o}", "group",
                      group ? group : json_object(), "holds", holds, "requests",
                      (json_int_t)g->cur.requests, "condition",
                      aeng_tree_json(&ar->r, 0, vals, verdicts)));
    }
    json_array_extend(holding, other);
    json_decref(other);
    char from_s[40], to[40];
    ev_format_rfc3339(from, from_s, sizeof(from_s));
    ev_format_rfc3339(now, to, sizeof(to));
    json_t *o = json_pack("{s:b, s:I, s:I, s:s, s:s, s:s, s:o}", "holds",
                          nhold > 0, "groups", (json_int_t)use->n, "holding",
                          (json_int_t)nhold, "from", from_s, "to", to, "would",
                          nhold == 0     ? "nothing"
                          : ar->r.for_ms ? "go pending"
                                         : "fire",
                          "results", holding);
    aeng_gtab_free(&mine);
    aeng_gtab_free(&prev);
    aeng_gtab_free(&t);
    return o;
}

/* Answer the waiting rule tests, and wake the main thread for them. */
static void aeng_serve_test(struct col_alerts *al, int64_t now)
{
    for (;;) {
        pthread_mutex_lock(&al->mu);
        struct aeng_test *t = al->tests;
        if (t != NULL)
            al->tests = t->next;
        pthread_mutex_unlock(&al->mu);
        if (t == NULL)
            return;
        t->out = aeng_test(al, &t->ar, now);
        pthread_mutex_lock(&al->mu);
        t->next = al->done;
        al->done = t;
        pthread_mutex_unlock(&al->mu);
        uint64_t one = 1;
        if (write(al->wake_fd, &one, sizeof(one)) < 0)
            log_warn(NULL, "msg=\"alert engine cannot wake the loop\"");
    }
}

/* One evaluation of every rule at now: runs of rules sharing workspace and
 * dims walk the minutes once, newest first, adding each to one table; a
 * rule is evaluated when the walk has covered its window. */
static void aeng_evaluate(struct col_alerts *al, int64_t now)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t passes = 0;
    int64_t cur = now - now % AENG_MIN_MS;
    /* The open states by rule, to find each rule's quiet groups. */
    struct aeng_state **open = malloc((al->nstates + 1) * sizeof(*open));
    size_t nopen = 0;
    for (size_t i = 0; open != NULL && i < al->nstate_slots; i++)
        if (al->states[i].s != NULL && al->states[i].s->st.status != AS_OK)
            open[nopen++] = al->states[i].s;
    if (nopen > 1)
        qsort(open, nopen, sizeof(*open), aeng_state_cmp);
    for (size_t i = 0; open != NULL && i < al->nrules;) {
        int64_t ws = al->rules[i].ws;
        unsigned dims = aeng_rule_dims(&al->rules[i].r);
        int hist = 0;
        size_t end = i;
        while (end < al->nrules && al->rules[end].ws == ws &&
               aeng_rule_dims(&al->rules[end].r) == dims)
            hist |= al->rules[end++].hist;
        struct aeng_gtab t = {.dims = dims};
        struct aeng_prevs pv;
        aeng_prevs_make(al, ws, dims, al->rules + i, end - i, cur, &pv);
        for (int64_t k = 0;
             i < end && aeng_rule_wmin(&al->rules[i].r) <= AENG_SHORT_MIN;
             k++) {
            aeng_add_minute(al, &t, ws, hist, cur, k);
            double window_s = (double)(now - (cur - k * AENG_MIN_MS)) / 1000.0;
            for (; i < end && aeng_rule_wmin(&al->rules[i].r) == k; i++) {
                size_t n, at = aeng_open_of(open, nopen, al->rules[i].id, &n);
                aeng_eval_rule(al, &al->rules[i], &t, hist, &pv, open + at, n,
                               window_s, now);
            }
        }
        aeng_prevs_free(&pv);
        aeng_gtab_free(&t);
        /* The run's rules with windows longer than the ring. */
        if (i < end) {
            aeng_eval_long(al, al->rules + i, end - i, hist, open, nopen, cur,
                           now);
            i = end;
        }
        passes++;
        aeng_serve_test(al, now); /* a waiting test need not wait for all */
    }
    free(open);
    aeng_longs_sweep(al);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                             (t1.tv_nsec - t0.tv_nsec) / 1000);
    if (al->live != NULL) {
        struct shm_health *h = &live_header(al->live)->health;
        atomic_store_explicit(&h->alert_rules, al->nrules,
                              memory_order_relaxed);
        atomic_store_explicit(&h->alert_passes, passes, memory_order_relaxed);
        atomic_store_explicit(&h->alert_eval_us, us, memory_order_relaxed);
        if (us > atomic_load_explicit(&h->alert_max_us, memory_order_relaxed))
            atomic_store_explicit(&h->alert_max_us, us, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->alert_cycles, 1, memory_order_relaxed);
    }
}

/* ---- the thread ---- */

static int64_t aeng_now(void)
{
    return proto_now_ms();
}

/* One turn of the engine at now: fold the feed, load what it needs, serve
 * a test, evaluate when due (always when force). */
static void aeng_turn(struct col_alerts *al, int64_t now, int force)
{
    pthread_mutex_lock(&al->mu);
    uint64_t gen = al->rules_gen;
    pthread_mutex_unlock(&al->mu);
    aeng_take_inbox(al, now);
    if (!al->loaded) {
        al->loaded = aeng_states_load(al) == 0 && aeng_prefill(al, now) == 0;
        if (!al->loaded)
            log_warn(NULL, "msg=\"alert engine cannot read\" error=\"%s\"",
                     sqlite3_errmsg(al->db));
        pthread_mutex_lock(&al->mu);
        al->ready = al->loaded;
        pthread_mutex_unlock(&al->mu);
    }
    aeng_take_ctl(al);
    if (al->loaded)
        aeng_serve_test(al, now);
    if (gen != al->rules_seen && aeng_rules_load(al) == 0)
        al->rules_seen = gen;
    pthread_mutex_lock(&al->mu);
    size_t waiting = al->nout;
    pthread_mutex_unlock(&al->mu);
    if (!al->loaded || (!force && now < al->next))
        return;
    al->next = now - now % al->interval_ms + al->interval_ms;
    if (waiting > AENG_OUT_MAX)
        log_warn(NULL,
                 "msg=\"alert evaluation paused: transitions waiting\" "
                 "count=%zu",
                 waiting);
    else
        aeng_evaluate(al, now);
}

static void *aeng_main(void *arg)
{
    struct col_alerts *al = arg;
    pthread_mutex_lock(&al->mu);
    while (!al->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&al->cv, &al->mu, &ts);
        if (al->stop)
            break;
        pthread_mutex_unlock(&al->mu);
        aeng_turn(al, al->clock(), 0);
        pthread_mutex_lock(&al->mu);
    }
    pthread_mutex_unlock(&al->mu);
    return NULL;
}

int col_alert_start(struct col *c, const char *path, int64_t seq_hi)
{
    return col_alert_open(c, path, seq_hi, 1);
}

int col_alert_open(struct col *c, const char *path, int64_t seq_hi, int thread)
{
    struct col_alerts *al = calloc(1, sizeof(*al));
    if (al == NULL)
        return -1;
    pthread_mutex_init(&al->mu, NULL);
    pthread_cond_init(&al->cv, NULL);
    al->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    al->interval_ms = (int64_t)c->conf.alert_eval_interval * 1000;
    al->live = c->live;
    al->clock = aeng_now;
    al->rules_gen = 1;
    al->seq_hi = seq_hi;
    snprintf(al->path, sizeof(al->path), "%s", path);
    if (al->wake_fd < 0 || sqlite3_open_v2(path, &al->db, SQLITE_OPEN_READONLY,
                                           NULL) != SQLITE_OK) {
        log_error(NULL, "msg=\"alert engine cannot open the database\"");
        goto fail;
    }
    sqlite3_busy_timeout(al->db, 1000);
    /* Temporary b-trees in memory: no files for a read-only reader. */
    sqlite3_exec(al->db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
    if (thread && pthread_create(&al->tid, NULL, aeng_main, al) != 0)
        goto fail;
    al->started = thread;
    c->alerts = al;
    return 0;
fail:
    sqlite3_close(al->db);
    if (al->wake_fd >= 0)
        close(al->wake_fd);
    free(al);
    return -1;
}

void col_alert_turn(struct col *c, int64_t now)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL || al->started)
        return;
    col_alert_handover(al);
    aeng_turn(al, now, 1);
}

int col_alert_test(struct col *c, int64_t ws, const char *workspace,
                   struct alert_rule *r, uint64_t id)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return -1;
    struct aeng_test *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    t->id = id;
    t->ar.ws = ws;
    snprintf(t->ar.workspace, sizeof(t->ar.workspace), "%s", workspace);
    t->ar.r = *r; /* taken when queued: freed with the answer */
    aeng_rule_init(&t->ar);
    pthread_mutex_lock(&al->mu);
    int rc = !al->ready ? -1 : al->ntests >= AENG_TESTS_MAX ? -2 : 0;
    if (rc == 0) {
        struct aeng_test **at = &al->tests;
        while (*at != NULL)
            at = &(*at)->next;
        *at = t;
        al->ntests++;
        pthread_cond_signal(&al->cv);
    }
    pthread_mutex_unlock(&al->mu);
    if (rc != 0)
        free(t);
    return rc;
}

int col_alert_wake_fd(struct col *c)
{
    return c->alerts != NULL ? c->alerts->wake_fd : -1;
}

static void aeng_test_free(struct aeng_test *t)
{
    alert_rule_free(&t->ar.r);
    json_decref(t->out);
    free(t);
}

void col_alert_tests_done(struct col *c,
                          void (*fn)(void *arg, uint64_t id, json_t *reply),
                          void *arg)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return;
    uint64_t n;
    while (read(al->wake_fd, &n, sizeof(n)) == sizeof(n))
        ;
    pthread_mutex_lock(&al->mu);
    struct aeng_test *t = al->done;
    al->done = NULL;
    for (struct aeng_test *x = t; x != NULL; x = x->next)
        al->ntests--;
    pthread_mutex_unlock(&al->mu);
    while (t != NULL) {
        struct aeng_test *next = t->next;
        fn(arg, t->id, t->out);
        aeng_test_free(t);
        t = next;
    }
}

void col_alert_rules_changed(struct col *c)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return;
    pthread_mutex_lock(&al->mu);
    al->rules_gen++;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
}

void col_alert_control(struct col *c, int64_t rule_id, const char *group_key,
                       int status)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return;
    pthread_mutex_lock(&al->mu);
    if (al->nctl == al->capctl) {
        size_t cap = al->capctl ? al->capctl * 2 : 16;
        struct aeng_ctl *n = realloc(al->ctl, cap * sizeof(*n));
        if (n == NULL) {
            pthread_mutex_unlock(&al->mu);
            return;
        }
        al->ctl = n;
        al->capctl = cap;
    }
    al->ctl[al->nctl++] = (struct aeng_ctl){rule_id, strdup(group_key), status};
    pthread_mutex_unlock(&al->mu);
}

/* ---- main thread: writing transitions ---- */

static const char *aeng_action_event(int action)
{
    switch (action) {
    case AA_PENDING:
        return "pending";
    case AA_FIRE:
    case AENG_FIRE_PENDING:
        return "firing";
    case AA_RESOLVE:
        return "resolved";
    case AA_RENOTIFY:
        return "renotified";
    default:
        return NULL;
    }
}

/* The statements of the transitions, by action. */
static const char *const aeng_sql[] = {
    [AA_NONE] = "INSERT INTO alert_events(alert_id, ts_ms, kind, actor, "
                "values_json) VALUES(?1, ?2, ?3, 'engine', ?4)",
    [AA_PENDING] =
        "INSERT INTO alerts(ws, rule_id, rule_name, severity, group_key, "
        "group_json, status, started_ms, values_json, last_notified_ms, "
        "updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, 0, "
        "?7) ON CONFLICT DO NOTHING RETURNING id",
    [AA_CANCEL] = "DELETE FROM alerts WHERE rule_id = ?2 AND group_key = "
                  "?5 AND status = 'pending' RETURNING id",
    [AA_FIRE] =
        "INSERT INTO alerts(ws, rule_id, rule_name, severity, group_key, "
        "group_json, status, started_ms, fired_ms, values_json, "
        "last_notified_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
        "'firing', ?7, ?7, ?8, ?9, ?7) ON CONFLICT(rule_id, group_key) "
        "WHERE status IN ('pending', 'firing', 'acknowledged') DO UPDATE "
        "SET status = 'firing', fired_ms = ?7, values_json = ?8, "
        "last_notified_ms = max(last_notified_ms, ?9), updated_ms = ?7 "
        "WHERE status = 'pending' RETURNING id",
    [AA_RENOTIFY] = "UPDATE alerts SET last_notified_ms = ?7, values_json "
                    "= ?8, updated_ms = ?7 WHERE rule_id = ?2 AND "
                    "group_key = ?5 AND status = 'firing' RETURNING id",
    [AA_RESOLVE] =
        "UPDATE alerts SET status = 'resolved', resolved_ms = ?7, "
        "resolved_by = 'engine', values_json = ?8, updated_ms = ?7 WHERE "
        "rule_id = ?2 AND group_key = ?5 AND status IN ('firing', "
        "'acknowledged') RETURNING id",
    [AENG_FIRE_PENDING] =
        "UPDATE alerts SET status = 'firing', fired_ms = ?7, values_json = "
        "?8, last_notified_ms = max(last_notified_ms, ?9), updated_ms = ?7 "
        "WHERE rule_id = ?2 AND group_key = ?5 AND status = 'pending' "
        "RETURNING id",
};

/* Write one transition with the statements st (by action, prepared);
 * returns the alert id it touched (0: none). */
static int64_t aeng_write(sqlite3_stmt *const *sts, const struct aeng_tx *t)
{
    if (t->action <= AA_NONE || t->action > AENG_FIRE_PENDING ||
        sts[t->action] == NULL)
        return 0;
    sqlite3_stmt *st = sts[t->action];
    sqlite3_bind_int64(st, 1, t->ws);
    sqlite3_bind_int64(st, 2, t->rule_id);
    sqlite3_bind_text(st, 3, t->rule_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, alert_severity_name(t->severity), -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->group_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, t->group_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, t->now);
    sqlite3_bind_text(st, 8, t->values, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, t->notify ? t->now : 0);
    int64_t id =
        sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    /* A pending alert that never fired is gone with its timeline. */
    sqlite3_stmt *del;
    if (id > 0 && t->action == AA_CANCEL &&
        sqlite3_prepare_v2(sqlite3_db_handle(st),
                           "DELETE FROM alert_events WHERE alert_id = ?1", -1,
                           &del, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, id);
        sqlite3_step(del);
        sqlite3_finalize(del);
    }
    /* The timeline (sts[AA_NONE]). */
    const char *kind = aeng_action_event(t->action);
    if (id > 0 && kind != NULL && sts[AA_NONE] != NULL) {
        st = sts[AA_NONE];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, t->now);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, t->values, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    return id;
}

/* Are the quiet hours of t's workspace (the query qh) on at t->now? */
static int aeng_quiet(sqlite3_stmt *qh, const struct aeng_tx *t)
{
    int on = 0;
    sqlite3_bind_int64(qh, 1, t->ws);
    if (sqlite3_step(qh) == SQLITE_ROW) {
        int start = sqlite3_column_int(qh, 0), end = sqlite3_column_int(qh, 1);
        int m =
            col_quiet_minute((const char *)sqlite3_column_text(qh, 2), t->now);
        on = m < 0         ? 0
             : start < end ? m >= start && m < end
                           : m >= start || m < end;
    }
    sqlite3_reset(qh);
    return on;
}

/* Hold back alert id's notification if a silence of its workspace active
 * now selects it (record the silence in silenced_by: its notifications
 * look there), or if the workspace's quiet hours are on and the alert is
 * below critical (alerts.quiet); either way in the timeline.  sil: the
 * active silences' query; qh: the quiet hours' query (or NULL). */
static void aeng_silence(sqlite3 *db, sqlite3_stmt *sil, sqlite3_stmt *qh,
                         const struct aeng_tx *t, int64_t id)
{
    json_t *labels = t->labels ? json_loads(t->labels, 0, NULL) : NULL;
    json_t *group = json_loads(t->group_json, 0, NULL);
    int64_t by = 0;
    sqlite3_bind_int64(sil, 1, t->ws);
    sqlite3_bind_int64(sil, 2, t->now);
    while (by == 0 && sqlite3_step(sil) == SQLITE_ROW) {
        json_t *m =
            json_loads((const char *)sqlite3_column_text(sil, 1), 0, NULL);
        if (m != NULL && alert_matchers_match(m, t->rule_id,
                                              alert_severity_name(t->severity),
                                              labels, group))
            by = sqlite3_column_int64(sil, 0);
        json_decref(m);
    }
    sqlite3_reset(sil);
    json_decref(labels);
    json_decref(group);
    sqlite3_stmt *st;
    /* Each notification decides anew: a hold that ended holds no more. */
    int quiet = by == 0 && qh != NULL && t->severity != ALERT_CRITICAL &&
                aeng_quiet(qh, t);
    if (sqlite3_prepare_v2(db,
                           "UPDATE alerts SET silenced_by = ?2, quiet = ?3 "
                           "WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (by > 0)
            sqlite3_bind_int64(st, 2, by);
        sqlite3_bind_int(st, 3, quiet);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    char note[96];
    if (by > 0)
        snprintf(note, sizeof(note), "notification held back by silence %lld",
                 (long long)by);
    else
        snprintf(note, sizeof(note), "notification held back by quiet hours");
    if (by > 0 || quiet)
        col_alert_note(db, id, t->now, "silenced", "engine", note);
}

void col_alert_publish(struct col *c, const char *type, int64_t id,
                       const char *workspace, int64_t now)
{
    sqlite3_stmt *st;
    if (c->live == NULL ||
        sqlite3_prepare_v2(c->store.db,
                           "SELECT json_object('type', ?1, 'alert', id, "
                           "'rule', rule_id, 'rule_name', rule_name, "
                           "'severity', severity, 'status', status, "
                           "'group', json(group_json), 'values', "
                           "json(values_json), 'silenced_by', silenced_by, "
                           "'quiet_hours', json(iif(quiet, 'true', 'false')), "
                           "'ts', ?2) FROM alerts WHERE "
                           "id = ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    char ts[40];
    ev_format_rfc3339(now, ts, sizeof(ts));
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ts, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        live_ring_publish(c->live, SHM_RING_ALERT, workspace, text,
                          strlen(text), now);
    }
    sqlite3_finalize(st);
}

void col_alert_apply(struct col *c)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return;
    col_alert_handover(al);
    /* At most AENG_APPLY_MAX a second: a flood of alerts waits in the
     * outbox (and the engine pauses, aeng_main) rather than stall ingest. */
    pthread_mutex_lock(&al->mu);
    size_t n = al->nout < AENG_APPLY_MAX ? al->nout : AENG_APPLY_MAX;
    struct aeng_tx *out = n ? malloc(n * sizeof(*out)) : NULL;
    if (out != NULL) {
        memcpy(out, al->out, n * sizeof(*out));
        memmove(al->out, al->out + n, (al->nout - n) * sizeof(*out));
        al->nout -= n;
    } else
        n = 0;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
    if (n == 0)
        return;
    int64_t *ids = calloc(n, sizeof(*ids));
    sqlite3_stmt *sts[AENG_FIRE_PENDING + 1] = {NULL};
    int written = 0;
    if (ids != NULL && col_store_begin(&c->store) == SQLITE_OK) {
        written = 1;
        for (int k = 0; k <= AENG_FIRE_PENDING; k++)
            if (aeng_sql[k] != NULL &&
                sqlite3_prepare_v2(c->store.db, aeng_sql[k], -1, &sts[k],
                                   NULL) != SQLITE_OK)
                log_error(NULL, "msg=\"alert write failed\" error=\"%s\"",
                          sqlite3_errmsg(c->store.db));
        sqlite3_stmt *sil = NULL, *qh = NULL;
        sqlite3_prepare_v2(c->store.db,
                           "SELECT id, matchers FROM silences WHERE ws = ?1 "
                           "AND starts_ms <= ?2 AND ends_ms > ?2 ORDER BY id",
                           -1, &sil, NULL);
        sqlite3_prepare_v2(c->store.db,
                           "SELECT start_min, end_min, tz FROM quiet_hours "
                           "WHERE ws = ?1",
                           -1, &qh, NULL);
        for (size_t i = 0; i < n; i++) {
            ids[i] = aeng_write(sts, &out[i]);
            if (ids[i] > 0 && sil != NULL &&
                (AENG_IS_FIRE(out[i].action) || out[i].action == AA_RENOTIFY))
                aeng_silence(c->store.db, sil, qh, &out[i], ids[i]);
            /* Notifications, in this transaction: when the state machine
             * said so (cooldown), and not held back (silence, quiet). */
            static const char *const ev[] = {[AA_FIRE] = "firing",
                                             [AENG_FIRE_PENDING] = "firing",
                                             [AA_RENOTIFY] = "renotify",
                                             [AA_RESOLVE] = "resolved"};
            if (ids[i] > 0 && out[i].notify &&
                out[i].action <= AENG_FIRE_PENDING &&
                ev[out[i].action] != NULL &&
                col_notify_enqueue(c->store.db, ids[i], ev[out[i].action],
                                   out[i].now) != 0)
                written = 0; /* no alert without its notifications */
        }
        sqlite3_finalize(sil);
        sqlite3_finalize(qh);
        for (int k = 0; k <= AENG_FIRE_PENDING; k++)
            sqlite3_finalize(sts[k]);
        if (!written || col_store_commit(&c->store) != SQLITE_OK) {
            log_error(NULL,
                      "msg=\"alert transitions not written\" error=\"%s\"",
                      sqlite3_errmsg(c->store.db));
            col_store_rollback(&c->store);
            written = 0;
        }
    }
    if (!written) {
        /* Nothing written: the transitions go back to the front of the
         * outbox, in order, for the next second (the engine's states have
         * moved already; losing them would lose alerts). */
        log_warn(NULL, "msg=\"alert transitions kept for a retry\" count=%zu",
                 n);
        pthread_mutex_lock(&al->mu);
        struct aeng_tx *o = realloc(al->out, (al->nout + n) * sizeof(*o));
        if (o != NULL) {
            memmove(o + n, o, al->nout * sizeof(*o));
            memcpy(o, out, n * sizeof(*o));
            al->out = o;
            al->nout += n;
            al->capout = al->nout;
            n = 0; /* owned by the outbox again */
        }
        pthread_mutex_unlock(&al->mu);
        if (ids != NULL)
            memset(ids, 0, sizeof(*ids) * (n ? n : 1));
    }
    for (size_t i = 0; i < n; i++) {
        const struct aeng_tx *t = &out[i];
        if (ids != NULL && ids[i] > 0 &&
            (AENG_IS_FIRE(t->action) || t->action == AA_RESOLVE)) {
            col_alert_publish(
                c, AENG_IS_FIRE(t->action) ? "alert.firing" : "alert.resolved",
                ids[i], t->workspace, t->now);
            log_info(NULL, "msg=\"alert %s\" alert=%lld rule=%lld group=\"%s\"",
                     AENG_IS_FIRE(t->action) ? "firing" : "resolved",
                     (long long)ids[i], (long long)t->rule_id, t->group_json);
        }
        aeng_tx_free(&out[i]);
    }
    free(out);
    free(ids);
}

void col_alert_stop(struct col *c)
{
    struct col_alerts *al = c->alerts;
    if (al == NULL)
        return;
    pthread_mutex_lock(&al->mu);
    al->stop = 1;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
    if (al->started)
        pthread_join(al->tid, NULL);
    /* Transitions decided before the stop are written now. */
    for (int tries = 0; al->nout > 0 && tries < 10; tries++)
        col_alert_apply(c);
    if (al->nout > 0)
        log_error(NULL,
                  "msg=\"alert transitions not written at stop\" "
                  "count=%zu",
                  al->nout);
    aeng_rules_free(al);
    free(al->wide);
    for (size_t i = 0; i < al->nlongs; i++) {
        aeng_long_free(al->longs[i]);
        free(al->longs[i]);
    }
    free(al->longs);
    for (int i = 0; i < AENG_RING_MIN; i++) {
        struct aeng_minute *mn = &al->ring[i];
        aeng_cache_free(mn);
        for (size_t k = 0; k < mn->nslots; k++) {
            free(mn->cells[k].lat.e);
            free(mn->cells[k].ttft.e);
        }
        free(mn->cells);
        if (mn->start_ms != 0)
            arena_free(&mn->a);
    }
    for (size_t i = 0; i < al->nstate_slots; i++)
        if (al->states[i].s != NULL) {
            free(al->states[i].s->group_key);
            free(al->states[i].s->group_json);
            free(al->states[i].s);
        }
    free(al->states);
    for (size_t i = 0; i < al->nctl; i++)
        free(al->ctl[i].group_key);
    free(al->ctl);
    for (size_t i = 0; i < al->nout; i++)
        aeng_tx_free(&al->out[i]);
    free(al->out);
    free(al->inbox.p);
    free(al->feed.p);
    sqlite3_close(al->db);
    pthread_mutex_destroy(&al->mu);
    pthread_cond_destroy(&al->cv);
    for (struct aeng_test *lists[] = {al->tests, al->done}, **l = lists;
         l < lists + 2; l++)
        while (*l != NULL) {
            struct aeng_test *next = (*l)->next;
            aeng_test_free(*l);
            *l = next;
        }
    close(al->wake_fd);
    free(al);
    c->alerts = NULL;
}
