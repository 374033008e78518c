/*
 * check_channel.c: unit tests for notification channels' configs
 * (common/channel.h): the type names, each type's minimal and full config
 * with its defaults, every kind of bad field with its path and message,
 * the limits, the redacted form of each secret, channel_url_redact, and
 * updates: the redacted form sent back keeps the stored secrets, a field
 * changed alone leaves them be, a redacted value with nothing stored
 * behind it is refused, and so is a stored secret, redacted or left out,
 * once the update sends to another scheme, host or port.
 *
 * Every secret in these configs holds the word "SECRET" (and a number to
 * tell them apart), so that a test can assert that no message and no
 * redacted config ever shows one.  Configs are written in C strings with '
 * for " (see load()).  Every test frees what it allocates, so the suite
 * can run under LeakSanitizer.
 */
#include "checkjson.h"
#include "channel.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Minimal valid configs of each type, plus extra members x. */
#define EMAIL(x)                                                               \
    "{'smtp_url':'smtp://mail.example.com','from':'alerts@example.com',"       \
    "'to':['ops@example.com']" x "}"
#define EMAIL_TO(l)                                                            \
    "{'smtp_url':'smtp://mail.example.com','from':'alerts@example.com',"       \
    "'to':" l "}"
/* EMAIL_FULL's destination with its other fields left out but x. */
#define EMAIL_587(x)                                                           \
    "{'smtp_url':'smtp://mail.example.com:587','from':'alerts@example.com',"   \
    "'to':['ops@example.com']" x "}"
#define SLACK(x)                                                               \
    "{'webhook_url':'https://hooks.slack.com/services/T0/B0/slk-SECRET-1'" x "}"
#define PD(x)   "{'routing_key':'rk-SECRET-2'" x "}"
#define HOOK(x) "{'url':'https://hook.example.com/in'" x "}"

/* Full configs of each type: every field set, every secret present. */
#define EMAIL_FULL                                                             \
    "{'smtp_url':'smtp://mail.example.com:587','starttls':false,"              \
    "'username':'bob','password':'pw-SECRET-20','from':'alerts@example.com',"  \
    "'to':['ops@example.com','oncall@example.org'],'timeout_ms':5000,"         \
    "'min_interval_ms':60000}"
#define SLACK_FULL                                                             \
    "{'webhook_url':'https://hooks.slack.com/services/T1/B1/slk-SECRET-21',"   \
    "'timeout_ms':2000,'min_interval_ms':0}"
#define PD_FULL                                                                \
    "{'routing_key':'rk-SECRET-22','events_url':"                              \
    "'https://events.eu.pagerduty.com/v2/enqueue','timeout_ms':60000,"         \
    "'min_interval_ms':3600000}"
#define HOOK_FULL                                                              \
    "{'url':'https://wu:wp-SECRET-23@hook.example.com:8443/in?t=q-SECRET-24'," \
    "'secret':'sig-SECRET-25','headers':{'Authorization':'Bearer "             \
    "hv-SECRET-26','X-Team':'hv-SECRET-27'},'format':'alertmanager',"          \
    "'timeout_ms':1000,'min_interval_ms':500}"

/* Assert that a and b are equal JSON, printing both when not. */
static void assert_json_eq(const json_t *a, const json_t *b)
{
    if (!json_equal(a, b)) {
        char *sa = json_dumps(a, JSON_SORT_KEYS);
        char *sb = json_dumps(b, JSON_SORT_KEYS);
        ck_abort_msg("%s != %s", sa, sb);
    }
}

/* Assert that the text of j does not hold "SECRET" anywhere. */
static void assert_no_secret(const json_t *j)
{
    char *s = json_dumps(j, JSON_SORT_KEYS);
    ck_assert_ptr_nonnull(s);
    ck_assert_lacks(s, "SECRET");
    free(s);
}

/* Check in (released) as a type-t config over prev; it must pass.
 * Returns the config to store. */
static json_t *check_json_ok(int t, json_t *in, const json_t *prev)
{
    char path[256] = "", msg[512] = "";
    json_t *out = NULL;
    ck_assert_ptr_nonnull(in);
    int rc = channel_config_check(t, in, prev, &out, path, sizeof(path), msg,
                                  sizeof(msg));
    json_decref(in);
    ck_assert_msg(rc == 0, "rejected at %s: %s", path, msg);
    ck_assert_ptr_nonnull(out);
    return out;
}

static json_t *check_ok(int t, const char *in, const json_t *prev)
{
    return check_json_ok(t, load(in), prev);
}

/* Check in (released) as a type-t config over prev; it must fail at path
 * with a message that names path, contains ", got <got>" and says (each
 * when not NULL), and never contains "SECRET". */
static void check_json_bad(int t, json_t *in, const json_t *prev,
                           const char *path, const char *got, const char *says)
{
    char p[256] = "", msg[512] = "", g[256];
    json_t *out = (json_t *)&out; /* must come back NULL */
    ck_assert_ptr_nonnull(in);
    int rc =
        channel_config_check(t, in, prev, &out, p, sizeof(p), msg, sizeof(msg));
    json_decref(in);
    ck_assert_msg(rc == -1, "accepted, expected an error at %s", path);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(p, path);
    ck_assert_contains(msg, path);
    if (got != NULL) {
        snprintf(g, sizeof(g), ", got %s", got);
        ck_assert_contains(msg, g);
    }
    if (says != NULL)
        ck_assert_contains(msg, says);
    ck_assert_lacks(msg, "SECRET");
}

static void check_bad(int t, const char *in, const json_t *prev,
                      const char *path, const char *got, const char *says)
{
    check_json_bad(t, load(in), prev, path, got, says);
}

/* The config text with member key set to a string of n copies of c. */
static json_t *with_long(const char *base, const char *key, size_t n, char c)
{
    json_t *in = load(base);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    json_object_set_new(in, key, json_string(s));
    free(s);
    return in;
}

/* ---- names ---- */

START_TEST(test_type_names)
{
    static const char *const names[] = {"email", "slack", "pagerduty",
                                        "webhook", "in_app"};
    for (int t = 0; t < CH_NTYPES; t++) {
        ck_assert_str_eq(channel_type_name(t), names[t]);
        ck_assert_int_eq(channel_type_parse(names[t]), t);
    }
    ck_assert_ptr_null(channel_type_name(-1));
    ck_assert_ptr_null(channel_type_name(CH_NTYPES));
    ck_assert_int_eq(channel_type_parse("Email"), -1);
    ck_assert_int_eq(channel_type_parse("sms"), -1);
    ck_assert_int_eq(channel_type_parse(""), -1);
    ck_assert_int_eq(channel_type_parse(NULL), -1);
}
END_TEST

/* ---- valid configs and defaults ---- */

/* Each type's minimal config comes back with every default filled in. */
START_TEST(test_minimal_defaults)
{
    static const struct {
        int t;
        const char *in, *want;
    } cases[] = {
        {CH_EMAIL, EMAIL(""),
         "{'smtp_url':'smtp://mail.example.com','starttls':true,"
         "'from':'alerts@example.com','to':['ops@example.com'],"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_EMAIL,
         "{'smtp_url':'smtps://mail.example.com','from':'a@example.com',"
         "'to':['b@example.com']}",
         "{'smtp_url':'smtps://mail.example.com','from':'a@example.com',"
         "'to':['b@example.com'],'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_SLACK, SLACK(""),
         "{'webhook_url':'https://hooks.slack.com/services/T0/B0/"
         "slk-SECRET-1','timeout_ms':10000,'min_interval_ms':1000}"},
        {CH_PAGERDUTY, PD(""),
         "{'routing_key':'rk-SECRET-2','events_url':"
         "'https://events.pagerduty.com/v2/enqueue','timeout_ms':10000,"
         "'min_interval_ms':0}"},
        {CH_WEBHOOK, HOOK(""),
         "{'url':'https://hook.example.com/in','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_IN_APP, "{}", "{'timeout_ms':10000,'min_interval_ms':0}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = check_ok(cases[i].t, cases[i].in, NULL);
        json_t *want = load(cases[i].want);
        assert_json_eq(out, want);
        json_decref(out);
        json_decref(want);
    }
}
END_TEST

/* Each type's full config is stored as sent (header names keep their
 * case, URLs are not rewritten). */
START_TEST(test_full_configs)
{
    static const struct {
        int t;
        const char *in;
    } cases[] = {{CH_EMAIL, EMAIL_FULL},
                 {CH_SLACK, SLACK_FULL},
                 {CH_PAGERDUTY, PD_FULL},
                 {CH_WEBHOOK, HOOK_FULL},
                 {CH_IN_APP, "{'timeout_ms':1000,'min_interval_ms':3600000}"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = check_ok(cases[i].t, cases[i].in, NULL);
        json_t *want = load(cases[i].in);
        assert_json_eq(out, want);
        json_decref(out);
        json_decref(want);
    }
}
END_TEST

/* Values at the edges of their ranges, and the shapes accepted. */
START_TEST(test_edges_accepted)
{
    static const struct {
        int t;
        const char *in, *key, *want;
    } cases[] = {
        {CH_IN_APP, "{'timeout_ms':1000}", "timeout_ms", "1000"},
        {CH_IN_APP, "{'timeout_ms':60000}", "timeout_ms", "60000"},
        {CH_IN_APP, "{'timeout_ms':2500.0}", "timeout_ms", "2500"},
        {CH_SLACK, SLACK(",'min_interval_ms':0"), "min_interval_ms", "0"},
        {CH_IN_APP, "{'min_interval_ms':3600000}", "min_interval_ms",
         "3600000"},
        {CH_EMAIL, EMAIL(",'starttls':false"), "starttls", "false"},
        {CH_EMAIL, EMAIL(",'username':'bob'"), "username", "'bob'"},
        {CH_EMAIL, EMAIL(",'password':null,'username':'u'"), "password", NULL},
        {CH_EMAIL,
         "{'smtp_url':'SMTP://[2001:db8::1]:25/','from':'a.b+c@x-y.example',"
         "'to':['root@localhost']}",
         "from", "'a.b+c@x-y.example'"},
        {CH_PAGERDUTY,
         "{'routing_key':'0123456789abcdef0123456789abcdef0123456789abcdef"
         "0123456789abcdef'}",
         "timeout_ms", "10000"},
        {CH_PAGERDUTY, PD(",'events_url':'http://127.0.0.1:8080/enqueue?x=1'"),
         "events_url", "'http://127.0.0.1:8080/enqueue?x=1'"},
        {CH_WEBHOOK, HOOK(",'headers':{}"), "headers", NULL},
        {CH_WEBHOOK, HOOK(",'headers':null,'secret':null"), "secret", NULL},
        {CH_WEBHOOK, HOOK(",'headers':{'X-Tab':'a\\tb'}"), "headers",
         "{'X-Tab':'a\\tb'}"},
        {CH_WEBHOOK, HOOK(",'format':'tokentap'"), "format", "'tokentap'"},
        {CH_WEBHOOK, "{'url':'HTTP://Hook.Example.com'}", "url",
         "'HTTP://Hook.Example.com'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = check_ok(cases[i].t, cases[i].in, NULL);
        json_t *got = json_object_get(out, cases[i].key);
        if (cases[i].want == NULL) {
            ck_assert_msg(got == NULL, "case %zu: %s is set", i, cases[i].key);
        } else {
            char text[160];
            snprintf(text, sizeof(text), "[%s]", cases[i].want);
            json_t *want = load(text);
            json_t *have = json_pack("[O]", got);
            assert_json_eq(have, want);
            json_decref(want);
            json_decref(have);
        }
        json_decref(out);
    }
}
END_TEST

/* ---- bad configs ---- */

struct bad_case {
    int t;
    const char *in;
    const char *path; /* the path of the bad field */
    const char *got;  /* the message's ", got ..." (NULL: not checked) */
    const char *says; /* a part of the message (NULL: not checked) */
};

static const struct bad_case bad_cases[] = {
    /* every type */
    {CH_IN_APP, "[1]", "config", "an array", "must be a JSON object"},
    {CH_IN_APP, "{'foo':1}", "config.foo", NULL,
     "is not a field of an in_app channel"},
    {CH_SLACK, SLACK(",'to':['a@example.com']"), "config.to", NULL,
     "is not a field of a slack channel"},
    {CH_EMAIL, EMAIL(",'url':'https://x.example'"), "config.url", NULL,
     "is not a field of an email channel"},
    {CH_WEBHOOK, HOOK(",'routing_key':'x'"), "config.routing_key", NULL,
     "a webhook channel"},
    {CH_PAGERDUTY, PD(",'Timeout_ms':1000"), "config.Timeout_ms", NULL,
     "is not a field of a pagerduty channel"},
    {CH_IN_APP, "{'timeout_ms':999}", "config.timeout_ms", "999",
     "must be an integer from 1000 to 60000"},
    {CH_IN_APP, "{'timeout_ms':60001}", "config.timeout_ms", "60001", NULL},
    {CH_IN_APP, "{'timeout_ms':'10000'}", "config.timeout_ms", "\"10000\"",
     NULL},
    {CH_IN_APP, "{'timeout_ms':1500.5}", "config.timeout_ms", "1500.5", NULL},
    {CH_IN_APP, "{'timeout_ms':null}", "config.timeout_ms", "null", NULL},
    {CH_IN_APP, "{'min_interval_ms':-1}", "config.min_interval_ms", "-1",
     "from 0 to 3600000"},
    {CH_SLACK, SLACK(",'min_interval_ms':3600001"), "config.min_interval_ms",
     "3600001", NULL},
    {CH_IN_APP, "{'min_interval_ms':true}", "config.min_interval_ms", "true",
     NULL},
    /* email */
    {CH_EMAIL, "{'from':'a@example.com','to':['b@example.com']}",
     "config.smtp_url", NULL, "is required"},
    {CH_EMAIL, "{'smtp_url':42,'from':'a@example.com','to':['b@example.com']}",
     "config.smtp_url", "42", "must be a string"},
    {CH_EMAIL,
     "{'smtp_url':'https://mail.example.com','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"https://mail.example.com\"",
     "must be an smtp:// or smtps:// URL"},
    {CH_EMAIL,
     "{'smtp_url':'mail.example.com','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"mail.example.com\"", "is not a valid URL"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com/x','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"smtp://mail.example.com/x\"", "without a path"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com?a=1','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", NULL, "without a path or query"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com#f','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", NULL, "#fragment"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com:0','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", NULL, "has port 0"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com:99999','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"smtp://mail.example.com:99999\"",
     "is not a valid URL"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail example.com','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"smtp://mail example.com\"", "contains a space"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://mail.example.com\\r\\n','from':'a@example.com',"
     "'to':['b@example.com']}",
     "config.smtp_url", "\"smtp://mail.example.com\\u000d\\u000a\"",
     "line break"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://u:pw-SECRET-3@mail.example.com',"
     "'from':'a@example.com','to':['b@example.com']}",
     "config.smtp_url", "\"smtp://********@mail.example.com/\"",
     "must not hold a user name or password"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://u:pw-SECRET-4 @mail.example.com',"
     "'from':'a@example.com','to':['b@example.com']}",
     "config.smtp_url", NULL, "contains a space"},
    {CH_EMAIL, EMAIL(",'starttls':'yes'"), "config.starttls", "\"yes\"",
     "must be true or false"},
    {CH_EMAIL,
     "{'smtp_url':'smtps://mail.example.com','starttls':true,"
     "'from':'a@example.com','to':['b@example.com']}",
     "config.starttls", NULL, "applies only to smtp://"},
    {CH_EMAIL, EMAIL(",'username':'bob\\r\\nX'"), "config.username",
     "\"bob\\u000d\\u000aX\"", "line break"},
    {CH_EMAIL, EMAIL(",'username':''"), "config.username", NULL,
     "must not be empty"},
    {CH_EMAIL, EMAIL(",'username':5"), "config.username", "5",
     "must be a string"},
    {CH_EMAIL, EMAIL(",'username':'a\\u0000b'"), "config.username",
     "\"a\\u0000b\"", "contains a NUL byte"},
    {CH_EMAIL, EMAIL(",'password':'pw-SECRET-5'"), "config.username", NULL,
     "is required with a password"},
    {CH_EMAIL, EMAIL(",'username':'u','password':12345"), "config.password",
     "a number", "must be a string"},
    {CH_EMAIL, EMAIL(",'username':'u','password':''"), "config.password", NULL,
     "must not be empty"},
    {CH_EMAIL, EMAIL(",'username':'u','password':'pw-SECRET-6\\u0000x'"),
     "config.password", NULL, "contains a NUL byte"},
    {CH_EMAIL, EMAIL(",'username':'u','password':'********'"),
     "config.password", NULL, "is redacted: send the secret itself"},
    {CH_EMAIL, "{'smtp_url':'smtp://m.example.com','to':['b@example.com']}",
     "config.from", NULL, "is required"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://m.example.com','from':'Alerts <a@example.com>',"
     "'to':['b@example.com']}",
     "config.from", "\"Alerts <a@example.com>\"", "plain address"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://m.example.com','from':'a@example.com\\r\\nBcc: "
     "e@example.com','to':['b@example.com']}",
     "config.from", NULL, "plain address"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://m.example.com','from':['a@example.com'],"
     "'to':['b@example.com']}",
     "config.from", "an array", NULL},
    {CH_EMAIL, "{'smtp_url':'smtp://m.example.com','from':'a@example.com'}",
     "config.to", NULL, "is required"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://m.example.com','from':'a@example.com','to':[]}",
     "config.to", NULL, "must be an array of 1 to 20 addresses"},
    {CH_EMAIL,
     "{'smtp_url':'smtp://m.example.com','from':'a@example.com',"
     "'to':'b@example.com'}",
     "config.to", "\"b@example.com\"", "must be an array"},
    {CH_EMAIL, EMAIL_TO("['ops@example.com','x y@example.com']"),
     "config.to[1]", "\"x y@example.com\"", "plain address"},
    {CH_EMAIL, EMAIL_TO("['ops@example.com','a@example.com,b@example.com']"),
     "config.to[1]", NULL, "plain address"},
    {CH_EMAIL, EMAIL_TO("['ops@example.com','example.com']"), "config.to[1]",
     "\"example.com\"", NULL},
    {CH_EMAIL, EMAIL_TO("['@example.com']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@@example.com']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@b@example.com']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@example..com']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@.example.com']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@example.com.']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['']"), "config.to[0]", "\"\"", NULL},
    {CH_EMAIL, EMAIL_TO("['<a@example.com>']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@example.com\\n']"), "config.to[0]", NULL, NULL},
    {CH_EMAIL, EMAIL_TO("['a@ex\\u0000ample.com']"), "config.to[0]", NULL,
     "contains a NUL byte"},
    {CH_EMAIL, EMAIL_TO("['ops@example.com',7]"), "config.to[1]", "7", NULL},
    /* slack */
    {CH_SLACK, "{}", "config.webhook_url", NULL, "is required"},
    {CH_SLACK, "{'webhook_url':5}", "config.webhook_url", "a number",
     "must be a string"},
    {CH_SLACK, "{'webhook_url':'ftp://hooks.slack.com/services/slk-SECRET-7'}",
     "config.webhook_url", "\"ftp://hooks.slack.com/********\"",
     "must be an http:// or https:// URL"},
    {CH_SLACK, "{'webhook_url':'https://hooks.slack.com/slk-SECRET-8 x'}",
     "config.webhook_url", NULL, "contains a space"},
    {CH_SLACK, "{'webhook_url':'https://hooks.slack.com/slk-SECRET-9#f'}",
     "config.webhook_url", "\"https://hooks.slack.com/********\"", "#fragment"},
    {CH_SLACK, "{'webhook_url':'https://hooks.slack.com:99999/slk-SECRET-10'}",
     "config.webhook_url", NULL, "is not a valid URL"},
    {CH_SLACK, "{'webhook_url':'https://hooks.slack.com/********'}",
     "config.webhook_url", NULL, "is redacted: send the URL itself"},
    /* pagerduty */
    {CH_PAGERDUTY, "{}", "config.routing_key", NULL, "is required"},
    {CH_PAGERDUTY, "{'routing_key':null}", "config.routing_key", NULL,
     "is required"},
    {CH_PAGERDUTY, "{'routing_key':'rk SECRET-11'}", "config.routing_key", NULL,
     "must be printable ASCII without spaces"},
    {CH_PAGERDUTY, "{'routing_key':'rk-SECRET-12\\u00e9'}",
     "config.routing_key", NULL, "printable ASCII"},
    {CH_PAGERDUTY, "{'routing_key':'rk-SECRET-13\\n'}", "config.routing_key",
     NULL, "line break"},
    {CH_PAGERDUTY, "{'routing_key':''}", "config.routing_key", NULL,
     "must not be empty"},
    {CH_PAGERDUTY, "{'routing_key':424242}", "config.routing_key", "a number",
     NULL},
    {CH_PAGERDUTY, "{'routing_key':'********'}", "config.routing_key", NULL,
     "is redacted"},
    {CH_PAGERDUTY, PD(",'events_url':'ftp://events.pagerduty.com/'"),
     "config.events_url", "\"ftp://events.pagerduty.com/\"",
     "must be an http:// or https:// URL"},
    {CH_PAGERDUTY, PD(",'events_url':'https://u:p@events.pagerduty.com/'"),
     "config.events_url", "\"https://********@events.pagerduty.com/\"",
     "must not hold a user name or password"},
    {CH_PAGERDUTY, PD(",'events_url':''"), "config.events_url", "\"\"",
     "is not a valid URL"},
    /* webhook */
    {CH_WEBHOOK, "{}", "config.url", NULL, "is required"},
    {CH_WEBHOOK, "{'url':'gopher://hook.example.com'}", "config.url",
     "\"gopher://hook.example.com\"", "must be an http:// or https:// URL"},
    {CH_WEBHOOK, "{'url':'https://hook.example.com/in#x'}", "config.url", NULL,
     "#fragment"},
    {CH_WEBHOOK,
     "{'url':'https://wu:wp-SECRET-14@hook.example.com/in?t=q-SECRET-15 '}",
     "config.url", NULL, "contains a space"},
    {CH_WEBHOOK,
     "{'url':'ftp://wu:wp-SECRET-16@hook.example.com/p-SECRET-18?t=q-SECRET-"
     "17'}",
     "config.url", "\"ftp://********@hook.example.com/********?********\"",
     "must be an http:// or https:// URL"},
    {CH_WEBHOOK, "{'url':'https://********@hook.example.com/in'}", "config.url",
     "\"https://********@hook.example.com/********\"",
     "is redacted: send the URL itself"},
    {CH_WEBHOOK, "{'url':'https://hook.example.com/********'}", "config.url",
     "\"https://hook.example.com/********\"",
     "is redacted: send the URL itself"},
    {CH_WEBHOOK, "{'url':'https://u:********@hook.example.com/in'}",
     "config.url", NULL, "is redacted"},
    {CH_WEBHOOK, "{'url':'https://hook.example.com/in?********'}", "config.url",
     NULL, "is redacted"},
    {CH_WEBHOOK, HOOK(",'secret':7"), "config.secret", "a number",
     "must be a string"},
    {CH_WEBHOOK, HOOK(",'secret':''"), "config.secret", NULL,
     "must not be empty"},
    {CH_WEBHOOK, HOOK(",'secret':'sig\\u0000-SECRET-18'"), "config.secret",
     NULL, "contains a NUL byte"},
    {CH_WEBHOOK, HOOK(",'secret':'********'"), "config.secret", NULL,
     "is redacted: send the secret itself"},
    {CH_WEBHOOK, HOOK(",'headers':['X-A: 1']"), "config.headers", "an array",
     "must be an object"},
    {CH_WEBHOOK, HOOK(",'headers':{'Host':'evil.example'}"),
     "config.headers.Host", NULL, "is set by tokentap"},
    {CH_WEBHOOK, HOOK(",'headers':{'content-type':'text/plain'}"),
     "config.headers.content-type", NULL, "is set by tokentap"},
    {CH_WEBHOOK, HOOK(",'headers':{'CONTENT-LENGTH':'1'}"),
     "config.headers.CONTENT-LENGTH", NULL, "is set by tokentap"},
    {CH_WEBHOOK, HOOK(",'headers':{'Transfer-Encoding':'chunked'}"),
     "config.headers.Transfer-Encoding", NULL, "is set by tokentap"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Tokentap-Signature':'x'}"),
     "config.headers.X-Tokentap-Signature", NULL, "is set by tokentap"},
    {CH_WEBHOOK, HOOK(",'headers':{'X Team':'x'}"), "config.headers.X Team",
     "\"X Team\"", "is not a header name"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Team:':'x'}"),
     "config.headers.X-Team:", NULL, "is not a header name"},
    {CH_WEBHOOK, HOOK(",'headers':{'':'x'}"), "config.headers.", "\"\"",
     "is not a header name"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-\\r\\nA':'x'}"), "config.headers.X-??A",
     "\"X-\\u000d\\u000aA\"", "is not a header name"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-A':'1','x-a':'2'}"), "config.headers.X-A",
     NULL, "repeats a header name"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Team':'hv-SECRET-19\\r\\nX-Evil: 1'}"),
     "config.headers.X-Team", NULL, "line break"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Team':424242}"), "config.headers.X-Team",
     "a number", "must be a string"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Team':''}"), "config.headers.X-Team",
     NULL, "must not be empty"},
    {CH_WEBHOOK, HOOK(",'headers':{'X-Team':'********'}"),
     "config.headers.X-Team", NULL, "is redacted: send the value itself"},
    {CH_WEBHOOK, HOOK(",'format':'json'"), "config.format", "\"json\"",
     "must be \"tokentap\" or \"alertmanager\""},
    {CH_WEBHOOK, HOOK(",'format':1"), "config.format", "1", NULL},
    {CH_WEBHOOK, HOOK(",'format':null"), "config.format", "null", NULL},
};

START_TEST(test_bad_config)
{
    const struct bad_case *b = &bad_cases[_i];
    check_bad(b->t, b->in, NULL, b->path, b->got, b->says);
}
END_TEST

/* Numbers never show in the message of a secret: they might be one. */
START_TEST(test_bad_secret_numbers_unquoted)
{
    static const struct {
        int t;
        const char *in, *path;
    } cases[] = {
        {CH_EMAIL, EMAIL(",'username':'u','password':987654"),
         "config.password"},
        {CH_PAGERDUTY, "{'routing_key':987654}", "config.routing_key"},
        {CH_WEBHOOK, HOOK(",'secret':987654"), "config.secret"},
        {CH_WEBHOOK, HOOK(",'headers':{'X-Pin':987654}"),
         "config.headers.X-Pin"},
        {CH_SLACK, "{'webhook_url':987654}", "config.webhook_url"},
        {CH_WEBHOOK, "{'url':987654}", "config.url"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char p[256], msg[512];
        json_t *out;
        json_t *in = load(cases[i].in);
        ck_assert_int_eq(channel_config_check(cases[i].t, in, NULL, &out, p,
                                              sizeof(p), msg, sizeof(msg)),
                         -1);
        json_decref(in);
        ck_assert_str_eq(p, cases[i].path);
        ck_assert_lacks(msg, "987654");
        ck_assert_contains(msg, "got a number");
    }
}
END_TEST

START_TEST(test_bad_type)
{
    char p[64], msg[256];
    json_t *in = json_object(), *out = in;
    ck_assert_int_eq(channel_config_check(CH_NTYPES, in, NULL, &out, p,
                                          sizeof(p), msg, sizeof(msg)),
                     -1);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(p, "type");
    ck_assert_contains(msg, "is not a channel type");
    ck_assert_int_eq(
        channel_config_check(-1, in, NULL, &out, p, sizeof(p), msg, 0), -1);
    ck_assert_int_eq(channel_config_check(CH_IN_APP, NULL, NULL, &out, p,
                                          sizeof(p), msg, sizeof(msg)),
                     -1);
    ck_assert_str_eq(p, "config");
    /* No room for a path or message: still an error, nothing written. */
    ck_assert_int_eq(
        channel_config_check(CH_WEBHOOK, in, NULL, &out, NULL, 0, NULL, 0), -1);
    ck_assert_ptr_null(out);
    json_decref(in);
}
END_TEST

/* A field name holding a NUL byte is not the field before the NUL. */
START_TEST(test_nul_in_field_name)
{
#if JANSSON_VERSION_HEX >= 0x020e00
    json_t *in = json_object();
    json_object_setn_new(in, "timeout_ms\0x", 12, json_integer(5000));
    check_json_bad(CH_IN_APP, in, NULL, "config.timeout_ms?x", NULL,
                   "is not a field");
    in = load(HOOK(""));
    json_t *h = json_object();
    json_object_setn_new(h, "X-A\0B", 5, json_string("v"));
    json_object_set_new(in, "headers", h);
    check_json_bad(CH_WEBHOOK, in, NULL, "config.headers.X-A?B", NULL,
                   "is not a header name");
#endif
}
END_TEST

/* Every size limit: at the limit passes, one past fails. */
START_TEST(test_limits)
{
    json_t *out, *in;
    char name[160], key[200];

    in = with_long(EMAIL(",'password':'x'"), "username", 256, 'u');
    json_decref(check_json_ok(CH_EMAIL, in, NULL));
    in = with_long(EMAIL(",'password':'x'"), "username", 257, 'u');
    check_json_bad(CH_EMAIL, in, NULL, "config.username", NULL,
                   "is longer than 256 bytes");

    in = with_long(EMAIL(",'username':'u'"), "password", 256, 'p');
    json_decref(check_json_ok(CH_EMAIL, in, NULL));
    in = with_long(EMAIL(",'username':'u'"), "password", 257, 'p');
    check_json_bad(CH_EMAIL, in, NULL, "config.password", NULL,
                   "is longer than 256 bytes");

    in = with_long(HOOK(""), "secret", 256, 's');
    json_decref(check_json_ok(CH_WEBHOOK, in, NULL));
    in = with_long(HOOK(""), "secret", 257, 's');
    check_json_bad(CH_WEBHOOK, in, NULL, "config.secret", NULL,
                   "is longer than 256 bytes");

    in = with_long("{}", "routing_key", 64, 'k');
    json_decref(check_json_ok(CH_PAGERDUTY, in, NULL));
    in = with_long("{}", "routing_key", 65, 'k');
    check_json_bad(CH_PAGERDUTY, in, NULL, "config.routing_key", NULL,
                   "is longer than 64 bytes");

    /* URLs: 2048 bytes in all. */
    for (int over = 0; over <= 1; over++) {
        char *u = malloc(2050);
        ck_assert_ptr_nonnull(u);
        size_t n = (size_t)snprintf(u, 2050, "https://hook.example.com/");
        memset(u + n, 'p', 2048 + (size_t)over - n);
        u[2048 + over] = '\0';
        in = json_pack("{s:s}", "url", u);
        free(u);
        if (over)
            check_json_bad(CH_WEBHOOK, in, NULL, "config.url", NULL,
                           "is longer than 2048 bytes");
        else
            json_decref(check_json_ok(CH_WEBHOOK, in, NULL));
    }

    /* Addresses: 254 bytes. */
    for (int over = 0; over <= 1; over++) {
        char a[300];
        memset(a, 'a', sizeof(a));
        memcpy(a + 254 + over - 12, "@example.com", 13);
        in = load(EMAIL(""));
        json_object_set_new(in, "from", json_string(a));
        if (over)
            check_json_bad(CH_EMAIL, in, NULL, "config.from", NULL,
                           "is longer than 254 bytes");
        else
            json_decref(check_json_ok(CH_EMAIL, in, NULL));
    }

    /* Recipients: 20. */
    in = load(EMAIL(""));
    json_t *to = json_object_get(in, "to");
    for (int i = 1; i < 20; i++) {
        snprintf(name, sizeof(name), "r%d@example.com", i);
        json_array_append_new(to, json_string(name));
    }
    out = check_json_ok(CH_EMAIL, json_incref(in), NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(out, "to")), 20);
    json_decref(out);
    json_array_append_new(to, json_string("r20@example.com"));
    check_json_bad(CH_EMAIL, in, NULL, "config.to", NULL, "1 to 20");

    /* Headers: 20, names of 128 bytes, values of 1024 bytes. */
    in = load(HOOK(""));
    json_t *h = json_object();
    json_object_set_new(in, "headers", h);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "X-H%d", i);
        json_object_set_new(h, name, json_string("v"));
    }
    json_decref(check_json_ok(CH_WEBHOOK, json_incref(in), NULL));
    json_object_set_new(h, "X-H20", json_string("v"));
    check_json_bad(CH_WEBHOOK, in, NULL, "config.headers", NULL,
                   "more than 20 headers");

    for (int over = 0; over <= 1; over++) {
        memset(name, 'N', sizeof(name));
        name[128 + over] = '\0';
        in = load(HOOK(""));
        json_object_set_new(in, "headers", json_pack("{s:s}", name, "v"));
        snprintf(key, sizeof(key), "config.headers.%.64s...", name);
        if (over)
            check_json_bad(CH_WEBHOOK, in, NULL, key, NULL,
                           "is not a header name");
        else
            json_decref(check_json_ok(CH_WEBHOOK, in, NULL));
    }
    for (int over = 0; over <= 1; over++) {
        in = with_long("{}", "X-Big", 1024 + (size_t)over, 'v');
        json_t *hs = in;
        in = load(HOOK(""));
        json_object_set_new(in, "headers", hs);
        if (over)
            check_json_bad(CH_WEBHOOK, in, NULL, "config.headers.X-Big", NULL,
                           "is longer than 1024 bytes");
        else
            json_decref(check_json_ok(CH_WEBHOOK, in, NULL));
    }
}
END_TEST

/* ---- redaction ---- */

START_TEST(test_url_redact)
{
    static const struct {
        const char *url;
        int path_secret;
        const char *want; /* NULL: does not parse */
    } cases[] = {
        {"https://hooks.slack.com/services/T0/B0/xyz", 1,
         "https://hooks.slack.com/********"},
        {"https://hooks.slack.com/services/T0/B0/xyz", 0,
         "https://hooks.slack.com/services/T0/B0/xyz"},
        {"https://u:p@hook.example.com:8443/in?t=1#frag", 0,
         "https://********@hook.example.com:8443/in?********"},
        {"https://u@hook.example.com/in", 0,
         "https://********@hook.example.com/in"},
        {"https://u:p@hook.example.com/in?t=1", 1,
         "https://********@hook.example.com/********?********"},
        {"https://hook.example.com/in#frag", 0, "https://hook.example.com/in"},
        {"https://hook.example.com", 1, "https://hook.example.com/"},
        {"https://hook.example.com/?", 0, "https://hook.example.com/"},
        {"http://[2001:db8::1]:8080/x?y", 0,
         "http://[2001:db8::1]:8080/x?********"},
        {"smtp://user:pw@mail.example.com:587", 0,
         "smtp://********@mail.example.com:587/"},
        {"https://hook.example.com/a b", 0, NULL},
        {"hook.example.com/in", 0, NULL},
        {"", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = channel_url_redact(cases[i].url, cases[i].path_secret);
        if (cases[i].want == NULL) {
            ck_assert_msg(r == NULL, "%s redacted to %s", cases[i].url, r);
        } else {
            ck_assert_msg(r != NULL, "%s does not parse", cases[i].url);
            ck_assert_str_eq(r, cases[i].want);
        }
        free(r);
    }
    ck_assert_ptr_null(channel_url_redact(NULL, 0));
}
END_TEST

/* What a reader sees of each type's full config. */
START_TEST(test_redact_each_type)
{
    static const struct {
        int t;
        const char *in, *want;
    } cases[] = {
        {CH_EMAIL, EMAIL_FULL,
         "{'smtp_url':'smtp://mail.example.com:587','starttls':false,"
         "'username':'bob','password':'********','from':'alerts@example.com',"
         "'to':['ops@example.com','oncall@example.org'],'timeout_ms':5000,"
         "'min_interval_ms':60000}"},
        {CH_EMAIL, EMAIL(""),
         "{'smtp_url':'smtp://mail.example.com','starttls':true,"
         "'from':'alerts@example.com','to':['ops@example.com'],"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_SLACK, SLACK_FULL,
         "{'webhook_url':'https://hooks.slack.com/********',"
         "'timeout_ms':2000,'min_interval_ms':0}"},
        {CH_PAGERDUTY, PD_FULL,
         "{'routing_key':'********','events_url':"
         "'https://events.eu.pagerduty.com/v2/enqueue','timeout_ms':60000,"
         "'min_interval_ms':3600000}"},
        {CH_WEBHOOK, HOOK_FULL,
         "{'url':'https://********@hook.example.com:8443/********?********',"
         "'secret':'********','headers':{'Authorization':'********',"
         "'X-Team':'********'},'format':'alertmanager','timeout_ms':1000,"
         "'min_interval_ms':500}"},
        /* The path alone is secret: Discord, Teams and Mattermost put
         * their tokens there. */
        {CH_WEBHOOK, HOOK(""),
         "{'url':'https://hook.example.com/********','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_WEBHOOK,
         "{'url':'https://discord.example.com/api/webhooks/1/tok-SECRET-37'}",
         "{'url':'https://discord.example.com/********','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        /* No secret in the URL: shown as stored; absent fields stay so. */
        {CH_WEBHOOK, "{'url':'https://Hook.Example.com'}",
         "{'url':'https://Hook.Example.com','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_WEBHOOK, "{'url':'https://hook.example.com:8443/'}",
         "{'url':'https://hook.example.com:8443/','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_WEBHOOK, "{'url':'https://wu@hook.example.com/in'}",
         "{'url':'https://********@hook.example.com/********',"
         "'format':'tokentap','timeout_ms':10000,'min_interval_ms':0}"},
        {CH_WEBHOOK, "{'url':'https://hook.example.com/?t=q-SECRET-30'}",
         "{'url':'https://hook.example.com/?********','format':'tokentap',"
         "'timeout_ms':10000,'min_interval_ms':0}"},
        {CH_IN_APP, "{}", "{'timeout_ms':10000,'min_interval_ms':0}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *stored = check_ok(cases[i].t, cases[i].in, NULL);
        json_t *r = channel_config_redact(cases[i].t, stored);
        json_t *want = load(cases[i].want);
        ck_assert_ptr_nonnull(r);
        assert_json_eq(r, want);
        assert_no_secret(r);
        /* The stored config is left alone. */
        json_t *again = check_ok(cases[i].t, cases[i].in, NULL);
        assert_json_eq(stored, again);
        json_decref(again);
        json_decref(want);
        json_decref(r);
        json_decref(stored);
    }
}
END_TEST

/* Stored configs that no check would make still show no secret. */
START_TEST(test_redact_odd_stored)
{
    json_t *stored = load("{'password':42,'headers':'Authorization: "
                          "SECRET-31','smtp_url':'smtp://u:SECRET-32@m.example"
                          ".com','url':'https://x.example/a b?SECRET-33',"
                          "'webhook_url':['SECRET-34'],'events_url':"
                          "'https://u:SECRET-35@e.example/'}");
    json_t *r = channel_config_redact(CH_IN_APP, stored);
    json_t *want = load("{'password':'********','headers':'********',"
                        "'smtp_url':'smtp://********@m.example.com/',"
                        "'url':'********','webhook_url':'********',"
                        "'events_url':'https://********@e.example/'}");
    assert_json_eq(r, want);
    json_decref(r);
    json_decref(want);
    json_decref(stored);

    r = channel_config_redact(CH_EMAIL, NULL);
    want = json_object();
    assert_json_eq(r, want);
    json_decref(r);
    json_decref(want);
}
END_TEST

/* ---- updates ---- */

static const struct {
    int t;
    const char *in;
} full_configs[] = {
    {CH_EMAIL, EMAIL_FULL},
    {CH_SLACK, SLACK_FULL},
    {CH_PAGERDUTY, PD_FULL},
    {CH_WEBHOOK, HOOK_FULL},
    {CH_WEBHOOK, "{'url':'https://hook.example.com/in?t=q-SECRET-36'}"},
    {CH_WEBHOOK, "{'url':'https://wu@hook.example.com/in'}"},
    {CH_WEBHOOK, "{'url':'https://discord.example.com/api/webhooks/1/"
                 "tok-SECRET-38','secret':'sig-SECRET-39'}"},
    {CH_WEBHOOK, "{'url':'https://hook.example.com'}"},
    {CH_EMAIL, EMAIL("")},
    {CH_IN_APP, "{}"},
};

/* The redacted config sent back as it was stores the same config. */
START_TEST(test_round_trip)
{
    int t = full_configs[_i].t;
    json_t *stored = check_ok(t, full_configs[_i].in, NULL);
    json_t *r = channel_config_redact(t, stored);
    json_t *again = check_json_ok(t, r, stored);
    assert_json_eq(again, stored);
    json_decref(again);
    /* Twice over: the second update's prev is the first's result. */
    json_t *r2 = channel_config_redact(t, stored);
    json_t *third = check_json_ok(t, r2, stored);
    assert_json_eq(third, stored);
    json_decref(third);
    json_decref(stored);
}
END_TEST

/* Secret fields left out keep the stored ones; others get defaults. */
START_TEST(test_absent_secrets_kept)
{
    json_t *stored = check_ok(CH_WEBHOOK, HOOK_FULL, NULL);
    json_t *out = check_ok(CH_WEBHOOK, "{'format':'tokentap'}", stored);
    json_t *want = load(HOOK_FULL);
    json_object_set_new(want, "format", json_string("tokentap"));
    json_object_set_new(want, "timeout_ms", json_integer(10000));
    json_object_set_new(want, "min_interval_ms", json_integer(0));
    assert_json_eq(out, want);
    json_decref(want);
    json_decref(out);
    /* null (and {} for headers) remove the optional ones. */
    out = check_ok(CH_WEBHOOK, "{'secret':null,'headers':{}}", stored);
    ck_assert_ptr_null(json_object_get(out, "secret"));
    ck_assert_ptr_null(json_object_get(out, "headers"));
    ck_assert_str_eq(json_string_value(json_object_get(out, "url")),
                     json_string_value(json_object_get(stored, "url")));
    json_decref(out);
    out = check_ok(CH_WEBHOOK, "{'headers':null}", stored);
    ck_assert_ptr_null(json_object_get(out, "headers"));
    ck_assert_ptr_nonnull(json_object_get(out, "secret"));
    json_decref(out);
    json_decref(stored);

    stored = check_ok(CH_EMAIL, EMAIL_FULL, NULL);
    out = check_ok(CH_EMAIL, EMAIL_587(",'username':'bob'"), stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "password")),
                     "pw-SECRET-20");
    json_decref(out);
    /* Dropping the user name alone leaves a password without one. */
    check_bad(CH_EMAIL, EMAIL_587(""), stored, "config.username", NULL,
              "\"password\": null");
    out = check_ok(CH_EMAIL, EMAIL_587(",'password':null"), stored);
    ck_assert_ptr_null(json_object_get(out, "password"));
    json_decref(out);
    json_decref(stored);

    /* PagerDuty on its default URL: {} keeps the key. */
    stored = check_ok(CH_PAGERDUTY, PD(""), NULL);
    out = check_ok(CH_PAGERDUTY, "{'timeout_ms':2000}", stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "routing_key")),
                     "rk-SECRET-2");
    ck_assert_str_eq(json_string_value(json_object_get(out, "events_url")),
                     "https://events.pagerduty.com/v2/enqueue");
    json_decref(out);
    check_bad(CH_PAGERDUTY, "{'routing_key':null}", stored,
              "config.routing_key", NULL, "is required");
    json_decref(stored);

    stored = check_ok(CH_SLACK, SLACK_FULL, NULL);
    out = check_ok(CH_SLACK, "{'min_interval_ms':5000}", stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "webhook_url")),
                     "https://hooks.slack.com/services/T1/B1/slk-SECRET-21");
    json_decref(out);
    json_decref(stored);
}
END_TEST

/* The redacted config with one non-secret field changed: that field
 * changes, every secret stays. */
START_TEST(test_change_one_field)
{
    static const struct {
        int t;
        const char *in, *key, *value;
    } cases[] = {
        {CH_EMAIL, EMAIL_FULL, "to", "['new@example.com']"},
        /* The URLs, to the same destination: scheme and host compare
         * without case, a default port written or not is the same. */
        {CH_EMAIL, EMAIL_FULL, "smtp_url", "'SMTP://MAIL.Example.COM:587/'"},
        {CH_SLACK, SLACK_FULL, "timeout_ms", "30000"},
        {CH_PAGERDUTY, PD_FULL, "events_url",
         "'https://events.eu.pagerduty.com:443/v2/other'"},
        {CH_WEBHOOK, HOOK_FULL, "url", "'https://HOOK.example.com:8443/v2'"},
        {CH_WEBHOOK, HOOK_FULL, "format", "'tokentap'"},
        {CH_WEBHOOK, HOOK_FULL, "min_interval_ms", "0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[160];
        json_t *stored = check_ok(cases[i].t, cases[i].in, NULL);
        json_t *r = channel_config_redact(cases[i].t, stored);
        snprintf(text, sizeof(text), "[%s]", cases[i].value);
        json_t *v = load(text);
        json_object_set(r, cases[i].key, json_array_get(v, 0));
        json_t *out = check_json_ok(cases[i].t, r, stored);
        json_t *want = json_deep_copy(stored);
        json_object_set(want, cases[i].key, json_array_get(v, 0));
        assert_json_eq(out, want);
        json_decref(want);
        json_decref(v);
        json_decref(out);
        json_decref(stored);
    }
}
END_TEST

/* New secrets replace the stored ones; headers match by name. */
START_TEST(test_change_secrets)
{
    json_t *stored = check_ok(CH_WEBHOOK, HOOK_FULL, NULL);
    json_t *out = check_ok(
        CH_WEBHOOK,
        "{'url':'https://hook.example.com:8443/v2','secret':'new-sig',"
        "'headers':{'x-team':'********','X-New':'n','Authorization':'b2'}}",
        stored);
    json_t *want =
        load("{'url':'https://hook.example.com:8443/v2','secret':'new-sig',"
             "'headers':{'x-team':'hv-SECRET-27','X-New':'n',"
             "'Authorization':'b2'},'format':'tokentap','timeout_ms':10000,"
             "'min_interval_ms':0}");
    assert_json_eq(out, want);
    json_decref(want);
    json_decref(out);

    /* A header that was not stored cannot come back redacted. */
    check_bad(CH_WEBHOOK, "{'headers':{'X-Other':'********'}}", stored,
              "config.headers.X-Other", NULL, "is redacted");
    /* The URL's redacted parts kept with another path: not the stored URL,
     * so "********" would be sent. */
    check_bad(CH_WEBHOOK,
              "{'url':'https://********@hook.example.com:8443/other?********'}",
              stored, "config.url", NULL, "is redacted: send the URL itself");
    /* A new URL with its own secrets replaces the stored one. */
    out = check_ok(CH_WEBHOOK,
                   "{'url':'https://a:b@hook.example.com:8443/x?y=1'}", stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "url")),
                     "https://a:b@hook.example.com:8443/x?y=1");
    ck_assert_str_eq(json_string_value(json_object_get(out, "secret")),
                     "sig-SECRET-25");
    json_decref(out);
    json_decref(stored);

    stored = check_ok(CH_SLACK, SLACK_FULL, NULL);
    out = check_ok(CH_SLACK, "{'webhook_url':'https://hooks.slack.com/new'}",
                   stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "webhook_url")),
                     "https://hooks.slack.com/new");
    json_decref(out);
    /* Another host's redacted form is not this one's. */
    check_bad(CH_SLACK, "{'webhook_url':'https://other.example.com/********'}",
              stored, "config.webhook_url", NULL, "is redacted");
    json_decref(stored);

    /* A secret redacted where nothing is stored (the stored config has
     * none, or is of another type). */
    stored = check_ok(CH_WEBHOOK, HOOK(""), NULL);
    check_bad(CH_WEBHOOK, HOOK(",'secret':'********'"), stored, "config.secret",
              NULL, "is redacted: send the secret itself");
    check_bad(CH_PAGERDUTY, "{'routing_key':'********'}", stored,
              "config.routing_key", NULL, "is redacted");
    json_decref(stored);
}
END_TEST

/* The redacted config of a type-t config in, with member key set to the
 * JSON text value (NULL: removed), for an update over stored. */
static json_t *redacted_with(int t, const json_t *stored, const char *key,
                             const char *value)
{
    json_t *r = channel_config_redact(t, stored);
    ck_assert_ptr_nonnull(r);
    if (value == NULL) {
        json_object_del(r, key);
    } else {
        char text[256];
        snprintf(text, sizeof(text), "[%s]", value);
        json_t *v = load(text);
        json_object_set(r, key, json_array_get(v, 0));
        json_decref(v);
    }
    return r;
}

/* An update that sends to another scheme, host or port carries no stored
 * secret over: each must come again in full, or it would go to whoever
 * changed the URL. */
START_TEST(test_new_destination)
{
    static const struct {
        int t;
        const char *stored, *key, *value; /* value NULL: left out */
        const char *path;                 /* the secret refused */
    } cases[] = {
        {CH_EMAIL, EMAIL_FULL, "smtp_url", "'smtp://evil.example.net:587'",
         "config.password"},
        {CH_EMAIL, EMAIL_FULL, "smtp_url", "'smtp://mail.example.com:2525'",
         "config.password"},
        /* No port is 25, not EMAIL_FULL's 587. */
        {CH_EMAIL, EMAIL_FULL, "smtp_url", "'smtp://mail.example.com'",
         "config.password"},
        {CH_PAGERDUTY, PD_FULL, "events_url",
         "'https://evil.example.net/v2/enqueue'", "config.routing_key"},
        {CH_PAGERDUTY, PD_FULL, "events_url",
         "'http://events.eu.pagerduty.com/v2/enqueue'", "config.routing_key"},
        /* Left out, events_url is the default: another host. */
        {CH_PAGERDUTY, PD_FULL, "events_url", NULL, "config.routing_key"},
        {CH_WEBHOOK, HOOK_FULL, "url", "'https://evil.example.net:8443/in'",
         "config.secret"},
        {CH_WEBHOOK, HOOK_FULL, "url", "'http://hook.example.com:8443/in'",
         "config.secret"},
        {CH_WEBHOOK, HOOK_FULL, "url", "'https://hook.example.com/in'",
         "config.secret"},
        {CH_WEBHOOK, HOOK_FULL, "url", "'https://hook.example.com.:8443/in'",
         "config.secret"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int t = cases[i].t;
        json_t *stored = check_ok(t, cases[i].stored, NULL);
        /* Redacted, or left out: both refused. */
        json_t *in = redacted_with(t, stored, cases[i].key, cases[i].value);
        check_json_bad(t, in, stored, cases[i].path, NULL,
                       "must be sent again: the destination changed");
        in = redacted_with(t, stored, cases[i].key, cases[i].value);
        json_object_del(in, cases[i].path + strlen("config."));
        check_json_bad(t, in, stored, cases[i].path, NULL,
                       "must be sent again: the destination changed");
        json_decref(stored);
    }

    /* The webhook's headers: redacted, then left out. */
    json_t *stored = check_ok(CH_WEBHOOK, HOOK_FULL, NULL);
    const char *url = "'https://evil.example.net/in'";
    json_t *in = redacted_with(CH_WEBHOOK, stored, "url", url);
    json_object_set_new(in, "secret", json_string("sig-new"));
    check_json_bad(CH_WEBHOOK, in, stored, "config.headers.Authorization", NULL,
                   "must be sent again");
    in = redacted_with(CH_WEBHOOK, stored, "url", url);
    json_object_set_new(in, "secret", json_string("sig-new"));
    json_object_del(in, "headers");
    check_json_bad(CH_WEBHOOK, in, stored, "config.headers", NULL,
                   "must be sent again");
    /* Every secret sent again, or removed: stored as sent. */
    json_t *out = check_ok(CH_WEBHOOK,
                           "{'url':'https://evil.example.net/in','secret':"
                           "'sig-new','headers':{'Authorization':'b-new'}}",
                           stored);
    json_t *want = load("{'url':'https://evil.example.net/in','secret':"
                        "'sig-new','headers':{'Authorization':'b-new'},"
                        "'format':'tokentap','timeout_ms':10000,"
                        "'min_interval_ms':0}");
    assert_json_eq(out, want);
    json_decref(want);
    json_decref(out);
    out = check_ok(CH_WEBHOOK,
                   "{'url':'https://evil.example.net/in','secret':null,"
                   "'headers':{}}",
                   stored);
    assert_no_secret(out);
    json_decref(out);
    json_decref(stored);

    stored = check_ok(CH_EMAIL, EMAIL_FULL, NULL);
    out = check_ok(CH_EMAIL,
                   "{'smtp_url':'smtps://evil.example.net','username':'bob',"
                   "'password':'pw-new','from':'a@example.com',"
                   "'to':['b@example.com']}",
                   stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "password")),
                     "pw-new");
    json_decref(out);
    out = check_ok(CH_EMAIL,
                   "{'smtp_url':'smtp://evil.example.net','password':null,"
                   "'from':'a@example.com','to':['b@example.com']}",
                   stored);
    assert_no_secret(out);
    json_decref(out);
    json_decref(stored);

    /* A default port written out is the same destination. */
    stored = check_ok(
        CH_EMAIL, EMAIL(",'username':'bob','password':'pw-SECRET-40'"), NULL);
    out = check_json_ok(CH_EMAIL,
                        redacted_with(CH_EMAIL, stored, "smtp_url",
                                      "'smtp://mail.example.com:25'"),
                        stored);
    ck_assert_str_eq(json_string_value(json_object_get(out, "password")),
                     "pw-SECRET-40");
    json_decref(out);
    json_decref(stored);

    /* Slack: another host's redacted form is refused, a whole URL is
     * stored as sent. */
    stored = check_ok(CH_SLACK, SLACK_FULL, NULL);
    check_json_bad(CH_SLACK,
                   redacted_with(CH_SLACK, stored, "webhook_url",
                                 "'https://evil.example.net/********'"),
                   stored, "config.webhook_url", NULL, "is redacted");
    json_decref(stored);

    /* No stored URL to compare with (a damaged config): moved. */
    stored = load("{'routing_key':'rk-SECRET-41'}");
    check_bad(CH_PAGERDUTY, "{}", stored, "config.routing_key", NULL,
              "must be sent again");
    json_decref(stored);
}
END_TEST

/* Messages on update never show the stored secrets either. */
START_TEST(test_update_messages_hide_secrets)
{
    json_t *stored = check_ok(CH_WEBHOOK, HOOK_FULL, NULL);
    check_bad(CH_WEBHOOK, "{'format':'x'}", stored, "config.format", "\"x\"",
              NULL);
    check_bad(CH_WEBHOOK, "{'url':'ftp://hook.example.com/'}", stored,
              "config.url", NULL, "http");
    check_bad(CH_WEBHOOK, "{'headers':{'Host':'********'}}", stored,
              "config.headers.Host", NULL, NULL);
    json_decref(stored);
    stored = check_ok(CH_EMAIL, EMAIL_FULL, NULL);
    check_bad(CH_EMAIL,
              "{'smtp_url':'smtp://mail.example.com:587','username':'bob',"
              "'from':'a@example.com','to':'x'}",
              stored, "config.to", "\"x\"", NULL);
    check_bad(CH_EMAIL, EMAIL_587(""), stored, "config.username", NULL, NULL);
    json_decref(stored);
}
END_TEST

static Suite *channel_suite(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_type_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("check");
    tcase_add_test(tc, test_minimal_defaults);
    tcase_add_test(tc, test_full_configs);
    tcase_add_test(tc, test_edges_accepted);
    tcase_add_loop_test(tc, test_bad_config, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_bad_secret_numbers_unquoted);
    tcase_add_test(tc, test_bad_type);
    tcase_add_test(tc, test_nul_in_field_name);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("redact");
    tcase_add_test(tc, test_url_redact);
    tcase_add_test(tc, test_redact_each_type);
    tcase_add_test(tc, test_redact_odd_stored);
    suite_add_tcase(s, tc);
    tc = tcase_create("update");
    tcase_add_loop_test(tc, test_round_trip, 0,
                        (int)(sizeof(full_configs) / sizeof(full_configs[0])));
    tcase_add_test(tc, test_absent_secrets_kept);
    tcase_add_test(tc, test_change_one_field);
    tcase_add_test(tc, test_change_secrets);
    tcase_add_test(tc, test_new_destination);
    tcase_add_test(tc, test_update_messages_hide_secrets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(channel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
