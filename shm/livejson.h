/*
 * livejson.h: the live segment's statistics and feed entries as JSON, the
 * shape GET /api/v1/live/stats and /api/v1/live/feed answer and the relay
 * streams.
 */
#ifndef TT_LIVEJSON_H
#define TT_LIVEJSON_H

#include <jansson.h>

#include "shm.h"

/* The statistics of workspace ws over window w (enum of shm_window_names)
 * as GET /api/v1/live/stats answers them (stale: the data is old); items:
 * room for h->nslots entries.  NULL when out of memory. */
json_t *livejson_stats(const struct shm_header *h, int w, const char *ws,
                       int stale, struct shm_item *items);

/* One feed entry as GET /api/v1/live/feed lists it. */
json_t *livejson_feed_entry(const struct shm_feed_ent *f);

#endif
