/*
 * check_shm.c: unit tests for the live segment (shm/shm.h) and its writer,
 * the live aggregator (shm/live.h).
 *
 * Every test drives the aggregator with a fake clock: events carry
 * received_ms values the test chooses and seconds close only when the test
 * ticks, so nothing depends on real time.  Numbers read back through
 * shm_read_window() are compared with numbers recomputed from the raw
 * events.  Segments are named "/tt-test-<runner pid>-<id>"; each test
 * unlinks its own, and the runner's process unlinks every id again after
 * the test case in case a failing test did not get that far.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hist.h"
#include "live.h"
#include "shm.h"

#define MAX_IDS 64           /* segment ids a test may use */
#define S0      1700000000LL /* the fake clock's first second */
#define T0      (S0 * 1000)  /* ... in milliseconds */
#define CAP     64           /* items read back at most */

/* Small segments: 16 slots, an hour of seconds, a 10-entry feed. */
static const struct shm_params P = {.nslots = 16,
                                    .nseconds = 3600,
                                    .hist_entries = 256,
                                    .feed_size = 10,
                                    .ring_size = 8};

/* The process that runs the suite (test processes are its children). */
static pid_t runner_pid;

/* The segment name of id for this run. */
static void seg_name(char *buf, size_t n, int id)
{
    snprintf(buf, n, "/tt-test-%d-%d", (int)runner_pid, id);
}

/* Unlink every segment this run may have made (unchecked teardown). */
static void unlink_all(void)
{
    char name[64];
    for (int id = 0; id < MAX_IDS; id++) {
        seg_name(name, sizeof(name), id);
        shm_unlink(name);
    }
}

/* An event of ws/provider/model received at ms with the given latency
 * and TTFT (negative: absent); 10 input and 5 output tokens, 1000 nUSD. */
static struct live_event mk(const char *ws, const char *prov, const char *model,
                            int64_t ms, double lat, double ttft)
{
    struct live_event e;
    memset(&e, 0, sizeof(e));
    e.workspace = ws;
    e.provider = prov;
    e.model = model;
    e.ts_ms = ms - 50;
    e.received_ms = ms;
    e.tokens[SHM_TOK_INPUT] = 10;
    e.tokens[SHM_TOK_OUTPUT] = 5;
    e.cost_nusd = 1000;
    e.latency_ms = lat;
    e.ttft_ms = ttft;
    e.status = 200;
    e.round = -1;
    return e;
}

/* Open an aggregator on segment id at T0 (generation gen). */
static struct live *open_live(int id, uint64_t gen, char *name, size_t n)
{
    seg_name(name, n, id);
    struct live *l = live_open(name, &P, gen, T0);
    ck_assert_msg(l != NULL, "live_open %s: %s", name, strerror(errno));
    live_publish(l);
    return l;
}

/* Close the aggregator and unlink its segment. */
static void close_live(struct live *l, const char *name)
{
    live_close(l);
    shm_unlink(name);
}

/* Read window w of ws into items; returns the count (asserted >= 0). */
static int read_win(const struct shm_header *h, int w, const char *ws,
                    struct shm_item *items, int64_t *as_of)
{
    int64_t dummy;
    int n = shm_read_window(h, w, ws, items, CAP, as_of ? as_of : &dummy);
    ck_assert_int_ge(n, 0);
    return n;
}

/* The item of kind/provider/model (and workspace ws when not NULL). */
static const struct shm_item *find_item(const struct shm_item *items, int n,
                                        int kind, const char *ws,
                                        const char *prov, const char *model)
{
    for (int i = 0; i < n; i++) {
        const struct shm_dim *d = &items[i].dim;
        if (d->kind == kind && (ws == NULL || strcmp(d->workspace, ws) == 0) &&
            strcmp(d->provider, prov) == 0 && strcmp(d->model, model) == 0)
            return &items[i];
    }
    return NULL;
}

/* qsort comparator for doubles. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The exact nearest-rank q-percentile of v[0..n-1] (sorted here). */
static double exact_pct(double *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), cmp_double);
    uint64_t rank = (uint64_t)ceil(q * (double)n - 1e-9);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

/* Assert got is within 1% of want. */
#define ck_assert_within_1pct(what, got, want)                                 \
    do {                                                                       \
        double g_ = (got), w_ = (want);                                        \
        ck_assert_msg(fabs(g_ - w_) <= 0.01 * fabs(w_),                        \
                      "%s: %.6f vs exact %.6f (more than 1%% off)", (what),    \
                      g_, w_);                                                 \
    } while (0)

/* A deterministic generator (splitmix64) for latencies. */
static uint64_t rng_state = 1;

/* The next random double in (0, 1). */
static double rng_unit(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

/* A latency spread log-uniformly over 50 ms .. 50 s. */
static double rng_latency(void)
{
    return 50.0 * exp(rng_unit() * log(1000.0));
}

/* ------------------------------------------------------------------ */

/* The header carries magic, version, size, generation and parameters. */
START_TEST(test_header)
{
    char name[64];
    struct live *l = open_live(0, 12345, name, sizeof(name));
    struct shm_header *h = live_header(l);
    struct shm_header want;
    size_t size = shm_layout(&P, &want);
    ck_assert_uint_eq(h->magic, SHM_MAGIC);
    ck_assert_uint_eq(h->version, SHM_VERSION);
    ck_assert_uint_eq(h->size, size);
    ck_assert_uint_eq(h->generation, 12345);
    ck_assert_int_eq(h->started_ms, T0);
    ck_assert_uint_eq(h->nslots, P.nslots);
    ck_assert_uint_eq(h->nseconds, P.nseconds);
    ck_assert_uint_eq(h->hist_entries, P.hist_entries);
    ck_assert_uint_eq(h->feed_size, P.feed_size);
    ck_assert_uint_eq(h->ring_size, P.ring_size);
    ck_assert_uint_eq(h->off_dims, want.off_dims);
    ck_assert_uint_eq(h->off_ring, want.off_ring);
    ck_assert_uint_eq(atomic_load(&h->ndims), 0);
    ck_assert_int_eq(live_open_sec(l), S0);

    struct shm_reader r;
    shm_reader_init(&r, name);
    ck_assert_ptr_nonnull(r.h);
    ck_assert_uint_eq(r.size, size);
    ck_assert_uint_eq(r.h->magic, SHM_MAGIC);
    ck_assert_uint_eq(r.h->generation, 12345);
    shm_reader_close(&r);
    ck_assert_ptr_null(r.h);
    close_live(l, name);
}
END_TEST

/* Areas are 64-byte aligned, in order, non-overlapping and inside size,
 * for several parameter sets. */
START_TEST(test_layout)
{
    static const struct shm_params ps[] = {
        {16, 3600, 256, 10, 8, 0},
        {8, 3600, 256, 10, 1, 1},
        {128, 3660, 8192, 1000, 1024, 1024},
        {4096, 86400, 256, 100000, 1024, 4096},
        {1, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        const struct shm_params *p = &ps[i];
        struct shm_header h;
        uint64_t size = shm_layout(p, &h);
        uint64_t offs[] = {h.off_dims,    h.off_summary, h.off_seconds,
                           h.off_hist,    h.off_feed,    h.off_ring,
                           h.off_budgets, size,          h.sec_stride};
        for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++)
            ck_assert_msg(offs[k] % 64 == 0, "set %zu: value %zu = %llu", i, k,
                          (unsigned long long)offs[k]);
        ck_assert_uint_eq(h.size, size);
        ck_assert_uint_ge(h.off_dims, sizeof(struct shm_header));
        ck_assert_uint_le(h.off_dims + p->nslots * sizeof(struct shm_dim),
                          h.off_summary);
        ck_assert_uint_le(h.off_summary + sizeof(struct shm_summary) +
                              (uint64_t)SHM_WINDOWS * p->nslots *
                                  sizeof(struct shm_stat) +
                              p->nslots * sizeof(struct shm_agg),
                          h.off_seconds);
        ck_assert_uint_ge(h.sec_stride,
                          sizeof(struct shm_sec) +
                              p->nslots * sizeof(struct shm_stat));
        ck_assert_uint_le(h.off_seconds + h.sec_stride * p->nseconds,
                          h.off_hist);
        ck_assert_uint_le(h.off_hist + (uint64_t)p->nseconds * p->hist_entries *
                                           sizeof(struct shm_hent),
                          h.off_feed);
        ck_assert_uint_le(h.off_feed +
                              p->feed_size * sizeof(struct shm_feed_ent),
                          h.off_ring);
        ck_assert_uint_le(h.off_ring +
                              p->ring_size * sizeof(struct shm_ring_ent),
                          h.off_budgets);
        ck_assert_uint_le(
            h.off_budgets + p->budget_slots * sizeof(struct shm_budget), size);
        ck_assert_uint_eq(h.budget_slots, p->budget_slots);
        /* The accessors stay inside the segment at their extremes. */
        const char *base = (const char *)&h;
        const char *last_sec =
            (const char *)shm_second(&h, (int64_t)p->nseconds - 1);
        ck_assert_uint_le((uint64_t)(last_sec - base) + h.sec_stride,
                          h.off_hist);
        const char *tot_end = (const char *)(shm_summary_tot(&h) + p->nslots);
        ck_assert_uint_le((uint64_t)(tot_end - base), h.off_seconds);
        const char *feed_end =
            (const char *)(shm_feed(&h, p->feed_size - 1) + 1);
        ck_assert_uint_le((uint64_t)(feed_end - base), h.off_ring);
        const char *ring_end =
            (const char *)(shm_ring(&h, p->ring_size - 1) + 1);
        ck_assert_uint_le((uint64_t)(ring_end - base), h.off_budgets);
        if (p->budget_slots > 0) {
            const char *b_end =
                (const char *)(shm_budget_slot(&h, p->budget_slots - 1) + 1);
            ck_assert_uint_le((uint64_t)(b_end - base), size);
        }
    }
}
END_TEST

/* A budget slot as the tracker writes it. */
static struct shm_budget budget_val(int64_t id, const char *ws, int64_t spend)
{
    struct shm_budget v;
    memset(&v, 0, sizeof(v));
    v.id = id;
    v.period_start_ms = T0;
    v.period_end_ms = T0 + 86400000;
    v.spend_nusd = spend;
    v.limit_nusd = 1000;
    v.as_of_ms = T0 + 5;
    v.crossed = 5;
    v.period = 1;
    snprintf(v.workspace, sizeof(v.workspace), "%s", ws);
    return v;
}

/* Budget slots: written under their seqlock, read back by workspace, the
 * used count grows with the highest slot written and shrinks on trim;
 * slots past budget_slots are ignored. */
START_TEST(test_budget_slots)
{
    char name[64];
    struct shm_params p = P;
    p.budget_slots = 4;
    seg_name(name, sizeof(name), 9);
    struct live *l = live_open(name, &p, 1, T0);
    ck_assert_ptr_nonnull(l);
    live_publish(l);
    struct shm_header *h = live_header(l);
    struct shm_reader r;
    shm_reader_init(&r, name);
    ck_assert_ptr_nonnull(r.h);
    struct shm_budget out[8], v;
    ck_assert_int_eq(shm_read_budgets(r.h, NULL, out, 8), 0);
    v = budget_val(11, "ws1", 300);
    shm_budget_write(h, 0, &v);
    v = budget_val(12, "ws2", 400);
    shm_budget_write(h, 2, &v);
    v = budget_val(13, "ws1", 500);
    shm_budget_write(h, 4, &v); /* past the slots: ignored */
    ck_assert_uint_eq(atomic_load(&h->budgets_used), 3);
    ck_assert_int_eq(shm_read_budgets(r.h, NULL, out, 8), 2);
    ck_assert_int_eq(shm_read_budgets(r.h, "ws2", out, 8), 1);
    ck_assert_int_eq(out[0].id, 12);
    ck_assert_int_eq(out[0].spend_nusd, 400);
    ck_assert_int_eq(out[0].limit_nusd, 1000);
    ck_assert_int_eq(out[0].period_end_ms, T0 + 86400000);
    ck_assert_uint_eq(out[0].crossed, 5);
    ck_assert_str_eq(out[0].workspace, "ws2");
    ck_assert_uint_eq(atomic_load(&out[0].seq) % 2, 0);
    ck_assert_int_eq(shm_read_budgets(r.h, "ws1", out, 8), 1);
    ck_assert_int_eq(out[0].id, 11);
    ck_assert_int_eq(shm_read_budgets(r.h, NULL, out, 1), 1);
    /* Rewriting a slot replaces it; trimming empties the tail. */
    v = budget_val(11, "ws1", 350);
    shm_budget_write(h, 0, &v);
    shm_read_budgets(r.h, "ws1", out, 8);
    ck_assert_int_eq(out[0].spend_nusd, 350);
    shm_budget_trim(h, 1);
    ck_assert_uint_eq(atomic_load(&h->budgets_used), 1);
    ck_assert_int_eq(shm_read_budgets(r.h, NULL, out, 8), 1);
    ck_assert_int_eq(shm_read_budgets(r.h, "ws2", out, 8), 0);
    shm_budget_trim(h, 0);
    ck_assert_int_eq(shm_read_budgets(r.h, NULL, out, 8), 0);
    shm_reader_close(&r);
    close_live(l, name);
}
END_TEST

/* The workspace dim comes first and the others follow under it. */
START_TEST(test_dims_order)
{
    char name[64];
    struct live *l = open_live(1, 1, name, sizeof(name));
    struct live_event e = mk("ws1", "openai", "gpt-4o", T0 + 10, 100, -1);
    ck_assert_int_eq(live_add(l, &e), 0);
    e = mk("ws1", "anthropic", "claude", T0 + 20, 200, -1);
    ck_assert_int_eq(live_add(l, &e), 0);
    e = mk("ws1", "openai", "gpt-4o-mini", T0 + 30, 300, -1);
    ck_assert_int_eq(live_add(l, &e), 0);
    live_tick(l, T0 + 1000);

    struct shm_item items[CAP];
    int n = read_win(live_header(l), 0, "ws1", items, NULL);
    /* ws, other provider, other model, 2 providers, 3 models. */
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(items[0].dim.kind, SHM_DIM_WORKSPACE);
    ck_assert_str_eq(items[0].dim.workspace, "ws1");
    ck_assert_str_eq(items[0].dim.provider, "");
    ck_assert_str_eq(items[0].dim.model, "");
    ck_assert_uint_eq(items[0].win.a.requests, 3);
    ck_assert_ptr_nonnull(
        find_item(items, n, SHM_DIM_PROVIDER, "ws1", SHM_OTHER, ""));
    ck_assert_ptr_nonnull(
        find_item(items, n, SHM_DIM_MODEL, "ws1", SHM_OTHER, SHM_OTHER));
    const struct shm_item *oa =
        find_item(items, n, SHM_DIM_PROVIDER, "ws1", "openai", "");
    const struct shm_item *an =
        find_item(items, n, SHM_DIM_PROVIDER, "ws1", "anthropic", "");
    const struct shm_item *m1 =
        find_item(items, n, SHM_DIM_MODEL, "ws1", "openai", "gpt-4o");
    const struct shm_item *m2 =
        find_item(items, n, SHM_DIM_MODEL, "ws1", "openai", "gpt-4o-mini");
    const struct shm_item *m3 =
        find_item(items, n, SHM_DIM_MODEL, "ws1", "anthropic", "claude");
    ck_assert_ptr_nonnull(oa);
    ck_assert_ptr_nonnull(an);
    ck_assert_ptr_nonnull(m1);
    ck_assert_ptr_nonnull(m2);
    ck_assert_ptr_nonnull(m3);
    ck_assert_uint_eq(oa->win.a.requests, 2);
    ck_assert_uint_eq(an->win.a.requests, 1);
    ck_assert_uint_eq(m1->win.a.requests, 1);
    ck_assert_uint_eq(m2->win.a.requests, 1);
    ck_assert_uint_eq(m3->win.a.requests, 1);
    for (int i = 1; i < n; i++)
        ck_assert_uint_eq(items[i].dim.ws, 0);
    close_live(l, name);
}
END_TEST

/* Events of one second: exact sums and percentiles within 1% in the 1m
 * window (and every longer window) once the second is closed. */
START_TEST(test_window_one_second)
{
    char name[64];
    struct live *l = open_live(2, 1, name, sizeof(name));
    enum { N = 40 };
    double lat[N], ttft[N];
    uint64_t errors = 0, tok[SHM_TOK_N] = {0};
    int64_t cost = 0;
    double lat_sum = 0;
    int64_t sec = S0 + 5;
    rng_state = 11;
    for (int i = 0; i < N; i++) {
        lat[i] = rng_latency();
        ttft[i] = lat[i] * 0.25;
        struct live_event e =
            mk("ws1", "openai", "gpt-4o", sec * 1000 + i * 20, lat[i], ttft[i]);
        e.is_error = i % 7 == 0;
        e.tokens[SHM_TOK_INPUT] = 100 + i;
        e.tokens[SHM_TOK_OUTPUT] = 2 * i;
        e.tokens[SHM_TOK_CACHE_READ] = i % 3;
        e.tokens[SHM_TOK_CACHE_WRITE] = i % 5;
        e.tokens[SHM_TOK_REASONING] = i;
        e.cost_nusd = 123456789 + i;
        errors += (uint64_t)e.is_error;
        for (int t = 0; t < SHM_TOK_N; t++)
            tok[t] += (uint64_t)e.tokens[t];
        cost += e.cost_nusd;
        lat_sum += lat[i];
        ck_assert_int_eq(live_add(l, &e), 0);
    }
    /* Nothing is visible before the second closes. */
    struct shm_item items[CAP];
    int64_t as_of = -1;
    int n = read_win(live_header(l), 0, "ws1", items, &as_of);
    ck_assert_uint_eq(n > 0 ? items[0].win.a.requests : 0, 0);
    live_tick(l, (sec + 1) * 1000);
    ck_assert_uint_eq(atomic_load(&live_header(l)->health.hist_dropped), 0);
    double p50 = exact_pct(lat, N, 0.5), p95 = exact_pct(lat, N, 0.95),
           p99 = exact_pct(lat, N, 0.99), t95 = exact_pct(ttft, N, 0.95);
    for (int w = 0; w < SHM_WINDOWS; w++) {
        n = read_win(live_header(l), w, "ws1", items, &as_of);
        ck_assert_int_eq(as_of, sec);
        ck_assert_int_eq(n, 5);
        for (int i = 0; i < n; i++) {
            if (strcmp(items[i].dim.provider, SHM_OTHER) == 0)
                continue;
            const struct shm_stat *s = &items[i].win;
            ck_assert_uint_eq(s->a.requests, N);
            ck_assert_uint_eq(s->a.errors, errors);
            for (int t = 0; t < SHM_TOK_N; t++)
                ck_assert_uint_eq(s->a.tokens[t], tok[t]);
            ck_assert_int_eq(s->a.cost_nusd, cost);
            ck_assert_uint_eq(s->a.lat_n, N);
            ck_assert_uint_eq(s->a.ttft_n, N);
            ck_assert_double_eq_tol(s->a.lat_sum_ms, lat_sum, 1e-6);
            ck_assert_within_1pct("p50", s->p50, p50);
            ck_assert_within_1pct("p95", s->p95, p95);
            ck_assert_within_1pct("p99", s->p99, p99);
            ck_assert_within_1pct("ttft_p95", s->ttft_p95, t95);
            ck_assert_uint_eq(items[i].tot.requests, N);
            ck_assert_int_eq(items[i].tot.cost_nusd, cost);
        }
    }
    close_live(l, name);
}
END_TEST

/* Events over 50 seconds: the 1m window sums them all exactly, with
 * percentiles within 1% of the exact ones over all of them. */
START_TEST(test_window_many_seconds)
{
    char name[64];
    struct live *l = open_live(3, 1, name, sizeof(name));
    enum { SECS = 50, PER = 20, N = SECS * PER };
    static double lat[N];
    rng_state = 12;
    int k = 0;
    int64_t cost = 0;
    for (int s = 0; s < SECS; s++)
        for (int i = 0; i < PER; i++, k++) {
            lat[k] = rng_latency();
            struct live_event e = mk("ws1", "openai", "gpt-4o",
                                     (S0 + 3 + s) * 1000 + i * 40, lat[k], -1);
            e.cost_nusd = k;
            cost += k;
            ck_assert_int_eq(live_add(l, &e), 0);
        }
    live_tick(l, (S0 + 3 + SECS) * 1000);
    ck_assert_uint_eq(atomic_load(&live_header(l)->health.hist_dropped), 0);
    struct shm_item items[CAP];
    int64_t as_of;
    int n = read_win(live_header(l), 0, "ws1", items, &as_of);
    ck_assert_int_eq(as_of, S0 + 2 + SECS);
    ck_assert_int_ge(n, 1);
    const struct shm_stat *s = &items[0].win;
    ck_assert_uint_eq(s->a.requests, N);
    ck_assert_uint_eq(s->a.errors, 0);
    ck_assert_uint_eq(s->a.tokens[SHM_TOK_INPUT], 10 * N);
    ck_assert_int_eq(s->a.cost_nusd, cost);
    ck_assert_uint_eq(s->a.ttft_n, 0);
    ck_assert_within_1pct("p50", s->p50, exact_pct(lat, N, 0.5));
    ck_assert_within_1pct("p95", s->p95, exact_pct(lat, N, 0.95));
    ck_assert_within_1pct("p99", s->p99, exact_pct(lat, N, 0.99));
    ck_assert_double_eq(s->ttft_p95, 0.0);
    close_live(l, name);
}
END_TEST

/* Windows slide: events 60 s old leave the 1m window but stay in 5m, and
 * leave every window after an hour while the totals keep them. */
START_TEST(test_windows_slide)
{
    char name[64];
    struct live *l = open_live(4, 1, name, sizeof(name));
    int64_t a = S0 + 10;
    for (int i = 0; i < 3; i++) {
        struct live_event e = mk("ws1", "p", "m", a * 1000 + i, 100, -1);
        ck_assert_int_eq(live_add(l, &e), 0);
    }
    struct shm_item items[CAP];
    const struct shm_header *h = live_header(l);
    /* Closed through a+59: the 1m window (60 seconds) still holds a. */
    live_tick(l, (a + 60) * 1000);
    read_win(h, 0, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 3);
    /* Closed through a+60: a is 61 seconds back at the window's end. */
    live_tick(l, (a + 61) * 1000);
    read_win(h, 0, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 0);
    ck_assert_uint_eq(items[0].win.a.lat_n, 0);
    ck_assert_double_eq(items[0].win.a.lat_sum_ms, 0.0);
    ck_assert_double_eq(items[0].win.p50, 0.0);
    read_win(h, 1, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 3);
    ck_assert_within_1pct("5m p50", items[0].win.p50, 100.0);
    ck_assert_uint_eq(items[0].tot.requests, 3);
    /* New events join while the old ones slide out of 5m. */
    struct live_event e = mk("ws1", "p", "m", (a + 200) * 1000, 400, -1);
    ck_assert_int_eq(live_add(l, &e), 0);
    live_tick(l, (a + 301) * 1000);
    read_win(h, 0, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 0);
    read_win(h, 1, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 1);
    ck_assert_within_1pct("5m p50 after slide", items[0].win.p50, 400.0);
    read_win(h, 2, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 4);
    /* After an hour, only the totals remember. */
    live_tick(l, (a + 3601) * 1000);
    read_win(h, 3, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].win.a.requests, 1);
    live_tick(l, (a + 200 + 3601) * 1000);
    for (int w = 0; w < SHM_WINDOWS; w++) {
        read_win(h, w, "ws1", items, NULL);
        ck_assert_uint_eq(items[0].win.a.requests, 0);
        ck_assert_int_eq(items[0].win.a.cost_nusd, 0);
    }
    ck_assert_uint_eq(items[0].tot.requests, 4);
    ck_assert_int_eq(items[0].tot.cost_nusd, 4000);
    close_live(l, name);
}
END_TEST

/* Totals accumulate every event ever added, across hours. */
START_TEST(test_totals_accumulate)
{
    char name[64];
    struct live *l = open_live(5, 1, name, sizeof(name));
    uint64_t n = 0;
    for (int64_t s = 0; s < 2 * 3600; s += 97) {
        for (int i = 0; i < 3; i++, n++) {
            struct live_event e =
                mk("ws1", "p", "m", (S0 + s) * 1000 + i, 10 + i, -1);
            ck_assert_int_eq(live_add(l, &e), 0);
        }
    }
    live_tick(l, (S0 + 2 * 3600 + 1) * 1000);
    struct shm_item items[CAP];
    int cnt = read_win(live_header(l), 3, "ws1", items, NULL);
    for (int i = 0; i < cnt; i++) {
        if (strcmp(items[i].dim.provider, SHM_OTHER) == 0)
            continue;
        ck_assert_uint_eq(items[i].tot.requests, n);
        ck_assert_uint_eq(items[i].tot.tokens[SHM_TOK_OUTPUT], 5 * n);
        ck_assert_uint_lt(items[i].win.a.requests, n);
    }
    close_live(l, name);
}
END_TEST

/* A sum over the dims of one kind under a workspace. */
static uint64_t sum_kind(const struct shm_item *items, int n, int kind,
                         int totals)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        if (items[i].dim.kind == kind)
            s += totals ? items[i].tot.requests : items[i].win.a.requests;
    return s;
}

/* Once a workspace holds half the slots (its quota), its new providers
 * and models go to its "other" dims and nothing is lost from the sums. */
START_TEST(test_overflow_to_other)
{
    char name[64];
    struct live *l = open_live(6, 1, name, sizeof(name));
    enum { PROVIDERS = 12, PER = 3 };
    for (int p = 0; p < PROVIDERS; p++)
        for (int i = 0; i < PER; i++) {
            char prov[24], model[24];
            snprintf(prov, sizeof(prov), "prov%d", p);
            snprintf(model, sizeof(model), "model%d", p);
            struct live_event e =
                mk("ws1", prov, model, T0 + 100 + p * 10 + i, 100, -1);
            ck_assert_int_eq(live_add(l, &e), 0);
        }
    live_tick(l, T0 + 1000);
    const struct shm_header *h = live_header(l);
    ck_assert_uint_eq(atomic_load(&h->ndims), P.nslots / 2);
    ck_assert_uint_eq(atomic_load(&h->health.live_dropped), 0);
    struct shm_item items[CAP];
    int n = read_win(h, 0, "ws1", items, NULL);
    ck_assert_int_eq(n, (int)P.nslots / 2);
    uint64_t all = PROVIDERS * PER;
    ck_assert_uint_eq(items[0].win.a.requests, all);
    ck_assert_uint_eq(items[0].tot.requests, all);
    ck_assert_uint_eq(sum_kind(items, n, SHM_DIM_PROVIDER, 0), all);
    ck_assert_uint_eq(sum_kind(items, n, SHM_DIM_MODEL, 0), all);
    ck_assert_uint_eq(sum_kind(items, n, SHM_DIM_PROVIDER, 1), all);
    ck_assert_uint_eq(sum_kind(items, n, SHM_DIM_MODEL, 1), all);
    /* 5 slots of the quota of 8 after ws + 2 "other": providers 0..1 got a
     * provider and a model slot, provider 2 only a provider slot. */
    const struct shm_item *op =
        find_item(items, n, SHM_DIM_PROVIDER, "ws1", SHM_OTHER, "");
    const struct shm_item *om =
        find_item(items, n, SHM_DIM_MODEL, "ws1", SHM_OTHER, SHM_OTHER);
    ck_assert_ptr_nonnull(op);
    ck_assert_ptr_nonnull(om);
    ck_assert_uint_eq(op->win.a.requests, (PROVIDERS - 3) * PER);
    ck_assert_uint_eq(om->win.a.requests, (PROVIDERS - 2) * PER);
    ck_assert_ptr_nonnull(
        find_item(items, n, SHM_DIM_PROVIDER, "ws1", "prov2", ""));
    ck_assert_ptr_null(
        find_item(items, n, SHM_DIM_MODEL, "ws1", "prov2", "model2"));
    close_live(l, name);
}
END_TEST

/* A workspace that finds no slot at all is dropped and counted, and the
 * other workspaces' numbers are untouched. */
START_TEST(test_no_slot_for_workspace)
{
    char name[64];
    struct live *l = open_live(7, 1, name, sizeof(name));
    /* Workspaces 0 and 1 take 5 of the 16 slots each (itself, its two
     * "other" dims, one provider, one model); provider and model dims leave
     * 6 slots for new workspaces, so 2 and 3 still get their own 3 (their
     * provider and model go to "other"), and 4 finds none. */
    char ws[5][16];
    for (int w = 0; w < 5; w++) {
        snprintf(ws[w], sizeof(ws[w]), "ws%d", w);
        struct live_event e = mk(ws[w], "p", "m", T0 + 10 + w, 100, -1);
        int rc = live_add(l, &e);
        ck_assert_int_eq(rc, w < 4 ? 0 : -1);
    }
    live_tick(l, T0 + 1000);
    const struct shm_header *h = live_header(l);
    ck_assert_uint_eq(atomic_load(&h->health.live_dropped), 1);
    struct shm_item items[CAP];
    int n = read_win(h, 0, "ws4", items, NULL);
    ck_assert_int_eq(n, 0);
    n = read_win(h, 0, "ws3", items, NULL);
    ck_assert_int_eq(n, 3);
    ck_assert_uint_eq(items[0].win.a.requests, 1);
    ck_assert_ptr_nonnull(
        find_item(items, n, SHM_DIM_MODEL, "ws3", SHM_OTHER, SHM_OTHER));
    n = read_win(h, 0, "ws0", items, NULL);
    ck_assert_int_ge(n, 1);
    ck_assert_uint_eq(items[0].win.a.requests, 1);
    ck_assert_uint_eq(items[0].tot.requests, 1);
    close_live(l, name);
}
END_TEST

/* Two workspaces keep separate numbers; NULL reads every dim. */
START_TEST(test_two_workspaces)
{
    char name[64];
    struct live *l = open_live(8, 1, name, sizeof(name));
    for (int i = 0; i < 7; i++) {
        struct live_event e = mk("alpha", "openai", "gpt-4o", T0 + i, 100, -1);
        ck_assert_int_eq(live_add(l, &e), 0);
    }
    for (int i = 0; i < 3; i++) {
        struct live_event e =
            mk("beta", "openai", "gpt-4o", T0 + 100 + i, 900, -1);
        e.is_error = 1;
        ck_assert_int_eq(live_add(l, &e), 0);
    }
    live_tick(l, T0 + 1000);
    const struct shm_header *h = live_header(l);
    struct shm_item items[CAP];
    int n = read_win(h, 0, "alpha", items, NULL);
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(items[i].dim.workspace, "alpha");
    ck_assert_uint_eq(items[0].win.a.requests, 7);
    ck_assert_uint_eq(items[0].win.a.errors, 0);
    ck_assert_within_1pct("alpha p50", items[0].win.p50, 100.0);
    n = read_win(h, 0, "beta", items, NULL);
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(items[i].dim.workspace, "beta");
    ck_assert_uint_eq(items[0].win.a.requests, 3);
    ck_assert_uint_eq(items[0].win.a.errors, 3);
    ck_assert_within_1pct("beta p50", items[0].win.p50, 900.0);
    n = read_win(h, 0, NULL, items, NULL);
    ck_assert_int_eq(n, 10);
    n = read_win(h, 0, "gamma", items, NULL);
    ck_assert_int_eq(n, 0);
    /* A capacity smaller than the dims is respected. */
    int64_t as_of;
    ck_assert_int_eq(shm_read_window(h, 0, NULL, items, 3, &as_of), 3);
    ck_assert_int_eq(shm_read_window(h, SHM_WINDOWS, NULL, items, 3, &as_of),
                     -1);
    ck_assert_int_eq(shm_read_window(NULL, 0, NULL, items, 3, &as_of), -1);
    close_live(l, name);
}
END_TEST

/* The feed returns the newest entries first, filtered by workspace, at
 * most feed_size of them, with their fields. */
START_TEST(test_feed)
{
    char name[64];
    struct live *l = open_live(9, 1, name, sizeof(name));
    const struct shm_header *h = live_header(l);
    struct shm_feed_ent out[32];
    ck_assert_int_eq(shm_read_feed(h, NULL, out, 32), 0);
    for (int i = 0; i < 15; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ev%02d", i);
        struct live_event e = mk(i % 3 == 0 ? "ws1" : "ws2", "openai", "gpt-4o",
                                 T0 + i, 10.0 * i, -1);
        e.id = id;
        e.user = "alice";
        e.error_type = i == 14 ? "timeout" : NULL;
        e.cost_nusd = 2500000000LL; /* 2.5 USD */
        e.round = i;
        live_feed(l, &e);
    }
    int n = shm_read_feed(h, NULL, out, 32);
    ck_assert_int_eq(n, (int)P.feed_size);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "ev%02d", 14 - i);
        ck_assert_str_eq(out[i].id, want);
    }
    ck_assert_str_eq(out[0].error_type, "timeout");
    ck_assert_str_eq(out[1].error_type, "");
    ck_assert_str_eq(out[0].user, "alice");
    ck_assert_str_eq(out[0].agent, "");
    ck_assert_int_eq(out[0].received_ms, T0 + 14);
    ck_assert_int_eq(out[0].ts_ms, T0 + 14 - 50);
    ck_assert_int_eq(out[0].round, 14);
    ck_assert_int_eq(out[0].tokens[SHM_TOK_INPUT], 10);
    ck_assert_double_eq_tol(out[0].cost_usd, 2.5, 1e-12);
    ck_assert_double_eq_tol(out[0].latency_ms, 140.0, 1e-12);
    ck_assert_double_eq(out[0].ttft_ms, -1.0);
    /* ws1 had events 0, 3, 6, 9, 12; only 6, 9, 12 are still in the feed. */
    n = shm_read_feed(h, "ws1", out, 32);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(out[0].id, "ev12");
    ck_assert_str_eq(out[1].id, "ev09");
    ck_assert_str_eq(out[2].id, "ev06");
    ck_assert_int_eq(shm_read_feed(h, NULL, out, 4), 4);
    ck_assert_str_eq(out[3].id, "ev11");
    ck_assert_int_eq(shm_read_feed(h, "nobody", out, 32), 0);
    close_live(l, name);
}
END_TEST

/* Long strings are cut to their fields, NUL-terminated. */
START_TEST(test_feed_truncates)
{
    char name[64];
    struct live *l = open_live(10, 1, name, sizeof(name));
    char longid[200];
    memset(longid, 'i', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    struct live_event e = mk("ws1", "openai", "gpt-4o", T0, 10, -1);
    e.id = longid;
    e.model = longid;
    live_feed(l, &e);
    struct shm_feed_ent out[1];
    ck_assert_int_eq(shm_read_feed(live_header(l), NULL, out, 1), 1);
    ck_assert_uint_eq(strlen(out[0].id), sizeof(out[0].id) - 1);
    ck_assert_uint_eq(strlen(out[0].model), sizeof(out[0].model) - 1);
    close_live(l, name);
}
END_TEST

/* The event ring keeps the last ring_size entries with their sequence. */
START_TEST(test_ring)
{
    char name[64];
    struct live *l = open_live(11, 1, name, sizeof(name));
    const struct shm_header *h = live_header(l);
    for (int i = 0; i < 12; i++) {
        char json[64];
        int len = snprintf(json, sizeof(json), "{\"n\":%d}", i);
        live_ring_publish(l, SHM_RING_ALERT + (uint32_t)(i % 3),
                          i % 2 ? "ws1" : "ws2", json, (size_t)len, T0 + i);
    }
    uint64_t head = atomic_load(&h->ring_head);
    ck_assert_uint_eq(head, 12);
    for (uint64_t i = head - P.ring_size; i < head; i++) {
        const struct shm_ring_ent *r = shm_ring(h, i);
        char want[64];
        snprintf(want, sizeof(want), "{\"n\":%d}", (int)i);
        ck_assert_uint_eq(atomic_load(&((struct shm_ring_ent *)r)->seq), i + 1);
        ck_assert_str_eq(r->json, want);
        ck_assert_uint_eq(r->len, strlen(want));
        ck_assert_uint_eq(r->type, SHM_RING_ALERT + i % 3);
        ck_assert_str_eq(r->workspace, i % 2 ? "ws1" : "ws2");
        ck_assert_int_eq(r->ts_ms, T0 + (int64_t)i);
    }
    /* A JSON text longer than the entry is cut, NUL-terminated. */
    static char big[2000];
    memset(big, 'x', sizeof(big));
    live_ring_publish(l, SHM_RING_NOTIFY, "ws1", big, sizeof(big), T0);
    const struct shm_ring_ent *r = shm_ring(h, 12);
    ck_assert_uint_eq(r->len, sizeof(r->json) - 1);
    ck_assert_uint_eq(strlen(r->json), sizeof(r->json) - 1);
    close_live(l, name);
}
END_TEST

/* Blobs captured by the close callback (copied: the buffer is reused). */
struct blobs {
    int n;
    int64_t sec[4096];
    void *data[4096];
    size_t len[4096];
};

/* The on_close callback: keep a copy of the blob. */
static void keep_blob(void *ctx, int64_t sec, const void *blob, size_t len)
{
    struct blobs *b = ctx;
    ck_assert_int_lt(b->n, 4096);
    b->sec[b->n] = sec;
    b->data[b->n] = malloc(len);
    ck_assert_ptr_nonnull(b->data[b->n]);
    memcpy(b->data[b->n], blob, len);
    b->len[b->n] = len;
    b->n++;
}

/* Saved totals (a live_dirty_totals visitor collects them). */
struct totals {
    int n;
    struct shm_dim dim[64];
    struct shm_agg agg[64];
};

/* Collect one dim's totals. */
static void keep_total(void *ctx, const struct shm_dim *d,
                       const struct shm_agg *a)
{
    struct totals *t = ctx;
    ck_assert_int_lt(t->n, 64);
    t->dim[t->n] = *d;
    t->agg[t->n] = *a;
    t->n++;
}

/* Assert two aggregates are equal (doubles to a rounding tolerance). */
static void agg_eq(const char *what, const struct shm_agg *x,
                   const struct shm_agg *y)
{
    ck_assert_msg(x->requests == y->requests && x->errors == y->errors &&
                      x->cost_nusd == y->cost_nusd && x->lat_n == y->lat_n &&
                      x->ttft_n == y->ttft_n &&
                      memcmp(x->tokens, y->tokens, sizeof(x->tokens)) == 0,
                  "%s: requests %llu vs %llu, errors %llu vs %llu, cost "
                  "%lld vs %lld, lat_n %llu vs %llu",
                  what, (unsigned long long)x->requests,
                  (unsigned long long)y->requests,
                  (unsigned long long)x->errors, (unsigned long long)y->errors,
                  (long long)x->cost_nusd, (long long)y->cost_nusd,
                  (unsigned long long)x->lat_n, (unsigned long long)y->lat_n);
    ck_assert_double_eq_tol(x->lat_sum_ms, y->lat_sum_ms,
                            1e-9 * (1 + fabs(y->lat_sum_ms)));
    ck_assert_double_eq_tol(x->ttft_sum_ms, y->ttft_sum_ms,
                            1e-9 * (1 + fabs(y->ttft_sum_ms)));
}

/* Add a varied stream of events over secs seconds starting at S0 + 1. */
static void add_stream(struct live *l, int secs)
{
    static const char *const wss[] = {"alpha", "beta"};
    static const char *const provs[] = {"openai", "anthropic", "mistral_ai"};
    static const char *const models[] = {"m-small", "m-large"};
    rng_state = 99;
    for (int s = 0; s < secs; s++) {
        int per = 1 + s % 6;
        for (int i = 0; i < per; i++) {
            double lat = rng_latency();
            struct live_event e =
                mk(wss[(s + i) % 2], provs[(s * 7 + i) % 3], models[i % 2],
                   (S0 + 1 + s) * 1000 + i * 100, i % 4 == 3 ? -1 : lat,
                   i % 2 ? lat / 3 : -1);
            e.is_error = (s + i) % 11 == 0;
            e.cost_nusd = 1000 * s + i;
            e.tokens[SHM_TOK_INPUT] = s + i;
            ck_assert_int_eq(live_add(l, &e), 0);
        }
    }
}

/* Replaying the blobs of closed seconds (and the saved totals) into a
 * fresh aggregator under the same name reproduces every window: the
 * collector's restart path. */
START_TEST(test_restart_inject)
{
    char name[64];
    struct live *a = open_live(12, 1, name, sizeof(name));
    struct blobs *b = calloc(1, sizeof(*b));
    struct totals *t = calloc(1, sizeof(*t));
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(t);
    live_on_close(a, keep_blob, b);
    enum { SECS = 400 };
    add_stream(a, SECS);
    int64_t end = (S0 + 1 + SECS + 30) * 1000;
    live_tick(a, end);
    live_dirty_totals(a, keep_total, t);
    ck_assert_int_gt(b->n, 0);
    ck_assert_int_le(b->n, SECS);
    for (int i = 1; i < b->n; i++)
        ck_assert_int_gt(b->sec[i], b->sec[i - 1]);

    static struct shm_item before[SHM_WINDOWS][2][CAP];
    int nb[SHM_WINDOWS][2];
    static const char *const wss[] = {"alpha", "beta"};
    for (int w = 0; w < SHM_WINDOWS; w++)
        for (int k = 0; k < 2; k++)
            nb[w][k] = read_win(live_header(a), w, wss[k], before[w][k], NULL);

    /* The restart: a new segment under the same name, a new generation. */
    struct live *r = live_open(name, &P, 2, T0);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < t->n; i++)
        ck_assert_int_eq(live_set_total(r, t->dim[i].kind, t->dim[i].workspace,
                                        t->dim[i].provider, t->dim[i].model,
                                        &t->agg[i]),
                         0);
    for (int i = 0; i < b->n; i++)
        ck_assert_int_eq(live_inject(r, b->sec[i], b->data[i], b->len[i]), 0);
    live_tick(r, end);
    ck_assert_uint_eq(live_header(r)->generation, 2);

    for (int w = 0; w < SHM_WINDOWS; w++)
        for (int k = 0; k < 2; k++) {
            struct shm_item after[CAP];
            int64_t as_of;
            int na = read_win(live_header(r), w, wss[k], after, &as_of);
            ck_assert_int_eq(as_of, end / 1000 - 1);
            ck_assert_int_eq(na, nb[w][k]);
            for (int i = 0; i < nb[w][k]; i++) {
                const struct shm_item *x = &before[w][k][i];
                const struct shm_item *y =
                    find_item(after, na, x->dim.kind, x->dim.workspace,
                              x->dim.provider, x->dim.model);
                char what[320];
                snprintf(what, sizeof(what), "window %d %s/%s/%s", w,
                         x->dim.workspace, x->dim.provider, x->dim.model);
                ck_assert_msg(y != NULL, "%s missing after restart", what);
                agg_eq(what, &y->win.a, &x->win.a);
                agg_eq(what, &y->tot, &x->tot);
                ck_assert_float_eq(y->win.p50, x->win.p50);
                ck_assert_float_eq(y->win.p95, x->win.p95);
                ck_assert_float_eq(y->win.p99, x->win.p99);
                ck_assert_float_eq(y->win.ttft_p95, x->win.ttft_p95);
            }
        }
    /* The 5m window really slid: it holds fewer events than the hour. */
    ck_assert_uint_lt(before[1][0][0].win.a.requests,
                      before[3][0][0].win.a.requests);
    ck_assert_uint_gt(before[1][0][0].win.a.requests, 0);
    for (int i = 0; i < b->n; i++)
        free(b->data[i]);
    free(b);
    free(t);
    live_close(a);
    close_live(r, name);
}
END_TEST

/* A blob that is short or damaged is refused, not read past its end. */
START_TEST(test_inject_damaged)
{
    char name[64];
    struct live *a = open_live(13, 1, name, sizeof(name));
    struct blobs *b = calloc(1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    live_on_close(a, keep_blob, b);
    struct live_event e = mk("ws1", "openai", "gpt-4o", T0 + 1000, 100, 30);
    ck_assert_int_eq(live_add(a, &e), 0);
    live_tick(a, T0 + 2000);
    ck_assert_int_eq(b->n, 1);
    ck_assert_int_eq(b->sec[0], S0 + 1);
    ck_assert_int_eq(live_inject(a, S0 + 2, b->data[0], 3), -1);
    for (size_t cut = 4; cut < b->len[0]; cut += 7) {
        /* A copy of exactly cut bytes, so ASan sees any overread. */
        void *p = malloc(cut);
        ck_assert_ptr_nonnull(p);
        memcpy(p, b->data[0], cut);
        ck_assert_msg(live_inject(a, S0 + 2, p, cut) == -1,
                      "blob cut to %zu of %zu bytes accepted", cut, b->len[0]);
        free(p);
    }
    free(b->data[0]);
    free(b);
    close_live(a, name);
}
END_TEST

/* A damaged blob is refused whole: nothing of it reaches the windows
 * (rebuild logs it as skipped). */
START_TEST(test_inject_damaged_changes_nothing)
{
    char name[64], name2[64];
    struct live *a = open_live(24, 1, name, sizeof(name));
    struct blobs *b = calloc(1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    live_on_close(a, keep_blob, b);
    struct live_event e = mk("ws1", "openai", "gpt-4o", T0 + 1000, 100, 30);
    ck_assert_int_eq(live_add(a, &e), 0);
    live_tick(a, T0 + 2000);
    ck_assert_int_eq(b->n, 1);
    struct live *r = open_live(25, 2, name2, sizeof(name2));
    /* Every cut after the first dim's record, before the blob's end. */
    for (size_t cut = b->len[0] / 3; cut < b->len[0]; cut++)
        ck_assert_int_eq(live_inject(r, S0 + 1, b->data[0], cut), -1);
    live_tick(r, T0 + 2000);
    struct shm_item items[CAP];
    int n = read_win(live_header(r), 0, NULL, items, NULL);
    for (int i = 0; i < n; i++)
        ck_assert_msg(items[i].win.a.requests == 0,
                      "refused blobs left %llu requests in %s/%s/%s",
                      (unsigned long long)items[i].win.a.requests,
                      items[i].dim.workspace, items[i].dim.provider,
                      items[i].dim.model);
    free(b->data[0]);
    free(b);
    close_live(a, name);
    close_live(r, name2);
}
END_TEST

/* More histogram entries than a second holds are dropped and counted;
 * the counters stay exact. */
START_TEST(test_hist_entries_dropped)
{
    char name[64];
    struct live *l = open_live(14, 1, name, sizeof(name));
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        /* Each event in its own latency bucket. */
        double lat = 10.0 * pow(HIST_GAMMA, i);
        struct live_event e = mk("ws1", "p", "m", T0 + i, lat, -1);
        ck_assert_int_eq(live_add(l, &e), 0);
    }
    live_tick(l, T0 + 1000);
    const struct shm_header *h = live_header(l);
    /* 3 dims x 300 buckets = 900 entries, 256 kept. */
    ck_assert_uint_eq(atomic_load(&h->health.hist_dropped), 3 * N - 256);
    struct shm_item items[CAP];
    int n = read_win(h, 0, "ws1", items, NULL);
    ck_assert_int_ge(n, 1);
    ck_assert_uint_eq(items[0].win.a.requests, N);
    ck_assert_uint_eq(items[0].win.a.lat_n, N);
    close_live(l, name);
}
END_TEST

/* A clock jump longer than the ring empties the windows without wrapping
 * them below zero. */
START_TEST(test_clock_jump)
{
    static const int64_t jumps[] = {3599, 3600, 3601, 3602, 10000};
    for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
        char name[64];
        struct live *l = open_live(15 + (int)j, 1, name, sizeof(name));
        int64_t s = S0 + 5;
        for (int i = 0; i < 4; i++) {
            struct live_event e = mk("ws1", "p", "m", s * 1000 + i, 100, -1);
            ck_assert_int_eq(live_add(l, &e), 0);
        }
        live_tick(l, (s + jumps[j]) * 1000);
        struct shm_item items[CAP];
        for (int w = 0; w < SHM_WINDOWS; w++) {
            int n = read_win(live_header(l), w, "ws1", items, NULL);
            ck_assert_int_ge(n, 1);
            uint64_t want = w == 3 && jumps[j] <= 3600 ? 4 : 0;
            ck_assert_msg(items[0].win.a.requests == want,
                          "jump %lld s: %s window has %llu requests, want "
                          "%llu",
                          (long long)jumps[j], shm_window_names[w],
                          (unsigned long long)items[0].win.a.requests,
                          (unsigned long long)want);
            ck_assert_uint_eq(items[0].tot.requests, 4);
        }
        close_live(l, name);
    }
}
END_TEST

/* A clock stepping back more than a second restarts the windows from
 * the new now (they would otherwise freeze until it caught up); totals
 * keep everything and events count again at once. */
START_TEST(test_clock_backwards)
{
    char name[64];
    struct live *l = open_live(20, 1, name, sizeof(name));
    struct live_event e0 = mk("ws1", "p", "m", T0 + 9000, 100, -1);
    ck_assert_int_eq(live_add(l, &e0), 0);
    live_tick(l, T0 + 10000);
    ck_assert_int_eq(live_open_sec(l), S0 + 10);
    live_tick(l, T0 + 5000);
    ck_assert_int_eq(live_open_sec(l), S0 + 5);
    struct live_event e = mk("ws1", "p", "m", T0 + 5500, 100, -1);
    ck_assert_int_eq(live_add(l, &e), 0);
    live_tick(l, T0 + 6000);
    struct shm_item items[CAP];
    int64_t as_of;
    read_win(live_header(l), 0, "ws1", items, &as_of);
    ck_assert_int_eq(as_of, S0 + 5);
    ck_assert_uint_eq(items[0].win.a.requests, 1);
    ck_assert_uint_eq(items[0].tot.requests, 2);
    /* A step back of under a second closes nothing. */
    live_tick(l, T0 + 5600);
    ck_assert_int_eq(live_open_sec(l), S0 + 6);
    close_live(l, name);
}
END_TEST

/* The reader notices a new segment under the same name (a collector
 * restart) only once its check interval has passed, and keeps the old
 * mapping while the name is missing. */
START_TEST(test_reader_new_generation)
{
    char name[64];
    struct live *a = open_live(21, 111, name, sizeof(name));
    struct shm_reader r;
    shm_reader_init(&r, name);
    ck_assert_ptr_nonnull(r.h);
    ck_assert_uint_eq(r.h->generation, 111);
    ck_assert_int_eq(shm_reader_check(&r, 1000, 500), 0);
    ck_assert_uint_eq(r.h->generation, 111);

    live_close(a);
    struct live *b = live_open(name, &P, 222, T0);
    live_publish(b);
    ck_assert_ptr_nonnull(b);
    /* Within the interval: not checked yet. */
    ck_assert_int_eq(shm_reader_check(&r, 1200, 500), 0);
    ck_assert_uint_eq(r.h->generation, 111);
    /* After it: remapped to the new segment. */
    ck_assert_int_eq(shm_reader_check(&r, 1600, 500), 0);
    ck_assert_uint_eq(r.h->generation, 222);
    ck_assert_uint_eq(r.h->magic, SHM_MAGIC);

    /* The name disappears: the old mapping stays, stale but readable. */
    live_close(b);
    shm_unlink(name);
    ck_assert_int_eq(shm_reader_check(&r, 5000, 0), 0);
    ck_assert_ptr_nonnull(r.h);
    ck_assert_uint_eq(r.h->generation, 222);
    shm_reader_close(&r);

    /* A reader of a name that does not exist maps nothing. */
    shm_reader_init(&r, name);
    ck_assert_ptr_null(r.h);
    ck_assert_int_eq(shm_reader_check(&r, 6000, 0), -ENOENT);
}
END_TEST

/* A segment with a foreign header is refused by readers. */
START_TEST(test_reader_bad_magic)
{
    char name[64];
    seg_name(name, sizeof(name), 22);
    struct shm_header *h = shm_create(name, &P, 5);
    ck_assert_ptr_nonnull(h);
    h->magic = 0xdeadbeef;
    struct shm_reader r;
    shm_reader_init(&r, name);
    ck_assert_ptr_null(r.h);
    ck_assert_int_eq(shm_reader_check(&r, 0, 0), -EPROTO);
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION + 1;
    ck_assert_int_eq(shm_reader_check(&r, 0, 0), -EPROTO);
    h->version = SHM_VERSION;
    ck_assert_int_eq(shm_reader_check(&r, 0, 0), 0);
    ck_assert_ptr_nonnull(r.h);
    shm_reader_close(&r);
    shm_destroy(h);
    shm_unlink(name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Concurrency: a reader thread checks every snapshot it sees. */

/* What the reader thread shares with the writer. */
struct race {
    char name[64];
    atomic_int done;
    long snapshots; /* snapshots checked */
    long nonempty;  /* ... that had requests */
    char bad[512];  /* the first inconsistency, "" if none */
};

/* Check one snapshot of ws1's dims; returns 0 or describes the problem. */
static int check_snapshot(const struct shm_item *it, int n, int w, char *bad,
                          size_t badlen)
{
    if (n == 0)
        return 0;
    if (it[0].dim.kind != SHM_DIM_WORKSPACE) {
        snprintf(bad, badlen, "window %d: first dim has kind %d", w,
                 it[0].dim.kind);
        return -1;
    }
    for (int kind = SHM_DIM_PROVIDER; kind <= SHM_DIM_MODEL; kind++) {
        struct shm_agg ws = {0}, tot = {0};
        for (int i = 1; i < n; i++) {
            if (it[i].dim.kind < SHM_DIM_WORKSPACE ||
                it[i].dim.kind > SHM_DIM_MODEL || it[i].dim.ws != 0 ||
                strcmp(it[i].dim.workspace, "ws1") != 0) {
                snprintf(bad, badlen, "window %d: torn dim %d (kind %d)", w, i,
                         it[i].dim.kind);
                return -1;
            }
            if (it[i].dim.kind != kind)
                continue;
            live_agg_add(&ws, &it[i].win.a);
            live_agg_add(&tot, &it[i].tot);
        }
        const struct shm_agg *a = &it[0].win.a, *t = &it[0].tot;
        if (ws.requests != a->requests || ws.errors != a->errors ||
            ws.cost_nusd != a->cost_nusd || ws.lat_n != a->lat_n ||
            ws.tokens[SHM_TOK_INPUT] != a->tokens[SHM_TOK_INPUT] ||
            tot.requests != t->requests || tot.cost_nusd != t->cost_nusd ||
            a->requests > t->requests || a->errors > a->requests) {
            snprintf(bad, badlen,
                     "window %d kind %d: workspace %llu/%llu requests "
                     "(window/total) but dims sum to %llu/%llu",
                     w, kind, (unsigned long long)a->requests,
                     (unsigned long long)t->requests,
                     (unsigned long long)ws.requests,
                     (unsigned long long)tot.requests);
            return -1;
        }
    }
    return 0;
}

/* The reader thread: map the segment by name and check snapshots until
 * the writer is done. */
static void *race_reader(void *arg)
{
    struct race *rc = arg;
    struct shm_reader r;
    shm_reader_init(&r, rc->name);
    if (r.h == NULL) {
        snprintf(rc->bad, sizeof(rc->bad), "reader could not map %s", rc->name);
        return NULL;
    }
    static struct shm_item items[CAP];
    int64_t last_as_of[SHM_WINDOWS] = {0};
    for (;;) {
        int finished = atomic_load(&rc->done);
        if (shm_reader_check(&r, 0, 1000000) != 0) {
            snprintf(rc->bad, sizeof(rc->bad), "reader lost the segment");
            break;
        }
        for (int w = 0; w < SHM_WINDOWS; w++) {
            int64_t as_of;
            int n = shm_read_window(r.h, w, "ws1", items, CAP, &as_of);
            if (n < 0) {
                snprintf(rc->bad, sizeof(rc->bad), "read_window gave %d", n);
                goto out;
            }
            if (as_of < last_as_of[w]) {
                snprintf(rc->bad, sizeof(rc->bad),
                         "as_of went back from %lld to %lld",
                         (long long)last_as_of[w], (long long)as_of);
                goto out;
            }
            last_as_of[w] = as_of;
            if (check_snapshot(items, n, w, rc->bad, sizeof(rc->bad)) != 0)
                goto out;
            rc->snapshots++;
            if (n > 0 && items[0].win.a.requests > 0)
                rc->nonempty++;
        }
        if (finished)
            break;
    }
out:
    shm_reader_close(&r);
    return NULL;
}

/* While the writer adds events and closes seconds, every snapshot a
 * reader takes is internally consistent: the workspace equals the sum of
 * its provider dims and of its model dims, never a torn mix. */
START_TEST(test_concurrent_reader)
{
    static struct race rc;
    memset(&rc, 0, sizeof(rc));
    struct live *l = open_live(23, 1, rc.name, sizeof(rc.name));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, race_reader, &rc), 0);
    static const char *const provs[] = {"openai", "anthropic", "gcp.gemini"};
    static const char *const models[] = {"small", "large"};
    rng_state = 5;
    uint64_t added = 0;
    enum { SECS = 900 };
    for (int s = 0; s < SECS; s++) {
        int per = 1 + s % 9;
        for (int i = 0; i < per; i++, added++) {
            struct live_event e =
                mk("ws1", provs[(s + i) % 3], models[(s * 5 + i) % 2],
                   (S0 + 1 + s) * 1000 + i, rng_latency(), -1);
            e.is_error = (s + i) % 13 == 0;
            e.cost_nusd = 17 * i + s;
            ck_assert_int_eq(live_add(l, &e), 0);
        }
        live_tick(l, (S0 + 1 + s) * 1000 + 999);
    }
    live_tick(l, (S0 + 2 + SECS) * 1000);
    atomic_store(&rc.done, 1);
    pthread_join(th, NULL);
    ck_assert_msg(rc.bad[0] == '\0', "inconsistent snapshot: %s", rc.bad);
    ck_assert_int_gt(rc.snapshots, 0);
    ck_assert_int_gt(rc.nonempty, 0);
    struct shm_item items[CAP];
    read_win(live_header(l), 3, "ws1", items, NULL);
    ck_assert_uint_eq(items[0].tot.requests, added);
    close_live(l, rc.name);
}
END_TEST

/* Build the suite. */
static Suite *shm_suite(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("segment");
    tcase_add_unchecked_fixture(tc, NULL, unlink_all);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_header);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_budget_slots);
    tcase_add_test(tc, test_reader_new_generation);
    tcase_add_test(tc, test_reader_bad_magic);
    suite_add_tcase(s, tc);

    tc = tcase_create("live");
    tcase_add_unchecked_fixture(tc, NULL, unlink_all);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dims_order);
    tcase_add_test(tc, test_window_one_second);
    tcase_add_test(tc, test_window_many_seconds);
    tcase_add_test(tc, test_windows_slide);
    tcase_add_test(tc, test_totals_accumulate);
    tcase_add_test(tc, test_overflow_to_other);
    tcase_add_test(tc, test_no_slot_for_workspace);
    tcase_add_test(tc, test_two_workspaces);
    tcase_add_test(tc, test_feed);
    tcase_add_test(tc, test_feed_truncates);
    tcase_add_test(tc, test_ring);
    tcase_add_test(tc, test_restart_inject);
    tcase_add_test(tc, test_inject_damaged);
    tcase_add_test(tc, test_inject_damaged_changes_nothing);
    tcase_add_test(tc, test_hist_entries_dropped);
    tcase_add_test(tc, test_clock_jump);
    tcase_add_test(tc, test_clock_backwards);
    tcase_add_test(tc, test_concurrent_reader);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    runner_pid = getpid();
    SRunner *sr = srunner_create(shm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unlink_all();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
