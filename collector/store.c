/*
 * store.c: the collector's SQLite database: schema, migrations, the event
 * insert of the group commit, and the small writes around it.
 *
 * The database runs in WAL mode so the API workers read while the
 * collector writes.  The schema is a list of numbered migrations applied in
 * order at start, each in its own transaction, recorded in schema_version;
 * a database from any earlier version therefore upgrades in place.
 */
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "keys.h"
#include "log.h"
#include "rollup.h"

#ifndef COL_PAGE_SIZE
#define COL_PAGE_SIZE "8192"
#endif

/* A migration that changes what the rollups hold clears them (and the
 * session tables filled by the same flushes) with their watermark: the
 * collector then rebuilds them from the stored events at its next start. */
#define COL_CLEAR_ROLLUPS                                                      \
    "DELETE FROM rollups;"                                                     \
    "DELETE FROM sessions;"                                                    \
    "DELETE FROM session_rounds;"                                              \
    "DELETE FROM meta WHERE key = 'rollup_seq';"

/* The migrations: index i brings the schema from version i to i + 1. */
static const char *const col_migrations[] = {
    /* 1: the foundation. */
    "CREATE TABLE workspaces("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE events("
    "  seq INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  id TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  received INTEGER NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  operation TEXT NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cache_read_tokens INTEGER NOT NULL,"
    "  cache_write_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost_usd REAL NOT NULL,"
    "  cost_source INTEGER NOT NULL," /* 0 client, 1 catalog, 2 unknown */
    "  latency_ms REAL,"
    "  ttft_ms REAL,"
    "  status INTEGER,"
    "  error_type TEXT,"
    "  is_error INTEGER NOT NULL,"
    "  user TEXT,"
    "  agent TEXT,"
    "  api_key TEXT,"
    "  session TEXT,"
    "  round INTEGER,"
    "  request_id TEXT,"
    "  tags TEXT);"
    "CREATE UNIQUE INDEX events_ws_id ON events(ws, id);"
    "CREATE INDEX events_ws_ts ON events(ws, ts);"
    "CREATE TABLE api_keys("
    "  id INTEGER PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  prefix TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  workspace TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  last_used_ms INTEGER,"
    "  revoked_ms INTEGER);"
    "CREATE TABLE live_seconds("
    "  sec INTEGER PRIMARY KEY,"
    "  max_seq INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE live_totals("
    "  kind INTEGER NOT NULL,"
    "  workspace TEXT NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY(kind, workspace, provider, model)) WITHOUT ROWID;"
    "CREATE TABLE pricing_catalog("
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  input REAL NOT NULL,"
    "  output REAL NOT NULL,"
    "  cache_read REAL NOT NULL,"
    "  cache_write REAL NOT NULL,"
    "  date TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  PRIMARY KEY(provider, model)) WITHOUT ROWID;"
    "CREATE TABLE pricing_unknown("
    "  workspace TEXT NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  events INTEGER NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(workspace, provider, model)) WITHOUT ROWID;"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;",

    /* 2: analytics rollups, crosstalk sessions and budgets (rollup.h).
     * The collector fills the rollups from existing events at its next
     * start (meta.rollup_seq is absent, so every event is re-added). */
    "CREATE TABLE rollups("
    "  ws INTEGER NOT NULL,"
    "  cube INTEGER NOT NULL,"
    "  res INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  agent TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  session TEXT NOT NULL,"
    "  is_error INTEGER NOT NULL,"
    "  error_type TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cache_read_tokens INTEGER NOT NULL,"
    "  cache_write_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost_nusd INTEGER NOT NULL,"
    "  lat_n INTEGER NOT NULL,"
    "  lat_sum REAL NOT NULL,"
    "  ttft_n INTEGER NOT NULL,"
    "  ttft_sum REAL NOT NULL,"
    "  first_ms INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL,"
    "  lat_hist BLOB NOT NULL,"
    "  ttft_hist BLOB NOT NULL,"
    "  PRIMARY KEY(ws, cube, res, ts, provider, model, agent, user, session,"
    "              is_error, error_type, status)) WITHOUT ROWID;"
    "CREATE INDEX rollups_user ON rollups(ws, user, res, ts) WHERE cube = 2;"
    "CREATE INDEX rollups_session ON rollups(ws, session, ts) WHERE cube = 5;"
    "CREATE TABLE sessions("
    "  ws INTEGER NOT NULL,"
    "  session TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  agent TEXT NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cache_read_tokens INTEGER NOT NULL,"
    "  cache_write_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost_nusd INTEGER NOT NULL,"
    "  lat_n INTEGER NOT NULL,"
    "  lat_sum REAL NOT NULL,"
    "  rounds INTEGER NOT NULL,"
    "  PRIMARY KEY(ws, session)) WITHOUT ROWID;"
    "CREATE INDEX sessions_last ON sessions(ws, last_ms);"
    "CREATE TABLE session_rounds("
    "  ws INTEGER NOT NULL,"
    "  session TEXT NOT NULL,"
    "  round INTEGER NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cache_read_tokens INTEGER NOT NULL,"
    "  cache_write_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost_nusd INTEGER NOT NULL,"
    "  lat_n INTEGER NOT NULL,"
    "  lat_sum REAL NOT NULL,"
    "  first_ms INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL,"
    "  lat_hist BLOB NOT NULL,"
    "  PRIMARY KEY(ws, session, round, provider, model)) WITHOUT ROWID;"
    "CREATE TABLE budgets("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  period TEXT NOT NULL," /* day | month */
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  limit_nusd INTEGER NOT NULL,"
    "  thresholds TEXT NOT NULL," /* "80,95,100" */
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE(ws, period, provider, model));"
    "CREATE TABLE budget_crossings("
    "  budget INTEGER NOT NULL,"
    "  period_start_ms INTEGER NOT NULL,"
    "  threshold INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  spend_nusd INTEGER NOT NULL,"
    "  limit_nusd INTEGER NOT NULL,"
    "  PRIMARY KEY(budget, period_start_ms, threshold)) WITHOUT ROWID;",

    /* 3: the cubes changed (ROLLUP_USERS keeps the error flag and drops
     * histograms; ROLLUP_AGENTS and ROLLUP_ERRTYPES are new; only the
     * model cube keeps minute rows): rebuild the rollups and sessions from
     * the events at the next start. */
    COL_CLEAR_ROLLUPS,

    /* 4: week rows (ROLLUP_RES_WEEK) in every cube with day rows: rebuild
     * the rollups from the events at the next start. */
    COL_CLEAR_ROLLUPS,

    /* 5: session_days, the sessions summed by the UTC day they started
     * (rollup.h), so that session statistics over a range read a row per
     * day instead of every session; filled here from the sessions already
     * stored, then kept by every flush.  sessions_started serves the
     * partial days at the ends of a range and the filtered statistics. */
    "CREATE TABLE session_days("
    "  ws INTEGER NOT NULL,"
    "  day_ms INTEGER NOT NULL,"
    "  sessions INTEGER NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cache_read_tokens INTEGER NOT NULL,"
    "  cache_write_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost_nusd INTEGER NOT NULL,"
    "  rounds INTEGER NOT NULL,"
    "  lat_n INTEGER NOT NULL,"
    "  lat_sum REAL NOT NULL,"
    "  err_sessions INTEGER NOT NULL,"
    "  dur_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(ws, day_ms)) WITHOUT ROWID;"
    "CREATE INDEX sessions_started ON sessions(ws, started_ms);"
    "INSERT INTO session_days SELECT ws, started_ms - started_ms % 86400000, "
    "count(*), sum(calls), sum(errors), sum(input_tokens), "
    "sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), "
    "sum(reasoning_tokens), sum(cost_nusd), sum(rounds), sum(lat_n), "
    "total(lat_sum), sum(errors > 0), sum(last_ms - started_ms) "
    "FROM sessions GROUP BY 1, 2;",

    /* 6: the totals cube (ROLLUP_TOTAL): rebuild the rollups, sessions
     * and session days from the events at the next start. */
    COL_CLEAR_ROLLUPS "DELETE FROM session_days;",

    /* 7: alert rules (collector/rule_cmd.c): the canonical JSON of each
     * (common/alert.h), its name unique in its workspace. */
    "CREATE TABLE alert_rules("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  enabled INTEGER NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE(ws, name));",

    /* 8: alerts (collector/alert_eng.c): one row per alert, at most one
     * open (pending, firing, acknowledged) per rule and group, and each
     * alert's timeline. */
    "CREATE TABLE alerts("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  rule_id INTEGER NOT NULL,"
    "  rule_name TEXT NOT NULL,"
    "  severity TEXT NOT NULL,"
    "  group_key TEXT NOT NULL,"
    "  group_json TEXT NOT NULL,"
    "  status TEXT NOT NULL," /* pending|firing|acknowledged|resolved */
    "  started_ms INTEGER NOT NULL,"
    "  fired_ms INTEGER,"
    "  acked_ms INTEGER,"
    "  acked_by TEXT,"
    "  resolved_ms INTEGER,"
    "  resolved_by TEXT,"
    "  notes TEXT,"
    "  values_json TEXT NOT NULL,"
    "  last_notified_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX alerts_open ON alerts(rule_id, group_key) "
    "  WHERE status IN ('pending', 'firing', 'acknowledged');"
    "CREATE INDEX alerts_ws ON alerts(ws, id);"
    "CREATE TABLE alert_events("
    "  id INTEGER PRIMARY KEY,"
    "  alert_id INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  actor TEXT,"
    "  note TEXT,"
    "  values_json TEXT);"
    "CREATE INDEX alert_events_alert ON alert_events(alert_id, id);",

    /* 9: silences (collector/alert_cmd.c), and which one held back an
     * alert's notifications. */
    "CREATE TABLE silences("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  matchers TEXT NOT NULL,"
    "  starts_ms INTEGER NOT NULL,"
    "  ends_ms INTEGER NOT NULL,"
    "  comment TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX silences_ws ON silences(ws, ends_ms);"
    "ALTER TABLE alerts ADD COLUMN silenced_by INTEGER;",

    /* 10: quiet hours per workspace (alert_cmd.c): from start to end
     * minute of the day in a named time zone, notifications below critical
     * are held back; alerts.quiet says one was. */
    "CREATE TABLE quiet_hours("
    "  ws INTEGER PRIMARY KEY,"
    "  start_min INTEGER NOT NULL,"
    "  end_min INTEGER NOT NULL,"
    "  tz TEXT NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "ALTER TABLE alerts ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0;",

    /* 11: the notification outbox: a row per alert event and channel,
     * written in the transaction that changed the alert; delivery (issue
     * 5) takes them from here. */
    "CREATE TABLE notifications("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  alert_id INTEGER NOT NULL,"
    "  event TEXT NOT NULL," /* firing|renotify|acknowledged|resolved */
    "  channel_id INTEGER NOT NULL,"
    "  status TEXT NOT NULL," /* pending|sent|failed|retrying */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX notifications_status ON notifications(status, id);"
    "CREATE INDEX notifications_alert ON notifications(alert_id, id);",

    /* 12: delivery (notify_cmd.c, notify/): channels with their config
     * (secrets included: served redacted), per-severity default and
     * fallback routes, every delivery attempt, the in-app inbox. */
    "CREATE TABLE channels("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ws INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL," /* email|slack|pagerduty|webhook|in_app */
    "  config TEXT NOT NULL,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  disabled_reason TEXT,"
    "  failures INTEGER NOT NULL DEFAULT 0," /* consecutive */
    "  last_error TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX channels_name ON channels(ws, name);"
    "CREATE TABLE channel_routes("
    "  ws INTEGER NOT NULL,"
    "  route TEXT NOT NULL," /* critical|high|medium|low|fallback */
    "  channel_id INTEGER NOT NULL,"
    "  PRIMARY KEY(ws, route, channel_id));"
    "CREATE TABLE notification_attempts("
    "  id INTEGER PRIMARY KEY,"
    "  notification_id INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL," /* sent|retry|failed */
    "  code INTEGER,"          /* HTTP status or SMTP reply */
    "  error TEXT,"
    "  latency_ms INTEGER NOT NULL);"
    "CREATE INDEX notification_attempts_n ON "
    "  notification_attempts(notification_id, id);"
    "ALTER TABLE notifications ADD COLUMN next_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE notifications ADD COLUMN last_code INTEGER;"
    "ALTER TABLE notifications ADD COLUMN sent_ms INTEGER;"
    "ALTER TABLE notifications ADD COLUMN fallback_of INTEGER;"
    "CREATE INDEX notifications_channel ON notifications(channel_id, id);"
    /* The dispatcher's "first waiting of its alert on its channel". */
    "CREATE INDEX notifications_order ON notifications(alert_id, "
    "  channel_id, id);"
    /* Rows enqueued before there were channels name ids that meant
     * nothing: they must not reach channels made now. */
    "UPDATE notifications SET status = 'failed', last_error = 'enqueued "
    "before delivery existed' WHERE status IN ('pending', 'retrying');"
    "CREATE TABLE inbox("
    "  id INTEGER PRIMARY KEY,"
    "  ws INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL," /* alert event, channel_disabled, test */
    "  severity TEXT NOT NULL,"
    "  title TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  alert_id INTEGER,"
    "  notification_id INTEGER,"
    "  read_ms INTEGER);"
    "CREATE INDEX inbox_ws ON inbox(ws, id);",
};

#define COL_NMIGRATIONS                                                        \
    (int)(sizeof(col_migrations) / sizeof(col_migrations[0]))

/* Execute SQL text, logging failures. */
static int col_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error(NULL, "msg=\"sql failed\" error=\"%s\"", msg ? msg : "?");
        sqlite3_free(msg);
    }
    return rc;
}

int col_store_version(struct col_store *s)
{
    sqlite3_stmt *st;
    int v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT max(version) FROM schema_version", -1,
                           &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Apply the migrations the database has not seen yet, up to version upto. */
static int col_migrate(struct col_store *s, int upto, char *err, size_t errlen)
{
    if (col_exec(s->db, "CREATE TABLE IF NOT EXISTS schema_version("
                        "version INTEGER PRIMARY KEY, applied_ms INTEGER)") !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot create schema_version: %s",
                 sqlite3_errmsg(s->db));
        return -1;
    }
    int v = col_store_version(s);
    if (v > COL_NMIGRATIONS) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this tokentap (%d)",
                 v, COL_NMIGRATIONS);
        return -1;
    }
    for (; v < upto; v++) {
        char sql[128];
        if (col_exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK)
            goto fail;
        if (col_exec(s->db, col_migrations[v]) != SQLITE_OK) {
            col_exec(s->db, "ROLLBACK");
            goto fail;
        }
        snprintf(sql, sizeof(sql),
                 "INSERT INTO schema_version VALUES(%d, "
                 "CAST(strftime('%%s','now') AS INTEGER) * 1000)",
                 v + 1);
        if (col_exec(s->db, sql) != SQLITE_OK ||
            col_exec(s->db, "COMMIT") != SQLITE_OK) {
            col_exec(s->db, "ROLLBACK");
            goto fail;
        }
        log_info(NULL, "msg=\"schema migrated\" version=%d", v + 1);
    }
    return 0;
fail:
    snprintf(err, errlen, "migration %d failed: %s", v + 1,
             sqlite3_errmsg(s->db));
    return -1;
}

/* Prepare one statement or fail the open. */
static int col_prep(struct col_store *s, sqlite3_stmt **st, const char *sql,
                    char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
                           NULL) == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "cannot prepare \"%.60s\": %s", sql,
             sqlite3_errmsg(s->db));
    return -1;
}

int col_store_open(struct col_store *s, const char *path, const char *sync,
                   char *err, size_t errlen)
{
    return col_store_open_at(s, path, sync, COL_NMIGRATIONS, err, errlen);
}

int col_store_open_at(struct col_store *s, const char *path, const char *sync,
                      int version, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (rollup_sql_register(s->db) != SQLITE_OK) {
        snprintf(err, errlen, "cannot register SQL functions: %s",
                 sqlite3_errmsg(s->db));
        return -1;
    }
    /* Larger pages: fewer WAL frames (and write calls) per event.  Only a
     * new database takes it; an existing one keeps its page size. */
    col_exec(s->db, "PRAGMA page_size=" COL_PAGE_SIZE);
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
             "PRAGMA wal_autocheckpoint=4000;",
             strcmp(sync, "full") == 0 ? "FULL" : "NORMAL");
    if (col_exec(s->db, pragmas) != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up %s: %s", path,
                 sqlite3_errmsg(s->db));
        return -1;
    }
    if (col_migrate(s, version, err, errlen) != 0)
        return -1;

    if (col_prep(s, &s->ins,
                 "INSERT OR IGNORE INTO events(ws, id, ts, received, "
                 "provider, model, operation, input_tokens, output_tokens, "
                 "cache_read_tokens, cache_write_tokens, reasoning_tokens, "
                 "cost_usd, cost_source, latency_ms, ttft_ms, status, "
                 "error_type, is_error, user, agent, api_key, session, "
                 "round, request_id, tags) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,"
                 "?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 err, errlen) ||
        col_prep(s, &s->ws_get, "SELECT id FROM workspaces WHERE name = ?", err,
                 errlen) ||
        col_prep(s, &s->ws_add,
                 "INSERT INTO workspaces(name, created_ms) VALUES(?, ?)", err,
                 errlen) ||
        col_prep(s, &s->sec_put,
                 "INSERT OR REPLACE INTO live_seconds VALUES(?, ?, ?)", err,
                 errlen) ||
        col_prep(s, &s->tot_put,
                 "INSERT OR REPLACE INTO live_totals VALUES(?, ?, ?, ?, ?)",
                 err, errlen) ||
        col_prep(s, &s->meta_put, "INSERT OR REPLACE INTO meta VALUES(?, ?)",
                 err, errlen) ||
        col_prep(s, &s->unk_put,
                 "INSERT INTO pricing_unknown VALUES(?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT(workspace, provider, model) DO UPDATE SET "
                 "events = events + excluded.events, "
                 "last_seen_ms = excluded.last_seen_ms",
                 err, errlen) ||
        col_prep(s, &s->touch,
                 "UPDATE api_keys SET last_used_ms = ?2 WHERE id = ?1 AND "
                 "(last_used_ms IS NULL OR last_used_ms < ?2)",
                 err, errlen) ||
        col_prep(s, &s->prune, "DELETE FROM live_seconds WHERE sec < ?", err,
                 errlen))
        return -1;
    s->unknown_cap = 256;
    s->unknown = calloc(s->unknown_cap, sizeof(*s->unknown));
    if (s->unknown == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void col_store_close(struct col_store *s)
{
    sqlite3_stmt *all[] = {s->ins,     s->ws_get,  s->ws_add,
                           s->sec_put, s->tot_put, s->meta_put,
                           s->unk_put, s->touch,   s->prune};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    if (s->db != NULL)
        sqlite3_close(s->db);
    free(s->unknown);
    memset(s, 0, sizeof(*s));
}

int col_store_begin(struct col_store *s)
{
    return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
}

int col_store_commit(struct col_store *s)
{
    return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
}

void col_store_rollback(struct col_store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    /* A workspace created in the rolled-back transaction is gone, and so
     * are the unknown-model events it counted. */
    s->ws_last_id = 0;
    for (uint32_t i = 0; i < s->unknown_cap; i++) {
        s->unknown[i].events = 0;
        s->unknown[i].dirty = 0;
    }
}

/* The id of workspace name, creating it inside the open transaction. */
static int64_t col_workspace_id(struct col_store *s, const char *name)
{
    /* One-entry cache: batches come one workspace at a time. */
    if (s->ws_last_id > 0 && strcmp(s->ws_last, name) == 0)
        return s->ws_last_id;
    int64_t id = -1;
    sqlite3_bind_text(s->ws_get, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(s->ws_get) == SQLITE_ROW)
        id = sqlite3_column_int64(s->ws_get, 0);
    sqlite3_reset(s->ws_get);
    if (id < 0) {
        sqlite3_bind_text(s->ws_add, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ws_add, 2, proto_now_ms());
        if (sqlite3_step(s->ws_add) == SQLITE_DONE)
            id = sqlite3_last_insert_rowid(s->db);
        sqlite3_reset(s->ws_add);
    }
    if (id > 0) {
        snprintf(s->ws_last, sizeof(s->ws_last), "%s", name);
        s->ws_last_id = id;
    }
    return id;
}

/* Remember an event priced at zero because its model is unknown. */
static void col_note_unknown(struct col_store *s, const char *ws,
                             const struct ev_rec *r, int64_t now)
{
    char key[340];
    snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", ws, ev_str(r, EV_S_PROVIDER),
             ev_str(r, EV_S_MODEL));
    uint32_t h = (uint32_t)hash_str(HASH_SEED, key);
    for (uint32_t i = 0; i < s->unknown_cap; i++) {
        struct col_unknown *u = &s->unknown[(h + i) % s->unknown_cap];
        if (u->key[0] == '\0') {
            if (s->nunknown + 1 >= s->unknown_cap / 2)
                break; /* full enough: flush first (below) */
            snprintf(u->key, sizeof(u->key), "%s", key);
            s->nunknown++;
        } else if (strcmp(u->key, key) != 0)
            continue;
        u->events++;
        u->last_ms = now;
        u->dirty = 1;
        return;
    }
    /* The set is full: flush it, empty it and count again. */
    col_store_flush_unknown(s);
    memset(s->unknown, 0, s->unknown_cap * sizeof(*s->unknown));
    s->nunknown = 0;
    col_note_unknown(s, ws, r, now);
}

int col_store_flush_unknown(struct col_store *s)
{
    int rc = SQLITE_OK;
    for (uint32_t i = 0; i < s->unknown_cap; i++) {
        struct col_unknown *u = &s->unknown[i];
        if (!u->dirty)
            continue;
        char *f1 = strchr(u->key, '\x1f'),
             *f2 = f1 ? strchr(f1 + 1, '\x1f') : NULL;
        if (f2 == NULL)
            continue;
        sqlite3_bind_text(s->unk_put, 1, u->key, (int)(f1 - u->key),
                          SQLITE_STATIC);
        sqlite3_bind_text(s->unk_put, 2, f1 + 1, (int)(f2 - f1 - 1),
                          SQLITE_STATIC);
        sqlite3_bind_text(s->unk_put, 3, f2 + 1, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->unk_put, 4, (sqlite3_int64)u->events);
        sqlite3_bind_int64(s->unk_put, 5, u->last_ms);
        sqlite3_bind_int64(s->unk_put, 6, u->last_ms);
        rc = sqlite3_step(s->unk_put);
        sqlite3_reset(s->unk_put);
        if (rc != SQLITE_DONE)
            return rc;
        u->events = 0;
        u->dirty = 0;
    }
    return SQLITE_OK;
}

/* Bind a string field, NULL when absent. */
static void col_bind_str(sqlite3_stmt *st, int i, const struct ev_rec *r,
                         enum ev_str f)
{
    if (r->str_len[f] == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, ev_str(r, f), r->str_len[f], SQLITE_STATIC);
}

int col_store_insert(struct col *c, struct col_item *it)
{
    struct col_store *s = &c->store;
    const struct ev_rec *r = it->rec;
    sqlite3_stmt *st = s->ins;
    int64_t ws = col_workspace_id(s, it->workspace);
    if (ws < 0)
        return SQLITE_ERROR;
    it->ws_id = ws;

    double cost = 0;
    int source;
    if (r->flags & EV_F_COST) {
        cost = r->cost_usd;
        source = 0;
    } else {
        const struct price_entry *p =
            c->prices ? price_find(c->prices, ev_str(r, EV_S_PROVIDER),
                                   ev_str(r, EV_S_MODEL))
                      : NULL;
        if (p != NULL) {
            cost = price_cost(p, r);
            source = 1;
        } else
            source = 2;
    }
    it->cost_nusd = llround(cost * 1e9);
    it->unknown = source == 2;

    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_text(st, 2, ev_str(r, EV_S_ID), r->str_len[EV_S_ID],
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->ts_ms);
    sqlite3_bind_int64(st, 4, it->received_ms);
    sqlite3_bind_text(st, 5, ev_str(r, EV_S_PROVIDER),
                      r->str_len[EV_S_PROVIDER], SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev_str(r, EV_S_MODEL), r->str_len[EV_S_MODEL],
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 7, ev_str(r, EV_S_OPERATION),
                      r->str_len[EV_S_OPERATION], SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->input_tokens);
    sqlite3_bind_int64(st, 9, r->output_tokens);
    sqlite3_bind_int64(st, 10, r->cache_read_tokens);
    sqlite3_bind_int64(st, 11, r->cache_write_tokens);
    sqlite3_bind_int64(st, 12, r->reasoning_tokens);
    sqlite3_bind_double(st, 13, (double)it->cost_nusd / 1e9);
    sqlite3_bind_int(st, 14, source);
    if (r->flags & EV_F_LATENCY)
        sqlite3_bind_double(st, 15, r->latency_ms);
    else
        sqlite3_bind_null(st, 15);
    if (r->flags & EV_F_TTFT)
        sqlite3_bind_double(st, 16, r->ttft_ms);
    else
        sqlite3_bind_null(st, 16);
    if (r->flags & EV_F_STATUS)
        sqlite3_bind_int(st, 17, r->status);
    else
        sqlite3_bind_null(st, 17);
    col_bind_str(st, 18, r, EV_S_ERROR_TYPE);
    sqlite3_bind_int(st, 19, (r->flags & EV_F_ERROR) ? 1 : 0);
    col_bind_str(st, 20, r, EV_S_USER);
    col_bind_str(st, 21, r, EV_S_AGENT);
    col_bind_str(st, 22, r, EV_S_API_KEY);
    col_bind_str(st, 23, r, EV_S_SESSION);
    if (r->flags & EV_F_ROUND)
        sqlite3_bind_int(st, 24, r->round);
    else
        sqlite3_bind_null(st, 24);
    if (r->str_len[EV_S_REQUEST_ID] > 0)
        col_bind_str(st, 25, r, EV_S_REQUEST_ID);
    else if (it->request_id != NULL && it->request_id[0] != '\0')
        sqlite3_bind_text(st, 25, it->request_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 25);
    col_bind_str(st, 26, r, EV_S_TAGS);

    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (sqlite3_changes(s->db) == 1) {
        it->seq = sqlite3_last_insert_rowid(s->db);
        if (source == 2)
            col_note_unknown(s, it->workspace, r, it->received_ms);
    } else
        it->seq = 0;
    return SQLITE_OK;
}

int col_store_save_catalog(struct col_store *s, const struct price_catalog *p)
{
    sqlite3_stmt *st;
    int rc = col_store_begin(s);
    if (rc != SQLITE_OK)
        return rc;
    col_exec(s->db, "DELETE FROM pricing_catalog");
    rc = sqlite3_prepare_v2(s->db,
                            "INSERT OR REPLACE INTO pricing_catalog "
                            "VALUES(?,?,?,?,?,?,?,?)",
                            -1, &st, NULL);
    for (int i = 0; rc == SQLITE_OK && i < price_count(p); i++) {
        const struct price_entry *e = price_at(p, i);
        sqlite3_bind_text(st, 1, e->provider, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->model, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, e->input);
        sqlite3_bind_double(st, 4, e->output);
        sqlite3_bind_double(st, 5, e->cache_read);
        sqlite3_bind_double(st, 6, e->cache_write);
        sqlite3_bind_text(st, 7, e->date, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, e->source, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        col_store_rollback(s);
        return rc;
    }
    return col_store_commit(s);
}

int col_store_touch_key(struct col_store *s, int64_t id, int64_t ms)
{
    sqlite3_bind_int64(s->touch, 1, id);
    sqlite3_bind_int64(s->touch, 2, ms);
    int rc = sqlite3_step(s->touch);
    sqlite3_reset(s->touch);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Save one dim's totals (a live_dirty_totals visitor). */
static void col_save_total(void *ctx, const struct shm_dim *d,
                           const struct shm_agg *a)
{
    struct col_store *s = ctx;
    sqlite3_bind_int(s->tot_put, 1, d->kind);
    sqlite3_bind_text(s->tot_put, 2, d->workspace, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->tot_put, 3, d->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->tot_put, 4, d->model, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s->tot_put, 5, a, sizeof(*a), SQLITE_STATIC);
    if (sqlite3_step(s->tot_put) != SQLITE_DONE)
        s->save_failed = 1;
    sqlite3_reset(s->tot_put);
}

void col_store_save_second(struct col *c, int64_t sec, const void *blob,
                           size_t len)
{
    struct col_store *s = &c->store;
    if (!c->persist)
        return;
    if (col_store_begin(s) != SQLITE_OK) {
        log_warn(NULL, "msg=\"cannot save live second\" error=\"%s\"",
                 sqlite3_errmsg(s->db));
        return;
    }
    sqlite3_bind_int64(s->sec_put, 1, sec);
    sqlite3_bind_int64(s->sec_put, 2, c->live_seq);
    sqlite3_bind_blob(s->sec_put, 3, blob, (int)len, SQLITE_STATIC);
    s->save_failed = sqlite3_step(s->sec_put) != SQLITE_DONE;
    sqlite3_reset(s->sec_put);
    live_dirty_totals(c->live, col_save_total, s);
    sqlite3_bind_text(s->meta_put, 1, "live_seq", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->meta_put, 2, c->live_seq);
    if (sqlite3_step(s->meta_put) != SQLITE_DONE)
        s->save_failed = 1;
    sqlite3_reset(s->meta_put);
    sqlite3_bind_int64(s->prune, 1, sec - (int64_t)c->conf.live_seconds);
    sqlite3_step(s->prune); /* pruning can wait for the next second */
    sqlite3_reset(s->prune);
    /* All or nothing: live_seq must never pass totals that were not
     * saved with it. */
    if (s->save_failed || col_store_commit(s) != SQLITE_OK) {
        log_warn(NULL, "msg=\"cannot save live second\" error=\"%s\"",
                 sqlite3_errmsg(s->db));
        col_store_rollback(s);
        /* The totals were not saved: save them all with the next second. */
        live_redirty_totals(c->live);
    }
}

int col_store_bootstrap_admin(struct col_store *s, const char *key_path)
{
    sqlite3_stmt *st;
    int have = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM api_keys WHERE role = 'admin' "
                           "AND revoked_ms IS NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (have > 0)
        return 0;

    char key[KEY_LEN + 1], hash[KEY_HASH_HEX + 1], tmp[CONF_PATH_MAX + 8];
    if (key_generate(key) != 0)
        return -1;
    key_hash(key, KEY_LEN, hash);
    /* Write the file first: a key in the database that nobody can read
     * would lock the operator out. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", key_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char line[KEY_LEN + 2];
    snprintf(line, sizeof(line), "%s\n", key);
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) ||
        fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    /* The file goes in place before the row commits: a crash in between
     * leaves a key file and no admin row, and the next start makes a new
     * key; never an admin row without its file. */
    if (col_store_begin(s) != SQLITE_OK) {
        unlink(tmp);
        return -1;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO api_keys(hash, prefix, name, role, "
                           "workspace, created_ms) VALUES(?, ?, "
                           "'bootstrap admin', 'admin', 'default', ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        col_store_rollback(s);
        unlink(tmp);
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, KEY_PREFIX_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, proto_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || rename(tmp, key_path) != 0 ||
        col_store_commit(s) != SQLITE_OK) {
        col_store_rollback(s);
        unlink(tmp);
        return -1;
    }
    return 1;
}

uint64_t col_store_size(const char *db_path)
{
    struct stat st;
    uint64_t n = 0;
    char wal[CONF_PATH_MAX + 8];
    if (stat(db_path, &st) == 0)
        n += (uint64_t)st.st_size;
    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    if (stat(wal, &st) == 0)
        n += (uint64_t)st.st_size;
    return n;
}
