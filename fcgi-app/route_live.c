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

#include <stdlib.h>
#include <string.h>

#include "livejson.h"

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

    int cap = (int)h->nslots;
    struct shm_item *items =
        arena_alloc(r->arena, (size_t)cap * sizeof(*items));
    json_t *o = items ? livejson_stats(h, w, r->workspace, stale, items) : NULL;
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
        json_array_append_new(arr, livejson_feed_entry(&ents[i]));
    return api_send_json(r, 200,
                         json_pack("{s:o, s:i, s:b}", "requests", arr, "count",
                                   n, "stale", api_stale(r, h)),
                         NULL);
}
