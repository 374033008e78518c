/*
 * livejson.c: the live segment's statistics and feed entries as JSON, the
 * shape GET /api/v1/live/stats and /api/v1/live/feed answer and the relay
 * streams (one builder for both).
 */
#include "livejson.h"

#include <math.h>
#include <stdio.h>

#include "event.h"

/* The token counts of a as a JSON object, scaled by 1/div. */
static json_t *lj_tokens(const struct shm_agg *a, double div)
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
static json_t *lj_pct(float v, uint64_t n)
{
    return n ? json_real(round((double)v * 1000) / 1000) : json_null();
}

/* The average of n measurements summing to sum, or null when none. */
static json_t *lj_avg(double sum, uint64_t n)
{
    return n ? json_real(sum / (double)n) : json_null();
}

/* Totals since the database began. */
static json_t *lj_totals(const struct shm_agg *a)
{
    return json_pack("{s:I, s:I, s:o, s:f}", "requests",
                     (json_int_t)a->requests, "errors", (json_int_t)a->errors,
                     "tokens", lj_tokens(a, 1), "cost_usd",
                     (double)a->cost_nusd / 1e9);
}

/* The statistics of one dim over a window of secs seconds. */
static json_t *lj_stat(const struct shm_stat *s, const struct shm_agg *tot,
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
    json_object_set_new(o, "tokens", lj_tokens(a, 1));
    json_object_set_new(o, "tokens_per_second", lj_tokens(a, secs));
    json_object_set_new(o, "cost_usd", json_real((double)a->cost_nusd / 1e9));
    json_object_set_new(o, "cost_per_second",
                        json_real((double)a->cost_nusd / 1e9 / secs));
    json_object_set_new(o, "latency_ms",
                        json_pack("{s:o, s:o, s:o, s:o}", "p50",
                                  lj_pct(s->p50, a->lat_n), "p95",
                                  lj_pct(s->p95, a->lat_n), "p99",
                                  lj_pct(s->p99, a->lat_n), "avg",
                                  lj_avg(a->lat_sum_ms, a->lat_n)));
    json_object_set_new(o, "ttft_ms",
                        json_pack("{s:o, s:o}", "p95",
                                  lj_pct(s->ttft_p95, a->ttft_n), "avg",
                                  lj_avg(a->ttft_sum_ms, a->ttft_n)));
    json_object_set_new(o, "totals", lj_totals(tot));
    return o;
}

/* The stats answer for window w of workspace ws (see livejson.h). */
json_t *livejson_stats(const struct shm_header *h, int w, const char *ws,
                       int stale, struct shm_item *items)
{
    int cap = (int)h->nslots;
    int64_t as_of = 0;
    int n = shm_read_window(h, w, ws, items, cap, &as_of);
    int secs = shm_window_secs[w];
    static const struct shm_stat empty_stat;
    static const struct shm_agg empty_tot;
    json_t *o = n > 0 ? lj_stat(&items[0].win, &items[0].tot, secs)
                      : lj_stat(&empty_stat, &empty_tot, secs);
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
        json_t *s = lj_stat(&it->win, &it->tot, secs);
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

/* A number, or null when absent (negative). */
static json_t *lj_opt_real(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

/* A string, or null when empty. */
static json_t *lj_opt_str(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

/* One feed entry as JSON. */
json_t *livejson_feed_entry(const struct shm_feed_ent *f)
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
    json_object_set_new(o, "latency_ms", lj_opt_real(f->latency_ms));
    json_object_set_new(o, "ttft_ms", lj_opt_real(f->ttft_ms));
    json_object_set_new(o, "status",
                        f->status ? json_integer(f->status) : json_null());
    json_object_set_new(o, "error", json_boolean(f->flags & EV_F_ERROR));
    json_object_set_new(o, "error_type", lj_opt_str(f->error_type));
    json_object_set_new(o, "user", lj_opt_str(f->user));
    json_object_set_new(o, "agent", lj_opt_str(f->agent));
    json_object_set_new(o, "session", lj_opt_str(f->session));
    json_object_set_new(o, "round",
                        f->round >= 0 ? json_integer(f->round) : json_null());
    json_object_set_new(o, "request_id", lj_opt_str(f->request_id));
    return o;
}
