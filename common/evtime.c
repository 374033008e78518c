/*
 * evtime.c: server-assigned event ids and RFC 3339 time, for event.c and
 * everything that prints a time.
 *
 * Both are pure functions of their arguments (and, for ids, of a
 * per-thread random state): no locks, no locale, no libc time zone state.
 */
#include "event.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/*
 * Server-side ids.  Each thread keeps its own xoshiro256** generator seeded
 * from getrandom(), so no lock is taken per id.  A forked child would
 * otherwise inherit its parent's state and repeat its ids; the atfork
 * handler bumps a generation number that makes every thread reseed.
 */

/* A per-thread random generator. */
struct ev_rng {
    uint64_t s[4]; /* xoshiro256** state, never all zero */
    unsigned gen;  /* ev_fork_gen when seeded */
    bool seeded;   /* s holds a seed */
};

static _Thread_local struct ev_rng ev_rng;
static atomic_uint ev_fork_gen;
static pthread_once_t ev_atfork_once = PTHREAD_ONCE_INIT;

/* In a forked child, make every thread's generator reseed. */
static void ev_atfork_child(void)
{
    atomic_fetch_add_explicit(&ev_fork_gen, 1, memory_order_relaxed);
}

/* Register ev_atfork_child, once per process. */
static void ev_atfork_register(void)
{
    pthread_atfork(NULL, NULL, ev_atfork_child);
}

/* Return the next value of splitmix64, used to stretch a weak seed. */
static uint64_t ev_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Seed this thread's generator from getrandom(), falling back to the clock,
 * pid and a stack address if the kernel cannot supply randomness. */
static void ev_rng_seed(struct ev_rng *g)
{
    unsigned char *p = (unsigned char *)g->s;
    size_t got = 0;

    pthread_once(&ev_atfork_once, ev_atfork_register);
    g->gen = atomic_load_explicit(&ev_fork_gen, memory_order_relaxed);
    while (got < sizeof(g->s)) {
        ssize_t r = getrandom(p + got, sizeof(g->s) - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < sizeof(g->s)) {
        struct timespec ts;
        uint64_t x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&ts;
        for (int i = 0; i < 4; i++)
            g->s[i] ^= ev_splitmix(&x);
    }
    if ((g->s[0] | g->s[1] | g->s[2] | g->s[3]) == 0)
        g->s[0] = 1;
    g->seeded = true;
}

/* Return the next 64 random bits of g (xoshiro256**). */
static uint64_t ev_rng_next(struct ev_rng *g)
{
    uint64_t *s = g->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Write the low 4*n bits of v as n lowercase hex digits. */
static void ev_hex(char *out, uint64_t v, int n)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = n - 1; i >= 0; i--, v >>= 4)
        out[i] = digits[v & 15];
}

/* Write 12 hex digits of ms time and 20 of randomness into buf. */
void ev_new_id(char *buf)
{
    struct ev_rng *g = &ev_rng;
    struct timespec ts;
    uint64_t ms, a, b;

    if (!g->seeded ||
        g->gen != atomic_load_explicit(&ev_fork_gen, memory_order_relaxed))
        ev_rng_seed(g);
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    a = ev_rng_next(g);
    b = ev_rng_next(g);
    ev_hex(buf, ms, 12);
    ev_hex(buf + 12, a, 16); /* 64 random bits */
    ev_hex(buf + 28, b, 4);  /* and 16 more: 80 in all */
    buf[32] = '\0';
}

/*
 * RFC 3339 timestamps, with calendar arithmetic done by hand (Howard
 * Hinnant's days-from-civil) so that nothing depends on the locale, the TZ
 * variable or a non-reentrant libc call.
 */

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d. */
static int64_t ev_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date y-m-d of the day z days after 1970-01-01. */
static void ev_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Read exactly n ASCII digits at s into *out.  Returns true on success;
 * stops at a NUL, so it never reads past the end of s. */
static bool ev_digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Number of days in month m of year y. */
static int ev_month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* Parse a strict RFC 3339 date-time into epoch ms (see event.h). */
int ev_parse_rfc3339(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    const char *p;
    int64_t t;

    if (!ev_digits(s, 4, &y) || s[4] != '-' || !ev_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !ev_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || !ev_digits(s + 11, 2, &h) ||
        s[13] != ':' || !ev_digits(s + 14, 2, &mi) || s[16] != ':' ||
        !ev_digits(s + 17, 2, &sec))
        return -1;
    p = s + 19;
    if (*p == '.') {
        int k = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 3)
                ms = ms * 10 + (*p - '0');
        if (k == 0)
            return -1;
        for (; k < 3; k++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (!ev_digits(p + 1, 2, &oh) || p[3] != ':' ||
            !ev_digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > ev_month_days(y, mo) || h > 23 ||
        mi > 59 || sec > 60)
        return -1;
    t = ev_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= (int64_t)sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + ms;
    return 0;
}

/* Format epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void ev_format_rfc3339(int64_t ms, char *buf, size_t n)
{
    int64_t secs, days, y;
    int m, d, sod, msec;

    /* Floor division, so times before 1970 format correctly too. */
    secs = ms / 1000 - (ms % 1000 < 0);
    msec = (int)(ms - secs * 1000);
    days = secs / 86400 - (secs % 86400 < 0);
    sod = (int)(secs - days * 86400);
    ev_civil_from_days(days, &y, &m, &d);
    snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m,
             d, sod / 3600, sod / 60 % 60, sod % 60, msec);
}
