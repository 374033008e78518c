/*
 * api.h: tt-api, the REST API served by libfcgi worker threads behind nginx.
 *
 * Threading: main() starts conf.api_threads workers; each owns a struct
 * api_thread (its FastCGI request, its arena, its read-only SQLite
 * connection, its collector connection and its shm mapping), so a request
 * never takes a lock except the accept lock and the live-stats cache lock.
 *
 * Memory: everything a handler allocates for a request comes from the
 * thread's arena (jansson values included: arena_json_use) and is gone when
 * the worker resets the arena after FCGX_Finish_r; nothing keeps
 * FCGX_GetParam pointers past the request.
 *
 * Errors reach clients in one shape:
 *     {"error": {"code": "...", "message": "...", "field": "..."}}
 */
#ifndef TT_API_H
#define TT_API_H

#include <errno.h>
#include <fcgiapp.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "conf.h"
#include "keys.h"
#include "shm.h"
#include "token.h"

struct qry_cache;

/* What every thread shares, read-only after start (but the cache). */
struct api_global {
    struct conf conf;
    int64_t started_ms; /* when this API process started */
    char db_path[CONF_PATH_MAX + 32];
    char col_path[CONF_PATH_MAX + 32];
    pthread_mutex_t cache_lock;  /* guards the live-stats cache */
    struct api_cache_ent *cache; /* serialized live stats, see route_live.c */
    int cache_size;
    uint64_t cache_clock; /* use counter for eviction */
    /* The secret of browser sessions (DIR/session.secret), read at start. */
    unsigned char session_secret[TOK_SECRET_LEN];
};

/* A remembered key use, to send last_used to the collector sparingly. */
struct api_touch {
    int64_t id;
    int64_t sent_ms;
};

/* A key this thread has verified, valid while the segment's generation
 * and keys_gen are unchanged (the collector bumps keys_gen on any key
 * change, so a revoked key stops working on the next request). */
struct api_keycache {
    char hash[KEY_HASH_HEX + 1]; /* "" when verified by id (a session) */
    int64_t id;
    enum key_role role;
    char workspace[72];
    uint64_t generation, keys_gen;
};

/* Per worker thread. */
struct api_thread {
    int idx;
    struct api_global *g;
    FCGX_Request fr;
    struct arena arena;
    sqlite3 *db;              /* read-only connection */
    sqlite3_stmt *key_lookup; /* by hash */
    sqlite3_stmt *key_by_id;  /* active key by id (sessions) */
    struct qry_cache *qcache; /* analytics statements (query.h), made on
                                 first use, freed before db closes */
    int col_fd;               /* collector connection or -1 */
    uint64_t tag;             /* last frame tag */
    struct shm_reader shm;
    struct api_touch touch[16];  /* recently reported key uses */
    struct api_keycache keys[8]; /* recently verified keys */
    _Atomic int kept_fd;         /* connection kept open between requests
                                    (nginx keep-alive), -1 when none */
    unsigned keys_next;          /* next cache slot to replace */
};

/* One request being handled. */
struct api_req {
    struct api_thread *t;
    struct arena *arena;
    const char *method; /* "GET", ... */
    const char *path;   /* URI path without the query string */
    const char *query;  /* query string, "" when none */
    const char *content_type;
    long content_length;   /* -1 when absent */
    char rid[72];          /* request id (X-Request-ID or nginx's) */
    const char *params[4]; /* path parameters ({id}) */
    /* Set by api_auth(). */
    int64_t key_id;
    enum key_role role;
    char workspace[72];
    int64_t session_exp; /* expiry (unix seconds) of the session cookie
                            that stood for the key; 0 for a key */
    int64_t now_ms;
    int status; /* status sent, for the access log */
};

/* ---- http.c ---- */

/* Send a JSON body with status; extra is more header lines ("K: V\r\n") or
 * NULL.  Consumes body (a jansson reference).  Returns 0. */
int api_send_json(struct api_req *r, int status, json_t *body,
                  const char *extra);

/* Serialize v into a malloc'ed, NUL-terminated buffer (free() it);
 * *len gets its length.  NULL when out of memory. */
char *api_dump(json_t *v, size_t *len);

/* Send already-serialized JSON text. */
int api_send_text(struct api_req *r, int status, const char *type,
                  const char *text, size_t len, const char *extra);

/* Send an error in the API's one shape; field may be NULL. */
int api_error(struct api_req *r, int status, const char *code,
              const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Same, with extra header lines (e.g. "Retry-After: 1\r\n"). */
int api_error_h(struct api_req *r, int status, const char *extra,
                const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Read the request body (at most max bytes) into the arena.  Returns the
 * length, or -1 after answering 413 (too large) or 400 (short body). */
long api_read_body(struct api_req *r, long max, char **out);

/* The decoded value of query parameter name, or NULL (arena memory). */
const char *api_query(struct api_req *r, const char *name);

/* Check that a Content-Type is JSON (parameters such as charset allowed). */
int api_is_json(const char *ct);

/* For a request that takes no query parameters (400 otherwise): read the
 * body (at most max bytes) as a JSON object whose members are
 * all among fields (NULL-ended; NULL: any).  An empty body is {} when
 * empty_ok.  Returns it (arena memory), or NULL after answering 413, 415
 * (not application/json) or 400 (invalid_json, invalid_field). */
json_t *api_json_body(struct api_req *r, long max, const char *const *fields,
                      int empty_ok);

/* The id in the path (params[0]): > 0, or 0 after answering 400 naming
 * what it is the id of ("rule"). */
int64_t api_path_id(struct api_req *r, const char *what);

/* The same for a route that takes no query parameters: 0 after answering
 * 400 for one. */
int64_t api_path_id_only(struct api_req *r, const char *what);

/* Check the query has only the named parameters; answers 400 otherwise. */
int api_query_only(struct api_req *r, const char *const *names);

/* ---- route.c ---- */

typedef int (*api_handler)(struct api_req *r);

/* One route: a method and a path pattern whose "{x}" segments are
 * parameters, and the least role that may call it (KEY_ROLE_NONE: no key
 * needed). */
struct api_route {
    const char *method;
    const char *pattern;
    int role;
    api_handler fn;
};

/* Outcome of api_route_find(). */
enum api_match { API_FOUND, API_NOT_FOUND, API_BAD_METHOD };

/* Find the route for method and path in table (NULL-terminated); fills
 * params, and for API_BAD_METHOD the allowed methods ("GET, POST"). */
enum api_match api_route_find(const struct api_route *table, const char *method,
                              const char *path, const struct api_route **found,
                              const char **params, char *allow,
                              size_t allowlen);

/* The routing table of tt-api. */
extern const struct api_route api_routes[];

/* Route and run one request (authenticating first). */
void api_dispatch(struct api_req *r);

/* ---- auth.c ---- */

/* Check the Bearer key, or without an Authorization header the session
 * cookie (route_session.c), for role need (KEY_ROLE_NONE: any role):
 * fills r->key_id, role, workspace and session_exp.  A request with the
 * cookie whose method is not GET or HEAD must also carry
 * "X-Requested-With: tokentap" (403 csrf otherwise).  Returns 0, or -1
 * after answering 401/403 (503 when the keys cannot be read). */
int api_auth(struct api_req *r, enum key_role need);

/* Check a key the client presented (len bytes: in a header or a body):
 * well formed, known and not revoked; fills r->key_id, role and
 * workspace.  Returns 0, or -1 after answering 401 (503). */
int api_key_check(struct api_req *r, const char *key, size_t len);

/* ---- client.c ---- */

/* The frame was sent but no answer came back: the collector may or may
 * not have acted on it. */
#define API_COL_UNKNOWN (-EINPROGRESS)

/* Send an INGEST frame (records of len bytes, count of them) and wait for
 * the collector's answer.  Returns 0 and fills *ack; -ETIMEDOUT or
 * API_COL_UNKNOWN when the outcome is unknown; another -errno when the
 * collector could not be reached (nothing was stored). */
struct proto_ack;
int api_col_ingest(struct api_thread *t, const char *ws, const char *rid,
                   const void *recs, size_t len, uint32_t count,
                   struct proto_ack *ack);

/* Run a collector command; *status and *reply (malloc'ed) on success. */
int api_col_command(struct api_thread *t, const char *cmd, int *status,
                    char **reply);

/* Send a collector command for request r (consumes cmd): 0 with *status
 * and *reply (malloc'ed, free() it), or -1 after answering 503 or 500. */
int api_command(struct api_req *r, json_t *cmd, int *status, char **reply);

/* The same, for the usual cases: a 2xx answer is returned parsed (its
 * status in *status); any other is passed on to the client as the
 * collector answered it, and NULL returned.  api_command_relay passes
 * every answer on.  Both return -1 / NULL after answering. */
json_t *api_command_ok(struct api_req *r, json_t *cmd, int *status);
int api_command_relay(struct api_req *r, json_t *cmd);

/* Tell the collector a key was used (at most once a minute per key). */
void api_col_touch(struct api_thread *t, int64_t key_id, int64_t now_ms);

/* ---- params.c ---- */

/* A time range in epoch ms: from inclusive, to exclusive. */
struct api_range {
    int64_t from_ms, to_ms;
};

#define API_STATUS_ANY   -1
#define API_STATUS_OK    0
#define API_STATUS_ERROR 1

/* Filters shared by the history endpoints; NULL means "any". Strings point
 * into the request's arena. */
struct api_filter {
    const char *provider, *model, *agent, *user, *session;
    int status; /* API_STATUS_* */
};

/* Parse range or from/to (def is the preset when none is given).  Returns
 * 0, or -1 after answering 400. */
int api_parse_range(struct api_req *r, const char *def, struct api_range *out);

/* Parse the filters.  Returns 0, or -1 after answering 400. */
int api_parse_filters(struct api_req *r, struct api_filter *f);

/* Parse format=json|csv into *csv.  Returns 0, or -1 after answering 400. */
int api_parse_format(struct api_req *r, int *csv);

/* Parse limit= (an integer from 1 to max, def when absent) into *out.
 * Returns 0, or -1 after answering 400. */
int api_parse_limit(struct api_req *r, long def, long max, long *out);

/* Parse cursor= of a page ordered by id (the last id of the page before,
 * as api_send_id_page's next_cursor) into *after (0 when absent).
 * Returns 0, or -1 after answering 400. */
int api_parse_id_cursor(struct api_req *r, int64_t *after);

/* Write one RFC 4180 CSV field (quoted when it must be), then a comma or,
 * when last, CRLF. */
void api_csv_field(struct api_req *r, const char *s, int last);

/* Start a streamed CSV answer: 200, text/csv, an attachment named file
 * (safe characters only), and the header row cols[n]. */
void api_csv_start(struct api_req *r, const char *file, const char *const *cols,
                   int n);

/* ---- snapshot.c ---- */

/* Step st (a query of at most limit + 1 rows whose first column is an id,
 * in page order) and answer {name: [row(st)...], next_cursor}: the last id
 * sent when a row remained, else null.  Finalizes st. */
int api_send_id_page(struct api_req *r, sqlite3_stmt *st, long limit,
                     const char *name, json_t *(*row)(sqlite3_stmt *st));

/* Step st to its end and answer {name: [row(st)...]}.  Finalizes st. */
int api_send_rows(struct api_req *r, sqlite3_stmt *st, const char *name,
                  json_t *(*row)(sqlite3_stmt *st));

/* Answer the row of sql (binding ?1 = id, ?2 = the key's workspace) as
 * row(st) makes it, with status; 404 naming what ("no channel 7") when
 * there is none. */
int api_send_ws_row(struct api_req *r, const char *sql, int64_t id,
                    const char *what, int status,
                    json_t *(*row)(sqlite3_stmt *st));

/* Answer 503: the database cannot be read.  Returns -1. */
int api_db_unavailable(struct api_req *r);

/* Begin a read transaction on the thread's connection, so that the rollups
 * and the raw events after them come from one snapshot; returns that
 * snapshot's meta.rollup_seq (0: none yet), or -1 after answering 503.
 * Every path out must call api_read_end(). */
int64_t api_read_begin(struct api_req *r);

/* End the read transaction (if one is open). */
void api_read_end(struct api_req *r);

/* Nano-USD as an exact decimal ("12.5", "0.000000001") into buf. */
void api_usd_text(int64_t nusd, char *buf, size_t n);

/* Nano-USD as a JSON number of US dollars. */
json_t *api_usd(int64_t nusd);

/* Epoch ms as a JSON RFC 3339 string. */
json_t *api_time(int64_t ms);

/* A JSON string, or null for NULL or "". */
json_t *api_str_or_null(const char *s);

/* The workspace id of the request's key, 0 when it has no row yet, -1 on
 * a database error (route_requests.c). */
int64_t api_ws_id(struct api_req *r);

/* ---- handlers ---- */
int api_ws_auth(struct api_req *r);
int api_ws_token(struct api_req *r);
int api_session_create(struct api_req *r);
int api_session_get(struct api_req *r);
int api_session_delete(struct api_req *r);
int api_channels_list(struct api_req *r);
int api_channels_create(struct api_req *r);
int api_channels_get(struct api_req *r);
int api_channels_update(struct api_req *r);
int api_channels_delete(struct api_req *r);
int api_channels_test(struct api_req *r);
int api_routes_get(struct api_req *r);
int api_routes_put(struct api_req *r);
int api_notify_history(struct api_req *r);
int api_inbox_list(struct api_req *r);
int api_inbox_read(struct api_req *r);
int api_events_post(struct api_req *r);
int api_live_stats(struct api_req *r);
int api_live_feed(struct api_req *r);
int api_keys_list(struct api_req *r);
int api_keys_create(struct api_req *r);
int api_keys_delete(struct api_req *r);
int api_health(struct api_req *r);
int api_health_live(struct api_req *r);
int api_health_ready(struct api_req *r);
int api_metrics(struct api_req *r);
int api_pricing(struct api_req *r);
int api_pricing_unknown(struct api_req *r);
int api_requests_list(struct api_req *r);
int api_requests_get(struct api_req *r);
int api_usage_overview(struct api_req *r);
int api_usage_timeseries(struct api_req *r);
int api_usage_distribution(struct api_req *r);
int api_usage_top_users(struct api_req *r);
int api_cost_overview(struct api_req *r);
int api_cost_trend(struct api_req *r);
int api_cost_by_model(struct api_req *r);
int api_cost_by_provider(struct api_req *r);
int api_perf_overview(struct api_req *r);
int api_perf_latency(struct api_req *r);
int api_perf_throughput(struct api_req *r);
int api_perf_errors(struct api_req *r);
int api_alerts_list(struct api_req *r);
int api_alerts_active(struct api_req *r);
int api_alerts_stats(struct api_req *r);
int api_alerts_bulk(struct api_req *r);
int api_alerts_get(struct api_req *r);
int api_alerts_delete(struct api_req *r);
int api_alerts_ack(struct api_req *r);
int api_alerts_resolve(struct api_req *r);
int api_quiet_get(struct api_req *r);
int api_quiet_put(struct api_req *r);
int api_quiet_delete(struct api_req *r);
int api_silences_list(struct api_req *r);
int api_silences_create(struct api_req *r);
int api_silences_get(struct api_req *r);
int api_silences_delete(struct api_req *r);
int api_rules_list(struct api_req *r);
int api_rules_create(struct api_req *r);
int api_rules_get(struct api_req *r);
int api_rules_put(struct api_req *r);
int api_rules_delete(struct api_req *r);
int api_rules_toggle(struct api_req *r);
int api_rules_test(struct api_req *r);
int api_budgets_list(struct api_req *r);
int api_budgets_put(struct api_req *r);
int api_budgets_status(struct api_req *r);
int api_budgets_history(struct api_req *r);
int api_sessions_list(struct api_req *r);
int api_sessions_get(struct api_req *r);
int api_sessions_stats(struct api_req *r);

/* Prepare the process-wide live-stats cache.  Returns 0 or -1. */
int api_cache_init(struct api_global *g);

/* Release the cache at exit. */
void api_cache_free(struct api_global *g);

/* Map the live segment for this thread; NULL if it is not there. */
const struct shm_header *api_shm(struct api_req *r);

#endif
