/*
 * live.h: the collector's live aggregator, the one writer of the segment.
 *
 * Events are added to the open second (live_add).  live_tick() closes every
 * second that has ended: it stores the second's counters and sparse
 * histograms in the ring, slides the 1m/5m/15m/1h windows (adding the new
 * second, subtracting the seconds that left each window, so a window costs
 * the same whatever its length), recomputes the windows' percentiles and
 * publishes them under the summary seqlock.  Readers therefore see whole
 * seconds only.
 *
 * Persistence and restart: each closed second is handed to an on_close
 * callback as a compact blob (live_blob_*), which the collector stores in
 * SQLite with the highest event sequence it includes; after a restart the
 * collector replays those blobs (live_inject) and the events committed
 * after them (live_add), and the windows come back.
 *
 * Single-threaded: only the collector's main thread calls these.
 */
#ifndef TT_LIVE_H
#define TT_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* What the aggregator needs of one committed event. */
struct live_event {
    const char *workspace, *provider, *model;
    int64_t ts_ms, received_ms;
    int64_t tokens[SHM_TOK_N];
    int64_t cost_nusd;
    double latency_ms; /* < 0: absent */
    double ttft_ms;    /* < 0: absent */
    int is_error;
    /* For the feed only; may be NULL. */
    const char *id, *operation, *error_type, *user, *agent, *session,
        *request_id;
    int32_t status, round;
    uint32_t flags;
};

struct live;

/* Called for each closed second that had events: blob describes it. */
typedef void (*live_close_fn)(void *ctx, int64_t sec, const void *blob,
                              size_t len);

/* Create the segment name with parameters p and an empty aggregator whose
 * open second is now_ms's.  Returns NULL with errno set. */
struct live *live_open(const char *name, const struct shm_params *p,
                       uint64_t generation, int64_t now_ms);

/* Make the segment visible to readers (after the rebuild). */
void live_publish(struct live *l);

/* Unmap and free (the segment stays for readers until the next start). */
void live_close(struct live *l);

/* The segment header, for health counters. */
struct shm_header *live_header(struct live *l);

/* Set the close callback (NULL: none). */
void live_on_close(struct live *l, live_close_fn fn, void *ctx);

/* Add one event to the open second and the totals.  An event whose
 * received second is past the open second first closes the seconds in
 * between.  Returns 0, or -1 if it found no slot (counted). */
int live_add(struct live *l, const struct live_event *e);

/* Write an event to the feed ring (the collector writes only the newest
 * of a batch). */
void live_feed(struct live *l, const struct live_event *e);

/* Close every second before now_ms's second. */
void live_tick(struct live *l, int64_t now_ms);

/* Replay a stored second: its content joins the open second (ticking up
 * to sec first when sec is later), without touching the totals. */
int live_inject(struct live *l, int64_t sec, const void *blob, size_t len);

/* Set the all-time totals of a dim (restart), allocating it if needed. */
int live_set_total(struct live *l, int kind, const char *ws,
                   const char *provider, const char *model,
                   const struct shm_agg *a);

/* Visit the totals of every dim touched since the last call (for saving):
 * fn gets the dim descriptor and its totals. */
void live_dirty_totals(struct live *l,
                       void (*fn)(void *ctx, const struct shm_dim *d,
                                  const struct shm_agg *a),
                       void *ctx);

/* Mark every dim's totals as changed (after their save failed). */
void live_redirty_totals(struct live *l);

/* Publish a JSON event (alert, budget, notification) to the event ring. */
void live_ring_publish(struct live *l, uint32_t type, const char *workspace,
                       const char *json, size_t len, int64_t now_ms);

/* The open second (epoch seconds). */
int64_t live_open_sec(const struct live *l);

/* Add b into a (exported for tests and rollups). */
void live_agg_add(struct shm_agg *a, const struct shm_agg *b);

#endif
