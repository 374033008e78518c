/*
 * hist.h: log-bucketed latency histograms with a bounded relative error.
 *
 * Bucket 0 holds [0, HIST_MIN_MS); bucket i >= 1 holds
 * [HIST_MIN_MS * g^(i-1), HIST_MIN_MS * g^i) with g = HIST_GAMMA, and the
 * last bucket also takes everything above.  A percentile is answered with
 * the bucket's harmonic midpoint 2*lo*hi/(lo+hi), which is within
 * (g-1)/(g+1) < 1% of every value in the bucket: so P50/P95/P99 are within
 * 1% relative error of the exact nearest-rank percentile for any value in
 * [HIST_MIN_MS, HIST_MAX_MS].  Values below HIST_MIN_MS (sub-millisecond:
 * not a real LLM call) are reported as HIST_MIN_MS / 2.
 *
 * Histograms are plain arrays of counts so they add and subtract
 * element-wise (mergeable across seconds, windows and rollups).
 */
#ifndef TT_HIST_H
#define TT_HIST_H

#include <stdint.h>

#define HIST_MIN_MS  1.0
#define HIST_MAX_MS  3600000.0 /* one hour */
#define HIST_GAMMA   1.02
#define HIST_BUCKETS 768 /* 1 + ceil(log(MAX/MIN)/log(GAMMA)) rounded up */

/* The bucket index of a value in milliseconds (negative counts as 0). */
int hist_bucket(double ms);

/* The lower and upper bounds of bucket b in milliseconds. */
double hist_lower(int b);
double hist_upper(int b);

/* The value reported for bucket b. */
double hist_value(int b);

/*
 * The q-quantile (0 < q <= 1) of a histogram of HIST_BUCKETS counts with
 * total n (the sum of counts, passed in to avoid a pass): the reported value
 * of the bucket holding the nearest-rank element ceil(q*n).  Returns 0 when
 * n is 0.
 */
double hist_quantile(const uint32_t *counts, uint64_t n, double q);

#endif
