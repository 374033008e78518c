/*
 * server.c: the collector's event loop and its group commit.
 *
 * Every API worker thread keeps one connection and sends one request at a
 * time.  The loop reads whatever frames are ready on every connection,
 * queues the INGEST frames' events into one batch, and then commits the
 * batch in a single transaction: requests that arrive while a commit runs
 * wait in the socket buffers and form the next batch, so the batch grows
 * with the load (group commit).  Each request is answered only after the
 * COMMIT that made its events durable; a failed commit answers every
 * request in it with PROTO_FAIL and stores none of them.
 *
 * Overload: a frame that waited longer than ingest_queue_ms before the
 * loop read it is answered PROTO_BUSY (the worker turns it into 503 with
 * Retry-After) instead of making the queue longer.
 */
#include "collector.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rollup.h"
#include "sig.h"

/* One client connection. */
struct col_conn {
    struct col_conn *prev, *next; /* every open connection */
    int fd;
    char *rbuf; /* bytes read, not yet consumed */
    size_t rlen, rcap;
    char *wbuf; /* replies not yet written */
    size_t wlen, wcap;
    int pending;         /* an INGEST frame waits for the commit */
    uint32_t events;     /* epoll interest currently registered */
    int eof;             /* the peer closed its side */
    uint32_t first;      /* its first item in the batch */
    uint32_t count;      /* its items */
    uint64_t tag;        /* the frame's tag, echoed in the reply */
    size_t frame_len;    /* bytes of the pending frame in rbuf */
    uint64_t parked;     /* a deferred command's id (0: none) ... */
    uint64_t parked_tag; /* ... and its frame's tag */
};

/* The loop's state. */
struct col_srv {
    struct col *c;
    int ep, lfd, sfd;
    int stop;
    struct col_item *items; /* the batch */
    uint32_t nitems, cap;
    struct col_conn **waiting; /* connections with a frame in the batch */
    uint32_t nwaiting, wcap;
    struct col_conn **answered; /* the last batch's, while re-parsing */
    uint32_t acap;
    int64_t (*touch)[2]; /* key id, ms */
    uint32_t ntouch, tcap;
    int64_t last_second_ms;
    int64_t last_commit_ms; /* when the last group commit ended */
    struct col_conn *conns; /* open connections, to free at exit */
    int wfd;                /* the alert engine's: a rule test answered */
    uint64_t cmd_ids;       /* the last command id given */
};

/* Monotonic microseconds, for commit timing. */
static int64_t col_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Grow *buf to hold at least need bytes. */
static int col_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Close and free a connection. */
static void col_conn_free(struct col_srv *sv, struct col_conn *cn)
{
    epoll_ctl(sv->ep, EPOLL_CTL_DEL, cn->fd, NULL);
    close(cn->fd);
    if (cn->prev != NULL)
        cn->prev->next = cn->next;
    else
        sv->conns = cn->next;
    if (cn->next != NULL)
        cn->next->prev = cn->prev;
    free(cn->rbuf);
    free(cn->wbuf);
    free(cn);
}

/* Does the connection wait for an answer (its frame in the batch, or a
 * deferred command)?  It is neither read nor freed meanwhile. */
static int col_conn_waits(const struct col_conn *cn)
{
    return cn->pending || cn->parked != 0;
}

/* Register the interest the connection needs now: input unless a frame
 * of it waits in the batch (its records point into the read buffer, which
 * must not move) or for a deferred answer, output while replies are
 * queued. */
static void col_conn_events(struct col_srv *sv, struct col_conn *cn)
{
    uint32_t want =
        (col_conn_waits(cn) ? 0 : EPOLLIN) | (cn->wlen ? EPOLLOUT : 0);
    if (want == cn->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = cn};
    if (epoll_ctl(sv->ep, EPOLL_CTL_MOD, cn->fd, &ev) == 0)
        cn->events = want;
}

/* Write queued replies until done or the socket is full. */
static int col_flush(struct col_srv *sv, struct col_conn *cn)
{
    int rc = 0;
    while (cn->wlen > 0) {
        ssize_t w = send(cn->fd, cn->wbuf, cn->wlen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                cn->eof = 1;
                rc = -1;
            }
            break;
        }
        memmove(cn->wbuf, cn->wbuf + w, cn->wlen - w);
        cn->wlen -= w;
    }
    col_conn_events(sv, cn);
    return rc;
}

/* Queue one reply frame and write what the socket takes. */
static int col_reply(struct col_srv *sv, struct col_conn *cn, uint16_t type,
                     uint64_t tag, const void *a, size_t alen, const void *b,
                     size_t blen)
{
    struct proto_hdr h = {.len = (uint32_t)(alen + blen),
                          .type = type,
                          .tag = tag,
                          .sent_ms = proto_now_ms()};
    size_t n = sizeof(h) + alen + blen;
    if (col_grow(&cn->wbuf, &cn->wcap, cn->wlen + n) != 0) {
        cn->eof = 1;
        return -1;
    }
    char *p = cn->wbuf + cn->wlen;
    memcpy(p, &h, sizeof(h));
    if (alen)
        memcpy(p + sizeof(h), a, alen);
    if (blen)
        memcpy(p + sizeof(h) + alen, b, blen);
    cn->wlen += n;
    return col_flush(sv, cn);
}

/* Answer an INGEST frame. */
static void col_ack(struct col_srv *sv, struct col_conn *cn, uint64_t tag,
                    int status, uint32_t fresh, uint32_t dup, const char *msg)
{
    struct proto_ack a;
    memset(&a, 0, sizeof(a));
    a.status = status;
    a.fresh = fresh;
    a.dup = dup;
    a.retry_after_s = status == PROTO_BUSY ? 1 : 0;
    if (msg != NULL)
        snprintf(a.message, sizeof(a.message), "%s", msg);
    col_reply(sv, cn, PROTO_ACK, tag, &a, sizeof(a), NULL, 0);
}

/* Drop the first n bytes of a connection's read buffer. */
static void col_consume(struct col_conn *cn, size_t n)
{
    memmove(cn->rbuf, cn->rbuf + n, cn->rlen - n);
    cn->rlen -= n;
}

/* Check that an INGEST payload holds count well-formed records. */
static int col_check_records(const char *p, size_t len, uint32_t count)
{
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (len - off < sizeof(struct ev_rec))
            return -1;
        const struct ev_rec *r = (const struct ev_rec *)(p + off);
        if (r->size < sizeof(*r) || r->size % 8 != 0 || r->size > len - off)
            return -1;
        for (int f = 0; f < EV_NSTR; f++)
            if ((size_t)r->str_off[f] + r->str_len[f] + 1 > r->size ||
                p[off + r->str_off[f] + r->str_len[f]] != '\0')
                return -1;
        off += r->size;
    }
    return off == len ? 0 : -1;
}

static void col_commit_batch(struct col_srv *sv);
static void col_parse(struct col_srv *sv, struct col_conn *cn);

/* Queue the events of an INGEST frame into the batch. */
static int col_take_ingest(struct col_srv *sv, struct col_conn *cn,
                           const struct proto_hdr *h, char *payload)
{
    struct col *c = sv->c;
    int64_t now = proto_now_ms();
    if (h->len < sizeof(struct proto_ingest))
        return -1;
    struct proto_ingest *pi = (struct proto_ingest *)payload;
    pi->workspace[sizeof(pi->workspace) - 1] = '\0';
    pi->request_id[sizeof(pi->request_id) - 1] = '\0';
    char *recs = payload + sizeof(*pi);
    size_t rlen = h->len - sizeof(*pi);
    if (pi->count == 0 || pi->count > EV_MAX_BATCH ||
        col_check_records(recs, rlen, pi->count) != 0) {
        log_error(pi->request_id, "msg=\"malformed ingest frame\"");
        return -1;
    }
    if (now - h->sent_ms > c->conf.ingest_queue_ms) {
        atomic_fetch_add_explicit(&live_header(c->live)->health.rejected_busy,
                                  1, memory_order_relaxed);
        log_warn(pi->request_id,
                 "msg=\"ingest refused: queue too old\" age_ms=%lld",
                 (long long)(now - h->sent_ms));
        col_ack(sv, cn, h->tag, PROTO_BUSY, 0, 0, "collector overloaded");
        col_consume(cn, sizeof(*h) + h->len);
        return 0;
    }
    if (sv->nitems > 0 &&
        sv->nitems + pi->count > (uint32_t)c->conf.commit_max_rows)
        col_commit_batch(sv);
    if (sv->nitems + pi->count > sv->cap) {
        uint32_t n = sv->cap ? sv->cap : 4096;
        while (n < sv->nitems + pi->count)
            n *= 2;
        struct col_item *it = realloc(sv->items, n * sizeof(*it));
        if (it == NULL)
            return -1;
        sv->items = it;
        sv->cap = n;
    }
    if (sv->nwaiting == sv->wcap) {
        uint32_t n = sv->wcap ? sv->wcap * 2 : 64;
        struct col_conn **w = realloc(sv->waiting, n * sizeof(*w));
        if (w == NULL)
            return -1;
        sv->waiting = w;
        sv->wcap = n;
    }
    cn->first = sv->nitems;
    cn->count = pi->count;
    cn->tag = h->tag;
    cn->frame_len = sizeof(*h) + h->len;
    cn->pending = 1;
    col_conn_events(sv, cn);
    const char *p = recs;
    for (uint32_t i = 0; i < pi->count; i++) {
        struct col_item *it = &sv->items[sv->nitems++];
        it->rec = (const struct ev_rec *)p;
        it->workspace = pi->workspace;
        it->request_id = pi->request_id;
        it->received_ms = now;
        it->seq = 0;
        it->cost_nusd = 0;
        it->unknown = 0;
        p += it->rec->size;
    }
    sv->waiting[sv->nwaiting++] = cn;
    atomic_store_explicit(&live_header(c->live)->health.queue_depth, sv->nitems,
                          memory_order_relaxed);
    return 0;
}

/* Answer a command frame (tag) with status and reply. */
static int col_cmd_reply(struct col_srv *sv, struct col_conn *cn, uint64_t tag,
                         int status, const json_t *reply)
{
    char *text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
    struct proto_reply r = {.http_status = text != NULL ? status : 500};
    int rc = col_reply(sv, cn, PROTO_CMD_REPLY, tag, &r, sizeof(r),
                       text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    return rc;
}

/* Run a command frame between batches.  A deferred one parks the
 * connection until its answer (col_cmd_answered). */
static int col_take_cmd(struct col_srv *sv, struct col_conn *cn,
                        const struct proto_hdr *h, const char *payload)
{
    if (sv->nitems > 0)
        col_commit_batch(sv);
    json_t *reply = NULL;
    sv->c->cmd_id = ++sv->cmd_ids;
    int status = col_command(sv->c, payload, h->len, &reply), rc = 0;
    if (status == COL_DEFERRED) {
        cn->parked = sv->c->cmd_id;
        cn->parked_tag = h->tag;
        col_conn_events(sv, cn);
    } else
        rc = col_cmd_reply(sv, cn, h->tag, status, reply);
    json_decref(reply);
    col_consume(cn, sizeof(*h) + h->len);
    return rc;
}

static void col_parse(struct col_srv *sv, struct col_conn *cn);

/* A deferred command's answer: to its parked connection, if still open
 * (one closed meanwhile is freed now). */
static void col_cmd_answered(void *arg, uint64_t id, json_t *reply)
{
    struct col_srv *sv = arg;
    struct col_conn *cn = sv->conns;
    while (cn != NULL && cn->parked != id)
        cn = cn->next;
    if (cn == NULL)
        return;
    cn->parked = 0;
    if (!cn->eof)
        col_cmd_reply(sv, cn, cn->parked_tag, 200, reply);
    if (cn->eof && !cn->pending)
        col_conn_free(sv, cn);
    else {
        col_parse(sv, cn); /* frames that came meanwhile */
        col_conn_events(sv, cn);
    }
}

/* Remember key uses from a TOUCH frame. */
static int col_take_touch(struct col_srv *sv, struct col_conn *cn,
                          const struct proto_hdr *h, const char *payload)
{
    size_t n = h->len / (2 * sizeof(int64_t));
    if (sv->ntouch + n > sv->tcap) {
        uint32_t cap = sv->tcap ? sv->tcap : 64;
        while (cap < sv->ntouch + n)
            cap *= 2;
        void *t = realloc(sv->touch, cap * sizeof(*sv->touch));
        if (t == NULL)
            return -1;
        sv->touch = t;
        sv->tcap = cap;
    }
    memcpy(sv->touch + sv->ntouch, payload, n * 2 * sizeof(int64_t));
    sv->ntouch += (uint32_t)n;
    col_consume(cn, sizeof(*h) + h->len);
    return 0;
}

/* Handle every complete frame of a connection that is not waiting. */
static void col_parse(struct col_srv *sv, struct col_conn *cn)
{
    while (!col_conn_waits(cn) && cn->rlen >= sizeof(struct proto_hdr)) {
        struct proto_hdr h;
        memcpy(&h, cn->rbuf, sizeof(h));
        if (h.len > PROTO_MAX_PAYLOAD) {
            cn->eof = 1;
            return;
        }
        if (cn->rlen < sizeof(h) + h.len) {
            if (col_grow(&cn->rbuf, &cn->rcap, sizeof(h) + h.len + 1) != 0)
                cn->eof = 1;
            return;
        }
        char *payload = cn->rbuf + sizeof(h);
        int rc;
        switch (h.type) {
        case PROTO_INGEST:
            rc = col_take_ingest(sv, cn, &h, payload);
            break;
        case PROTO_CMD:
            rc = col_take_cmd(sv, cn, &h, payload);
            break;
        case PROTO_TOUCH:
            rc = col_take_touch(sv, cn, &h, payload);
            break;
        default:
            rc = -1;
        }
        if (rc != 0) {
            cn->eof = 1;
            return;
        }
    }
}

/* Read everything available on a connection. */
static void col_read(struct col_srv *sv, struct col_conn *cn)
{
    for (;;) {
        if (col_grow(&cn->rbuf, &cn->rcap, cn->rlen + 65536) != 0) {
            cn->eof = 1;
            return;
        }
        ssize_t n = recv(cn->fd, cn->rbuf + cn->rlen, cn->rcap - cn->rlen, 0);
        if (n > 0) {
            cn->rlen += n;
            continue;
        }
        if (n == 0)
            cn->eof = 1;
        else if (errno == EINTR)
            continue;
        else if (errno != EAGAIN)
            cn->eof = 1;
        return;
    }
}

/* Turn a committed item into the live aggregator's shape. */
void col_live_event(const struct col_item *it, struct live_event *e)
{
    const struct ev_rec *r = it->rec;
    memset(e, 0, sizeof(*e));
    e->workspace = it->workspace;
    e->provider = ev_str(r, EV_S_PROVIDER);
    e->model = ev_str(r, EV_S_MODEL);
    e->ts_ms = r->ts_ms;
    e->received_ms = it->received_ms;
    e->tokens[SHM_TOK_INPUT] = r->input_tokens;
    e->tokens[SHM_TOK_OUTPUT] = r->output_tokens;
    e->tokens[SHM_TOK_CACHE_READ] = r->cache_read_tokens;
    e->tokens[SHM_TOK_CACHE_WRITE] = r->cache_write_tokens;
    e->tokens[SHM_TOK_REASONING] = r->reasoning_tokens;
    e->cost_nusd = it->cost_nusd;
    e->latency_ms = (r->flags & EV_F_LATENCY) ? r->latency_ms : -1;
    e->ttft_ms = (r->flags & EV_F_TTFT) ? r->ttft_ms : -1;
    e->is_error = (r->flags & EV_F_ERROR) != 0;
    e->id = ev_str(r, EV_S_ID);
    e->operation = ev_str(r, EV_S_OPERATION);
    e->error_type = ev_str(r, EV_S_ERROR_TYPE);
    e->user = ev_str(r, EV_S_USER);
    e->agent = ev_str(r, EV_S_AGENT);
    e->session = ev_str(r, EV_S_SESSION);
    e->request_id = r->str_len[EV_S_REQUEST_ID] ? ev_str(r, EV_S_REQUEST_ID)
                                                : it->request_id;
    e->status = (r->flags & EV_F_STATUS) ? r->status : 0;
    e->round = (r->flags & EV_F_ROUND) ? r->round : -1;
    e->flags = r->flags;
}

/* Commit the batch, answer its requests, and feed the live aggregator. */
static void col_commit_batch(struct col_srv *sv)
{
    struct col *c = sv->c;
    struct shm_health *hl = &live_header(c->live)->health;
    int64_t t0 = col_us();
    char msg[192] = "";
    int rc = col_store_begin(&c->store);
    for (uint32_t i = 0; rc == SQLITE_OK && i < sv->nitems; i++)
        rc = col_store_insert(c, &sv->items[i]);
    if (rc == SQLITE_OK)
        rc = col_store_flush_unknown(&c->store);
    for (uint32_t i = 0; rc == SQLITE_OK && i < sv->ntouch; i++)
        rc = col_store_touch_key(&c->store, sv->touch[i][0], sv->touch[i][1]);
    if (rc == SQLITE_OK)
        rc = col_store_commit(&c->store);
    sv->ntouch = 0;
    int ok = rc == SQLITE_OK;
    if (!ok) {
        snprintf(msg, sizeof(msg), "database error: %s",
                 sqlite3_errmsg(c->store.db));
        log_error(NULL, "msg=\"group commit failed\" rows=%u error=\"%s\"",
                  sv->nitems, sqlite3_errmsg(c->store.db));
        col_store_rollback(&c->store);
        for (uint32_t i = 0; i < sv->nitems; i++)
            sv->items[i].seq = 0;
    }
    int64_t us = col_us() - t0;
    sv->last_commit_ms = proto_now_ms();
    uint64_t fresh_total = 0, dup_total = 0;

    for (uint32_t k = 0; k < sv->nwaiting; k++) {
        struct col_conn *cn = sv->waiting[k];
        uint32_t fresh = 0;
        for (uint32_t i = cn->first; i < cn->first + cn->count; i++)
            fresh += sv->items[i].seq > 0;
        if (ok) {
            col_ack(sv, cn, cn->tag, PROTO_OK, fresh, cn->count - fresh, NULL);
            fresh_total += fresh;
            dup_total += cn->count - fresh;
        } else
            col_ack(sv, cn, cn->tag, PROTO_FAIL, 0, 0, msg);
    }

    if (ok) {
        /* Only committed events reach the live numbers. */
        uint32_t feed_from = 0, seen = 0;
        for (uint32_t i = sv->nitems;
             i > 0 && seen < (uint32_t)c->conf.feed_size; i--)
            if (sv->items[i - 1].seq > 0) {
                seen++;
                feed_from = i - 1;
            }
        for (uint32_t i = 0; i < sv->nitems; i++) {
            struct col_item *it = &sv->items[i];
            if (it->seq == 0)
                continue;
            struct live_event e;
            col_live_event(it, &e);
            live_add(c->live, &e);
            col_aggr_add(c->aggr, it->ws_id, &e, it->seq);
            col_budget_event(c, &e);
            col_alert_event(c, it->ws_id, &e, ev_str(it->rec, EV_S_API_KEY));
            c->live_seq = it->seq;
            if (it->unknown)
                atomic_fetch_add_explicit(&hl->unknown_models, 1,
                                          memory_order_relaxed);
            if (i >= feed_from)
                live_feed(c->live, &e);
        }
    }

    atomic_fetch_add_explicit(&hl->events_stored, fresh_total,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&hl->events_duplicate, dup_total,
                              memory_order_relaxed);
    if (ok)
        atomic_fetch_add_explicit(&hl->commits, 1, memory_order_relaxed);
    atomic_store_explicit(&hl->last_commit_rows, sv->nitems,
                          memory_order_relaxed);
    atomic_store_explicit(&hl->last_commit_us, (uint64_t)us,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&hl->commit_us_total, (uint64_t)us,
                              memory_order_relaxed);
    atomic_store_explicit(&hl->db_ok, ok, memory_order_relaxed);
    if (!ok)
        atomic_fetch_add_explicit(&hl->rejected_fail, sv->nwaiting,
                                  memory_order_relaxed);
    atomic_store_explicit(&hl->queue_depth, 0, memory_order_relaxed);
    log_debug(NULL, "msg=\"committed\" rows=%u requests=%u us=%lld", sv->nitems,
              sv->nwaiting, (long long)us);

    /* Free the frames, then look at what the connections sent since.  The
     * answered connections move to their own list first: parsing may queue
     * new frames, which reuse the waiting list. */
    uint32_t nw = sv->nwaiting;
    struct col_conn **done = sv->waiting;
    sv->waiting = sv->answered;
    sv->answered = done;
    uint32_t cap = sv->wcap;
    sv->wcap = sv->acap;
    sv->acap = cap;
    sv->nitems = 0;
    sv->nwaiting = 0;
    for (uint32_t k = 0; k < nw; k++) {
        struct col_conn *cn = done[k];
        col_consume(cn, cn->frame_len);
        cn->pending = 0;
        col_conn_events(sv, cn);
    }
    for (uint32_t k = 0; k < nw; k++)
        col_parse(sv, done[k]);
}

/* Accept every pending connection. */
static void col_accept(struct col_srv *sv)
{
    for (;;) {
        int fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct col_conn *cn = calloc(1, sizeof(*cn));
        if (cn == NULL) {
            close(fd);
            continue;
        }
        cn->fd = fd;
        cn->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cn};
        if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(cn);
            continue;
        }
        cn->next = sv->conns;
        if (sv->conns != NULL)
            sv->conns->prev = cn;
        sv->conns = cn;
    }
}

/* Open the listening socket at path. */
static int col_listen(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error(NULL, "msg=\"socket path too long\" path=\"%s\"", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1024) != 0) {
        log_error(NULL, "msg=\"cannot listen\" path=\"%s\" error=\"%s\"", path,
                  strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0660);
    return fd;
}

/* Once a second: health numbers that are not per event. */
static void col_housekeeping(struct col_srv *sv, int64_t now)
{
    struct col *c = sv->c;
    char path[CONF_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/tokentap.db", c->conf.data_dir);
    atomic_store_explicit(&live_header(c->live)->health.db_bytes,
                          col_store_size(path), memory_order_relaxed);
    if (sv->ntouch > 0 && col_store_begin(&c->store) == SQLITE_OK) {
        for (uint32_t i = 0; i < sv->ntouch; i++)
            col_store_touch_key(&c->store, sv->touch[i][0], sv->touch[i][1]);
        if (col_store_commit(&c->store) != SQLITE_OK)
            col_store_rollback(&c->store);
        sv->ntouch = 0;
    }
    col_budget_tick(c, now);
    col_alert_apply(c);
    sv->last_second_ms = now;
    if (col_aggr_rescan_needed(c->aggr) && col_aggr_flush(c, now) == 0)
        col_rebuild_rollups(c);
    /* Retention: a few milliseconds a second, in small transactions. */
    col_aggr_prune(c, now, 20);
}

int col_serve(struct col *c)
{
    struct col_srv sv;
    memset(&sv, 0, sizeof(sv));
    sv.c = c;
    char path[CONF_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/run/collector.sock", c->conf.data_dir);

    sigset_t mask;
    sig_block_stop(&mask); /* main() did already; this gets the set */
    sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sv.ep = epoll_create1(EPOLL_CLOEXEC);
    sv.lfd = col_listen(path);
    if (sv.sfd < 0 || sv.ep < 0 || sv.lfd < 0)
        return 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sv.lfd};
    epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.lfd, &ev);
    ev.data.ptr = &sv.sfd;
    epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.sfd, &ev);
    sv.wfd = col_alert_wake_fd(c);
    ev.data.ptr = &sv.wfd;
    if (sv.wfd >= 0)
        epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.wfd, &ev);
    log_info(NULL, "msg=\"collector ready\" socket=\"%s\"", path);

    struct shm_health *hl = &live_header(c->live)->health;
    struct epoll_event evs[128];
    while (!sv.stop) {
        int64_t now = proto_now_ms();
        /* Frames parsed after the last commit wait in the batch: commit
         * them without sleeping. */
        int timeout = sv.nitems ? 0 : (int)(1000 - now % 1000) + 1;
        if (col_aggr_pending(c->aggr) > 0 && timeout > ROLLUP_IDLE_MS)
            timeout = ROLLUP_IDLE_MS;
        int n = epoll_wait(sv.ep, evs, 128, timeout), answered = 0;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &sv.lfd) {
                col_accept(&sv);
            } else if (p == &sv.wfd) {
                answered = 1;
            } else if (p == &sv.sfd) {
                struct signalfd_siginfo si;
                while (read(sv.sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGHUP)
                        log_reopen();
                    else
                        sv.stop = 1;
                }
            } else {
                struct col_conn *cn = p;
                if (evs[i].events & EPOLLOUT)
                    col_flush(&sv, cn);
                if (col_conn_waits(cn)) {
                    /* Do not read: the batch points into rbuf.  A hang-up
                     * is handled once the frame is answered. */
                    if (evs[i].events & (EPOLLHUP | EPOLLERR))
                        cn->eof = 1;
                } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    col_read(&sv, cn);
                    col_parse(&sv, cn);
                }
            }
        }
        if (sv.nitems > 0)
            col_commit_batch(&sv);
        /* Rollups: once a second under load, and as soon as ingest
         * pauses for ROLLUP_IDLE_MS (an acknowledged event is then in them
         * a moment later). */
        now = proto_now_ms();
        if (col_aggr_due(c->aggr, now, sv.last_commit_ms))
            col_aggr_flush(c, now);
        /* Free connections that closed and wait for nothing. */
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &sv.lfd || p == &sv.sfd || p == &sv.wfd)
                continue;
            struct col_conn *cn = p;
            if (cn->eof && !col_conn_waits(cn)) {
                col_conn_free(&sv, cn);
                /* Later events in this round may name the same pointer. */
                for (int j = i + 1; j < n; j++)
                    if (evs[j].data.ptr == p)
                        evs[j].data.ptr = &sv.lfd;
            }
        }
        /* Rule tests the engine answered (after the loop over evs, which
         * may name a connection freed here). */
        if (answered)
            col_alert_tests_done(c, col_cmd_answered, &sv);
        now = proto_now_ms();
        live_tick(c->live, now);
        atomic_store_explicit(&hl->heartbeat_ms, now, memory_order_relaxed);
        if (now - sv.last_second_ms >= 1000)
            col_housekeeping(&sv, now);
    }
    if (sv.nitems > 0)
        col_commit_batch(&sv);
    col_aggr_flush(c, proto_now_ms());
    log_info(NULL, "msg=\"collector stopping\"");
    close(sv.lfd);
    unlink(path);
    while (sv.conns != NULL)
        col_conn_free(&sv, sv.conns);
    close(sv.sfd);
    close(sv.ep);
    free(sv.items);
    free(sv.waiting);
    free(sv.answered);
    free(sv.touch);
    return 0;
}
