/*
 * main.c: tt-relay, the live streams (libwebsockets).
 *
 * Usage: tt-relay --data DIR [-c FILE] [--set key=value]...
 *
 * It listens on DIR/run/relay.sock, behind nginx (location /ws/), and
 * reads the collector's shared-memory segment only: never the database.
 * nginx authenticates every stream first (auth_request to tt-api, a key
 * or a token from POST /api/v1/ws-token) and passes the workspace in the
 * X-Tokentap-Workspace header, which only nginx sets.
 *
 *   /ws/live[?since=SEQ&topics=stats,feed,events,breakdown&provider=P&model=M]
 *       a snapshot (the GET /api/v1/live/stats answer and the latest feed
 *       entries), then one frame per closed second: its live stats, the
 *       new feed entries and the alert, budget and notification events of
 *       the event ring.  A client that reconnects with the last seq it saw
 *       gets the frames it missed while they are kept (RELAY_HIST
 *       seconds), else a fresh snapshot.  A client may narrow its
 *       subscription in the URL or later with a text message
 *       {"topics": [...], "provider": P, "model": M}.
 *   /ws/crosstalk/{session}
 *       the calls of one session as they arrive (round, model, tokens,
 *       cost) with running totals per round, from a snapshot of the calls
 *       still in the feed.
 *
 * Every message is a JSON object with "type" and "seq" (the closed
 * second, epoch seconds: it keeps growing across collector restarts) and
 * "sent_ms" (when that second closed).  A client whose oldest waiting
 * message was queued more than relay_queue seconds ago (the option) is
 * closed with 1008 "too slow" and never holds the others up; frames are made
 * once per workspace and shared.  lws runs on this one thread; the shared
 * memory is looked at every RELAY_TICK_MS.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "livejson.h"
#include "log.h"
#include "proto.h"
#include "shm.h"
#include "sig.h"

#define RELAY_TICK_MS   10
#define RELAY_VARIANTS  64  /* filter variants made once per frame */
#define RELAY_QUEUE     600 /* room per client; relay_queue is the limit */
#define RELAY_HIST      120 /* frames kept per workspace, for resuming */
#define RELAY_SNAP_FEED 50  /* feed entries in a snapshot */
#define RELAY_MAX_WS    256 /* workspaces streamed at once */
#define RELAY_FEED_MAX  4096
#define RELAY_RING_MAX  1024

/* A message, shared by the clients it goes to. */
struct rmsg {
    int refs;
    int64_t seq;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the text */
};

/* Topics: a frame's stats are the workspace's; its per-provider and
 * per-model lists ("breakdown") only when asked for (they make a frame
 * ten times bigger); a snapshot always has them. */
enum { T_STATS = 1, T_FEED = 2, T_EVENTS = 4, T_BREAKDOWN = 8, T_DEFAULT = 7 };

/* One client. */
struct rclient {
    struct lws *wsi;
    struct rclient *next;
    struct rws *w; /* a live stream's workspace (NULL: none streamed) */
    char ws[72];
    char rid[68];
    int crosstalk;
    char session[68];
    unsigned topics;
    char provider[132], model[132];
    int64_t since; /* resume from (0: a snapshot) */
    int started;   /* its first message is queued */
    struct rmsg *q[RELAY_QUEUE];
    int64_t qt[RELAY_QUEUE]; /* when each was queued (ms) */
    int qhead, qlen;
    const char *closing; /* why it is being closed with 1008, or NULL */
    int ping_due;        /* a ping waits for the socket */
    int64_t heard_ms;    /* the peer's last message or pong */
    int64_t pinged_ms;   /* our last ping */
    json_t *rounds;      /* crosstalk: {round: {calls, tokens, cost_usd}} */
};

/* A message made of a frame for the clients with like's topics and
 * filters. */
struct rvariant {
    const struct rclient *like;
    struct rmsg *m;
};

/* A workspace being streamed; its address stays while it is. */
struct rws {
    char name[72];
    int clients;        /* live clients whose w is this */
    int64_t idle_since; /* no clients since (ms), 0 while it has some */
    struct rmsg *hist[RELAY_HIST]; /* frames by seq % RELAY_HIST */
    /* While relay_second() fans a frame out, else NULL and 0: the frame
     * with its breakdown, without it (lean), lean's message (shared by
     * the clients of the default topics without filters) and the
     * variants made of the frame for the others. */
    json_t *frame, *lean;
    struct rmsg *shared;
    struct rvariant var[RELAY_VARIANTS];
    int nvar;
};

struct relay {
    struct conf conf;
    struct lws_context *ctx;
    struct shm_reader rd;
    uint64_t generation;
    int64_t as_of; /* the last second streamed */
    uint64_t feed_head, ring_head;
    struct rclient *clients;
    struct rws *ws[RELAY_MAX_WS]; /* malloc'ed */
    int nws;
    struct shm_item *items;
    size_t nitems;
    struct shm_feed_ent *feed;
    struct shm_ring_ent *ring;
    lws_sorted_usec_list_t sul;
    int sfd;
    int stop;
    int64_t nclients;
    int unstarted;    /* clients waiting for their first message */
    int64_t cut_off;  /* clients closed for falling behind */
    int64_t messages; /* messages queued */
    /* The last frame: from its second's end until the relay began building
     * it (start_ms) and until it was written or queued to every client
     * (fanout_ms). */
    int64_t start_ms, fanout_ms;
    int64_t keepalive_ms; /* relay_keepalive()'s last pass */
    int64_t silenced;     /* clients closed for not answering a ping */
    char stats_path[CONF_PATH_MAX + 32];
};

static struct relay R;

/* A ping.  It has a payload: lws tells us of no empty pong. */
static unsigned char relay_ping_msg[LWS_PRE + 4] = {
    [LWS_PRE] = 'p', 'i', 'n', 'g'};

/* ---- messages ---- */

static struct rmsg *rmsg_make(const json_t *o, int64_t seq)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    struct rmsg *m = malloc(sizeof(*m) + LWS_PRE + len);
    if (m != NULL) {
        m->refs = 1;
        m->seq = seq;
        m->len = len;
        memcpy(m->buf + LWS_PRE, text, len);
    }
    free(text);
    return m;
}

static void rmsg_unref(struct rmsg *m)
{
    if (m != NULL && --m->refs == 0)
        free(m);
}

/* Stash a 1008 close with reason why for wsi's close frame. */
static void relay_close_reason(struct lws *wsi, const char *why)
{
    lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                     (unsigned char *)why, strlen(why));
}

/* Write what waits for c, a ping first: one write per call, as lws wants
 * of a writeable callback; another callback is asked for while more
 * waits.  The write's result (< 0: an error; lws keeps what the socket
 * had no room for). */
static int rclient_write(struct rclient *c)
{
    int n = 0;
    if (c->ping_due) {
        c->ping_due = 0;
        n = lws_write(c->wsi, relay_ping_msg + LWS_PRE, 4, LWS_WRITE_PING);
    } else if (c->qlen > 0) {
        struct rmsg *m = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % RELAY_QUEUE;
        c->qlen--;
        n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        rmsg_unref(m);
    }
    if (n >= 0 && c->qlen > 0)
        lws_callback_on_writable(c->wsi);
    return n;
}

/* A message or a ping was just queued for c: write it now when nothing
 * waited before it, here (waited) or in lws, without the round trip
 * through poll; else at c's writeable callback. */
static void rclient_flush(struct rclient *c, int waited)
{
    if (waited || lws_partial_buffered(c->wsi))
        lws_callback_on_writable(c->wsi);
    else if (rclient_write(c) < 0)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Queue m for c at now (a reference taken); a client too far behind is
 * closed. */
static void rclient_send(struct rclient *c, struct rmsg *m, int64_t now)
{
    if (m == NULL || c->closing)
        return;
    /* Too far behind: its oldest waiting message was queued more than
     * relay_queue seconds ago (a resume queues many at once: that is not
     * being behind). */
    if (c->qlen == RELAY_QUEUE ||
        (c->qlen > 0 &&
         now - c->qt[c->qhead] > (int64_t)R.conf.relay_queue * 1000)) {
        c->closing = "too slow";
        R.cut_off++;
        log_warn(c->rid, "msg=\"client too slow: closed\" workspace=%s", c->ws);
        /* Now: its socket is full, so no writeable callback would come
         * to close it (nor could a close frame get through). */
        relay_close_reason(c->wsi, c->closing);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    R.messages++;
    int waited = c->qlen > 0 || c->ping_due;
    m->refs++;
    c->qt[(c->qhead + c->qlen) % RELAY_QUEUE] = now;
    c->q[(c->qhead + c->qlen++) % RELAY_QUEUE] = m;
    rclient_flush(c, waited);
}

/* ---- workspaces ---- */

/* Workspace name, added if it is new and there is room; NULL if not. */
static struct rws *rws_get(const char *name)
{
    for (int i = 0; i < R.nws; i++)
        if (strcmp(R.ws[i]->name, name) == 0)
            return R.ws[i];
    struct rws *w = R.nws < RELAY_MAX_WS ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL)
        return NULL;
    snprintf(w->name, sizeof(w->name), "%s", name);
    R.ws[R.nws++] = w;
    return w;
}

static void rws_drop(int i)
{
    for (int k = 0; k < RELAY_HIST; k++)
        rmsg_unref(R.ws[i]->hist[k]);
    free(R.ws[i]);
    R.ws[i] = R.ws[--R.nws];
}

/* Let live client c receive its workspace's frames (not when
 * RELAY_MAX_WS workspaces are streamed already). */
static void rws_attach(struct rclient *c)
{
    c->w = rws_get(c->ws);
    if (c->w != NULL) {
        c->w->clients++;
        c->w->idle_since = 0;
    }
}

/* ---- building ---- */

/* Is the data stale (the collector's heartbeat old)? */
static int relay_stale(const struct shm_header *h)
{
    int64_t hb = atomic_load_explicit(
        &((struct shm_header *)h)->health.heartbeat_ms, memory_order_relaxed);
    return proto_now_ms() - hb > R.conf.stale_after_ms;
}

/* The live stats of workspace ws (1m window). */
static json_t *relay_stats(const struct shm_header *h, const char *ws)
{
    if (R.nitems < h->nslots) {
        free(R.items);
        R.items = calloc(h->nslots, sizeof(*R.items));
        R.nitems = R.items ? h->nslots : 0;
        if (R.items == NULL)
            return json_null();
    }
    json_t *o = livejson_stats(h, 0, ws, relay_stale(h), R.items);
    return o ? o : json_null();
}

/* The head fields of every message. */
static json_t *relay_msg(const char *type, int64_t seq)
{
    char ts[40];
    ev_format_rfc3339(seq * 1000, ts, sizeof(ts));
    return json_pack("{s:s, s:I, s:s, s:I, s:I}", "type", type, "seq",
                     (json_int_t)seq, "second", ts, "sent_ms",
                     (json_int_t)((seq + 1) * 1000), "generation",
                     (json_int_t)R.generation);
}

/* Does c take every message whole (the default topics, no filters)? */
static int relay_plain(const struct rclient *c)
{
    return c->topics == T_DEFAULT && c->provider[0] == '\0' &&
           c->model[0] == '\0';
}

/* The entries of list l (feed entries, or stats with "provider" and, for
 * a model's, "model") that pass c's provider and model filters; an entry
 * without a model passes a model filter. */
static json_t *relay_filter(const struct rclient *c, json_t *l)
{
    json_t *keep = json_array(), *e;
    size_t i;
    json_array_foreach(l, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "provider"));
        const char *m = json_string_value(json_object_get(e, "model"));
        if ((c->provider[0] == '\0' || (p && strcmp(c->provider, p) == 0)) &&
            (c->model[0] == '\0' || m == NULL || strcmp(c->model, m) == 0))
            json_array_append(keep, e);
    }
    return keep;
}

/* Frame o without its stats' breakdown (a shallow copy). */
static json_t *relay_lean(json_t *o)
{
    json_t *x = json_copy(o), *s = json_object_get(o, "stats");
    if (json_is_object(s)) {
        json_t *ls = json_copy(s);
        json_object_del(ls, "providers");
        json_object_del(ls, "models");
        json_object_set_new(x, "stats", ls);
    }
    return x;
}

/* Message o (a frame or a snapshot) narrowed to c's topics and filters:
 * a shallow copy, o unchanged.  The stats keep the lists o has, filtered,
 * and gain empty ones where o has none. */
static json_t *relay_narrow(const struct rclient *c, json_t *o)
{
    static const char *const lists[] = {"providers", "models"};
    json_t *x = json_copy(o), *st = json_object_get(o, "stats");
    if (!(c->topics & T_STATS))
        json_object_del(x, "stats");
    else if (st != NULL) {
        st = json_copy(st);
        for (int k = 0; k < 2; k++) /* only in a frame with the breakdown */
            if (json_object_get(st, lists[k]) != NULL)
                json_object_set_new(
                    st, lists[k],
                    relay_filter(c, json_object_get(st, lists[k])));
        json_object_set_new(x, "stats", st);
    }
    if (!(c->topics & T_EVENTS))
        json_object_del(x, "events");
    if (c->topics & T_FEED)
        json_object_set_new(x, "feed",
                            relay_filter(c, json_object_get(o, "feed")));
    else
        json_object_del(x, "feed");
    return x;
}

/* This second's message for live client c (its workspace's frame being
 * fanned out): the shared one, or the variant of c's topics and filters,
 * made once for every client that has them.  A reference for the
 * caller. */
static struct rmsg *relay_for(struct rclient *c)
{
    struct rws *w = c->w;
    struct rmsg *m = relay_plain(c) ? w->shared : NULL;
    for (int v = 0; m == NULL && v < w->nvar; v++)
        if (w->var[v].like->topics == c->topics &&
            strcmp(w->var[v].like->provider, c->provider) == 0 &&
            strcmp(w->var[v].like->model, c->model) == 0)
            m = w->var[v].m;
    if (m != NULL) {
        m->refs++;
        return m;
    }
    /* The lean frame makes the same message without the breakdown. */
    json_t *x = relay_narrow(c, c->topics & T_BREAKDOWN ? w->frame : w->lean);
    m = rmsg_make(x, R.as_of);
    json_decref(x);
    if (m != NULL && w->nvar < RELAY_VARIANTS) {
        w->var[w->nvar++] = (struct rvariant){c, m};
        m->refs++;
    }
    return m;
}

/* The snapshot for client c. */
static struct rmsg *relay_snapshot(const struct shm_header *h,
                                   struct rclient *c)
{
    json_t *o = relay_msg("snapshot", R.as_of);
    struct shm_feed_ent *ents = calloc(RELAY_SNAP_FEED, sizeof(*ents));
    json_t *feed = json_array();
    int n = ents ? shm_read_feed(h, c->ws, ents, RELAY_SNAP_FEED) : 0;
    for (int i = 0; i < n; i++)
        json_array_append_new(feed, livejson_feed_entry(&ents[i]));
    free(ents);
    json_object_set_new(o, "stats", relay_stats(h, c->ws));
    json_object_set_new(o, "feed", feed);
    if (!relay_plain(c)) {
        json_t *x = relay_narrow(c, o);
        json_decref(o);
        o = x;
    }
    struct rmsg *m = rmsg_make(o, R.as_of);
    json_decref(o);
    return m;
}

/* ---- crosstalk ---- */

/* Add a call (feed entry f) to c's round totals; its JSON. */
static json_t *relay_call(struct rclient *c, const struct shm_feed_ent *f)
{
    json_t *call = livejson_feed_entry(f);
    char key[16];
    snprintf(key, sizeof(key), "%d", f->round);
    json_t *r = json_object_get(c->rounds, key);
    if (r == NULL) {
        r = json_pack("{s:i, s:I, s:f}", "calls", 0, "tokens", (json_int_t)0,
                      "cost_usd", 0.0);
        json_object_set_new(c->rounds, key, r);
    }
    int64_t tokens = 0;
    for (int t = 0; t < SHM_TOK_N; t++)
        if (t != SHM_TOK_REASONING)
            tokens += f->tokens[t];
    json_object_set_new(
        r, "calls",
        json_integer(json_integer_value(json_object_get(r, "calls")) + 1));
    json_object_set_new(
        r, "tokens",
        json_integer(json_integer_value(json_object_get(r, "tokens")) +
                     tokens));
    json_object_set_new(
        r, "cost_usd",
        json_real(json_real_value(json_object_get(r, "cost_usd")) +
                  f->cost_usd));
    return call;
}

/* The calls of c's session among ents[0..n) (oldest first) as a snapshot
 * or a "calls" message (NULL when none and not a snapshot). */
static struct rmsg *relay_calls(struct rclient *c, int snapshot,
                                const struct shm_feed_ent *ents, int n)
{
    json_t *calls = json_array();
    for (int i = 0; i < n; i++)
        if (strcmp(ents[i].workspace, c->ws) == 0 &&
            strcmp(ents[i].session, c->session) == 0)
            json_array_append_new(calls, relay_call(c, &ents[i]));
    if (json_array_size(calls) == 0 && !snapshot) {
        json_decref(calls);
        return NULL;
    }
    json_t *o = relay_msg(snapshot ? "snapshot" : "calls", R.as_of);
    json_object_set_new(o, "session", json_string(c->session));
    json_object_set_new(o, "calls", calls);
    json_object_set(o, "rounds", c->rounds);
    struct rmsg *m = rmsg_make(o, R.as_of);
    json_decref(o);
    return m;
}

/* ---- the tick ---- */

/* Write DIR/run/relay.stats ("key value" lines) for GET /metrics: the
 * relay writes no shared memory. */
static void relay_write_stats(void)
{
    char tmp[CONF_PATH_MAX + 48];
    snprintf(tmp, sizeof(tmp), "%s.tmp", R.stats_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f,
            "clients %lld\ncut_off %lld\nmessages %lld\nworkspaces %d\n"
            "ts_ms %lld\nstart_ms %lld\nfanout_ms %lld\nsilent %lld\n",
            (long long)R.nclients, (long long)R.cut_off, (long long)R.messages,
            R.nws, (long long)proto_now_ms(), (long long)R.start_ms,
            (long long)R.fanout_ms, (long long)R.silenced);
    if (fclose(f) == 0)
        rename(tmp, R.stats_path);
}

/* Make workspace w's frame of the second just closed from the new feed
 * entries R.feed[0..nf) and events R.ring[0..nr), keep its shared message
 * for resuming, and leave both in w for the fan-out. */
static void relay_frame(const struct shm_header *h, struct rws *w, int nf,
                        int nr)
{
    static const char *const types[] = {"", "alert", "budget", "notification"};
    json_t *o = relay_msg("frame", R.as_of);
    json_t *feed = json_array(), *events = json_array();
    for (int k = nf - 1; k >= 0; k--) /* newest first, as the feed */
        if (strcmp(R.feed[k].workspace, w->name) == 0)
            json_array_append_new(feed, livejson_feed_entry(&R.feed[k]));
    for (int k = 0; k < nr; k++) {
        if (strcmp(R.ring[k].workspace, w->name) != 0)
            continue;
        json_t *ev = json_loads(R.ring[k].json, 0, NULL);
        json_array_append_new(
            events, json_pack("{s:s, s:o}", "topic",
                              types[R.ring[k].type <= 3 ? R.ring[k].type : 0],
                              "event", ev ? ev : json_string(R.ring[k].json)));
    }
    json_object_set_new(o, "stats", relay_stats(h, w->name));
    json_object_set_new(o, "feed", feed);
    json_object_set_new(o, "events", events);
    w->frame = o;
    w->lean = relay_lean(o);
    w->shared = rmsg_make(w->lean, R.as_of);
    if (w->shared != NULL) {
        rmsg_unref(w->hist[R.as_of % RELAY_HIST]);
        w->hist[R.as_of % RELAY_HIST] = w->shared;
        w->shared->refs++;
    }
}

/* Drop what relay_frame() left in w for the fan-out. */
static void relay_frame_done(struct rws *w)
{
    for (int v = 0; v < w->nvar; v++)
        rmsg_unref(w->var[v].m);
    w->nvar = 0;
    rmsg_unref(w->shared);
    json_decref(w->frame);
    json_decref(w->lean);
    w->shared = NULL;
    w->frame = w->lean = NULL;
}

/* Stream the seconds closed since the last tick: a frame per workspace,
 * made once and sent to its clients in one pass over them. */
static void relay_second(const struct shm_header *h)
{
    uint64_t fh = atomic_load_explicit(&((struct shm_header *)h)->feed_head,
                                       memory_order_acquire);
    uint64_t rh = atomic_load_explicit(&((struct shm_header *)h)->ring_head,
                                       memory_order_acquire);
    int nf = shm_read_feed_range(h, R.feed_head, fh, R.feed, RELAY_FEED_MAX);
    int nr = shm_read_ring_range(h, R.ring_head, rh, R.ring, RELAY_RING_MAX);
    R.feed_head = fh;
    R.ring_head = rh;
    for (int i = 0; i < R.nws; i++)
        relay_frame(h, R.ws[i], nf, nr);
    int64_t now = proto_now_ms();
    for (struct rclient *c = R.clients; c != NULL; c = c->next) {
        struct rmsg *m;
        if (!c->started)
            continue;
        if (c->crosstalk)
            m = relay_calls(c, 0, R.feed, nf);
        else if (c->w != NULL && c->w->shared != NULL)
            m = relay_for(c);
        else
            continue;
        rclient_send(c, m, now);
        rmsg_unref(m);
    }
    for (int i = 0; i < R.nws; i++) {
        struct rws *w = R.ws[i];
        relay_frame_done(w);
        /* A workspace nobody watched for RELAY_HIST seconds goes. */
        if (w->clients == 0 && w->idle_since > 0 &&
            now - w->idle_since > RELAY_HIST * 1000)
            rws_drop(i--);
    }
}

/* Start the clients that connected since the last tick: a snapshot, or
 * the frames they missed. */
static void relay_start_clients(const struct shm_header *h)
{
    int64_t now = proto_now_ms();
    for (struct rclient *c = R.clients; R.unstarted > 0 && c != NULL;
         c = c->next) {
        if (c->started)
            continue;
        c->started = 1;
        R.unstarted--;
        if (c->crosstalk) {
            /* The feed up to where the last second's pass read, oldest
             * first, for the running totals: newer calls come in the next
             * "calls" message, and only there (reading to the feed's
             * present end here counted them twice). */
            uint64_t head = R.feed_head;
            struct shm_feed_ent *ents =
                calloc(h->feed_size ? h->feed_size : 1, sizeof(*ents));
            int n =
                ents ? shm_read_feed_range(h, 0, head, ents, (int)h->feed_size)
                     : 0;
            struct rmsg *m = relay_calls(c, 1, ents, n);
            free(ents);
            rclient_send(c, m, now);
            rmsg_unref(m);
            continue;
        }
        if (c->w == NULL) /* no room when it connected */
            rws_attach(c);
        struct rws *w = c->w;
        int64_t oldest = R.as_of - RELAY_HIST + 1;
        int resumed = 0;
        if (w != NULL && c->since > 0 && c->since >= oldest - 1 &&
            c->since <= R.as_of) {
            resumed = 1;
            for (int64_t s = c->since + 1; s <= R.as_of && resumed; s++) {
                struct rmsg *f = w->hist[s % RELAY_HIST];
                resumed = f != NULL && f->seq == s;
            }
            for (int64_t s = c->since + 1; resumed && s <= R.as_of; s++)
                rclient_send(c, w->hist[s % RELAY_HIST], now);
        }
        if (!resumed) {
            struct rmsg *m = relay_snapshot(h, c);
            rclient_send(c, m, now);
            rmsg_unref(m);
        }
    }
}

/* Keepalive, once a second: ping a stream whose peer has said nothing
 * (no message, no pong) for relay_ping seconds; close it if the ping has
 * no answer within twice that.  Not lws's validity timers: they keep every
 * connection in one sorted list, and at thousands of streams re-sorting it
 * on every pong cost the relay more than streaming did. */
static void relay_keepalive(int64_t now)
{
    int64_t ping = (int64_t)R.conf.relay_ping * 1000;
    for (struct rclient *c = R.clients; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        int waiting = c->pinged_ms > c->heard_ms; /* for an answer */
        if (waiting && now - c->pinged_ms >= 2 * ping) {
            /* Closed with a close frame at its next writeable callback;
             * one that never comes (a full socket) ends in 5 s. */
            c->closing = "no pong";
            R.silenced++;
            log_warn(c->rid, "msg=\"client silent: closed\" workspace=%s",
                     c->ws);
            lws_callback_on_writable(c->wsi);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
        } else if (!waiting && now - c->heard_ms >= ping) {
            /* Now, or as soon as what waits for it is written. */
            c->pinged_ms = now;
            c->ping_due = 1;
            rclient_flush(c, c->qlen > 0);
        }
    }
}

static void relay_tick(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    struct signalfd_siginfo si;
    while (R.sfd >= 0 && read(R.sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            log_reopen();
        else
            R.stop = 1;
    }
    if (R.stop) {
        lws_cancel_service(R.ctx);
        return;
    }
    int64_t now = proto_now_ms();
    if (shm_reader_check(&R.rd, now, 500) == 0) {
        const struct shm_header *h = R.rd.h;
        if (h->generation != R.generation) {
            /* A new segment (the collector restarted): stream from its
             * present, not its past. */
            R.generation = h->generation;
            R.feed_head = atomic_load_explicit(
                &((struct shm_header *)h)->feed_head, memory_order_acquire);
            R.ring_head = atomic_load_explicit(
                &((struct shm_header *)h)->ring_head, memory_order_acquire);
            log_info(NULL, "msg=\"following the live segment\" generation=%llu",
                     (unsigned long long)R.generation);
        }
        int64_t as_of = shm_summary(h)->as_of_sec;
        if (as_of > R.as_of) {
            R.as_of = as_of;
            R.start_ms = now - (as_of + 1) * 1000;
            relay_second(h);
            R.fanout_ms = proto_now_ms() - (as_of + 1) * 1000;
            relay_write_stats();
        }
        if (R.as_of > 0)
            relay_start_clients(h);
    }
    /* Keepalive goes on while the collector is away. */
    if (proto_now_ms() - R.keepalive_ms >= 1000) {
        R.keepalive_ms = proto_now_ms();
        relay_keepalive(R.keepalive_ms);
    }
    /* Sleep until just after the next second should close (then look
     * every RELAY_TICK_MS until it has), at most 200 ms; new clients are
     * started at once.  Every wakeup polls every socket: with thousands of
     * clients, a fixed 10 ms tick was most of the relay's CPU. */
    int64_t due = (R.as_of + 2) * 1000 + 2 - proto_now_ms(), ms = RELAY_TICK_MS;
    if (R.unstarted == 0 && R.as_of > 0 && due > ms)
        ms = due < 200 ? due : 200;
    lws_sul_schedule(R.ctx, 0, &R.sul, relay_tick, ms * LWS_US_PER_MS);
}

/* ---- connections ---- */

/* A query parameter of the connection (name with its '='), or "".  lws
 * copies "name=value" into buf and points at the value. */
static void relay_arg(struct lws *wsi, const char *name, char *buf, int n)
{
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, n);
    if (v == NULL)
        buf[0] = '\0';
    else if (v != buf)
        memmove(buf, v, strlen(v) + 1);
}

/* The topics of a list "stats,feed,events" (JSON array or text). */
static unsigned relay_topics(const char *s)
{
    unsigned t = 0;
    if (strstr(s, "stats"))
        t |= T_STATS;
    if (strstr(s, "feed"))
        t |= T_FEED;
    if (strstr(s, "events"))
        t |= T_EVENTS;
    if (strstr(s, "breakdown"))
        t |= T_BREAKDOWN | T_STATS;
    return t ? t : T_DEFAULT;
}

/* A subscription change from the client: {"topics", "provider",
 * "model"}. */
static void relay_subscribe(struct rclient *c, const char *in, size_t len)
{
    json_t *o = json_loadb(in, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    json_t *t = json_object_get(o, "topics");
    if (json_is_array(t)) {
        char *s = json_dumps(t, JSON_COMPACT);
        c->topics = relay_topics(s ? s : "");
        free(s);
    }
    const char *p = json_string_value(json_object_get(o, "provider"));
    const char *m = json_string_value(json_object_get(o, "model"));
    if (json_object_get(o, "provider") != NULL)
        snprintf(c->provider, sizeof(c->provider), "%s", p ? p : "");
    if (json_object_get(o, "model") != NULL)
        snprintf(c->model, sizeof(c->model), "%s", m ? m : "");
    json_decref(o);
}

/* A custom request header into buf (lower-case name with ':'). */
static int relay_header(struct lws *wsi, const char *name, char *buf, int n)
{
    int len = lws_hdr_custom_copy(wsi, buf, n, name, (int)strlen(name));
    if (len < 0)
        buf[0] = '\0';
    return len;
}

static int relay_established(struct lws *wsi, struct rclient *c)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->topics = T_DEFAULT;
    c->rounds = json_object();
    c->heard_ms = proto_now_ms();
    relay_header(wsi, "x-request-id:", c->rid, sizeof(c->rid));
    if (relay_header(wsi, "x-tokentap-workspace:", c->ws, sizeof(c->ws)) <= 0) {
        relay_close_reason(wsi, "no workspace");
        return -1;
    }
    char uri[256], arg[160];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
        uri[0] = '\0';
    if (strncmp(uri, "/ws/crosstalk/", 14) == 0 && uri[14] != '\0') {
        c->crosstalk = 1;
        size_t sl = strlen(uri + 14);
        if (sl >= sizeof(c->session)) {
            relay_close_reason(wsi, "session id too long");
            return -1;
        }
        memcpy(c->session, uri + 14, sl + 1);
    } else if (strcmp(uri, "/ws/live") != 0) {
        relay_close_reason(wsi, "no such stream");
        return -1;
    }
    relay_arg(wsi, "since=", arg, sizeof(arg));
    c->since = strtoll(arg, NULL, 10);
    relay_arg(wsi, "topics=", arg, sizeof(arg));
    if (arg[0] != '\0')
        c->topics = relay_topics(arg);
    relay_arg(wsi, "provider=", c->provider, sizeof(c->provider));
    relay_arg(wsi, "model=", c->model, sizeof(c->model));
    c->next = R.clients;
    R.clients = c;
    R.nclients++;
    R.unstarted++;
    lws_sul_schedule(R.ctx, 0, &R.sul, relay_tick, 1); /* start it now */
    if (!c->crosstalk)
        rws_attach(c);
    log_info(c->rid,
             "msg=\"stream opened\" workspace=%s stream=%s clients=%lld", c->ws,
             uri, (long long)R.nclients);
    return 0;
}

static void relay_closed(struct rclient *c)
{
    for (struct rclient **p = &R.clients; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            R.nclients--;
            R.unstarted -= !c->started;
            break;
        }
    while (c->qlen > 0) {
        rmsg_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % RELAY_QUEUE;
        c->qlen--;
    }
    if (c->w != NULL && --c->w->clients == 0)
        c->w->idle_since = proto_now_ms();
    json_decref(c->rounds);
    c->rounds = NULL;
    log_info(c->rid, "msg=\"stream closed\" workspace=%s clients=%lld", c->ws,
             (long long)R.nclients);
}

static int relay_callback(struct lws *wsi, enum lws_callback_reasons reason,
                          void *user, void *in, size_t len)
{
    struct rclient *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        return relay_established(wsi, c);
    case LWS_CALLBACK_CLOSED:
        if (c->wsi == wsi)
            relay_closed(c);
        break;
    case LWS_CALLBACK_RECEIVE:
        c->heard_ms = proto_now_ms();
        relay_subscribe(c, in, len);
        break;
    case LWS_CALLBACK_RECEIVE_PONG:
        c->heard_ms = proto_now_ms();
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c->closing) {
            relay_close_reason(wsi, c->closing);
            return -1;
        }
        return rclient_write(c) < 0 ? -1 : 0;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols relay_protocols[] = {
    {"tokentap", relay_callback, sizeof(struct rclient), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No validity timers (relay_keepalive() pings instead): a hang-up time of
 * 0 turns them off. */
static const lws_retry_bo_t relay_retry = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

/* Before the loop would block: stop it once asked to. */
static void relay_until_stop(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)w;
    (void)revents;
    if (R.stop)
        ev_break(loop, EVBREAK_ALL);
}

static void relay_lws_log(int level, const char *line)
{
    (void)level;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", line);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_warn(NULL, "msg=\"lws\" detail=\"%s\"", buf);
}

int main(int argc, char **argv)
{
    char err[512];
    sigset_t mask;
    sig_block_stop(&mask);
    if (conf_from_args(&R.conf, argc, argv, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "tt-relay: %s\n", err);
        return 1;
    }
    /* A connection per client: as many as the system lets us have. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (conf_open_log(&R.conf, "relay") != 0)
        return 1;
    lws_set_log_level(LLL_ERR | LLL_WARN, relay_lws_log);
    R.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    R.feed = calloc(RELAY_FEED_MAX, sizeof(*R.feed));
    R.ring = calloc(RELAY_RING_MAX, sizeof(*R.ring));
    if (R.feed == NULL || R.ring == NULL)
        return 1;
    shm_reader_init(&R.rd, R.conf.shm_name);
    char sock[CONF_PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/run/relay.sock", R.conf.data_dir);
    snprintf(R.stats_path, sizeof(R.stats_path), "%s/run/relay.stats",
             R.conf.data_dir);
    unlink(sock);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* libev's epoll loop: lws's own poll() walks every connection on every
     * wakeup (a pong, a new client), most of the relay's CPU at thousands
     * of streams. */
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    void *loops[1] = {loop};
    if (loop == NULL) {
        log_error(NULL, "msg=\"cannot create the event loop\"");
        return 1;
    }
    info.foreign_loops = loops;
    info.options = LWS_SERVER_OPTION_UNIX_SOCK |
                   LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS |
                   LWS_SERVER_OPTION_LIBEV;
    info.iface = sock;
    info.port = 0;
    info.protocols = relay_protocols;
    info.retry_and_idle_policy = &relay_retry;
    info.fd_limit_per_thread = 0;
    info.max_http_header_data = 4096;
    R.ctx = lws_create_context(&info);
    if (R.ctx == NULL) {
        log_error(NULL, "msg=\"cannot listen\" socket=\"%s\"", sock);
        return 1;
    }
    log_info(NULL, "msg=\"relay ready\" socket=\"%s\"", sock);
    lws_sul_schedule(R.ctx, 0, &R.sul, relay_tick,
                     RELAY_TICK_MS * LWS_US_PER_MS);
    ev_prepare until_stop;
    ev_prepare_init(&until_stop, relay_until_stop);
    ev_prepare_start(loop, &until_stop);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &until_stop);
    log_info(NULL, "msg=\"relay stopping\" clients=%lld",
             (long long)R.nclients);
    lws_context_destroy(R.ctx);
    ev_loop_destroy(loop);
    while (R.nws > 0)
        rws_drop(R.nws - 1);
    shm_reader_close(&R.rd);
    unlink(sock);
    free(R.items);
    free(R.feed);
    free(R.ring);
    if (R.sfd >= 0)
        close(R.sfd);
    return 0;
}
