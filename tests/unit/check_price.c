/*
 * check_price.c: unit tests for the price catalog (common/price.c).
 *
 * The shipped data/pricing.json must load and price known models; lookups
 * are tested for the exact match, the longest-prefix rule at separators
 * only, and providers never standing in for one another; override files
 * replace and add entries; malformed catalogs are rejected with a message
 * naming the file, the entry and the field.  Temporary catalogs are written
 * into a fresh directory that each test removes.
 */
#include "event.h"
#include "price.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TT_SRCDIR
#error "TT_SRCDIR must name the source tree"
#endif

#define SHIPPED TT_SRCDIR "/data/pricing.json"

/* The temporary directory of the running test, and files made in it. */
static char tmpdir[256];
static char made[16][300];
static int nmade;

/* Create the test's temporary directory. */
static void setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/check_price.XXXXXX",
             base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    nmade = 0;
}

/* Remove the files made and the temporary directory. */
static void teardown(void)
{
    for (int i = 0; i < nmade; i++)
        unlink(made[i]);
    rmdir(tmpdir);
}

/* Write text to a file called name in the temporary directory and return
 * its path (valid until the test ends). */
static const char *write_file(const char *name, const char *text)
{
    char *path;
    FILE *f;

    ck_assert_int_lt(nmade, 16);
    path = made[nmade++];
    snprintf(path, sizeof(made[0]), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Load the shipped catalog, which must succeed. */
static struct price_catalog *shipped(void)
{
    char err[512] = "x";
    struct price_catalog *c = price_load(SHIPPED, NULL, err, sizeof(err));

    ck_assert_msg(c != NULL, "shipped catalog: %s", err);
    ck_assert_str_eq(err, "");
    return c;
}

/* Look up provider/model in c; it must resolve to catalog entry want. */
static void expect(const struct price_catalog *c, const char *provider,
                   const char *model, const char *want)
{
    const struct price_entry *p = price_find(c, provider, model);

    ck_assert_msg(p != NULL, "%s/%s: not found, want %s", provider, model,
                  want);
    ck_assert_str_eq(p->provider, provider);
    ck_assert_str_eq(p->model, want);
}

/* Look up provider/model in c; it must not resolve. */
static void expect_none(const struct price_catalog *c, const char *provider,
                        const char *model)
{
    const struct price_entry *p = price_find(c, provider, model);

    ck_assert_msg(p == NULL, "%s/%s: found %s/%s, want nothing", provider,
                  model, p ? p->provider : "", p ? p->model : "");
}

START_TEST(test_shipped_loads)
{
    struct price_catalog *c = shipped();
    int n = price_count(c);

    ck_assert_int_ge(n, 40);
    ck_assert_int_le(n, 60);
    for (int i = 0; i < n; i++) {
        const struct price_entry *p = price_at(c, i);
        ck_assert_ptr_nonnull(p);
        ck_assert_str_eq(p->source, "builtin");
        ck_assert_uint_eq(strlen(p->date), 10);
        ck_assert_msg(p->input > 0 || p->output > 0, "%s is free", p->model);
        ck_assert_msg(p->cache_read <= p->input, "%s: cache read dearer",
                      p->model);
        /* Every entry must find itself. */
        ck_assert_ptr_eq(price_find(c, p->provider, p->model), p);
    }
    ck_assert_ptr_null(price_at(c, -1));
    ck_assert_ptr_null(price_at(c, n));
    price_free(c);
}
END_TEST

START_TEST(test_shipped_prices)
{
    struct price_catalog *c = shipped();
    const struct price_entry *p;

    p = price_find(c, "openai", "gpt-4o");
    ck_assert_ptr_nonnull(p);
    ck_assert_double_eq(p->input, 2.50);
    ck_assert_double_eq(p->output, 10.00);
    ck_assert_double_eq(p->cache_read, 1.25);
    p = price_find(c, "anthropic", "claude-sonnet-4-5");
    ck_assert_ptr_nonnull(p);
    ck_assert_double_eq(p->input, 3.00);
    ck_assert_double_eq(p->output, 15.00);
    ck_assert_double_eq(p->cache_read, 0.30);
    ck_assert_double_eq(p->cache_write, 3.75);
    /* One model of each provider the catalog promises. */
    expect(c, "openai", "text-embedding-3-small", "text-embedding-3-small");
    expect(c, "gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro");
    expect(c, "mistral_ai", "mistral-large-latest", "mistral-large-latest");
    expect(c, "aws.bedrock", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0");
    expect(c, "deepseek", "deepseek-chat", "deepseek-chat");
    expect(c, "groq", "llama-3.3-70b-versatile", "llama-3.3-70b-versatile");
    expect(c, "cohere", "command-r-plus", "command-r-plus");
    price_free(c);
}
END_TEST

START_TEST(test_prefix_lookup)
{
    struct price_catalog *c = shipped();
    char longer[400];

    /* Dated snapshots price as their family, the longest family first. */
    expect(c, "openai", "gpt-4o-2024-08-06", "gpt-4o");
    expect(c, "openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini");
    expect(c, "openai", "gpt-5-mini-2025-08-07", "gpt-5-mini");
    expect(c, "openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano");
    expect(c, "openai", "o3-mini-2025-01-31", "o3-mini");
    expect(c, "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5");
    expect(c, "anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4");
    expect(c, "anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1");
    expect(c, "anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku");
    expect(c, "gcp.gemini", "gemini-2.5-flash-lite-preview-06-17",
           "gemini-2.5-flash-lite");
    expect(c, "gcp.gemini", "gemini-2.5-flash-preview-05-20",
           "gemini-2.5-flash");
    /* Each separator counts: '-', '@', ':' and '.'. */
    expect(c, "gcp.gemini", "gemini-2.0-flash@001", "gemini-2.0-flash");
    expect(c, "openai", "gpt-4o:ft-acme", "gpt-4o");
    expect(c, "openai", "gpt-5.1", "gpt-5");
    /* A model longer than any catalog entry still finds its family. */
    snprintf(longer, sizeof(longer), "gpt-4o-%0300d", 7);
    expect(c, "openai", longer, "gpt-4o");
    price_free(c);
}
END_TEST

START_TEST(test_no_false_match)
{
    struct price_catalog *c = shipped();

    /* A prefix that is not followed by a separator does not match. */
    expect_none(c, "openai", "gpt-4omni");
    expect_none(c, "openai", "o3x");
    expect_none(c, "openai", "gpt-5nano");
    expect_none(c, "openai", "gpt-4o_mini");
    /* Nor does a shorter string, a different case, or a separator alone. */
    expect_none(c, "openai", "gpt-4");
    expect_none(c, "openai", "GPT-4o");
    expect_none(c, "openai", "-gpt-4o");
    expect_none(c, "openai", "");
    /* Unknown models and providers. */
    expect_none(c, "openai", "gpt-9000");
    expect_none(c, "anthropic", "claude-3-sonnet-20240229");
    expect_none(c, "nobody", "gpt-4o");
    /* The same model under another provider is never used. */
    expect_none(c, "anthropic", "gpt-4o");
    expect_none(c, "azure.ai.openai", "gpt-4o-2024-08-06");
    expect_none(c, "aws.bedrock", "claude-3-5-sonnet");
    /* Hash collisions between provider and model boundaries. */
    expect_none(c, "openaig", "pt-4o");
    expect_none(c, "open", "aigpt-4o");
    expect_none(NULL, "openai", "gpt-4o");
    expect_none(c, NULL, "gpt-4o");
    expect_none(c, "openai", NULL);
    price_free(c);
}
END_TEST

START_TEST(test_cost)
{
    struct price_catalog *c = shipped();
    const struct price_entry *p = price_find(c, "openai", "gpt-4o");
    struct ev_rec r;

    memset(&r, 0, sizeof(r));
    r.input_tokens = 1000000;
    r.output_tokens = 500000;
    r.cache_read_tokens = 200000;
    r.reasoning_tokens = 400000; /* part of output: not billed again */
    /* 1M x 2.50 + 0.5M x 10.00 + 0.2M x 1.25 */
    ck_assert_double_eq_tol(price_cost(p, &r), 2.50 + 5.00 + 0.25, 1e-9);

    p = price_find(c, "anthropic", "claude-sonnet-4-5-20250929");
    memset(&r, 0, sizeof(r));
    r.input_tokens = 1200;
    r.output_tokens = 345;
    r.cache_read_tokens = 10000;
    r.cache_write_tokens = 2000;
    ck_assert_double_eq_tol(
        price_cost(p, &r),
        (1200 * 3.00 + 345 * 15.00 + 10000 * 0.30 + 2000 * 3.75) / 1e6, 1e-12);
    memset(&r, 0, sizeof(r));
    ck_assert_double_eq(price_cost(p, &r), 0);
    price_free(c);
}
END_TEST

START_TEST(test_override)
{
    const char *ov = write_file(
        "pricing.json",
        "{\"models\":["
        "{\"provider\":\"openai\",\"model\":\"gpt-4o\",\"input\":3,"
        "\"output\":12,\"cache_read\":1.5,\"cache_write\":3,"
        "\"date\":\"2026-11-01\"},"
        "{\"provider\":\"acme\",\"model\":\"house-model\",\"input\":0.5,"
        "\"output\":1}]}");
    char err[512];
    struct price_catalog *base = shipped();
    struct price_catalog *c = price_load(SHIPPED, ov, err, sizeof(err));
    const struct price_entry *p;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(price_count(c), price_count(base) + 1);
    p = price_find(c, "openai", "gpt-4o-2024-08-06");
    ck_assert_ptr_nonnull(p);
    ck_assert_double_eq(p->input, 3);
    ck_assert_double_eq(p->output, 12);
    ck_assert_str_eq(p->source, "override");
    ck_assert_str_eq(p->date, "2026-11-01");
    /* An added entry: absent cache prices default to the input price. */
    p = price_find(c, "acme", "house-model-v2");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->model, "house-model");
    ck_assert_double_eq(p->cache_read, 0.5);
    ck_assert_double_eq(p->cache_write, 0.5);
    ck_assert_str_eq(p->source, "override");
    ck_assert_str_eq(p->date, "");
    /* Everything else is untouched. */
    p = price_find(c, "openai", "gpt-4o-mini");
    ck_assert_double_eq(p->input, 0.15);
    ck_assert_str_eq(p->source, "builtin");
    price_free(c);
    price_free(base);
}
END_TEST

START_TEST(test_override_missing)
{
    char missing[300], err[512];
    struct price_catalog *c;

    snprintf(missing, sizeof(missing), "%s/nothing-here.json", tmpdir);
    c = price_load(SHIPPED, missing, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    price_free(c);
    /* A missing shipped catalog is an error. */
    c = price_load(missing, NULL, err, sizeof(err));
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, missing));
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

START_TEST(test_override_large)
{
    /* Thousands of entries exercise the table growing. */
    size_t cap = 4000 * 100, o = 0;
    char *text = malloc(cap), err[512], name[64];
    struct price_catalog *c;

    ck_assert_ptr_nonnull(text);
    o += (size_t)snprintf(text, cap, "{\"models\":[");
    for (int i = 0; i < 4000; i++)
        o += (size_t)snprintf(text + o, cap - o,
                              "%s{\"provider\":\"p%d\",\"model\":\"m-%d\","
                              "\"input\":%d,\"output\":1}",
                              i ? "," : "", i % 7, i, i);
    snprintf(text + o, cap - o, "]}");
    c = price_load(SHIPPED, write_file("big.json", text), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    for (int i = 0; i < 4000; i++) {
        const struct price_entry *p;
        char prov[16];
        snprintf(prov, sizeof(prov), "p%d", i % 7);
        snprintf(name, sizeof(name), "m-%d-latest", i);
        p = price_find(c, prov, name);
        ck_assert_ptr_nonnull(p);
        ck_assert_double_eq(p->input, i);
    }
    expect(c, "openai", "gpt-4o", "gpt-4o");
    price_free(c);
    free(text);
}
END_TEST

/* A malformed catalog and a part of the message it must produce. */
struct bad_catalog {
    const char *text;
    const char *msg;
};

/* An entry with every field, to which one bad field is appended. */
#define ENTRY(extra)                                                           \
    "{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"input\":1,"       \
    "\"output\":2" extra "}]}"

/* A one-entry catalog whose model name is the argument. */
#define ENTRY_FMT                                                              \
    "{\"models\":[{\"provider\":\"openai\",\"model\":\"%s\",\"input\":1,"      \
    "\"output\":2}]}"

static const struct bad_catalog bad_catalogs[] = {
    {"", "invalid JSON at line"},
    {"{\"models\":[}", "invalid JSON at line 1"},
    {"{\"models\":[],\"models\":[]}", "duplicate"},
    {"[]", "the catalog must be a JSON object, got an array"},
    {"{}", "models is required"},
    {"{\"models\":{}}", "models must be an array, got an object"},
    {"{\"currency\":\"EUR\",\"models\":[]}",
     "currency must be \"USD\", got \"EUR\""},
    {"{\"unit\":\"per_token\",\"models\":[]}",
     "unit must be \"per_million_tokens\", got \"per_token\""},
    {"{\"version\":3,\"models\":[]}", "version must be a string, got 3"},
    {"{\"modles\":[]}", "unknown field \"modles\""},
    {"{\"models\":[3]}", "models[0] must be an object, got 3"},
    {"{\"models\":[{\"model\":\"m\",\"input\":1,\"output\":1}]}",
     "models[0].provider is required"},
    {"{\"models\":[{\"provider\":\"openai\",\"input\":1,\"output\":1}]}",
     "models[0].model is required"},
    {"{\"models\":[{\"provider\":\"OpenAI\",\"model\":\"m\",\"input\":1,"
     "\"output\":1}]}",
     "models[0].provider must be lowercase letters, digits, '.', '_' or '-', "
     "got \"OpenAI\""},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"\",\"input\":1,"
     "\"output\":1}]}",
     "models[0].model must be a string of 1 to 127 bytes, got \"\""},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"a\\u0007\",\"input\":1,"
     "\"output\":1}]}",
     "models[0].model must be free of control characters"},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":7,\"input\":1,"
     "\"output\":1}]}",
     "models[0].model must be a string, got 7"},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"output\":1}]}",
     "models[0].input is required"},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"input\":1}]}",
     "models[0].output is required"},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"input\":-1,"
     "\"output\":1}]}",
     "models[0].input must be from 0 to 100000, got -1"},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"input\":\"2.5\","
     "\"output\":1}]}",
     "models[0].input must be a number (USD per million tokens), got \"2.5\""},
    {ENTRY(",\"output\":3"), "duplicate"},
    {ENTRY(",\"cache_read\":100001"), "models[0].cache_read must be from 0"},
    {ENTRY(",\"cache_write\":true"), "models[0].cache_write must be a number"},
    {ENTRY(",\"date\":\"2025-02-30\""),
     "models[0].date must be a date YYYY-MM-DD, got \"2025-02-30\""},
    {ENTRY(",\"date\":\"2025-1-30\""), "models[0].date must be a date"},
    {ENTRY(",\"date\":20250130"), "models[0].date must be a date"},
    {ENTRY(",\"ouput\":2"), "models[0]: unknown field \"ouput\""},
    {"{\"models\":[{\"provider\":\"openai\",\"model\":\"m\",\"input\":1,"
     "\"output\":2},{\"provider\":\"openai\",\"model\":\"n\",\"input\":1,"
     "\"output\":2},{\"provider\":\"openai\",\"model\":\"m\",\"input\":1,"
     "\"output\":2}]}",
     "models[2]: openai/m is listed twice"},
};

START_TEST(test_bad_catalog)
{
    const struct bad_catalog *b = &bad_catalogs[_i];
    const char *path = write_file("bad.json", b->text);
    char err[512] = "", want[400];
    struct price_catalog *c;

    /* As the shipped catalog... */
    c = price_load(path, NULL, err, sizeof(err));
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s: ", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "'%s' does not start with the path", err);
    ck_assert_msg(strstr(err, b->msg) != NULL, "'%s' lacks '%s'", err, b->msg);
    /* ...and as an override, where the message names the override. */
    err[0] = '\0';
    c = price_load(SHIPPED, path, err, sizeof(err));
    ck_assert_ptr_null(c);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "'%s'", err);
    ck_assert_msg(strstr(err, b->msg) != NULL, "'%s' lacks '%s'", err, b->msg);
}
END_TEST

START_TEST(test_model_length_bound)
{
    char text[600], name[200], err[512];
    struct price_catalog *c;

    /* 127 bytes fit in an entry; 128 do not. */
    memset(name, 'm', 127);
    name[127] = '\0';
    snprintf(text, sizeof(text), ENTRY_FMT, name);
    c = price_load(write_file("ok.json", text), NULL, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    expect(c, "openai", name, name);
    price_free(c);
    strcat(name, "m");
    snprintf(text, sizeof(text), ENTRY_FMT, name);
    c = price_load(write_file("long.json", text), NULL, err, sizeof(err));
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "models[0].model must be a string of 1 "
                                      "to 127 bytes"));
}
END_TEST

/* The price suite. */
static Suite *price_suite(void)
{
    Suite *s = suite_create("price");
    TCase *t = tcase_create("catalog");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_shipped_loads);
    tcase_add_test(t, test_shipped_prices);
    tcase_add_test(t, test_prefix_lookup);
    tcase_add_test(t, test_no_false_match);
    tcase_add_test(t, test_cost);
    tcase_add_test(t, test_override);
    tcase_add_test(t, test_override_missing);
    tcase_add_test(t, test_override_large);
    tcase_add_loop_test(t, test_bad_catalog, 0,
                        (int)(sizeof(bad_catalogs) / sizeof(bad_catalogs[0])));
    tcase_add_test(t, test_model_length_bound);
    suite_add_tcase(s, t);
    return s;
}

/* Run the suite; exit non-zero if any test failed. */
int main(void)
{
    SRunner *sr = srunner_create(price_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
