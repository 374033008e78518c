/*
 * main.c: tt-notify, the notification dispatcher.
 *
 * Usage: tt-notify --data DIR [-c FILE] [--set key=value]...
 *
 * It reads the outbox (the notifications table) with a read-only
 * connection and delivers with libcurl's multi interface, many transfers
 * at once on one thread that never blocks on a receiver.  It writes
 * nothing itself: every outcome goes to the collector (the one writer) as
 * a notify.result command, which records the attempt and moves the
 * notification on (collector/notify_cmd.c).  A notification stays pending
 * until its outcome is written, so a dispatcher killed mid-delivery sends
 * it again when it restarts (at least once; receivers deduplicate by the
 * notification id we send).
 *
 * Order and pace.  Notifications of one alert on one channel go out in
 * order, one at a time (a resolve never overtakes its trigger); a channel
 * sends at most one message per min_interval_ms (the rate limit), and
 * none while a Retry-After it answered runs; the others wait in the
 * outbox.  Each outcome names its try, so one written twice (its answer
 * lost) counts once.  Retries: connection errors, timeouts, 408,
 * 429 and 5xx (SMTP 4xx) are tried again after notify_retry_base_ms,
 * doubled each time up to notify_retry_max_ms, with jitter, and at least
 * what a Retry-After asks; other 4xx (SMTP 5xx) fail at once; after
 * notify_max_attempts tries the notification fails.  Redirects are not
 * followed.
 *
 * SSRF guard.  Every connection's address is judged when curl is about to
 * connect to it (CURLOPT_OPENSOCKETFUNCTION), after name resolution:
 * loopback, private, link-local and other internal ranges are refused
 * unless notify_allow_networks opens them (common/netguard.h).  A refusal
 * is final, not retried.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "event.h"
#include "log.h"
#include "netguard.h"
#include "notify_fmt.h"
#include "proto.h"
#include "sig.h"
#include "strbuf.h"

#define ND_SCAN_MS            200  /* the outbox is read this often */
#define ND_JOBS_MAX           64   /* deliveries at once */
#define ND_RESULTS_MAX        500  /* outcomes not yet written: stop starting */
#define ND_RESPONSE_MAX       2048 /* bytes of a response body kept */
#define ND_RETRY_AFTER_MAX_MS (24 * 3600 * 1000LL)

/* One delivery in flight. */
struct nd_job {
    int64_t id, channel_id;
    int attempt; /* this one's number, from 1 */
    int type;    /* enum channel_type */
    CURL *easy;
    struct curl_slist *headers, *rcpt;
    curl_mime *mime;
    char *body;
    char response[ND_RESPONSE_MAX + 1];
    size_t rlen;
    char errbuf[CURL_ERROR_SIZE];
    const struct netguard *guard; /* the dispatcher's */
    char refused[256];            /* the guard's reason, when it refused */
    struct nd_job *next;
};

/* A channel's pace. */
struct nd_pace {
    int64_t channel_id, next_ok_ms;
};

struct nd {
    struct conf conf;
    struct netguard guard;
    sqlite3 *db;
    sqlite3_stmt *scan, *alert, *event;
    CURLM *multi;
    struct nd_job *jobs;
    int njobs;
    json_t *results; /* outcomes not yet written */
    struct nd_pace *pace;
    size_t npace, cappace;
    char col_path[CONF_PATH_MAX + 32];
    char public_url[300];
    int64_t flush_after, flush_warned; /* outcomes' writing held back */
    int stop;
};

/* ---- helpers ---- */

/* The pace of channel id (made when new; NULL when out of memory). */
static struct nd_pace *nd_pace(struct nd *d, int64_t id)
{
    for (size_t i = 0; i < d->npace; i++)
        if (d->pace[i].channel_id == id)
            return &d->pace[i];
    if (strbuf_grow(&d->pace, &d->cappace, d->npace + 1, sizeof(*d->pace),
                    16) != 0)
        return NULL;
    d->pace[d->npace] = (struct nd_pace){id, 0};
    return &d->pace[d->npace++];
}

static int nd_id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The ids of the notifications being delivered or whose outcome is not
 * yet written (still waiting in the database), sorted, into *out; their
 * count, or -1 when out of memory. */
static long nd_busy_ids(const struct nd *d, int64_t **out)
{
    size_t n = 0, cap = (size_t)d->njobs + json_array_size(d->results) + 1;
    int64_t *ids = malloc(cap * sizeof(*ids));
    if (ids == NULL)
        return -1;
    for (const struct nd_job *j = d->jobs; j != NULL && n < cap; j = j->next)
        ids[n++] = j->id;
    for (size_t i = 0; i < json_array_size(d->results) && n < cap; i++)
        ids[n++] = json_integer_value(
            json_object_get(json_array_get(d->results, i), "id"));
    qsort(ids, n, sizeof(*ids), nd_id_cmp);
    *out = ids;
    return (long)n;
}

/* Queue the outcome of try attempt of notification id for the collector;
 * fault: the channel's (not a deleted channel's, nor an unbuildable
 * message's). */
static void nd_result(struct nd *d, int64_t id, int attempt, int fault,
                      const char *outcome, long code, const char *error,
                      int64_t latency_ms, int64_t next_ms)
{
    json_t *r =
        json_pack("{s:I, s:i, s:b, s:s, s:I, s:I, s:I}", "id", (json_int_t)id,
                  "attempt", attempt, "channel_fault", fault, "outcome",
                  outcome, "latency_ms", (json_int_t)latency_ms, "next_ms",
                  (json_int_t)next_ms, "ts_ms", (json_int_t)proto_now_ms());
    if (r == NULL)
        return;
    if (code > 0)
        json_object_set_new(r, "code", json_integer(code));
    if (error != NULL && error[0] != '\0') {
        char e[512];
        snprintf(e, sizeof(e), "%s", error);
        ev_utf8_clean(e);
        json_object_set_new(r, "error", json_string(e));
    }
    json_array_append_new(d->results, r);
}

/* Write the queued outcomes (kept for the next try when the collector does
 * not answer: in a second, saying so every ten). */
static void nd_flush(struct nd *d)
{
    int64_t now = proto_now_ms();
    if (json_array_size(d->results) == 0 || now < d->flush_after)
        return;
    json_t *cmd =
        json_pack("{s:s, s:O}", "op", "notify.result", "results", d->results);
    char *text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
    json_decref(cmd);
    int status = 0;
    char *reply = NULL;
    int rc = text ? proto_command(d->col_path, text, 5000, &status, &reply)
                  : -ENOMEM;
    free(text);
    free(reply);
    if (rc == 0 && status == 200) {
        json_array_clear(d->results);
        d->flush_after = 0;
        return;
    }
    d->flush_after = now + 1000;
    if (now >= d->flush_warned + 10000) {
        d->flush_warned = now;
        log_warn(NULL,
                 "msg=\"cannot write delivery outcomes\" error=\"%s\" "
                 "status=%d waiting=%zu",
                 rc ? strerror(-rc) : "refused", status,
                 json_array_size(d->results));
    }
}

/* ---- the SSRF guard ---- */

static curl_socket_t nd_opensocket(void *arg, curlsocktype purpose,
                                   struct curl_sockaddr *a)
{
    struct nd_job *j = arg;
    (void)purpose;
    char why[160];
    if (!netguard_allowed(j->guard, &a->addr, why, sizeof(why))) {
        snprintf(j->refused, sizeof(j->refused),
                 "refused: %s (notify_allow_networks opens ranges)", why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t nd_write(char *p, size_t size, size_t n, void *arg)
{
    struct nd_job *j = arg;
    size_t len = size * n, room = ND_RESPONSE_MAX - j->rlen;
    size_t take = len < room ? len : room;
    memcpy(j->response + j->rlen, p, take);
    j->rlen += take;
    j->response[j->rlen] = '\0';
    return len;
}

/* ---- the message ---- */

/* The notify_msg of notification (alert_id, event) for channel name;
 * strings point into *own (json objects freed by nd_msg_free). */
struct nd_msg {
    struct notify_msg m;
    json_t *spec; /* the rule's */
    char rule_name[256], description[1100], severity[16], status[16];
    char workspace[72], channel[72], who[160], note[4200], url[400];
};

static void nd_msg_free(struct nd_msg *x)
{
    json_decref(x->m.group);
    json_decref(x->m.values);
    json_decref(x->spec);
}

static void nd_text(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

/* Fill x for notification id of alert_id (0: a test), event, channel and
 * workspace names (an alert deleted since: what is left of it). */
static void nd_msg(struct nd *d, struct nd_msg *x, int64_t id, int64_t alert_id,
                   const char *event, const char *channel,
                   const char *workspace)
{
    memset(x, 0, sizeof(*x));
    struct notify_msg *m = &x->m;
    m->id = id;
    m->event = notify_event_parse(event);
    if (m->event < 0)
        m->event = NE_FIRING;
    m->alert_id = alert_id;
    m->now_ms = proto_now_ms();
    snprintf(x->channel, sizeof(x->channel), "%s", channel);
    snprintf(x->workspace, sizeof(x->workspace), "%s", workspace);
    m->channel_name = x->channel;
    m->workspace = x->workspace;
    m->rule_name = x->rule_name;
    m->description = x->description;
    m->severity = x->severity;
    m->status = x->status;
    m->who = x->who;
    m->note = x->note;
    m->url = x->url;
    if (alert_id == 0) {
        snprintf(x->rule_name, sizeof(x->rule_name), "Test notification");
        snprintf(x->description, sizeof(x->description),
                 "A test message from tokentap for the channel \"%s\".",
                 channel);
        snprintf(x->severity, sizeof(x->severity), "low");
        snprintf(x->status, sizeof(x->status), "firing");
        m->started_ms = m->now_ms;
        snprintf(x->url, sizeof(x->url), "%s/channels", d->public_url);
        return;
    }
    sqlite3_stmt *st = d->alert;
    sqlite3_bind_int64(st, 1, alert_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        m->rule_id = sqlite3_column_int64(st, 0);
        nd_text(x->rule_name, sizeof(x->rule_name), st, 1);
        nd_text(x->severity, sizeof(x->severity), st, 2);
        nd_text(x->status, sizeof(x->status), st, 3);
        m->group =
            json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
        m->values =
            json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
        m->started_ms = sqlite3_column_int64(st, 6);
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            m->started_ms = sqlite3_column_int64(st, 7);
        m->ended_ms = sqlite3_column_int64(st, 8);
        const unsigned char *spec = sqlite3_column_text(st, 9);
        x->spec = spec ? json_loads((const char *)spec, 0, NULL) : NULL;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        /* Deleted since: what is left of it (PagerDuty's acknowledge and
         * resolve need only its dedup_key). */
        snprintf(x->rule_name, sizeof(x->rule_name), "Alert %lld (deleted)",
                 (long long)alert_id);
        snprintf(x->severity, sizeof(x->severity), "low");
        snprintf(x->status, sizeof(x->status), "%s",
                 m->event == NE_RESOLVED ? "resolved" : "firing");
        return;
    }
    const char *desc =
        json_string_value(json_object_get(x->spec, "description"));
    snprintf(x->description, sizeof(x->description), "%s", desc ? desc : "");
    m->labels = json_object_get(x->spec, "labels");
    m->annotations = json_object_get(x->spec, "annotations");
    snprintf(x->url, sizeof(x->url), "%s/alerts/%lld", d->public_url,
             (long long)alert_id);
    /* Who acknowledged or resolved it, and their note. */
    if (m->event == NE_ACKNOWLEDGED || m->event == NE_RESOLVED) {
        st = d->event;
        sqlite3_bind_int64(st, 1, alert_id);
        sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            nd_text(x->who, sizeof(x->who), st, 0);
            nd_text(x->note, sizeof(x->note), st, 1);
        }
        sqlite3_reset(st);
    }
}

/* ---- starting a delivery ---- */

/* Append a printf-style line to *list (a header, a recipient); a line
 * that cannot be made (out of memory) is left out. */
__attribute__((format(printf, 2, 3))) static void
nd_line(struct curl_slist **list, const char *fmt, ...)
{
    char *line;
    va_list ap;
    va_start(ap, fmt);
    int w = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (l != NULL)
        *list = l;
}

/* The Subject header of j: s as it is when plain ASCII, else one
 * "=?UTF-8?B?...?=" word (RFC 2047). */
static void nd_subject(struct nd_job *j, const char *s)
{
    size_t n = strlen(s);
    int ascii = 1;
    for (size_t i = 0; i < n; i++)
        ascii &= (unsigned char)s[i] < 0x80;
    if (ascii) {
        nd_line(&j->headers, "Subject: %s", s);
        return;
    }
    unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (b64 == NULL)
        return;
    EVP_EncodeBlock(b64, (const unsigned char *)s, (int)n);
    nd_line(&j->headers, "Subject: =?UTF-8?B?%s?=", (const char *)b64);
    free(b64);
}

/* Set up an email delivery on j from config cf. */
static int nd_email(struct nd_job *j, const json_t *cf,
                    const struct notify_msg *m)
{
    char *subject, *text, *html;
    if (notify_email(m, &subject, &text, &html) != 0)
        return -1;
    CURL *e = j->easy;
    const char *url = json_string_value(json_object_get(cf, "smtp_url"));
    const char *from = json_string_value(json_object_get(cf, "from"));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (strncmp(url, "smtp:", 5) == 0 &&
        json_is_true(json_object_get(cf, "starttls")))
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    const char *user = json_string_value(json_object_get(cf, "username"));
    const char *pass = json_string_value(json_object_get(cf, "password"));
    if (user != NULL)
        curl_easy_setopt(e, CURLOPT_USERNAME, user);
    if (pass != NULL)
        curl_easy_setopt(e, CURLOPT_PASSWORD, pass);
    char buf[600];
    snprintf(buf, sizeof(buf), "<%s>", from);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, buf);
    struct strbuf tohdr = {0};
    size_t i;
    json_t *v;
    strbuf_puts(&tohdr, "To: ");
    json_array_foreach(json_object_get(cf, "to"), i, v)
    {
        const char *to = json_string_value(v);
        if (to == NULL)
            continue;
        nd_line(&j->rcpt, "<%s>", to);
        strbuf_puts(&tohdr, i ? ", " : "");
        strbuf_puts(&tohdr, to);
    }
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpt);
    /* The headers, then a multipart/alternative body: text, then HTML. */
    char date[64];
    time_t now = (time_t)(m->now_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    nd_line(&j->headers, "From: %s", from);
    if (strbuf_str(&tohdr) != NULL)
        nd_line(&j->headers, "%s", tohdr.p);
    free(tohdr.p);
    nd_subject(j, subject);
    nd_line(&j->headers, "Date: %s", date);
    nd_line(&j->headers, "Message-ID: <tokentap-%lld@tokentap>",
            (long long)m->id);
    nd_line(&j->headers, "X-Tokentap-Delivery: %lld", (long long)m->id);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    j->mime = curl_mime_init(e);
    curl_mime *alt = curl_mime_init(e);
    curl_mimepart *part = curl_mime_addpart(alt);
    curl_mime_data(part, text, CURL_ZERO_TERMINATED);
    curl_mime_type(part, "text/plain; charset=utf-8");
    curl_mime_encoder(part, "quoted-printable");
    part = curl_mime_addpart(alt);
    curl_mime_data(part, html, CURL_ZERO_TERMINATED);
    curl_mime_type(part, "text/html; charset=utf-8");
    curl_mime_encoder(part, "quoted-printable");
    part = curl_mime_addpart(j->mime);
    curl_mime_subparts(part, alt);
    curl_mime_type(part, "multipart/alternative");
    struct curl_slist *inline_hdr =
        curl_slist_append(NULL, "Content-Disposition: inline");
    curl_mime_headers(part, inline_hdr, 1);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, j->mime);
    free(subject);
    free(text);
    free(html);
    return 0;
}

/* Set up an HTTP delivery (Slack, PagerDuty, webhook) on j. */
static int nd_http(struct nd_job *j, const json_t *cf,
                   const struct notify_msg *m)
{
    json_t *body = NULL;
    const char *url = NULL;
    if (j->type == CH_SLACK) {
        body = notify_slack(m);
        url = json_string_value(json_object_get(cf, "webhook_url"));
    } else if (j->type == CH_PAGERDUTY) {
        body = notify_pagerduty(
            m, json_string_value(json_object_get(cf, "routing_key")));
        url = json_string_value(json_object_get(cf, "events_url"));
    } else {
        const char *fmt = json_string_value(json_object_get(cf, "format"));
        body = fmt && strcmp(fmt, "alertmanager") == 0
                   ? notify_webhook_alertmanager(m)
                   : notify_webhook_tokentap(m);
        url = json_string_value(json_object_get(cf, "url"));
    }
    j->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (j->body == NULL || url == NULL)
        return -1;
    size_t len = strlen(j->body);
    CURL *e = j->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    nd_line(&j->headers, "Content-Type: application/json");
    nd_line(&j->headers, "Expect:");
    nd_line(&j->headers, "X-Tokentap-Delivery: %lld", (long long)m->id);
    nd_line(&j->headers, "X-Tokentap-Event: %s", notify_event_name(m->event));
    if (j->type == CH_WEBHOOK) {
        const char *secret = json_string_value(json_object_get(cf, "secret"));
        char sig[160];
        if (secret != NULL && secret[0] != '\0' &&
            notify_sign(secret, m->now_ms / 1000, j->body, len, sig,
                        sizeof(sig)) == 0)
            nd_line(&j->headers, "X-Tokentap-Signature: %s", sig);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(cf, "headers"), k, v)
        {
            nd_line(&j->headers, "%s: %s", k, json_string_value(v));
        }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    return 0;
}

static void nd_job_free(struct nd_job *j)
{
    if (j->easy != NULL)
        curl_easy_cleanup(j->easy);
    curl_mime_free(j->mime);
    curl_slist_free_all(j->headers);
    curl_slist_free_all(j->rcpt);
    free(j->body);
    free(j);
}

/* Start delivering notification id (its row's fields) on a channel of
 * type with config cf; an outcome is queued at once when it cannot
 * start. */
static void nd_start(struct nd *d, int64_t id, int64_t alert_id,
                     const char *event, int64_t channel_id, int type,
                     const json_t *cf, const char *channel,
                     const char *workspace, int attempt)
{
    struct nd_msg x;
    nd_msg(d, &x, id, alert_id, event, channel, workspace);
    struct nd_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->easy = curl_easy_init()) == NULL) {
        free(j);
        nd_msg_free(&x);
        return; /* out of memory: the next scan tries again */
    }
    j->id = id;
    j->channel_id = channel_id;
    j->type = type;
    j->attempt = attempt;
    j->guard = &d->guard;
    int rc = type == CH_EMAIL ? nd_email(j, cf, &x.m) : nd_http(j, cf, &x.m);
    nd_msg_free(&x);
    if (rc != 0) {
        nd_job_free(j);
        nd_result(d, id, attempt, 0, "failed", 0,
                  "the message could not be built", 0, 0);
        return;
    }
    CURL *e = j->easy;
    long timeout = (long)json_integer_value(json_object_get(cf, "timeout_ms"));
    if (timeout <= 0)
        timeout = 10000L;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* No proxy from the environment: the guard judges the address curl
     * connects to, which would be the proxy's. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "tokentap/" PACKAGE_VERSION);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, nd_opensocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, j);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, nd_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (d->conf.notify_ca_file[0] != '\0')
        curl_easy_setopt(e, CURLOPT_CAINFO, d->conf.notify_ca_file);
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK) {
        nd_job_free(j);
        return;
    }
    j->next = d->jobs;
    d->jobs = j;
    d->njobs++;
    log_debug(NULL,
              "msg=\"delivering\" notification=%lld channel=%lld "
              "attempt=%d",
              (long long)id, (long long)channel_id, attempt);
}

/* ---- outcomes ---- */

/* Milliseconds a Retry-After header asks for (0: none). */
static int64_t nd_retry_after(CURL *e, int64_t now)
{
    struct curl_header *h;
    if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) !=
        CURLHE_OK)
        return 0;
    char *end;
    long long s = strtoll(h->value, &end, 10);
    if (end != h->value && *end == '\0')
        return s > 0 ? (s < 86400 ? s : 86400) * 1000 : 0;
    time_t t = curl_getdate(h->value, NULL);
    return t > 0 && (int64_t)t * 1000 > now ? (int64_t)t * 1000 - now : 0;
}

/* The delay before try attempt + 1: exponential with jitter (half to
 * all of it), at least retry_after_ms. */
static int64_t nd_backoff(const struct conf *cf, int attempt,
                          int64_t retry_after_ms)
{
    double base = cf->notify_retry_base_ms;
    for (int i = 1; i < attempt && base < cf->notify_retry_max_ms; i++)
        base *= 2;
    if (base > cf->notify_retry_max_ms)
        base = cf->notify_retry_max_ms;
    int64_t delay = (int64_t)(base * (0.5 + 0.5 * drand48()));
    if (retry_after_ms > ND_RETRY_AFTER_MAX_MS)
        retry_after_ms = ND_RETRY_AFTER_MAX_MS;
    return delay > retry_after_ms ? delay : retry_after_ms;
}

/* A finished transfer: its outcome. */
static void nd_done(struct nd *d, struct nd_job *j, CURLcode res)
{
    int64_t now = proto_now_ms();
    long code = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t total = 0;
    curl_easy_getinfo(j->easy, CURLINFO_TOTAL_TIME_T, &total);
    int64_t latency = (int64_t)(total / 1000);
    char error[600] = "";
    int retry = 0, ok = res == CURLE_OK;
    int64_t retry_after = 0;
    const char *why = j->errbuf[0] ? j->errbuf : curl_easy_strerror(res);
    /* The transport first: no connection (the guard refused every address,
     * or none answered), a timeout, a broken exchange; then the reply. */
    if (res == CURLE_COULDNT_CONNECT && j->refused[0] != '\0') {
        snprintf(error, sizeof(error), "%s", j->refused);
    } else if (res == CURLE_COULDNT_RESOLVE_HOST ||
               res == CURLE_COULDNT_CONNECT ||
               res == CURLE_OPERATION_TIMEDOUT || res == CURLE_SEND_ERROR ||
               res == CURLE_RECV_ERROR || res == CURLE_GOT_NOTHING ||
               res == CURLE_SSL_CONNECT_ERROR || res == CURLE_PARTIAL_FILE) {
        /* For SMTP a 4xx reply also ends in a send error: judged below. */
        retry = !(j->type == CH_EMAIL && code >= 500);
        snprintf(error, sizeof(error), "%s", why);
        if (j->type == CH_EMAIL && code >= 400) {
            size_t l = strlen(error);
            snprintf(error + l, sizeof(error) - l, ": SMTP reply %ld", code);
        }
    } else if (j->type == CH_EMAIL) {
        /* A 4xx reply is temporary, a 5xx (or a refused login) is not. */
        retry = !ok && code >= 400 && code < 500;
        if (!ok)
            snprintf(error, sizeof(error), "%s%s%ld", why,
                     code ? ": SMTP reply " : "", code);
    } else if (!ok) {
        snprintf(error, sizeof(error), "%s", why); /* a URL, TLS, protocol */
    } else if (code < 200 || code >= 300) {
        ok = 0;
        retry = code == 408 || code == 429 || code >= 500;
        if (code == 429 || code == 503) {
            /* The receiver asked for a pause: this channel's next message
             * waits as long, not only this one. */
            retry_after = nd_retry_after(j->easy, now);
            struct nd_pace *p = nd_pace(d, j->channel_id);
            if (p != NULL && p->next_ok_ms < now + retry_after)
                p->next_ok_ms = now + retry_after;
        }
        snprintf(error, sizeof(error), "HTTP %ld%s%s%.300s", code,
                 code >= 300 && code < 400 ? " (redirects are not followed)"
                                           : "",
                 j->rlen ? ": " : "", j->response);
    }
    if (ok)
        nd_result(d, j->id, j->attempt, 1, "sent", code, NULL, latency, 0);
    else if (retry && j->attempt < d->conf.notify_max_attempts)
        nd_result(d, j->id, j->attempt, 1, "retry", code, error, latency,
                  now + nd_backoff(&d->conf, j->attempt, retry_after));
    else {
        if (retry) {
            size_t l = strlen(error);
            snprintf(error + l, sizeof(error) - l, " (gave up after %d tries)",
                     j->attempt);
        }
        nd_result(d, j->id, j->attempt, 1, "failed", code, error, latency, 0);
    }
    log_info(NULL,
             "msg=\"delivery %s\" notification=%lld channel=%lld attempt=%d "
             "code=%ld latency_ms=%lld",
             ok      ? "sent"
             : retry ? "failed, will retry"
                     : "failed",
             (long long)j->id, (long long)j->channel_id, j->attempt, code,
             (long long)latency);
}

/* ---- the outbox ---- */

/* Read the waiting notifications and start those that may go now (now).
 * Returns 1 when some could not start for want of room (transfers or
 * outcomes at their limit): scan again as soon as there is some. */
static int nd_scan(struct nd *d, int64_t now)
{
    if (json_array_size(d->results) >= ND_RESULTS_MAX)
        return 1;
    int full = 0;
    /* The query returns only rows that may go now (due, first of their
     * alert on their channel, channel not paced), so a backlog on one
     * channel never hides the others' rows. */
    json_t *paced = json_array();
    for (size_t i = 0; i < d->npace; i++)
        if (d->pace[i].next_ok_ms > now)
            json_array_append_new(paced, json_integer(d->pace[i].channel_id));
    char *list = json_dumps(paced, JSON_COMPACT);
    json_decref(paced);
    int64_t *busy;
    long nbusy = nd_busy_ids(d, &busy);
    if (nbusy < 0) {
        free(list);
        return 1;
    }
    /* Enough rows to fill every free transfer past the busy ones (which
     * still wait in the database). */
    sqlite3_stmt *st = d->scan;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, list ? list : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, nbusy + ND_JOBS_MAX + 64);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t alert = sqlite3_column_int64(st, 1);
        const char *event = (const char *)sqlite3_column_text(st, 2);
        int64_t ch = sqlite3_column_int64(st, 3);
        int attempt = sqlite3_column_int(st, 4) + 1;
        if (bsearch(&id, busy, (size_t)nbusy, sizeof(*busy), nd_id_cmp))
            continue;
        if (sqlite3_column_type(st, 5) == SQLITE_NULL) {
            nd_result(d, id, attempt, 0, "failed", 0, "the channel was deleted",
                      0, 0);
            continue;
        }
        int type = channel_type_parse((const char *)sqlite3_column_text(st, 5));
        if (!sqlite3_column_int(st, 7)) {
            nd_result(d, id, attempt, 0, "failed", 0, "the channel is disabled",
                      0, 0);
            continue;
        }
        if (type == CH_IN_APP) {
            nd_result(d, id, attempt, 1, "sent", 0, NULL, 0, 0);
            continue;
        }
        if (d->njobs >= ND_JOBS_MAX) {
            full = 1;
            continue;
        }
        struct nd_pace *p = nd_pace(d, ch);
        if (p == NULL || p->next_ok_ms > now)
            continue;
        json_t *cf =
            json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
        if (cf == NULL || type < 0) {
            json_decref(cf);
            nd_result(d, id, attempt, 0, "failed", 0,
                      "the channel's config is unreadable", 0, 0);
            continue;
        }
        p->next_ok_ms =
            now + json_integer_value(json_object_get(cf, "min_interval_ms"));
        nd_start(d, id, alert, event, ch, type, cf,
                 (const char *)sqlite3_column_text(st, 8),
                 (const char *)sqlite3_column_text(st, 9), attempt);
        json_decref(cf);
        if (json_array_size(d->results) >= ND_RESULTS_MAX) {
            full = 1;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(list);
    free(busy);
    return full;
}

/* Close the database and its queries. */
static void nd_close(struct nd *d)
{
    sqlite3_finalize(d->scan);
    sqlite3_finalize(d->alert);
    sqlite3_finalize(d->event);
    d->scan = d->alert = d->event = NULL;
    sqlite3_close(d->db);
    d->db = NULL;
}

/* Open the database and prepare the queries (again after a failure). */
static int nd_open(struct nd *d)
{
    if (d->db != NULL)
        return 0;
    char path[CONF_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/tokentap.db", d->conf.data_dir);
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(d->db, 1000);
    if (sqlite3_prepare_v2(
            d->db,
            "SELECT n.id, n.alert_id, n.event, n.channel_id, n.attempts, "
            "c.type, c.config, c.enabled, c.name, w.name FROM notifications "
            "n LEFT JOIN channels c ON c.id = n.channel_id AND c.ws = n.ws "
            "JOIN workspaces w ON w.id = n.ws WHERE n.status IN ('pending', "
            "'retrying') AND n.next_ms <= ?1 AND n.channel_id NOT IN (SELECT "
            "value FROM json_each(?2)) AND (n.alert_id = 0 OR NOT EXISTS "
            "(SELECT 1 FROM notifications e WHERE e.alert_id = n.alert_id "
            "AND e.channel_id = n.channel_id AND e.id < n.id AND e.status "
            "IN ('pending', 'retrying'))) ORDER BY n.id LIMIT ?3",
            -1, &d->scan, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(
            d->db,
            "SELECT a.rule_id, a.rule_name, a.severity, a.status, "
            "a.group_json, a.values_json, a.started_ms, a.fired_ms, "
            "coalesce(a.resolved_ms, 0), r.spec FROM alerts a LEFT JOIN "
            "alert_rules r ON r.id = a.rule_id WHERE a.id = ?1",
            -1, &d->alert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db,
                           "SELECT actor, coalesce(note, '') FROM "
                           "alert_events WHERE alert_id = ?1 AND kind = ?2 "
                           "ORDER BY id DESC LIMIT 1",
                           -1, &d->event, NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    /* Not there yet (the collector creates and migrates it). */
    nd_close(d);
    return -1;
}

/* Take what the transfers finished. */
static void nd_reap(struct nd *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct nd_job *j = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode res = msg->data.result;
        curl_multi_remove_handle(d->multi, msg->easy_handle);
        nd_done(d, j, res);
        for (struct nd_job **p = &d->jobs; *p != NULL; p = &(*p)->next)
            if (*p == j) {
                *p = j->next;
                break;
            }
        d->njobs--;
        nd_job_free(j);
    }
}

int main(int argc, char **argv)
{
    static struct nd d;
    char err[512];
    sigset_t mask;
    sig_block_stop(&mask);
    if (conf_from_args(&d.conf, argc, argv, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "tt-notify: %s\n", err);
        return 1;
    }
    if (netguard_parse(&d.guard, d.conf.notify_allow_networks, err,
                       sizeof(err)) != 0) {
        fprintf(stderr, "tt-notify: notify_allow_networks: %s\n", err);
        return 1;
    }
    if (conf_open_log(&d.conf, "notify") != 0)
        return 1;
    snprintf(d.col_path, sizeof(d.col_path), "%s/run/collector.sock",
             d.conf.data_dir);
    if (d.conf.public_url[0] != '\0')
        snprintf(d.public_url, sizeof(d.public_url), "%s", d.conf.public_url);
    else
        snprintf(d.public_url, sizeof(d.public_url), "http://%s:%d",
                 d.conf.listen, d.conf.port);
    size_t ul = strlen(d.public_url);
    if (ul > 0 && d.public_url[ul - 1] == '/')
        d.public_url[ul - 1] = '\0';
    srand48((long)proto_now_ms() ^ (long)getpid());
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        (d.multi = curl_multi_init()) == NULL ||
        (d.results = json_array()) == NULL) {
        log_error(NULL, "msg=\"cannot start libcurl\"");
        return 1;
    }
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    log_info(NULL, "msg=\"dispatcher ready\" allow=\"%s\"",
             d.conf.notify_allow_networks);
    int64_t next_scan = 0;
    int full = 0; /* the last scan left rows for want of room */
    while (!d.stop) {
        int64_t now = proto_now_ms();
        if (now >= next_scan) {
            full = nd_open(&d) == 0 && nd_scan(&d, now);
            next_scan = now + ND_SCAN_MS;
        }
        int running, before = d.njobs;
        curl_multi_perform(d.multi, &running);
        nd_reap(&d);
        nd_flush(&d);
        /* Room again after a full scan: go on now rather than at the next
         * tick (a burst drains at the receivers' pace). */
        if (full && d.njobs < before &&
            json_array_size(d.results) < ND_RESULTS_MAX)
            next_scan = now;
        struct curl_waitfd w = {.fd = sfd, .events = CURL_WAIT_POLLIN};
        int64_t wait = next_scan - proto_now_ms();
        curl_multi_poll(d.multi, &w, sfd >= 0, wait > 0 ? (int)wait : 0, NULL);
        struct signalfd_siginfo si;
        while (sfd >= 0 && read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGHUP)
                log_reopen();
            else
                d.stop = 1;
        }
    }
    /* Transfers under way are dropped: their notifications are still
     * pending and go out after a restart. */
    while (d.jobs != NULL) {
        struct nd_job *j = d.jobs;
        d.jobs = j->next;
        curl_multi_remove_handle(d.multi, j->easy);
        nd_job_free(j);
    }
    nd_flush(&d);
    log_info(NULL, "msg=\"dispatcher stopping\"");
    curl_multi_cleanup(d.multi);
    curl_global_cleanup();
    json_decref(d.results);
    free(d.pace);
    nd_close(&d);
    if (sfd >= 0)
        close(sfd);
    return 0;
}
