/*
 * hist.c: bucket arithmetic for the log histograms (see hist.h).
 *
 * Bucket boundaries come from one precomputed table so that hist_bucket()
 * and hist_lower() agree exactly: the index is first estimated with log()
 * and then corrected against the table, which makes the boundary values
 * land in the same bucket on every call.
 */
#include "hist.h"

#include <math.h>
#include <pthread.h>

static double hist_bounds[HIST_BUCKETS + 1]; /* lower bound of each bucket */
static double hist_inv_log_gamma;
static pthread_once_t hist_once = PTHREAD_ONCE_INIT;

/* Fill the boundary table once per process. */
static void hist_init(void)
{
    hist_bounds[0] = 0.0;
    for (int i = 1; i <= HIST_BUCKETS; i++)
        hist_bounds[i] = HIST_MIN_MS * pow(HIST_GAMMA, i - 1);
    hist_inv_log_gamma = 1.0 / log(HIST_GAMMA);
}

int hist_bucket(double ms)
{
    pthread_once(&hist_once, hist_init);
    if (!(ms >= HIST_MIN_MS)) /* also catches NaN */
        return 0;
    /* fmin: casting infinity to int is undefined. */
    int b =
        1 + (int)fmin(log(ms / HIST_MIN_MS) * hist_inv_log_gamma, HIST_BUCKETS);
    if (b >= HIST_BUCKETS)
        return HIST_BUCKETS - 1;
    /* Correct the floating-point estimate against the table. */
    while (b > 1 && ms < hist_bounds[b])
        b--;
    while (b < HIST_BUCKETS - 1 && ms >= hist_bounds[b + 1])
        b++;
    return b;
}

double hist_lower(int b)
{
    pthread_once(&hist_once, hist_init);
    return hist_bounds[b];
}

double hist_upper(int b)
{
    pthread_once(&hist_once, hist_init);
    return hist_bounds[b + 1];
}

double hist_value(int b)
{
    pthread_once(&hist_once, hist_init);
    if (b <= 0)
        return HIST_MIN_MS / 2;
    double lo = hist_bounds[b], hi = hist_bounds[b + 1];
    return 2 * lo * hi / (lo + hi);
}

double hist_quantile(const uint32_t *counts, uint64_t n, double q)
{
    if (n == 0)
        return 0.0;
    /* The epsilon keeps 0.95 * 100 from rounding up to rank 96. */
    uint64_t rank = (uint64_t)ceil(q * (double)n - 1e-9);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank)
            return hist_value(b);
    }
    return hist_value(HIST_BUCKETS - 1);
}
