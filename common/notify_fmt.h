/*
 * notify_fmt.h: what a notification says, in the shape each receiver
 * expects (Slack Block Kit, PagerDuty Events API v2, our own webhook
 * payload, the Alertmanager webhook v4 payload, a plain-text and HTML
 * email), and the webhook signature.  Pure functions: no I/O.
 *
 * docs/notify-payloads.md shows every shape and how a notification maps
 * onto it.  Ownership: a formatter never keeps or changes what the
 * message points to (JSON members are deep-copied); a returned json_t is
 * the caller's to json_decref, a returned string the caller's to free.
 * Every function is reentrant and may be called from any thread.
 *
 * Limits are counted in UTF-16 code units (a character outside the Basic
 * Multilingual Plane counts two), never fewer than the characters, so a
 * text cut to a receiver's limit fits however it counts; a cut text ends
 * in an ellipsis and never splits a UTF-8 sequence.  Bytes of a string
 * that are not UTF-8 show as '?' rather than failing the body.
 */
#ifndef TT_NOTIFY_FMT_H
#define TT_NOTIFY_FMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* What happened: the notification's event. */
enum notify_event {
    NE_FIRING,       /* an alert fired */
    NE_RENOTIFY,     /* still firing, notified again */
    NE_ACKNOWLEDGED, /* someone acknowledged it */
    NE_RESOLVED,     /* it resolved (by itself or by someone) */
    NE_TEST,         /* POST /channels/{id}/test */
    NE_NEVENTS
};

/* "firing", "renotify", "acknowledged", "resolved", "test"; NULL when out
 * of range.  notify_event_parse: -1 when unknown. */
const char *notify_event_name(int e);
int notify_event_parse(const char *s);

/* One notification: everything a formatter may show.  Strings are never
 * NULL ("" when unknown); JSON objects may be NULL (treated as {}; values
 * NULL as []). */
struct notify_msg {
    int64_t id;       /* the notification's id: receivers deduplicate by it */
    int event;        /* enum notify_event */
    int64_t alert_id; /* 0 for a test */
    int64_t rule_id;  /* < 0: a budget alert (-budget id); 0: none */
    const char *rule_name;
    const char *description; /* the rule's */
    const char *severity;    /* critical|high|medium|low */
    const char *status;      /* the alert's now: firing|acknowledged|resolved */
    const char *workspace;
    const char *channel_name;
    json_t *group;       /* {"model": "gpt-4o"}: the alert's group */
    json_t *values;      /* [{"metric","operator","threshold","value"...}] */
    json_t *labels;      /* the rule's labels: {"team": "infra"} */
    json_t *annotations; /* the rule's annotations */
    int64_t started_ms;  /* when it fired (0: unknown) */
    int64_t ended_ms;    /* when it resolved (0: still open) */
    int64_t now_ms;      /* when this notification was made */
    const char *who;     /* who acknowledged or resolved ("" by itself) */
    const char *note;    /* their note */
    const char *url;     /* the alert in the UI, absolute; "" when none */
};

/* m's PagerDuty dedup_key, into buf (cut to n - 1 bytes): for an alert
 * "tokentap-alert-<alert_id>", the same for trigger, acknowledge and
 * resolve; for a test (event NE_TEST, or alert_id 0)
 * "tokentap-test-<id>", the notification's id, so that each test opens
 * an incident of its own rather than folding into one that is never
 * resolved.  The Alertmanager fingerprint is made from it too. */
void notify_dedup_key(const struct notify_msg *m, char *buf, size_t n);

/* A one-line summary, e.g. "[CRITICAL] High error rate (model=gpt-4o) is
 * firing", at most max bytes (UTF-8 kept whole, "..." as one character
 * ending it when cut), into buf (n >= max + 1; a smaller n lowers max).
 * Other events: "... is still firing", "... was acknowledged by alice",
 * "... was resolved by alice" ("... resolved" by itself); a test:
 * "[TEST] Test notification from tokentap to <channel>". */
void notify_summary(const struct notify_msg *m, char *buf, size_t n,
                    size_t max);

/* Slack incoming webhook body: Block Kit (header, section with fields,
 * context, a button linking to url when set) with a top-level "text"
 * fallback; severity shown by emoji and attachment colour.  The header's
 * emoji: critical red, high orange, medium yellow, low blue circles; a
 * check mark when resolved, eyes when acknowledged, a test tube for a
 * test.  Block Kit's limits (header 150 characters, a field 2000, ten
 * fields) are kept by cutting.  NULL when out of memory. */
json_t *notify_slack(const struct notify_msg *m);

/* PagerDuty Events API v2 body: event_action trigger (firing, renotify,
 * test), acknowledge or resolve; dedup_key notify_dedup_key; payload with
 * summary (<= 1024 characters), source "tokentap", severity mapped
 * (critical->critical, high->error, medium->warning, low->info),
 * timestamp, custom_details (values, group, labels, workspace); an
 * unknown severity is warning (info for a test without one).  Acknowledge
 * and resolve carry routing_key, event_action and dedup_key alone, all
 * PagerDuty reads of them.  NULL when out of memory. */
json_t *notify_pagerduty(const struct notify_msg *m, const char *routing_key);

/* Our webhook payload, version "1" (docs/notify-payloads.md).  NULL when
 * out of memory. */
json_t *notify_webhook_tokentap(const struct notify_msg *m);

/* The Alertmanager webhook payload, version "4": one alert with labels
 * (alertname, severity, the group's and the rule's labels), annotations
 * (summary, description, the rule's), startsAt/endsAt (RFC 3339;
 * endsAt "0001-01-01T00:00:00Z" while firing), generatorURL, fingerprint
 * (16 hex digits of SHA-256 over notify_dedup_key: stable per alert, one
 * per test); receiver is the channel's name.
 * Label and annotation values are strings (numbers as written); labels
 * are the rule's, then the group's, then severity and alertname, a later
 * one replacing an earlier.  Acknowledged is "firing" (Alertmanager has
 * no acknowledgement).  NULL when out of memory. */
json_t *notify_webhook_alertmanager(const struct notify_msg *m);

/* An email's subject (carries severity and rule name), plain-text body
 * and HTML body (escaped), each malloc'ed.  Returns 0, or -1 when out of
 * memory (nothing to free). */
int notify_email(const struct notify_msg *m, char **subject, char **text,
                 char **html);

/* The webhook signature header's value over body at ts (unix seconds):
 * "t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>" keyed by secret>", into
 * buf (n >= 128).  Returns 0, or -1 (buf "") when secret is NULL or ""
 * (nothing to sign with: send no signature), out of memory, or n is too
 * small. */
int notify_sign(const char *secret, int64_t ts, const char *body, size_t len,
                char *buf, size_t n);

#endif
