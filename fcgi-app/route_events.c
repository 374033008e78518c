/*
 * route_events.c: POST /api/v1/events, the ingest endpoint.
 *
 * The body (one event or an array of up to 1000) is validated here, all or
 * nothing, into flat records that go to the collector in one frame; the
 * answer waits for the collector's COMMIT, so a 200 means every event in
 * it is durable.  The answer says how many events were new and how many
 * were duplicates of stored ids, and, when the server assigned any id,
 * lists every event's id in order.
 */
#include "api.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "log.h"
#include "proto.h"

/* Answer 503 for a batch whose fate is unknown, listing the ids the server
 * assigned so that a retry can reuse them (a stored event is then reported
 * as a duplicate, never stored twice). */
static int api_unknown_outcome(struct api_req *r, const struct ev_batch *b,
                               int timed_out)
{
    json_t *e = json_pack(
        "{s:s, s:s, s:s}", "code", "unavailable", "message",
        timed_out ? "the collector did not commit in time; the events may "
                    "or may not be stored: retry with the same ids"
                  : "the collector stopped while handling the events; they "
                    "may or may not be stored: retry with the same ids",
        "request_id", r->rid);
    int assigned = 0;
    for (const struct ev_rec *ev = ev_batch_next(b, NULL); ev != NULL;
         ev = ev_batch_next(b, ev))
        assigned |= (ev->flags & EV_F_ID_SERVER) != 0;
    if (assigned) {
        json_t *ids = json_array();
        for (const struct ev_rec *ev = ev_batch_next(b, NULL); ev != NULL;
             ev = ev_batch_next(b, ev))
            json_array_append_new(ids, json_string(ev_str(ev, EV_S_ID)));
        json_object_set_new(e, "ids", ids);
    }
    api_send_json(r, 503, json_pack("{s:o}", "error", e),
                  timed_out ? "Retry-After: 2\r\n" : "Retry-After: 1\r\n");
    return -1;
}

int api_events_post(struct api_req *r)
{
    struct api_global *g = r->t->g;
    if (!api_is_json(r->content_type))
        return api_error(r, 415, "unsupported_media_type", NULL,
                         "Content-Type must be application/json, got \"%s\"",
                         r->content_type ? r->content_type : "");
    char *body;
    long len = api_read_body(r, g->conf.ingest_max_body, &body);
    if (len < 0)
        return -1;

    struct ev_batch b = {0};
    struct ev_error err;
    enum ev_result res = ev_parse_body(body, (size_t)len, r->now_ms, &b, &err);
    switch (res) {
    case EV_OK:
        break;
    case EV_ERR_TOO_MANY:
        return api_error(r, 413, "too_many_events", NULL, "%s", err.message);
    case EV_ERR_NOMEM:
        return api_error(r, 500, "internal", NULL, "out of memory");
    case EV_ERR_JSON:
        return api_error(r, 400, "invalid_json", NULL, "%s", err.message);
    case EV_ERR_INVALID: {
        char field[96];
        if (err.index >= 0 && err.field[0])
            snprintf(field, sizeof(field), "[%d].%s", err.index, err.field);
        else if (err.index >= 0)
            snprintf(field, sizeof(field), "[%d]", err.index);
        else
            snprintf(field, sizeof(field), "%s", err.field);
        ev_utf8_clean(field);
        ev_utf8_clean(err.message);
        json_t *e = json_pack("{s:s, s:s}", "code", "invalid_event", "message",
                              err.message);
        if (field[0])
            json_object_set_new(e, "field", json_string(field));
        if (err.index >= 0)
            json_object_set_new(e, "index", json_integer(err.index));
        json_object_set_new(e, "request_id", json_string(r->rid));
        return api_send_json(r, 400, json_pack("{s:o}", "error", e), NULL);
    }
    }

    struct proto_ack ack;
    int rc =
        api_col_ingest(r->t, r->workspace, r->rid, b.buf, b.len, b.count, &ack);
    if (rc != 0) {
        if (rc == -ETIMEDOUT || rc == API_COL_UNKNOWN) {
            int n = api_unknown_outcome(r, &b, rc == -ETIMEDOUT);
            ev_batch_free(&b);
            return n;
        }
        ev_batch_free(&b);
        return api_error_h(r, 503, "Retry-After: 1\r\n", "unavailable", NULL,
                           "the collector is not reachable; nothing was "
                           "stored");
    }
    if (ack.status != PROTO_OK) {
        ev_batch_free(&b);
        char extra[48];
        snprintf(extra, sizeof(extra), "Retry-After: %u\r\n",
                 ack.retry_after_s ? ack.retry_after_s : 1);
        if (ack.status == PROTO_BUSY)
            return api_error_h(r, 503, extra, "overloaded", NULL,
                               "the collector is overloaded; nothing was "
                               "stored");
        return api_error_h(r, 503, extra, "unavailable", NULL,
                           "nothing was stored: %s", ack.message);
    }

    json_t *out = json_pack("{s:i, s:i, s:i}", "accepted", (int)b.count, "new",
                            (int)ack.fresh, "duplicates", (int)ack.dup);
    /* The ids are news to the client only when the server made some up;
     * then every event's id is listed, in the order sent. */
    int assigned = 0;
    for (const struct ev_rec *e = ev_batch_next(&b, NULL); e != NULL;
         e = ev_batch_next(&b, e))
        assigned |= (e->flags & EV_F_ID_SERVER) != 0;
    if (assigned) {
        json_t *ids = json_array();
        for (const struct ev_rec *e = ev_batch_next(&b, NULL); e != NULL;
             e = ev_batch_next(&b, e))
            json_array_append_new(
                ids,
                json_stringn_nocheck(ev_str(e, EV_S_ID), e->str_len[EV_S_ID]));
        json_object_set_new(out, "ids", ids);
    }
    ev_batch_free(&b);
    return api_send_json(r, 200, out, NULL);
}
