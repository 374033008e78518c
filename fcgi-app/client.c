/*
 * client.c: a worker thread's connection to the collector.
 *
 * Each thread keeps one connection and sends one request at a time, so no
 * locking is needed.  When the collector restarts, the next request finds
 * the connection dead and reconnects; an INGEST that lost its connection
 * before the answer is resent on a new one for up to a second (the events
 * carry their ids, so a resend stores nothing twice), then the worker
 * answers 503.
 */
#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

#define API_COL_RETRY_MS 1000

/* Drop the thread's collector connection. */
static void api_col_drop(struct api_thread *t)
{
    if (t->col_fd >= 0)
        close(t->col_fd);
    t->col_fd = -1;
}

/* Sleep ms milliseconds. */
static void api_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Send a frame and (unless type is PROTO_TOUCH) wait for its reply. */
static int api_col_call(struct api_thread *t, uint16_t type, const void *a,
                        size_t alen, const void *b, size_t blen,
                        struct proto_hdr *h, void **payload, int timeout_ms)
{
    if (t->col_fd < 0) {
        int fd = proto_connect(t->g->col_path);
        if (fd < 0)
            return fd;
        t->col_fd = fd;
    }
    uint64_t tag = ++t->tag;
    int64_t start = proto_now_ms();
    int rc = proto_send(t->col_fd, type, tag, a, alen, b, blen, timeout_ms);
    if (rc == 0 && type != PROTO_TOUCH) {
        /* One budget for the whole call, not one per direction. */
        int64_t left = timeout_ms - (proto_now_ms() - start);
        rc = proto_recv(t->col_fd, h, payload, left > 0 ? (int)left : 1);
        if (rc == 0 && h->tag != tag) {
            free(*payload);
            *payload = NULL;
            rc = -EPROTO;
        }
        /* The whole frame went out: whatever failed after, the collector
         * may have acted on it. */
        if (rc != 0 && rc != -ETIMEDOUT)
            rc = API_COL_UNKNOWN;
    }
    if (rc != 0)
        api_col_drop(t);
    return rc;
}

int api_col_ingest(struct api_thread *t, const char *ws, const char *rid,
                   const void *recs, size_t len, uint32_t count,
                   struct proto_ack *ack)
{
    struct proto_ingest pi;
    memset(&pi, 0, sizeof(pi));
    pi.count = count;
    snprintf(pi.workspace, sizeof(pi.workspace), "%s", ws);
    snprintf(pi.request_id, sizeof(pi.request_id), "%s", rid);
    int timeout = t->g->conf.ingest_timeout_ms;
    int waited = 0, rc;
    for (;;) {
        struct proto_hdr h;
        void *p = NULL;
        rc = api_col_call(t, PROTO_INGEST, &pi, sizeof(pi), recs, len, &h, &p,
                          timeout);
        if (rc == 0) {
            if (h.type != PROTO_ACK || h.len < sizeof(*ack)) {
                /* Sent whole, answered wrongly: the outcome is unknown. */
                free(p);
                api_col_drop(t);
                return API_COL_UNKNOWN;
            }
            memcpy(ack, p, sizeof(*ack));
            free(p);
            return 0;
        }
        /* Only a frame that never fully left is sent again: after a
         * timeout or a lost answer the outcome is unknown, and resending
         * would report stored events as duplicates. */
        if (rc == -ETIMEDOUT || rc == API_COL_UNKNOWN ||
            waited >= API_COL_RETRY_MS)
            break;
        api_sleep_ms(100);
        waited += 100;
    }
    log_warn(rid, "msg=\"collector unavailable\" error=\"%s\"", strerror(-rc));
    return rc;
}

int api_col_command(struct api_thread *t, const char *cmd, int *status,
                    char **reply)
{
    struct proto_hdr h;
    void *p = NULL;
    int rc = api_col_call(t, PROTO_CMD, cmd, strlen(cmd), NULL, 0, &h, &p,
                          t->g->conf.ingest_timeout_ms);
    /* A stale connection (the collector restarted) fails on send: the
     * command never arrived and is sent once more on a new connection.
     * A command that was sent is never repeated (it may have run). */
    if (rc != 0 && rc != API_COL_UNKNOWN && rc != -ETIMEDOUT)
        rc = api_col_call(t, PROTO_CMD, cmd, strlen(cmd), NULL, 0, &h, &p,
                          t->g->conf.ingest_timeout_ms);
    if (rc != 0)
        return rc;
    if (h.type != PROTO_CMD_REPLY || h.len < sizeof(struct proto_reply)) {
        free(p);
        api_col_drop(t);
        return API_COL_UNKNOWN;
    }
    const struct proto_reply *pr = p;
    *status = pr->http_status;
    size_t n = h.len - sizeof(*pr);
    char *out = malloc(n + 1);
    if (out == NULL) {
        free(p);
        return -ENOMEM;
    }
    memcpy(out, (char *)p + sizeof(*pr), n);
    out[n] = '\0';
    free(p);
    *reply = out;
    return 0;
}

void api_col_touch(struct api_thread *t, int64_t key_id, int64_t now_ms)
{
    struct api_touch *slot = &t->touch[(uint64_t)key_id % 16];
    if (slot->id == key_id && now_ms - slot->sent_ms < 60000)
        return;
    int64_t msg[2] = {key_id, now_ms};
    if (api_col_call(t, PROTO_TOUCH, msg, sizeof(msg), NULL, 0, NULL, NULL,
                     1000) == 0) {
        slot->id = key_id;
        slot->sent_ms = now_ms;
    }
}

int api_command(struct api_req *r, json_t *cmd, int *status, char **reply)
{
    /* The request's id goes along: the collector's lines about the
     * command carry it. */
    if (cmd != NULL && r->rid[0] != '\0')
        json_object_set_new(cmd, "request_id", json_string(r->rid));
    char *text = api_dump(cmd, NULL);
    json_decref(cmd);
    if (text == NULL)
        return api_error(r, 500, "internal", NULL, "out of memory");
    int rc = api_col_command(r->t, text, status, reply);
    free(text);
    if (rc == API_COL_UNKNOWN || rc == -ETIMEDOUT)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the collector did not answer; the change may or "
                           "may not have been made: check before retrying");
    if (rc != 0)
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the collector is not running; nothing was "
                           "changed");
    return 0;
}

json_t *api_command_ok(struct api_req *r, json_t *cmd, int *status)
{
    char *reply = NULL;
    if (api_command(r, cmd, status, &reply) != 0)
        return NULL;
    json_t *o = *status < 300 ? json_loads(reply, 0, NULL) : NULL;
    if (o == NULL) {
        /* The collector's error, as it answered it. */
        if (*status < 300)
            api_error(r, 500, "internal", NULL,
                      "the collector's answer is not JSON");
        else
            api_send_text(r, *status, "application/json", reply, strlen(reply),
                          NULL);
    }
    free(reply);
    return o;
}

int api_command_relay(struct api_req *r, json_t *cmd)
{
    int status;
    json_t *o = api_command_ok(r, cmd, &status);
    return o ? api_send_json(r, status, o, NULL) : -1;
}
