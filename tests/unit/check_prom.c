/*
 * check_prom.c: unit tests for the Prometheus text writer (fcgi-app/prom.h).
 *
 * The promises under test: the lines are exactly what the exposition
 * format says (HELP and TYPE, labels in braces, escaped values); numbers
 * read back as the value written; histogram buckets are cumulative and end
 * with +Inf equal to _count; and the fold of shm/hist.h buckets into
 * Prometheus bounds puts every value on the right side of each bound
 * except within the histogram's resolution.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "prom.h"

START_TEST(test_family_and_samples)
{
    struct strbuf b;
    prom_init(&b);
    prom_family(&b, "x_total", "counter", "Calls; a \\ and a\nnewline.");
    const char *l[] = {"provider", "openai", "model", "gpt-4o", NULL};
    prom_sample_u64(&b, "x_total", l, 18446744073709551615ull);
    prom_sample_f(&b, "x_total", NULL, 0.1);
    prom_sample(&b, "x_total", l, "12.5");
    ck_assert_int_eq(b.oom, 0);
    ck_assert_str_eq(b.p,
                     "# HELP x_total Calls; a \\\\ and a\\nnewline.\n"
                     "# TYPE x_total counter\n"
                     "x_total{provider=\"openai\",model=\"gpt-4o\"} "
                     "18446744073709551615\n"
                     "x_total 0.1\n"
                     "x_total{provider=\"openai\",model=\"gpt-4o\"} 12.5\n");
    ck_assert_uint_eq(b.len, strlen(b.p));
    prom_free(&b);
}
END_TEST

START_TEST(test_label_escaping)
{
    struct strbuf b;
    prom_init(&b);
    /* Quote, backslash, newline; a tab and valid UTF-8 pass as they are;
     * a stray continuation byte, a truncated sequence, an overlong form
     * and a surrogate each become U+FFFD. */
    const char *l[] = {"model",
                       "a\"b\\c\nd\te\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                       "|\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|",
                       NULL};
    prom_sample(&b, "m", l, "1");
    ck_assert_str_eq(b.p, "m{model=\"a\\\"b\\\\c\\nd\te\xc3\xa9\xe2\x82\xac"
                          "\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf"
                          "\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf"
                          "\xbd\xef\xbf\xbd|\"} 1\n");
    prom_free(&b);
}
END_TEST

START_TEST(test_double_text)
{
    char buf[32];
    static const double vs[] = {0.1,  1.0 / 3.0, 1e21, 5e-324,
                                12.5, 0.000123,  -2.5, 1795380808.267};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        prom_double(vs[i], buf, sizeof(buf));
        ck_assert_msg(strtod(buf, NULL) == vs[i], "%.17g written as %s", vs[i],
                      buf);
    }
    prom_double(0.1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.1");
    prom_double(9007199254740991.0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "9007199254740991");
    prom_double(1005317338904450.0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1005317338904450");
    prom_double(INFINITY, buf, sizeof(buf));
    ck_assert_str_eq(buf, "+Inf");
    prom_double(-INFINITY, buf, sizeof(buf));
    ck_assert_str_eq(buf, "-Inf");
    prom_double(NAN, buf, sizeof(buf));
    ck_assert_str_eq(buf, "NaN");
}
END_TEST

START_TEST(test_histogram_lines)
{
    static const double le[] = {0.5, 1, 2.5};
    const uint64_t counts[] = {1, 0, 2, 3};
    const char *l[] = {"model", "m", NULL};
    struct strbuf b;
    prom_init(&b);
    prom_histogram(&b, "d_seconds", l, le, 3, counts, 21.25);
    ck_assert_str_eq(b.p, "d_seconds_bucket{model=\"m\",le=\"0.5\"} 1\n"
                          "d_seconds_bucket{model=\"m\",le=\"1\"} 1\n"
                          "d_seconds_bucket{model=\"m\",le=\"2.5\"} 3\n"
                          "d_seconds_bucket{model=\"m\",le=\"+Inf\"} 6\n"
                          "d_seconds_sum{model=\"m\"} 21.25\n"
                          "d_seconds_count{model=\"m\"} 6\n");
    prom_free(&b);
    /* Without labels, le is the only one. */
    prom_init(&b);
    prom_histogram(&b, "d", NULL, le, 1, counts, 0);
    ck_assert_str_eq(b.p, "d_bucket{le=\"0.5\"} 1\nd_bucket{le=\"+Inf\"} 1\n"
                          "d_sum 0\nd_count 1\n");
    prom_free(&b);
}
END_TEST

START_TEST(test_hist_map)
{
    static const double le[] = {0.001, 0.01, 0.1, 0.25, 1, 10, 81.92};
    const int n = 7;
    uint8_t map[HIST_BUCKETS];
    prom_hist_map(le, n, map);
    /* Monotonic: a larger bucket never maps below a smaller one. */
    for (int k = 1; k < HIST_BUCKETS; k++)
        ck_assert_uint_ge(map[k], map[k - 1]);
    /* A value more than the resolution (2%) away from every bound lands
     * under the first bound at or above it. */
    for (double ms = 0.5; ms < 200000; ms *= 1.07) {
        int want = 0;
        while (want < n && ms / 1000.0 > le[want])
            want++;
        int near = 0;
        for (int i = 0; i < n; i++)
            if (fabs(ms / 1000.0 - le[i]) <= 0.021 * le[i])
                near = 1;
        if (near)
            continue;
        ck_assert_msg(map[hist_bucket(ms)] == want, "%g ms mapped to %d not %d",
                      ms, map[hist_bucket(ms)], want);
    }
    /* Below a millisecond is bucket 0, under the 1 ms bound. */
    ck_assert_uint_eq(map[0], 0);
    ck_assert_uint_eq(map[HIST_BUCKETS - 1], n);
}
END_TEST

START_TEST(test_many_writes_grow)
{
    struct strbuf b;
    prom_init(&b);
    for (int i = 0; i < 5000; i++)
        prom_sample_u64(&b, "a_long_metric_name_total", NULL, (uint64_t)i);
    ck_assert_int_eq(b.oom, 0);
    ck_assert_ptr_nonnull(strstr(b.p, "a_long_metric_name_total 4999\n"));
    ck_assert_uint_eq(b.len, strlen(b.p));
    prom_free(&b);
}
END_TEST

static Suite *prom_suite(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_family_and_samples);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_double_text);
    tcase_add_test(tc, test_histogram_lines);
    tcase_add_test(tc, test_hist_map);
    tcase_add_test(tc, test_many_writes_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(prom_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
