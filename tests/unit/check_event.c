/*
 * check_event.c: unit tests for the event model (common/event.c).
 *
 * Every field of an event is tested on both sides of each of its bounds,
 * with null and with the wrong JSON type; batches are tested for the
 * all-or-nothing rule and their size limit; records for their layout; RFC
 * 3339 parsing against hand-checked values and libc's timegm(); server ids
 * for their format and uniqueness across threads and across fork().  Each
 * test runs in its own process (Check's fork mode).
 */
#include "event.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The server's clock in every test: 2026-11-22T12:00:00Z. */
#define NOW 1795348800000LL
#define DAY 86400000LL

/* An event body with the two required fields and then the text x. */
#define EV(x) "{\"provider\":\"openai\",\"model\":\"gpt-4o\"," x "}"

/* Parse body (a C string) at NOW. */
static enum ev_result parse(const char *body, struct ev_batch *b,
                            struct ev_error *e)
{
    return ev_parse_body(body, strlen(body), NOW, b, e);
}

/* Parse a body that must hold exactly one valid event and return it. */
static const struct ev_rec *parse_one(const char *body, struct ev_batch *b)
{
    struct ev_error e;
    enum ev_result r = parse(body, b, &e);

    ck_assert_msg(r == EV_OK, "body %s: result %d, index %d field %s: %s", body,
                  r, e.index, e.field, e.message);
    ck_assert_uint_eq(b->count, 1);
    ck_assert_int_eq(e.index, -1);
    return ev_batch_next(b, NULL);
}

/* Parse a body that must be rejected with result want at index, naming
 * field, with a message containing msg; the batch must come back empty. */
static void parse_bad(const char *body, enum ev_result want, int index,
                      const char *field, const char *msg)
{
    struct ev_batch b;
    struct ev_error e;
    enum ev_result r = parse(body, &b, &e);

    ck_assert_msg(r == want, "body %s: result %d, want %d (%s)", body, r, want,
                  e.message);
    ck_assert_msg(e.index == index, "body %s: index %d, want %d", body, e.index,
                  index);
    if (field)
        ck_assert_str_eq(e.field, field);
    ck_assert_msg(strstr(e.message, msg) != NULL,
                  "body %s: message '%s' lacks '%s'", body, e.message, msg);
    ck_assert_ptr_null(b.buf);
    ck_assert_uint_eq(b.count, 0);
    ck_assert_uint_eq(b.len, 0);
}

/* A string of n copies of c, for length bounds; the caller frees it. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Check the layout of every record of b: aligned sizes that add up, every
 * string NUL-terminated inside its record and of its recorded length. */
static void check_layout(const struct ev_batch *b)
{
    const struct ev_rec *r = NULL;
    size_t total = 0;
    uint32_t n = 0;

    while ((r = ev_batch_next(b, r)) != NULL) {
        ck_assert_uint_eq(((const char *)r - b->buf) % 8, 0);
        ck_assert_uint_eq(r->size % 8, 0);
        ck_assert_uint_ge(r->size, sizeof(struct ev_rec));
        for (int f = 0; f < EV_NSTR; f++) {
            const char *s = ev_str(r, (enum ev_str)f);
            ck_assert_uint_ge(r->str_off[f], sizeof(struct ev_rec));
            ck_assert_uint_lt(r->str_off[f] + r->str_len[f], r->size);
            ck_assert_uint_eq(strlen(s), r->str_len[f]);
        }
        total += r->size;
        n++;
    }
    ck_assert_uint_eq(n, b->count);
    ck_assert_uint_eq(total, b->len);
}

START_TEST(test_minimal_defaults)
{
    struct ev_batch b;
    const struct ev_rec *r =
        parse_one("{\"provider\":\"openai\",\"model\":\"gpt-4o\"}", &b);

    ck_assert_str_eq(ev_str(r, EV_S_PROVIDER), "openai");
    ck_assert_str_eq(ev_str(r, EV_S_MODEL), "gpt-4o");
    ck_assert_str_eq(ev_str(r, EV_S_OPERATION), "chat");
    ck_assert_int_eq(r->ts_ms, NOW);
    ck_assert_uint_eq(r->flags, EV_F_ID_SERVER);
    ck_assert_uint_eq(r->str_len[EV_S_ID], 32);
    ck_assert_int_eq(r->input_tokens, 0);
    ck_assert_int_eq(r->output_tokens, 0);
    ck_assert_int_eq(r->cache_read_tokens, 0);
    ck_assert_int_eq(r->cache_write_tokens, 0);
    ck_assert_int_eq(r->reasoning_tokens, 0);
    for (int f = EV_S_ERROR_TYPE; f < EV_NSTR; f++) {
        ck_assert_uint_eq(r->str_len[f], 0);
        ck_assert_str_eq(ev_str(r, (enum ev_str)f), "");
    }
    ck_assert_ptr_null(ev_batch_next(&b, r));
    check_layout(&b);
    ev_batch_free(&b);
    ck_assert_ptr_null(b.buf);
    ck_assert_uint_eq(b.count, 0);
}
END_TEST

START_TEST(test_full_event)
{
    struct ev_batch b;
    const struct ev_rec *r = parse_one(
        "{\"id\":\"evt-1\",\"ts\":\"2026-11-22T10:00:00.123Z\","
        "\"provider\":\"anthropic\",\"model\":\"claude-sonnet-4-5\","
        "\"operation\":\"embeddings\",\"input_tokens\":1200,"
        "\"output_tokens\":345,\"cache_read_tokens\":1000,"
        "\"cache_write_tokens\":50,\"reasoning_tokens\":100,"
        "\"cost_usd\":0.0125,\"latency_ms\":812.5,\"ttft_ms\":120.25,"
        "\"status\":200,\"error_type\":null,\"user\":\"alice\","
        "\"agent\":\"support-bot\",\"api_key\":\"key-1\","
        "\"session\":\"sess-9\",\"round\":3,\"request_id\":\"req-abc\","
        "\"tags\":{\"team\":\"search\",\"env\":\"prod\"}}",
        &b);

    ck_assert_str_eq(ev_str(r, EV_S_ID), "evt-1");
    ck_assert_int_eq(r->ts_ms, 1795341600123LL);
    ck_assert_str_eq(ev_str(r, EV_S_PROVIDER), "anthropic");
    ck_assert_str_eq(ev_str(r, EV_S_MODEL), "claude-sonnet-4-5");
    ck_assert_str_eq(ev_str(r, EV_S_OPERATION), "embeddings");
    ck_assert_int_eq(r->input_tokens, 1200);
    ck_assert_int_eq(r->output_tokens, 345);
    ck_assert_int_eq(r->cache_read_tokens, 1000);
    ck_assert_int_eq(r->cache_write_tokens, 50);
    ck_assert_int_eq(r->reasoning_tokens, 100);
    ck_assert_double_eq(r->cost_usd, 0.0125);
    ck_assert_double_eq(r->latency_ms, 812.5);
    ck_assert_double_eq(r->ttft_ms, 120.25);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->round, 3);
    ck_assert_uint_eq(r->flags, EV_F_COST | EV_F_LATENCY | EV_F_TTFT |
                                    EV_F_STATUS | EV_F_ROUND);
    ck_assert_str_eq(ev_str(r, EV_S_ERROR_TYPE), "");
    ck_assert_str_eq(ev_str(r, EV_S_USER), "alice");
    ck_assert_str_eq(ev_str(r, EV_S_AGENT), "support-bot");
    ck_assert_str_eq(ev_str(r, EV_S_API_KEY), "key-1");
    ck_assert_str_eq(ev_str(r, EV_S_SESSION), "sess-9");
    ck_assert_str_eq(ev_str(r, EV_S_REQUEST_ID), "req-abc");
    ck_assert_str_eq(ev_str(r, EV_S_TAGS),
                     "{\"env\":\"prod\",\"team\":\"search\"}");
    check_layout(&b);
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_all_null)
{
    struct ev_batch b;
    const struct ev_rec *r = parse_one(
        EV("\"id\":null,\"ts\":null,\"operation\":null,\"input_tokens\":null,"
           "\"output_tokens\":null,\"cache_read_tokens\":null,"
           "\"cache_write_tokens\":null,\"reasoning_tokens\":null,"
           "\"cost_usd\":null,\"latency_ms\":null,\"ttft_ms\":null,"
           "\"status\":null,\"error_type\":null,\"user\":null,\"agent\":null,"
           "\"api_key\":null,\"session\":null,\"round\":null,"
           "\"request_id\":null,\"tags\":null"),
        &b);

    ck_assert_uint_eq(r->flags, EV_F_ID_SERVER);
    ck_assert_int_eq(r->ts_ms, NOW);
    ck_assert_str_eq(ev_str(r, EV_S_OPERATION), "chat");
    ck_assert_str_eq(ev_str(r, EV_S_TAGS), "");
    ck_assert_int_eq(r->input_tokens, 0);
    ev_batch_free(&b);
}
END_TEST

/* A body that must be rejected, and how. */
struct bad_case {
    const char *body;
    const char *field;
    const char *msg; /* a substring of the message */
};

/* Invalid single events: every field, each side of each bound, wrong types. */
static const struct bad_case bad_cases[] = {
    /* required fields */
    {"{\"model\":\"gpt-4o\"}", "provider", "provider is required"},
    {"{\"provider\":null,\"model\":\"gpt-4o\"}", "provider",
     "provider is required"},
    {"{\"provider\":\"openai\"}", "model", "model is required"},
    {"{\"provider\":\"openai\",\"model\":null}", "model", "model is required"},
    {"{}", "provider", "provider is required"},
    {"{\"provider\":\"\",\"model\":\"m\"}", "provider", "must not be empty"},
    {"{\"provider\":\"openai\",\"model\":\"\"}", "model", "must not be empty"},
    {"{\"provider\":\"OpenAI\",\"model\":\"m\"}", "provider", "got \"OpenAI\""},
    {"{\"provider\":\"open ai\",\"model\":\"m\"}", "provider", "lowercase"},
    {"{\"provider\":\"openai/x\",\"model\":\"m\"}", "provider", "lowercase"},
    {"{\"provider\":5,\"model\":\"m\"}", "provider",
     "provider must be a string, got 5"},
    {"{\"provider\":\"openai\",\"model\":[\"m\"]}", "model",
     "model must be a string, got an array"},
    {EV("\"model\":\"a\\u0001b\""), NULL, "JSON"}, /* duplicate key */
    /* control characters: C0, DEL and C1 */
    {"{\"provider\":\"openai\",\"model\":\"a\\u0001b\"}", "model",
     "model must be free of control characters, got \"a\\u0001b\""},
    {"{\"provider\":\"openai\",\"model\":\"a\\nb\"}", "model",
     "control characters"},
    {"{\"provider\":\"openai\",\"model\":\"a\\u007fb\"}", "model",
     "control characters"},
    {"{\"provider\":\"openai\",\"model\":\"a\\u0085b\"}", "model",
     "control characters"},
    {EV("\"user\":\"tab\\there\""), "user", "control characters"},
    /* id */
    {EV("\"id\":\"\""), "id", "id must not be empty"},
    {EV("\"id\":\"a b\""), "id", "printable ASCII without spaces"},
    {EV("\"id\":\"caf\\u00e9\""), "id", "printable ASCII"},
    {EV("\"id\":42"), "id", "id must be a string, got 42"},
    /* ts */
    {EV("\"ts\":-5"), "ts", "got -5"},
    {EV("\"ts\":946684799999"), "ts", "2000-01-01"},
    {EV("\"ts\":1795435200001"), "ts", "one day after"},
    {EV("\"ts\":1795348800"), "ts", "not seconds"},
    {EV("\"ts\":1795348800000.5"), "ts", "RFC 3339"},
    {EV("\"ts\":\"1999-12-31T23:59:59.999Z\""), "ts", "2000-01-01"},
    {EV("\"ts\":\"2026-11-23T12:00:00.001Z\""), "ts", "one day after"},
    {EV("\"ts\":\"2026-11-22\""), "ts",
     "ts must be an RFC 3339 date-time or integer epoch milliseconds, got "
     "\"2026-11-22\""},
    {EV("\"ts\":\"yesterday\""), "ts", "RFC 3339"},
    {EV("\"ts\":true"), "ts", "got true"},
    {EV("\"ts\":{}"), "ts", "got an object"},
    /* operation */
    {EV("\"operation\":7"), "operation", "must be a string"},
    /* token counts */
    {EV("\"input_tokens\":-5"), "input_tokens",
     "input_tokens must be an integer >= 0, got -5"},
    {EV("\"input_tokens\":1000000000001"), "input_tokens",
     "input_tokens must be an integer <= 1000000000000, got 1000000000001"},
    {EV("\"input_tokens\":1.5"), "input_tokens",
     "input_tokens must be an integer >= 0, got 1.5"},
    {EV("\"input_tokens\":\"12\""), "input_tokens",
     "input_tokens must be an integer >= 0, got \"12\""},
    {EV("\"input_tokens\":true"), "input_tokens", "got true"},
    {EV("\"input_tokens\":false"), "input_tokens", "got false"},
    {EV("\"input_tokens\":[1]"), "input_tokens", "got an array"},
    {EV("\"input_tokens\":2e12"), "input_tokens", "<= 1000000000000"},
    {EV("\"output_tokens\":-1"), "output_tokens", ">= 0, got -1"},
    {EV("\"output_tokens\":1000000000001"), "output_tokens", "<="},
    {EV("\"output_tokens\":0.5"), "output_tokens", "got 0.5"},
    {EV("\"cache_read_tokens\":-1"), "cache_read_tokens", ">= 0"},
    {EV("\"cache_read_tokens\":1000000000001"), "cache_read_tokens", "<="},
    {EV("\"cache_read_tokens\":\"x\""), "cache_read_tokens", "integer"},
    {EV("\"cache_write_tokens\":-1"), "cache_write_tokens", ">= 0"},
    {EV("\"cache_write_tokens\":1000000000001"), "cache_write_tokens", "<="},
    {EV("\"cache_write_tokens\":1.25"), "cache_write_tokens", "integer"},
    {EV("\"reasoning_tokens\":-1"), "reasoning_tokens", ">= 0"},
    {EV("\"reasoning_tokens\":1000000000001"), "reasoning_tokens", "<="},
    {EV("\"reasoning_tokens\":{}"), "reasoning_tokens", "integer"},
    /* cost, latency, ttft */
    {EV("\"cost_usd\":-0.01"), "cost_usd",
     "cost_usd must be a number >= 0, got -0.01"},
    {EV("\"cost_usd\":1000000.01"), "cost_usd", "<= 1000000"},
    {EV("\"cost_usd\":\"0.1\""), "cost_usd", "got \"0.1\""},
    {EV("\"cost_usd\":true"), "cost_usd", "got true"},
    {EV("\"latency_ms\":-1"), "latency_ms", ">= 0"},
    {EV("\"latency_ms\":86400000.5"), "latency_ms", "<= 86400000"},
    {EV("\"latency_ms\":\"fast\""), "latency_ms", "number"},
    {EV("\"ttft_ms\":-0.5"), "ttft_ms", ">= 0"},
    {EV("\"ttft_ms\":86400001"), "ttft_ms", "<= 86400000"},
    {EV("\"ttft_ms\":[]"), "ttft_ms", "got an array"},
    {EV("\"latency_ms\":100,\"ttft_ms\":100.5"), "ttft_ms",
     "ttft_ms must not exceed latency_ms"},
    /* status */
    {EV("\"status\":99"), "status",
     "status must be an integer from 100 to 599, got 99"},
    {EV("\"status\":600"), "status", "from 100 to 599, got 600"},
    {EV("\"status\":200.5"), "status", "got 200.5"},
    {EV("\"status\":\"200\""), "status", "got \"200\""},
    {EV("\"status\":-200"), "status", "from 100 to 599"},
    /* short and name strings */
    {EV("\"error_type\":5"), "error_type", "must be a string"},
    {EV("\"user\":1"), "user", "user must be a string, got 1"},
    {EV("\"agent\":{}"), "agent", "got an object"},
    {EV("\"api_key\":false"), "api_key", "got false"},
    {EV("\"session\":2"), "session", "must be a string"},
    {EV("\"request_id\":[]"), "request_id", "must be a string"},
    /* round */
    {EV("\"round\":-1"), "round", "round must be an integer >= 0, got -1"},
    {EV("\"round\":1000001"), "round", "<= 1000000, got 1000001"},
    {EV("\"round\":\"3\""), "round", "got \"3\""},
    {EV("\"round\":2.5"), "round", "got 2.5"},
    /* tags */
    {EV("\"tags\":[\"a\"]"), "tags", "tags must be an object of strings"},
    {EV("\"tags\":\"env=prod\""), "tags", "got \"env=prod\""},
    {EV("\"tags\":{\"env\":1}"), "tags", "tag \"env\" must be a string, got 1"},
    {EV("\"tags\":{\"env\":null}"), "tags", "got null"},
    {EV("\"tags\":{\"env\":{\"a\":\"b\"}}"), "tags", "got an object"},
    {EV("\"tags\":{\"\":\"x\"}"), "tags", "tag keys must not be empty"},
    {EV("\"tags\":{\"a\\u0002\":\"x\"}"), "tags",
     "tag key \"a\\u0002\" must not contain control characters"},
    {EV("\"tags\":{\"a\":\"x\\ny\"}"), "tags",
     "tag \"a\" value must not contain control characters"},
    {EV("\"tags\":{\"k1\":\"v\",\"k2\":\"v\",\"k3\":\"v\",\"k4\":\"v\","
        "\"k5\":\"v\",\"k6\":\"v\",\"k7\":\"v\",\"k8\":\"v\",\"k9\":\"v\","
        "\"k10\":\"v\",\"k11\":\"v\",\"k12\":\"v\",\"k13\":\"v\","
        "\"k14\":\"v\",\"k15\":\"v\",\"k16\":\"v\",\"k17\":\"v\"}"),
     "tags", "tags must have at most 16 keys, got 17"},
    /* unknown fields and workspace */
    {EV("\"foo\":1"), "foo", "unknown field \"foo\""},
    {EV("\"Model\":\"x\""), "Model", "unknown field \"Model\""},
    {EV("\"input_token\":1"), "input_token", "unknown field"},
    {EV("\"\":1"), "", "unknown field \"\""},
    {EV("\"workspace\":\"acme\""), "workspace",
     "the workspace comes from the API key"},
    {EV("\"workspace\":null"), "workspace", "API key"},
};

START_TEST(test_bad_event)
{
    const struct bad_case *c = &bad_cases[_i];
    enum ev_result want = c->field ? EV_ERR_INVALID : EV_ERR_JSON;

    parse_bad(c->body, want, c->field ? 0 : -1, c->field, c->msg);
}
END_TEST

/* A string field, its maximum length, and the byte that fills it. */
struct str_bound {
    const char *field;
    size_t max;
    size_t min;
    char fill;
};

static const struct str_bound str_bounds[] = {
    {"id", EV_MAX_ID, 1, 'x'},
    {"provider", EV_MAX_NAME, 1, 'p'},
    {"model", EV_MAX_NAME, 1, 'm'},
    {"operation", EV_MAX_SHORT, 0, 'o'},
    {"error_type", EV_MAX_SHORT, 0, 'e'},
    {"user", EV_MAX_NAME, 0, 'u'},
    {"agent", EV_MAX_NAME, 0, 'a'},
    {"api_key", EV_MAX_NAME, 0, 'k'},
    {"session", EV_MAX_NAME, 0, 's'},
    {"request_id", EV_MAX_REQUEST_ID, 0, 'r'},
};

START_TEST(test_string_bounds)
{
    const struct str_bound *sb = &str_bounds[_i];
    char *val = repeat(sb->fill, sb->max + 1);
    char body[1024], want[128];
    struct ev_batch b;
    const struct ev_rec *r;
    /* The required fields, less the one under test. */
    const char *rest = strcmp(sb->field, "provider") == 0 ? "\"model\":\"m\","
                       : strcmp(sb->field, "model") == 0
                           ? "\"provider\":\"p\","
                           : "\"provider\":\"p\",\"model\":\"m\",";

    /* At the limit: accepted and stored whole. */
    val[sb->max] = '\0';
    snprintf(body, sizeof(body), "{%s\"%s\":\"%s\"}", rest, sb->field, val);
    r = parse_one(body, &b);
    for (int f = 0; f < EV_NSTR; f++)
        if (strcmp(ev_str(r, (enum ev_str)f), val) == 0)
            goto found;
    ck_abort_msg("field %s not stored", sb->field);
found:
    ev_batch_free(&b);

    /* One byte over: rejected, naming the field and both lengths. */
    val[sb->max] = sb->fill;
    snprintf(body, sizeof(body), "{%s\"%s\":\"%s\"}", rest, sb->field, val);
    snprintf(want, sizeof(want), "%s must be at most %zu bytes, got %zu bytes",
             sb->field, sb->max, sb->max + 1);
    parse_bad(body, EV_ERR_INVALID, 0, sb->field, want);

    /* Empty: rejected when the field has a minimum length. */
    snprintf(body, sizeof(body), "{%s\"%s\":\"%s\"}", rest, sb->field, "");
    if (sb->min > 0) {
        parse_bad(body, EV_ERR_INVALID, 0, sb->field, "must not be empty");
    } else {
        r = parse_one(body, &b);
        ev_batch_free(&b);
    }
    free(val);
}
END_TEST

START_TEST(test_string_multibyte)
{
    struct ev_batch b;
    /* 64 two-byte characters make 128 bytes: exactly the model limit. */
    char body[1024] = "{\"provider\":\"p\",\"model\":\"";
    const struct ev_rec *r;

    for (int i = 0; i < 64; i++)
        strcat(body, "\xc3\xa9");
    strcat(body, "\"}");
    r = parse_one(body, &b);
    ck_assert_uint_eq(r->str_len[EV_S_MODEL], 128);
    ev_batch_free(&b);
    /* One more byte is over, even though it is only 65 characters. */
    body[strlen(body) - 2] = '\0';
    strcat(body, "x\"}");
    parse_bad(body, EV_ERR_INVALID, 0, "model", "at most 128 bytes");
    /* Non-ASCII without control characters is fine in names. */
    r = parse_one(EV("\"user\":\"J\\u00fcrgen \\u6a21\\u578b\","
                     "\"operation\":\"text completion\""),
                  &b);
    ck_assert_str_eq(ev_str(r, EV_S_USER),
                     "J\xc3\xbcrgen \xe6\xa8\xa1\xe5\x9e\x8b");
    ck_assert_str_eq(ev_str(r, EV_S_OPERATION), "text completion");
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_id_values)
{
    struct ev_batch b;
    const struct ev_rec *r;

    r = parse_one(EV("\"id\":\"!~{}[]:/?#@\""), &b);
    ck_assert_str_eq(ev_str(r, EV_S_ID), "!~{}[]:/?#@");
    ck_assert_uint_eq(r->flags & EV_F_ID_SERVER, 0);
    ev_batch_free(&b);
    r = parse_one(EV("\"id\":\"x\""), &b);
    ck_assert_str_eq(ev_str(r, EV_S_ID), "x");
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_provider_values)
{
    static const char *ok[] = {"openai",      "anthropic",  "gcp.gemini",
                               "aws.bedrock", "mistral_ai", "x-ai",
                               "a1"};
    struct ev_batch b;
    char body[256];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(body, sizeof(body), "{\"provider\":\"%s\",\"model\":\"m\"}",
                 ok[i]);
        ck_assert_str_eq(ev_str(parse_one(body, &b), EV_S_PROVIDER), ok[i]);
        ev_batch_free(&b);
    }
}
END_TEST

START_TEST(test_ts_values)
{
    struct ev_batch b;
    const struct ev_rec *r;

    r = parse_one(EV("\"ts\":946684800000"), &b); /* 2000-01-01 exactly */
    ck_assert_int_eq(r->ts_ms, 946684800000LL);
    ev_batch_free(&b);
    r = parse_one(EV("\"ts\":1795435200000"), &b); /* now + 1 day exactly */
    ck_assert_int_eq(r->ts_ms, NOW + DAY);
    ev_batch_free(&b);
    r = parse_one(EV("\"ts\":1795348800000.0"), &b); /* integral real */
    ck_assert_int_eq(r->ts_ms, NOW);
    ev_batch_free(&b);
    r = parse_one(EV("\"ts\":\"2000-01-01T00:00:00Z\""), &b);
    ck_assert_int_eq(r->ts_ms, 946684800000LL);
    ev_batch_free(&b);
    r = parse_one(EV("\"ts\":\"2026-11-23T12:00:00.000Z\""), &b);
    ck_assert_int_eq(r->ts_ms, NOW + DAY);
    ev_batch_free(&b);
    r = parse_one(EV("\"ts\":\"2026-11-22T13:30:00+01:30\""), &b);
    ck_assert_int_eq(r->ts_ms, NOW);
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_token_values)
{
    static const char *fields[] = {"input_tokens", "output_tokens",
                                   "cache_read_tokens", "cache_write_tokens",
                                   "reasoning_tokens"};
    struct ev_batch b;
    char body[256];

    for (int i = 0; i < 5; i++) {
        const struct ev_rec *r;
        const int64_t *v;

        snprintf(body, sizeof(body), EV("\"%s\":1000000000000"), fields[i]);
        r = parse_one(body, &b);
        v = &r->input_tokens + i; /* the five counts are consecutive */
        ck_assert_int_eq(*v, EV_MAX_TOKENS);
        ev_batch_free(&b);
        snprintf(body, sizeof(body), EV("\"%s\":0"), fields[i]);
        r = parse_one(body, &b);
        ck_assert_int_eq(*(&r->input_tokens + i), 0);
        ev_batch_free(&b);
        /* JSON does not tell 7 from 7.0 or 7e0. */
        snprintf(body, sizeof(body), EV("\"%s\":7.0"), fields[i]);
        r = parse_one(body, &b);
        ck_assert_int_eq(*(&r->input_tokens + i), 7);
        ev_batch_free(&b);
        snprintf(body, sizeof(body), EV("\"%s\":7e0"), fields[i]);
        r = parse_one(body, &b);
        ck_assert_int_eq(*(&r->input_tokens + i), 7);
        ev_batch_free(&b);
    }
}
END_TEST

START_TEST(test_number_values)
{
    struct ev_batch b;
    const struct ev_rec *r;

    r = parse_one(EV("\"cost_usd\":0,\"latency_ms\":0,\"ttft_ms\":0"), &b);
    ck_assert_uint_eq(r->flags & (EV_F_COST | EV_F_LATENCY | EV_F_TTFT),
                      EV_F_COST | EV_F_LATENCY | EV_F_TTFT);
    ck_assert_double_eq(r->cost_usd, 0);
    ev_batch_free(&b);
    r = parse_one(EV("\"cost_usd\":1000000,\"latency_ms\":86400000,"
                     "\"ttft_ms\":86400000"),
                  &b);
    ck_assert_double_eq(r->cost_usd, EV_MAX_COST);
    ck_assert_double_eq(r->latency_ms, EV_MAX_LATENCY);
    ck_assert_double_eq(r->ttft_ms, EV_MAX_LATENCY);
    ev_batch_free(&b);
    /* ttft without latency, and latency without ttft. */
    r = parse_one(EV("\"ttft_ms\":50"), &b);
    ck_assert_uint_eq(r->flags & (EV_F_LATENCY | EV_F_TTFT), EV_F_TTFT);
    ev_batch_free(&b);
    r = parse_one(EV("\"latency_ms\":50.75"), &b);
    ck_assert_uint_eq(r->flags & (EV_F_LATENCY | EV_F_TTFT), EV_F_LATENCY);
    ck_assert_double_eq(r->latency_ms, 50.75);
    ev_batch_free(&b);
    r = parse_one(EV("\"cost_usd\":-0.0"), &b);
    ck_assert_double_eq(r->cost_usd, 0);
    ck_assert_int_eq(signbit(r->cost_usd), 0);
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_status_and_errors)
{
    struct ev_batch b;
    const struct ev_rec *r;

    r = parse_one(EV("\"status\":100"), &b);
    ck_assert_uint_eq(r->flags & (EV_F_STATUS | EV_F_ERROR), EV_F_STATUS);
    ev_batch_free(&b);
    r = parse_one(EV("\"status\":399"), &b);
    ck_assert_uint_eq(r->flags & EV_F_ERROR, 0);
    ev_batch_free(&b);
    r = parse_one(EV("\"status\":400"), &b);
    ck_assert_uint_eq(r->flags & EV_F_ERROR, EV_F_ERROR);
    ev_batch_free(&b);
    r = parse_one(EV("\"status\":599"), &b);
    ck_assert_int_eq(r->status, 599);
    ck_assert_uint_eq(r->flags & EV_F_ERROR, EV_F_ERROR);
    ev_batch_free(&b);
    r = parse_one(EV("\"status\":200,\"error_type\":\"timeout\""), &b);
    ck_assert_uint_eq(r->flags & EV_F_ERROR, EV_F_ERROR);
    ck_assert_str_eq(ev_str(r, EV_S_ERROR_TYPE), "timeout");
    ev_batch_free(&b);
    r = parse_one(EV("\"error_type\":\"rate_limit\""), &b);
    ck_assert_uint_eq(r->flags & (EV_F_ERROR | EV_F_STATUS), EV_F_ERROR);
    ev_batch_free(&b);
    r = parse_one(EV("\"error_type\":\"\""), &b);
    ck_assert_uint_eq(r->flags & EV_F_ERROR, 0);
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_round_values)
{
    struct ev_batch b;
    const struct ev_rec *r;

    r = parse_one(EV("\"round\":0"), &b);
    ck_assert_uint_eq(r->flags & EV_F_ROUND, EV_F_ROUND);
    ck_assert_int_eq(r->round, 0);
    ev_batch_free(&b);
    r = parse_one(EV("\"round\":1000000"), &b);
    ck_assert_int_eq(r->round, EV_MAX_ROUND);
    ev_batch_free(&b);
}
END_TEST

START_TEST(test_tags)
{
    struct ev_batch b;
    const struct ev_rec *r;
    char body[8192], want[8192];
    char *k64 = repeat('k', 64), *k65 = repeat('k', 65);
    char *v256 = repeat('v', 256), *v257 = repeat('v', 257);

    /* Sorted, compact, escaped by jansson, multibyte kept as is. */
    r = parse_one(EV("\"tags\":{\"z\":\"1\",\"\\u00fc\":\"\\u00e9\","
                     "\"a\":\"q\\\"b\\\\s/\"}"),
                  &b);
    ck_assert_str_eq(
        ev_str(r, EV_S_TAGS),
        "{\"a\":\"q\\\"b\\\\s/\",\"z\":\"1\",\"\xc3\xbc\":\"\xc3\xa9\"}");
    check_layout(&b);
    ev_batch_free(&b);
    /* An empty object stores nothing. */
    r = parse_one(EV("\"tags\":{}"), &b);
    ck_assert_uint_eq(r->str_len[EV_S_TAGS], 0);
    ev_batch_free(&b);
    /* Keys sharing a prefix sort shorter first. */
    r = parse_one(EV("\"tags\":{\"ab\":\"2\",\"a\":\"1\"}"), &b);
    ck_assert_str_eq(ev_str(r, EV_S_TAGS), "{\"a\":\"1\",\"ab\":\"2\"}");
    ev_batch_free(&b);

    /* 16 keys of 64 bytes with 256-byte values full of escapes: the
     * largest tags, stored whole. */
    strcpy(body, "{\"provider\":\"p\",\"model\":\"m\",\"tags\":{");
    strcpy(want, "{");
    for (int i = 0; i < 16; i++) {
        char key[80], val[600];
        snprintf(key, sizeof(key), "%02d%s", i, k64 + 2);
        memset(val, 0, sizeof(val));
        for (int j = 0; j < 128; j++)
            strcat(val, "\\\"");
        sprintf(body + strlen(body), "%s\"%s\":\"%s\"", i ? "," : "", key, val);
        sprintf(want + strlen(want), "%s\"%s\":\"%s\"", i ? "," : "", key, val);
    }
    strcat(body, "}}");
    strcat(want, "}");
    r = parse_one(body, &b);
    ck_assert_str_eq(ev_str(r, EV_S_TAGS), want);
    check_layout(&b);
    ev_batch_free(&b);

    /* Key and value length limits, both sides. */
    snprintf(body, sizeof(body), EV("\"tags\":{\"%s\":\"%s\"}"), k64, v256);
    r = parse_one(body, &b);
    ck_assert_uint_eq(r->str_len[EV_S_TAGS], 64 + 256 + 7);
    ev_batch_free(&b);
    snprintf(body, sizeof(body), EV("\"tags\":{\"%s\":\"v\"}"), k65);
    parse_bad(body, EV_ERR_INVALID, 0, "tags", "is too long: at most 64 bytes");
    snprintf(body, sizeof(body), EV("\"tags\":{\"k\":\"%s\"}"), v257);
    parse_bad(body, EV_ERR_INVALID, 0, "tags",
              "tag \"k\" value is too long: at most 256 bytes");
    free(k64);
    free(k65);
    free(v256);
    free(v257);
}
END_TEST

START_TEST(test_body_errors)
{
    parse_bad("", EV_ERR_JSON, -1, "", "invalid JSON at line");
    parse_bad("{", EV_ERR_JSON, -1, "", "invalid JSON at line 1");
    parse_bad("{\"provider\":\"openai\",}", EV_ERR_JSON, -1, "", "line 1");
    parse_bad("{\"provider\":\"openai\",\"model\":\"m\"} x", EV_ERR_JSON, -1,
              "", "invalid JSON");
    parse_bad("[{\"provider\":\"p\",\"model\":\"m\",\"model\":\"n\"}]",
              EV_ERR_JSON, -1, "", "duplicate");
    parse_bad("{\"provider\":\"p\",\"model\":\"\xff\"}", EV_ERR_JSON, -1, "",
              "invalid JSON");
    parse_bad("42", EV_ERR_INVALID, -1, "",
              "the body must be an event object or an array of events, got 42");
    parse_bad("\"event\"", EV_ERR_INVALID, -1, "", "got \"event\"");
    parse_bad("null", EV_ERR_INVALID, -1, "", "got null");
    parse_bad("true", EV_ERR_INVALID, -1, "", "got true");
    parse_bad("[]", EV_ERR_INVALID, -1, "", "empty batch");
    parse_bad("[{\"provider\":\"p\",\"model\":\"m\"},3]", EV_ERR_INVALID, 1, "",
              "event must be an object, got 3");
    parse_bad("[[]]", EV_ERR_INVALID, 0, "", "got an array");
    parse_bad("[null]", EV_ERR_INVALID, 0, "", "got null");
}
END_TEST

START_TEST(test_all_or_nothing)
{
    const char *body =
        "[{\"provider\":\"p\",\"model\":\"a\"},"
        "{\"provider\":\"p\",\"model\":\"b\",\"input_tokens\":1},"
        "{\"provider\":\"p\",\"model\":\"c\",\"input_tokens\":-5},"
        "{\"provider\":\"p\",\"model\":\"d\",\"input_tokens\":\"bad\"}]";

    parse_bad(body, EV_ERR_INVALID, 2, "input_tokens",
              "input_tokens must be an integer >= 0, got -5");
    /* The first bad event is reported, even at index 0. */
    parse_bad("[{\"model\":\"m\"},{\"provider\":\"p\"}]", EV_ERR_INVALID, 0,
              "provider", "provider is required");
}
END_TEST

/* Build an array body of n distinct events, with client ids if with_ids;
 * the caller frees it. */
static char *batch_body(int n, int with_ids)
{
    size_t cap = (size_t)n * 200 + 16, o = 0;
    char *s = malloc(cap);

    ck_assert_ptr_nonnull(s);
    s[o++] = '[';
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s{", i ? "," : "");
        if (with_ids)
            o += (size_t)snprintf(s + o, cap - o, "\"id\":\"e-%d\",", i);
        o += (size_t)snprintf(s + o, cap - o,
                              "\"provider\":\"openai\",\"model\":\"gpt-4o-%d\","
                              "\"input_tokens\":%d,\"tags\":{\"i\":\"%d\"}}",
                              i, i, i);
    }
    s[o++] = ']';
    s[o] = '\0';
    return s;
}

START_TEST(test_batch_limits)
{
    struct ev_batch b;
    struct ev_error e;
    char *body = batch_body(EV_MAX_BATCH, 1);
    const struct ev_rec *r = NULL;
    int i = 0;

    ck_assert_int_eq(parse(body, &b, &e), EV_OK);
    ck_assert_uint_eq(b.count, EV_MAX_BATCH);
    check_layout(&b);
    while ((r = ev_batch_next(&b, r)) != NULL) {
        char want[32];
        snprintf(want, sizeof(want), "e-%d", i);
        ck_assert_str_eq(ev_str(r, EV_S_ID), want);
        ck_assert_int_eq(r->input_tokens, i);
        snprintf(want, sizeof(want), "{\"i\":\"%d\"}", i);
        ck_assert_str_eq(ev_str(r, EV_S_TAGS), want);
        i++;
    }
    ck_assert_int_eq(i, EV_MAX_BATCH);
    ev_batch_free(&b);
    free(body);

    body = batch_body(EV_MAX_BATCH + 1, 1);
    parse_bad(body, EV_ERR_TOO_MANY, -1, "",
              "a batch holds at most 1000 events, got 1001");
    free(body);
}
END_TEST

/* Parse and free a batch on a thread of its own, which then exits with a
 * buffer cached (its destructor must free it: LeakSanitizer checks). */
static void *parse_thread(void *arg)
{
    struct ev_batch b;
    struct ev_error e;

    if (ev_parse_body(arg, strlen(arg), NOW, &b, &e) != EV_OK)
        return arg;
    ev_batch_free(&b);
    return NULL;
}

START_TEST(test_batch_reuse)
{
    pthread_t t;
    void *res = &t;

    struct ev_batch b;
    struct ev_error e;
    char *big = batch_body(500, 1);

    /* Parse, free, parse again: the thread's cached buffer is reused and
     * must behave like a fresh one, whatever its size. */
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(parse(big, &b, &e), EV_OK);
        ck_assert_uint_eq(b.count, 500);
        check_layout(&b);
        ev_batch_free(&b);
        ck_assert_int_eq(parse(EV("\"input_tokens\":1"), &b, &e), EV_OK);
        ck_assert_uint_eq(b.count, 1);
        ck_assert_int_eq(ev_batch_next(&b, NULL)->input_tokens, 1);
        check_layout(&b);
        ev_batch_free(&b);
        parse_bad(EV("\"round\":-1"), EV_ERR_INVALID, 0, "round", "round");
        parse_bad("{", EV_ERR_JSON, -1, "", "invalid JSON");
    }
    ck_assert_int_eq(pthread_create(&t, NULL, parse_thread, big), 0);
    pthread_join(t, &res);
    ck_assert_ptr_null(res);
    free(big);
}
END_TEST

START_TEST(test_batch_next_empty)
{
    struct ev_batch b = {0};

    ck_assert_ptr_null(ev_batch_next(&b, NULL));
    ev_batch_free(&b);
    ck_assert_ptr_null(b.buf);
}
END_TEST

START_TEST(test_long_value_quoted)
{
    struct ev_batch b;
    struct ev_error e;
    char *v = repeat('z', 5000);
    char *body = malloc(6000);

    ck_assert_ptr_nonnull(body);
    snprintf(body, 6000, EV("\"input_tokens\":\"%s\""), v);
    ck_assert_int_eq(parse(body, &b, &e), EV_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(e.message, "got \"zzzz"));
    ck_assert_ptr_nonnull(strstr(e.message, "\"..."));
    ck_assert_uint_lt(strlen(e.message), sizeof(e.message));
    /* Multibyte characters are never cut in half. */
    strcpy(body, EV("\"round\":\""));
    for (int i = 0; i < 100; i++)
        strcat(body, "\xe6\xa8\xa1");
    strcat(body, "\"}");
    ck_assert_int_eq(parse(body, &b, &e), EV_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(e.message, "\xe6\xa8\xa1\"..."));
    free(body);
    free(v);
}
END_TEST

START_TEST(test_server_ids_unique_in_batch)
{
    struct ev_batch b;
    struct ev_error e;
    char *body = batch_body(EV_MAX_BATCH, 0);
    const struct ev_rec *r = NULL;
    char(*ids)[33] = calloc(EV_MAX_BATCH, 33);
    int n = 0;

    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(parse(body, &b, &e), EV_OK);
    while ((r = ev_batch_next(&b, r)) != NULL) {
        ck_assert_uint_eq(r->flags & EV_F_ID_SERVER, EV_F_ID_SERVER);
        memcpy(ids[n++], ev_str(r, EV_S_ID), 33);
    }
    qsort(ids, (size_t)n, 33, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < n; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    ev_batch_free(&b);
    free(ids);
    free(body);
}
END_TEST

/* Ids made by one thread in test_new_id_threads. */
#define IDS_PER_THREAD 20000
#define ID_THREADS     8

/* Fill arg (IDS_PER_THREAD ids of 33 bytes) with fresh ids. */
static void *id_thread(void *arg)
{
    char(*ids)[33] = arg;

    for (int i = 0; i < IDS_PER_THREAD; i++)
        ev_new_id(ids[i]);
    return NULL;
}

START_TEST(test_new_id_threads)
{
    size_t n = (size_t)IDS_PER_THREAD * ID_THREADS;
    char(*ids)[33] = calloc(n, 33);
    pthread_t t[ID_THREADS];
    struct timespec ts;
    uint64_t now_ms, id_ms;
    char head[13];

    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < ID_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, id_thread,
                                        ids + (size_t)i * IDS_PER_THREAD),
                         0);
    for (int i = 0; i < ID_THREADS; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(strlen(ids[i]), 32);
        ck_assert_uint_eq(strspn(ids[i], "0123456789abcdef"), 32);
    }
    /* The first 12 hex digits are the time in ms. */
    memcpy(head, ids[0], 12);
    head[12] = '\0';
    id_ms = strtoull(head, NULL, 16);
    ck_assert_uint_le(id_ms, now_ms);
    ck_assert_uint_gt(id_ms, now_ms - 60000);
    qsort(ids, n, 33, (int (*)(const void *, const void *))strcmp);
    for (size_t i = 1; i < n; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    free(ids);
}
END_TEST

START_TEST(test_new_id_fork)
{
    char mine[33], theirs[33] = "";
    int fd[2];
    pid_t pid;

    /* Seed this thread's generator, then fork: the child must not repeat
     * the ids its parent goes on to make. */
    ev_new_id(mine);
    ck_assert_int_eq(pipe(fd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char id[33];
        ev_new_id(id);
        _exit(write(fd[1], id, 33) == 33 ? 0 : 1);
    }
    ck_assert_int_eq(read(fd[0], theirs, 33), 33);
    waitpid(pid, NULL, 0);
    ev_new_id(mine);
    ck_assert_str_ne(mine + 12, theirs + 12);
    close(fd[0]);
    close(fd[1]);
}
END_TEST

/* Parse s, which must be valid, and return its epoch ms. */
static int64_t ts_of(const char *s)
{
    int64_t ms = -42;

    ck_assert_msg(ev_parse_rfc3339(s, &ms) == 0, "rejected %s", s);
    return ms;
}

START_TEST(test_rfc3339_valid)
{
    ck_assert_int_eq(ts_of("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(ts_of("2026-11-22T10:00:00.123Z"), 1795341600123LL);
    ck_assert_int_eq(ts_of("2026-11-22t10:00:00.123z"), 1795341600123LL);
    /* Offsets move the instant the other way. */
    ck_assert_int_eq(ts_of("2026-11-22T12:00:00+02:00"),
                     ts_of("2026-11-22T10:00:00Z"));
    ck_assert_int_eq(ts_of("2026-11-22T04:30:00-05:30"),
                     ts_of("2026-11-22T10:00:00Z"));
    ck_assert_int_eq(ts_of("2026-11-22T10:00:00+00:00"),
                     ts_of("2026-11-22T10:00:00Z"));
    ck_assert_int_eq(ts_of("2026-11-22T10:00:00-00:00"),
                     ts_of("2026-11-22T10:00:00Z"));
    ck_assert_int_eq(ts_of("2026-01-01T00:30:00+23:59"),
                     ts_of("2025-12-31T00:31:00Z"));
    /* Fractions of any length, truncated to ms. */
    ck_assert_int_eq(ts_of("1970-01-01T00:00:00.1Z"), 100);
    ck_assert_int_eq(ts_of("1970-01-01T00:00:00.12Z"), 120);
    ck_assert_int_eq(ts_of("1970-01-01T00:00:00.9999Z"), 999);
    ck_assert_int_eq(ts_of("1970-01-01T00:00:01.123456789123Z"), 1123);
    /* Leap days, and a leap second read as the next second. */
    ck_assert_int_eq(ts_of("2024-02-29T00:00:00Z"), 1709164800000LL);
    ck_assert_int_eq(ts_of("2000-02-29T12:00:00Z"), 951825600000LL);
    ck_assert_int_eq(ts_of("2016-12-31T23:59:60Z"),
                     ts_of("2017-01-01T00:00:00Z"));
    /* Before the epoch, and the ends of the year range. */
    ck_assert_int_eq(ts_of("1969-12-31T23:59:59.999Z"), -1);
    ck_assert_int_eq(ts_of("0000-01-01T00:00:00Z"), -62167219200000LL);
    ck_assert_int_eq(ts_of("9999-12-31T23:59:59Z"), 253402300799000LL);
}
END_TEST

/* Timestamps ev_parse_rfc3339 must reject. */
static const char *const bad_times[] = {
    "",
    "2026",
    "2026-11-22",
    "2026-11-22T10:00Z",
    "2026-11-22T10:00:00",
    "2026-11-22 10:00:00Z",
    "2026-11-22X10:00:00Z",
    "2026-11-22T10:00:00.Z",
    "2026-11-22T10:00:00.123",
    "2026-11-22T10:00:00ZZ",
    "2026-11-22T10:00:00Z ",
    " 2026-11-22T10:00:00Z",
    "2026-11-22T10:00:00+0200",
    "2026-11-22T10:00:00+02",
    "2026-11-22T10:00:00+24:00",
    "2026-11-22T10:00:00+02:60",
    "2026-11-22T10:00:00UTC",
    "2026-00-22T10:00:00Z",
    "2026-13-22T10:00:00Z",
    "2026-11-00T10:00:00Z",
    "2026-11-31T10:00:00Z",
    "2026-04-31T10:00:00Z",
    "2026-01-32T10:00:00Z",
    "2023-02-29T10:00:00Z",
    "1900-02-29T10:00:00Z",
    "2100-02-29T10:00:00Z",
    "2024-02-30T10:00:00Z",
    "2026-11-22T24:00:00Z",
    "2026-11-22T10:60:00Z",
    "2026-11-22T10:00:61Z",
    "2026-1-22T10:00:00Z",
    "2026-11-2T10:00:00Z",
    "2026-11-22T1:00:00Z",
    "26-11-22T10:00:00Z",
    "+2026-11-22T10:00:00Z",
    "2026-11-22T10:00:00,123Z",
    "2026/11/22T10:00:00Z",
    "abcd-11-22T10:00:00Z",
    "2026-11-22T10:00:0aZ",
};

START_TEST(test_rfc3339_invalid)
{
    int64_t ms = 77;

    ck_assert_msg(ev_parse_rfc3339(bad_times[_i], &ms) == -1, "accepted '%s'",
                  bad_times[_i]);
    ck_assert_int_eq(ms, 77);
}
END_TEST

START_TEST(test_rfc3339_against_timegm)
{
    /* Every day from 1960 to 2120 at a varying time of day, checked
     * against libc (fine in a test; the library itself avoids it). */
    for (int64_t day = -3653; day < 54800; day++) {
        time_t t = (time_t)(day * 86400 + (day * 7919 % 86400 + 86400) % 86400);
        int ms = (int)((day * 37 % 1000 + 1000) % 1000);
        struct tm tm;
        char s[40], f[40];

        gmtime_r(&t, &tm);
        ck_assert_int_eq(timegm(&tm), t);
        strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
        ck_assert_int_eq(ts_of(s), (int64_t)t * 1000);
        /* The formatter agrees, milliseconds included. */
        ev_format_rfc3339((int64_t)t * 1000 + ms, f, sizeof(f));
        strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(s + 19, sizeof(s) - 19, ".%03dZ", ms);
        ck_assert_str_eq(f, s);
    }
}
END_TEST

START_TEST(test_rfc3339_format)
{
    char buf[32];

    ev_format_rfc3339(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    ev_format_rfc3339(-1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    ev_format_rfc3339(1795341600123LL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-11-22T10:00:00.123Z");
    ev_format_rfc3339(1709164800000LL, buf, 25); /* the documented minimum */
    ck_assert_str_eq(buf, "2024-02-29T00:00:00.000Z");
    ev_format_rfc3339(1709164800000LL, buf, 11); /* truncated, terminated */
    ck_assert_str_eq(buf, "2024-02-29");
    /* Round trips. */
    for (int64_t ms = -86400000LL * 400; ms < 86400000LL * 60000;
         ms += 86399999LL * 7 + 12345) {
        ev_format_rfc3339(ms, buf, sizeof(buf));
        ck_assert_int_eq(ts_of(buf), ms);
    }
}
END_TEST

START_TEST(test_describe)
{
    char buf[128];
    json_t *v = json_pack("{s:f,s:i,s:s,s:b,s:n,s:[],s:{}}", "r", 0.1, "i", -3,
                          "s", "a\"b", "t", 1, "z", "a", "o");

    ck_assert_ptr_nonnull(v);
    ev_describe(json_object_get(v, "r"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.1");
    ev_describe(json_object_get(v, "i"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "-3");
    ev_describe(json_object_get(v, "s"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"a\\\"b\"");
    ev_describe(json_object_get(v, "t"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "true");
    ev_describe(json_object_get(v, "z"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "null");
    ev_describe(json_object_get(v, "a"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "an array");
    ev_describe(json_object_get(v, "o"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "an object");
    ev_describe(json_object_get(v, "s"), buf, 4); /* too small: empty */
    ck_assert_uint_lt(strlen(buf), 4);
    json_decref(v);
}
END_TEST

/* The event suite. */
static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *t = tcase_create("fields");

    tcase_add_test(t, test_minimal_defaults);
    tcase_add_test(t, test_full_event);
    tcase_add_test(t, test_all_null);
    tcase_add_loop_test(t, test_bad_event, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_loop_test(t, test_string_bounds, 0,
                        (int)(sizeof(str_bounds) / sizeof(str_bounds[0])));
    tcase_add_test(t, test_string_multibyte);
    tcase_add_test(t, test_id_values);
    tcase_add_test(t, test_provider_values);
    tcase_add_test(t, test_ts_values);
    tcase_add_test(t, test_token_values);
    tcase_add_test(t, test_number_values);
    tcase_add_test(t, test_status_and_errors);
    tcase_add_test(t, test_round_values);
    tcase_add_test(t, test_tags);
    tcase_add_test(t, test_long_value_quoted);
    tcase_add_test(t, test_describe);
    suite_add_tcase(s, t);

    t = tcase_create("batch");
    tcase_add_test(t, test_body_errors);
    tcase_add_test(t, test_all_or_nothing);
    tcase_add_test(t, test_batch_limits);
    tcase_add_test(t, test_batch_reuse);
    tcase_add_test(t, test_batch_next_empty);
    suite_add_tcase(s, t);

    t = tcase_create("ids");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, test_server_ids_unique_in_batch);
    tcase_add_test(t, test_new_id_threads);
    tcase_add_test(t, test_new_id_fork);
    suite_add_tcase(s, t);

    t = tcase_create("rfc3339");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, test_rfc3339_valid);
    tcase_add_loop_test(t, test_rfc3339_invalid, 0,
                        (int)(sizeof(bad_times) / sizeof(bad_times[0])));
    tcase_add_test(t, test_rfc3339_against_timegm);
    tcase_add_test(t, test_rfc3339_format);
    suite_add_tcase(s, t);
    return s;
}

/* Run the suite; exit non-zero if any test failed. */
int main(void)
{
    SRunner *sr = srunner_create(event_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
