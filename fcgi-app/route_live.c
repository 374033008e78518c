/*
 * route_live.c: live statistics and the request feed, from shared memory.
 *
 * GET /api/v1/live/stats?window=1m|5m|15m|1h and GET /api/v1/live/feed.
 * Numbers come from the collector's precomputed windows, which change once
 * a second; so the serialized answer for a (workspace, window, second,
 * generation, staleness) is cached per process and shared by every thread
 * until the next second closes.
 */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "proto.h"

#define API_CACHE 64

/* One serialized stats answer. */
struct api_cache_ent {
    char ws[72];
    int window;
    int stale;
    int64_t as_of;
    uint64_t generation;
    char *body; /* malloc'ed */
    size_t len;
    uint64_t used; /* for eviction: higher is more recent */
};

int api_cache_init(struct api_global *g)
{
    pthread_mutex_init(&g->cache_lock, NULL);
    g->cache_size = API_CACHE;
    g->cache = calloc(API_CACHE, sizeof(*g->cache));
    return g->cache ? 0 : -1;
}

void api_cache_free(struct api_global *g)
{
    for (int i = 0; i < g->cache_size; i++)
        free(g->cache[i].body);
    free(g->cache);
    g->cache = NULL;
}

const struct shm_header *api_shm(struct api_req *r)
{
    struct shm_reader *rd = &r->t->shm;
    if (shm_reader_check(rd, r->now_ms, 1000) != 0)
        return NULL;
    /* A segment whose heartbeat stopped may have been replaced by a
     * restarted collector: look again now, not at the next full second. */
    int64_t hb =
        atomic_load_explicit(&((struct shm_header *)rd->h)->health.heartbeat_ms,
                             memory_order_relaxed);
    if (r->now_ms - hb > 1500)
        shm_reader_check(rd, r->now_ms, 100);
    return rd->h;
}

/* The token counts of a as a JSON object, scaled by 1/div. */
static json_t *api_tokens(const struct shm_agg *a, double div)
{
    json_t *o = json_object();
    uint64_t total = 0;
    for (int t = 0; t < SHM_TOK_N; t++) {
        if (div == 1)
            json_object_set_new(o, shm_tok_names[t],
                                json_integer((json_int_t)a->tokens[t]));
        else
            json_object_set_new(o, shm_tok_names[t],
                                json_real((double)a->tokens[t] / div));
        if (t != SHM_TOK_REASONING) /* reasoning is part of output */
            total += a->tokens[t];
    }
    json_object_set_new(o, "total",
                        div == 1 ? json_integer((json_int_t)total)
                                 : json_real((double)total / div));
    return o;
}

/* A percentile or null when nothing was measured. */
static json_t *api_pct(float v, uint64_t n)
{
    return n ? json_real(round((double)v * 1000) / 1000) : json_null();
}

/* Totals since the database began. */
static json_t *api_totals(const struct shm_agg *a)
{
    return json_pack("{s:I, s:I, s:o, s:f}", "requests",
                     (json_int_t)a->requests, "errors", (json_int_t)a->errors,
                     "tokens", api_tokens(a, 1), "cost_usd",
                     (double)a->cost_nusd / 1e9);
}

/* The statistics of one dim over a window of secs seconds. */
static json_t *api_stat(const struct shm_stat *s, const struct shm_agg *tot,
                        int secs)
{
    const struct shm_agg *a = &s->a;
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer((json_int_t)a->requests));
    json_object_set_new(o, "rps", json_real((double)a->requests / secs));
    json_object_set_new(o, "errors", json_integer((json_int_t)a->errors));
    json_object_set_new(
        o, "error_rate",
        json_real(a->requests ? 100.0 * (double)a->errors / (double)a->requests
                              : 0.0));
    json_object_set_new(o, "tokens", api_tokens(a, 1));
    json_object_set_new(o, "tokens_per_second", api_tokens(a, secs));
    json_object_set_new(o, "cost_usd", json_real((double)a->cost_nusd / 1e9));
    json_object_set_new(o, "cost_per_second",
                        json_real((double)a->cost_nusd / 1e9 / secs));
    json_object_set_new(
        o, "latency_ms",
        json_pack("{s:o, s:o, s:o, s:o}", "p50", api_pct(s->p50, a->lat_n),
                  "p95", api_pct(s->p95, a->lat_n), "p99",
                  api_pct(s->p99, a->lat_n), "avg",
                  a->lat_n ? json_real(a->lat_sum_ms / (double)a->lat_n)
                           : json_null()));
    json_object_set_new(
        o, "ttft_ms",
        json_pack("{s:o, s:o}", "p95", api_pct(s->ttft_p95, a->ttft_n), "avg",
                  a->ttft_n ? json_real(a->ttft_sum_ms / (double)a->ttft_n)
                            : json_null()));
    json_object_set_new(o, "totals", api_totals(tot));
    return o;
}

/* Build the stats answer for window w of the request's workspace. */
static json_t *api_build_stats(struct api_req *r, const struct shm_header *h,
                               int w, int stale)
{
    int cap = (int)h->nslots;
    struct shm_item *items =
        arena_alloc(r->arena, (size_t)cap * sizeof(*items));
    if (items == NULL)
        return NULL;
    int64_t as_of = 0;
    int n = shm_read_window(h, w, r->workspace, items, cap, &as_of);
    int secs = shm_window_secs[w];
    struct shm_stat empty_stat;
    struct shm_agg empty_tot;
    memset(&empty_stat, 0, sizeof(empty_stat));
    memset(&empty_tot, 0, sizeof(empty_tot));
    json_t *o = n > 0 ? api_stat(&items[0].win, &items[0].tot, secs)
                      : api_stat(&empty_stat, &empty_tot, secs);
    char ts[40];
    ev_format_rfc3339((as_of + 1) * 1000, ts, sizeof(ts));
    json_object_set_new(o, "window", json_string(shm_window_names[w]));
    json_object_set_new(o, "window_seconds", json_integer(secs));
    json_object_set_new(o, "as_of", json_string(ts));
    json_object_set_new(o, "generation",
                        json_integer((json_int_t)h->generation));
    json_object_set_new(o, "stale", json_boolean(stale));
    json_t *prov = json_array(), *models = json_array();
    for (int i = 1; i < n; i++) {
        const struct shm_item *it = &items[i];
        if (it->win.a.requests == 0 && it->tot.requests == 0)
            continue; /* an "other" slot never used */
        json_t *s = api_stat(&it->win, &it->tot, secs);
        json_object_set_new(s, "provider", json_string(it->dim.provider));
        if (it->dim.kind == SHM_DIM_MODEL) {
            json_object_set_new(s, "model", json_string(it->dim.model));
            json_array_append_new(models, s);
        } else
            json_array_append_new(prov, s);
    }
    json_object_set_new(o, "providers", prov);
    json_object_set_new(o, "models", models);
    return o;
}

/* The live segment, or NULL after answering 503 when there is none. */
static const struct shm_header *api_live_segment(struct api_req *r)
{
    const struct shm_header *h = api_shm(r);
    if (h == NULL)
        api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                    "live data is not available: the collector has not "
                    "started");
    return h;
}

/* Whether the live data is older than the configured limit. */
static int api_stale(struct api_req *r, const struct shm_header *h)
{
    int64_t hb = atomic_load_explicit(
        &((struct shm_header *)h)->health.heartbeat_ms, memory_order_relaxed);
    int limit = r->t->g->conf.stale_after_ms;
    /* A live collector whose seconds stopped closing is stale too. */
    int64_t lag = r->now_ms - (shm_summary(h)->as_of_sec + 1) * 1000;
    return r->now_ms - hb > limit || lag > limit + 1000 || lag < -limit;
}

int api_live_stats(struct api_req *r)
{
    static const char *const allowed[] = {"window", NULL};
    if (api_query_only(r, allowed) != 0)
        return -1;
    const char *wq = api_query(r, "window");
    int w = 0;
    if (wq != NULL) {
        for (w = 0; w < SHM_WINDOWS; w++)
            if (strcmp(wq, shm_window_names[w]) == 0)
                break;
        if (w == SHM_WINDOWS)
            return api_error(r, 400, "invalid_parameter", "window",
                             "window must be one of 1m, 5m, 15m, 1h, got "
                             "\"%.32s\"",
                             wq);
    }
    const struct shm_header *h = api_live_segment(r);
    if (h == NULL)
        return -1;
    int stale = api_stale(r, h);
    int64_t as_of = shm_summary(h)->as_of_sec;

    struct api_global *g = r->t->g;
    pthread_mutex_lock(&g->cache_lock);
    struct api_cache_ent *victim = &g->cache[0];
    for (int i = 0; i < g->cache_size; i++) {
        struct api_cache_ent *c = &g->cache[i];
        if (c->body != NULL && c->window == w && c->as_of == as_of &&
            c->generation == h->generation && c->stale == stale &&
            strcmp(c->ws, r->workspace) == 0) {
            c->used = ++g->cache_clock;
            char *copy = arena_alloc(r->arena, c->len);
            if (copy != NULL)
                memcpy(copy, c->body, c->len);
            size_t len = c->len;
            pthread_mutex_unlock(&g->cache_lock);
            if (copy == NULL)
                return api_error(r, 500, "internal", NULL, "out of memory");
            return api_send_text(r, 200, "application/json", copy, len, NULL);
        }
        if (c->used < victim->used)
            victim = c;
    }
    pthread_mutex_unlock(&g->cache_lock);

    json_t *o = api_build_stats(r, h, w, stale);
    if (o == NULL)
        return api_error(r, 500, "internal", NULL, "out of memory");
    size_t len = 0;
    char *text = api_dump(o, &len);
    json_decref(o);
    if (text == NULL)
        return api_error(r, 500, "internal", NULL, "out of memory");
    api_send_text(r, 200, "application/json", text, len, NULL);

    pthread_mutex_lock(&g->cache_lock);
    free(victim->body);
    snprintf(victim->ws, sizeof(victim->ws), "%s", r->workspace);
    victim->window = w;
    victim->stale = stale;
    victim->as_of = as_of;
    victim->generation = h->generation;
    victim->body = text;
    victim->len = len;
    victim->used = ++g->cache_clock;
    pthread_mutex_unlock(&g->cache_lock);
    return 0;
}

/* A number, or null when absent (negative). */
static json_t *api_opt_real(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

/* A string, or null when empty. */
static json_t *api_opt_str(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

/* One feed entry as JSON. */
static json_t *api_feed_entry(const struct shm_feed_ent *f)
{
    char ts[40], rcv[40];
    ev_format_rfc3339(f->ts_ms, ts, sizeof(ts));
    ev_format_rfc3339(f->received_ms, rcv, sizeof(rcv));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", f->id, "ts",
                          ts, "received", rcv, "provider", f->provider, "model",
                          f->model, "operation", f->operation);
    for (int t = 0; t < SHM_TOK_N; t++) {
        char k[32];
        snprintf(k, sizeof(k), "%s_tokens", shm_tok_names[t]);
        json_object_set_new(o, k, json_integer(f->tokens[t]));
    }
    json_object_set_new(o, "cost_usd", json_real(f->cost_usd));
    json_object_set_new(o, "latency_ms", api_opt_real(f->latency_ms));
    json_object_set_new(o, "ttft_ms", api_opt_real(f->ttft_ms));
    json_object_set_new(o, "status",
                        f->status ? json_integer(f->status) : json_null());
    json_object_set_new(o, "error", json_boolean(f->flags & EV_F_ERROR));
    json_object_set_new(o, "error_type", api_opt_str(f->error_type));
    json_object_set_new(o, "user", api_opt_str(f->user));
    json_object_set_new(o, "agent", api_opt_str(f->agent));
    json_object_set_new(o, "session", api_opt_str(f->session));
    json_object_set_new(o, "round",
                        f->round >= 0 ? json_integer(f->round) : json_null());
    json_object_set_new(o, "request_id", api_opt_str(f->request_id));
    return o;
}

int api_live_feed(struct api_req *r)
{
    static const char *const allowed[] = {"limit", NULL};
    if (api_query_only(r, allowed) != 0)
        return -1;
    const char *lq = api_query(r, "limit");
    long limit = 50;
    if (lq != NULL) {
        char *end;
        limit = strtol(lq, &end, 10);
        if (lq[0] == '\0' || *end != '\0' || limit < 1 || limit > 1000)
            return api_error(r, 400, "invalid_parameter", "limit",
                             "limit must be an integer from 1 to 1000, got "
                             "\"%.32s\"",
                             lq);
    }
    const struct shm_header *h = api_live_segment(r);
    if (h == NULL)
        return -1;
    if (limit > (long)h->feed_size)
        limit = h->feed_size;
    struct shm_feed_ent *ents =
        arena_alloc(r->arena, (size_t)limit * sizeof(*ents));
    if (ents == NULL)
        return api_error(r, 500, "internal", NULL, "out of memory");
    int n = shm_read_feed(h, r->workspace, ents, (int)limit);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, api_feed_entry(&ents[i]));
    return api_send_json(r, 200,
                         json_pack("{s:o, s:i, s:b}", "requests", arr, "count",
                                   n, "stale", api_stale(r, h)),
                         NULL);
}
