/*
 * notify_fmt.c: the bodies of notifications, one builder per receiver
 * (notify_fmt.h), and the webhook signature.
 *
 * Every JSON body is built with jansson, every text with a small growing
 * buffer (struct strbuf) that remembers running out of memory so that a
 * builder checks once at the end.  Receivers count their limits in
 * characters; nf_cut counts UTF-16 code units (a character outside the
 * Basic Multilingual Plane counts two), which is never fewer than the
 * code points, so a cut text fits however the receiver counts.  Nothing
 * here keeps state: every function may be called from any thread.
 */
#include "notify_fmt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "event.h"
#include "keys.h"
#include "strbuf.h"

/* Block Kit's limits, in characters, and PagerDuty's. */
#define NF_SLACK_HEADER  150
#define NF_SLACK_FIELD   2000
#define NF_SLACK_TEXT    3000 /* a section's text, a context element's */
#define NF_SLACK_FIELDS  10
#define NF_SLACK_URL     3000 /* a button's url: never cut, left out */
#define NF_PD_SUMMARY    1024
#define NF_EMAIL_SUBJECT 250 /* bytes: short enough for any mail client */

/* What notify_slack's first field and the like say for an empty value. */
#define NF_NONE     "\xe2\x80\x94" /* an em dash */
#define NF_ELLIPSIS "\xe2\x80\xa6"

static const char *const nf_events[] = {"firing", "renotify", "acknowledged",
                                        "resolved", "test"};

_Static_assert(sizeof(nf_events) / sizeof(nf_events[0]) == NE_NEVENTS,
               "event names");

/* One severity: its emoji in Slack, its colour there and in email, and
 * PagerDuty's name for it. */
struct nf_sev {
    const char *emoji, *colour, *pagerduty;
};

/* By enum alert_severity: critical, high, medium, low. */
static const struct nf_sev nf_sevs[] = {
    {"\xf0\x9f\x94\xb4", "#D32F2F", "critical"}, /* red */
    {"\xf0\x9f\x9f\xa0", "#F57C00", "error"},    /* orange */
    {"\xf0\x9f\x9f\xa1", "#FBC02D", "warning"},  /* yellow */
    {"\xf0\x9f\x94\xb5", "#1976D2", "info"},     /* blue */
};

_Static_assert(sizeof(nf_sevs) / sizeof(nf_sevs[0]) == ALERT_NSEVERITIES,
               "severities");

/* An unknown severity: white, grey, and PagerDuty's middle. */
static const struct nf_sev nf_sev_unknown = {"\xe2\x9a\xaa", "#9E9E9E",
                                             "warning"};

#define NF_EMOJI_RESOLVED     "\xe2\x9c\x85"     /* white heavy check mark */
#define NF_EMOJI_ACKNOWLEDGED "\xf0\x9f\x91\x80" /* eyes */
#define NF_EMOJI_TEST         "\xf0\x9f\xa7\xaa" /* test tube */
#define NF_COLOUR_RESOLVED    "#2E7D32"          /* green */

const char *notify_event_name(int e)
{
    return e >= 0 && e < NE_NEVENTS ? nf_events[e] : NULL;
}

int notify_event_parse(const char *s)
{
    for (int i = 0; s != NULL && i < NE_NEVENTS; i++)
        if (strcmp(nf_events[i], s) == 0)
            return i;
    return -1;
}

static const struct nf_sev *nf_sev_of(const char *s)
{
    int i = alert_severity_parse(s);
    return i >= 0 ? &nf_sevs[i] : &nf_sev_unknown;
}

/* A string member of the message, "" for a NULL one. */
static const char *nf_s(const char *s)
{
    return s != NULL ? s : "";
}

/* --- Text ------------------------------------------------------------ */

/* How to escape a string being written. */
enum nf_esc {
    NF_RAW,
    NF_HTML,   /* & < > " ' as entities: safe in elements and attributes */
    NF_MRKDWN, /* & < > as entities, as Slack's mrkdwn requires */
    NF_LINE,   /* control characters as spaces: one header line */
    NF_QUOTED, /* \ and " escaped, control characters as \n, \t, \xNN */
};

static void nf_put_esc(struct strbuf *b, const char *s, enum nf_esc esc)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        const char *rep = NULL;
        char tmp[8];
        switch (esc) {
        case NF_RAW:
            break;
        case NF_HTML:
            rep = c == '&'    ? "&amp;"
                  : c == '<'  ? "&lt;"
                  : c == '>'  ? "&gt;"
                  : c == '"'  ? "&quot;"
                  : c == '\'' ? "&#39;"
                              : NULL;
            break;
        case NF_MRKDWN:
            rep = c == '&'   ? "&amp;"
                  : c == '<' ? "&lt;"
                  : c == '>' ? "&gt;"
                             : NULL;
            break;
        case NF_LINE:
            rep = c < 0x20 || c == 0x7f ? " " : NULL;
            break;
        case NF_QUOTED:
            if (c == '\\' || c == '"') {
                tmp[0] = '\\';
                tmp[1] = (char)c;
                tmp[2] = '\0';
                rep = tmp;
            } else if (c == '\n') {
                rep = "\\n";
            } else if (c == '\t') {
                rep = "\\t";
            } else if (c < 0x20 || c == 0x7f) {
                snprintf(tmp, sizeof(tmp), "\\x%02x", c);
                rep = tmp;
            }
            break;
        }
        if (rep != NULL) {
            strbuf_put(b, run, (size_t)(s - run));
            strbuf_puts(b, rep);
            run = s + 1;
        }
    }
    strbuf_put(b, run, (size_t)(s - run));
}

/* The length of the UTF-8 sequence that starts with byte c; a byte that
 * cannot start one stands alone. */
static size_t nf_seqlen(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
}

/* The byte length of the longest prefix of s (len bytes) that keeps
 * UTF-8 sequences whole and measures at most max: bytes, or (units)
 * UTF-16 code units. */
static size_t nf_fit(const char *s, size_t len, size_t max, int units)
{
    size_t i = 0, used = 0;
    while (i < len) {
        size_t k = nf_seqlen((unsigned char)s[i]);
        if (k > len - i)
            k = len - i;
        size_t cost = !units ? k : k == 4 ? 2 : 1;
        if (used + cost > max)
            break;
        i += k;
        used += cost;
    }
    return i;
}

/* Where to cut s (len bytes) to measure at most max (as nf_fit): the
 * bytes to keep, and *ell set when an ellipsis must follow them (it is
 * counted in max).  When max leaves no room for the ellipsis, the text
 * is cut without one. */
static size_t nf_cut(const char *s, size_t len, size_t max, int units, int *ell)
{
    size_t ell_size = units ? 1 : strlen(NF_ELLIPSIS);
    *ell = 0;
    if (nf_fit(s, len, max, units) == len)
        return len;
    if (max < ell_size)
        return nf_fit(s, len, max, units);
    *ell = 1;
    return nf_fit(s, len, max - ell_size, units);
}

/* Cut what b holds to max (as nf_cut), an ellipsis ending it when cut.
 * In escaped text (entities set) an entity at the cut (&amp;) is
 * dropped whole rather than split. */
static void nf_cut_buf(struct strbuf *b, size_t max, int units, int entities)
{
    int ell;
    if (b->oom || b->p == NULL)
        return;
    size_t k = nf_cut(b->p, b->len, max, units, &ell);
    if (!ell)
        return;
    for (size_t j = k; entities && j > 0 && k - j < 6; j--) {
        if (b->p[j - 1] == ';')
            break;
        if (b->p[j - 1] == '&') {
            k = j - 1;
            break;
        }
    }
    b->len = k;
    b->p[k] = '\0';
    strbuf_puts(b, NF_ELLIPSIS);
}

/* A JSON string of the n bytes at s.  Bytes that are not UTF-8 become
 * '?' rather than failing the whole body. */
static json_t *nf_jstrn(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j == NULL && s != NULL) {
        char *c = strndup(s, n);
        if (c == NULL)
            return NULL;
        ev_utf8_clean(c);
        j = json_string(c);
        free(c);
    }
    return j;
}

static json_t *nf_jstr(const char *s)
{
    s = nf_s(s);
    return nf_jstrn(s, strlen(s));
}

/* A JSON string of what b holds: NULL when b ran out of memory.  b is
 * emptied for reuse. */
static json_t *nf_jbuf(struct strbuf *b)
{
    json_t *j = b->oom ? NULL : nf_jstrn(b->p != NULL ? b->p : "", b->len);
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
    return j;
}

/* A string, or JSON null for "". */
static json_t *nf_jstr_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? nf_jstr(s) : json_null();
}

/* Epoch ms as RFC 3339, or JSON null for 0 (unknown). */
static json_t *nf_jtime(int64_t ms)
{
    char t[40];
    if (ms == 0)
        return json_null();
    ev_format_rfc3339(ms, t, sizeof(t));
    return json_string(t);
}

/* A copy of the caller's object, {} for NULL (or for another type). */
static json_t *nf_jobject(const json_t *o)
{
    return json_is_object(o) ? json_deep_copy(o) : json_object();
}

/* A copy of the values: an array or object as given, [] for NULL. */
static json_t *nf_jvalues(const json_t *v)
{
    return json_is_array(v) || json_is_object(v) ? json_deep_copy(v)
                                                 : json_array();
}

/* A scalar as text: a string as it is, a number as written (reals with
 * ten significant digits), true, false, "" for null; an object or array
 * as compact JSON. */
static void nf_put_scalar(struct strbuf *b, const json_t *v, enum nf_esc esc)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        nf_put_esc(b, json_string_value(v), esc);
        break;
    case JSON_INTEGER:
        strbuf_printf(b, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        strbuf_printf(b, "%.10g", json_real_value(v));
        break;
    case JSON_TRUE:
        strbuf_puts(b, "true");
        break;
    case JSON_FALSE:
        strbuf_puts(b, "false");
        break;
    case JSON_NULL:
        break;
    default: {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (d == NULL)
            b->oom = 1;
        else
            nf_put_esc(b, d, esc);
        free(d);
    }
    }
}

/* A JSON string of a scalar's text (a label value). */
static json_t *nf_jscalar(const json_t *v)
{
    struct strbuf b = {0};
    nf_put_scalar(&b, v, NF_RAW);
    json_t *j = nf_jbuf(&b);
    free(b.p);
    return j;
}

/* The group as "model=gpt-4o, provider=openai" ("" when empty). */
static void nf_put_group(struct strbuf *b, const json_t *group)
{
    const char *k;
    const json_t *v;
    int first = 1;
    if (!json_is_object(group))
        return;
    json_object_foreach((json_t *)group, k, v)
    {
        if (!first)
            strbuf_puts(b, ", ");
        first = 0;
        nf_put_esc(b, k, NF_RAW);
        strbuf_puts(b, "=");
        nf_put_scalar(b, v, NF_RAW);
    }
}

/* The group in brackets after a name, " (model=gpt-4o)"; nothing when
 * it is empty. */
static void nf_put_group_after(struct strbuf *b, const json_t *group)
{
    if (json_object_size(group) == 0)
        return;
    strbuf_puts(b, " (");
    nf_put_group(b, group);
    strbuf_puts(b, ")");
}

/* Whether m tells of someone (or the alert itself) acknowledging or
 * resolving it: who and note apply. */
static int nf_acted(const struct notify_msg *m)
{
    return m->event == NE_ACKNOWLEDGED || m->event == NE_RESOLVED;
}

/* How many values there are. */
static size_t nf_nvalues(const json_t *values)
{
    return json_is_array(values)    ? json_array_size(values)
           : json_is_object(values) ? json_object_size(values)
                                    : 0;
}

/* Value i as "error_rate > 5: 7.25" ("no data" for a null value).  An
 * object of values reads {"error_rate > 5": 7.25}; anything else shows
 * as it is. */
static void nf_put_value(struct strbuf *b, const json_t *values, size_t i,
                         enum nf_esc esc)
{
    const json_t *v;
    if (json_is_object(values)) {
        void *it = json_object_iter((json_t *)values);
        while (it != NULL && i-- > 0)
            it = json_object_iter_next((json_t *)values, it);
        if (it == NULL)
            return;
        nf_put_esc(b, json_object_iter_key(it), esc);
        v = json_object_iter_value(it);
    } else {
        const json_t *e = json_array_get(values, i);
        if (!json_is_object(e)) {
            nf_put_scalar(b, e, esc);
            return;
        }
        nf_put_scalar(b, json_object_get(e, "metric"), esc);
        strbuf_puts(b, " ");
        nf_put_scalar(b, json_object_get(e, "operator"), esc);
        strbuf_puts(b, " ");
        nf_put_scalar(b, json_object_get(e, "threshold"), esc);
        v = json_object_get(e, "value");
    }
    strbuf_puts(b, ": ");
    if (v == NULL || json_is_null(v))
        strbuf_puts(b, "no data");
    else
        nf_put_scalar(b, v, esc);
}

/* The tag that opens a summary: "[CRITICAL] " ("[ALERT] " for an unknown
 * severity, "[TEST] " for a test). */
static void nf_put_tag(struct strbuf *b, const struct notify_msg *m)
{
    const char *sev = nf_s(m->severity);
    if (m->event == NE_TEST) {
        strbuf_puts(b, "[TEST] ");
        return;
    }
    strbuf_puts(b, "[");
    if (sev[0] == '\0')
        strbuf_puts(b, "ALERT");
    for (const char *p = sev; *p != '\0'; p++) {
        char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        strbuf_put(b, &c, 1);
    }
    strbuf_puts(b, "] ");
}

/* The summary: "[CRITICAL] High error rate (model=gpt-4o) is firing";
 * without its "[CRITICAL] " tag when tag is 0. */
static void nf_put_summary(struct strbuf *b, const struct notify_msg *m,
                           int tag)
{
    const char *who = nf_s(m->who);
    if (tag)
        nf_put_tag(b, m);
    if (m->event == NE_TEST) {
        strbuf_puts(b, "Test notification from tokentap");
        if (nf_s(m->channel_name)[0] != '\0') {
            strbuf_puts(b, " to ");
            strbuf_puts(b, m->channel_name);
        }
        return;
    }
    strbuf_puts(b, nf_s(m->rule_name));
    nf_put_group_after(b, m->group);
    switch (m->event) {
    case NE_RENOTIFY:
        strbuf_puts(b, " is still firing");
        break;
    case NE_ACKNOWLEDGED:
        strbuf_puts(b, " was acknowledged");
        break;
    case NE_RESOLVED:
        strbuf_puts(b, who[0] != '\0' ? " was resolved" : " resolved");
        break;
    default:
        strbuf_puts(b, " is firing");
        break;
    }
    if (nf_acted(m) && who[0] != '\0') {
        strbuf_puts(b, " by ");
        strbuf_puts(b, who);
    }
}

void notify_dedup_key(const struct notify_msg *m, char *buf, size_t n)
{
    /* A test is about no alert: keyed by alert 0, every test would fold
     * into one incident that nothing ever resolves. */
    if (m->event == NE_TEST || m->alert_id == 0)
        snprintf(buf, n, "tokentap-test-%lld", (long long)m->id);
    else
        snprintf(buf, n, "tokentap-alert-%lld", (long long)m->alert_id);
}

void notify_summary(const struct notify_msg *m, char *buf, size_t n, size_t max)
{
    struct strbuf b = {0};
    int ell;
    if (n == 0)
        return;
    if (max > n - 1)
        max = n - 1;
    nf_put_summary(&b, m, 1);
    /* Out of memory, the rule's name alone will do. */
    const char *s = b.oom ? nf_s(m->rule_name) : strbuf_str(&b);
    size_t len = strlen(s), k = nf_cut(s, len, max, 0, &ell);
    memcpy(buf, s, k);
    if (ell)
        memcpy(buf + k, NF_ELLIPSIS, strlen(NF_ELLIPSIS));
    buf[k + (ell ? strlen(NF_ELLIPSIS) : 0)] = '\0';
    free(b.p);
}

/* The summary cut to max characters, as a JSON string. */
static json_t *nf_jsummary(const struct notify_msg *m, int tag,
                           const char *prefix, size_t max)
{
    struct strbuf b = {0};
    strbuf_puts(&b, prefix);
    nf_put_summary(&b, m, tag);
    nf_cut_buf(&b, max, 1, 0);
    json_t *j = nf_jbuf(&b);
    free(b.p);
    return j;
}

/* The origin of an absolute URL ("https://tt.example:8443"), or "" when
 * url has none; into buf. */
static void nf_origin(const char *url, char *buf, size_t n)
{
    const char *p = strstr(url, "://");
    buf[0] = '\0';
    if (p == NULL || p == url)
        return;
    size_t k = (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
    if (k < n && p[3] != '\0' && strchr("/?#", p[3]) == NULL)
        snprintf(buf, n, "%.*s", (int)k, url);
}

/* --- Slack ----------------------------------------------------------- */

/* An mrkdwn text object of what b holds (escaped), cut to max
 * characters; b is emptied for reuse. */
static json_t *nf_slack_text(struct strbuf *b, size_t max)
{
    nf_cut_buf(b, max, 1, 1);
    return json_pack("{s:s, s:o}", "type", "mrkdwn", "text", nf_jbuf(b));
}

/* One mrkdwn field: "*label*\nvalue" (value escaped), cut to Slack's
 * limit; built in b (emptied for reuse). */
static json_t *nf_slack_field(struct strbuf *b, const char *label,
                              const char *value)
{
    strbuf_puts(b, "*");
    strbuf_puts(b, label);
    strbuf_puts(b, "*\n");
    nf_put_esc(b, value[0] != '\0' ? value : NF_NONE, NF_MRKDWN);
    return nf_slack_text(b, NF_SLACK_FIELD);
}

/* The section's fields: severity, status, workspace, group, then the
 * values while they fit in Block Kit's ten (the last saying how many
 * more there are when they do not). */
static json_t *nf_slack_fields(const struct notify_msg *m)
{
    struct strbuf t = {0}, g = {0};
    json_t *a = json_array();
    int bad = a == NULL;
    nf_put_group(&g, m->group);
    bad |= json_array_append_new(
        a, nf_slack_field(&t, "Severity", nf_s(m->severity)));
    bad |=
        json_array_append_new(a, nf_slack_field(&t, "Status", nf_s(m->status)));
    bad |= json_array_append_new(
        a, nf_slack_field(&t, "Workspace", nf_s(m->workspace)));
    bad |= g.oom || json_array_append_new(
                        a, nf_slack_field(&t, "Group", strbuf_str(&g)));
    size_t nv = nf_nvalues(m->values), room = NF_SLACK_FIELDS - 4;
    size_t shown = nv <= room ? nv : room - 1;
    for (size_t i = 0; i < shown && !bad; i++) {
        nf_put_value(&t, m->values, i, NF_MRKDWN);
        bad |= json_array_append_new(a, nf_slack_text(&t, NF_SLACK_FIELD));
    }
    if (shown < nv) {
        strbuf_printf(&t, "%s and %zu more", NF_ELLIPSIS, nv - shown);
        bad |= json_array_append_new(a, nf_slack_text(&t, NF_SLACK_FIELD));
    }
    free(t.p);
    free(g.p);
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* An mrkdwn text object of s (escaped), cut to max characters. */
static json_t *nf_slack_mrkdwn(const char *s, size_t max)
{
    struct strbuf b = {0};
    nf_put_esc(&b, s, NF_MRKDWN);
    json_t *j = nf_slack_text(&b, max);
    free(b.p);
    return j;
}

/* The context line: "Rule 12 · Alert 345 · <the time, in the reader's
 * zone>". */
static json_t *nf_slack_context(const struct notify_msg *m)
{
    struct strbuf b = {0};
    char t[40];
    if (m->rule_id > 0)
        strbuf_printf(&b, "Rule %lld \xc2\xb7 ", (long long)m->rule_id);
    else if (m->rule_id < 0)
        strbuf_printf(&b, "Budget %lld \xc2\xb7 ", -(long long)m->rule_id);
    if (m->alert_id != 0)
        strbuf_printf(&b, "Alert %lld \xc2\xb7 ", (long long)m->alert_id);
    else
        strbuf_puts(&b, "Test \xc2\xb7 ");
    /* Slack shows <!date^...> in the reader's zone, the rest as is. */
    ev_format_rfc3339(m->now_ms, t, sizeof(t));
    strbuf_printf(&b, "<!date^%lld^{date_short_pretty} {time_secs}|%s>",
                  (long long)(m->now_ms / 1000), t);
    json_t *j = json_pack("{s:s, s:[o]}", "type", "context", "elements",
                          nf_slack_text(&b, NF_SLACK_TEXT));
    free(b.p);
    return j;
}

/* Who acknowledged or resolved it and their note, or NULL (with *none
 * set) when there is nothing to say. */
static json_t *nf_slack_who(const struct notify_msg *m, int *none)
{
    const char *who = nf_s(m->who), *note = nf_s(m->note);
    struct strbuf b = {0};
    *none = 0;
    if (!nf_acted(m) || (who[0] == '\0' && note[0] == '\0')) {
        *none = 1;
        return NULL;
    }
    strbuf_puts(&b, m->event == NE_ACKNOWLEDGED ? "Acknowledged" : "Resolved");
    if (who[0] != '\0') {
        strbuf_puts(&b, " by ");
        strbuf_puts(&b, who);
    }
    if (note[0] != '\0') {
        strbuf_puts(&b, ": ");
        strbuf_puts(&b, note);
    }
    json_t *text =
        b.oom ? NULL : nf_slack_mrkdwn(strbuf_str(&b), NF_SLACK_TEXT);
    free(b.p);
    return json_pack("{s:s, s:o}", "type", "section", "text", text);
}

json_t *notify_slack(const struct notify_msg *m)
{
    const struct nf_sev *sev = nf_sev_of(m->severity);
    const char *emoji = m->event == NE_RESOLVED       ? NF_EMOJI_RESOLVED
                        : m->event == NE_ACKNOWLEDGED ? NF_EMOJI_ACKNOWLEDGED
                        : m->event == NE_TEST         ? NF_EMOJI_TEST
                                                      : sev->emoji;
    const char *colour =
        m->event == NE_RESOLVED ? NF_COLOUR_RESOLVED : sev->colour;
    const char *desc = nf_s(m->description), *url = nf_s(m->url);
    char prefix[16], footer[64];
    int bad = 0, none;

    snprintf(prefix, sizeof(prefix), "%s ", emoji);
    snprintf(footer, sizeof(footer), "tokentap \xc2\xb7 notification %lld",
             (long long)m->id);
    json_t *section = json_pack("{s:s, s:o}", "type", "section", "fields",
                                nf_slack_fields(m));
    if (section != NULL && desc[0] != '\0')
        bad |= json_object_set_new(section, "text",
                                   nf_slack_mrkdwn(desc, NF_SLACK_TEXT));
    json_t *blocks = json_pack("[{s:s, s:{s:s, s:o, s:b}}, o]", "type",
                               "header", "text", "type", "plain_text", "text",
                               nf_jsummary(m, 0, prefix, NF_SLACK_HEADER),
                               "emoji", 1, section);
    json_t *who = nf_slack_who(m, &none);
    if (!none)
        bad |= json_array_append_new(blocks, who);
    bad |= json_array_append_new(blocks, nf_slack_context(m));
    /* A cut URL would lead nowhere: a URL past the limit goes without. */
    if (url[0] != '\0' && strlen(url) <= NF_SLACK_URL)
        bad |= json_array_append_new(
            blocks,
            json_pack("{s:s, s:[{s:s, s:{s:s, s:s}, s:o, s:s}]}", "type",
                      "actions", "elements", "type", "button", "text", "type",
                      "plain_text", "text", "View alert", "url", nf_jstr(url),
                      "action_id", "tokentap-view-alert"));
    json_t *o =
        json_pack("{s:o, s:o, s:[{s:s, s:o, s:s}]}", "text",
                  nf_jsummary(m, 1, "", NF_SLACK_TEXT), "blocks", blocks,
                  "attachments", "color", colour, "fallback",
                  nf_jsummary(m, 1, "", NF_SLACK_TEXT), "footer", footer);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* --- PagerDuty ------------------------------------------------------- */

json_t *notify_pagerduty(const struct notify_msg *m, const char *routing_key)
{
    char dedup[48], origin[512];
    const char *action = m->event == NE_ACKNOWLEDGED ? "acknowledge"
                         : m->event == NE_RESOLVED   ? "resolve"
                                                     : "trigger";
    const char *url = nf_s(m->url);
    int bad = 0;

    notify_dedup_key(m, dedup, sizeof(dedup));
    json_t *o =
        json_pack("{s:o, s:s, s:s}", "routing_key", nf_jstr(routing_key),
                  "event_action", action, "dedup_key", dedup);
    /* PagerDuty reads only the three members above for acknowledge and
     * resolve. */
    if (o == NULL || nf_acted(m))
        return o;

    json_t *details = json_pack(
        "{s:I, s:I, s:o, s:o, s:s?, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "notification_id", (json_int_t)m->id, "alert_id",
        (json_int_t)m->alert_id, "rule", nf_jstr(m->rule_name), "description",
        nf_jstr(m->description), "event", notify_event_name(m->event), "status",
        nf_jstr(m->status), "severity", nf_jstr(m->severity), "workspace",
        nf_jstr(m->workspace), "group", nf_jobject(m->group), "values",
        nf_jvalues(m->values), "labels", nf_jobject(m->labels), "annotations",
        nf_jobject(m->annotations), "started_at", nf_jtime(m->started_ms));
    if (details != NULL && m->rule_id != 0)
        bad |= json_object_set_new(
            details, m->rule_id > 0 ? "rule_id" : "budget_id",
            json_integer(m->rule_id > 0 ? m->rule_id : -m->rule_id));
    const char *sev = m->event == NE_TEST && nf_s(m->severity)[0] == '\0'
                          ? "info"
                          : nf_sev_of(m->severity)->pagerduty;
    json_t *payload = json_pack("{s:o, s:s, s:s, s:o, s:o}", "summary",
                                nf_jsummary(m, 1, "", NF_PD_SUMMARY), "source",
                                "tokentap", "severity", sev, "timestamp",
                                nf_jtime(m->now_ms), "custom_details", details);
    if (payload != NULL && json_is_null(json_object_get(payload, "timestamp")))
        json_object_del(payload, "timestamp");
    if (payload != NULL && json_object_size(m->group) > 0) {
        struct strbuf b = {0};
        nf_put_group(&b, m->group);
        bad |= json_object_set_new(payload, "component", nf_jbuf(&b));
        free(b.p);
    }
    if (payload != NULL && nf_s(m->workspace)[0] != '\0')
        bad |= json_object_set_new(payload, "group", nf_jstr(m->workspace));
    const json_t *first = json_array_get(m->values, 0);
    const char *metric = json_string_value(json_object_get(first, "metric"));
    if (payload != NULL && metric != NULL)
        bad |= json_object_set_new(payload, "class", nf_jstr(metric));
    bad |= json_object_set_new(o, "payload", payload);
    bad |= json_object_set_new(o, "client", json_string("tokentap"));
    if (url[0] != '\0') {
        bad |= json_object_set_new(
            o, "links",
            json_pack("[{s:o, s:s}]", "href", nf_jstr(url), "text",
                      m->event == NE_TEST ? "Open tokentap"
                                          : "View the alert in tokentap"));
        nf_origin(url, origin, sizeof(origin));
        if (origin[0] != '\0')
            bad |= json_object_set_new(o, "client_url", nf_jstr(origin));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* --- Webhooks -------------------------------------------------------- */

json_t *notify_webhook_tokentap(const struct notify_msg *m)
{
    int bad = 0;
    json_t *rule = json_pack(
        "{s:o, s:o, s:o}", "id",
        m->rule_id > 0 ? json_integer(m->rule_id) : json_null(), "name",
        nf_jstr(m->rule_name), "description", nf_jstr(m->description));
    json_t *alert = json_pack(
        "{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
        (json_int_t)m->alert_id, "status", nf_jstr(m->status), "severity",
        nf_jstr(m->severity), "rule", rule, "workspace", nf_jstr(m->workspace),
        "group", nf_jobject(m->group), "values", nf_jvalues(m->values),
        "labels", nf_jobject(m->labels), "annotations",
        nf_jobject(m->annotations), "started_at", nf_jtime(m->started_ms),
        "ended_at", nf_jtime(m->ended_ms), "url", nf_jstr_or_null(m->url));
    if (alert != NULL && m->rule_id < 0)
        bad |=
            json_object_set_new(alert, "budget_id", json_integer(-m->rule_id));
    json_t *o =
        json_pack("{s:s, s:I, s:s?, s:o, s:o}", "version", "1", "id",
                  (json_int_t)m->id, "event", notify_event_name(m->event),
                  "alert", alert, "sent_at", nf_jtime(m->now_ms));
    if (nf_acted(m)) {
        bad |= json_object_set_new(
            o, m->event == NE_ACKNOWLEDGED ? "acknowledged_by" : "resolved_by",
            nf_jstr_or_null(m->who));
        bad |= json_object_set_new(o, "note", nf_jstr_or_null(m->note));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Copy every member of from into to with its value as text. */
static int nf_set_text(json_t *to, const json_t *from)
{
    const char *k;
    const json_t *v;
    int bad = 0;
    if (!json_is_object(from))
        return 0;
    json_object_foreach((json_t *)from, k, v)
    {
        bad |= json_object_set_new(to, k, nf_jscalar(v));
    }
    return bad;
}

static int nf_strcmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Alertmanager's group key: the group labels sorted by name as
 * {}:{alertname="High error rate", model="gpt-4o"}. */
static json_t *nf_group_key(const json_t *labels)
{
    size_t n = json_object_size(labels), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof(*keys));
    const char *k;
    const json_t *v;
    struct strbuf b = {0};
    if (keys == NULL)
        return NULL;
    json_object_foreach((json_t *)labels, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), nf_strcmp);
    strbuf_puts(&b, "{}:{");
    for (i = 0; i < n; i++) {
        strbuf_puts(&b, i ? ", " : "");
        strbuf_puts(&b, keys[i]);
        strbuf_puts(&b, "=\"");
        nf_put_esc(&b, json_string_value(json_object_get(labels, keys[i])),
                   NF_QUOTED);
        strbuf_puts(&b, "\"");
    }
    strbuf_puts(&b, "}");
    free(keys);
    json_t *j = nf_jbuf(&b);
    free(b.p);
    return j;
}

/* 16 hex digits of SHA-256 over m's dedup key: the same for every
 * notification of one alert, and another for each test. */
static void nf_fingerprint(const struct notify_msg *m, char *hex)
{
    char key[48], sha[KEY_HASH_HEX + 1];
    notify_dedup_key(m, key, sizeof(key));
    key_hash(key, strlen(key), sha);
    snprintf(hex, 17, "%.16s", sha);
}

json_t *notify_webhook_alertmanager(const struct notify_msg *m)
{
    const char *status = m->event == NE_RESOLVED ? "resolved" : "firing";
    char fp[17], starts[40], ends[40], origin[512];
    int bad = 0;

    /* Labels, each later set winning: the rule's, the group's, then the
     * severity and alertname, which say what the alert is.  The group
     * labels are alertname and the group's keys, with the labels' values
     * so that the two never disagree. */
    json_t *labels = json_object(), *group_labels = json_object();
    bad |= nf_set_text(labels, m->labels);
    bad |= nf_set_text(labels, m->group);
    bad |= json_object_set_new(labels, "severity", nf_jstr(m->severity));
    bad |= json_object_set_new(labels, "alertname", nf_jstr(m->rule_name));
    bad |= json_object_set(group_labels, "alertname",
                           json_object_get(labels, "alertname"));
    const char *k;
    const json_t *v;
    if (json_is_object(m->group)) {
        json_object_foreach((json_t *)m->group, k, v)
        {
            bad |= json_object_set(group_labels, k, json_object_get(labels, k));
        }
    }

    /* Annotations: ours, which the rule's own may replace. */
    json_t *annotations = json_object();
    bad |= json_object_set_new(annotations, "summary",
                               nf_jsummary(m, 1, "", 4096));
    if (nf_s(m->description)[0] != '\0')
        bad |= json_object_set_new(annotations, "description",
                                   nf_jstr(m->description));
    bad |= nf_set_text(annotations, m->annotations);

    nf_fingerprint(m, fp);
    ev_format_rfc3339(m->started_ms != 0 ? m->started_ms : m->now_ms, starts,
                      sizeof(starts));
    if (m->event == NE_RESOLVED)
        ev_format_rfc3339(m->ended_ms != 0 ? m->ended_ms : m->now_ms, ends,
                          sizeof(ends));
    else
        snprintf(ends, sizeof(ends), "0001-01-01T00:00:00Z");
    nf_origin(nf_s(m->url), origin, sizeof(origin));

    json_t *alert = json_pack(
        "{s:s, s:O, s:O, s:s, s:s, s:o, s:s}", "status", status, "labels",
        labels, "annotations", annotations, "startsAt", starts, "endsAt", ends,
        "generatorURL", nf_jstr(m->url), "fingerprint", fp);
    json_t *o = json_pack(
        "{s:s, s:o, s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:[o]}", "version", "4",
        "groupKey", nf_group_key(group_labels), "truncatedAlerts", 0, "status",
        status, "receiver", nf_jstr(m->channel_name), "groupLabels",
        group_labels, "commonLabels", labels, "commonAnnotations", annotations,
        "externalURL", nf_jstr(origin), "alerts", alert);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* --- Email ----------------------------------------------------------- */

/* One row of the email's table, its value malloc'ed. */
struct nf_row {
    const char *label;
    char *value;
};

#define NF_MAX_ROWS 12

/* Add a row with value s (none when s is ""); -1 when out of memory. */
static int nf_row(struct nf_row *rows, int *n, const char *label, const char *s)
{
    if (s == NULL)
        return -1;
    if (s[0] == '\0' || *n == NF_MAX_ROWS)
        return 0;
    rows[*n].value = strdup(s);
    if (rows[*n].value == NULL)
        return -1;
    rows[(*n)++].label = label;
    return 0;
}

/* The rows of the table: rule, description, severity, status,
 * workspace, group, times, who and their note. */
static int nf_rows(const struct notify_msg *m, struct nf_row *rows)
{
    struct strbuf g = {0};
    char t[40], id[32];
    int n = 0, bad = 0;
    if (m->rule_id != 0)
        snprintf(id, sizeof(id), "%s %lld", m->rule_id > 0 ? "rule" : "budget",
                 (long long)(m->rule_id > 0 ? m->rule_id : -m->rule_id));
    bad |= nf_row(rows, &n, "Rule", nf_s(m->rule_name));
    bad |= nf_row(rows, &n, "Id", m->rule_id != 0 ? id : "");
    bad |= nf_row(rows, &n, "Description", nf_s(m->description));
    bad |= nf_row(rows, &n, "Severity", nf_s(m->severity));
    bad |= nf_row(rows, &n, "Status", nf_s(m->status));
    bad |= nf_row(rows, &n, "Workspace", nf_s(m->workspace));
    nf_put_group(&g, m->group);
    bad |= nf_row(rows, &n, "Group", strbuf_str(&g));
    free(g.p);
    if (m->started_ms != 0) {
        ev_format_rfc3339(m->started_ms, t, sizeof(t));
        bad |= nf_row(rows, &n, "Started", t);
    }
    if (m->ended_ms != 0) {
        ev_format_rfc3339(m->ended_ms, t, sizeof(t));
        bad |= nf_row(rows, &n, "Ended", t);
    }
    if (nf_acted(m)) {
        bad |= nf_row(rows, &n,
                      m->event == NE_ACKNOWLEDGED ? "Acknowledged by"
                                                  : "Resolved by",
                      nf_s(m->who));
        bad |= nf_row(rows, &n, "Note", nf_s(m->note));
    }
    if (bad) {
        for (int i = 0; i < n; i++)
            free(rows[i].value);
        return -1;
    }
    return n;
}

/* A titled list of an object's members ("team: infra"), or of the
 * values; nothing when empty. */
static void nf_email_list(struct strbuf *b, const char *title, const json_t *o,
                          int values, int html)
{
    enum nf_esc esc = html ? NF_HTML : NF_RAW;
    size_t n = values ? nf_nvalues(o) : json_object_size(o);
    const char *k;
    const json_t *v;
    if (n == 0)
        return;
    strbuf_puts(b, html ? "<h3>" : "\n");
    strbuf_puts(b, title);
    strbuf_puts(b, html ? "</h3>\n<ul>\n" : ":\n");
    if (values) {
        for (size_t i = 0; i < n; i++) {
            strbuf_puts(b, html ? "<li>" : "  ");
            nf_put_value(b, o, i, esc);
            strbuf_puts(b, html ? "</li>\n" : "\n");
        }
    } else {
        json_object_foreach((json_t *)o, k, v)
        {
            strbuf_puts(b, html ? "<li>" : "  ");
            nf_put_esc(b, k, esc);
            strbuf_puts(b, ": ");
            nf_put_scalar(b, v, esc);
            strbuf_puts(b, html ? "</li>\n" : "\n");
        }
    }
    if (html)
        strbuf_puts(b, "</ul>\n");
}

/* The email's body, as plain text or as HTML with everything
 * interpolated escaped. */
static void nf_email_body(struct strbuf *b, const struct notify_msg *m,
                          const char *summary, const struct nf_row *rows,
                          int nrows, int html)
{
    const char *url = nf_s(m->url), *channel = nf_s(m->channel_name);
    const char *colour = m->event == NE_RESOLVED
                             ? NF_COLOUR_RESOLVED
                             : nf_sev_of(m->severity)->colour;
    if (html) {
        strbuf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                       "<title>");
        nf_put_esc(b, summary, NF_HTML);
        strbuf_puts(
            b, "</title></head>\n<body style=\"font-family: sans-serif\">\n"
               "<h2 style=\"color: ");
        strbuf_puts(b, colour);
        strbuf_puts(b, "\">");
        nf_put_esc(b, summary, NF_HTML);
        strbuf_puts(b, "</h2>\n<table cellpadding=\"4\">\n");
    } else {
        strbuf_puts(b, summary);
        strbuf_puts(b, "\n\n");
    }
    for (int i = 0; i < nrows; i++) {
        if (html) {
            strbuf_puts(b, "<tr><th align=\"left\" valign=\"top\">");
            strbuf_puts(b, rows[i].label);
            strbuf_puts(b, "</th><td style=\"white-space: pre-wrap\">");
            nf_put_esc(b, rows[i].value, NF_HTML);
            strbuf_puts(b, "</td></tr>\n");
        } else {
            strbuf_printf(b, "%s:%*s", rows[i].label,
                          (int)(17 - strlen(rows[i].label)), "");
            strbuf_puts(b, rows[i].value);
            strbuf_puts(b, "\n");
        }
    }
    if (html)
        strbuf_puts(b, "</table>\n");
    nf_email_list(b, "Conditions", m->values, 1, html);
    nf_email_list(b, "Labels", m->labels, 0, html);
    nf_email_list(b, "Annotations", m->annotations, 0, html);
    /* Only a web address becomes a link: never javascript: and the like. */
    if (url[0] != '\0' && html &&
        (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)) {
        strbuf_puts(b, "<p><a href=\"");
        nf_put_esc(b, url, NF_HTML);
        strbuf_puts(b, "\">View the alert in tokentap</a></p>\n");
    } else if (url[0] != '\0') {
        strbuf_puts(b, html ? "<p>View the alert: " : "\nView the alert: ");
        nf_put_esc(b, url, html ? NF_HTML : NF_RAW);
        strbuf_puts(b, html ? "</p>\n" : "\n");
    }
    strbuf_puts(b, html ? "<p style=\"color: #888888\">" : "\n-- \n");
    strbuf_printf(b, "Sent by tokentap (notification %lld", (long long)m->id);
    if (channel[0] != '\0') {
        strbuf_puts(b, html ? ", channel &quot;" : ", channel \"");
        nf_put_esc(b, channel, html ? NF_HTML : NF_RAW);
        strbuf_puts(b, html ? "&quot;" : "\"");
    }
    strbuf_puts(b, html ? ").</p>\n</body></html>\n" : ").\n");
}

/* The subject: "[CRITICAL] High error rate: firing (model=gpt-4o)", on
 * one line. */
static void nf_email_subject(struct strbuf *b, const struct notify_msg *m)
{
    struct strbuf s = {0}, l = {0};
    if (m->event == NE_TEST) {
        nf_put_summary(&s, m, 1);
    } else {
        nf_put_tag(&s, m);
        strbuf_puts(&s, nf_s(m->rule_name));
        strbuf_puts(&s, ": ");
        strbuf_puts(&s, m->event == NE_RENOTIFY
                            ? "still firing"
                            : nf_s(notify_event_name(m->event)));
        nf_put_group_after(&s, m->group);
    }
    nf_put_esc(&l, strbuf_str(&s) != NULL ? strbuf_str(&s) : "", NF_LINE);
    l.oom |= s.oom;
    nf_cut_buf(&l, NF_EMAIL_SUBJECT, 0, 0);
    if (!l.oom)
        strbuf_put(b, l.p, l.len);
    b->oom |= l.oom;
    free(s.p);
    free(l.p);
}

int notify_email(const struct notify_msg *m, char **subject, char **text,
                 char **html)
{
    struct nf_row rows[NF_MAX_ROWS];
    struct strbuf sub = {0}, sum = {0}, t = {0}, h = {0};
    int nrows = nf_rows(m, rows);

    *subject = *text = *html = NULL;
    nf_email_subject(&sub, m);
    nf_put_summary(&sum, m, 1);
    if (nrows >= 0 && !sum.oom) {
        nf_email_body(&t, m, strbuf_str(&sum), rows, nrows, 0);
        nf_email_body(&h, m, strbuf_str(&sum), rows, nrows, 1);
    }
    for (int i = 0; i < nrows; i++)
        free(rows[i].value);
    free(sum.p);
    if (nrows < 0 || sum.oom || sub.oom || t.oom || h.oom || sub.p == NULL ||
        t.p == NULL || h.p == NULL) {
        free(sub.p);
        free(t.p);
        free(h.p);
        return -1;
    }
    *subject = sub.p;
    *text = t.p;
    *html = h.p;
    return 0;
}

/* --- Signature ------------------------------------------------------- */

int notify_sign(const char *secret, int64_t ts, const char *body, size_t len,
                char *buf, size_t n)
{
    char head[32], hex[65];

    if (buf != NULL && n > 0)
        buf[0] = '\0';
    if (secret == NULL || secret[0] == '\0' || strlen(secret) > INT_MAX ||
        (body == NULL && len > 0) || buf == NULL)
        return -1;
    int hl = snprintf(head, sizeof(head), "%lld.", (long long)ts);
    if (len > SIZE_MAX - (size_t)hl)
        return -1;
    unsigned char *msg = malloc((size_t)hl + len);
    if (msg == NULL)
        return -1;
    memcpy(msg, head, (size_t)hl);
    if (len > 0)
        memcpy(msg + hl, body, len);
    int r = key_hmac_hex(secret, strlen(secret), msg, (size_t)hl + len, hex);
    free(msg);
    if (r != 0)
        return -1;
    int w = snprintf(buf, n, "t=%lld,v1=%s", (long long)ts, hex);
    if (w < 0 || (size_t)w >= n) {
        if (n > 0)
            buf[0] = '\0';
        return -1;
    }
    return 0;
}
