/*
 * check_notify_fmt.c: unit tests for the bodies of notifications
 * (common/notify_fmt.h): event names, the dedup key and the summary; the
 * whole of each receiver's body for one firing alert (Slack, PagerDuty,
 * our webhook, Alertmanager), then what changes with the event, the
 * severity and the limits each receiver sets; email subject, text and
 * escaped HTML; NULL JSON members; bytes that are not UTF-8; and the
 * webhook signature against HMAC-SHA256 values computed elsewhere.
 *
 * Expected JSON is written in C strings with ' for " (see load()).  Every
 * test frees what it allocates, so the suite can run under
 * LeakSanitizer.
 */
#include "checkjson.h"
#include "notify_fmt.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-01-01T10:00:00Z, and a minute later. */
#define T_START 1767261600000LL
#define T_NOW   1767261660000LL

#define SUMMARY "[CRITICAL] High error rate (model=gpt-4o) is firing"
#define URL     "https://tt.example/alerts/345"
#define VALUES                                                                 \
    "[{'metric':'error_rate','operator':'>','threshold':5.0,'value':7.25,"     \
    "'holds':true}]"

/* Assert that got equals the JSON text expect, printing both. */
static void ck_json_eq(const json_t *got, const char *expect)
{
    json_t *e = load(expect);
    ck_assert_ptr_nonnull(got);
    if (!json_equal(got, e)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
        char *x = json_dumps(e, JSON_SORT_KEYS | JSON_INDENT(1));
        ck_abort_msg("got\n%s\nexpected\n%s", g, x);
    }
    json_decref(e);
}

/* The string at a path of object keys and array indexes, e.g.
 * str_at(o, "blocks", 0, "text", "text") (index given as "0"). */
static const char *str_at(const json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok != NULL && j != NULL;
         tok = strtok(NULL, "."))
        j = tok[0] >= '0' && tok[0] <= '9'
                ? json_array_get(j, (size_t)atoi(tok))
                : json_object_get(j, tok);
    ck_assert_msg(json_is_string(j), "%s is not a string", path);
    return json_string_value(j);
}

/* UTF-16 code units of UTF-8 s: one per sequence, two for four bytes. */
static size_t units(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n += *p >= 0xF0 ? 2 : 1;
    return n;
}

/* s repeated n times (malloc'ed). */
static char *repeat(const char *s, size_t n)
{
    size_t len = strlen(s);
    char *r = malloc(len * n + 1);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < n; i++)
        memcpy(r + i * len, s, len);
    r[len * n] = '\0';
    return r;
}

/* The message every test starts from: critical alert 345 of rule 12,
 * firing on model gpt-4o, notification 77 to channel "ops". */
static struct notify_msg M;

static void setup(void)
{
    M = (struct notify_msg){
        .id = 77,
        .event = NE_FIRING,
        .alert_id = 345,
        .rule_id = 12,
        .rule_name = "High error rate",
        .description = "Errors over 5% for 5m",
        .severity = "critical",
        .status = "firing",
        .workspace = "default",
        .channel_name = "ops",
        .group = load("{'model':'gpt-4o'}"),
        .values = load(VALUES),
        .labels = load("{'team':'infra'}"),
        .annotations = load("{'runbook':'https://wiki.example/rb'}"),
        .started_ms = T_START,
        .ended_ms = 0,
        .now_ms = T_NOW,
        .who = "",
        .note = "",
        .url = URL,
    };
}

static void teardown(void)
{
    json_decref(M.group);
    json_decref(M.values);
    json_decref(M.labels);
    json_decref(M.annotations);
}

/* Replace one of M's JSON members (the old one is released). */
static void set_json(json_t **member, const char *text)
{
    json_decref(*member);
    *member = text != NULL ? load(text) : NULL;
}

/* --- Names, dedup key, summary --------------------------------------- */

START_TEST(test_event_names)
{
    static const char *const names[] = {"firing", "renotify", "acknowledged",
                                        "resolved", "test"};
    for (int i = 0; i < NE_NEVENTS; i++) {
        ck_assert_str_eq(notify_event_name(i), names[i]);
        ck_assert_int_eq(notify_event_parse(names[i]), i);
    }
    ck_assert_ptr_null(notify_event_name(-1));
    ck_assert_ptr_null(notify_event_name(NE_NEVENTS));
    ck_assert_int_eq(notify_event_parse("Firing"), -1);
    ck_assert_int_eq(notify_event_parse(""), -1);
    ck_assert_int_eq(notify_event_parse(NULL), -1);
}
END_TEST

START_TEST(test_dedup_key)
{
    char buf[64];
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-alert-345");
    /* The same for every event of the alert, whatever the notification. */
    for (int e = NE_FIRING; e <= NE_RESOLVED; e++) {
        M.event = e;
        M.id = 100 + e;
        notify_dedup_key(&M, buf, sizeof(buf));
        ck_assert_str_eq(buf, "tokentap-alert-345");
    }
    M.alert_id = 9007199254740993LL;
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-alert-9007199254740993");
    notify_dedup_key(&M, buf, 8);
    ck_assert_str_eq(buf, "tokenta");

    /* A test is keyed by the notification: each one its own incident. */
    M.event = NE_TEST;
    M.alert_id = 0;
    M.id = 78;
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-test-78");
    M.id = 9007199254740993LL;
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-test-9007199254740993");
    /* Either sign is enough: a test event, or no alert. */
    M.alert_id = 345;
    M.id = 79;
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-test-79");
    M.event = NE_FIRING;
    M.alert_id = 0;
    notify_dedup_key(&M, buf, sizeof(buf));
    ck_assert_str_eq(buf, "tokentap-test-79");
}
END_TEST

START_TEST(test_summary_events)
{
    char buf[512];
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, SUMMARY);

    M.event = NE_RENOTIFY;
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[CRITICAL] High error rate (model=gpt-4o) is still "
                          "firing");

    M.event = NE_ACKNOWLEDGED;
    M.who = "alice";
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[CRITICAL] High error rate (model=gpt-4o) was "
                          "acknowledged by alice");

    M.event = NE_RESOLVED;
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[CRITICAL] High error rate (model=gpt-4o) was "
                          "resolved by alice");
    M.who = "";
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[CRITICAL] High error rate (model=gpt-4o) resolved");

    /* Group values of every type, in the group's order; no group, no
     * parentheses; no severity, a plain tag. */
    M.event = NE_FIRING;
    M.severity = "low";
    set_json(&M.group, "{'provider':'openai','budget':3,'ratio':0.5,'on':true,"
                       "'none':null}");
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[LOW] High error rate (provider=openai, budget=3, "
                          "ratio=0.5, on=true, none=) is firing");
    set_json(&M.group, "{}");
    M.severity = "";
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[ALERT] High error rate is firing");

    M.event = NE_TEST;
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[TEST] Test notification from tokentap to ops");
    M.channel_name = "";
    notify_summary(&M, buf, sizeof(buf), 500);
    ck_assert_str_eq(buf, "[TEST] Test notification from tokentap");
}
END_TEST

START_TEST(test_summary_cut)
{
    char buf[64];
    /* "[CRITICAL] " is 11 bytes; each euro sign 3. */
    M.rule_name = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac";
    set_json(&M.group, NULL);

    /* It fits exactly. */
    notify_summary(&M, buf, sizeof(buf), 33);
    ck_assert_str_eq(buf, "[CRITICAL] \xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                          "\xe2\x82\xac is firing");

    /* 20 bytes: 17 for text, and 11 + 3 + 3 = 17: two whole signs. */
    notify_summary(&M, buf, sizeof(buf), 20);
    ck_assert_str_eq(buf, "[CRITICAL] \xe2\x82\xac\xe2\x82\xac\xe2\x80\xa6");
    /* 19 bytes: one byte short of the second sign, which goes whole. */
    notify_summary(&M, buf, sizeof(buf), 19);
    ck_assert_str_eq(buf, "[CRITICAL] \xe2\x82\xac\xe2\x80\xa6");
    ck_assert_int_le(strlen(buf), 19);

    /* A small buffer lowers max; too small for the ellipsis, none. */
    notify_summary(&M, buf, 6, 100);
    ck_assert_str_eq(buf, "[C\xe2\x80\xa6");
    notify_summary(&M, buf, 3, 100);
    ck_assert_str_eq(buf, "[C");
    buf[0] = 'x';
    notify_summary(&M, buf, 1, 100);
    ck_assert_str_eq(buf, "");
}
END_TEST

/* --- Slack ----------------------------------------------------------- */

START_TEST(test_slack_firing)
{
    json_t *o = notify_slack(&M);
    ck_json_eq(
        o, "{'text':'" SUMMARY "',"
           " 'blocks':["
           "  {'type':'header','text':{'type':'plain_text',"
           "   'text':'🔴 High error rate (model=gpt-4o) is firing',"
           "   'emoji':true}},"
           "  {'type':'section',"
           "   'text':{'type':'mrkdwn','text':'Errors over 5% for 5m'},"
           "   'fields':["
           "    {'type':'mrkdwn','text':'*Severity*\\ncritical'},"
           "    {'type':'mrkdwn','text':'*Status*\\nfiring'},"
           "    {'type':'mrkdwn','text':'*Workspace*\\ndefault'},"
           "    {'type':'mrkdwn','text':'*Group*\\nmodel=gpt-4o'},"
           "    {'type':'mrkdwn','text':'error_rate &gt; 5: 7.25'}]},"
           "  {'type':'context','elements':[{'type':'mrkdwn','text':"
           "   'Rule 12 · Alert 345 · <!date^1767261660^{date_short_pretty} "
           "{time_secs}|2026-01-01T10:01:00.000Z>'}]},"
           "  {'type':'actions','elements':[{'type':'button',"
           "   'text':{'type':'plain_text','text':'View alert'},"
           "   'url':'" URL "','action_id':'tokentap-view-alert'}]}],"
           " 'attachments':[{'color':'#D32F2F','fallback':'" SUMMARY "',"
           "  'footer':'tokentap · notification 77'}]}");
    json_decref(o);
}
END_TEST

START_TEST(test_slack_severity)
{
    static const struct {
        const char *severity, *emoji, *colour;
    } want[] = {{"critical", "🔴", "#D32F2F"},
                {"high", "🟠", "#F57C00"},
                {"medium", "🟡", "#FBC02D"},
                {"low", "🔵", "#1976D2"},
                {"bogus", "⚪", "#9E9E9E"}};
    char head[128];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        M.severity = want[i].severity;
        json_t *o = notify_slack(&M);
        snprintf(head, sizeof(head), "%s High error rate", want[i].emoji);
        ck_assert_contains(str_at(o, "blocks.0.text.text"), head);
        ck_assert_str_eq(str_at(o, "attachments.0.color"), want[i].colour);
        json_decref(o);
    }

    /* Resolved: a check mark, green; acknowledged: eyes, the severity's
     * colour; a test: a test tube. */
    M.severity = "high";
    M.event = NE_RESOLVED;
    json_t *o = notify_slack(&M);
    ck_assert_str_eq(str_at(o, "blocks.0.text.text"),
                     "✅ High error rate (model=gpt-4o) resolved");
    ck_assert_str_eq(str_at(o, "attachments.0.color"), "#2E7D32");
    json_decref(o);
    M.event = NE_ACKNOWLEDGED;
    o = notify_slack(&M);
    ck_assert_str_eq(str_at(o, "blocks.0.text.text"),
                     "👀 High error rate (model=gpt-4o) was acknowledged");
    ck_assert_str_eq(str_at(o, "attachments.0.color"), "#F57C00");
    json_decref(o);
    M.event = NE_TEST;
    o = notify_slack(&M);
    ck_assert_str_eq(str_at(o, "blocks.0.text.text"),
                     "🧪 Test notification from tokentap to ops");
    ck_assert_str_eq(str_at(o, "text"),
                     "[TEST] Test notification from tokentap to ops");
    json_decref(o);
}
END_TEST

/* The types of o's blocks, joined by spaces. */
static void block_types(const json_t *o, char *buf, size_t n)
{
    const json_t *b;
    size_t i;
    buf[0] = '\0';
    json_array_foreach(json_object_get(o, "blocks"), i, b)
    {
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? " " : "",
                 json_string_value(json_object_get(b, "type")));
    }
}

START_TEST(test_slack_who_and_url)
{
    char types[128];
    M.event = NE_ACKNOWLEDGED;
    M.status = "acknowledged";
    M.who = "alice";
    M.note = "looking <now> & then";
    json_t *o = notify_slack(&M);
    block_types(o, types, sizeof(types));
    ck_assert_str_eq(types, "header section section context actions");
    ck_assert_str_eq(str_at(o, "blocks.2.text.type"), "mrkdwn");
    ck_assert_str_eq(str_at(o, "blocks.2.text.text"),
                     "Acknowledged by alice: looking &lt;now&gt; &amp; then");
    ck_assert_str_eq(str_at(o, "blocks.1.fields.1.text"),
                     "*Status*\nacknowledged");
    json_decref(o);

    /* Resolved by itself, no note, no URL, no description, no workspace,
     * no group: nothing said of who, no button, no section text, dashes. */
    M.event = NE_RESOLVED;
    M.who = M.note = M.url = M.description = M.workspace = "";
    set_json(&M.group, NULL);
    o = notify_slack(&M);
    block_types(o, types, sizeof(types));
    ck_assert_str_eq(types, "header section context");
    ck_assert_ptr_null(json_object_get(
        json_array_get(json_object_get(o, "blocks"), 1), "text"));
    ck_assert_str_eq(str_at(o, "blocks.1.fields.2.text"), "*Workspace*\n—");
    ck_assert_str_eq(str_at(o, "blocks.1.fields.3.text"), "*Group*\n—");
    json_decref(o);

    /* A budget's alert; a test's. */
    M.rule_id = -3;
    o = notify_slack(&M);
    ck_assert_contains(str_at(o, "blocks.2.elements.0.text"),
                       "Budget 3 · Alert 345 · ");
    json_decref(o);
    M.rule_id = 0;
    M.alert_id = 0;
    M.event = NE_TEST;
    o = notify_slack(&M);
    ck_assert_contains(str_at(o, "blocks.2.elements.0.text"), "Test · <!date^");
    json_decref(o);
}
END_TEST

START_TEST(test_slack_limits)
{
    /* A long name: the header is cut to 150 characters, an ellipsis
     * last; the fallback text keeps it whole. */
    char *name = repeat("n", 300);
    M.rule_name = name;
    json_t *o = notify_slack(&M);
    const char *h = str_at(o, "blocks.0.text.text");
    ck_assert_uint_eq(units(h), 150);
    ck_assert_str_eq(h + strlen(h) - 3, "…");
    ck_assert_contains(str_at(o, "text"), name);
    json_decref(o);

    /* Twelve values: ten fields, the last counting the rest. */
    json_t *v = json_array();
    for (int i = 0; i < 12; i++)
        json_array_append_new(v, json_pack("{s:s, s:s, s:i, s:i}", "metric",
                                           "requests", "operator", "<",
                                           "threshold", i, "value", i + 100));
    json_decref(M.values);
    M.values = v;
    o = notify_slack(&M);
    const json_t *fields = json_object_get(
        json_array_get(json_object_get(o, "blocks"), 1), "fields");
    ck_assert_uint_eq(json_array_size(fields), 10);
    ck_assert_str_eq(str_at(o, "blocks.1.fields.4.text"),
                     "requests &lt; 0: 100");
    ck_assert_str_eq(str_at(o, "blocks.1.fields.8.text"),
                     "requests &lt; 4: 104");
    ck_assert_str_eq(str_at(o, "blocks.1.fields.9.text"), "… and 7 more");
    json_decref(o);

    /* A field past 2000 characters of escaped text is cut there, an
     * entity never split: 700 '<' are 2800 bytes escaped; the cut keeps
     * 1999 characters less the partial entity, then the ellipsis. */
    char *lt = repeat("<", 700);
    M.workspace = lt;
    o = notify_slack(&M);
    const char *f = str_at(o, "blocks.1.fields.2.text");
    ck_assert_uint_le(units(f), 2000);
    ck_assert_uint_ge(units(f), 1996);
    ck_assert_str_eq(f + strlen(f) - 7, "&lt;…");
    json_decref(o);

    /* A URL past what a button takes: no button rather than a cut one. */
    char *url = repeat("u", 3001);
    M.url = url;
    o = notify_slack(&M);
    char types[128];
    block_types(o, types, sizeof(types));
    ck_assert_str_eq(types, "header section context");
    json_decref(o);
    free(url);
    free(lt);
    free(name);
}
END_TEST

/* --- PagerDuty ------------------------------------------------------- */

START_TEST(test_pagerduty_trigger)
{
    json_t *o = notify_pagerduty(&M, "R0UT1NG");
    ck_json_eq(
        o,
        "{'routing_key':'R0UT1NG','event_action':'trigger',"
        " 'dedup_key':'tokentap-alert-345',"
        " 'payload':{'summary':'" SUMMARY "','source':'tokentap',"
        "  'severity':'critical','timestamp':'2026-01-01T10:01:00.000Z',"
        "  'component':'model=gpt-4o','group':'default','class':'error_rate',"
        "  'custom_details':{'notification_id':77,'alert_id':345,"
        "   'rule_id':12,'rule':'High error rate',"
        "   'description':'Errors over 5% for 5m','event':'firing',"
        "   'status':'firing','severity':'critical','workspace':'default',"
        "   'group':{'model':'gpt-4o'},'values':" VALUES ","
        "   'labels':{'team':'infra'},"
        "   'annotations':{'runbook':'https://wiki.example/rb'},"
        "   'started_at':'2026-01-01T10:00:00.000Z'}},"
        " 'links':[{'href':'" URL "','text':'View the alert in tokentap'}],"
        " 'client':'tokentap','client_url':'https://tt.example'}");
    json_decref(o);
}
END_TEST

START_TEST(test_pagerduty_severity)
{
    static const char *const map[][2] = {
        {"critical", "critical"}, {"high", "error"}, {"medium", "warning"},
        {"low", "info"},          {"", "warning"},   {"bogus", "warning"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        M.severity = map[i][0];
        json_t *o = notify_pagerduty(&M, "k");
        ck_assert_msg(strcmp(str_at(o, "payload.severity"), map[i][1]) == 0,
                      "%s: %s, expected %s", map[i][0],
                      str_at(o, "payload.severity"), map[i][1]);
        json_decref(o);
    }
    /* A test without a severity is info. */
    M.event = NE_TEST;
    M.severity = "";
    json_t *o = notify_pagerduty(&M, "k");
    ck_assert_str_eq(str_at(o, "payload.severity"), "info");
    ck_assert_str_eq(str_at(o, "links.0.text"), "Open tokentap");
    json_decref(o);
}
END_TEST

START_TEST(test_pagerduty_events)
{
    static const struct {
        int event;
        const char *action;
    } want[] = {{NE_FIRING, "trigger"},
                {NE_RENOTIFY, "trigger"},
                {NE_ACKNOWLEDGED, "acknowledge"},
                {NE_RESOLVED, "resolve"}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        M.event = want[i].event;
        json_t *o = notify_pagerduty(&M, "k");
        ck_assert_str_eq(str_at(o, "event_action"), want[i].action);
        ck_assert_str_eq(str_at(o, "dedup_key"), "tokentap-alert-345");
        ck_assert_str_eq(str_at(o, "routing_key"), "k");
        /* Acknowledge and resolve: the three members PagerDuty reads. */
        if (want[i].event == NE_ACKNOWLEDGED || want[i].event == NE_RESOLVED)
            ck_assert_uint_eq(json_object_size(o), 3);
        else
            ck_assert_str_eq(str_at(o, "payload.source"), "tokentap");
        json_decref(o);
    }
    /* Tests: each its own incident, keyed by the notification's id, so
     * that one test does not fold into an earlier one. */
    M.event = NE_TEST;
    M.alert_id = 0;
    json_t *o = notify_pagerduty(&M, "k");
    ck_assert_str_eq(str_at(o, "event_action"), "trigger");
    ck_assert_str_eq(str_at(o, "dedup_key"), "tokentap-test-77");
    json_decref(o);
    M.id = 78;
    o = notify_pagerduty(&M, "k");
    ck_assert_str_eq(str_at(o, "dedup_key"), "tokentap-test-78");
    json_decref(o);

    /* No URL: no links, no client_url; a budget: budget_id; no values:
     * no class. */
    M.event = NE_FIRING;
    M.url = "";
    M.rule_id = -4;
    set_json(&M.values, NULL);
    o = notify_pagerduty(&M, "k");
    ck_assert_ptr_null(json_object_get(o, "links"));
    ck_assert_ptr_null(json_object_get(o, "client_url"));
    ck_assert_str_eq(str_at(o, "client"), "tokentap");
    const json_t *d =
        json_object_get(json_object_get(o, "payload"), "custom_details");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "budget_id")), 4);
    ck_assert_ptr_null(json_object_get(d, "rule_id"));
    ck_assert_ptr_null(json_object_get(json_object_get(o, "payload"), "class"));
    json_decref(o);
}
END_TEST

START_TEST(test_pagerduty_summary_cut)
{
    /* 1200 euro signs (3 bytes, one character each): the summary is cut
     * to 1024 characters, 11 of the tag, 1012 signs and the ellipsis. */
    char *name = repeat("€", 1200);
    M.rule_name = name;
    json_t *o = notify_pagerduty(&M, "k");
    const char *s = str_at(o, "payload.summary");
    char *signs = repeat("€", 1012);
    char want[4096];
    snprintf(want, sizeof(want), "[CRITICAL] %s…", signs);
    /* Check cannot print strings this long: say only how they differ. */
    ck_assert_msg(strcmp(s, want) == 0, "%zu bytes, %zu units", strlen(s),
                  units(s));
    ck_assert_uint_eq(units(s), 1024);
    json_decref(o);

    /* A character outside the BMP counts two: 506 fires (four bytes, two
     * units each) after the tag make 1023, then the ellipsis; none split. */
    char *fire = repeat("🔥", 600);
    M.rule_name = fire;
    o = notify_pagerduty(&M, "k");
    s = str_at(o, "payload.summary");
    ck_assert_uint_eq(units(s), 1024);
    ck_assert_uint_eq(strlen(s), 11 + 506 * 4 + 3);
    ck_assert_str_eq(s + strlen(s) - 7, "🔥…");
    json_decref(o);

    /* A summary that fits is whole. */
    char *exact = repeat("e", 1024 - strlen("[CRITICAL]  (model=gpt-4o) is "
                                            "firing"));
    M.rule_name = exact;
    o = notify_pagerduty(&M, "k");
    ck_assert_uint_eq(units(str_at(o, "payload.summary")), 1024);
    ck_assert_lacks(str_at(o, "payload.summary"), "…");
    json_decref(o);
    free(exact);
    free(fire);
    free(signs);
    free(name);
}
END_TEST

/* --- Webhooks -------------------------------------------------------- */

START_TEST(test_webhook_tokentap)
{
    json_t *o = notify_webhook_tokentap(&M);
    ck_json_eq(o, "{'version':'1','id':77,'event':'firing',"
                  " 'alert':{'id':345,'status':'firing','severity':'critical',"
                  "  'rule':{'id':12,'name':'High error rate',"
                  "   'description':'Errors over 5% for 5m'},"
                  "  'workspace':'default','group':{'model':'gpt-4o'},"
                  "  'values':" VALUES ",'labels':{'team':'infra'},"
                  "  'annotations':{'runbook':'https://wiki.example/rb'},"
                  "  'started_at':'2026-01-01T10:00:00.000Z','ended_at':null,"
                  "  'url':'" URL "'},"
                  " 'sent_at':'2026-01-01T10:01:00.000Z'}");
    json_decref(o);

    M.event = NE_ACKNOWLEDGED;
    M.status = "acknowledged";
    M.who = "alice";
    o = notify_webhook_tokentap(&M);
    ck_assert_str_eq(str_at(o, "event"), "acknowledged");
    ck_assert_str_eq(str_at(o, "acknowledged_by"), "alice");
    ck_assert(json_is_null(json_object_get(o, "note")));
    ck_assert_ptr_null(json_object_get(o, "resolved_by"));
    json_decref(o);

    M.event = NE_RESOLVED;
    M.status = "resolved";
    M.who = "";
    M.note = "fixed upstream";
    M.ended_ms = T_NOW;
    M.url = "";
    M.rule_id = -3;
    o = notify_webhook_tokentap(&M);
    ck_assert(json_is_null(json_object_get(o, "resolved_by")));
    ck_assert_str_eq(str_at(o, "note"), "fixed upstream");
    ck_assert_ptr_null(json_object_get(o, "acknowledged_by"));
    ck_assert_str_eq(str_at(o, "alert.ended_at"), "2026-01-01T10:01:00.000Z");
    const json_t *a = json_object_get(o, "alert");
    ck_assert(json_is_null(json_object_get(a, "url")));
    ck_assert(json_is_null(json_object_get(json_object_get(a, "rule"), "id")));
    ck_assert_int_eq(json_integer_value(json_object_get(a, "budget_id")), 3);
    json_decref(o);
}
END_TEST

START_TEST(test_webhook_alertmanager)
{
    json_t *o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "groupKey"),
                     "{}:{alertname=\"High error rate\", model=\"gpt-4o\"}");
    json_object_del(o, "groupKey");
#define AM_LABELS                                                              \
    "{'alertname':'High error rate','severity':'critical','model':'gpt-4o',"   \
    "'team':'infra'}"
#define AM_ANNOTATIONS                                                         \
    "{'summary':'" SUMMARY "','description':'Errors over 5% for 5m',"          \
    "'runbook':'https://wiki.example/rb'}"
    ck_json_eq(o, "{'version':'4','truncatedAlerts':0,'status':'firing',"
                  " 'receiver':'ops',"
                  " 'groupLabels':{'alertname':'High error rate',"
                  "  'model':'gpt-4o'},"
                  " 'commonLabels':" AM_LABELS ","
                  " 'commonAnnotations':" AM_ANNOTATIONS ","
                  " 'externalURL':'https://tt.example',"
                  " 'alerts':[{'status':'firing','labels':" AM_LABELS ","
                  "  'annotations':" AM_ANNOTATIONS ","
                  "  'startsAt':'2026-01-01T10:00:00.000Z',"
                  "  'endsAt':'0001-01-01T00:00:00Z',"
                  "  'generatorURL':'" URL "',"
                  "  'fingerprint':'ee9861f0166471b8'}]}");
    json_decref(o);

    /* Acknowledged is firing still; resolved ends; the fingerprint stays. */
    M.event = NE_ACKNOWLEDGED;
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "status"), "firing");
    ck_assert_str_eq(str_at(o, "alerts.0.status"), "firing");
    ck_assert_str_eq(str_at(o, "alerts.0.fingerprint"), "ee9861f0166471b8");
    json_decref(o);
    M.event = NE_RESOLVED;
    M.ended_ms = T_NOW;
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "status"), "resolved");
    ck_assert_str_eq(str_at(o, "alerts.0.status"), "resolved");
    ck_assert_str_eq(str_at(o, "alerts.0.endsAt"), "2026-01-01T10:01:00.000Z");
    ck_assert_str_eq(str_at(o, "alerts.0.fingerprint"), "ee9861f0166471b8");
    json_decref(o);
}
END_TEST

START_TEST(test_alertmanager_labels)
{
    /* Values of every type become strings; the group's replace the
     * rule's, severity and alertname replace both (and the group labels
     * agree); the rule's annotations replace ours; quotes in the group
     * key are escaped. */
    M.rule_name = "say \"hi\"";
    set_json(&M.group, "{'budget':3,'ratio':0.25,'on':false,'model':'m',"
                       "'severity':'g'}");
    set_json(&M.labels, "{'severity':'x','alertname':'y','model':'z',"
                        "'n':1.5,'t':true,'nil':null,'team':'infra'}");
    set_json(&M.annotations, "{'summary':'mine','count':2}");
    json_t *o = notify_webhook_alertmanager(&M);
    ck_json_eq(json_object_get(o, "commonLabels"),
               "{'severity':'critical','alertname':'say \\'hi\\'',"
               " 'model':'m','n':'1.5','t':'true','nil':'','team':'infra',"
               " 'budget':'3','ratio':'0.25','on':'false'}");
    ck_json_eq(json_object_get(o, "commonAnnotations"),
               "{'summary':'mine','count':'2',"
               " 'description':'Errors over 5% for 5m'}");
    ck_json_eq(json_object_get(o, "groupLabels"),
               "{'alertname':'say \\'hi\\'','budget':'3','ratio':'0.25',"
               " 'on':'false','model':'m','severity':'critical'}");
    ck_assert_str_eq(str_at(o, "groupKey"),
                     "{}:{alertname=\"say \\\"hi\\\"\", budget=\"3\", "
                     "model=\"m\", on=\"false\", ratio=\"0.25\", "
                     "severity=\"critical\"}");
    json_decref(o);

    /* Another alert, another fingerprint; no URL, no external URL. */
    M.alert_id = 346;
    M.url = "";
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "alerts.0.fingerprint"), "a3d4d6f137e77725");
    ck_assert_str_eq(str_at(o, "externalURL"), "");
    ck_assert_str_eq(str_at(o, "alerts.0.generatorURL"), "");
    json_decref(o);

    /* Tests: one fingerprint each, over "tokentap-test-<id>". */
    M.alert_id = 0;
    M.event = NE_TEST;
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "alerts.0.fingerprint"), "6ea8230d8bc9bcc5");
    json_decref(o);
    M.id = 78;
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "alerts.0.fingerprint"), "7c99e0a91b859887");
    json_decref(o);
}
END_TEST

/* --- Email ----------------------------------------------------------- */

START_TEST(test_email_text)
{
    char *subject, *text, *html;
    M.event = NE_ACKNOWLEDGED;
    M.status = "acknowledged";
    M.who = "alice";
    M.note = "on it";
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_str_eq(subject,
                     "[CRITICAL] High error rate: acknowledged (model=gpt-4o)");
    ck_assert_str_eq(
        text, "[CRITICAL] High error rate (model=gpt-4o) was acknowledged by "
              "alice\n"
              "\n"
              "Rule:             High error rate\n"
              "Id:               rule 12\n"
              "Description:      Errors over 5% for 5m\n"
              "Severity:         critical\n"
              "Status:           acknowledged\n"
              "Workspace:        default\n"
              "Group:            model=gpt-4o\n"
              "Started:          2026-01-01T10:00:00.000Z\n"
              "Acknowledged by:  alice\n"
              "Note:             on it\n"
              "\n"
              "Conditions:\n"
              "  error_rate > 5: 7.25\n"
              "\n"
              "Labels:\n"
              "  team: infra\n"
              "\n"
              "Annotations:\n"
              "  runbook: https://wiki.example/rb\n"
              "\n"
              "View the alert: " URL "\n"
              "\n"
              "-- \n"
              "Sent by tokentap (notification 77, channel \"ops\").\n");
    ck_assert_contains(html, "<a href=\"" URL "\">View the alert");
    free(subject);
    free(text);
    free(html);

    M.event = NE_FIRING;
    M.severity = "medium";
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_str_eq(subject,
                     "[MEDIUM] High error rate: firing (model=gpt-4o)");
    ck_assert_lacks(text, "Acknowledged by");
    free(subject);
    free(text);
    free(html);

    M.event = NE_RENOTIFY;
    set_json(&M.group, "{}");
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_str_eq(subject, "[MEDIUM] High error rate: still firing");
    free(subject);
    free(text);
    free(html);

    M.event = NE_TEST;
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_str_eq(subject, "[TEST] Test notification from tokentap to ops");
    free(subject);
    free(text);
    free(html);
}
END_TEST

START_TEST(test_email_html_escaped)
{
    char *subject, *text, *html;
    const char *evil = "<script>alert(\"x\")</script> & 'y'";
    const char *escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; "
                          "&amp; &#39;y&#39;";
    M.rule_name = M.description = M.workspace = M.channel_name = evil;
    M.event = NE_RESOLVED;
    M.who = M.note = evil;
    M.url = "https://tt.example/a?x=1&y=\"2\"";
    set_json(&M.group, "{'model':'<b>'}");
    json_decref(M.labels);
    M.labels = json_pack("{s:s}", "<k>", "'v'");
    set_json(&M.values, "[{'metric':'cost','operator':'>=','threshold':1,"
                        "'value':null}]");
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);

    /* Nothing interpolated is left raw in the HTML. */
    ck_assert_lacks(html, "<script");
    ck_assert_lacks(html, "<b>");
    ck_assert_lacks(html, "<k>");
    ck_assert_lacks(html, "'v'");
    ck_assert_lacks(html, "\"x\"");
    ck_assert_contains(html, escaped);
    ck_assert_contains(html, "<title>[CRITICAL] ");
    ck_assert_contains(html, "model=&lt;b&gt;");
    ck_assert_contains(html, "<li>&lt;k&gt;: &#39;v&#39;</li>");
    ck_assert_contains(html, "<li>cost &gt;= 1: no data</li>");
    ck_assert_contains(html, "<a href=\"https://tt.example/a?x=1&amp;y="
                             "&quot;2&quot;\">");
    ck_assert_contains(html, "<th align=\"left\" valign=\"top\">Resolved by"
                             "</th>");
    /* Every '<' the HTML has opens one of our tags. */
    for (const char *p = strchr(html, '<'); p != NULL; p = strchr(p + 1, '<'))
        ck_assert_msg(p[1] != '\0' && strchr("!/hmtbpaul", p[1]) != NULL,
                      "raw '<' at \"%.20s\"", p);

    /* The text is as written. */
    ck_assert_contains(text, evil);
    ck_assert_contains(text, "Resolved by:      <script>");
    free(subject);
    free(text);
    free(html);

    /* A URL that is not a web address is not made a link. */
    M.url = "javascript:alert(1)";
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_lacks(html, "href=\"javascript");
    ck_assert_contains(html, "<p>View the alert: javascript:alert(1)</p>");
    free(subject);
    free(text);
    free(html);
}
END_TEST

START_TEST(test_email_subject_one_line)
{
    char *subject, *text, *html;
    char *long_name = repeat("\xc3\xa9", 200); /* 400 bytes */
    M.rule_name = "two\r\nBcc: x@example.com";
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_str_eq(subject, "[CRITICAL] two  Bcc: x@example.com: firing "
                              "(model=gpt-4o)");
    free(subject);
    free(text);
    free(html);

    /* Cut to 250 bytes, UTF-8 whole, the ellipsis last. */
    M.rule_name = long_name;
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_uint_le(strlen(subject), 250);
    ck_assert_uint_ge(strlen(subject), 248);
    ck_assert_str_eq(subject + strlen(subject) - 5, "\xc3\xa9…");
    free(subject);
    free(text);
    free(html);
    free(long_name);
}
END_TEST

/* --- Edge cases ------------------------------------------------------ */

START_TEST(test_null_json_members)
{
    set_json(&M.group, NULL);
    set_json(&M.values, NULL);
    set_json(&M.labels, NULL);
    set_json(&M.annotations, NULL);

    json_t *o = notify_webhook_tokentap(&M);
    ck_json_eq(json_object_get(json_object_get(o, "alert"), "group"), "{}");
    ck_json_eq(json_object_get(json_object_get(o, "alert"), "values"), "[]");
    ck_json_eq(json_object_get(json_object_get(o, "alert"), "labels"), "{}");
    ck_json_eq(json_object_get(json_object_get(o, "alert"), "annotations"),
               "{}");
    json_decref(o);

    o = notify_pagerduty(&M, "k");
    const json_t *d =
        json_object_get(json_object_get(o, "payload"), "custom_details");
    ck_json_eq(json_object_get(d, "group"), "{}");
    ck_json_eq(json_object_get(d, "values"), "[]");
    ck_json_eq(json_object_get(d, "labels"), "{}");
    ck_json_eq(json_object_get(d, "annotations"), "{}");
    ck_assert_ptr_null(
        json_object_get(json_object_get(o, "payload"), "component"));
    json_decref(o);

    o = notify_webhook_alertmanager(&M);
    ck_json_eq(json_object_get(o, "commonLabels"),
               "{'alertname':'High error rate','severity':'critical'}");
    ck_json_eq(json_object_get(o, "groupLabels"),
               "{'alertname':'High error rate'}");
    ck_assert_str_eq(str_at(o, "groupKey"),
                     "{}:{alertname=\"High error rate\"}");
    json_decref(o);

    o = notify_slack(&M);
    ck_assert_uint_eq(
        json_array_size(json_object_get(
            json_array_get(json_object_get(o, "blocks"), 1), "fields")),
        4);
    ck_assert_str_eq(str_at(o, "text"), "[CRITICAL] High error rate is firing");
    json_decref(o);

    char *subject, *text, *html;
    ck_assert_int_eq(notify_email(&M, &subject, &text, &html), 0);
    ck_assert_lacks(text, "Conditions:");
    ck_assert_lacks(html, "<ul>");
    free(subject);
    free(text);
    free(html);

    /* Values as an object ({"metric op threshold": value}) read too. */
    set_json(&M.values, "{'cost > 1':2.5,'errors > 0':null}");
    o = notify_slack(&M);
    ck_assert_str_eq(str_at(o, "blocks.1.fields.4.text"), "cost &gt; 1: 2.5");
    ck_assert_str_eq(str_at(o, "blocks.1.fields.5.text"),
                     "errors &gt; 0: no data");
    json_decref(o);
}
END_TEST

START_TEST(test_not_utf8)
{
    /* A stray byte does not fail the body: it shows as '?'. */
    M.rule_name = "bad\xff name";
    M.who = "x\xc3";
    M.event = NE_ACKNOWLEDGED;
    json_t *o = notify_webhook_tokentap(&M);
    ck_assert_str_eq(str_at(o, "alert.rule.name"), "bad? name");
    ck_assert_str_eq(str_at(o, "acknowledged_by"), "x?");
    json_decref(o);
    o = notify_slack(&M);
    ck_assert_ptr_nonnull(o);
    ck_assert_contains(str_at(o, "text"), "bad? name");
    json_decref(o);
    M.event = NE_FIRING;
    o = notify_pagerduty(&M, "k");
    ck_assert_contains(str_at(o, "payload.summary"), "bad? name");
    json_decref(o);
    o = notify_webhook_alertmanager(&M);
    ck_assert_str_eq(str_at(o, "commonLabels.alertname"), "bad? name");
    json_decref(o);
}
END_TEST

/* --- Signature ------------------------------------------------------- */

START_TEST(test_sign)
{
    char buf[128];
    /* Expected values from Python's hmac module:
     * hmac.new(b'key', b'123.body', hashlib.sha256).hexdigest(). */
    ck_assert_int_eq(notify_sign("key", 123, "body", 4, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "t=123,v1=6db85a64c3a5ac19dfbd3de4208b151bb6de9ae6"
                          "375ea71af20ab32b463df8d2");

    const char *body = "{\"id\":1}";
    ck_assert_int_eq(notify_sign("whsec_test", 1700000000, body, strlen(body),
                                 buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "t=1700000000,v1=2f441ba4b3b2d50d28a9ab9d9fd88803"
                          "76ecd1eb5d0435401553f5d8d0a5dcf8");

    /* An empty body (NULL with length 0), a negative time, and a body
     * with a NUL byte: len counts, not strlen. */
    ck_assert_int_eq(notify_sign("key", -5, NULL, 0, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "t=-5,v1=89395fb1158307ae17a4ff21a15af00b1aad8ed1"
                          "fc4bf9080dca60f6f5d2e614");
    ck_assert_int_eq(notify_sign("key", 0, "a\0b", 3, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "t=0,v1=c81a8d62780baa24d3261cf5323b012f658f8a2b"
                          "4f9f091631a818dfa475ee6a");

    /* Refusals leave buf empty. */
    ck_assert_int_eq(notify_sign("key", 123, "body", 4, buf, 20), -1);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(notify_sign("", 123, "body", 4, buf, sizeof(buf)), -1);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(notify_sign(NULL, 123, "body", 4, buf, sizeof(buf)), -1);
    ck_assert_int_eq(notify_sign("key", 123, NULL, 4, buf, sizeof(buf)), -1);

    /* The largest value fits the documented 128 bytes. */
    ck_assert_int_eq(notify_sign("key", INT64_MIN, "body", 4, buf, sizeof(buf)),
                     0);
    ck_assert_uint_eq(strlen(buf), strlen("t=-9223372036854775808,v1=") + 64);
}
END_TEST

static Suite *notify_fmt_suite(void)
{
    Suite *s = suite_create("notify_fmt");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_event_names);
    tcase_add_test(tc, test_dedup_key);
    tcase_add_test(tc, test_summary_events);
    tcase_add_test(tc, test_summary_cut);
    tcase_add_test(tc, test_slack_firing);
    tcase_add_test(tc, test_slack_severity);
    tcase_add_test(tc, test_slack_who_and_url);
    tcase_add_test(tc, test_slack_limits);
    tcase_add_test(tc, test_pagerduty_trigger);
    tcase_add_test(tc, test_pagerduty_severity);
    tcase_add_test(tc, test_pagerduty_events);
    tcase_add_test(tc, test_pagerduty_summary_cut);
    tcase_add_test(tc, test_webhook_tokentap);
    tcase_add_test(tc, test_webhook_alertmanager);
    tcase_add_test(tc, test_alertmanager_labels);
    tcase_add_test(tc, test_email_text);
    tcase_add_test(tc, test_email_html_escaped);
    tcase_add_test(tc, test_email_subject_one_line);
    tcase_add_test(tc, test_null_json_members);
    tcase_add_test(tc, test_not_utf8);
    tcase_add_test(tc, test_sign);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(notify_fmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
