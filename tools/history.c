/*
 * history.c: tt-history, the analytics benchmark's data generator.
 *
 * It posts --count events (default 10 million) whose ts spread over the
 * last --days days (default 90) to URL/api/v1/events, in JSON arrays of
 * --batch events (default 1000) from --concurrency threads, each with one
 * libcurl handle (one keep-alive connection).  The history looks like a
 * company's fleet: 57 models of ten providers (52 from the price catalog,
 * five self-hosted or fine-tuned ones that carry cost_usd), 100 agents of
 * 20 kinds each using 2-5 models, 1000 users each using 1-3 agents with
 * Zipf-like activity, sessions of 1-20 calls in rounds (crosstalk agents
 * ask several models per round), log-normal token counts and latencies,
 * and ~2% errors (429, 5xx, timeouts, bad requests) with provider incidents.
 * Traffic follows working hours in Europe and America, is low at weekends
 * and grows over the period.
 *
 * Determinism: event i belongs to batch i / --batch, and each batch is
 * generated from its own random stream derived from --seed and the batch
 * number, so the events are the same whatever the concurrency; only ts
 * moves with --end (default: now).  Ids are "h<seed>-<index>" in hex, so a
 * second run with the same seed is answered as duplicates.
 *
 * The "world" (models of each agent, agents of each user, the hourly
 * shape) is built once by main() and read-only afterwards.  Workers share
 * only the next batch number and the counters, all atomics.  --dry-run
 * generates and serializes without sending, to measure the generator.
 */
#include <curl/curl.h>
#include <jansson.h>
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

#include "arena.h"
#include "cli.h"
#include "rnd.h"

#define TH_MAX_BATCH   1000 /* the server's EV_MAX_BATCH */
#define TH_MAX_RETRIES 30   /* retries of one body on 429/5xx/network */
#define TH_KEY_LEN     512  /* longest API key accepted */
#define TH_NUSERS      1000 /* users of the company */
#define TH_NAGENTS     100  /* agents: 20 kinds, 5 of each */
#define TH_AGENT_MAX   5    /* models per agent, at most */
#define TH_USER_AGENTS 3    /* agents per user, at most */
#define TH_SESS_MAX    20   /* calls of a session, at most */
#define TH_NTEAMS      12   /* teams, for api_key and tags */
#define TH_HOUR_MS     3600000LL
#define TH_RESP_MAX    65536 /* bytes of an answer kept */

/* Set by SIGINT/SIGTERM: workers stop after their current batch. */
static volatile sig_atomic_t th_stop;

/* The command line, fixed once parse_args() has run. */
struct th_cfg {
    char url[1024];       /* the events endpoint: --url plus /api/v1/events */
    const char *url_arg;  /* --url as given */
    const char *key;      /* --key, or NULL */
    const char *key_file; /* --key-file, or NULL */
    int dry_run, quiet;   /* --dry-run, --quiet */
    double count;         /* events in all */
    double days;          /* the period the events cover, ending at end */
    double end;           /* epoch ms of the period's end; 0: now */
    double batch;         /* events per request */
    double concurrency;   /* parallel requests */
    double seed;          /* the world, the streams and the id prefix */
};

/* Providers, by their OpenTelemetry gen_ai.system names. */
static const char *const th_providers[] = {
    "openai",   "anthropic", "gcp.gemini", "mistral_ai", "aws.bedrock",
    "deepseek", "groq",      "cohere",     "local",      "az.ai.openai"};
#define TH_NPROV 10

/* Which providers report prompt-cache tokens: 1 reads, 2 reads and writes. */
static const int th_prov_cache[TH_NPROV] = {1, 2, 1, 0, 0, 1, 0, 0, 0, 1};

/* Model classes and how their calls look. */
enum th_class { C_FRONT, C_LARGE, C_MID, C_SMALL, C_REASON, C_EMBED };

static const struct th_class_par {
    double in_med, out_med; /* median input and output tokens */
    double tps, base_ms;    /* output tokens/s; fixed overhead in ms */
} th_classes[] = {
    [C_FRONT] = {3000, 700, 35, 1100}, [C_LARGE] = {2500, 500, 60, 600},
    [C_MID] = {1800, 400, 90, 400},    [C_SMALL] = {1200, 300, 140, 250},
    [C_REASON] = {2000, 900, 90, 900}, [C_EMBED] = {400, 0, 0, 60},
};

/* One model: a price of 0 means the catalog prices it (no cost_usd sent). */
struct th_model {
    int prov;           /* index into th_providers */
    const char *name;   /* the model as the provider reports it */
    enum th_class cls;  /* how its calls look */
    double weight;      /* relative popularity */
    double p_in, p_out; /* USD per 1M tokens when not in the catalog */
};

static const struct th_model th_models[] = {
    {0, "gpt-5", C_REASON, 6, 0, 0},
    {0, "gpt-5-mini", C_REASON, 8, 0, 0},
    {0, "gpt-5-nano", C_SMALL, 5, 0, 0},
    {0, "gpt-5-pro", C_FRONT, 0.3, 0, 0},
    {0, "gpt-4.1", C_LARGE, 5, 0, 0},
    {0, "gpt-4.1-mini", C_MID, 6, 0, 0},
    {0, "gpt-4.1-nano", C_SMALL, 3, 0, 0},
    {0, "gpt-4o", C_LARGE, 7, 0, 0},
    {0, "gpt-4o-mini", C_SMALL, 12, 0, 0},
    {0, "gpt-4-turbo", C_LARGE, 0.5, 0, 0},
    {0, "o1", C_REASON, 0.8, 0, 0},
    {0, "o1-mini", C_REASON, 0.4, 0, 0},
    {0, "o3", C_REASON, 2, 0, 0},
    {0, "o3-mini", C_REASON, 1.5, 0, 0},
    {0, "o4-mini", C_REASON, 3, 0, 0},
    {0, "text-embedding-3-small", C_EMBED, 8, 0, 0},
    {0, "text-embedding-3-large", C_EMBED, 2, 0, 0},
    {1, "claude-opus-4-5", C_FRONT, 2, 0, 0},
    {1, "claude-opus-4-1", C_FRONT, 1, 0, 0},
    {1, "claude-sonnet-4-5", C_LARGE, 9, 0, 0},
    {1, "claude-sonnet-4", C_LARGE, 4, 0, 0},
    {1, "claude-3-7-sonnet", C_LARGE, 2, 0, 0},
    {1, "claude-3-5-sonnet", C_LARGE, 1, 0, 0},
    {1, "claude-haiku-4-5", C_SMALL, 7, 0, 0},
    {1, "claude-3-5-haiku", C_SMALL, 3, 0, 0},
    {1, "claude-3-haiku", C_SMALL, 1.5, 0, 0},
    {2, "gemini-2.5-pro", C_REASON, 4, 0, 0},
    {2, "gemini-2.5-flash", C_MID, 10, 0, 0},
    {2, "gemini-2.5-flash-lite", C_SMALL, 4, 0, 0},
    {2, "gemini-2.0-flash", C_MID, 3, 0, 0},
    {2, "gemini-2.0-flash-lite", C_SMALL, 1.5, 0, 0},
    {3, "mistral-large-latest", C_LARGE, 2, 0, 0},
    {3, "mistral-medium-latest", C_MID, 1.5, 0, 0},
    {3, "mistral-small-latest", C_SMALL, 3, 0, 0},
    {3, "codestral-latest", C_MID, 2, 0, 0},
    {3, "ministral-8b-latest", C_SMALL, 1, 0, 0},
    {3, "open-mistral-nemo", C_SMALL, 0.8, 0, 0},
    {4, "anthropic.claude-3-5-sonnet-20241022-v2:0", C_LARGE, 2, 0, 0},
    {4, "anthropic.claude-3-7-sonnet-20250219-v1:0", C_LARGE, 2, 0, 0},
    {4, "anthropic.claude-3-haiku-20240307-v1:0", C_SMALL, 1.5, 0, 0},
    {4, "amazon.nova-pro-v1:0", C_MID, 2, 0, 0},
    {4, "amazon.nova-lite-v1:0", C_SMALL, 1.5, 0, 0},
    {4, "amazon.nova-micro-v1:0", C_SMALL, 1, 0, 0},
    {4, "meta.llama3-1-70b-instruct-v1:0", C_LARGE, 1, 0, 0},
    {4, "meta.llama3-1-8b-instruct-v1:0", C_SMALL, 0.8, 0, 0},
    {5, "deepseek-chat", C_MID, 3, 0, 0},
    {5, "deepseek-reasoner", C_REASON, 1.5, 0, 0},
    {6, "llama-3.3-70b-versatile", C_LARGE, 2, 0, 0},
    {6, "llama-3.1-8b-instant", C_SMALL, 2, 0, 0},
    {7, "command-a-03-2025", C_LARGE, 1, 0, 0},
    {7, "command-r-plus", C_LARGE, 0.7, 0, 0},
    {7, "command-r", C_MID, 1, 0, 0},
    /* In no price catalog: the client sends cost_usd. */
    {8, "llama-3.1-8b-instruct-q4", C_SMALL, 2, 0.02, 0.02},
    {8, "qwen2.5-coder-32b-instruct", C_MID, 1.5, 0.1, 0.1},
    {8, "mxbai-embed-large-v1", C_EMBED, 1, 0.01, 0},
    {0, "ft:gpt-4o-mini-2024-07-18:acme:support:v3", C_SMALL, 2, 0.3, 1.2},
    {9, "gpt-4o-2024-11-20", C_LARGE, 2, 2.5, 10},
};
#define TH_NMODELS ((int)(sizeof th_models / sizeof th_models[0]))

/* A kind of agent: how it scales the model's medians and how it talks. */
static const struct th_kind {
    const char *name;
    double in_mult, out_mult; /* scale of input and output tokens */
    double p_session;         /* share of its conversations with a session */
    int embed;                /* 1: also embeds (retrieval) */
    int crosstalk;            /* 1: several models answer each round */
} th_kinds[] = {
    {"support-bot", 1.0, 0.8, 0.7, 0, 0},
    {"code-review", 1.6, 0.9, 0.3, 0, 0},
    {"summarizer", 2.0, 0.5, 0.1, 0, 0},
    {"router", 0.4, 0.25, 0.0, 0, 0},
    {"search-rag", 1.5, 0.7, 0.4, 1, 0},
    {"data-extract", 1.5, 0.6, 0.05, 0, 0},
    {"email-drafter", 0.6, 1.2, 0.3, 0, 0},
    {"sql-assistant", 1.0, 0.7, 0.5, 0, 0},
    {"chat-assistant", 1.0, 1.0, 0.8, 0, 0},
    {"translator", 1.0, 1.1, 0.1, 0, 0},
    {"classifier", 0.5, 0.1, 0.0, 0, 0},
    {"doc-qa", 1.8, 0.6, 0.6, 1, 0},
    {"meeting-notes", 2.5, 0.7, 0.1, 0, 0},
    {"coding-agent", 2.0, 1.2, 0.8, 0, 0},
    {"planner", 1.2, 1.0, 0.6, 0, 0},
    {"moderation", 0.4, 0.1, 0.0, 0, 0},
    {"crosstalk", 1.2, 1.0, 1.0, 0, 1},
    {"onboarding-guide", 0.8, 0.9, 0.7, 0, 0},
    {"report-writer", 1.5, 1.5, 0.4, 0, 0},
    {"triage", 0.7, 0.4, 0.2, 0, 0},
};
#define TH_NKINDS ((int)(sizeof th_kinds / sizeof th_kinds[0]))

static const char *const th_first[] = {
    "alice",  "bob",    "carol",  "dave",  "erin",  "frank",   "grace",
    "heidi",  "ivan",   "judy",   "kevin", "laura", "mallory", "niaj",
    "olivia", "peggy",  "rupert", "sybil", "trent", "victor",  "wendy",
    "xavier", "yara",   "zoe",    "amir",  "bea",   "chen",    "dara",
    "emeka",  "fatima", "goran",  "hana",  "ines",  "jonas",   "kiri",
    "lena",   "mateo",  "nora",   "omar",  "priya"};
#define TH_NFIRST 40

static const char *const th_teams[TH_NTEAMS] = {
    "platform", "support", "growth",  "research", "data",  "security",
    "mobile",   "web",     "finance", "legal",    "sales", "infra"};

/* One agent of the world. */
struct th_agent {
    char name[40];             /* "<kind>-NN" */
    int kind;                  /* index into th_kinds */
    int nmodels;               /* models it calls, 2..TH_AGENT_MAX */
    int models[TH_AGENT_MAX];  /* indexes into th_models */
    double mcum[TH_AGENT_MAX]; /* cumulative weights of models[] */
};

/* One user of the world. */
struct th_user {
    char name[24];               /* "<first>.NN" */
    int team;                    /* index into th_teams */
    int nagents;                 /* agents they use, 1..TH_USER_AGENTS */
    int agents[TH_USER_AGENTS];  /* indexes into world agents */
    double acum[TH_USER_AGENTS]; /* cumulative weights of agents[] */
};

/* A provider incident: more 429s and 5xx for a few hours. */
struct th_incident {
    int prov;         /* index into th_providers */
    int64_t from, to; /* epoch ms */
};
#define TH_MAX_INCIDENTS 64

/* Everything fixed before the workers start; read-only afterwards. */
struct th_world {
    unsigned long long seed;
    struct th_agent agents[TH_NAGENTS];
    struct th_user users[TH_NUSERS];
    double ucum[TH_NUSERS];   /* cumulative user activity weights */
    int64_t start_ms, end_ms; /* the period */
    int nslots;               /* hours in the period */
    long long *slot_end;      /* events before the end of each hour */
    struct th_incident inc[TH_MAX_INCIDENTS];
    int ninc;
};

static const char *const th_etypes[] = {"rate_limit", "server_error", "timeout",
                                        "invalid_request", "context_length"};
#define TH_NETYPES 5

/* A worker's shared string values, made once: every event refers to them
 * instead of allocating and copying its own. */
struct th_strs {
    json_t *prov[TH_NPROV], *model[TH_NMODELS], *op[2];
    json_t *user[TH_NUSERS], *agent[TH_NAGENTS];
    json_t *key[TH_NTEAMS][2], *team[TH_NTEAMS], *env[2];
    json_t *etype[TH_NETYPES];
};

/* State shared by the workers and the main thread. */
struct th_run {
    const struct th_cfg *cfg;
    const struct th_world *w;
    char key[TH_KEY_LEN];
    long long count, batch, nbatches;
    atomic_llong next_batch;                           /* to hand out */
    atomic_llong sent, ok, dup, h4, h5, conn, retries; /* the summary */
    atomic_llong bytes, gen_ns;                        /* generator cost */
    atomic_int failed;                                 /* a 4xx: stop all */
    double t0;                                         /* monotonic start */
};

/* One worker thread and its connection. */
struct th_worker {
    struct th_run *run;
    pthread_t thread;
    struct arena arena;      /* jansson's memory for one batch */
    struct th_strs strs;     /* shared string values (malloc) */
    CURL *easy;              /* one handle: one keep-alive connection */
    struct curl_slist *hdrs; /* Authorization, Content-Type, no Expect */
    char resp[TH_RESP_MAX];  /* the answer's body, NUL-terminated */
    size_t resp_len;
};

/* Return the calling thread's CPU time in nanoseconds. */
static long long thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Return the index i in [0, n) with cum[i-1] <= x < cum[i] for x drawn
 * uniformly below cum[n-1]: a weighted pick in O(log n). */
static int pick_cum(uint64_t *s, const double *cum, int n)
{
    double x = rnd_u01(s) * cum[n - 1];
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x < cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Shuffle a[0..n) (Fisher-Yates). */
static void shuffle(uint64_t *s, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rnd_int(s, i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Pick a model by popularity: an embedding model if embed, else a chat
 * model; of provider prov unless it is -1 (or has none left); different
 * from the n already in have[]. */
static int pick_model(uint64_t *s, int embed, int prov, const int *have, int n)
{
    double w[TH_NMODELS];
    for (int m = 0; m < TH_NMODELS; m++) {
        const struct th_model *md = &th_models[m];
        w[m] = (md->cls == C_EMBED) == (embed != 0) ? md->weight : 0;
        if (prov >= 0 && md->prov != prov)
            w[m] = 0;
        for (int j = 0; j < n; j++)
            if (have[j] == m)
                w[m] = 0;
    }
    double total = 0;
    for (int m = 0; m < TH_NMODELS; m++)
        total += w[m];
    if (total <= 0) /* the provider has nothing left: any provider */
        return prov >= 0 ? pick_model(s, embed, -1, have, n) : have[0];
    return rnd_pick(s, w, TH_NMODELS);
}

/* Fill an agent's cumulative model weights: the first model dominates. */
static void agent_weights(struct th_agent *a)
{
    static const double share[TH_AGENT_MAX] = {0.55, 0.22, 0.12, 0.07, 0.04};
    double c = 0;
    for (int i = 0; i < a->nmodels; i++) {
        /* A retrieval agent embeds about as often as it answers. */
        double w = th_kinds[a->kind].embed && i == 0 ? 0.45 : share[i];
        a->mcum[i] = c += w;
    }
}

/* Build the agents: each picks a home provider and 2-5 models, and every
 * model ends up used by at least one agent. */
static void world_agents(struct th_world *w, uint64_t *s)
{
    double pw[TH_NPROV] = {0};
    int used[TH_NMODELS] = {0};
    for (int m = 0; m < TH_NMODELS; m++)
        pw[th_models[m].prov] += th_models[m].weight;
    for (int i = 0; i < TH_NAGENTS; i++) {
        struct th_agent *a = &w->agents[i];
        const struct th_kind *k = &th_kinds[i % TH_NKINDS];
        a->kind = i % TH_NKINDS;
        snprintf(a->name, sizeof a->name, "%s-%02d", k->name,
                 i / TH_NKINDS + 1);
        a->nmodels = k->crosstalk ? 4 + rnd_int(s, 2) : 2 + rnd_int(s, 4);
        int home = rnd_pick(s, pw, TH_NPROV), n = 0;
        if (k->embed)
            a->models[n++] = pick_model(s, 1, -1, a->models, 0);
        /* The main model comes from the home provider; crosstalk agents
         * want different providers on purpose. */
        a->models[n] = pick_model(s, 0, home, a->models, n);
        for (n++; n < a->nmodels; n++)
            a->models[n] = pick_model(s, 0, -1, a->models, n);
        for (int j = 0; j < a->nmodels; j++)
            used[a->models[j]] = 1;
    }
    /* Rare models join agents with room (or replace a last model). */
    for (int m = 0, next = 0; m < TH_NMODELS; m++) {
        if (used[m])
            continue;
        int embed = th_models[m].cls == C_EMBED;
        for (int tries = 0; tries < TH_NAGENTS; tries++) {
            struct th_agent *a = &w->agents[next];
            next = (next + 7) % TH_NAGENTS;
            if (th_kinds[a->kind].embed < embed || a->nmodels < 2)
                continue;
            if (embed) {
                a->models[0] = m; /* the agent switches embedding model */
            } else if (a->nmodels < TH_AGENT_MAX) {
                a->models[a->nmodels++] = m;
            } else {
                continue;
            }
            used[m] = 1;
            break;
        }
    }
    for (int i = 0; i < TH_NAGENTS; i++)
        agent_weights(&w->agents[i]);
}

/* Build the users: Zipf-like activity, 1-3 agents each, popular agents
 * shared by many. */
static void world_users(struct th_world *w, uint64_t *s)
{
    int rank[TH_NUSERS > TH_NAGENTS ? TH_NUSERS : TH_NAGENTS];
    double aw[TH_NAGENTS], c = 0;
    for (int i = 0; i < TH_NAGENTS; i++)
        rank[i] = i;
    shuffle(s, rank, TH_NAGENTS);
    for (int i = 0; i < TH_NAGENTS; i++)
        aw[i] = 1.0 / pow(rank[i] + 1, 0.7);
    for (int i = 0; i < TH_NUSERS; i++)
        rank[i] = i;
    shuffle(s, rank, TH_NUSERS);
    for (int i = 0; i < TH_NUSERS; i++) {
        struct th_user *u = &w->users[i];
        snprintf(u->name, sizeof u->name, "%s.%02d", th_first[i % TH_NFIRST],
                 i / TH_NFIRST + 1);
        u->team = (int)(splitmix(s) % TH_NTEAMS);
        double x = rnd_u01(s);
        u->nagents = x < 0.5 ? 1 : x < 0.85 ? 2 : 3;
        double ac = 0;
        for (int j = 0; j < u->nagents; j++) {
            int a, dup;
            do {
                a = rnd_pick(s, aw, TH_NAGENTS);
                dup = 0;
                for (int k = 0; k < j; k++)
                    dup |= u->agents[k] == a;
            } while (dup);
            u->agents[j] = a;
            u->acum[j] = ac += j == 0 ? 0.7 : j == 1 ? 0.2 : 0.1;
        }
        w->ucum[i] = c += 1.0 / pow(rank[i] + 1, 0.8);
    }
}

/* Return the relative traffic of the hour starting at t (epoch ms) at
 * position f (0..1) of the period: working hours in Europe (peak 10:00
 * UTC) and America (16:30 UTC), quiet weekends, growth over the period. */
static double hour_weight(int64_t t, double f)
{
    int64_t day = t / 86400000LL;
    double h = (double)(t % 86400000LL) / TH_HOUR_MS + 0.5;
    int wd = (int)((day + 4) % 7); /* 0 = Sunday: 1970-01-01 was Thursday */
    double eu = (h - 10) / 2.5, us = (h - 16.5) / 3.0;
    double diurnal = 0.15 + 0.8 * exp(-0.5 * eu * eu) + exp(-0.5 * us * us);
    double week = wd == 0 || wd == 6 ? 0.35 : 1.0;
    return diurnal * week * (0.7 + 0.6 * f);
}

/* Build the hourly shape and the incidents of the period ending at end_ms;
 * -1 when memory runs out. */
static int world_time(struct th_world *w, uint64_t *s, double days,
                      int64_t end_ms, long long count)
{
    w->nslots = (int)ceil(days * 24);
    w->end_ms = end_ms;
    w->start_ms = end_ms - (int64_t)w->nslots * TH_HOUR_MS;
    double *cw = malloc(sizeof *cw * (size_t)w->nslots), c = 0;
    w->slot_end = malloc(sizeof *w->slot_end * (size_t)w->nslots);
    if (!cw || !w->slot_end) {
        free(cw);
        return -1;
    }
    /* A couple of launch days bring twice the traffic. */
    int spike1 = rnd_int(s, w->nslots / 24 + 1),
        spike2 = rnd_int(s, w->nslots / 24 + 1);
    for (int i = 0; i < w->nslots; i++) {
        int64_t t = w->start_ms + (int64_t)i * TH_HOUR_MS;
        double f = (double)i / w->nslots;
        double x = hour_weight(t, f) * rnd_lognorm(s, 1.0, 0.12);
        if (i / 24 == spike1 || i / 24 == spike2)
            x *= 1.9;
        cw[i] = c += x;
    }
    for (int i = 0; i < w->nslots; i++)
        w->slot_end[i] = llround(count * (cw[i] / c));
    w->slot_end[w->nslots - 1] = count;
    free(cw);
    /* About one incident a week, of 1-6 hours, at a provider picked by
     * popularity. */
    double pw[TH_NPROV] = {0};
    for (int m = 0; m < TH_NMODELS; m++)
        pw[th_models[m].prov] += th_models[m].weight;
    w->ninc = (int)(days / 7) + 1;
    if (w->ninc > TH_MAX_INCIDENTS)
        w->ninc = TH_MAX_INCIDENTS;
    for (int i = 0; i < w->ninc; i++) {
        struct th_incident *in = &w->inc[i];
        in->prov = rnd_pick(s, pw, TH_NPROV);
        in->from = w->start_ms + (int64_t)(rnd_u01(s) * w->nslots) * TH_HOUR_MS;
        in->to = in->from + (1 + rnd_int(s, 6)) * TH_HOUR_MS;
    }
    return 0;
}

/* Return the hour slot of event index e. */
static int slot_of(const struct th_world *w, long long e)
{
    int lo = 0, hi = w->nslots - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (e < w->slot_end[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Say whether provider p has an incident at time t. */
static int in_incident(const struct th_world *w, int p, int64_t t)
{
    for (int i = 0; i < w->ninc; i++)
        if (w->inc[i].prov == p && t >= w->inc[i].from && t < w->inc[i].to)
            return 1;
    return 0;
}

/* Who calls what in one event, decided by the conversation. */
struct th_call {
    int user, agent, model; /* indexes into the world and th_models */
    int64_t ts;             /* epoch ms */
    const char *session;    /* or NULL */
    int round;              /* 0: none */
};

/* Set key k of o to v (stolen); returns 1 on failure, for or-ing.  Skips
 * the UTF-8 check of k: every key here is a literal. */
static int jput(json_t *o, const char *k, json_t *v)
{
    return o == NULL || v == NULL || json_object_set_new_nocheck(o, k, v) != 0;
}

/* Set key k of o to the shared value v (a new reference). */
static int jref(json_t *o, const char *k, json_t *v)
{
    return o == NULL || json_object_set_nocheck(o, k, v) != 0;
}

/* Build event number e of call c with stream s; NULL when memory ran out. */
static json_t *gen_event(const struct th_world *w, const struct th_strs *st,
                         uint64_t *s, const struct th_call *c, long long e)
{
    const struct th_model *m = &th_models[c->model];
    const struct th_class_par *cp = &th_classes[m->cls];
    const struct th_agent *ag = &w->agents[c->agent];
    const struct th_kind *k = &th_kinds[ag->kind];
    const struct th_user *u = &w->users[c->user];
    int embed = m->cls == C_EMBED, cache = th_prov_cache[m->prov];
    long long in, out = 0, cr = 0, cw = 0, rs = 0;
    double lat, ttft = -1, cost = -1;

    if (embed) {
        in = rnd_tokens(s, cp->in_med * k->in_mult, 0.9, 8, 8000);
        lat = rnd_lognorm(s, cp->base_ms + in * 0.01, 0.35);
    } else {
        /* A session's context grows round by round. */
        double in_med = cp->in_med * k->in_mult * (1 + 0.35 * c->round);
        in = rnd_tokens(s, in_med, 0.7, 20, 120000);
        out = rnd_tokens(s, cp->out_med * k->out_mult, 0.8, 1, 8000);
        if (m->cls == C_REASON)
            rs = llround(out * (0.3 + 0.45 * rnd_u01(s)));
        if (cache && rnd_u01(s) < 0.35)
            cr = rnd_tokens(s, 4000, 0.8, 1024, 60000);
        if (cache == 2 && rnd_u01(s) < 0.12)
            cw = rnd_tokens(s, 2500, 0.7, 1024, 30000);
        double base = rnd_lognorm(s, cp->base_ms, 0.35);
        double prefill = (in + cw) * 0.012 + cr * 0.002;
        lat =
            base + prefill + out / cp->tps * 1000.0 * rnd_lognorm(s, 1.0, 0.25);
        ttft =
            (base + prefill) * rnd_lognorm(s, 1.0, 0.2) + rs / cp->tps * 1000.0;
        if (rnd_u01(s) < 0.015) /* the long tail, short of a timeout */
            lat = fmin(lat * (2.0 + 3.0 * rnd_u01(s)), 170000.0);
        ttft = ttft > lat * 0.9 ? lat * 0.9 : ttft;
    }

    /* Errors: ~2% in all, far more during a provider's incident. */
    int status = 200, inc = in_incident(w, m->prov, c->ts);
    int etype = -1; /* index into th_etypes */
    double x = rnd_u01(s), p429 = 0.007 + (inc ? 0.10 : 0);
    double p5xx = p429 + 0.0055 + (inc ? 0.12 : 0);
    if (x < p429) {
        status = 429;
        etype = 0;
        in = out = cr = cw = rs = 0;
        lat = rnd_lognorm(s, 90, 0.5);
        ttft = -1;
    } else if (x < p5xx) {
        double y = rnd_u01(s);
        status = y < 0.55 ? 500 : y < 0.7 ? 502 : 503;
        etype = 1;
        out = rs = cr = cw = 0;
        lat = rnd_lognorm(s, cp->base_ms * 1.5, 0.6);
        ttft = -1;
    } else if (x < p5xx + 0.0025) {
        static const double limits[] = {30000, 60000, 120000};
        status = rnd_u01(s) < 0.5 ? 408 : 504;
        etype = 2;
        out = rs = 0;
        lat = limits[rnd_int(s, 3)] + 40.0 * rnd_u01(s);
        ttft = -1;
    } else if (x < p5xx + 0.0055) {
        status = 400;
        etype = rnd_u01(s) < 0.6 ? 3 : 4;
        out = rs = cr = cw = 0;
        lat = rnd_lognorm(s, 40, 0.5);
        ttft = -1;
    }
    if (m->p_in > 0 || m->p_out > 0)
        cost = (in * m->p_in + out * m->p_out) / 1e6;

    char id[48];
    int env = rnd_u01(s) < 0.85 ? 0 : 1, tagged = rnd_u01(s) < 0.3;
    snprintf(id, sizeof id, "h%llx-%llx", w->seed, e);

    /* Repeated strings are shared values of the worker (set, not set_new,
     * takes a reference); keys are known to be valid UTF-8. */
    json_t *o = json_object(), *t;
    int bad = o == NULL;
    bad |= jput(o, "id", json_string_nocheck(id));
    bad |= jput(o, "ts", json_integer(c->ts));
    bad |= jref(o, "provider", st->prov[m->prov]);
    bad |= jref(o, "model", st->model[c->model]);
    bad |= jref(o, "operation", st->op[embed]);
    bad |= jput(o, "input_tokens", json_integer(in));
    bad |= jput(o, "output_tokens", json_integer(out));
    if (cr)
        bad |= jput(o, "cache_read_tokens", json_integer(cr));
    if (cw)
        bad |= jput(o, "cache_write_tokens", json_integer(cw));
    if (rs)
        bad |= jput(o, "reasoning_tokens", json_integer(rs));
    if (cost >= 0)
        bad |= jput(o, "cost_usd", json_real(round(cost * 1e9) / 1e9));
    bad |= jput(o, "latency_ms", json_real(round(lat * 10) / 10));
    if (ttft >= 0)
        bad |= jput(o, "ttft_ms", json_real(round(ttft * 10) / 10));
    bad |= jput(o, "status", json_integer(status));
    if (etype >= 0)
        bad |= jref(o, "error_type", st->etype[etype]);
    bad |= jref(o, "user", st->user[c->user]);
    bad |= jref(o, "agent", st->agent[c->agent]);
    bad |= jref(o, "api_key", st->key[u->team][env]);
    if (c->session)
        bad |= jput(o, "session", json_string_nocheck(c->session));
    if (c->round)
        bad |= jput(o, "round", json_integer(c->round));
    if (!bad && tagged) {
        t = json_object();
        bad = jput(o, "tags", t);
        bad |= !bad && jref(t, "env", st->env[env]);
        bad |= !bad && jref(t, "team", st->team[u->team]);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Return the array of the events [e0, e1) of one batch, generated from the
 * batch's own stream; NULL when memory ran out.  Conversations start at a
 * random moment of their event's hour and are cut at the batch's end. */
static json_t *gen_batch(const struct th_world *w, const struct th_strs *st,
                         long long e0, long long e1, unsigned long long bno)
{
    uint64_t s = w->seed ^ (bno * 0xd1342543de82ef95ULL);
    json_t *arr = json_array();
    char sess[48];
    splitmix(&s); /* decorrelate neighbouring batches */
    for (long long e = e0; arr && e < e1;) {
        struct th_call c = {0};
        int slot = slot_of(w, e);
        c.user = pick_cum(&s, w->ucum, TH_NUSERS);
        const struct th_user *u = &w->users[c.user];
        c.agent = u->agents[pick_cum(&s, u->acum, u->nagents)];
        const struct th_agent *a = &w->agents[c.agent];
        const struct th_kind *k = &th_kinds[a->kind];
        c.ts = w->start_ms + (int64_t)slot * TH_HOUR_MS +
               (int64_t)(rnd_u01(&s) * TH_HOUR_MS);
        /* A conversation: one call, or a session of rounds. */
        int rounds = 1, per_round = 1;
        if (rnd_u01(&s) < k->p_session) {
            snprintf(sess, sizeof sess, "s%llx-%llx", w->seed, e);
            c.session = sess;
            if (k->crosstalk) {
                per_round = 2 + rnd_int(&s, a->nmodels - 1);
                rounds = 1 + rnd_int(&s, TH_SESS_MAX / per_round);
            } else {
                rounds = 1 + (int)fmin(rnd_exp(&s, 3.5), TH_SESS_MAX - 1);
            }
        }
        int first = pick_cum(&s, a->mcum, a->nmodels);
        for (int r = 1; r <= rounds && e < e1; r++) {
            c.round = c.session ? r : 0;
            for (int j = 0; j < per_round && e < e1; j++, e++) {
                /* Crosstalk asks several models in turn; other sessions
                 * mostly stay with their first model. */
                if (k->crosstalk && c.session)
                    c.model = a->models[(first + j) % a->nmodels];
                else if (c.session && rnd_u01(&s) < 0.8)
                    c.model = a->models[first];
                else
                    c.model = a->models[pick_cum(&s, a->mcum, a->nmodels)];
                if (c.ts >= w->end_ms)
                    c.ts = w->end_ms - 1;
                json_t *o = gen_event(w, st, &s, &c, e);
                if (!o || json_array_append_new(arr, o) != 0) {
                    json_decref(arr);
                    return NULL;
                }
                c.ts += (int64_t)rnd_lognorm(&s, 1500, 0.6); /* in a round */
            }
            c.ts += (int64_t)rnd_lognorm(&s, 25000, 0.9); /* user thinks */
        }
    }
    return arr;
}

/* Append data to the worker's answer buffer (libcurl write callback);
 * beyond TH_RESP_MAX bytes the answer is cut, not failed. */
static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct th_worker *wk = arg;
    size_t len = size * nmemb, room = TH_RESP_MAX - 1 - wk->resp_len;
    size_t n = len < room ? len : room;
    memcpy(wk->resp + wk->resp_len, data, n);
    wk->resp_len += n;
    wk->resp[wk->resp_len] = '\0';
    return len;
}

/* Sleep for d seconds, in slices that notice a stop. */
static void nap(double d)
{
    for (double until = cli_mono_now() + d;
         !th_stop && cli_mono_now() < until;) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* POST one body of n events until it is acknowledged, rejected or out of
 * retries.  Returns 0 when acknowledged. */
static int post_body(struct th_worker *wk, const char *body, size_t len,
                     long long n)
{
    struct th_run *r = wk->run;
    double backoff = 0.1;
    atomic_fetch_add(&r->sent, n);
    curl_easy_setopt(wk->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(wk->easy, CURLOPT_POSTFIELDS, body);
    for (int attempt = 0;; attempt++) {
        long code = 0;
        curl_off_t ra = 0;
        wk->resp_len = 0;
        wk->resp[0] = '\0';
        CURLcode rc = curl_easy_perform(wk->easy);
        if (rc == CURLE_OK) {
            curl_easy_getinfo(wk->easy, CURLINFO_RESPONSE_CODE, &code);
            if (curl_easy_getinfo(wk->easy, CURLINFO_RETRY_AFTER, &ra) !=
                CURLE_OK)
                ra = 0;
        }
        if (rc == CURLE_OK && code >= 200 && code < 300) {
            json_t *ans = json_loadb(wk->resp, wk->resp_len, 0, NULL);
            json_t *d = json_object_get(ans, "duplicates");
            atomic_fetch_add(&r->dup,
                             json_is_integer(d) ? json_integer_value(d) : 0);
            json_decref(ans);
            atomic_fetch_add(&r->ok, n);
            return 0;
        }
        atomic_fetch_add(rc != CURLE_OK ? &r->conn
                         : code >= 500  ? &r->h5
                                        : &r->h4,
                         1);
        if (rc == CURLE_OK && code != 429 && code < 500) {
            /* A rejected body is a bug here, not overload: stop. */
            cli_msg("%s: HTTP %ld: %.300s", r->cfg->url, code, wk->resp);
            atomic_store(&r->failed, 1);
            th_stop = 1;
            return -1;
        }
        if (attempt >= TH_MAX_RETRIES || th_stop) {
            cli_msg("giving up on %lld events after %d attempts (%s)", n,
                    attempt + 1,
                    rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
            return -1;
        }
        if (!r->cfg->quiet && attempt == 3)
            cli_msg("retrying: %s",
                    rc != CURLE_OK ? curl_easy_strerror(rc) : wk->resp);
        atomic_fetch_add(&r->retries, 1);
        nap(ra > 0 ? (double)(ra > 10 ? 10 : ra) : backoff);
        backoff = backoff * 2 > 2.0 ? 2.0 : backoff * 2;
    }
}

/* Worker thread: take batch numbers, generate, post. */
static void *worker_main(void *arg)
{
    struct th_worker *wk = arg;
    struct th_run *r = wk->run;
    for (;;) {
        long long b = atomic_fetch_add(&r->next_batch, 1);
        if (th_stop || b >= r->nbatches)
            break;
        long long e0 = b * r->batch, e1 = e0 + r->batch;
        e1 = e1 > r->count ? r->count : e1;
        long long ns = thread_ns();
        /* A batch's values and body live in the arena until it is sent:
         * malloc and free were a third of the generator's time. */
        arena_json_use(&wk->arena);
        json_t *arr = gen_batch(r->w, &wk->strs, e0, e1, (unsigned long long)b);
        char *body =
            arr ? json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(10))
                : NULL;
        atomic_fetch_add(&r->gen_ns, thread_ns() - ns);
        if (!body) {
            cli_msg("out of memory generating events");
            atomic_store(&r->failed, 1);
            th_stop = 1;
            break;
        }
        size_t len = strlen(body);
        atomic_fetch_add(&r->bytes, (long long)len);
        if (r->cfg->dry_run)
            atomic_fetch_add(&r->ok, e1 - e0);
        else
            post_body(wk, body, len, e1 - e0);
        json_decref(arr); /* drops the references to the shared strings */
        arena_json_use(NULL);
        arena_reset(&wk->arena);
    }
    arena_json_use(NULL);
    return NULL;
}

/* Make the worker's shared strings (from malloc: no arena is in use);
 * returns 1 if one failed. */
static int strs_init(struct th_strs *st, const struct th_world *w)
{
    char buf[64];
    int bad = 0;
    for (int i = 0; i < TH_NPROV; i++)
        bad |= !(st->prov[i] = json_string(th_providers[i]));
    for (int i = 0; i < TH_NMODELS; i++)
        bad |= !(st->model[i] = json_string(th_models[i].name));
    bad |= !(st->op[0] = json_string("chat"));
    bad |= !(st->op[1] = json_string("embeddings"));
    for (int i = 0; i < TH_NUSERS; i++)
        bad |= !(st->user[i] = json_string(w->users[i].name));
    for (int i = 0; i < TH_NAGENTS; i++)
        bad |= !(st->agent[i] = json_string(w->agents[i].name));
    for (int i = 0; i < TH_NTEAMS; i++) {
        bad |= !(st->team[i] = json_string(th_teams[i]));
        for (int j = 0; j < 2; j++) {
            snprintf(buf, sizeof buf, "%s-%s", th_teams[i],
                     j ? "staging" : "prod");
            bad |= !(st->key[i][j] = json_string(buf));
        }
    }
    bad |= !(st->env[0] = json_string("prod"));
    bad |= !(st->env[1] = json_string("staging"));
    for (int i = 0; i < TH_NETYPES; i++)
        bad |= !(st->etype[i] = json_string(th_etypes[i]));
    return bad;
}

/* Release the worker's shared strings (NULLs are fine). */
static void strs_free(struct th_strs *st)
{
    json_t **all = (json_t **)st;
    for (size_t i = 0; i < sizeof *st / sizeof *all; i++)
        json_decref(all[i]);
}

/* Create a worker's strings and curl handle; -1 on failure. */
static int worker_init(struct th_worker *wk, struct th_run *r)
{
    char auth[TH_KEY_LEN + 32];
    memset(wk, 0, sizeof *wk);
    wk->run = r;
    arena_init(&wk->arena, 4 << 20);
    if (strs_init(&wk->strs, r->w))
        return -1;
    if (r->cfg->dry_run)
        return 0;
    if (!(wk->easy = curl_easy_init()))
        return -1;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    if (h && !curl_slist_append(h, "Content-Type: application/json"))
        h = NULL;
    if (h && !curl_slist_append(h, "Expect:"))
        h = NULL;
    wk->hdrs = h;
    CURL *e = wk->easy;
    int bad = h == NULL;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_URL, r->cfg->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, wk) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "tt-history/1") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 120000L) != CURLE_OK;
    return bad ? -1 : 0;
}

/* Release a worker's handle. */
static void worker_free(struct th_worker *wk)
{
    if (wk->easy)
        curl_easy_cleanup(wk->easy);
    curl_slist_free_all(wk->hdrs);
    arena_free(&wk->arena);
    strs_free(&wk->strs);
}

/* Print the one-line summary to stdout. */
static void print_summary(struct th_run *r)
{
    double el = cli_mono_now() - r->t0;
    long long ok = atomic_load(&r->ok);
    printf("sent=%lld ok=%lld dup=%lld http_4xx=%lld http_5xx=%lld "
           "conn_err=%lld retries=%lld elapsed_s=%.1f rate=%.0f "
           "gen_us_per_event=%.2f bytes_per_event=%.0f\n",
           atomic_load(&r->sent), ok, atomic_load(&r->dup), atomic_load(&r->h4),
           atomic_load(&r->h5), atomic_load(&r->conn), atomic_load(&r->retries),
           el, el > 0 ? ok / el : 0.0,
           ok ? atomic_load(&r->gen_ns) / 1e3 / ok : 0.0,
           ok ? (double)atomic_load(&r->bytes) / ok : 0.0);
    fflush(stdout);
}

/* Set the stop flag (SIGINT, SIGTERM). */
static void on_signal(int sig)
{
    (void)sig;
    th_stop = 1;
}

/* The command-line options: where each value goes and what it accepts. */
static const struct cli_opt th_opts[] = {
    {"url", 's', offsetof(struct th_cfg, url_arg), 0, 0,
     "base URL of the stack, e.g. http://127.0.0.1:8080"},
    {"key", 's', offsetof(struct th_cfg, key), 0, 0, "API key"},
    {"key-file", 's', offsetof(struct th_cfg, key_file), 0, 0,
     "read the API key from FILE"},
    {"count", 'w', offsetof(struct th_cfg, count), 1, 1e12,
     "events to send (10000000)"},
    {"days", 'd', offsetof(struct th_cfg, days), 1.0 / 24, 3650,
     "days the events cover, ending at --end (90)"},
    {"end", 'w', offsetof(struct th_cfg, end), 946684800000.0, 1e14,
     "end of the period, epoch ms (default: now)"},
    {"batch", 'w', offsetof(struct th_cfg, batch), 1, TH_MAX_BATCH,
     "events per request (1000)"},
    {"concurrency", 'w', offsetof(struct th_cfg, concurrency), 1, 64,
     "parallel requests (4)"},
    {"seed", 'w', offsetof(struct th_cfg, seed), 0, 9007199254740992.0,
     "seed of the world and the events (1)"},
    {"dry-run", 'f', offsetof(struct th_cfg, dry_run), 0, 0,
     "generate and serialize only; send nothing"},
    {"quiet", 'f', offsetof(struct th_cfg, quiet), 0, 0, "no progress lines"},
};
#define TH_NOPTS ((int)(sizeof th_opts / sizeof th_opts[0]))
#define TH_USAGE                                                               \
    "usage: tt-history --url URL (--key KEY | --key-file FILE) [options]\n"    \
    "       tt-history --dry-run [options]\n"

/* Fill c from the command line; returns 0, or the exit status 2. */
static int parse_args(struct th_cfg *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->count = 1e7;
    c->days = 90;
    c->batch = 1000;
    c->concurrency = 4;
    c->seed = 1;
    if (cli_parse(c, TH_USAGE, th_opts, TH_NOPTS, argc, argv) != 0)
        return 2;
    if (c->dry_run)
        return 0;
    return cli_target(c->url_arg, c->key, c->key_file, c->url, sizeof c->url,
                      TH_USAGE, th_opts, TH_NOPTS);
}

/* Read the key into buf: the first line of --key-file that is neither
 * empty nor a '#' comment, trimmed, or --key.  Returns 0, or -1 after a
 * message. */
static int load_key(const struct th_cfg *c, char *buf, size_t n)
{
    if (c->dry_run)
        return 0;
    int rc = cli_key_arg(c->key, buf, n);
    if (rc <= 0)
        return rc;
    if (cli_read_key_file(c->key_file, buf, n) != 0) {
        cli_msg("no key in \"%s\"", c->key_file);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct th_cfg cfg;
    static struct th_world world;
    static struct th_run run;
    struct sigaction sa;
    cli_prog = "tt-history";
    int rc = parse_args(&cfg, argc, argv), started = 0;
    if (rc)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    run.cfg = &cfg;
    run.w = &world;
    run.count = (long long)cfg.count;
    run.batch = (long long)cfg.batch;
    run.nbatches = (run.count + run.batch - 1) / run.batch;
    if (load_key(&cfg, run.key, sizeof run.key) < 0)
        return 2;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t end = cfg.end > 0
                      ? (int64_t)cfg.end
                      : (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    arena_json_install();
    uint64_t s = world.seed = (unsigned long long)cfg.seed;
    world_agents(&world, &s);
    world_users(&world, &s);
    if (world_time(&world, &s, cfg.days, end, run.count) < 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_msg("cannot initialise: out of memory");
        return 2;
    }
    int nw = (int)cfg.concurrency;
    struct th_worker *ws = calloc((size_t)nw, sizeof *ws);
    if (!ws) {
        cli_msg("cannot initialise: out of memory");
        return 2;
    }
    if (!cfg.quiet)
        cli_msg("%lld events over %.4g days from %d threads%s", run.count,
                cfg.days, nw, cfg.dry_run ? " (dry run)" : "");
    run.t0 = cli_mono_now();
    for (; started < nw; started++)
        if (worker_init(&ws[started], &run) < 0 ||
            pthread_create(&ws[started].thread, NULL, worker_main,
                           &ws[started]) != 0) {
            cli_msg("cannot start worker %d", started);
            worker_free(&ws[started]);
            th_stop = 1;
            break;
        }
    /* Progress every ten seconds while the workers run. */
    double last = run.t0;
    long long last_ok = 0;
    while (!th_stop && atomic_load(&run.next_batch) < run.nbatches + nw) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        long long ok = atomic_load(&run.ok);
        if (ok >= run.count)
            break;
        if (!cfg.quiet && cli_mono_now() - last >= 10.0) {
            cli_msg("%lld of %lld events (%.1f%%), %.0f/s now", ok, run.count,
                    100.0 * ok / run.count,
                    (ok - last_ok) / (cli_mono_now() - last));
            last = cli_mono_now();
            last_ok = ok;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_free(&ws[i]);
    }
    print_summary(&run);
    free(ws);
    free(world.slot_end);
    curl_global_cleanup();
    return atomic_load(&run.ok) == run.count && !atomic_load(&run.failed) ? 0
                                                                          : 1;
}
