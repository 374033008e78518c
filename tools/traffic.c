/*
 * traffic.c: tt-traffic, a generator of realistic LLM API traffic.
 *
 * It posts tokentap events to URL/api/v1/events with libcurl: one event
 * object per request, or a JSON array of --batch events, from --concurrency
 * worker threads that each own one easy handle (one keep-alive connection).
 * The events look like a real fleet: six providers under their OpenTelemetry
 * gen_ai.system names, weighted model popularity, log-normal token counts and
 * latencies scaled by model speed, cache and reasoning tokens where the
 * provider reports them, 2-3% errors (per-provider 429 storms, 5xx,
 * timeouts), ~30 users on six teams, eight agents, and crosstalk sessions of
 * 2-4 models answering in rounds.
 *
 * --demo runs forever at 5-20 events/s (a daily sine, a ten-minute wave and
 * smooth noise), waits for the key file and retries every failure forever,
 * honouring Retry-After.  Load mode sends --count events or runs --duration
 * seconds at --rate, retries 429/5xx/connection errors up to 20 times with
 * the same body (the same ids), appends the id of every acknowledged event to
 * --ids-out, and exits 0 only if every event it sent was acknowledged.
 *
 * Determinism: one generator behind run.lock hands out batches in order, and
 * in load mode its clock is virtual (1/12 s per event), so a --seed gives the
 * same events whatever the rate, batch or concurrency; only ts is wall time.
 * Threads share the generator and schedule under run.lock, the --ids-out file
 * under run.ids_lock, and the counters as atomics.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rnd.h"

#define TT_MAX_BATCH   1000       /* the server's EV_MAX_BATCH */
#define TT_MAX_RETRIES 20         /* load mode: retries of one body */
#define TT_ID_LEN      48         /* room for "<seed>-<counter>" in hex */
#define TT_KEY_LEN     512        /* longest API key accepted */
#define TT_SIM_STEP    (1.0 / 12) /* load mode: virtual seconds per event */
#define TT_XT_MAX      3          /* crosstalk sessions active at once */
#define TT_STOP_GRACE  0.5       /* seconds an in-flight request gets on stop */
#define TT_RESP_MAX    (1 << 20) /* bytes of an answer kept for parsing */

/* Set by SIGINT/SIGTERM; every loop polls it at least every 100 ms. */
static volatile sig_atomic_t tt_stop;

/* The command line, fixed once parse_args() has run. */
struct tt_cfg {
    char url[1024];       /* the events endpoint: --url plus /api/v1/events */
    const char *url_arg;  /* --url as given */
    const char *key;      /* --key, or NULL */
    const char *key_file; /* --key-file, or NULL */
    const char *ids_out;  /* --ids-out, or NULL */
    int demo, quiet;      /* --demo, --quiet */
    double rate;          /* events/s; demo: the mean; load: 0 = no limit */
    double duration;      /* seconds; 0 = unbounded */
    double count;         /* events; 0 = unbounded */
    double batch;         /* events per request */
    double concurrency;   /* parallel requests */
    double seed;          /* generator seed and id prefix; < 0: random */
};

/* Providers, by their OpenTelemetry gen_ai.system names. */
static const char *const tt_providers[] = {
    "openai", "anthropic", "gcp.gemini", "mistral_ai", "aws.bedrock", "local"};
#define TT_NPROV 6

/* One model of the fleet and how its calls look. */
struct tt_model {
    int prov;               /* index into tt_providers */
    const char *name;       /* the model as the provider reports it */
    int embed;              /* operation "embeddings": no output tokens */
    double weight;          /* relative popularity */
    double in_med, out_med; /* median input and output tokens */
    double tps, base_ms;    /* output tokens/s; fixed overhead in ms */
    int reasoning, cache;   /* reports reasoning / prompt-cache tokens */
    double p_in, p_out, p_cr, p_cw; /* USD per 1M tokens, explicit costs */
};

static const struct tt_model tt_models[] = {
    {0, "gpt-4o", 0, 8, 1500, 350, 80, 450, 0, 0, 2.5, 10, 1.25, 0},
    {0, "gpt-4o-mini", 0, 22, 1200, 300, 110, 300, 0, 0, .15, .6, .075, 0},
    {0, "gpt-4.1", 0, 5, 2500, 450, 75, 500, 0, 0, 2, 8, .5, 0},
    {0, "o4-mini", 0, 6, 1500, 900, 120, 900, 1, 0, 1.1, 4.4, .275, 0},
    {0, "text-embedding-3-small", 1, 10, 400, 0, 0, 60, 0, 0, .02, 0, 0, 0},
    {1, "claude-sonnet-4-5", 0, 9, 2500, 600, 60, 650, 0, 1, 3, 15, .3, 3.75},
    {1, "claude-haiku-4-5", 0, 8, 1500, 300, 130, 350, 0, 1, 1, 5, .1, 1.25},
    {1, "claude-opus-4-1", 0, 2, 3000, 700, 30, 1100, 0, 1, 15, 75, 1.5, 18.75},
    {2, "gemini-2.5-pro", 0, 4, 2500, 1000, 70, 900, 1, 0, 1.25, 10, .31, 0},
    {2, "gemini-2.5-flash", 0, 18, 1500, 350, 150, 250, 0, 0, .3, 2.5, .075, 0},
    {3, "mistral-large-latest", 0, 3, 2000, 450, 50, 500, 0, 0, 2, 6, 0, 0},
    {3, "mistral-small-latest", 0, 5, 1000, 250, 120, 250, 0, 0, .1, .3, 0, 0},
    {4, "amazon.nova-pro-v1:0", 0, 3, 1800, 400, 75, 500, 0, 0, .8, 3.2, .2, 0},
    /* In no price catalog: exercises unknown pricing.  Keep it last. */
    {5, "llama-3.1-8b-instruct-q4", 0, 1.5, 800, 250, 20, 150, 0, 0, 0, 0, 0,
     0},
};
#define TT_NMODELS ((int)(sizeof tt_models / sizeof tt_models[0]))

/* One agent: its share of calls and how it scales the model's medians. */
struct tt_agent {
    const char *name;
    double weight, in_mult, out_mult;
};

static const struct tt_agent tt_agents[] = {
    {"support-bot", 10, 1.0, 0.8},  {"code-review", 6, 1.6, 0.9},
    {"summarizer", 6, 2.0, 0.5},    {"router", 8, 0.4, 0.25},
    {"search-rag", 7, 1.5, 0.7},    {"data-extract", 4, 1.5, 0.6},
    {"email-drafter", 3, 0.6, 1.2}, {"sql-assistant", 4, 1.0, 0.7},
};
#define TT_NAGENTS   ((int)(sizeof tt_agents / sizeof tt_agents[0]))
#define TT_AGENT_RAG 4 /* the agent behind most embeddings */

static const char *const tt_teams[] = {"platform", "support", "growth",
                                       "research", "data",    "security"};
#define TT_NTEAMS 6

static const char *const tt_names[] = {
    "alice",  "bob",   "carol",  "dave",  "erin",  "frank",   "grace",
    "heidi",  "ivan",  "judy",   "kevin", "laura", "mallory", "niaj",
    "olivia", "peggy", "rupert", "sybil", "trent", "victor"};
#define TT_NNAMES 20
#define TT_NUSERS 30 /* the rest are "user-NNN" */

/* A crosstalk session: 2-4 models answering in rounds. */
struct tt_xt {
    int active;              /* the session still has calls to make */
    unsigned long long num;  /* the n of its id "xt-<n>" */
    int nmodels, models[4];  /* models taking part, indexes of tt_models */
    int rounds, round, next; /* rounds in all, current (from 1), next model */
    int user;                /* who runs the session */
    double due;              /* simulated time of the next call */
};

/* The event generator; guarded by tt_run.lock. */
struct tt_gen {
    uint64_t s;                 /* splitmix64 state */
    unsigned long long seed;    /* prefix of every id */
    unsigned long long counter; /* events generated so far */
    double mw[TT_NMODELS], uw[TT_NUSERS], aw[TT_NAGENTS]; /* weights */
    double storm_start[TT_NPROV], storm_end[TT_NPROV];    /* 429 storms */
    struct tt_xt xt[TT_XT_MAX]; /* crosstalk sessions */
    double xt_next;             /* simulated time of the next session */
    unsigned long long xt_num;  /* last session number handed out */
    double noise, noise_t;      /* demo rate noise and when it was drawn */
};

/* One request body and the ids it carries. */
struct tt_body {
    char *json;             /* serialized body, from json_dumps() */
    size_t len;             /* bytes of json */
    int n;                  /* events in the body */
    char (*ids)[TT_ID_LEN]; /* id of each event */
};

/* State shared by the workers and the main thread. */
struct tt_run {
    const struct tt_cfg *cfg;
    pthread_mutex_t lock; /* guards gen and the schedule */
    struct tt_gen gen;    /* the event generator */
    double t0;            /* monotonic start of the run */
    int64_t t0_ms;        /* wall clock at t0, epoch ms */
    double next_due;      /* demo: monotonic time of the next batch */
    long long reserved;   /* events handed out so far */
    int exhausted;        /* count or duration reached */
    char key[TT_KEY_LEN]; /* the bearer key at start */
    FILE *ids;            /* --ids-out, or NULL; guarded by ids_lock */
    pthread_mutex_t ids_lock;
    atomic_long sent, ok, dup, h4, h5, conn, retries; /* the summary */
    atomic_int running;                               /* workers running */
    atomic_long last_warn; /* monotonic 0.1 s of the last warning */
};

/* One worker thread and its connection. */
struct tt_worker {
    struct tt_run *run;
    pthread_t thread;
    CURL *easy;              /* one handle: one keep-alive connection */
    CURLM *multi;            /* drives easy so that stops are seen quickly */
    struct curl_slist *hdrs; /* Authorization, Content-Type */
    char *resp;              /* the answer's body, NUL-terminated */
    size_t resp_len, resp_cap;
};

/* Sleep until monotonic time t in slices of 100 ms; 1 if a stop cut it. */
static int sleep_until(double t)
{
    for (;;) {
        double d = t - cli_mono_now();
        if (tt_stop)
            return 1;
        if (d <= 0)
            return 0;
        struct timespec ts = {0, (long)((d > 0.1 ? 0.1 : d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Seed the generator and fill its weight tables. */
static void gen_init(struct tt_gen *g, unsigned long long seed)
{
    memset(g, 0, sizeof *g);
    g->s = g->seed = seed;
    for (int i = 0; i < TT_NMODELS; i++)
        g->mw[i] = tt_models[i].weight;
    for (int i = 0; i < TT_NUSERS; i++)
        g->uw[i] = 1.0 / pow(i + 1, 0.8); /* a few heavy users */
    for (int i = 0; i < TT_NAGENTS; i++)
        g->aw[i] = tt_agents[i].weight;
    /* Session numbers start at a seed-derived base so that a restarted
     * demo does not continue the sessions of the previous run. */
    g->xt_num = (seed % 99991 + 1) * 1000;
    g->xt_next = rnd_exp(&g->s, 20.0);
}

/* Say whether provider p is in a 429 storm at simulated time sim. */
static int gen_storm(struct tt_gen *g, int p, double sim)
{
    if (sim >= g->storm_end[p]) {
        /* The last storm is over: the next comes in ~25 min, lasts ~30 s. */
        g->storm_start[p] = sim + rnd_exp(&g->s, 1500.0);
        g->storm_end[p] = g->storm_start[p] + 20.0 + 20.0 * rnd_u01(&g->s);
    }
    return sim >= g->storm_start[p];
}

/* Return a crosstalk session with a call due at sim, starting one when it
 * is time; NULL when no crosstalk call is due. */
static struct tt_xt *gen_xt_due(struct tt_gen *g, double sim)
{
    struct tt_xt *x = NULL;
    for (int i = 0; i < TT_XT_MAX; i++)
        if (g->xt[i].active && g->xt[i].due <= sim)
            return &g->xt[i];
    if (sim < g->xt_next)
        return NULL;
    g->xt_next = sim + rnd_exp(&g->s, 90.0);
    for (int i = 0; i < TT_XT_MAX && !x; i++)
        if (!g->xt[i].active)
            x = &g->xt[i];
    if (!x)
        return NULL;
    x->nmodels = 2 + rnd_int(&g->s, 3);
    for (int i = 0, m, dup; i < x->nmodels; i++) {
        do { /* any chat model but the local one, each at most once */
            m = rnd_int(&g->s, TT_NMODELS - 1);
            dup = tt_models[m].embed;
            for (int j = 0; j < i; j++)
                dup |= x->models[j] == m;
        } while (dup);
        x->models[i] = m;
    }
    x->active = 1;
    x->num = ++g->xt_num;
    x->rounds = 3 + rnd_int(&g->s, 6);
    x->round = 1;
    x->next = 0;
    x->user = rnd_pick(&g->s, g->uw, TT_NUSERS);
    x->due = sim;
    return x;
}

/* Set key k of o to v (stolen); returns 1 on failure, for or-ing. */
static int jset(json_t *o, const char *k, json_t *v)
{
    return v == NULL || json_object_set_new(o, k, v) != 0;
}

/* Generate one event at simulated time sim stamped ts_ms, writing its id
 * into id; NULL when memory ran out. */
static json_t *gen_event(struct tt_gen *g, double sim, int64_t ts_ms, char *id)
{
    struct tt_xt *x = gen_xt_due(g, sim);
    int mi, ui, ai = -1;
    if (x) {
        mi = x->models[x->next];
        ui = x->user;
    } else {
        mi = rnd_pick(&g->s, g->mw, TT_NMODELS);
        ui = rnd_pick(&g->s, g->uw, TT_NUSERS);
        if (tt_models[mi].embed)
            ai = rnd_u01(&g->s) < 0.8 ? TT_AGENT_RAG : -1;
        else if (rnd_u01(&g->s) < 0.85)
            ai = rnd_pick(&g->s, g->aw, TT_NAGENTS);
    }
    const struct tt_model *m = &tt_models[mi];
    double im = ai >= 0 ? tt_agents[ai].in_mult : 1.0;
    double om = ai >= 0 ? tt_agents[ai].out_mult : 1.0;
    long long in, out = 0, cr = 0, cw = 0, rs = 0;
    double lat, ttft = -1, cost = -1;

    if (m->embed) {
        in = rnd_tokens(&g->s, m->in_med * im, 0.9, 8, 8000);
        lat = rnd_lognorm(&g->s, m->base_ms + in * 0.01, 0.35);
    } else {
        /* A crosstalk conversation grows round by round. */
        in = rnd_tokens(&g->s, x ? 900 + 700 * x->round : m->in_med * im,
                        x ? 0.3 : 0.7, 200, 8000);
        out = rnd_tokens(&g->s, m->out_med * om, 0.8, 50, 2000);
        if (m->reasoning)
            rs = llround(out * (0.3 + 0.45 * rnd_u01(&g->s)));
        if (m->cache && rnd_u01(&g->s) < 0.35)
            cr = rnd_tokens(&g->s, 4000, 0.8, 1024, 60000);
        if (m->cache && rnd_u01(&g->s) < 0.12)
            cw = rnd_tokens(&g->s, 2500, 0.7, 1024, 30000);
        double base = rnd_lognorm(&g->s, m->base_ms, 0.35);
        double prefill = (in + cw) * 0.012 + cr * 0.002;
        lat = base + prefill +
              out / m->tps * 1000.0 * rnd_lognorm(&g->s, 1.0, 0.25);
        /* Reasoning happens before the first visible token. */
        ttft = (base + prefill) * rnd_lognorm(&g->s, 1.0, 0.2) +
               rs / m->tps * 1000.0;
        if (rnd_u01(&g->s) < 0.015) /* the long tail, short of a timeout */
            lat = fmin(lat * (2.0 + 3.0 * rnd_u01(&g->s)), 170000.0);
        ttft = ttft > lat * 0.9 ? lat * 0.9 : ttft;
    }

    /* Errors: rare 429s except in a provider's storms, 5xx, timeouts. */
    int status = 200;
    const char *etype = NULL;
    double u = rnd_u01(&g->s);
    double p429 = 0.004 + (gen_storm(g, m->prov, sim) ? 0.35 : 0.0);
    if (u < p429) {
        status = 429;
        etype = "rate_limit";
        in = out = cr = cw = rs = 0;
        lat = rnd_lognorm(&g->s, 90, 0.5);
        ttft = -1;
    } else if (u < p429 + 0.008) {
        status = rnd_u01(&g->s) < 0.6 ? 500 : 503;
        etype = "server_error";
        out = m->embed || rnd_u01(&g->s) < 0.7 ? 0 : 1 + rnd_int(&g->s, 20);
        rs = cr = cw = 0;
        lat = rnd_lognorm(&g->s, m->base_ms * 1.5, 0.6) +
              (out ? out / m->tps * 1000.0 : 0);
        ttft = out ? lat * 0.5 : -1;
    } else if (u < p429 + 0.011) {
        static const double limits[] = {30000, 60000, 120000};
        status = rnd_u01(&g->s) < 0.5 ? 408 : 504;
        etype = "timeout";
        out = rs = 0;
        lat = limits[rnd_int(&g->s, 3)] + 40.0 * rnd_u01(&g->s);
        ttft = -1;
    }
    /* A few gateways report their own (negotiated) cost. */
    if (rnd_u01(&g->s) < 0.03)
        cost = (in * m->p_in + out * m->p_out + cr * m->p_cr + cw * m->p_cw) /
               1e6 * (0.85 + 0.15 * rnd_u01(&g->s));

    int team = ui % TT_NTEAMS, tagged;
    const char *env = rnd_u01(&g->s) < 0.85 ? "prod" : "staging";
    char user[32], key[64], req[32], sess[32];
    if (ui < TT_NNAMES)
        snprintf(user, sizeof user, "%s", tt_names[ui]);
    else
        snprintf(user, sizeof user, "user-%03d", ui + 1);
    snprintf(key, sizeof key, "%s-%s", tt_teams[team], env);
    snprintf(req, sizeof req, "req_%016llx",
             (unsigned long long)splitmix(&g->s));
    snprintf(id, TT_ID_LEN, "%llx-%llx", g->seed, ++g->counter);
    snprintf(sess, sizeof sess, "xt-%llu", x ? x->num : 0);
    tagged = rnd_u01(&g->s) < 0.4;

    /* Optional fields are left out: NULL strings, zero counts, negative
     * times and costs. */
    const char *agent = x ? "crosstalk" : ai >= 0 ? tt_agents[ai].name : NULL;
    const char *okeys[] = {"cache_read_tokens", "cache_write_tokens",
                           "reasoning_tokens", "round"};
    long long ovals[] = {cr, cw, rs, x ? x->round : 0};
    json_t *t, *o;
    /* One key and its value per line. */
    /* clang-format off */
    o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:f, s:i, s:s*, s:s,"
                  " s:s*, s:s, s:s*, s:s}",
                  "id", id,
                  "ts", (json_int_t)ts_ms,
                  "provider", tt_providers[m->prov],
                  "model", m->name,
                  "operation", m->embed ? "embeddings" : "chat",
                  "input_tokens", (json_int_t)in,
                  "output_tokens", (json_int_t)out,
                  "latency_ms", round(lat * 10) / 10,
                  "status", status,
                  "error_type", etype,
                  "user", user,
                  "agent", agent,
                  "api_key", key,
                  "session", x ? sess : NULL,
                  "request_id", req);
    /* clang-format on */
    int bad = o == NULL;
    for (int i = 0; !bad && i < 4; i++)
        if (ovals[i])
            bad = jset(o, okeys[i], json_integer(ovals[i]));
    if (!bad && ttft >= 0)
        bad = jset(o, "ttft_ms", json_real(round(ttft * 10) / 10));
    if (!bad && cost >= 0)
        bad = jset(o, "cost_usd", json_real(round(cost * 1e8) / 1e8));
    if (!bad && tagged) {
        t = json_object();
        bad = t == NULL || json_object_set(o, "tags", t) != 0;
        bad |= !bad && jset(t, "env", json_string(env));
        bad |= !bad && jset(t, "team", json_string(tt_teams[team]));
        json_decref(t);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    if (x && ++x->next < x->nmodels) {
        x->due = sim + 0.2 + 2.3 * rnd_u01(&g->s); /* the round goes on */
    } else if (x) {
        x->next = 0; /* rounds are further apart: tens of seconds in all */
        x->due = sim + 4.0 + 11.0 * rnd_u01(&g->s);
        x->active = ++x->round <= x->rounds;
    }
    return o;
}

/* The demo's target rate at monotonic time t: a daily sine, a ten-minute
 * wave and smooth noise around the mean, within [0.4, 1.6] of it. */
static double demo_rate(struct tt_run *r, double t)
{
    struct tt_gen *g = &r->gen;
    if (t > g->noise_t) {
        /* An Ornstein-Uhlenbeck step: unit variance, one-minute memory. */
        double a = exp(-(t - g->noise_t) / 60.0);
        g->noise = g->noise * a + sqrt(1.0 - a * a) * rnd_norm(&g->s);
        g->noise_t = t;
    }
    double wall = r->t0_ms / 1000.0 + (t - r->t0);
    double day = sin(2.0 * M_PI * (fmod(wall, 86400.0) - 9 * 3600) / 86400);
    double wave = sin(2.0 * M_PI * wall / 600.0);
    double f = 1.0 + 0.3 * day + 0.12 * wave + 0.12 * g->noise;
    return r->cfg->rate * (f < 0.4 ? 0.4 : f > 1.6 ? 1.6 : f);
}

/* Release a body's memory. */
static void body_free(struct tt_body *b)
{
    free(b->json);
    free(b->ids);
    memset(b, 0, sizeof *b);
}

/* Hand out the next batch: fill b and its due time.  Returns 0, 1 when the
 * run has nothing more to send, -1 when memory ran out. */
static int run_next(struct tt_run *r, struct tt_body *b, double *due)
{
    const struct tt_cfg *c = r->cfg;
    json_t *arr = NULL, *one = NULL;
    int rc = 1;
    memset(b, 0, sizeof *b);
    pthread_mutex_lock(&r->lock);
    long long n = (long long)c->batch, count = (long long)c->count;
    if (count && r->reserved + n > count)
        n = count - r->reserved;
    double now = cli_mono_now(), d = now, gap = 0;
    if (c->demo) {
        /* No catching up after an outage: the demo just resumes. */
        d = r->next_due < now - 1.0 ? now : r->next_due;
        gap = 1.0 / demo_rate(r, d);
    } else if (c->rate > 0) {
        gap = 1.0 / c->rate;
        d = r->t0 + r->reserved * gap;
    }
    if (r->exhausted || tt_stop || n <= 0 ||
        (c->duration > 0 && d - r->t0 >= c->duration))
        goto out;
    rc = -1;
    b->ids = calloc((size_t)n, sizeof *b->ids);
    if (!b->ids || (n > 1 && !(arr = json_array())))
        goto out;
    /* ts is when the call started: a batch stands for the calls of the
     * interval it covers, ending when it is sent. */
    int64_t ts = r->t0_ms + (int64_t)(((d > now ? d : now) - r->t0) * 1000);
    for (long long j = 0; j < n; j++) {
        double sim =
            c->demo ? d - r->t0 + j * gap : (r->reserved + j) * TT_SIM_STEP;
        one = gen_event(&r->gen, sim, ts - (int64_t)((n - 1 - j) * gap * 1000),
                        b->ids[j]);
        if (!one || (arr && json_array_append_new(arr, one)))
            goto out;
    }
    b->n = (int)n;
    r->reserved += n;
    r->next_due = d + n * gap;
    rc = 0;
out:
    r->exhausted |= rc != 0;
    pthread_mutex_unlock(&r->lock);
    /* On failure one is NULL or already owned by arr. */
    one = arr ? arr : one;
    if (rc == 0 &&
        !(b->json = json_dumps(one, JSON_COMPACT | JSON_REAL_PRECISION(10))))
        rc = -1;
    json_decref(one);
    if (rc != 0)
        body_free(b);
    b->len = rc == 0 ? strlen(b->json) : 0;
    *due = d;
    return rc;
}

/* Append data to the worker's answer buffer (libcurl write callback);
 * beyond TT_RESP_MAX bytes the answer is cut, not failed. */
static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct tt_worker *w = arg;
    size_t len = size * nmemb, need = w->resp_len + len + 1;
    if (need > TT_RESP_MAX)
        return len;
    if (need > w->resp_cap) {
        char *p = realloc(w->resp, need * 2);
        if (!p)
            return 0; /* fails the transfer: counted as an error */
        w->resp = p;
        w->resp_cap = need * 2;
    }
    memcpy(w->resp + w->resp_len, data, len);
    w->resp_len += len;
    w->resp[w->resp_len] = '\0';
    return len;
}

/* (Re)build the worker's request headers for key; -1 on failure. */
static int worker_headers(struct tt_worker *w, const char *key)
{
    char auth[TT_KEY_LEN + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth), *t = h;
    if (t)
        t = curl_slist_append(h, "Content-Type: application/json");
    if (t) /* no "Expect: 100-continue" round trip for large batches */
        t = curl_slist_append(h, "Expect:");
    if (!t || curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK) {
        curl_slist_free_all(h);
        return -1;
    }
    curl_slist_free_all(w->hdrs);
    w->hdrs = h;
    return 0;
}

/* Outcomes of one POST. */
enum tt_post { TT_POST_DONE, TT_POST_CONN, TT_POST_ABORTED };

/* POST body b once.  On TT_POST_DONE, *code is the HTTP status and *ra the
 * Retry-After in seconds (0 if none); on TT_POST_CONN, *err says why. */
static enum tt_post post_once(struct tt_worker *w, const struct tt_body *b,
                              long *code, long *ra, CURLcode *err)
{
    CURL *e = w->easy;
    CURLMsg *msg;
    int running = 1, left;
    double stop_seen = 0;
    curl_off_t retry = 0;
    w->resp_len = 0;
    *err = CURLE_OK;
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->json);
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        *err = CURLE_OUT_OF_MEMORY;
        return TT_POST_CONN;
    }
    while (running) {
        if (curl_multi_perform(w->multi, &running) != CURLM_OK)
            *err = CURLE_FAILED_INIT;
        if (!running || *err)
            break;
        curl_multi_poll(w->multi, NULL, 0, 100, NULL);
        /* On a stop, an in-flight request gets a short grace to finish;
         * an aborted request was not acknowledged. */
        if (tt_stop && stop_seen == 0)
            stop_seen = cli_mono_now();
        if (tt_stop && cli_mono_now() - stop_seen > TT_STOP_GRACE) {
            curl_multi_remove_handle(w->multi, e);
            return TT_POST_ABORTED;
        }
    }
    while ((msg = curl_multi_info_read(w->multi, &left)))
        if (msg->msg == CURLMSG_DONE && *err == CURLE_OK)
            *err = msg->data.result;
    curl_multi_remove_handle(w->multi, e);
    if (*err != CURLE_OK)
        return TT_POST_CONN;
    *code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, code);
    if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry) != CURLE_OK)
        retry = 0;
    *ra = retry > 0 ? (long)retry : 0;
    return TT_POST_DONE;
}

/* Record an acknowledged body: counters, duplicates and --ids-out. */
static void body_acked(struct tt_worker *w, const struct tt_body *b)
{
    struct tt_run *r = w->run;
    json_t *ans = w->resp ? json_loadb(w->resp, w->resp_len, 0, NULL) : NULL;
    json_t *d = json_object_get(ans, "duplicates");
    atomic_fetch_add(&r->dup, json_is_integer(d) ? json_integer_value(d) : 0);
    json_decref(ans);
    if (r->ids) {
        pthread_mutex_lock(&r->ids_lock);
        for (int i = 0; i < b->n; i++)
            fprintf(r->ids, "%s\n", b->ids[i]);
        if (fflush(r->ids) != 0)
            cli_msg("cannot write \"%s\": %s", r->cfg->ids_out,
                    strerror(errno));
        pthread_mutex_unlock(&r->ids_lock);
    }
    atomic_fetch_add(&r->ok, b->n);
}

/* Send body b until it is acknowledged, rejected, out of retries (load
 * mode: TT_MAX_RETRIES) or the run stops. */
static void post_body(struct tt_worker *w, const struct tt_body *b)
{
    struct tt_run *r = w->run;
    const struct tt_cfg *c = r->cfg;
    double backoff = c->demo ? 0.5 : 0.1, cap = c->demo ? 5.0 : 2.0;
    atomic_fetch_add(&r->sent, b->n);
    for (int attempt = 0;; attempt++) {
        long code = 0, ra = 0;
        CURLcode err;
        enum tt_post p = post_once(w, b, &code, &ra, &err);
        if (p == TT_POST_ABORTED)
            return;
        if (p == TT_POST_DONE && code >= 200 && code < 300) {
            body_acked(w, b);
            return;
        }
        /* Retry overload, server errors and connection errors; a demo also
         * outlives a key that changed under it (the stack was reset). */
        int reauth = p == TT_POST_DONE && (code == 401 || code == 403) &&
                     c->demo && c->key_file;
        int retry = p == TT_POST_CONN || code >= 500 || code == 429 || reauth;
        atomic_fetch_add(p == TT_POST_CONN ? &r->conn
                         : code >= 500     ? &r->h5
                                           : &r->h4,
                         1);
        long now = (long)(cli_mono_now() * 10),
             last = atomic_load(&r->last_warn);
        if (!c->quiet && now - last >= 50 && /* one warning per 5 s */
            atomic_compare_exchange_strong(&r->last_warn, &last, now)) {
            if (p == TT_POST_CONN)
                cli_msg("%s: %s (attempt %d)", c->url, curl_easy_strerror(err),
                        attempt + 1);
            else
                cli_msg("%s: HTTP %ld (attempt %d): %.200s", c->url, code,
                        attempt + 1, w->resp_len ? w->resp : "");
        }
        if (!retry)
            return;
        if (!c->demo && attempt >= TT_MAX_RETRIES) {
            cli_msg("giving up on %d events after %d retries", b->n, attempt);
            return;
        }
        if (c->duration > 0 && c->demo && cli_mono_now() - r->t0 > c->duration)
            return;
        double wait = ra > 0 ? ra : backoff;
        backoff = backoff * 2 > cap ? cap : backoff * 2;
        if (sleep_until(cli_mono_now() + (wait > 60 ? 60 : wait)))
            return;
        char key[TT_KEY_LEN];
        if (reauth && cli_read_key_file(c->key_file, key, sizeof key) == 0 &&
            worker_headers(w, key) < 0)
            return;
        atomic_fetch_add(&r->retries, 1);
    }
}

/* Worker thread: take batches, wait for their time, post them. */
static void *worker_main(void *arg)
{
    struct tt_worker *w = arg;
    struct tt_body b;
    double due;
    int rc;
    while ((rc = run_next(w->run, &b, &due)) == 0) {
        if (!sleep_until(due))
            post_body(w, &b);
        body_free(&b);
    }
    if (rc < 0)
        cli_msg("out of memory generating events");
    atomic_fetch_sub(&w->run->running, 1);
    return NULL;
}

/* Create a worker's curl handles; -1 on failure. */
static int worker_init(struct tt_worker *w, struct tt_run *r)
{
    memset(w, 0, sizeof *w);
    w->run = r;
    w->easy = curl_easy_init();
    w->multi = curl_multi_init();
    if (!w->easy || !w->multi)
        return -1;
    CURL *e = w->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, r->cfg->url);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "tt-traffic/1");
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    return bad || worker_headers(w, r->key) < 0 ? -1 : 0;
}

/* Release a worker's handles and buffers. */
static void worker_free(struct tt_worker *w)
{
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->easy)
        curl_easy_cleanup(w->easy);
    curl_slist_free_all(w->hdrs);
    free(w->resp);
}

/* Print the one-line summary to stdout. */
static void print_summary(struct tt_run *r)
{
    double el = cli_mono_now() - r->t0;
    long ok = atomic_load(&r->ok);
    printf("sent=%ld ok=%ld dup=%ld http_4xx=%ld http_5xx=%ld conn_err=%ld "
           "retries=%ld elapsed_s=%.1f rate=%.1f\n",
           atomic_load(&r->sent), ok, atomic_load(&r->dup), atomic_load(&r->h4),
           atomic_load(&r->h5), atomic_load(&r->conn), atomic_load(&r->retries),
           el, el > 0 ? ok / el : 0.0);
    fflush(stdout);
}

/* Set the stop flag (SIGINT, SIGTERM). */
static void on_signal(int sig)
{
    (void)sig;
    tt_stop = 1;
}

/* The command-line options: where each value goes and what it accepts. */
static const struct cli_opt tt_opts[] = {
    {"url", 's', offsetof(struct tt_cfg, url_arg), 0, 0,
     "base URL of the stack, e.g. http://127.0.0.1:8080"},
    {"key", 's', offsetof(struct tt_cfg, key), 0, 0, "API key"},
    {"key-file", 's', offsetof(struct tt_cfg, key_file), 0, 0,
     "read the API key from FILE (demo: wait for it)"},
    {"demo", 'f', offsetof(struct tt_cfg, demo), 0, 0,
     "endless 5-20 events/s, retrying every failure forever"},
    {"rate", 'd', offsetof(struct tt_cfg, rate), 0, 1e7,
     "events/s in all; 0 = unlimited (demo: the mean, 12.5)"},
    {"duration", 'd', offsetof(struct tt_cfg, duration), 0, 1e9,
     "seconds to run (0 = unbounded)"},
    {"count", 'w', offsetof(struct tt_cfg, count), 0, 1e15,
     "events to send (load mode default 1000 unless --duration)"},
    {"batch", 'w', offsetof(struct tt_cfg, batch), 1, TT_MAX_BATCH,
     "events per request (1)"},
    {"concurrency", 'w', offsetof(struct tt_cfg, concurrency), 1, 256,
     "parallel requests (demo 2, load 4)"},
    {"seed", 'w', offsetof(struct tt_cfg, seed), 0, 9007199254740992.0,
     "generator seed and id prefix (default: random)"},
    {"ids-out", 's', offsetof(struct tt_cfg, ids_out), 0, 0,
     "append the id of every acknowledged event to FILE"},
    {"quiet", 'f', offsetof(struct tt_cfg, quiet), 0, 0,
     "no periodic summaries or warnings"},
};
#define TT_NOPTS ((int)(sizeof tt_opts / sizeof tt_opts[0]))
#define TT_USAGE                                                               \
    "usage: tt-traffic --url URL (--key KEY | --key-file FILE) [options]\n"

/* Fill c from the command line; returns 0, or the exit status 2. */
static int parse_args(struct tt_cfg *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->rate = -1;
    c->batch = 1;
    c->seed = -1;
    if (cli_parse(c, TT_USAGE, tt_opts, TT_NOPTS, argc, argv) != 0)
        return 2;
    if (cli_target(c->url_arg, c->key, c->key_file, c->url, sizeof c->url,
                   TT_USAGE, tt_opts, TT_NOPTS) != 0)
        return 2;
    if (c->demo && c->rate <= 0)
        c->rate = 12.5;
    c->rate = c->rate < 0 ? 0 : c->rate;
    c->concurrency = c->concurrency ? c->concurrency : c->demo ? 2 : 4;
    if (!c->demo && !c->count && c->duration == 0)
        c->count = 1000;
    if (c->seed < 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^
                     (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
        c->seed = (double)(splitmix(&x) >> 20); /* 44 bits: short ids */
    }
    return 0;
}

/* Get the key into r->key, waiting for the key file (demo: until it
 * appears; load mode: ten seconds).  Returns 0, or -1 after a message. */
static int load_key(struct tt_run *r)
{
    const struct tt_cfg *c = r->cfg;
    double until = cli_mono_now() + 10.0;
    int rc = cli_key_arg(c->key, r->key, sizeof r->key);
    if (rc <= 0)
        return rc;
    for (int said = 0; cli_read_key_file(c->key_file, r->key, sizeof r->key);
         said = 1) {
        if (!c->demo && cli_mono_now() > until) {
            cli_msg("no key in \"%s\"", c->key_file);
            return -1;
        }
        if (!said && !c->quiet)
            cli_msg("waiting for the key file \"%s\"", c->key_file);
        if (sleep_until(cli_mono_now() + 0.5))
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct tt_cfg cfg;
    struct tt_run run;
    struct tt_worker *ws;
    struct sigaction sa;
    cli_prog = "tt-traffic";
    int rc = parse_args(&cfg, argc, argv), started = 0, nw;
    if (rc)
        return rc;
    nw = (int)cfg.concurrency;
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The supervisor forwards SIGHUP (log rotation); nothing to reopen. */
    signal(SIGHUP, SIG_IGN);

    memset(&run, 0, sizeof run);
    run.cfg = &cfg;
    pthread_mutex_init(&run.lock, NULL);
    pthread_mutex_init(&run.ids_lock, NULL);
    gen_init(&run.gen, (unsigned long long)cfg.seed);
    run.t0 = cli_mono_now();
    if (load_key(&run) < 0) {
        if (!tt_stop)
            return 2;
        print_summary(&run); /* stopped while waiting: nothing was sent */
        return 0;
    }
    if (cfg.ids_out && !(run.ids = fopen(cfg.ids_out, "a"))) {
        cli_msg("cannot open \"%s\": %s", cfg.ids_out, strerror(errno));
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        !(ws = calloc((size_t)nw, sizeof *ws))) {
        cli_msg("cannot initialise: out of memory");
        return 2;
    }
    /* The clock starts once the key is there: waiting is not sending. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    run.t0 = run.next_due = run.gen.noise_t = cli_mono_now();
    run.t0_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    atomic_store(&run.running, nw);
    for (; started < nw; started++)
        if (worker_init(&ws[started], &run) < 0 ||
            pthread_create(&ws[started].thread, NULL, worker_main,
                           &ws[started]) != 0) {
            cli_msg("cannot start worker %d", started);
            worker_free(&ws[started]);
            atomic_fetch_sub(&run.running, nw - started);
            tt_stop = 1; /* the started ones stop after their batches */
            break;
        }
    for (double last = run.t0; atomic_load(&run.running) > 0;) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        if (cfg.demo && !cfg.quiet && cli_mono_now() - last >= 10.0) {
            last = cli_mono_now();
            print_summary(&run);
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_free(&ws[i]);
    }
    print_summary(&run);
    if (run.ids)
        fclose(run.ids);
    free(ws);
    curl_global_cleanup();
    if (cfg.demo)
        return 0;
    return started && atomic_load(&run.ok) == atomic_load(&run.sent) ? 0 : 1;
}
