/*
 * shm.h: the live metrics segment, its layout and its reader API.
 *
 * One POSIX shared-memory segment per stack holds everything live: totals
 * since the database began, a per-second ring covering the last hour, the
 * precomputed 1m/5m/15m/1h windows, the recent-request feed, the event
 * ring (alerts, budgets, notifications) and the budgets' current spend.  The
 * collector is its only writer (shm/live.c); the API workers and the relay map
 * it read-only.
 *
 * Layout rules: a versioned header first (magic, layout version, size,
 * generation), then areas found through offsets in the header, never
 * pointers.  Everything a reader copies is guarded by a sequence counter
 * (seqlock): the writer makes it odd, writes, makes it even; a reader
 * retries when it saw an odd value or the value changed.  Readers never
 * block the writer and never write.
 *
 * A collector start creates a new segment under the same name with a new
 * generation; readers notice (shm_reader_check) and remap.
 *
 * Dimensions ("dims") are slots: one per workspace (its totals), one per
 * workspace x provider and one per workspace x provider x model, plus an
 * "other" provider slot and an "other" model slot per workspace that take
 * what no longer fits.  A dim's descriptor never changes within a
 * generation, and the count of dims only grows.
 */
#ifndef TT_SHM_H
#define TT_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"

#define SHM_MAGIC   0x50415454u /* "TTAP" */
#define SHM_VERSION 4
#define SHM_WINDOWS 4 /* 1m, 5m, 15m, 1h */
#define SHM_OTHER   "other"

/* Window lengths in seconds, index by window number. */
extern const int shm_window_secs[SHM_WINDOWS];
extern const char *const shm_window_names[SHM_WINDOWS];

/* Token types, in the order of shm_agg.tokens. */
enum shm_tok {
    SHM_TOK_INPUT,
    SHM_TOK_OUTPUT,
    SHM_TOK_CACHE_READ,
    SHM_TOK_CACHE_WRITE,
    SHM_TOK_REASONING,
    SHM_TOK_N
};
extern const char *const shm_tok_names[SHM_TOK_N];

enum shm_dim_kind { SHM_DIM_WORKSPACE = 1, SHM_DIM_PROVIDER, SHM_DIM_MODEL };

/* Describes one slot.  Strings are NUL-terminated. */
struct shm_dim {
    uint16_t kind; /* enum shm_dim_kind */
    uint16_t ws;   /* slot of the workspace this dim belongs to */
    uint32_t reserved;
    char workspace[72];
    char provider[136]; /* "" for a workspace dim; SHM_OTHER when full */
    char model[136];    /* "" unless kind is SHM_DIM_MODEL */
};

/* Additive counters; they add and subtract exactly (cost in nano-USD). */
struct shm_agg {
    uint64_t requests;
    uint64_t errors;
    uint64_t tokens[SHM_TOK_N];
    int64_t cost_nusd; /* sum of round(cost_usd * 1e9) */
    uint64_t lat_n;    /* events that carried latency_ms */
    double lat_sum_ms;
    uint64_t ttft_n; /* events that carried ttft_ms */
    double ttft_sum_ms;
};

/* Counters plus the percentiles computed from the histograms behind them. */
struct shm_stat {
    struct shm_agg a;
    float p50, p95, p99; /* latency, ms */
    float ttft_p95;      /* ms */
};

/* Health of the collector, written with relaxed atomics. */
struct shm_health {
    _Atomic int64_t heartbeat_ms;      /* last loop iteration */
    _Atomic uint64_t events_stored;    /* new events committed */
    _Atomic uint64_t events_duplicate; /* ids already stored */
    _Atomic uint64_t commits;          /* group transactions */
    _Atomic uint64_t last_commit_rows;
    _Atomic uint64_t last_commit_us;
    _Atomic uint64_t commit_us_total;
    _Atomic uint64_t rejected_busy;  /* batches answered PROTO_BUSY */
    _Atomic uint64_t rejected_fail;  /* batches whose commit failed */
    _Atomic uint64_t queue_depth;    /* events read but not committed */
    _Atomic uint64_t live_dropped;   /* events with no live slot */
    _Atomic uint64_t hist_dropped;   /* histogram entries not kept */
    _Atomic uint64_t db_bytes;       /* database + WAL size */
    _Atomic int64_t db_ok;           /* 1 if the last commit worked */
    _Atomic uint64_t unknown_models; /* events priced at 0: model unknown */
    _Atomic uint64_t keys_gen;       /* bumped when API keys change */
    _Atomic uint64_t alert_rules;    /* rules the alert engine evaluates */
    _Atomic uint64_t alert_passes;   /* passes over the ring per cycle */
    _Atomic uint64_t alert_cycles;   /* evaluations done */
    _Atomic uint64_t alert_eval_us;  /* the last one's duration */
    _Atomic uint64_t alert_max_us;   /* the longest one's */
};

/* The segment header. */
struct shm_header {
    uint32_t magic;        /* SHM_MAGIC */
    uint32_t version;      /* SHM_VERSION */
    uint64_t size;         /* bytes of the whole segment */
    uint64_t generation;   /* new for every collector start */
    int64_t started_ms;    /* when this collector started */
    int32_t pid;           /* the collector's pid */
    uint32_t nslots;       /* dimension slots */
    uint32_t nseconds;     /* per-second ring length */
    uint32_t hist_entries; /* histogram entries per second */
    uint32_t feed_size;    /* feed ring length */
    uint32_t ring_size;    /* event ring length */
    uint64_t off_dims, off_summary, off_seconds, off_hist, off_feed, off_ring;
    uint64_t off_budgets;          /* struct shm_budget[budget_slots] */
    uint32_t budget_slots;         /* budget slots */
    _Atomic uint32_t budgets_used; /* slots [0, used) may be in use */
    uint64_t sec_stride;           /* bytes per second record */
    _Atomic uint32_t ndims;        /* dims in use (release-stored) */
    uint32_t reserved;
    _Atomic uint64_t feed_head; /* feed entries ever written */
    _Atomic uint64_t ring_head; /* event ring entries ever written */
    struct shm_health health;
};

/* The seqlock-guarded summary: windows then totals, each [nslots]. */
struct shm_summary {
    _Atomic uint64_t seq;
    int64_t as_of_sec; /* the last closed second, epoch seconds */
    /* struct shm_stat win[SHM_WINDOWS][nslots]; struct shm_agg tot[nslots]; */
};

/* One closed second: its own seqlock, then struct shm_stat[nslots]. */
struct shm_sec {
    _Atomic uint64_t seq;
    int64_t sec;    /* epoch second this record holds */
    uint32_t ndims; /* dims valid in this record */
    uint32_t nhist; /* histogram entries stored for it */
};

/* A sparse histogram entry: bucket of one dim's latency or TTFT. */
struct shm_hent {
    uint16_t dim;
    uint16_t bucket; /* bit 15 set: TTFT, else latency */
    uint32_t count;
};
#define SHM_HENT_TTFT 0x8000u

/* One recent request for the live feed. */
struct shm_feed_ent {
    _Atomic uint64_t seq; /* index + 1 once written; 0 while writing */
    int64_t ts_ms;
    int64_t received_ms;
    int64_t tokens[SHM_TOK_N];
    double cost_usd;
    double latency_ms; /* < 0: absent */
    double ttft_ms;    /* < 0: absent */
    int32_t status;    /* 0: absent */
    int32_t round;     /* -1: absent */
    uint32_t flags;    /* EV_F_* */
    uint32_t reserved;
    char workspace[68];
    char id[68];
    char provider[132];
    char model[132];
    char operation[36];
    char error_type[36];
    char user[68];
    char agent[68];
    char session[68];
    char request_id[68];
};

/* One event-ring entry (alerts, budgets, notifications): JSON text. */
struct shm_ring_ent {
    _Atomic uint64_t seq; /* index + 1 once written */
    int64_t ts_ms;
    uint32_t type; /* enum shm_ring_type */
    uint32_t len;  /* bytes of json */
    char workspace[72];
    char json[928];
};

enum shm_ring_type { SHM_RING_ALERT = 1, SHM_RING_BUDGET, SHM_RING_NOTIFY };

/*
 * One budget's spend in its current period, kept by the collector's budget
 * tracker (collector/budget.c) under the slot's own seqlock.  A slot whose
 * id is 0 is unused.  Scope, limit history and thresholds live in the
 * budgets table; crossed says which of its thresholds (in ascending order)
 * were crossed this period.
 */
struct shm_budget {
    _Atomic uint64_t seq;
    int64_t id;              /* budgets.id; 0: unused */
    int64_t period_start_ms; /* current UTC period: [start, end) */
    int64_t period_end_ms;
    int64_t spend_nusd; /* events of the period in scope, nano-USD */
    int64_t limit_nusd;
    int64_t as_of_ms; /* when spend was last updated */
    uint32_t crossed; /* bit i: threshold i crossed this period */
    uint32_t period;  /* 1 day, 2 month (common/budget.h) */
    char workspace[72];
};

/* Sizes of a segment. */
struct shm_params {
    uint32_t nslots, nseconds, hist_entries, feed_size, ring_size;
    uint32_t budget_slots;
};

/* Bytes needed for a segment with parameters p; fills the offsets of h. */
size_t shm_layout(const struct shm_params *p, struct shm_header *h);

/* Pointers to areas of a mapped segment. */
struct shm_dim *shm_dims(const struct shm_header *h);
struct shm_summary *shm_summary(const struct shm_header *h);
struct shm_stat *shm_summary_win(const struct shm_header *h, int w);
struct shm_agg *shm_summary_tot(const struct shm_header *h);
struct shm_sec *shm_second(const struct shm_header *h, int64_t sec);
struct shm_stat *shm_second_stats(struct shm_sec *s);
struct shm_hent *shm_second_hist(const struct shm_header *h, int64_t sec);
struct shm_feed_ent *shm_feed(const struct shm_header *h, uint64_t i);
struct shm_ring_ent *shm_ring(const struct shm_header *h, uint64_t i);
struct shm_budget *shm_budget_slot(const struct shm_header *h, uint32_t i);

/* Seqlock helpers. */
static inline uint64_t shm_read_begin(_Atomic uint64_t *seq)
{
    return atomic_load_explicit(seq, memory_order_acquire);
}
static inline int shm_read_retry(_Atomic uint64_t *seq, uint64_t start)
{
    atomic_thread_fence(memory_order_acquire);
    return (start & 1) ||
           atomic_load_explicit(seq, memory_order_relaxed) != start;
}
static inline void shm_write_begin(_Atomic uint64_t *seq)
{
    atomic_store_explicit(seq,
                          atomic_load_explicit(seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}
static inline void shm_write_end(_Atomic uint64_t *seq)
{
    atomic_store_explicit(seq,
                          atomic_load_explicit(seq, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* ---- writer side: creating a segment (the collector) ---- */

/* Create (replacing any old one) and map read-write a segment named name.
 * Returns the header or NULL with errno set. */
struct shm_header *shm_create(const char *name, const struct shm_params *p,
                              uint64_t generation);

/* Let readers use a segment made by shm_create (it is invisible to them
 * until then, so they never see it half filled). */
void shm_publish(struct shm_header *h);

/* Unmap a segment mapped by shm_create. */
void shm_destroy(struct shm_header *h);

/* Write budget slot i (< budget_slots) from v (its seq is ignored) under
 * the slot's seqlock, and make sure readers look at slots up to i. */
void shm_budget_write(struct shm_header *h, uint32_t i,
                      const struct shm_budget *v);

/* Mark slots [n, budgets_used) unused and let readers look at [0, n). */
void shm_budget_trim(struct shm_header *h, uint32_t n);

/* ---- reader side ---- */

/* A read-only mapping that follows the collector across restarts. */
struct shm_reader {
    char name[64];
    const struct shm_header *h; /* NULL when not mapped */
    size_t size;
    ino_t ino;          /* inode of the mapped segment */
    int64_t checked_ms; /* when the name was last checked */
};

/* Prepare a reader for name; maps it if it exists (not an error if not). */
void shm_reader_init(struct shm_reader *r, const char *name);

/* Make sure the reader maps the current segment, checking the name at most
 * every interval_ms.  Returns 0 when mapped, -errno otherwise. */
int shm_reader_check(struct shm_reader *r, int64_t now_ms, int interval_ms);

/* Unmap. */
void shm_reader_close(struct shm_reader *r);

/* One dim's view in a window, as copied by shm_read_window(). */
struct shm_item {
    struct shm_dim dim;  /* which dim */
    struct shm_stat win; /* its window */
    struct shm_agg tot;  /* its totals */
};

/*
 * Copy, consistently, the window w statistics and totals of every dim of
 * workspace ws (all dims when ws is NULL) into items (capacity cap).
 * Returns the number of items (the workspace dim first), or -1 if the
 * segment is not mapped; *as_of_sec gets the last closed second.
 */
int shm_read_window(const struct shm_header *h, int w, const char *ws,
                    struct shm_item *items, int cap, int64_t *as_of_sec);

/*
 * Copy up to cap most recent feed entries of workspace ws (all when NULL),
 * newest first.  Returns how many were copied.
 */
int shm_read_feed(const struct shm_header *h, const char *ws,
                  struct shm_feed_ent *out, int cap);

/*
 * Copy the entries of index [from, to) of the feed (shm_read_feed_range)
 * or of the event ring (shm_read_ring_range) that are still in it and
 * intact, oldest first, into out (capacity cap); all workspaces.  Returns
 * how many were copied.  feed_head and ring_head count the entries ever
 * written: a reader remembers the head it read up to.
 */
int shm_read_feed_range(const struct shm_header *h, uint64_t from, uint64_t to,
                        struct shm_feed_ent *out, int cap);
int shm_read_ring_range(const struct shm_header *h, uint64_t from, uint64_t to,
                        struct shm_ring_ent *out, int cap);

/*
 * Copy, each consistently, the used budget slots of workspace ws (all when
 * NULL) into out (capacity cap).  Returns how many were copied.
 */
int shm_read_budgets(const struct shm_header *h, const char *ws,
                     struct shm_budget *out, int cap);

#endif
