/*
 * live.c: the collector's live aggregator (see live.h).
 *
 * Private state mirrors what readers see: the open second's counters and
 * dense histograms, the four sliding windows (counters plus dense
 * histograms, maintained by adding each closed second and subtracting the
 * one that left), and the all-time totals.  Closing a second touches only
 * the dims that had events in it or in the seconds leaving the windows, so
 * its cost follows the traffic's variety, not the window length.
 */
#include "live.h"
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_HIST       (2 * HIST_BUCKETS) /* latency then TTFT, per dim */
#define LIVE_WS_RESERVE 6 /* slots kept for two more workspaces */

/* One entry of the dim lookup table. */
struct live_slot {
    uint64_t hash;
    int32_t dim; /* -1: empty */
};

struct live {
    struct shm_header *h;
    uint32_t nslots;
    struct live_slot *tab; /* open addressing, tabmask + 1 entries */
    uint32_t tabmask;
    int32_t *other_prov;  /* per workspace dim: its "other" provider dim */
    int32_t *other_model; /* per workspace dim: its "other" model dim */
    uint32_t *ws_used;    /* per workspace dim: dims it holds */
    int64_t open_sec;
    int64_t floor_sec;   /* seconds before this are in no window */
    struct shm_agg *cur; /* [nslots] open second */
    uint32_t *cur_hist;  /* [nslots][LIVE_HIST] open second */
    uint16_t *touched;   /* dims with events in the open second */
    uint8_t *is_touched;
    uint32_t ntouched;
    struct shm_agg *win[SHM_WINDOWS];       /* [nslots] */
    uint32_t *win_hist[SHM_WINDOWS];        /* [nslots][LIVE_HIST] */
    uint64_t *win_hn[SHM_WINDOWS];          /* [nslots][2] histogram totals */
    uint8_t *win_dirty[SHM_WINDOWS];        /* [nslots] percentiles to redo */
    struct shm_stat *win_stat[SHM_WINDOWS]; /* [nslots] published copy */
    struct shm_agg *tot;                    /* [nslots] */
    uint8_t *tot_dirty;
    live_close_fn on_close;
    void *ctx;
    unsigned char *blob; /* encode buffer for on_close */
    size_t blobcap;
};

/* The hash of a dim key: its kind and strings. */
static uint64_t live_hash(int kind, const char *ws, const char *p,
                          const char *m)
{
    uint64_t x = HASH_SEED ^ (uint64_t)kind;
    return hash_str(hash_str(hash_str(x, ws), p), m);
}

/* Find the dim with this key, or -1. */
static int live_find(struct live *l, uint64_t hash, int kind, const char *ws,
                     const char *p, const char *m)
{
    struct shm_dim *dims = shm_dims(l->h);
    for (uint32_t i = (uint32_t)hash & l->tabmask;; i = (i + 1) & l->tabmask) {
        struct live_slot *s = &l->tab[i];
        if (s->dim < 0)
            return -1;
        if (s->hash != hash)
            continue;
        struct shm_dim *d = &dims[s->dim];
        if (d->kind == kind && strcmp(d->workspace, ws) == 0 &&
            strcmp(d->provider, p) == 0 && strcmp(d->model, m) == 0)
            return s->dim;
    }
}

/* Allocate the next dim with this key and publish it; -1 when full. */
static int live_alloc(struct live *l, uint64_t hash, int kind, int ws_dim,
                      const char *ws, const char *p, const char *m)
{
    uint32_t n = atomic_load_explicit(&l->h->ndims, memory_order_relaxed);
    if (n >= l->nslots)
        return -1;
    struct shm_dim *d = &shm_dims(l->h)[n];
    memset(d, 0, sizeof(*d));
    d->kind = (uint16_t)kind;
    d->ws = (uint16_t)(ws_dim < 0 ? (int)n : ws_dim);
    snprintf(d->workspace, sizeof(d->workspace), "%s", ws);
    snprintf(d->provider, sizeof(d->provider), "%s", p);
    snprintf(d->model, sizeof(d->model), "%s", m);
    uint32_t i = (uint32_t)hash & l->tabmask;
    while (l->tab[i].dim >= 0)
        i = (i + 1) & l->tabmask;
    l->tab[i].hash = hash;
    l->tab[i].dim = (int32_t)n;
    atomic_store_explicit(&l->h->ndims, n + 1, memory_order_release);
    return (int)n;
}

/* The workspace dim of ws, allocating it and its two "other" dims. */
static int live_ws(struct live *l, const char *ws)
{
    uint64_t hash = live_hash(SHM_DIM_WORKSPACE, ws, "", "");
    int d = live_find(l, hash, SHM_DIM_WORKSPACE, ws, "", "");
    if (d >= 0)
        return d;
    uint32_t n = atomic_load_explicit(&l->h->ndims, memory_order_relaxed);
    if (n + 3 > l->nslots)
        return -1;
    d = live_alloc(l, hash, SHM_DIM_WORKSPACE, -1, ws, "", "");
    l->other_prov[d] =
        live_alloc(l, live_hash(SHM_DIM_PROVIDER, ws, SHM_OTHER, ""),
                   SHM_DIM_PROVIDER, d, ws, SHM_OTHER, "");
    l->other_model[d] =
        live_alloc(l, live_hash(SHM_DIM_MODEL, ws, SHM_OTHER, SHM_OTHER),
                   SHM_DIM_MODEL, d, ws, SHM_OTHER, SHM_OTHER);
    l->ws_used[d] = 3;
    return d;
}

/* The dim of kind for (ws, p, m) under workspace dim w, falling back to
 * the workspace's "other" dim when the slots are full. */
static int live_dim(struct live *l, int w, int kind, const char *ws,
                    const char *p, const char *m)
{
    uint64_t hash = live_hash(kind, ws, p, m);
    int d = live_find(l, hash, kind, ws, p, m);
    if (d >= 0)
        return d;
    /* Fairness: one workspace holds at most half the slots, and provider
     * and model dims always leave room for two more workspaces. */
    uint32_t n = atomic_load_explicit(&l->h->ndims, memory_order_relaxed);
    if (l->ws_used[w] < l->nslots / 2 && n + LIVE_WS_RESERVE < l->nslots) {
        d = live_alloc(l, hash, kind, w, ws, p, m);
        if (d >= 0) {
            l->ws_used[w]++;
            return d;
        }
    }
    return kind == SHM_DIM_PROVIDER ? l->other_prov[w] : l->other_model[w];
}

/* Allocate n zeroed elements of size sz, recording failure in *ok. */
static void *live_calloc(size_t n, size_t sz, int *ok)
{
    void *p = calloc(n, sz);
    if (p == NULL)
        *ok = 0;
    return p;
}

struct live *live_open(const char *name, const struct shm_params *p,
                       uint64_t generation, int64_t now_ms)
{
    struct live *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    int ok = 1;
    uint32_t ns = p->nslots;
    l->nslots = ns;
    uint32_t cap = 16;
    while (cap < 4 * ns)
        cap <<= 1;
    l->tabmask = cap - 1;
    l->tab = live_calloc(cap, sizeof(*l->tab), &ok);
    if (l->tab != NULL)
        for (uint32_t i = 0; i < cap; i++)
            l->tab[i].dim = -1;
    l->other_prov = live_calloc(ns, sizeof(int32_t), &ok);
    l->other_model = live_calloc(ns, sizeof(int32_t), &ok);
    l->ws_used = live_calloc(ns, sizeof(uint32_t), &ok);
    l->cur = live_calloc(ns, sizeof(struct shm_agg), &ok);
    l->cur_hist = live_calloc((size_t)ns * LIVE_HIST, sizeof(uint32_t), &ok);
    l->touched = live_calloc(ns, sizeof(uint16_t), &ok);
    l->is_touched = live_calloc(ns, 1, &ok);
    l->tot = live_calloc(ns, sizeof(struct shm_agg), &ok);
    l->tot_dirty = live_calloc(ns, 1, &ok);
    for (int w = 0; w < SHM_WINDOWS; w++) {
        l->win[w] = live_calloc(ns, sizeof(struct shm_agg), &ok);
        l->win_hist[w] =
            live_calloc((size_t)ns * LIVE_HIST, sizeof(uint32_t), &ok);
        l->win_hn[w] = live_calloc((size_t)ns * 2, sizeof(uint64_t), &ok);
        l->win_dirty[w] = live_calloc(ns, 1, &ok);
        l->win_stat[w] = live_calloc(ns, sizeof(struct shm_stat), &ok);
    }
    if (ok)
        l->h = shm_create(name, p, generation);
    if (!ok || l->h == NULL) {
        int e = ok ? errno : ENOMEM;
        live_close(l);
        errno = e;
        return NULL;
    }
    l->h->started_ms = now_ms;
    l->open_sec = now_ms / 1000;
    return l;
}

void live_close(struct live *l)
{
    if (l == NULL)
        return;
    shm_destroy(l->h);
    free(l->tab);
    free(l->other_prov);
    free(l->other_model);
    free(l->ws_used);
    free(l->cur);
    free(l->cur_hist);
    free(l->touched);
    free(l->is_touched);
    free(l->tot);
    free(l->tot_dirty);
    for (int w = 0; w < SHM_WINDOWS; w++) {
        free(l->win[w]);
        free(l->win_hist[w]);
        free(l->win_hn[w]);
        free(l->win_dirty[w]);
        free(l->win_stat[w]);
    }
    free(l->blob);
    free(l);
}

void live_publish(struct live *l)
{
    shm_publish(l->h);
}

struct shm_header *live_header(struct live *l)
{
    return l->h;
}

void live_on_close(struct live *l, live_close_fn fn, void *ctx)
{
    l->on_close = fn;
    l->ctx = ctx;
}

int64_t live_open_sec(const struct live *l)
{
    return l->open_sec;
}

void live_agg_add(struct shm_agg *a, const struct shm_agg *b)
{
    a->requests += b->requests;
    a->errors += b->errors;
    for (int t = 0; t < SHM_TOK_N; t++)
        a->tokens[t] += b->tokens[t];
    a->cost_nusd += b->cost_nusd;
    a->lat_n += b->lat_n;
    a->lat_sum_ms += b->lat_sum_ms;
    a->ttft_n += b->ttft_n;
    a->ttft_sum_ms += b->ttft_sum_ms;
}

/* Subtract b from a. */
static void live_agg_sub(struct shm_agg *a, const struct shm_agg *b)
{
    a->requests -= b->requests;
    a->errors -= b->errors;
    for (int t = 0; t < SHM_TOK_N; t++)
        a->tokens[t] -= b->tokens[t];
    a->cost_nusd -= b->cost_nusd;
    a->lat_n -= b->lat_n;
    a->lat_sum_ms -= b->lat_sum_ms;
    a->ttft_n -= b->ttft_n;
    a->ttft_sum_ms -= b->ttft_sum_ms;
    /* Sums of doubles do not cancel exactly: an empty window is zero. */
    if (a->lat_n == 0)
        a->lat_sum_ms = 0;
    if (a->ttft_n == 0)
        a->ttft_sum_ms = 0;
}

/* Mark dim d as having events in the open second. */
static void live_touch(struct live *l, int d)
{
    if (!l->is_touched[d]) {
        l->is_touched[d] = 1;
        l->touched[l->ntouched++] = (uint16_t)d;
    }
}

/* Add an event's numbers to dim d of the open second and the totals. */
static void live_add_dim(struct live *l, int d, const struct shm_agg *a, int lb,
                         int tb)
{
    live_agg_add(&l->cur[d], a);
    live_agg_add(&l->tot[d], a);
    l->tot_dirty[d] = 1;
    uint32_t *hh = l->cur_hist + (size_t)d * LIVE_HIST;
    if (lb >= 0)
        hh[lb]++;
    if (tb >= 0)
        hh[HIST_BUCKETS + tb]++;
    live_touch(l, d);
}

int live_add(struct live *l, const struct live_event *e)
{
    int64_t sec = e->received_ms / 1000;
    if (sec > l->open_sec)
        live_tick(l, e->received_ms);
    int w = live_ws(l, e->workspace);
    if (w < 0) {
        atomic_fetch_add_explicit(&l->h->health.live_dropped, 1,
                                  memory_order_relaxed);
        return -1;
    }
    int p = live_dim(l, w, SHM_DIM_PROVIDER, e->workspace, e->provider, "");
    int m = live_dim(l, w, SHM_DIM_MODEL, e->workspace, e->provider, e->model);
    struct shm_agg a;
    memset(&a, 0, sizeof(a));
    a.requests = 1;
    a.errors = e->is_error ? 1 : 0;
    for (int t = 0; t < SHM_TOK_N; t++)
        a.tokens[t] = (uint64_t)e->tokens[t];
    a.cost_nusd = e->cost_nusd;
    int lb = -1, tb = -1;
    if (e->latency_ms >= 0) {
        a.lat_n = 1;
        a.lat_sum_ms = e->latency_ms;
        lb = hist_bucket(e->latency_ms);
    }
    if (e->ttft_ms >= 0) {
        a.ttft_n = 1;
        a.ttft_sum_ms = e->ttft_ms;
        tb = hist_bucket(e->ttft_ms);
    }
    live_add_dim(l, w, &a, lb, tb);
    live_add_dim(l, p, &a, lb, tb);
    live_add_dim(l, m, &a, lb, tb);
    return 0;
}

/* Copy at most n-1 bytes of s into a fixed field, NUL-terminated. */
static void live_copy(char *dst, size_t n, const char *s)
{
    if (s == NULL)
        s = "";
    size_t len = strlen(s);
    if (len >= n) {
        /* Cut before a whole character: never in the middle of UTF-8. */
        len = n - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

void live_feed(struct live *l, const struct live_event *e)
{
    uint64_t head =
        atomic_load_explicit(&l->h->feed_head, memory_order_relaxed);
    struct shm_feed_ent *f = shm_feed(l->h, head);
    atomic_store_explicit(&f->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    f->ts_ms = e->ts_ms;
    f->received_ms = e->received_ms;
    for (int t = 0; t < SHM_TOK_N; t++)
        f->tokens[t] = e->tokens[t];
    f->cost_usd = (double)e->cost_nusd / 1e9;
    f->latency_ms = e->latency_ms;
    f->ttft_ms = e->ttft_ms;
    f->status = e->status;
    f->round = e->round;
    f->flags = e->flags;
    live_copy(f->workspace, sizeof(f->workspace), e->workspace);
    live_copy(f->id, sizeof(f->id), e->id);
    live_copy(f->provider, sizeof(f->provider), e->provider);
    live_copy(f->model, sizeof(f->model), e->model);
    live_copy(f->operation, sizeof(f->operation), e->operation);
    live_copy(f->error_type, sizeof(f->error_type), e->error_type);
    live_copy(f->user, sizeof(f->user), e->user);
    live_copy(f->agent, sizeof(f->agent), e->agent);
    live_copy(f->session, sizeof(f->session), e->session);
    live_copy(f->request_id, sizeof(f->request_id), e->request_id);
    atomic_store_explicit(&f->seq, head + 1, memory_order_release);
    atomic_store_explicit(&l->h->feed_head, head + 1, memory_order_release);
}

void live_ring_publish(struct live *l, uint32_t type, const char *workspace,
                       const char *json, size_t len, int64_t now_ms)
{
    uint64_t head =
        atomic_load_explicit(&l->h->ring_head, memory_order_relaxed);
    struct shm_ring_ent *r = shm_ring(l->h, head);
    atomic_store_explicit(&r->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    r->ts_ms = now_ms;
    r->type = type;
    if (len >= sizeof(r->json))
        len = sizeof(r->json) - 1;
    memcpy(r->json, json, len);
    r->json[len] = '\0';
    r->len = (uint32_t)len;
    live_copy(r->workspace, sizeof(r->workspace), workspace);
    atomic_store_explicit(&r->seq, head + 1, memory_order_release);
    atomic_store_explicit(&l->h->ring_head, head + 1, memory_order_release);
}

/* Make sure the blob buffer has room for n more bytes after used. */
static int live_blob_room(struct live *l, size_t used, size_t n)
{
    if (used + n <= l->blobcap)
        return 0;
    size_t cap = l->blobcap ? l->blobcap : 65536;
    while (cap < used + n)
        cap *= 2;
    unsigned char *b = realloc(l->blob, cap);
    if (b == NULL)
        return -1;
    l->blob = b;
    l->blobcap = cap;
    return 0;
}

/* The stored bucket code of index i of a dim's LIVE_HIST array. */
static uint16_t live_hent_bucket(int i)
{
    if (i < HIST_BUCKETS)
        return (uint16_t)i;
    return (uint16_t)((unsigned)(i - HIST_BUCKETS) | SHM_HENT_TTFT);
}

/* Append a length-prefixed string to the blob. */
static size_t live_blob_str(unsigned char *p, const char *s)
{
    size_t n = strlen(s);
    if (n > 255)
        n = 255;
    p[0] = (unsigned char)n;
    memcpy(p + 1, s, n);
    return n + 1;
}

/*
 * Encode dim d of the open second into the blob at *used:
 *   u8 kind, str workspace, str provider, str model, struct shm_agg,
 *   u32 entries, then entries of (u16 bucket|SHM_HENT_TTFT, u32 count).
 */
static int live_blob_dim(struct live *l, size_t *used, int d)
{
    const struct shm_dim *dim = &shm_dims(l->h)[d];
    const uint32_t *hh = l->cur_hist + (size_t)d * LIVE_HIST;
    if (live_blob_room(l, *used,
                       1 + 3 * 256 + sizeof(struct shm_agg) + 4 +
                           (size_t)LIVE_HIST * 6) != 0)
        return -1;
    unsigned char *p = l->blob + *used, *start = p;
    *p++ = (unsigned char)dim->kind;
    p += live_blob_str(p, dim->workspace);
    p += live_blob_str(p, dim->provider);
    p += live_blob_str(p, dim->model);
    memcpy(p, &l->cur[d], sizeof(struct shm_agg));
    p += sizeof(struct shm_agg);
    unsigned char *countp = p;
    p += 4;
    uint32_t n = 0;
    for (int i = 0; i < LIVE_HIST; i++) {
        if (hh[i] == 0)
            continue;
        uint16_t b = live_hent_bucket(i);
        memcpy(p, &b, 2);
        memcpy(p + 2, &hh[i], 4);
        p += 6;
        n++;
    }
    memcpy(countp, &n, 4);
    *used += (size_t)(p - start);
    return 0;
}

/* Add (sign 1) or subtract (sign -1) a histogram entry to window w. */
static void live_win_hent(struct live *l, int w, int d, uint16_t bucket,
                          uint32_t count, int sign)
{
    int t = (bucket & SHM_HENT_TTFT) ? 1 : 0;
    int b = bucket & ~SHM_HENT_TTFT;
    if (b >= HIST_BUCKETS)
        return;
    uint32_t *hh = l->win_hist[w] + (size_t)d * LIVE_HIST + t * HIST_BUCKETS;
    if (sign > 0) {
        hh[b] += count;
        l->win_hn[w][2 * d + t] += count;
    } else {
        hh[b] -= count;
        l->win_hn[w][2 * d + t] -= count;
    }
}

/* Subtract, from every window, the second that has just left it. */
static void live_expire(struct live *l, int64_t sec)
{
    for (int w = 0; w < SHM_WINDOWS; w++) {
        int64_t e = sec - shm_window_secs[w];
        struct shm_sec *r = shm_second(l->h, e);
        if (e < l->floor_sec || r->sec != e || r->ndims == 0)
            continue;
        struct shm_stat *st = shm_second_stats(r);
        for (uint32_t d = 0; d < r->ndims; d++) {
            if (st[d].a.requests == 0)
                continue;
            live_agg_sub(&l->win[w][d], &st[d].a);
            l->win_dirty[w][d] = 1;
        }
        struct shm_hent *he = shm_second_hist(l->h, e);
        for (uint32_t i = 0; i < r->nhist; i++)
            live_win_hent(l, w, he[i].dim, he[i].bucket, he[i].count, -1);
    }
}

/* Close the open second: ring record, windows, blob; then open the next. */
static void live_close_second(struct live *l)
{
    int64_t sec = l->open_sec;
    /* Subtract leaving seconds first: with a ring of exactly one hour the
     * second leaving the 1h window shares its slot with this one. */
    live_expire(l, sec);

    struct shm_sec *r = shm_second(l->h, sec);
    struct shm_stat *st = shm_second_stats(r);
    struct shm_hent *he = shm_second_hist(l->h, sec);
    uint32_t nd = atomic_load_explicit(&l->h->ndims, memory_order_relaxed);
    uint32_t nh = 0, cap = l->h->hist_entries;
    uint64_t dropped = 0;
    size_t used = 4;
    int blob_ok = l->on_close != NULL && live_blob_room(l, 0, 4) == 0;

    shm_write_begin(&r->seq);
    r->sec = sec;
    r->ndims = nd;
    memset(st, 0, (size_t)nd * sizeof(*st));
    for (uint32_t k = 0; k < l->ntouched; k++) {
        int d = l->touched[k];
        uint32_t *hh = l->cur_hist + (size_t)d * LIVE_HIST;
        if (blob_ok && live_blob_dim(l, &used, d) != 0)
            blob_ok = 0;
        st[d].a = l->cur[d];
        st[d].p50 = (float)hist_quantile(hh, l->cur[d].lat_n, 0.50);
        st[d].p95 = (float)hist_quantile(hh, l->cur[d].lat_n, 0.95);
        st[d].p99 = (float)hist_quantile(hh, l->cur[d].lat_n, 0.99);
        st[d].ttft_p95 =
            (float)hist_quantile(hh + HIST_BUCKETS, l->cur[d].ttft_n, 0.95);
        for (int i = 0; i < LIVE_HIST; i++) {
            if (hh[i] == 0)
                continue;
            uint16_t b = live_hent_bucket(i);
            if (nh == cap) {
                dropped += hh[i];
                continue;
            }
            he[nh].dim = (uint16_t)d;
            he[nh].bucket = b;
            he[nh].count = hh[i];
            nh++;
            for (int w = 0; w < SHM_WINDOWS; w++)
                live_win_hent(l, w, d, b, hh[i], 1);
        }
        for (int w = 0; w < SHM_WINDOWS; w++) {
            live_agg_add(&l->win[w][d], &l->cur[d]);
            l->win_dirty[w][d] = 1;
        }
        memset(hh, 0, LIVE_HIST * sizeof(uint32_t));
        memset(&l->cur[d], 0, sizeof(l->cur[d]));
        l->is_touched[d] = 0;
    }
    r->nhist = nh;
    shm_write_end(&r->seq);
    if (dropped)
        atomic_fetch_add_explicit(&l->h->health.hist_dropped, dropped,
                                  memory_order_relaxed);

    /* Recompute the windows' percentiles where they changed. */
    for (int w = 0; w < SHM_WINDOWS; w++) {
        for (uint32_t d = 0; d < nd; d++) {
            if (!l->win_dirty[w][d])
                continue;
            l->win_dirty[w][d] = 0;
            const uint32_t *hh = l->win_hist[w] + (size_t)d * LIVE_HIST;
            struct shm_stat *s = &l->win_stat[w][d];
            s->a = l->win[w][d];
            uint64_t ln = l->win_hn[w][2 * d], tn = l->win_hn[w][2 * d + 1];
            s->p50 = (float)hist_quantile(hh, ln, 0.50);
            s->p95 = (float)hist_quantile(hh, ln, 0.95);
            s->p99 = (float)hist_quantile(hh, ln, 0.99);
            s->ttft_p95 = (float)hist_quantile(hh + HIST_BUCKETS, tn, 0.95);
        }
    }

    /* Publish windows and totals together. */
    struct shm_summary *sum = shm_summary(l->h);
    shm_write_begin(&sum->seq);
    for (int w = 0; w < SHM_WINDOWS; w++)
        memcpy(shm_summary_win(l->h, w), l->win_stat[w],
               (size_t)nd * sizeof(struct shm_stat));
    memcpy(shm_summary_tot(l->h), l->tot, (size_t)nd * sizeof(struct shm_agg));
    sum->as_of_sec = sec;
    shm_write_end(&sum->seq);

    if (blob_ok && l->ntouched > 0) {
        memcpy(l->blob, &l->ntouched, 4);
        l->on_close(l->ctx, sec, l->blob, used);
    }
    l->ntouched = 0;
    l->open_sec = sec + 1;
}

/* Forget every window (after a clock jump longer than the ring). */
static void live_reset_windows(struct live *l)
{
    for (int w = 0; w < SHM_WINDOWS; w++) {
        memset(l->win[w], 0, l->nslots * sizeof(struct shm_agg));
        memset(l->win_hist[w], 0,
               (size_t)l->nslots * LIVE_HIST * sizeof(uint32_t));
        memset(l->win_hn[w], 0, (size_t)l->nslots * 2 * sizeof(uint64_t));
        memset(l->win_dirty[w], 1, l->nslots);
    }
}

void live_tick(struct live *l, int64_t now_ms)
{
    int64_t now_sec = now_ms / 1000;
    if (now_sec < l->open_sec - 1) {
        /* The clock stepped back: the windows hold seconds from its future.
         * Start them again from now rather than freeze until it catches
         * up (the totals are not affected). */
        live_close_second(l);
        live_reset_windows(l);
        l->open_sec = now_sec;
        l->floor_sec = now_sec;
        return;
    }
    if (now_sec <= l->open_sec)
        return;
    if (now_sec - l->open_sec > (int64_t)l->h->nseconds) {
        live_close_second(l);
        live_reset_windows(l);
        l->open_sec = now_sec - 1;
        l->floor_sec = l->open_sec;
    }
    while (l->open_sec < now_sec)
        live_close_second(l);
}

/* Read a length-prefixed string from the blob into out (256 bytes). */
static int live_blob_get_str(const unsigned char **p, const unsigned char *end,
                             char *out)
{
    if (*p >= end || *p + 1 + **p > end)
        return -1;
    size_t n = **p;
    memcpy(out, *p + 1, n);
    out[n] = '\0';
    *p += 1 + n;
    return 0;
}

/* Walk a blob; with apply 0 only check it, with apply 1 add it to the open
 * second.  Returns 0, or -1 if it is malformed. */
static int live_blob_walk(struct live *l, const void *blob, size_t len,
                          int apply)
{
    const unsigned char *p = blob, *end = p + len;
    uint32_t n;
    if (len < 4)
        return -1;
    memcpy(&n, p, 4);
    p += 4;
    for (uint32_t i = 0; i < n; i++) {
        char ws[256], prov[256], model[256];
        if (p >= end)
            return -1;
        int kind = *p++;
        struct shm_agg a;
        uint32_t ne;
        if (live_blob_get_str(&p, end, ws) ||
            live_blob_get_str(&p, end, prov) ||
            live_blob_get_str(&p, end, model) || p + sizeof(a) + 4 > end)
            return -1;
        memcpy(&a, p, sizeof(a));
        p += sizeof(a);
        memcpy(&ne, p, 4);
        p += 4;
        if ((size_t)(end - p) < (size_t)ne * 6)
            return -1;
        if (kind < SHM_DIM_WORKSPACE || kind > SHM_DIM_MODEL)
            return -1;
        int w = apply ? live_ws(l, ws) : -1, d;
        if (w < 0) {
            p += (size_t)ne * 6;
            continue;
        }
        if (kind == SHM_DIM_WORKSPACE)
            d = w;
        else if (kind == SHM_DIM_PROVIDER)
            d = live_dim(l, w, kind, ws, prov, "");
        else
            d = live_dim(l, w, kind, ws, prov, model);
        live_agg_add(&l->cur[d], &a);
        uint32_t *hh = l->cur_hist + (size_t)d * LIVE_HIST;
        for (uint32_t k = 0; k < ne; k++, p += 6) {
            uint16_t b;
            uint32_t c;
            memcpy(&b, p, 2);
            memcpy(&c, p + 2, 4);
            int t = (b & SHM_HENT_TTFT) ? 1 : 0;
            int bi = b & ~SHM_HENT_TTFT;
            if (bi < HIST_BUCKETS)
                hh[t * HIST_BUCKETS + bi] += c;
        }
        live_touch(l, d);
    }
    return p == end ? 0 : -1;
}

int live_inject(struct live *l, int64_t sec, const void *blob, size_t len)
{
    /* Check the whole blob before applying any of it. */
    if (live_blob_walk(l, blob, len, 0) != 0)
        return -1;
    if (sec > l->open_sec)
        live_tick(l, sec * 1000);
    return live_blob_walk(l, blob, len, 1);
}

int live_set_total(struct live *l, int kind, const char *ws,
                   const char *provider, const char *model,
                   const struct shm_agg *a)
{
    int w = live_ws(l, ws), d;
    if (w < 0)
        return -1;
    if (kind == SHM_DIM_WORKSPACE)
        d = w;
    else if (kind == SHM_DIM_PROVIDER)
        d = live_dim(l, w, kind, ws, provider, "");
    else
        d = live_dim(l, w, kind, ws, provider, model);
    /* Two stored dims may now share an "other" slot: add, not assign. */
    live_agg_add(&l->tot[d], a);
    return 0;
}

void live_redirty_totals(struct live *l)
{
    memset(l->tot_dirty, 1, l->nslots);
}

void live_dirty_totals(struct live *l,
                       void (*fn)(void *ctx, const struct shm_dim *d,
                                  const struct shm_agg *a),
                       void *ctx)
{
    uint32_t nd = atomic_load_explicit(&l->h->ndims, memory_order_relaxed);
    const struct shm_dim *dims = shm_dims(l->h);
    for (uint32_t d = 0; d < nd; d++) {
        if (!l->tot_dirty[d])
            continue;
        l->tot_dirty[d] = 0;
        fn(ctx, &dims[d], &l->tot[d]);
    }
}
