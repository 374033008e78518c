/*
 * check_hist.c: unit tests for the log-bucketed latency histograms
 * (shm/hist.h).
 *
 * The promise under test is the header's: every value in [HIST_MIN_MS,
 * HIST_MAX_MS] lands in a bucket whose reported value is within 1% of it,
 * so P50/P95/P99 read from a histogram are within 1% of the exact
 * nearest-rank percentile of the raw values, whatever their distribution,
 * and histograms merge by adding counts.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

/* A small deterministic generator (splitmix64) so runs are repeatable. */
static uint64_t rng_state;

/* Seed the generator. */
static void rng_seed(uint64_t s)
{
    rng_state = s;
}

/* The next 64 random bits. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A uniform double in (0, 1). */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

/* A standard normal deviate (Box-Muller). */
static double rng_normal(void)
{
    double u = rng_unit(), v = rng_unit();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Keep a value inside the range the accuracy promise covers. */
static double clamp_ms(double v)
{
    if (v < HIST_MIN_MS)
        return HIST_MIN_MS;
    if (v > HIST_MAX_MS)
        return HIST_MAX_MS;
    return v;
}

/* qsort comparator for doubles. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The exact nearest-rank q-percentile of sorted[0..n-1]. */
static double exact_rank(const double *sorted, size_t n, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)n - 1e-9);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* Build a histogram of v[0..n-1] into counts (HIST_BUCKETS zeroed). */
static void fill(uint32_t *counts, const double *v, size_t n)
{
    memset(counts, 0, HIST_BUCKETS * sizeof(*counts));
    for (size_t i = 0; i < n; i++)
        counts[hist_bucket(v[i])]++;
}

/* Assert P50/P95/P99 of v from a histogram are within 1% of exact. */
static void check_accuracy(const char *what, double *v, size_t n)
{
    static uint32_t counts[HIST_BUCKETS];
    static const double qs[] = {0.5, 0.95, 0.99};
    fill(counts, v, n);
    qsort(v, n, sizeof(*v), cmp_double);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double exact = exact_rank(v, n, qs[i]);
        double got = hist_quantile(counts, n, qs[i]);
        double rel = fabs(got - exact) / exact;
        ck_assert_msg(rel <= 0.01,
                      "%s n=%zu q=%.2f: histogram %.6f vs exact %.6f "
                      "(relative error %.5f > 0.01)",
                      what, n, qs[i], got, exact, rel);
    }
}

/* Bucket boundaries strictly increase and adjacent buckets share a bound. */
START_TEST(test_bounds_monotonic)
{
    for (int b = 0; b < HIST_BUCKETS - 1; b++) {
        ck_assert_msg(hist_lower(b) < hist_lower(b + 1),
                      "lower(%d)=%.17g not below lower(%d)=%.17g", b,
                      hist_lower(b), b + 1, hist_lower(b + 1));
        ck_assert_msg(hist_upper(b) == hist_lower(b + 1),
                      "upper(%d)=%.17g != lower(%d)=%.17g", b, hist_upper(b),
                      b + 1, hist_lower(b + 1));
    }
    ck_assert_double_eq(hist_lower(0), 0.0);
    ck_assert_double_eq(hist_lower(1), HIST_MIN_MS);
}
END_TEST

/* Every bucket's lower bound maps back to that bucket, and just below it
 * to the previous one. */
START_TEST(test_bucket_of_lower_bound)
{
    for (int b = 1; b < HIST_BUCKETS; b++) {
        double lo = hist_lower(b);
        ck_assert_int_eq(hist_bucket(lo), b);
        ck_assert_int_eq(hist_bucket(nextafter(lo, 0.0)), b - 1);
    }
}
END_TEST

/* The reported value of a bucket lies inside it, within 1% of both ends. */
START_TEST(test_value_inside_bucket)
{
    for (int b = 1; b < HIST_BUCKETS; b++) {
        double lo = hist_lower(b), hi = hist_upper(b), v = hist_value(b);
        ck_assert_msg(v >= lo && v < hi, "value(%d)=%.17g not in [%g, %g)", b,
                      v, lo, hi);
        ck_assert_msg((v - lo) / lo < 0.01 && (hi - v) / hi < 0.01,
                      "value(%d)=%.17g more than 1%% from [%g, %g)", b, v, lo,
                      hi);
    }
}
END_TEST

/* The last bucket starts below HIST_MAX_MS's bucket end, so the promised
 * range fits inside real buckets. */
START_TEST(test_range_fits)
{
    int b = hist_bucket(HIST_MAX_MS);
    ck_assert_int_lt(b, HIST_BUCKETS);
    ck_assert_msg(HIST_MAX_MS < hist_upper(b),
                  "HIST_MAX_MS %g not below upper(%d)=%g", HIST_MAX_MS, b,
                  hist_upper(b));
}
END_TEST

/* Values below HIST_MIN_MS go to bucket 0 and read as HIST_MIN_MS / 2. */
START_TEST(test_below_min_is_bucket_zero)
{
    ck_assert_int_eq(hist_bucket(0.0), 0);
    ck_assert_int_eq(hist_bucket(0.5), 0);
    ck_assert_int_eq(hist_bucket(nextafter(HIST_MIN_MS, 0.0)), 0);
    ck_assert_int_eq(hist_bucket(HIST_MIN_MS), 1);
    ck_assert_double_eq(hist_value(0), HIST_MIN_MS / 2);
}
END_TEST

/* NaN and negative values count as 0. */
START_TEST(test_nan_and_negative_are_zero)
{
    ck_assert_int_eq(hist_bucket(NAN), 0);
    ck_assert_int_eq(hist_bucket(-1.0), 0);
    ck_assert_int_eq(hist_bucket(-1e300), 0);
    ck_assert_int_eq(hist_bucket(-INFINITY), 0);
}
END_TEST

/* Huge values, up to infinity, go to the last bucket. */
START_TEST(test_huge_is_last_bucket)
{
    ck_assert_int_eq(hist_bucket(HIST_MAX_MS * 10), HIST_BUCKETS - 1);
    ck_assert_int_eq(hist_bucket(1e12), HIST_BUCKETS - 1);
    ck_assert_int_eq(hist_bucket(1e300), HIST_BUCKETS - 1);
    ck_assert_int_eq(hist_bucket(INFINITY), HIST_BUCKETS - 1);
}
END_TEST

/* An empty histogram answers 0 for every quantile. */
START_TEST(test_empty_is_zero)
{
    static uint32_t counts[HIST_BUCKETS];
    ck_assert_double_eq(hist_quantile(counts, 0, 0.5), 0.0);
    ck_assert_double_eq(hist_quantile(counts, 0, 0.99), 0.0);
}
END_TEST

/* The rank epsilon: P95 of 1..100 is the 95th value, not the 96th. */
START_TEST(test_rank_epsilon)
{
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = 100.0 * (i + 1);
    static uint32_t counts[HIST_BUCKETS];
    fill(counts, v, 100);
    double got = hist_quantile(counts, 100, 0.95);
    ck_assert_msg(fabs(got - 9500.0) / 9500.0 <= 0.01,
                  "P95 of 100..10000 step 100: %.3f vs exact 9500", got);
}
END_TEST

/* Uniform latencies from 1 to 10000 ms. */
START_TEST(test_accuracy_uniform)
{
    size_t n = 100000;
    double *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    rng_seed(1);
    for (size_t i = 0; i < n; i++)
        v[i] = 1.0 + rng_unit() * 9999.0;
    check_accuracy("uniform 1..10000", v, n);
    free(v);
}
END_TEST

/* Log-normal latencies like real LLM calls (median ~800 ms, long tail). */
START_TEST(test_accuracy_lognormal)
{
    size_t n = 200000;
    double *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    rng_seed(2);
    for (size_t i = 0; i < n; i++)
        v[i] = clamp_ms(exp(log(800.0) + 0.9 * rng_normal()));
    check_accuracy("log-normal", v, n);
    free(v);
}
END_TEST

/* A bimodal mix: fast cached answers and slow long generations. */
START_TEST(test_accuracy_bimodal)
{
    size_t n = 100000;
    double *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    rng_seed(3);
    for (size_t i = 0; i < n; i++) {
        if (rng_unit() < 0.7)
            v[i] = clamp_ms(200.0 + 20.0 * rng_normal());
        else
            v[i] = clamp_ms(15000.0 + 3000.0 * rng_normal());
    }
    check_accuracy("bimodal", v, n);
    free(v);
}
END_TEST

/* Every value the same, at several magnitudes including both ends. */
START_TEST(test_accuracy_constant)
{
    static const double cs[] = {HIST_MIN_MS, 1.5,     42.0,
                                1234.5,      99999.9, HIST_MAX_MS};
    double v[1000];
    for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
        for (size_t i = 0; i < 1000; i++)
            v[i] = cs[k];
        check_accuracy("constant", v, 1000);
    }
}
END_TEST

/* A histogram of a single value answers that value for every quantile. */
START_TEST(test_accuracy_single_value)
{
    double v[1];
    rng_seed(4);
    for (int k = 0; k < 1000; k++) {
        v[0] = clamp_ms(exp(rng_unit() * log(HIST_MAX_MS)));
        check_accuracy("single value", v, 1);
    }
}
END_TEST

/* One value against a million values: both ends of the count range. */
START_TEST(test_accuracy_one_vs_million)
{
    double one = 777.0;
    check_accuracy("one value", &one, 1);

    size_t n = 1000000;
    double *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    rng_seed(5);
    for (size_t i = 0; i < n; i++)
        v[i] = clamp_ms(exp(rng_unit() * log(HIST_MAX_MS)));
    v[n / 2] = HIST_MAX_MS; /* one outlier among a million */
    check_accuracy("a million values", v, n);
    free(v);
}
END_TEST

/* Values spread over the whole promised range on a log scale. */
START_TEST(test_accuracy_full_range)
{
    size_t n = 50000;
    double *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    rng_seed(6);
    for (size_t i = 0; i < n; i++)
        v[i] = clamp_ms(HIST_MIN_MS * exp(rng_unit() * log(HIST_MAX_MS)));
    check_accuracy("log-uniform full range", v, n);
    free(v);
}
END_TEST

/* Summing histograms element-wise gives exactly the answers of one
 * histogram built from all the values. */
START_TEST(test_merge_equals_whole)
{
    enum { PARTS = 7, PER = 5000 };
    static uint32_t parts[PARTS][HIST_BUCKETS], merged[HIST_BUCKETS],
        whole[HIST_BUCKETS];
    static double all[PARTS * PER];
    rng_seed(7);
    for (int p = 0; p < PARTS; p++) {
        /* Each part has its own distribution, like seconds of traffic. */
        double median = 50.0 * (p + 1) * (p + 1);
        for (int i = 0; i < PER; i++)
            all[p * PER + i] = clamp_ms(median * exp(0.5 * rng_normal()));
        fill(parts[p], all + p * PER, PER);
    }
    memset(merged, 0, sizeof(merged));
    for (int p = 0; p < PARTS; p++)
        for (int b = 0; b < HIST_BUCKETS; b++)
            merged[b] += parts[p][b];
    fill(whole, all, PARTS * PER);
    ck_assert_mem_eq(merged, whole, sizeof(whole));
    static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        ck_assert_double_eq(hist_quantile(merged, PARTS * PER, qs[i]),
                            hist_quantile(whole, PARTS * PER, qs[i]));
    check_accuracy("merged", all, PARTS * PER);
}
END_TEST

/* Build the suite. */
static Suite *hist_suite(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("buckets");
    tcase_add_test(tc, test_bounds_monotonic);
    tcase_add_test(tc, test_bucket_of_lower_bound);
    tcase_add_test(tc, test_value_inside_bucket);
    tcase_add_test(tc, test_range_fits);
    tcase_add_test(tc, test_below_min_is_bucket_zero);
    tcase_add_test(tc, test_nan_and_negative_are_zero);
    tcase_add_test(tc, test_huge_is_last_bucket);
    tcase_add_test(tc, test_empty_is_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rank_epsilon);
    tcase_add_test(tc, test_accuracy_uniform);
    tcase_add_test(tc, test_accuracy_lognormal);
    tcase_add_test(tc, test_accuracy_bimodal);
    tcase_add_test(tc, test_accuracy_constant);
    tcase_add_test(tc, test_accuracy_single_value);
    tcase_add_test(tc, test_accuracy_one_vs_million);
    tcase_add_test(tc, test_accuracy_full_range);
    tcase_add_test(tc, test_merge_equals_whole);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hist_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
