/*
 * route_metrics.c: GET /metrics, tokentap in the Prometheus text format.
 *
 * Who may scrape: a key with the read role (admin keys too), sent as
 * "Authorization: Bearer tt_..." (Prometheus: authorization.credentials).
 * A key sees only its workspace: the traffic, budget, alert and
 * notification series are its workspace's, labelled workspace="...", so
 * a Prometheus that watches several workspaces has a scrape job (a key)
 * for each.  tokentap's own health series have no workspace label and are
 * the same for every key; /health/ready already shows them without one.
 *
 * Where the numbers come from, and what "total" means:
 *
 *   - The traffic counters (requests, errors, tokens, cost) are the live
 *     segment's all-time totals per workspace, provider and model: every
 *     event stored since the database began.  The collector saves them
 *     with each closed second and restores them when it starts, so they
 *     survive restarts of every process and reset only with a new
 *     database.  They move once a second, when the collector closes one.
 *   - The segment holds latency and TTFT histograms per second only, for
 *     the last hour.  This process folds each closed second into its own
 *     cumulative counts, once, as scrapes come (met_advance): the two
 *     histograms therefore count the events received since the later of
 *     the collector's start and this process's start (exported as
 *     tokentap_latency_start_time_seconds) and reset, as Prometheus
 *     counters may, when either restarts.  Seconds that left the ring
 *     before any scrape read them (no scrape for an hour) are missing from
 *     the histograms and counted in tokentap_latency_missed_seconds_total.
 *   - Budgets: their rows, and the spend of the segment's budget slots (the
 *     rollups when a budget has no current slot, as budgets/status does).
 *     Alerts and notifications: a count by state from SQLite, all in one
 *     read transaction.
 *   - Health: the segment's health block, and /proc for the API workers.
 *
 * Cost per scrape: a copy of the workspace's totals, the seconds closed
 * since the last scrape (their sparse histogram entries only), three small
 * aggregate queries, and a few reads of /proc.
 */
#include <config.h>

#include "api.h"

#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "alert.h"
#include "budget.h"
#include "event.h"
#include "hist.h"
#include "prom.h"

/* Bounds of the histograms, in seconds: the buckets OpenTelemetry advises
 * for gen_ai.client.operation.duration and for
 * gen_ai.server.time_to_first_token. */
#define MET_LAT_N  14
#define MET_TTFT_N 16
static const double met_lat_le[MET_LAT_N] = {0.01,  0.02,  0.04,  0.08, 0.16,
                                             0.32,  0.64,  1.28,  2.56, 5.12,
                                             10.24, 20.48, 40.96, 81.92};
static const double met_ttft_le[MET_TTFT_N] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
    0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};

/* Retries of a seqlock read before giving up on it (a writer that died
 * mid-write leaves the sequence odd for good). */
#define MET_TRIES 1000

/* One model dim's histograms. */
struct met_hist {
    uint64_t lat[MET_LAT_N + 1];   /* per bound, then above the last */
    uint64_t ttft[MET_TTFT_N + 1]; /* same, for time to first token */
    double lat_sum_ms, ttft_sum_ms;
};

/*
 * The cumulative histograms of this process, one per slot of the
 * segment it follows.  Process-wide by nature (every worker thread serves
 * scrapes, and they must all see one monotonic series), so a file-level
 * state under its own lock, like the live-stats cache of route_live.c.
 */
static struct met_acc {
    pthread_mutex_t lock;
    int valid;           /* 0 until the first scrape */
    uint64_t generation; /* of the segment the counts follow */
    int64_t started_ms;  /* when that segment's collector started */
    int64_t from_sec;    /* first second counted */
    int64_t next_sec;    /* first second not added yet */
    uint64_t missed;     /* seconds lost to the ring before being added */
    uint32_t nslots;     /* slots of h */
    struct met_hist *h;  /* [nslots], malloc'ed */
    int maps_ready;
    uint8_t lat_map[HIST_BUCKETS];  /* hist.h bucket -> bound index */
    uint8_t ttft_map[HIST_BUCKETS]; /* the same for the TTFT bounds */
} met_acc = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The last closed second of segment h, or -1 if it cannot be read. */
static int64_t met_as_of(const struct shm_header *h)
{
    struct shm_summary *s = shm_summary(h);
    for (int i = 0; i < MET_TRIES; i++) {
        uint64_t start = shm_read_begin(&s->seq);
        int64_t v = s->as_of_sec;
        if (!shm_read_retry(&s->seq, start))
            return v;
    }
    return -1;
}

/* A dim whose latency sums one second carries. */
struct met_dimsum {
    uint32_t dim;
    double lat_ms, ttft_ms;
};

/* Scratch space for reading seconds, from the request's arena. */
struct met_scratch {
    struct shm_hent *he;     /* [hist_entries] */
    struct met_dimsum *sums; /* [nslots] */
    uint64_t *mark;          /* [nslots]: the read that saw each dim */
    uint64_t stamp;
};

/* Add second sec of h to the histograms.  Returns 0, or 1 when the ring
 * no longer holds it. */
static int met_add_second(struct met_acc *a, const struct shm_header *h,
                          int64_t sec, struct met_scratch *x)
{
    struct shm_sec *s = shm_second(h, sec);
    const struct shm_hent *ring = shm_second_hist(h, sec);
    uint32_t nh = 0, ns = 0;
    int ok = 0;
    for (int i = 0; i < MET_TRIES && !ok; i++) {
        uint64_t start = shm_read_begin(&s->seq);
        int64_t got = s->sec;
        uint32_t nd = s->ndims;
        nh = s->nhist;
        if (got != sec) {
            if (!shm_read_retry(&s->seq, start))
                return got > sec; /* overwritten, or never closed */
            continue;
        }
        if (nd > h->nslots)
            nd = h->nslots;
        if (nh > h->hist_entries)
            nh = h->hist_entries;
        memcpy(x->he, ring, (size_t)nh * sizeof(*x->he));
        const struct shm_stat *st = shm_second_stats(s);
        x->stamp++;
        ns = 0;
        for (uint32_t k = 0; k < nh; k++) {
            uint32_t d = x->he[k].dim;
            if (d >= nd || x->mark[d] == x->stamp)
                continue;
            x->mark[d] = x->stamp;
            x->sums[ns].dim = d;
            x->sums[ns].lat_ms = st[d].a.lat_sum_ms;
            x->sums[ns].ttft_ms = st[d].a.ttft_sum_ms;
            ns++;
        }
        ok = !shm_read_retry(&s->seq, start);
    }
    if (!ok)
        return 1;
    const struct shm_dim *dims = shm_dims(h);
    for (uint32_t k = 0; k < nh; k++) {
        const struct shm_hent *e = &x->he[k];
        unsigned b = e->bucket & ~SHM_HENT_TTFT;
        if (e->dim >= h->nslots || dims[e->dim].kind != SHM_DIM_MODEL ||
            b >= HIST_BUCKETS)
            continue;
        struct met_hist *mh = &a->h[e->dim];
        if (e->bucket & SHM_HENT_TTFT)
            mh->ttft[a->ttft_map[b]] += e->count;
        else
            mh->lat[a->lat_map[b]] += e->count;
    }
    for (uint32_t k = 0; k < ns; k++) {
        const struct met_dimsum *m = &x->sums[k];
        if (m->dim >= h->nslots || dims[m->dim].kind != SHM_DIM_MODEL)
            continue;
        a->h[m->dim].lat_sum_ms += m->lat_ms;
        a->h[m->dim].ttft_sum_ms += m->ttft_ms;
    }
    return 0;
}

/* Bring the histograms up to the last closed second of h (met_acc.lock
 * held), starting afresh when h is a new segment.  Returns 0, -ENOMEM,
 * or -ESTALE when h is older than the segment followed (a thread that has
 * not seen a collector restart yet: going back would break the series). */
static int met_advance(struct api_req *r, const struct shm_header *h)
{
    struct met_acc *a = &met_acc;
    if (!a->maps_ready) {
        prom_hist_map(met_lat_le, MET_LAT_N, a->lat_map);
        prom_hist_map(met_ttft_le, MET_TTFT_N, a->ttft_map);
        a->maps_ready = 1;
    }
    int64_t as_of = met_as_of(h);
    if (!a->valid || a->generation != h->generation) {
        if (a->valid && h->started_ms < a->started_ms)
            return -ESTALE;
        if (a->nslots < h->nslots) {
            struct met_hist *n = realloc(a->h, h->nslots * sizeof(*n));
            if (n == NULL)
                return -ENOMEM;
            a->h = n;
            a->nslots = h->nslots;
        }
        memset(a->h, 0, a->nslots * sizeof(*a->h));
        int64_t from = h->started_ms > r->t->g->started_ms
                           ? h->started_ms
                           : r->t->g->started_ms;
        a->generation = h->generation;
        a->started_ms = h->started_ms;
        a->from_sec = a->next_sec = from / 1000;
        a->missed = 0;
        a->valid = 1;
    }
    if (as_of < a->next_sec)
        return 0;
    /* Stay two seconds clear of the slot the collector writes next. */
    int64_t oldest = as_of - (int64_t)h->nseconds + 2;
    if (a->next_sec < oldest) {
        a->missed += (uint64_t)(oldest - a->next_sec);
        a->next_sec = oldest;
    }
    struct met_scratch x = {
        .he = arena_alloc(r->arena, h->hist_entries * sizeof(*x.he) + 1),
        .sums = arena_alloc(r->arena, h->nslots * sizeof(*x.sums)),
        .mark = arena_alloc(r->arena, h->nslots * sizeof(*x.mark)),
        .stamp = 0};
    if (x.he == NULL || x.sums == NULL || x.mark == NULL)
        return -ENOMEM;
    memset(x.mark, 0, h->nslots * sizeof(*x.mark));
    for (; a->next_sec <= as_of; a->next_sec++)
        a->missed += (uint64_t)met_add_second(a, h, a->next_sec, &x);
    return 0;
}

/* The model dims of one workspace with their totals and histograms. */
struct met_model {
    struct shm_dim dim;
    struct shm_agg tot;
    struct met_hist hist;
};

/* Copy the model dims of workspace ws: their totals (one consistent
 * snapshot) and histograms.  Returns how many, or a negative errno
 * (met_advance's, or -EAGAIN when the totals could not be read). */
static int met_models(struct api_req *r, const struct shm_header *h,
                      const char *ws, struct met_model **out,
                      int64_t *hist_from, uint64_t *missed)
{
    const struct shm_dim *dims = shm_dims(h);
    struct shm_summary *s = shm_summary(h);
    const struct shm_agg *tot = shm_summary_tot(h);
    uint32_t nd = atomic_load_explicit(&((struct shm_header *)h)->ndims,
                                       memory_order_acquire);
    if (nd > h->nslots)
        nd = h->nslots;
    uint32_t *idx = arena_alloc(r->arena, (nd + 1) * sizeof(*idx));
    struct met_model *m = arena_alloc(r->arena, (nd + 1) * sizeof(*m));
    if (idx == NULL || m == NULL)
        return -ENOMEM;
    int n = 0;
    for (uint32_t i = 0; i < nd; i++)
        if (dims[i].kind == SHM_DIM_MODEL && strcmp(dims[i].workspace, ws) == 0)
            idx[n++] = i;
    int ok = 0;
    for (int t = 0; t < MET_TRIES && !ok; t++) {
        uint64_t start = shm_read_begin(&s->seq);
        for (int k = 0; k < n; k++)
            m[k].tot = tot[idx[k]];
        ok = !shm_read_retry(&s->seq, start);
    }
    if (!ok)
        return -EAGAIN;
    /* A dim without a call yet (the "other" slot every workspace has in
     * reserve) has no series: they appear with the first call. */
    int kept = 0;
    for (int k = 0; k < n; k++)
        if (m[k].tot.requests > 0) {
            m[kept].tot = m[k].tot;
            idx[kept++] = idx[k];
        }
    n = kept;
    pthread_mutex_lock(&met_acc.lock);
    int rc = met_advance(r, h);
    for (int k = 0; k < n && rc == 0; k++) {
        m[k].dim = dims[idx[k]];
        m[k].hist = met_acc.h[idx[k]];
    }
    *hist_from = met_acc.from_sec;
    *missed = met_acc.missed;
    pthread_mutex_unlock(&met_acc.lock);
    *out = m;
    return rc == 0 ? n : rc;
}

/* Room for the labels of a model's series: workspace, provider, model,
 * token type, and the NULL that ends them. */
#define MET_LABELS 9

/* Fill l[MET_LABELS] with the labels of model m, and the token type when
 * type is not NULL. */
static void met_labels(const struct met_model *m, const char **l,
                       const char *type)
{
    l[0] = "workspace";
    l[1] = m->dim.workspace;
    l[2] = "provider";
    l[3] = m->dim.provider;
    l[4] = "model";
    l[5] = m->dim.model;
    l[6] = type ? "type" : NULL;
    l[7] = type;
    l[8] = NULL;
}

/* The traffic families of the models m[n]. */
static void met_traffic(struct strbuf *b, const struct met_model *m, int n)
{
    prom_family(b, "tokentap_requests_total", "counter",
                "LLM calls stored, since the database began.");
    for (int i = 0; i < n; i++) {
        const char *l[MET_LABELS];
        met_labels(&m[i], l, NULL);
        prom_sample_u64(b, "tokentap_requests_total", l, m[i].tot.requests);
    }
    prom_family(b, "tokentap_request_errors_total", "counter",
                "LLM calls that failed (status >= 400 or an error_type), "
                "since the database began.");
    for (int i = 0; i < n; i++) {
        const char *l[MET_LABELS];
        met_labels(&m[i], l, NULL);
        prom_sample_u64(b, "tokentap_request_errors_total", l, m[i].tot.errors);
    }
    /* Reasoning tokens are left out: providers count them inside the
     * output tokens, and a sum over type would count them twice. */
    static const int types[] = {SHM_TOK_INPUT, SHM_TOK_OUTPUT,
                                SHM_TOK_CACHE_READ, SHM_TOK_CACHE_WRITE};
    prom_family(b, "tokentap_tokens_total", "counter",
                "Tokens by type (gen_ai.token.type: input, output, "
                "cache_read, cache_write), since the database began.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 4; t++) {
            const char *l[MET_LABELS];
            met_labels(&m[i], l, shm_tok_names[types[t]]);
            prom_sample_u64(b, "tokentap_tokens_total", l,
                            m[i].tot.tokens[types[t]]);
        }
    prom_family(b, "tokentap_cost_usd_total", "counter",
                "Cost in US dollars, since the database began.");
    for (int i = 0; i < n; i++) {
        const char *l[MET_LABELS];
        met_labels(&m[i], l, NULL);
        char usd[40];
        api_usd_text(m[i].tot.cost_nusd, usd, sizeof(usd));
        prom_sample(b, "tokentap_cost_usd_total", l, usd);
    }
    prom_family(b, "tokentap_request_duration_seconds", "histogram",
                "Latency of LLM calls (gen_ai.client.operation.duration), "
                "since tokentap_latency_start_time_seconds.");
    for (int i = 0; i < n; i++) {
        const char *l[MET_LABELS];
        met_labels(&m[i], l, NULL);
        prom_histogram(b, "tokentap_request_duration_seconds", l, met_lat_le,
                       MET_LAT_N, m[i].hist.lat, m[i].hist.lat_sum_ms / 1000.0);
    }
    prom_family(b, "tokentap_time_to_first_token_seconds", "histogram",
                "Time to the first token of LLM calls "
                "(gen_ai.server.time_to_first_token), since "
                "tokentap_latency_start_time_seconds.");
    for (int i = 0; i < n; i++) {
        const char *l[MET_LABELS];
        met_labels(&m[i], l, NULL);
        prom_histogram(b, "tokentap_time_to_first_token_seconds", l,
                       met_ttft_le, MET_TTFT_N, m[i].hist.ttft,
                       m[i].hist.ttft_sum_ms / 1000.0);
    }
}

/* One budget of the workspace. */
struct met_budget {
    int64_t id, limit_nusd, spend_nusd;
    int period;
    char provider[EV_MAX_NAME + 1], model[EV_MAX_NAME + 1];
};

/* The budget families of workspace ws (id wsid).  Returns 0 or -1 on a
 * database error. */
static int met_budgets(struct api_req *r, struct strbuf *b,
                       const struct shm_header *h, int64_t wsid)
{
    int cap = 16, n = 0, rc = SQLITE_OK;
    struct met_budget *v = malloc((size_t)cap * sizeof(*v));
    sqlite3_stmt *st = NULL;
    if (v == NULL ||
        sqlite3_prepare_v2(r->t->db,
                           "SELECT id, period, provider, model, limit_nusd "
                           "FROM budgets WHERE ws = ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        free(v);
        return -1;
    }
    sqlite3_bind_int64(st, 1, wsid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            struct met_budget *w = realloc(v, (size_t)cap * 2 * sizeof(*w));
            if (w == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = w;
            cap *= 2;
        }
        struct met_budget *e = &v[n];
        const char *p = (const char *)sqlite3_column_text(st, 2);
        const char *m = (const char *)sqlite3_column_text(st, 3);
        e->id = sqlite3_column_int64(st, 0);
        e->period =
            budget_period_parse((const char *)sqlite3_column_text(st, 1));
        snprintf(e->provider, sizeof(e->provider), "%s", p ? p : "");
        snprintf(e->model, sizeof(e->model), "%s", m ? m : "");
        e->limit_nusd = sqlite3_column_int64(st, 4);
        if (e->period != BUDGET_NONE && e->limit_nusd > 0)
            n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return -1;
    }

    /* Spend: the live slot of the budget's current period, else the
     * rollups (read once, for the month, which covers every period). */
    struct shm_budget *slots = arena_alloc(r->arena, (n + 16) * sizeof(*slots));
    int nslots = slots ? shm_read_budgets(h, r->workspace, slots, n + 16) : 0;
    struct budget_cells cells;
    memset(&cells, 0, sizeof(cells));
    int have_cells = 0;
    rc = SQLITE_OK;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        int64_t start, end;
        budget_period_bounds(v[i].period, r->now_ms, &start, &end);
        int k = 0;
        while (k < nslots &&
               !(slots[k].id == v[i].id && slots[k].period_start_ms == start &&
                 slots[k].limit_nusd == v[i].limit_nusd))
            k++;
        if (k < nslots) {
            v[i].spend_nusd = slots[k].spend_nusd;
            continue;
        }
        if (!have_cells) {
            int64_t ms, me;
            budget_period_bounds(BUDGET_MONTH, r->now_ms, &ms, &me);
            rc = budget_cells_load(r->t->db, wsid, ms, me, &cells);
            have_cells = 1;
        }
        v[i].spend_nusd =
            budget_cells_sum(&cells, v[i].provider, v[i].model, start, end);
    }
    budget_cells_free(&cells);
    if (rc != SQLITE_OK) {
        free(v);
        return -1;
    }

    static const char *const names[] = {"tokentap_budget_limit_usd",
                                        "tokentap_budget_spend_usd",
                                        "tokentap_budget_used_ratio"};
    static const char *const helps[] = {
        "Budget limit of the current period in US dollars.",
        "Spend of the current period in scope, in US dollars.",
        "Spend over limit of the current period (1 = 100%)."};
    for (int f = 0; f < 3; f++) {
        prom_family(b, names[f], "gauge", helps[f]);
        for (int i = 0; i < n; i++) {
            char id[24], usd[40];
            snprintf(id, sizeof(id), "%" PRId64, v[i].id);
            const char *l[] = {
                "workspace", r->workspace,  "budget",
                id,          "period",      budget_period_name(v[i].period),
                "provider",  v[i].provider, "model",
                v[i].model,  NULL};
            if (f == 2) {
                prom_sample_f(b, names[f], l,
                              (double)v[i].spend_nusd /
                                  (double)v[i].limit_nusd);
                continue;
            }
            api_usd_text(f == 0 ? v[i].limit_nusd : v[i].spend_nusd, usd,
                         sizeof(usd));
            prom_sample(b, names[f], l, usd);
        }
    }
    free(v);
    return 0;
}

/* The alert and notification families of workspace ws (id wsid; 0: no
 * row yet, so nothing to count).  Returns 0 or -1 on a database error. */
static int met_alerts(struct api_req *r, struct strbuf *b, int64_t wsid)
{
    static const char *const states[] = {"pending", "firing", "acknowledged",
                                         "resolved"};
    static const char *const nstates[] = {"pending", "retrying", "sent",
                                          "failed"};
    uint64_t alerts[4][ALERT_NSEVERITIES], notes[4];
    memset(alerts, 0, sizeof(alerts));
    memset(notes, 0, sizeof(notes));
    sqlite3_stmt *st;
    int rc = SQLITE_DONE;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT status, severity, count(*) FROM alerts "
                           "WHERE ws = ? GROUP BY 1, 2",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, wsid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        int sev =
            alert_severity_parse((const char *)sqlite3_column_text(st, 1));
        for (int i = 0; i < 4 && s != NULL; i++)
            if (strcmp(s, states[i]) == 0 && sev >= 0 &&
                sev < ALERT_NSEVERITIES)
                alerts[i][sev] += (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT status, count(*) FROM notifications "
                           "WHERE ws = ? GROUP BY 1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, wsid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 4 && s != NULL; i++)
            if (strcmp(s, nstates[i]) == 0)
                notes[i] += (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;

    prom_family(b, "tokentap_alerts", "gauge",
                "Alerts by state and severity (resolved ones included).");
    for (int i = 0; i < 4; i++)
        for (int s = 0; s < ALERT_NSEVERITIES; s++) {
            const char *l[] = {
                "workspace", r->workspace,           "state", states[i],
                "severity",  alert_severity_name(s), NULL};
            prom_sample_u64(b, "tokentap_alerts", l, alerts[i][s]);
        }
    prom_family(b, "tokentap_notifications", "gauge",
                "Notifications (one per alert event and channel) by "
                "delivery status.");
    for (int i = 0; i < 4; i++) {
        const char *l[] = {"workspace", r->workspace, "status", nstates[i],
                           NULL};
        prom_sample_u64(b, "tokentap_notifications", l, notes[i]);
    }
    return 0;
}

/* Whether a /proc syscall line says "blocked in accept", or "blocked
 * reading one of the kept connections kept[nk]". */
static int met_task_idle(const char *line, const int *kept, int nk)
{
    long nr;
    unsigned long fd;
    if (sscanf(line, "%ld %lx", &nr, &fd) != 2)
        return 0; /* "running" */
#ifdef SYS_accept
    if (nr == SYS_accept)
        return 1;
#endif
    if (nr == SYS_accept4)
        return 1;
    if (nr == SYS_read)
        for (int i = 0; i < nk; i++)
            if ((unsigned long)kept[i] == fd)
                return 1;
    return 0;
}

/* Count the idle worker threads: those blocked in accept(2) for the next
 * connection, and those waiting on a connection nginx keeps open
 * (kept_fd, main.c).  The other threads (the main thread is in sigwait)
 * are never counted idle. */
static int met_idle_workers(struct api_req *r)
{
    int n = r->t->g->conf.api_threads, nk = 0;
    int *kept = arena_alloc(r->arena, (size_t)(n + 1) * sizeof(*kept));
    if (kept == NULL)
        return 0;
    /* main.c allocates the workers as one array, idx their place in it. */
    struct api_thread *first = r->t - r->t->idx;
    for (int i = 0; i < n; i++) {
        int fd = atomic_load_explicit(&first[i].kept_fd, memory_order_relaxed);
        if (fd >= 0)
            kept[nk++] = fd;
    }
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return 0;
    int idle = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/syscall",
                 e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(line, sizeof(line), f) != NULL)
            idle += met_task_idle(line, kept, nk);
        fclose(f);
    }
    closedir(d);
    return idle < n ? idle : n - 1; /* this thread is busy */
}

/* Write a one-sample family without labels. */
static void met_one(struct strbuf *b, const char *name, const char *type,
                    const char *help, double v)
{
    prom_family(b, name, type, help);
    prom_sample_f(b, name, NULL, v);
}

/* tokentap's own health families. */
static void met_health(struct api_req *r, struct strbuf *b,
                       const struct shm_header *h, int64_t hist_from,
                       uint64_t missed)
{
    struct shm_health *hl = &((struct shm_header *)h)->health;
#define MET_LOAD(f) ((double)atomic_load_explicit(&hl->f, memory_order_relaxed))
    const char *bl[] = {"version", PACKAGE_VERSION, NULL};
    prom_family(b, "tokentap_build_info", "gauge",
                "Always 1; the version of tokentap in a label.");
    prom_sample(b, "tokentap_build_info", bl, "1");

    int64_t hb = (int64_t)MET_LOAD(heartbeat_ms);
    int up =
        r->now_ms - hb <= r->t->g->conf.stale_after_ms && kill(h->pid, 0) == 0;
    met_one(b, "tokentap_collector_up", "gauge",
            "1 when the collector's heartbeat is recent, else 0.", up);
    met_one(b, "tokentap_collector_start_time_seconds", "gauge",
            "When the collector started, in seconds since the epoch.",
            (double)h->started_ms / 1000.0);
    prom_family(b, "tokentap_shm_generation", "gauge",
                "Generation of the live segment: new at every collector "
                "start.");
    prom_sample_u64(b, "tokentap_shm_generation", NULL, h->generation);
    met_one(b, "tokentap_ingest_queue_depth", "gauge",
            "Events the collector has read but not committed yet.",
            MET_LOAD(queue_depth));

    prom_family(b, "tokentap_ingest_events_total", "counter",
                "Events the collector committed (stored) or found stored "
                "already (duplicate), since it started.");
    const char *ls[] = {"outcome", "stored", NULL};
    const char *ld[] = {"outcome", "duplicate", NULL};
    prom_sample_f(b, "tokentap_ingest_events_total", ls,
                  MET_LOAD(events_stored));
    prom_sample_f(b, "tokentap_ingest_events_total", ld,
                  MET_LOAD(events_duplicate));
    prom_family(b, "tokentap_ingest_rejected_batches_total", "counter",
                "Ingest batches refused, by reason: busy (the collector's "
                "queue was full; the client may retry) or commit_failed "
                "(the database refused the commit), since the collector "
                "started.");
    const char *rb[] = {"reason", "busy", NULL};
    const char *rf[] = {"reason", "commit_failed", NULL};
    prom_sample_f(b, "tokentap_ingest_rejected_batches_total", rb,
                  MET_LOAD(rejected_busy));
    prom_sample_f(b, "tokentap_ingest_rejected_batches_total", rf,
                  MET_LOAD(rejected_fail));
    met_one(b, "tokentap_ingest_unknown_model_events_total", "counter",
            "Events priced at 0 because their model is not in the price "
            "catalog, since the collector started.",
            MET_LOAD(unknown_models));

    met_one(b, "tokentap_commits_total", "counter",
            "Group commits, since the collector started.", MET_LOAD(commits));
    met_one(b, "tokentap_commit_duration_seconds_total", "counter",
            "Time spent in group commits, since the collector started.",
            MET_LOAD(commit_us_total) / 1e6);
    met_one(b, "tokentap_commit_last_rows", "gauge",
            "Events in the last group commit (its batch size).",
            MET_LOAD(last_commit_rows));
    met_one(b, "tokentap_commit_last_duration_seconds", "gauge",
            "Duration of the last group commit.",
            MET_LOAD(last_commit_us) / 1e6);
    met_one(b, "tokentap_live_dropped_events_total", "counter",
            "Events stored but left out of the live numbers (no free "
            "slot), since the collector started.",
            MET_LOAD(live_dropped));
    met_one(b, "tokentap_live_latency_dropped_total", "counter",
            "Latency values left out of the per-second histograms (too "
            "many distinct buckets in a second), since the collector "
            "started.",
            MET_LOAD(hist_dropped));
    met_one(b, "tokentap_database_size_bytes", "gauge",
            "Size of the database and its write-ahead log.",
            MET_LOAD(db_bytes));
    met_one(b, "tokentap_database_up", "gauge",
            "1 when the collector's last commit worked, else 0.",
            MET_LOAD(db_ok) != 0);
    met_one(b, "tokentap_alert_rules", "gauge",
            "Alert rules the engine evaluates.", MET_LOAD(alert_rules));
    met_one(b, "tokentap_alert_evaluations_total", "counter",
            "Evaluation cycles of the alert engine, since the collector "
            "started.",
            MET_LOAD(alert_cycles));
    met_one(b, "tokentap_alert_evaluation_last_duration_seconds", "gauge",
            "Duration of the alert engine's last cycle.",
            MET_LOAD(alert_eval_us) / 1e6);
#undef MET_LOAD

    int n = r->t->g->conf.api_threads, idle = met_idle_workers(r);
    prom_family(b, "tokentap_api_workers", "gauge",
                "API worker threads answering a request (busy) or waiting "
                "for one (idle).");
    const char *wb[] = {"state", "busy", NULL};
    const char *wi[] = {"state", "idle", NULL};
    prom_sample_u64(b, "tokentap_api_workers", wb, (uint64_t)(n - idle));
    prom_sample_u64(b, "tokentap_api_workers", wi, (uint64_t)idle);
    /* The relay writes no shared memory: it leaves its counts in
     * DIR/run/relay.stats each second ("key value" lines). */
    char path[CONF_PATH_MAX + 32], key[32];
    snprintf(path, sizeof(path), "%s/run/relay.stats", r->t->g->conf.data_dir);
    FILE *f = fopen(path, "r");
    long long v, clients = 0, cut = 0, msgs = 0, silent = 0, fanout = 0;
    while (f != NULL && fscanf(f, "%31s %lld", key, &v) == 2) {
        if (strcmp(key, "clients") == 0)
            clients = v;
        else if (strcmp(key, "cut_off") == 0)
            cut = v;
        else if (strcmp(key, "messages") == 0)
            msgs = v;
        else if (strcmp(key, "silent") == 0)
            silent = v;
        else if (strcmp(key, "fanout_ms") == 0)
            fanout = v;
    }
    if (f != NULL)
        fclose(f);
    met_one(b, "tokentap_relay_clients", "gauge",
            "Live streams (WebSocket) the relay serves now.", (double)clients);
    met_one(b, "tokentap_relay_cut_off_total", "counter",
            "Streams the relay closed for falling behind, since it started.",
            (double)cut);
    met_one(b, "tokentap_relay_messages_total", "counter",
            "Messages the relay queued to streams, since it started.",
            (double)msgs);
    met_one(b, "tokentap_relay_silent_closed_total", "counter",
            "Streams the relay closed for not answering a ping, since it "
            "started.",
            (double)silent);
    met_one(b, "tokentap_relay_fanout_seconds", "gauge",
            "From the end of the last streamed second until its frame was "
            "written or queued to every stream.",
            (double)fanout / 1000.0);

    met_one(b, "tokentap_latency_start_time_seconds", "gauge",
            "Since when the latency and TTFT histograms count (the later "
            "of the collector's and the API's start).",
            (double)hist_from);
    met_one(b, "tokentap_latency_missed_seconds_total", "counter",
            "Seconds left out of the histograms: they left the live ring "
            "(one hour) before a scrape read them.",
            (double)missed);
}

int api_metrics(struct api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) != 0)
        return -1;
    /* Look for a new segment now, not within the second api_shm() allows:
     * the histograms are process-wide, and every thread must follow a
     * restarted collector at once. */
    if (shm_reader_check(&r->t->shm, r->now_ms, 0) != 0)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "metrics are not available: the collector has "
                           "not started");
    const struct shm_header *h = r->t->shm.h;
    struct met_model *m = NULL;
    int64_t hist_from = 0;
    uint64_t missed = 0;
    int n = met_models(r, h, r->workspace, &m, &hist_from, &missed);
    if (n == -ENOMEM)
        return api_error(r, 500, "internal", NULL, "out of memory");
    if (n < 0)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "%s; try again",
                           n == -ESTALE ? "the collector has just restarted"
                                        : "the live segment cannot be read "
                                          "consistently");

    int64_t wsid = api_ws_id(r);
    if (wsid < 0)
        return api_db_unavailable(r);
    if (api_read_begin(r) < 0)
        return -1;
    struct strbuf b;
    prom_init(&b);
    met_traffic(&b, m, n);
    int rc = met_budgets(r, &b, h, wsid);
    if (rc == 0)
        rc = met_alerts(r, &b, wsid);
    api_read_end(r);
    if (rc != 0) {
        prom_free(&b);
        return api_db_unavailable(r);
    }
    met_health(r, &b, h, hist_from, missed);
    if (b.oom) {
        prom_free(&b);
        return api_error(r, 500, "internal", NULL, "out of memory");
    }
    api_send_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
                  b.len, NULL);
    prom_free(&b);
    return 0;
}
