/*
 * params.c: the query parameters the history endpoints share.
 *
 * A time range is either a preset (range=1h|24h|today|7d|30d|90d; "today"
 * starts at 00:00 UTC) or from/to in RFC 3339 (any offset), from inclusive
 * and to exclusive.  Filters narrow to one provider, model, agent, user or
 * session, or to status=ok|error.  format=json|csv picks the answer's form.
 * Every parser answers 400 naming the parameter and quoting the value, and
 * then returns -1.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int api_parse_range(struct api_req *r, const char *def, struct api_range *out)
{
    const char *range = api_query(r, "range");
    const char *from = api_query(r, "from");
    const char *to = api_query(r, "to");
    if (range != NULL && (from != NULL || to != NULL))
        return api_error(r, 400, "invalid_parameter", "range",
                         "give either range or from/to, not both");
    out->to_ms = r->now_ms;
    if (from != NULL || to != NULL) {
        if (from == NULL || ev_parse_rfc3339(from, &out->from_ms) != 0)
            return api_error(r, 400, "invalid_parameter", "from",
                             "from must be an RFC 3339 date-time, got "
                             "\"%.64s\"",
                             from ? from : "");
        if (to != NULL && ev_parse_rfc3339(to, &out->to_ms) != 0)
            return api_error(r, 400, "invalid_parameter", "to",
                             "to must be an RFC 3339 date-time, got "
                             "\"%.64s\"",
                             to);
        if (out->to_ms <= out->from_ms)
            return api_error(r, 400, "invalid_parameter", "to",
                             "to must be after from");
        return 0;
    }
    if (range == NULL)
        range = def;
    static const struct {
        const char *name;
        int64_t ms;
    } presets[] = {{"1h", 3600000LL},        {"24h", 86400000LL},
                   {"7d", 7 * 86400000LL},   {"30d", 30 * 86400000LL},
                   {"90d", 90 * 86400000LL}, {"today", 0}};
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        if (strcmp(range, presets[i].name) != 0)
            continue;
        out->from_ms = presets[i].ms ? r->now_ms - presets[i].ms
                                     : r->now_ms - r->now_ms % 86400000LL;
        return 0;
    }
    return api_error(r, 400, "invalid_parameter", "range",
                     "range must be one of 1h, 24h, today, 7d, 30d, 90d, got "
                     "\"%.32s\"",
                     range);
}

int api_parse_filters(struct api_req *r, struct api_filter *f)
{
    memset(f, 0, sizeof(*f));
    static const char *const names[] = {"provider", "model", "agent", "user",
                                        "session"};
    const char **slots[] = {&f->provider, &f->model, &f->agent, &f->user,
                            &f->session};
    for (int i = 0; i < 5; i++) {
        const char *v = api_query(r, names[i]);
        if (v != NULL && (v[0] == '\0' || strlen(v) > EV_MAX_NAME))
            return api_error(r, 400, "invalid_parameter", names[i],
                             "%s must be 1 to %d bytes, got \"%.64s\"",
                             names[i], EV_MAX_NAME, v);
        *slots[i] = v;
    }
    const char *st = api_query(r, "status");
    f->status = API_STATUS_ANY;
    if (st != NULL) {
        if (strcmp(st, "ok") == 0)
            f->status = API_STATUS_OK;
        else if (strcmp(st, "error") == 0)
            f->status = API_STATUS_ERROR;
        else
            return api_error(r, 400, "invalid_parameter", "status",
                             "status must be ok or error, got \"%.32s\"", st);
    }
    return 0;
}

int api_parse_format(struct api_req *r, int *csv)
{
    const char *fmt = api_query(r, "format");
    *csv = 0;
    if (fmt == NULL || strcmp(fmt, "json") == 0)
        return 0;
    if (strcmp(fmt, "csv") == 0) {
        *csv = 1;
        return 0;
    }
    return api_error(r, 400, "invalid_parameter", "format",
                     "format must be json or csv, got \"%.32s\"", fmt);
}

int api_parse_limit(struct api_req *r, long def, long max, long *out)
{
    const char *lq = api_query(r, "limit");
    *out = def;
    if (lq == NULL)
        return 0;
    char *end;
    *out = strtol(lq, &end, 10);
    if (lq[0] == '\0' || *end != '\0' || *out < 1 || *out > max)
        return api_error(r, 400, "invalid_parameter", "limit",
                         "limit must be an integer from 1 to %ld, got "
                         "\"%.32s\"",
                         max, lq);
    return 0;
}

int api_parse_id_cursor(struct api_req *r, int64_t *after)
{
    const char *cq = api_query(r, "cursor");
    *after = 0;
    if (cq == NULL)
        return 0;
    char *end;
    long long v = strtoll(cq, &end, 10);
    if (cq[0] == '\0' || *end != '\0' || v < 1)
        return api_error(r, 400, "invalid_parameter", "cursor",
                         "cursor must be a next_cursor value, got \"%.32s\"",
                         cq);
    *after = v;
    return 0;
}

void api_csv_field(struct api_req *r, const char *s, int last)
{
    FCGX_Stream *out = r->t->fr.out;
    /* RFC 4180: quote a field holding a comma, a quote or a line break,
     * doubling its quotes. */
    if (strpbrk(s, ",\"\r\n") == NULL)
        FCGX_PutS(s, out);
    else {
        FCGX_PutChar('"', out);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                FCGX_PutChar('"', out);
            FCGX_PutChar(*p, out);
        }
        FCGX_PutChar('"', out);
    }
    FCGX_PutS(last ? "\r\n" : ",", out);
}

void api_csv_start(struct api_req *r, const char *file, const char *const *cols,
                   int n)
{
    char extra[256];
    snprintf(extra, sizeof(extra),
             "Content-Disposition: attachment; filename=\"%s\"\r\n", file);
    api_send_text(r, 200, "text/csv; charset=utf-8", "", 0, extra);
    for (int i = 0; i < n; i++)
        api_csv_field(r, cols[i], i == n - 1);
}
