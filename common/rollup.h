/*
 * rollup.h: the analytics rollups, shared by their writer (the collector)
 * and their readers (the API workers).
 *
 * Storage scales with time, not with events.  The collector aggregates
 * every committed event into the table `rollups` at four resolutions
 * (ROLLUP_RES_*: minute, hour, day and week buckets aligned to UTC; weeks
 * are 7-day buckets counted from the epoch, so they start on Thursdays,
 * and serve only questions without buckets) and into
 * several "cubes": the same measures grouped by different dimensions, so
 * that each question reads the smallest cube that holds every dimension it
 * filters or groups by:
 *
 *   cube             dimensions set (others are '' or 0)    res      hist
 *   ROLLUP_MODEL     provider, model, is_error              m h d w yes
 *   ROLLUP_AGENT     agent, provider, model, is_error         h d w yes
 *   ROLLUP_USER      user, agent, provider, model, is_error   h d w yes
 *   ROLLUP_USERS     user, is_error                           h d w no
 *   ROLLUP_ERRORS    provider, model, agent, user,            h d w no
 *                    error_type, status (errors only)
 *   ROLLUP_SESSION   session, user, agent, provider, model,   h        yes
 *                    is_error (only events with a session)
 *   ROLLUP_AGENTS    agent, is_error                          h d w yes
 *   ROLLUP_ERRTYPES  provider, model, error_type, status      h d w no
 *                    (errors only)
 *   ROLLUP_TOTAL     is_error                               m h d w yes
 *
 * Only the totals and model cubes have minute rows: in the wide cubes
 * nearly every event would have a minute row of its own, so they start at
 * hours and readers take the partial hours at the edges of a range from
 * the raw events.
 *
 * Cubes without histograms store empty blobs: their questions (unique
 * users, top users, error breakdowns) need no percentiles, and narrow rows
 * scan several times faster.
 *
 * A row is keyed by (ws, cube, res, ts, provider, model, agent, user,
 * session, is_error, error_type, status).  ts is the bucket start in epoch
 * milliseconds and res the bucket length in seconds.  An absent string
 * dimension of an event (no agent, say) is stored as ''.  Measures add:
 * calls, errors, the five token counts, cost_nusd (the sum of
 * round(cost_usd * 1e9), so sums are exact), lat_n/lat_sum and
 * ttft_n/ttft_sum (events carrying the value, and the sum of the values),
 * first_ms/last_ms (earliest and latest event ts) and two histograms.
 *
 * Histogram blobs (lat_hist, ttft_hist) hold the HIST_* buckets of
 * shm/hist.h sparsely: a sequence of 6-byte entries, each a little-endian
 * uint16 bucket index followed by a little-endian uint32 count, with
 * strictly increasing bucket indexes and no zero counts.  An empty
 * histogram is a zero-length blob.  Blobs merge by adding counts.
 *
 * Sessions (crosstalk) have their own tables: `sessions` (one row per
 * workspace and session id: user, agent, started/last activity, totals,
 * distinct rounds) and `session_rounds` (per session, round, provider and
 * model: totals, latency sum and histogram).  An event without a round
 * counts under round -1.
 *
 * `session_days` sums the sessions by the UTC day of their started_ms
 * (day_ms): per (ws, day_ms) the number of sessions, their totals to date
 * (calls, errors, tokens, cost_nusd, rounds, lat_n, lat_sum), the sessions
 * with an error (err_sessions) and the sum of last_ms - started_ms
 * (dur_ms).  It always equals that GROUP BY over `sessions`: a flush takes
 * each touched session's row out of the day it started before the flush
 * and adds it back under the day it starts after (a late event can move
 * a start to an earlier day), and retention takes out the sessions it
 * deletes.
 *
 * Consistency: the collector flushes its in-memory aggregates in a
 * transaction of their own after group commits, at most ROLLUP_FLUSH_MS
 * apart and once ingest pauses for ROLLUP_IDLE_MS, together with
 * meta.rollup_seq, the highest event seq the rollups include.  After a
 * crash the collector re-adds the events with seq > rollup_seq, so
 * rollups always equal an aggregate of events 1..rollup_seq exactly.
 * Readers that need the newest events (one read transaction) add the
 * raw rows with seq > rollup_seq (at most about a second of ingest).
 *
 * Retention: raw events and minute rows live retention_days; hour, day
 * and week rows, sessions and session rounds rollup_retention_days.  Beyond
 * retention_days, a range's partial hours (the wide cubes) or minutes
 * (the model cube) at its edges have no raw events left to read.
 */
#ifndef TT_ROLLUP_H
#define TT_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

enum rollup_cube {
    ROLLUP_MODEL = 0,
    ROLLUP_AGENT = 1,
    ROLLUP_USER = 2,
    ROLLUP_USERS = 3,
    ROLLUP_ERRORS = 4,
    ROLLUP_SESSION = 5,
    ROLLUP_AGENTS = 6,
    ROLLUP_ERRTYPES = 7,
    ROLLUP_TOTAL = 8,
    ROLLUP_NCUBES
};

#define ROLLUP_RES_MINUTE 60
#define ROLLUP_RES_HOUR   3600
#define ROLLUP_RES_DAY    86400
#define ROLLUP_RES_WEEK   604800 /* 7 days from the epoch (Thursdays) */

#define ROLLUP_FLUSH_MS 1000 /* at most this long between flushes */
#define ROLLUP_IDLE_MS  20   /* flush once ingest pauses this long */

/* Bytes of one histogram blob entry. */
#define HIST_BLOB_ENT 6

/* Encode HIST_BUCKETS dense counts into buf (at least
 * HIST_BUCKETS * HIST_BLOB_ENT bytes); returns the blob's length. */
size_t hist_blob_encode(const uint32_t *counts, unsigned char *buf);

/* Add the counts of blob (len bytes) to dense counts[HIST_BUCKETS]; returns
 * the number of values added, or -1 if the blob is malformed (then counts
 * are left partly added: callers treat the whole answer as failed). */
int64_t hist_blob_add(const void *blob, size_t len, uint32_t *counts);

/* Merge two blobs into out (at least a_len + b_len bytes); returns the
 * merged length, or -1 if either is malformed. */
long hist_blob_merge(const void *a, size_t a_len, const void *b, size_t b_len,
                     unsigned char *out);

struct sqlite3;

/*
 * Register the SQL functions over histogram blobs on db:
 *   tt_hist_merge(a, b)   scalar: the merged blob (NULL counts as empty);
 *   tt_hist_sum(blob)     aggregate: the merge of every blob in the group;
 *   tt_hist_of(ms)        aggregate: the blob of the values ms (NULLs are
 *                         skipped), for raw events.
 * Returns a SQLite code.
 */
int rollup_sql_register(struct sqlite3 *db);

/* meta.rollup_seq of db: the highest event seq the rollups include (0 when
 * there are no rollups yet), or -1 when it cannot be read: taking 0 then
 * would add every raw event to the rollups that already hold it. */
int64_t rollup_seq(struct sqlite3 *db);

#endif
