/*
 * rollup.c: histogram blobs and the SQL functions over them (rollup.h).
 *
 * The blob is sparse because most rollup rows see a few distinct
 * latencies: a minute of one model typically fills tens of the 768
 * buckets.  Entries are sorted by bucket so that two blobs merge in one
 * linear pass without decoding into dense arrays.
 */
#include "rollup.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* Read and write the little-endian entry fields. */
static void rollup_put(unsigned char *p, unsigned b, uint32_t n)
{
    p[0] = (unsigned char)b;
    p[1] = (unsigned char)(b >> 8);
    p[2] = (unsigned char)n;
    p[3] = (unsigned char)(n >> 8);
    p[4] = (unsigned char)(n >> 16);
    p[5] = (unsigned char)(n >> 24);
}

static unsigned rollup_bucket(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t rollup_count(const unsigned char *p)
{
    return (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 |
           (uint32_t)p[5] << 24;
}

size_t hist_blob_encode(const uint32_t *counts, unsigned char *buf)
{
    size_t n = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        if (counts[b] != 0) {
            rollup_put(buf + n, b, counts[b]);
            n += HIST_BLOB_ENT;
        }
    return n;
}

int64_t hist_blob_add(const void *blob, size_t len, uint32_t *counts)
{
    const unsigned char *p = blob;
    int64_t total = 0;
    if (len % HIST_BLOB_ENT != 0)
        return -1;
    for (size_t i = 0; i < len; i += HIST_BLOB_ENT) {
        unsigned b = rollup_bucket(p + i);
        if (b >= HIST_BUCKETS)
            return -1;
        counts[b] += rollup_count(p + i);
        total += rollup_count(p + i);
    }
    return total;
}

long hist_blob_merge(const void *a, size_t a_len, const void *b, size_t b_len,
                     unsigned char *out)
{
    const unsigned char *x = a, *y = b;
    size_t i = 0, j = 0, n = 0;
    if (a_len % HIST_BLOB_ENT != 0 || b_len % HIST_BLOB_ENT != 0)
        return -1;
    while (i < a_len || j < b_len) {
        unsigned bx = i < a_len ? rollup_bucket(x + i) : HIST_BUCKETS;
        unsigned by = j < b_len ? rollup_bucket(y + j) : HIST_BUCKETS;
        uint32_t c = 0;
        unsigned bk = bx < by ? bx : by;
        if (bk >= HIST_BUCKETS)
            return -1;
        if (bx == bk) {
            c += rollup_count(x + i);
            i += HIST_BLOB_ENT;
        }
        if (by == bk) {
            c += rollup_count(y + j);
            j += HIST_BLOB_ENT;
        }
        rollup_put(out + n, bk, c);
        n += HIST_BLOB_ENT;
    }
    return (long)n;
}

/* tt_hist_merge(a, b): the merged blob. */
static void rollup_fn_merge(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    (void)argc;
    const void *a = sqlite3_value_blob(v[0]), *b = sqlite3_value_blob(v[1]);
    int al = sqlite3_value_bytes(v[0]), bl = sqlite3_value_bytes(v[1]);
    unsigned char *out = sqlite3_malloc(al + bl + 1);
    if (out == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    long n = hist_blob_merge(a, (size_t)al, b, (size_t)bl, out);
    if (n < 0) {
        sqlite3_free(out);
        sqlite3_result_error(ctx, "malformed histogram blob", -1);
        return;
    }
    sqlite3_result_blob(ctx, out, (int)n, sqlite3_free);
}

/* The state of the aggregates: dense counts, allocated on first use. */
struct rollup_agg {
    uint32_t *counts;
    int bad;
};

static struct rollup_agg *rollup_agg_state(sqlite3_context *ctx)
{
    struct rollup_agg *a = sqlite3_aggregate_context(ctx, sizeof(*a));
    if (a != NULL && a->counts == NULL && !a->bad) {
        a->counts = sqlite3_malloc(HIST_BUCKETS * sizeof(uint32_t));
        if (a->counts == NULL) {
            a->bad = 1;
            return a;
        }
        memset(a->counts, 0, HIST_BUCKETS * sizeof(uint32_t));
    }
    return a;
}

static void rollup_fn_sum_step(sqlite3_context *ctx, int argc,
                               sqlite3_value **v)
{
    (void)argc;
    struct rollup_agg *a = rollup_agg_state(ctx);
    if (a == NULL || a->bad)
        return;
    if (hist_blob_add(sqlite3_value_blob(v[0]),
                      (size_t)sqlite3_value_bytes(v[0]), a->counts) < 0)
        a->bad = 1;
}

static void rollup_fn_of_step(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    (void)argc;
    struct rollup_agg *a = rollup_agg_state(ctx);
    if (a == NULL || a->bad || sqlite3_value_type(v[0]) == SQLITE_NULL)
        return;
    a->counts[hist_bucket(sqlite3_value_double(v[0]))]++;
}

static void rollup_fn_final(sqlite3_context *ctx)
{
    struct rollup_agg *a = sqlite3_aggregate_context(ctx, 0);
    if (a == NULL || a->counts == NULL) {
        if (a != NULL && a->bad)
            sqlite3_result_error(ctx, "malformed histogram blob", -1);
        else
            sqlite3_result_zeroblob(ctx, 0);
        return;
    }
    if (a->bad) {
        sqlite3_free(a->counts);
        sqlite3_result_error(ctx, "malformed histogram blob", -1);
        return;
    }
    unsigned char *out = sqlite3_malloc(HIST_BUCKETS * HIST_BLOB_ENT);
    if (out == NULL) {
        sqlite3_free(a->counts);
        sqlite3_result_error_nomem(ctx);
        return;
    }
    size_t n = hist_blob_encode(a->counts, out);
    sqlite3_free(a->counts);
    sqlite3_result_blob(ctx, out, (int)n, sqlite3_free);
}

int64_t rollup_seq(struct sqlite3 *db)
{
    sqlite3_stmt *st;
    int64_t seq = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM meta WHERE key = "
                           "'rollup_seq'",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? seq : -1;
}

int rollup_sql_register(struct sqlite3 *db)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    int rc = sqlite3_create_function(db, "tt_hist_merge", 2, flags, NULL,
                                     rollup_fn_merge, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "tt_hist_sum", 1, flags, NULL, NULL,
                                     rollup_fn_sum_step, rollup_fn_final);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "tt_hist_of", 1, flags, NULL, NULL,
                                     rollup_fn_of_step, rollup_fn_final);
    return rc;
}
