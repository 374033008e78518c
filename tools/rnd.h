/*
 * rnd.h: the small deterministic random number generator the traffic tools
 * share (tt-traffic, tt-history).
 *
 * The state is one uint64_t owned by the caller; every function advances
 * it.  splitmix64 is fast, passes BigCrush and, above all, gives the same
 * sequence for the same seed on every machine, which is what makes a
 * --seed reproducible.  Nothing here locks: a state belongs to one thread
 * at a time.
 */
#ifndef TT_RND_H
#define TT_RND_H

#include <math.h>
#include <stdint.h>

/* Return the next 64 random bits of splitmix64 with state *x. */
static inline uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Return a uniform double in [0, 1). */
static inline double rnd_u01(uint64_t *s)
{
    return (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Return a uniform integer in [0, n). */
static inline int rnd_int(uint64_t *s, int n)
{
    return (int)(rnd_u01(s) * n);
}

/* Return a standard normal deviate (Box-Muller). */
static inline double rnd_norm(uint64_t *s)
{
    double u = 1.0 - rnd_u01(s), v = rnd_u01(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Return a log-normal deviate with the given median and log-sd sigma. */
static inline double rnd_lognorm(uint64_t *s, double median, double sigma)
{
    return median * exp(sigma * rnd_norm(s));
}

/* Return an exponential deviate with the given mean. */
static inline double rnd_exp(uint64_t *s, double mean)
{
    return -mean * log(1.0 - rnd_u01(s));
}

/* Return an index in [0, n) drawn with probability proportional to w[]. */
static inline int rnd_pick(uint64_t *s, const double *w, int n)
{
    double total = 0, x;
    for (int i = 0; i < n; i++)
        total += w[i];
    x = rnd_u01(s) * total;
    for (int i = 0; i < n - 1; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

/* Return a token count from a log-normal truncated to [lo, hi]: values
 * outside are drawn again, so the bounds do not pile up counts. */
static inline long long rnd_tokens(uint64_t *s, double median, double sigma,
                                   double lo, double hi)
{
    double x = rnd_lognorm(s, median, sigma);
    for (int i = 0; i < 8 && (x < lo || x > hi); i++)
        x = rnd_lognorm(s, median, sigma);
    return llround(x < lo ? lo : x > hi ? hi : x);
}

#endif
