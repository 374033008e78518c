/*
 * collector.h: the collector, the one writer of the database and the
 * live segment.
 *
 * Threading: the collector is single-threaded.  One epoll loop (server.c)
 * reads frames from the API workers, gathers the INGEST frames that arrive
 * together into one group transaction (store.c), answers each frame after
 * COMMIT, feeds the committed events to the live aggregator (shm/live.c)
 * and closes seconds on time.  Commands (configuration writes, cmd.c) run
 * between group commits in their own transactions.
 *
 * Ownership: struct col owns the database handle, the live aggregator, the
 * price catalog and every connection; col_* functions borrow it.
 */
#ifndef TT_COLLECTOR_H
#define TT_COLLECTOR_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "conf.h"
#include "event.h"
#include "alert.h"
#include "live.h"
#include "price.h"
#include "proto.h"

/* An unknown model seen since the last flush. */
struct col_unknown {
    char key[340]; /* workspace \x1f provider \x1f model */
    uint64_t events;
    int64_t last_ms;
    int dirty;
};

/* The database side (store.c). */
struct col_store {
    sqlite3 *db;
    sqlite3_stmt *ins;           /* INSERT OR IGNORE INTO events */
    sqlite3_stmt *ws_get;        /* workspace id by name */
    sqlite3_stmt *ws_add;        /* new workspace */
    sqlite3_stmt *sec_put;       /* live_seconds row */
    sqlite3_stmt *tot_put;       /* live_totals row */
    sqlite3_stmt *meta_put;      /* meta key/value */
    sqlite3_stmt *unk_put;       /* pricing_unknown upsert */
    sqlite3_stmt *touch;         /* api_keys.last_used_ms */
    sqlite3_stmt *prune;         /* old live_seconds */
    char ws_last[72];            /* workspace of the last insert */
    int64_t ws_last_id;          /* its id; 0 after a rollback */
    int save_failed;             /* a write of the current live save failed */
    struct col_unknown *unknown; /* small open-addressed set */
    uint32_t nunknown, unknown_cap;
};

struct col_budgets;

/* Everything the collector owns. */
struct col {
    struct conf conf;
    struct col_store store;
    struct live *live;
    struct price_catalog *prices;
    int64_t live_seq; /* highest event seq fed to the live aggregator */
    int persist;      /* closed seconds are saved (off while rebuilding) */
    int64_t started_ms;
    struct col_aggr *aggr;       /* the rollup writer (aggr.c) */
    struct col_budgets *budgets; /* the budget tracker (budget.c) */
    struct col_alerts *alerts;   /* the alert engine (alert_eng.c) */
    uint64_t cmd_id;  /* the running command's, for a deferred answer */
    char cmd_rid[68]; /* the running command's request id ("" none) */
};

/* col_command's status for a command answered later: the engine's answer
 * comes with cmd_id through col_alert_tests_done. */
#define COL_DEFERRED 0

/* One event of a group commit, with what the commit learned about it. */
struct col_item {
    const struct ev_rec *rec;
    const char *workspace;
    const char *request_id;
    int64_t received_ms;
    int64_t ws_id;     /* workspace id, set by the insert */
    int64_t seq;       /* rowid when stored, 0 when a duplicate */
    int64_t cost_nusd; /* cost used */
    int unknown;       /* priced at 0: the model is not in the catalog */
};

/* ---- store.c ---- */

/* Open (creating and migrating) the database at path.  Returns 0 or -1
 * with a message in err. */
int col_store_open(struct col_store *s, const char *path, const char *sync,
                   char *err, size_t errlen);

/* The same, migrating only up to schema version: upgrade tests make old
 * databases with it (the statements it prepares need version 1 only). */
int col_store_open_at(struct col_store *s, const char *path, const char *sync,
                      int version, char *err, size_t errlen);
void col_store_close(struct col_store *s);

/* The current schema version of an open database. */
int col_store_version(struct col_store *s);

/* Begin, commit or roll back a transaction.  Return SQLite codes. */
int col_store_begin(struct col_store *s);
int col_store_commit(struct col_store *s);
void col_store_rollback(struct col_store *s);

/* Insert one event inside the open transaction: fills it->seq (0 for a
 * duplicate) and it->cost_nusd.  Returns a SQLite code. */
int col_store_insert(struct col *c, struct col_item *it);

/* Write the catalog in use to pricing_catalog.  Returns a SQLite code. */
int col_store_save_catalog(struct col_store *s, const struct price_catalog *p);

/* Flush the unknown-model counters (inside a transaction). */
int col_store_flush_unknown(struct col_store *s);

/* Record that key id was used at ms (inside a transaction). */
int col_store_touch_key(struct col_store *s, int64_t id, int64_t ms);

/* Save a closed second and the dirty totals (its own transaction). */
void col_store_save_second(struct col *c, int64_t sec, const void *blob,
                           size_t len);

/* Ensure an admin key exists; if none, create one for workspace "default"
 * and write it to key_path (mode 0600).  Returns 0, 1 when one was made,
 * or -1. */
int col_store_bootstrap_admin(struct col_store *s, const char *key_path);

/* Size of the database and its WAL in bytes. */
uint64_t col_store_size(const char *db_path);

/* ---- aggr.c: the rollup writer ---- */

struct col_aggr;
struct col_aggr *col_aggr_new(void);
void col_aggr_free(struct col_aggr *g);

/* Count one committed event (seq is its rowid; events at or below the
 * flushed watermark are ignored). */
void col_aggr_add(struct col_aggr *g, int64_t ws, const struct live_event *e,
                  int64_t seq);

/* Events added since the last flush. */
uint64_t col_aggr_pending(const struct col_aggr *g);

/* Whether a flush is due: pending events, and ROLLUP_FLUSH_MS since the
 * last flush or ROLLUP_IDLE_MS without a commit (after a failed flush,
 * only ROLLUP_FLUSH_MS since it). */
int col_aggr_due(const struct col_aggr *g, int64_t now_ms,
                 int64_t last_commit_ms);

/* Write the aggregates and meta.rollup_seq in one transaction of its own.
 * Returns 0, or -1 (the aggregates are kept for the next try). */
int col_aggr_flush(struct col *c, int64_t now_ms);

/* The watermark read at start: events up to seq are in the rollups. */
void col_aggr_set_flushed(struct col_aggr *g, int64_t seq);

/* Whether aggregates were dropped or an event could not be counted, so the
 * events past the watermark must be re-read (until then col_aggr_add
 * counts nothing).  col_rebuild_rollups() clears it before reading and
 * asks again if it stops early. */
int col_aggr_rescan_needed(const struct col_aggr *g);
void col_aggr_rescan_done(struct col_aggr *g);
void col_aggr_rescan_ask(struct col_aggr *g);

/* Delete data past retention in small batches for at most budget_ms.
 * Returns the rows deleted. */
int64_t col_aggr_prune(struct col *c, int64_t now_ms, int budget_ms);

/* ---- checkpoint.c ---- */

/* Start the checkpoint thread on its own connection to path.  Returns 0 or
 * -1 (then SQLite's own autocheckpoint is left on). */
int col_checkpoint_start(const char *path);

/* Stop it (before the main connection closes). */
void col_checkpoint_stop(void);

/* ---- rebuild.c ---- */

/* Refill the live segment from the database after a start. */
int col_rebuild(struct col *c, int64_t now_ms);

/* Bring the rollups up to date with the events (seq > meta.rollup_seq),
 * flushing as it goes.  Returns 0 or -1. */
int col_rebuild_rollups(struct col *c);

/* Turn a stored or committed event into the aggregator's shape. */
void col_live_event(const struct col_item *it, struct live_event *e);

/* ---- cmd.c ---- */

/* Run a JSON command; returns the HTTP status and sets *reply (a new
 * jansson reference the caller releases). */
int col_command(struct col *c, const char *text, size_t len, json_t **reply);

/* ---- budget.c: the budget tracker ---- */

/* Budgets the stack holds at most, over every workspace (and the live
 * segment's budget slots). */
#define COL_BUDGET_MAX 1024

/* (Re)load every budget, its current period's spend and its crossed
 * thresholds from the database, and publish them to the live segment.
 * Call between transactions.  Returns 0 or -1 (logged). */
int col_budget_load(struct col *c, int64_t now);

/* Count one committed event towards the budgets it falls in. */
void col_budget_event(struct col *c, const struct live_event *e);

/* Once a second: start the periods that began, write queued crossings. */
void col_budget_tick(struct col *c, int64_t now);

/* Write queued crossings now (in their own transaction) and publish the
 * new ones to the event ring.  Returns 0 or -1 (they stay queued). */
int col_budget_flush(struct col *c);

/* Free the tracker. */
void col_budget_close(struct col *c);

/* The budget.set command (budget_cmd.c): replace a workspace's budgets. */
int col_budget_set(struct col *c, json_t *args, json_t **reply);

/* ---- rebuild.c: reading stored events back ---- */

/* The columns of an event row, in the order col_row_event reads them
 * (then the workspace id and the API key, 24 and 25), and their FROM. */
#define COL_EVENT_COLS                                                         \
    "e.seq, w.name, e.id, e.ts, e.received, e.provider, e.model, "             \
    "e.operation, e.input_tokens, e.output_tokens, e.cache_read_tokens, "      \
    "e.cache_write_tokens, e.reasoning_tokens, e.cost_usd, e.latency_ms, "     \
    "e.ttft_ms, e.status, e.error_type, e.is_error, e.user, e.agent, "         \
    "e.session, e.round, e.request_id, e.ws, e.api_key "                       \
    "FROM events e JOIN workspaces w ON w.id = e.ws "

/* Fill e from a row of COL_EVENT_COLS; strings point into the row. */
void col_row_event(sqlite3_stmt *st, struct live_event *e);

/* ---- alert_eng.c ---- */

/* Start the engine's thread (its own read-only connection to path); it
 * first reads the recent events with seq <= seq_hi, the rest comes through
 * col_alert_event. */
int col_alert_start(struct col *c, const char *path, int64_t seq_hi);

/* The same, with thread 0 for tests: no thread; col_alert_turn runs the
 * engine's turns on the caller's thread with the clock the test gives. */
int col_alert_open(struct col *c, const char *path, int64_t seq_hi, int thread);

/* Tests (col_alert_open without a thread): hand the feed over and run one
 * turn of the engine at now, evaluating every rule.  col_alert_apply then
 * writes what it decided. */
void col_alert_turn(struct col *c, int64_t now);

/* Stop it, writing the transitions it decided; frees everything. */
void col_alert_stop(struct col *c);

/* Feed one committed event (main thread). */
void col_alert_event(struct col *c, int64_t ws, const struct live_event *e,
                     const char *api_key);

/* Once a second (main thread): hand the feed over, write the engine's
 * transitions in one transaction and publish them to the event ring. */
void col_alert_apply(struct col *c);

/* Queue rule r of workspace ws (id; 0 when it has no events yet) for the
 * engine to evaluate now, changing nothing (rule.test); it answers between
 * two passes, through col_alert_tests_done with id.  Returns 0 (r is then
 * taken), -1 when the engine is not ready (not running, or still loading),
 * -2 when too many tests wait. */
int col_alert_test(struct col *c, int64_t ws, const char *workspace,
                   struct alert_rule *r, uint64_t id);

/* The eventfd the engine signals when a test is answered (for epoll). */
int col_alert_wake_fd(struct col *c);

/* Hand every answered test to fn(arg, its id, its answer) (the answer is
 * freed after). */
void col_alert_tests_done(struct col *c,
                          void (*fn)(void *arg, uint64_t id, json_t *reply),
                          void *arg);

/* The rules or budgets changed: reload them. */
void col_alert_rules_changed(struct col *c);

/* An alert of rule x group was acknowledged (status AS_ACKED) or closed by
 * hand (AS_OK): tell the engine. */
void col_alert_control(struct col *c, int64_t rule_id, const char *group_key,
                       int status);

/* Publish alert id's current row to the event ring as type. */
void col_alert_publish(struct col *c, const char *type, int64_t id,
                       const char *workspace, int64_t now);

/* The alert.act command (alert_cmd.c): ack, resolve or delete alerts. */
int col_alert_act(struct col *c, json_t *args, json_t **reply);

/* Enqueue the notifications of alert id's event ("firing", "renotify",
 * "acknowledged", "resolved") at now: one row per channel of its rule,
 * none when a silence or quiet hours held it back.  Inside the caller's
 * transaction (the one that changed the alert). */
int col_notify_enqueue(sqlite3 *db, int64_t alert_id, const char *event,
                       int64_t now);

/* Add an entry to alert_id's timeline (inside the caller's transaction);
 * returns SQLite's code (SQLITE_DONE). */
int col_alert_note(sqlite3 *db, int64_t alert_id, int64_t ts, const char *kind,
                   const char *actor, const char *note);

/* silence.create and silence.expire (alert_cmd.c). */
int col_silence_create(struct col *c, json_t *args, json_t **reply);
int col_silence_expire(struct col *c, json_t *args, json_t **reply);

/* quiet.set and quiet.clear (alert_cmd.c); col_quiet_tz_ok: is tz an IANA
 * time zone name (ICU's database)? */
int col_quiet_set(struct col *c, json_t *args, json_t **reply, int clear);
int col_quiet_tz_ok(const char *tz);

/* The minute of the day (0..1439) at ms in time zone tz; -1 when tz is
 * unknown. */
int col_quiet_minute(const char *tz, int64_t ms);

/* Is channel id one of workspace's (notify_cmd.c)? */
int col_channel_in_ws(sqlite3 *db, int64_t id, const char *workspace);

/* The channel.*, routes.set, notify.result and inbox.read commands
 * (notify_cmd.c): the status, or -1 for an unknown op. */
int col_notify_command(struct col *c, const char *op, json_t *args,
                       json_t **reply);

/* The rule.* commands (rule_cmd.c): the status, or -1 for an unknown op. */
int col_rule_command(struct col *c, const char *op, json_t *args,
                     json_t **reply);

/* Answer 400 invalid_field about field: "<field> <what>, got <v>". */
int col_bad(json_t **reply, const char *field, const json_t *v,
            const char *what);

/* Run sql with integer ?1 and text ?2 (b NULL: unbound); the first column
 * of the first row, or def (also for a statement returning no row). */
int64_t col_q_int(sqlite3 *db, const char *sql, int64_t a, const char *b,
                  int64_t def);

/* Run a statement that returns no row with integer ?1, text ?2 (b NULL:
 * SQL NULL) and integer ?3 (when it has them); sqlite3_step's result
 * (SQLITE_DONE on success), SQLITE_ERROR if it does not prepare. */
int col_run(sqlite3 *db, const char *sql, int64_t a, const char *b, int64_t c3);

/* The id of workspace ws, made first when make (inside the caller's
 * transaction); 0 if it does not exist or cannot be made. */
int64_t col_ws_id(sqlite3 *db, const char *ws, int make, int64_t now);

/* ---- cmd.c ---- */

/* The commands' error object {"error": {code, message, field}}. */
json_t *col_error(const char *code, const char *message, const char *field);

/* ---- server.c ---- */

/* Run the loop until SIGTERM/SIGINT; returns the exit status. */
int col_serve(struct col *c);

#endif
