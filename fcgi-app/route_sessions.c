/*
 * route_sessions.c: crosstalk sessions of the key's workspace.
 *
 *   GET /api/v1/sessions          sessions active in the range, newest
 *                                 activity first, cursor pagination
 *   GET /api/v1/sessions/{id}     one session, per round and per model
 *   GET /api/v1/sessions/stats    counts and averages over the sessions
 *                                 started in the range
 *
 * The collector keeps the tables sessions and session_rounds (rollup.h)
 * up to meta.rollup_seq; each answer adds the raw events after it, in one
 * read transaction (snapshot.c), so that it counts every committed event
 * exactly once.  In SQL the raw tail is a handful of small CTEs (per
 * session: totals, the first user and agent named, the rounds seen), and a
 * session is either "stored" (not in the tail: its row as is, which keeps
 * the (ws, last_ms) index usable for the newest-first pages) or "merged"
 * (its row, if any, plus its tail).  A session's user and agent are the
 * first non-empty ones it named, its rounds the distinct rounds >= 0, as
 * the collector records them.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "rollup.h"

/* Parameters of the list and stats statements: ?1 ws, ?2 rollup_seq,
 * ?3 from, ?4 to, ?5 provider, ?6 model, ?7 agent, ?8 user, ?9 status,
 * ?10 and ?11 the cursor (last activity, id), ?12 the limit. */
#define API_SESS_TAIL                                                          \
    "WITH tail AS MATERIALIZED (SELECT session, min(ts) AS t0, max(ts) AS "    \
    "t1, count(*) AS calls, sum(is_error) AS errors, sum(input_tokens) AS "    \
    "tin, sum(output_tokens) AS tout, sum(cache_read_tokens) AS tcr, "         \
    "sum(cache_write_tokens) AS tcw, sum(reasoning_tokens) AS trs, "           \
    "sum(CAST(round(cost_usd * 1e9) AS INTEGER)) AS cost, count(latency_ms) "  \
    "AS lat_n, total(latency_ms) AS lat_sum, max((?5 IS NULL OR provider = "   \
    "?5) AND (?6 IS NULL OR model = ?6)) AS used FROM events WHERE seq > ?2 "  \
    "AND +ws = ?1 AND session IS NOT NULL GROUP BY session), "                 \
    "tail_user AS MATERIALIZED (SELECT session, user, min(seq) FROM events "   \
    "WHERE seq > ?2 AND +ws = ?1 AND session IS NOT NULL AND user != '' "      \
    "GROUP BY session), "                                                      \
    "tail_agent AS MATERIALIZED (SELECT session, agent, min(seq) FROM "        \
    "events WHERE seq > ?2 AND +ws = ?1 AND session IS NOT NULL AND agent "    \
    "!= '' GROUP BY session), "                                                \
    "tail_rounds AS MATERIALIZED (SELECT DISTINCT session, round FROM "        \
    "events WHERE seq > ?2 AND +ws = ?1 AND session IS NOT NULL AND round "    \
    ">= 0) "

/* The stored rounds of session x used the asked provider and model. */
#define API_SESS_USED(x)                                                       \
    "((?5 IS NULL AND ?6 IS NULL) OR EXISTS (SELECT 1 FROM session_rounds r "  \
    "WHERE r.ws = ?1 AND r.session = " x " AND (?5 IS NULL OR r.provider = "   \
    "?5) AND (?6 IS NULL OR r.model = ?6)))"

/* The range (and cursor) condition cond, then the filters, on either
 * kind's columns. */
#define API_SESS_F(cond, agent, user, errors, used)                            \
    " " cond " AND " used " AND (?7 IS NULL OR " agent                         \
    " = ?7) AND (?8 IS NULL OR " user " = ?8) AND (?9 < 0 OR (" errors         \
    " > 0) = ?9) "

/* The list's range: sessions active in it, and its cursor. */
#define API_SESS_ACTIVE(last, started, id)                                     \
    last " >= ?3 AND " started " < ?4 AND " last " <= ?10 AND (" last          \
         " < ?10 OR " id " < ?11)"

/* The stats' range: sessions started in it. */
#define API_SESS_STARTED(started) started " >= ?3 AND " started " < ?4"

/* Sessions the tail did not touch, as stored: a plain select on sessions,
 * so that newest-first pages walk the (ws, last_ms) index (and the stats
 * the (ws, started_ms) one).  cond(last, started, id) is the range. */
#define API_SESS_STORED(cond)                                                  \
    "SELECT s.session AS id, s.user AS user, s.agent AS agent, s.started_ms "  \
    "AS started, s.last_ms AS last, s.calls AS calls, s.errors AS errors, "    \
    "s.input_tokens AS tin, s.output_tokens AS tout, s.cache_read_tokens AS "  \
    "tcr, s.cache_write_tokens AS tcw, s.reasoning_tokens AS trs, "            \
    "s.cost_nusd AS cost, s.lat_n AS lat_n, s.lat_sum AS lat_sum, s.rounds "   \
    "AS rounds, 0 AS in_tail FROM sessions s WHERE s.ws = ?1 AND s.session "   \
    "NOT IN (SELECT session FROM tail) AND" API_SESS_F(                        \
        cond("s.last_ms", "s.started_ms", "s.session"), "s.agent", "s.user",   \
        "s.errors", API_SESS_USED("s.session"))

/* Sessions the tail touched: their row (if any) plus their tail. */
#define API_SESS_MERGED(cond)                                                  \
    "SELECT * FROM (SELECT t.session AS id, coalesce(nullif(s.user, ''), "     \
    "tu.user, '') AS user, coalesce(nullif(s.agent, ''), ta.agent, '') AS "    \
    "agent, min(coalesce(s.started_ms, t.t0), t.t0) AS started, "              \
    "max(coalesce(s.last_ms, t.t1), t.t1) AS last, coalesce(s.calls, 0) + "    \
    "t.calls AS calls, coalesce(s.errors, 0) + t.errors AS errors, "           \
    "coalesce(s.input_tokens, 0) + t.tin AS tin, coalesce(s.output_tokens, "   \
    "0) + t.tout AS tout, coalesce(s.cache_read_tokens, 0) + t.tcr AS tcr, "   \
    "coalesce(s.cache_write_tokens, 0) + t.tcw AS tcw, "                       \
    "coalesce(s.reasoning_tokens, 0) + t.trs AS trs, coalesce(s.cost_nusd, "   \
    "0) + t.cost AS cost, coalesce(s.lat_n, 0) + t.lat_n AS lat_n, "           \
    "coalesce(s.lat_sum, 0) + t.lat_sum AS lat_sum, (SELECT count(*) FROM "    \
    "(SELECT round FROM session_rounds r WHERE r.ws = ?1 AND r.session = "     \
    "t.session AND r.round >= 0 UNION SELECT round FROM tail_rounds x WHERE "  \
    "x.session = t.session)) AS rounds, 1 AS in_tail, (t.used "                \
    "OR " API_SESS_USED(                                                       \
        "t.session") ") AS used FROM tail t LEFT JOIN sessions s "             \
                     "ON s.ws = ?1 AND s.session = t.session LEFT JOIN "       \
                     "tail_user tu ON "                                        \
                     "tu.session = t.session LEFT JOIN tail_agent ta ON "      \
                     "ta.session = "                                           \
                     "t.session) WHERE" API_SESS_F(                            \
                         cond("last", "started", "id"), "agent", "user",       \
                         "errors", "used")

/* The columns of both kinds, in the order of SC_*. */
#define API_SESS_COLS                                                          \
    "id, user, agent, started, last, calls, errors, tin, tout, tcr, tcw, "     \
    "trs, cost, lat_n, lat_sum, rounds, in_tail"

/* The started condition in the shape of API_SESS_ACTIVE. */
#define API_SESS_STARTED3(last, started, id) API_SESS_STARTED(started)

static const char api_sess_list_sql[] =
    API_SESS_TAIL "SELECT * FROM (" API_SESS_STORED(
        API_SESS_ACTIVE) " ORDER BY s.last_ms DESC, s.session DESC LIMIT ?12) "
                         "UNION ALL SELECT " API_SESS_COLS
                         " FROM (" API_SESS_MERGED(
                             API_SESS_ACTIVE) ") ORDER BY last DESC, id DESC "
                                              "LIMIT ?12";

/* The stats as sums in the order of v in api_sessions_stats: sessions,
 * rounds, calls, errors, sessions with errors, five token counts, cost,
 * total duration. */
#define API_SESS_SUMS                                                          \
    "count(*), sum(rounds), sum(calls), sum(errors), sum(errors > 0), "        \
    "sum(tin), sum(tout), sum(tcr), sum(tcw), sum(trs), sum(cost), "           \
    "sum(last - started)"

/* With filters: every session started in the range, as stored or merged
 * with the tail. */
static const char api_sess_stats_sql[] =
    API_SESS_TAIL ", m AS (" API_SESS_STORED(
        API_SESS_STARTED3) " UNION ALL SELECT " API_SESS_COLS
                           " FROM (" API_SESS_MERGED(
                               API_SESS_STARTED3) ")) SELECT " API_SESS_SUMS
                                                  " FROM m";

/* Without filters, the whole days of the range (?1 ws, ?2 and ?3 the
 * days). */
static const char api_sess_days_sql[] =
    "SELECT sum(sessions), sum(rounds), sum(calls), sum(errors), "
    "sum(err_sessions), sum(input_tokens), sum(output_tokens), "
    "sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), "
    "sum(cost_nusd), sum(dur_ms) FROM session_days WHERE ws = ?1 AND "
    "day_ms >= ?2 AND day_ms < ?3";

/* ... and its partial days, from the stored sessions started in [?2, ?3). */
static const char api_sess_part_sql[] =
    "SELECT " API_SESS_SUMS " FROM (SELECT rounds, calls, errors, "
    "input_tokens AS tin, output_tokens AS tout, cache_read_tokens AS tcr, "
    "cache_write_tokens AS tcw, reasoning_tokens AS trs, cost_nusd AS cost, "
    "last_ms AS last, started_ms AS started FROM sessions WHERE ws = ?1 AND "
    "started_ms >= ?2 AND started_ms < ?3)";

/* ... and the lag: the sessions the tail touched counted as merged (sign
 * 1, by their merged start) instead of as stored (sign -1, by their stored
 * start, as the days and partial days counted them). */
static const char api_sess_lag_sql[] = API_SESS_TAIL
    ", mg AS (SELECT min(coalesce(s.started_ms, t.t0), t.t0) AS started, "
    "max(coalesce(s.last_ms, t.t1), t.t1) AS last, coalesce(s.calls, 0) + "
    "t.calls AS calls, coalesce(s.errors, 0) + t.errors AS errors, "
    "coalesce(s.input_tokens, 0) + t.tin AS tin, coalesce(s.output_tokens, "
    "0) + t.tout AS tout, coalesce(s.cache_read_tokens, 0) + t.tcr AS tcr, "
    "coalesce(s.cache_write_tokens, 0) + t.tcw AS tcw, "
    "coalesce(s.reasoning_tokens, 0) + t.trs AS trs, coalesce(s.cost_nusd, "
    "0) + t.cost AS cost, (SELECT count(*) FROM (SELECT round FROM "
    "session_rounds r WHERE r.ws = ?1 AND r.session = t.session AND r.round "
    ">= 0 UNION SELECT round FROM tail_rounds x WHERE x.session = "
    "t.session)) AS rounds FROM tail t LEFT JOIN sessions s ON s.ws = ?1 AND "
    "s.session = t.session), "
    "st AS (SELECT s.started_ms AS started, s.last_ms AS last, s.calls AS "
    "calls, s.errors AS errors, s.input_tokens AS tin, s.output_tokens AS "
    "tout, s.cache_read_tokens AS tcr, s.cache_write_tokens AS tcw, "
    "s.reasoning_tokens AS trs, s.cost_nusd AS cost, s.rounds AS rounds FROM "
    "tail t JOIN sessions s ON s.ws = ?1 AND s.session = t.session) "
    "SELECT 1, " API_SESS_SUMS " FROM mg WHERE started >= ?3 AND started < ?4 "
    "UNION ALL SELECT -1, " API_SESS_SUMS " FROM st WHERE started >= ?3 AND "
    "started < ?4";

/* Columns of a list row. */
enum {
    SC_ID,
    SC_USER,
    SC_AGENT,
    SC_STARTED,
    SC_LAST,
    SC_CALLS,
    SC_ERRORS,
    SC_TOK, /* five token counts */
    SC_COST = SC_TOK + SHM_TOK_N,
    SC_LAT_N,
    SC_LAT_SUM,
    SC_ROUNDS,
    SC_IN_TAIL
};

/* Totals of a session, a round or a model. */
struct api_agg {
    int64_t calls, errors, tok[SHM_TOK_N], cost, lat_n, first, last;
    double lat_sum;
    uint32_t *hist; /* HIST_BUCKETS counts, or NULL */
    uint64_t hn;    /* their sum */
};

/* The token counts as JSON; total is every type but reasoning, which is
 * part of output (as in the live statistics). */
static json_t *api_sess_tokens(const int64_t *tok)
{
    json_t *o = json_object();
    int64_t total = 0;
    for (int t = 0; t < SHM_TOK_N; t++) {
        json_object_set_new(o, shm_tok_names[t], json_integer(tok[t]));
        total += t != SHM_TOK_REASONING ? tok[t] : 0;
    }
    json_object_set_new(o, "total", json_integer(total));
    return o;
}

/* Sum of the token types that make the total. */
static int64_t api_sess_total(const int64_t *tok)
{
    int64_t total = 0;
    for (int t = 0; t < SHM_TOK_N; t++)
        total += t != SHM_TOK_REASONING ? tok[t] : 0;
    return total;
}

/* ---- the list and the stats ---- */

/* Parse a cursor "LAST.HEXID" into *last and the id (arena). */
static int api_sess_cursor(struct api_req *r, const char *c, int64_t *last,
                           char **id)
{
    char *end;
    errno = 0;
    long long v = strtoll(c, &end, 10);
    if (end == c || *end != '.' || errno != 0)
        return -1;
    const char *h = end + 1;
    size_t n = strlen(h);
    if (n == 0 || n % 2 != 0 || n > 2 * EV_MAX_NAME)
        return -1;
    *id = arena_alloc(r->arena, n / 2 + 1);
    if (*id == NULL)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned x;
        if (sscanf(h + 2 * i, "%2x", &x) != 1 ||
            strchr("0123456789abcdef", h[2 * i]) == NULL ||
            strchr("0123456789abcdef", h[2 * i + 1]) == NULL)
            return -1;
        (*id)[i] = (char)x;
    }
    (*id)[n / 2] = '\0';
    *last = v;
    return 0;
}

/* The common parameters of the list and the stats. */
struct api_sess_q {
    struct api_range rg;
    struct api_filter f;
    int csv;
    long limit;
    int64_t cur_last;
    char *cur_id; /* NULL: first page */
};

/* Parse them; with_page adds limit and cursor.  Returns 0 or -1 after
 * answering 400. */
static int api_sess_parse(struct api_req *r, struct api_sess_q *q,
                          int with_page)
{
    static const char *const page[] = {"range",  "from",  "to",     "provider",
                                       "model",  "agent", "user",   "status",
                                       "format", "limit", "cursor", NULL};
    static const char *const stats[] = {"range",  "from",  "to",   "provider",
                                        "model",  "agent", "user", "status",
                                        "format", NULL};
    memset(q, 0, sizeof(*q));
    if (api_query_only(r, with_page ? page : stats) != 0 ||
        api_parse_range(r, "24h", &q->rg) != 0 ||
        api_parse_filters(r, &q->f) != 0 || api_parse_format(r, &q->csv) != 0)
        return -1;
    q->cur_last = INT64_MAX;
    if (!with_page)
        return 0;
    long max = q->csv ? 1000000 : 1000;
    q->limit = q->csv ? max : 100;
    const char *lq = api_query(r, "limit");
    if (lq != NULL) {
        char *end;
        q->limit = strtol(lq, &end, 10);
        if (lq[0] == '\0' || *end != '\0' || q->limit < 1 || q->limit > max)
            return api_error(r, 400, "invalid_parameter", "limit",
                             "limit must be an integer from 1 to %ld, got "
                             "\"%.32s\"",
                             max, lq);
    }
    const char *cq = api_query(r, "cursor");
    if (cq != NULL && api_sess_cursor(r, cq, &q->cur_last, &q->cur_id) != 0)
        return api_error(r, 400, "invalid_parameter", "cursor",
                         "cursor must be a next_cursor from an earlier "
                         "answer, got \"%.64s\"",
                         cq);
    return 0;
}

/* Prepare sql and bind the common parameters. */
static sqlite3_stmt *api_sess_prepare(struct api_req *r, const char *sql,
                                      int64_t ws, int64_t seq,
                                      const struct api_sess_q *q)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, q->rg.from_ms);
    sqlite3_bind_int64(st, 4, q->rg.to_ms);
    const char *fs[] = {q->f.provider, q->f.model, q->f.agent, q->f.user};
    for (int i = 0; i < 4; i++)
        if (fs[i] != NULL)
            sqlite3_bind_text(st, 5 + i, fs[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, q->f.status);
    sqlite3_bind_int64(st, 10, q->cur_last);
    /* Without a cursor, a blob: it sorts after every text id. */
    if (q->cur_id != NULL)
        sqlite3_bind_text(st, 11, q->cur_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_blob(st, 11, "\xff", 1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, q->limit);
    return st;
}

/* The distinct models of a session (the tail's too when in_tail), sorted;
 * models is prepared on ?1 ws, ?2 session, ?3 rollup_seq, ?4 in_tail. */
static void api_sess_models(sqlite3_stmt *models, const char *id, int in_tail,
                            void (*fn)(void *ctx, const char *model), void *ctx)
{
    sqlite3_bind_text(models, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(models, 4, in_tail);
    while (sqlite3_step(models) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(models, 0));
    sqlite3_reset(models);
}

/* api_sess_models visitor: append to a JSON array. */
static void api_sess_model_json(void *ctx, const char *model)
{
    json_array_append_new(ctx, json_string(model));
}

/* A growing "a;b;c" list for CSV. */
struct api_sess_mlist {
    char buf[2048];
    size_t len;
};

/* api_sess_models visitor: append to a ';'-separated list. */
static void api_sess_model_csv(void *ctx, const char *model)
{
    struct api_sess_mlist *m = ctx;
    if (m->len < sizeof(m->buf))
        m->len += (size_t)snprintf(m->buf + m->len, sizeof(m->buf) - m->len,
                                   "%s%s", m->len ? ";" : "", model);
}

/* One list row as JSON. */
static json_t *api_sess_row_json(sqlite3_stmt *st, sqlite3_stmt *models)
{
    int64_t tok[SHM_TOK_N];
    for (int t = 0; t < SHM_TOK_N; t++)
        tok[t] = sqlite3_column_int64(st, SC_TOK + t);
    int64_t started = sqlite3_column_int64(st, SC_STARTED);
    int64_t last = sqlite3_column_int64(st, SC_LAST);
    const char *id = (const char *)sqlite3_column_text(st, SC_ID);
    json_t *m = json_array();
    api_sess_models(models, id, sqlite3_column_int(st, SC_IN_TAIL),
                    api_sess_model_json, m);
    json_t *o = json_pack(
        "{s:s, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:I}", "id",
        id, "user",
        api_str_or_null((const char *)sqlite3_column_text(st, SC_USER)),
        "agent",
        api_str_or_null((const char *)sqlite3_column_text(st, SC_AGENT)),
        "models", m, "rounds", (json_int_t)sqlite3_column_int64(st, SC_ROUNDS),
        "calls", (json_int_t)sqlite3_column_int64(st, SC_CALLS), "errors",
        (json_int_t)sqlite3_column_int64(st, SC_ERRORS), "tokens",
        api_sess_tokens(tok), "cost_usd",
        api_usd(sqlite3_column_int64(st, SC_COST)), "started",
        api_time(started), "last_activity", api_time(last), "duration_ms",
        (json_int_t)(last - started));
    return o;
}

/* The token columns of every CSV here, in shm_tok order, then the total. */
#define API_SESS_TOKEN_COLS                                                    \
    "input_tokens", "output_tokens", "cache_read_tokens",                      \
        "cache_write_tokens", "reasoning_tokens", "total_tokens"

static const char *const api_sess_cols[] = {
    "id",       "user",    "agent",         "models",
    "rounds",   "calls",   "errors",        API_SESS_TOKEN_COLS,
    "cost_usd", "started", "last_activity", "duration_ms"};

#define API_SESS_NCOLS (int)(sizeof(api_sess_cols) / sizeof(api_sess_cols[0]))

/* One list row as CSV. */
static void api_sess_row_csv(struct api_req *r, sqlite3_stmt *st,
                             sqlite3_stmt *models)
{
    char num[12][32];
    const char *f[API_SESS_NCOLS];
    int64_t tok[SHM_TOK_N];
    struct api_sess_mlist ml;
    ml.len = 0;
    ml.buf[0] = '\0';
    f[0] = (const char *)sqlite3_column_text(st, SC_ID);
    f[1] = (const char *)sqlite3_column_text(st, SC_USER);
    f[2] = (const char *)sqlite3_column_text(st, SC_AGENT);
    api_sess_models(models, f[0], sqlite3_column_int(st, SC_IN_TAIL),
                    api_sess_model_csv, &ml);
    f[3] = ml.buf;
    const int ints[] = {SC_ROUNDS, SC_CALLS, SC_ERRORS};
    for (int i = 0; i < 3; i++) {
        snprintf(num[i], sizeof(num[i]), "%lld",
                 (long long)sqlite3_column_int64(st, ints[i]));
        f[4 + i] = num[i];
    }
    for (int t = 0; t < SHM_TOK_N; t++) {
        tok[t] = sqlite3_column_int64(st, SC_TOK + t);
        snprintf(num[3 + t], sizeof(num[0]), "%lld", (long long)tok[t]);
        f[7 + t] = num[3 + t];
    }
    snprintf(num[8], sizeof(num[8]), "%lld", (long long)api_sess_total(tok));
    f[12] = num[8];
    api_usd_text(sqlite3_column_int64(st, SC_COST), num[9], sizeof(num[9]));
    f[13] = num[9];
    int64_t started = sqlite3_column_int64(st, SC_STARTED);
    int64_t last = sqlite3_column_int64(st, SC_LAST);
    ev_format_rfc3339(started, num[10], sizeof(num[10]));
    ev_format_rfc3339(last, num[11], sizeof(num[11]));
    f[14] = num[10];
    f[15] = num[11];
    char dur[24];
    snprintf(dur, sizeof(dur), "%lld", (long long)(last - started));
    f[16] = dur;
    for (int i = 0; i < API_SESS_NCOLS; i++)
        api_csv_field(r, f[i] ? f[i] : "", i == API_SESS_NCOLS - 1);
}

/* Send the CSV head: the file is tokentap-KIND-WHAT.csv, WHAT made of the
 * range, or of the session id cut to safe characters. */
static void api_sess_csv_head(struct api_req *r, const char *kind,
                              const struct api_range *rg, const char *id,
                              const char *const *cols, int n)
{
    char what[72], from[40], to[40], file[160];
    if (id != NULL) {
        size_t k = 0;
        for (; id[k] && k < 64; k++)
            what[k] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                             "TUVWXYZ0123456789._-",
                             id[k])
                          ? id[k]
                          : '_';
        what[k] = '\0';
    } else {
        ev_format_rfc3339(rg->from_ms, from, sizeof(from));
        ev_format_rfc3339(rg->to_ms, to, sizeof(to));
        snprintf(what, sizeof(what), "%.10s-%.10s", from, to);
    }
    snprintf(file, sizeof(file), "tokentap-%s-%s.csv", kind, what);
    api_csv_start(r, file, cols, n);
}

/* The cursor that continues after the row (last, id): "LAST.HEXID". */
static json_t *api_sess_next(struct api_req *r, int64_t last, const char *id)
{
    size_t n = strlen(id);
    char *c = arena_alloc(r->arena, 2 * n + 24);
    if (c == NULL)
        return json_null();
    int k = snprintf(c, 24, "%" PRId64 ".", last);
    for (size_t i = 0; i < n; i++)
        snprintf(c + k + 2 * i, 3, "%02x", (unsigned char)id[i]);
    return json_string(c);
}

int api_sessions_list(struct api_req *r)
{
    struct api_sess_q q;
    if (api_sess_parse(r, &q, 1) != 0)
        return -1;
    int64_t ws = api_ws_id(r), seq;
    if (ws < 0)
        return api_db_unavailable(r);
    if ((seq = api_read_begin(r)) < 0)
        return -1;
    /* One row more than asked says whether there is a next page. */
    q.limit += q.csv ? 0 : 1;
    sqlite3_stmt *st = api_sess_prepare(r, api_sess_list_sql, ws, seq, &q);
    sqlite3_stmt *models = NULL;
    if (st == NULL ||
        sqlite3_prepare_v2(r->t->db,
                           "SELECT model FROM session_rounds WHERE ws = ?1 "
                           "AND session = ?2 UNION SELECT model FROM events "
                           "WHERE ?4 AND seq > ?3 AND +ws = ?1 AND "
                           "+session = ?2 ORDER BY 1",
                           -1, &models, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        api_read_end(r);
        return api_db_unavailable(r);
    }
    sqlite3_bind_int64(models, 1, ws);
    sqlite3_bind_int64(models, 3, seq);
    json_t *arr = NULL, *next = json_null();
    long n = 0;
    int64_t last = 0;
    const char *id = "";
    if (q.csv)
        api_sess_csv_head(r, "sessions", &q.rg, NULL, api_sess_cols,
                          API_SESS_NCOLS);
    else
        arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (q.csv) {
            api_sess_row_csv(r, st, models);
            continue;
        }
        if (n == q.limit - 1) {
            next = api_sess_next(r, last, id);
            break;
        }
        json_array_append_new(arr, api_sess_row_json(st, models));
        last = sqlite3_column_int64(st, SC_LAST);
        id = arena_strndup(r->arena,
                           (const char *)sqlite3_column_text(st, SC_ID),
                           (size_t)sqlite3_column_bytes(st, SC_ID));
        if (id == NULL)
            id = "";
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(models);
    api_read_end(r);
    if (q.csv)
        return 0;
    char from[40], to[40];
    ev_format_rfc3339(q.rg.from_ms, from, sizeof(from));
    ev_format_rfc3339(q.rg.to_ms, to, sizeof(to));
    return api_send_json(r, 200,
                         json_pack("{s:o, s:i, s:s, s:s, s:o}", "sessions", arr,
                                   "count", (int)n, "from", from, "to", to,
                                   "next_cursor", next),
                         NULL);
}

/* An average or null when there is nothing to average. */
static json_t *api_sess_avg(double sum, int64_t n)
{
    return n > 0 ? json_real(sum / (double)n) : json_null();
}

static const char *const api_stats_cols[] = {"sessions",
                                             "rounds",
                                             "calls",
                                             "errors",
                                             "sessions_with_errors",
                                             API_SESS_TOKEN_COLS,
                                             "cost_usd",
                                             "avg_rounds_per_session",
                                             "avg_calls_per_session",
                                             "avg_cost_per_session_usd",
                                             "avg_cost_per_round_usd",
                                             "avg_duration_ms"};

#define API_STATS_NCOLS                                                        \
    (int)(sizeof(api_stats_cols) / sizeof(api_stats_cols[0]))

/* Add sign times the sums of one statement on (?1 ws, ?2 a, ?3 b) to v;
 * returns a SQLite code. */
static int api_stats_add(struct api_req *r, const char *sql, int64_t ws,
                         int64_t a, int64_t b, int64_t *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db, sql, -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    int rc = sqlite3_step(st);
    for (int i = 0; rc == SQLITE_ROW && i < 12; i++)
        v[i] += sqlite3_column_int64(st, i);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
}

/*
 * The stats without filters, into v: the whole UTC days of the range from
 * session_days, the partial days at its ends from the sessions started in
 * them, then the lag (see api_sess_lag_sql).  Every read is in the
 * caller's read transaction, so session_days, sessions and the tail are
 * one state of the database and each session counts once.  Returns a
 * SQLite code.
 */
static int api_stats_fast(struct api_req *r, int64_t ws, int64_t seq,
                          const struct api_sess_q *q, int64_t *v)
{
    const int64_t day = (int64_t)ROLLUP_RES_DAY * 1000;
    int64_t from = q->rg.from_ms, to = q->rg.to_ms;
    /* The whole days [d0, d1); floor division, for ranges before 1970. */
    int64_t d0 = from / day * day, d1 = to / day * day;
    if (d0 > from)
        d0 -= day;
    if (d1 > to)
        d1 -= day;
    if (d0 < from)
        d0 += day;
    int rc;
    if (d0 < d1) {
        rc = api_stats_add(r, api_sess_days_sql, ws, d0, d1, v);
        if (rc == SQLITE_OK && from < d0)
            rc = api_stats_add(r, api_sess_part_sql, ws, from, d0, v);
        if (rc == SQLITE_OK && d1 < to)
            rc = api_stats_add(r, api_sess_part_sql, ws, d1, to, v);
    } else
        rc = from < to ? api_stats_add(r, api_sess_part_sql, ws, from, to, v)
                       : SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = api_sess_prepare(r, api_sess_lag_sql, ws, seq, q);
    if (st == NULL)
        return SQLITE_ERROR;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t sign = sqlite3_column_int64(st, 0);
        for (int i = 0; i < 12; i++)
            v[i] += sign * sqlite3_column_int64(st, 1 + i);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int api_sessions_stats(struct api_req *r)
{
    struct api_sess_q q;
    if (api_sess_parse(r, &q, 0) != 0)
        return -1;
    int64_t ws = api_ws_id(r), seq, v[12] = {0};
    if (ws < 0)
        return api_db_unavailable(r);
    if ((seq = api_read_begin(r)) < 0)
        return -1;
    int rc;
    if (q.f.provider == NULL && q.f.model == NULL && q.f.agent == NULL &&
        q.f.user == NULL && q.f.status == API_STATUS_ANY)
        rc = api_stats_fast(r, ws, seq, &q, v) == SQLITE_OK ? SQLITE_ROW
                                                            : SQLITE_ERROR;
    else {
        sqlite3_stmt *st = api_sess_prepare(r, api_sess_stats_sql, ws, seq, &q);
        rc = st ? sqlite3_step(st) : SQLITE_ERROR;
        for (int i = 0; rc == SQLITE_ROW && i < 12; i++)
            v[i] = sqlite3_column_int64(st, i);
        sqlite3_finalize(st);
    }
    api_read_end(r);
    if (rc != SQLITE_ROW)
        return api_db_unavailable(r);
    /* v: sessions, rounds, calls, errors, with errors, five token counts,
     * cost, total duration. */
    int64_t n = v[0], rounds = v[1], cost = v[10];
    json_t *o = json_object();
    for (int i = 0; i < 5; i++)
        json_object_set_new(o, api_stats_cols[i], json_integer(v[i]));
    json_object_set_new(o, "tokens", api_sess_tokens(&v[5]));
    json_object_set_new(o, "cost_usd", api_usd(cost));
    json_object_set_new(o, "avg_rounds_per_session",
                        api_sess_avg((double)rounds, n));
    json_object_set_new(o, "avg_calls_per_session",
                        api_sess_avg((double)v[2], n));
    json_object_set_new(o, "avg_cost_per_session_usd",
                        api_sess_avg((double)cost / 1e9, n));
    json_object_set_new(o, "avg_cost_per_round_usd",
                        api_sess_avg((double)cost / 1e9, rounds));
    json_object_set_new(o, "avg_duration_ms", api_sess_avg((double)v[11], n));
    if (!q.csv) {
        json_object_set_new(o, "from", api_time(q.rg.from_ms));
        json_object_set_new(o, "to", api_time(q.rg.to_ms));
        return api_send_json(r, 200, o, NULL);
    }
    api_sess_csv_head(r, "session-stats", &q.rg, NULL, api_stats_cols,
                      API_STATS_NCOLS);
    char buf[API_STATS_NCOLS][40];
    for (int i = 0; i < 5; i++)
        snprintf(buf[i], sizeof(buf[i]), "%lld", (long long)v[i]);
    for (int t = 0; t < SHM_TOK_N; t++)
        snprintf(buf[5 + t], sizeof(buf[0]), "%lld", (long long)v[5 + t]);
    snprintf(buf[10], sizeof(buf[10]), "%lld",
             (long long)api_sess_total(&v[5]));
    api_usd_text(cost, buf[11], sizeof(buf[11]));
    for (int i = 12; i < API_STATS_NCOLS; i++) {
        json_t *a = json_object_get(o, api_stats_cols[i]);
        if (json_is_null(a))
            buf[i][0] = '\0';
        else
            snprintf(buf[i], sizeof(buf[i]), "%.9g", json_real_value(a));
    }
    for (int i = 0; i < API_STATS_NCOLS; i++)
        api_csv_field(r, buf[i], i == API_STATS_NCOLS - 1);
    json_decref(o);
    return 0;
}

/* ---- one session ---- */

/* Per round, provider and model: the stored rows plus the tail's (?1 ws,
 * ?2 session, ?3 rollup_seq). */
static const char api_sess_rounds_sql[] =
    "SELECT round, provider, model, sum(calls), sum(errors), sum(tin), "
    "sum(tout), sum(tcr), sum(tcw), sum(trs), sum(cost), sum(lat_n), "
    "total(lat_sum), min(first), max(last), tt_hist_sum(h) FROM (SELECT "
    "round, provider, model, calls, errors, input_tokens AS tin, "
    "output_tokens AS tout, cache_read_tokens AS tcr, cache_write_tokens AS "
    "tcw, reasoning_tokens AS trs, cost_nusd AS cost, lat_n, lat_sum, "
    "first_ms AS first, last_ms AS last, lat_hist AS h FROM session_rounds "
    "WHERE ws = ?1 AND session = ?2 UNION ALL SELECT coalesce(round, -1), "
    "provider, model, count(*), sum(is_error), sum(input_tokens), "
    "sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), "
    "sum(reasoning_tokens), sum(CAST(round(cost_usd * 1e9) AS INTEGER)), "
    "count(latency_ms), total(latency_ms), min(ts), max(ts), "
    "tt_hist_of(latency_ms) FROM events WHERE seq > ?3 AND +ws = ?1 AND "
    "+session = ?2 GROUP BY 1, 2, 3) GROUP BY round, provider, model "
    "ORDER BY round, provider, model";

/* The session's user and agent: the stored ones, else the tail's first. */
static const char api_sess_who_sql[] =
    "SELECT coalesce((SELECT nullif(user, '') FROM sessions WHERE ws = ?1 "
    "AND session = ?2), (SELECT user FROM events WHERE seq > ?3 AND +ws = "
    "?1 AND +session = ?2 AND user != '' ORDER BY seq LIMIT 1)), "
    "coalesce((SELECT nullif(agent, '') FROM sessions WHERE ws = ?1 AND "
    "session = ?2), (SELECT agent FROM events WHERE seq > ?3 AND +ws = ?1 "
    "AND +session = ?2 AND agent != '' ORDER BY seq LIMIT 1))";

/* Empty an aggregate, keeping its histogram array (zeroed). */
static void api_agg_reset(struct api_agg *a)
{
    uint32_t *hist = a->hist;
    memset(a, 0, sizeof(*a));
    a->first = INT64_MAX;
    a->last = INT64_MIN;
    a->hist = hist;
    if (hist != NULL)
        memset(hist, 0, HIST_BUCKETS * sizeof(uint32_t));
}

/* Start an empty aggregate with its own histogram (arena). */
static int api_agg_init(struct api_req *r, struct api_agg *a)
{
    a->hist = arena_alloc(r->arena, HIST_BUCKETS * sizeof(uint32_t));
    api_agg_reset(a);
    return a->hist != NULL ? 0 : -1;
}

/* Add a row of api_sess_rounds_sql to a. */
static void api_agg_add(struct api_agg *a, sqlite3_stmt *st)
{
    a->calls += sqlite3_column_int64(st, 3);
    a->errors += sqlite3_column_int64(st, 4);
    for (int t = 0; t < SHM_TOK_N; t++)
        a->tok[t] += sqlite3_column_int64(st, 5 + t);
    a->cost += sqlite3_column_int64(st, 10);
    a->lat_n += sqlite3_column_int64(st, 11);
    a->lat_sum += sqlite3_column_double(st, 12);
    int64_t f = sqlite3_column_int64(st, 13), l = sqlite3_column_int64(st, 14);
    a->first = f < a->first ? f : a->first;
    a->last = l > a->last ? l : a->last;
    int64_t k = hist_blob_add(sqlite3_column_blob(st, 15),
                              (size_t)sqlite3_column_bytes(st, 15), a->hist);
    a->hn += k > 0 ? (uint64_t)k : 0;
}

/* The 95th percentile of a's latencies, 0 without any. */
static double api_agg_p95(const struct api_agg *a)
{
    return a->hn ? hist_quantile(a->hist, a->hn, 0.95) : 0;
}

/* An aggregate's numbers as JSON. */
static json_t *api_agg_json(const struct api_agg *a)
{
    json_t *lat =
        json_pack("{s:o, s:o}", "avg", api_sess_avg(a->lat_sum, a->lat_n),
                  "p95", a->hn ? json_real(api_agg_p95(a)) : json_null());
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "calls",
                     (json_int_t)a->calls, "errors", (json_int_t)a->errors,
                     "tokens", api_sess_tokens(a->tok), "cost_usd",
                     api_usd(a->cost), "latency_ms", lat, "started",
                     api_time(a->first), "last_activity", api_time(a->last));
}

static const char *const api_round_cols[] = {
    "session",        "round",          "provider",          "model",
    "calls",          "errors",         API_SESS_TOKEN_COLS, "cost_usd",
    "latency_avg_ms", "latency_p95_ms", "started",           "last_activity"};

#define API_ROUND_NCOLS                                                        \
    (int)(sizeof(api_round_cols) / sizeof(api_round_cols[0]))

/* One (round, provider, model) row as CSV. */
static void api_round_csv(struct api_req *r, const char *id, sqlite3_stmt *st,
                          const struct api_agg *a)
{
    char b[API_ROUND_NCOLS][40];
    const char *f[API_ROUND_NCOLS];
    f[0] = id;
    int round = sqlite3_column_int(st, 0);
    snprintf(b[1], sizeof(b[1]), "%d", round);
    f[1] = round >= 0 ? b[1] : "";
    f[2] = (const char *)sqlite3_column_text(st, 1);
    f[3] = (const char *)sqlite3_column_text(st, 2);
    int64_t ints[8] = {a->calls, a->errors};
    for (int t = 0; t < SHM_TOK_N; t++)
        ints[2 + t] = a->tok[t];
    ints[7] = api_sess_total(a->tok);
    for (int i = 0; i < 8; i++) {
        snprintf(b[4 + i], sizeof(b[0]), "%lld", (long long)ints[i]);
        f[4 + i] = b[4 + i];
    }
    api_usd_text(a->cost, b[12], sizeof(b[12]));
    f[12] = b[12];
    b[13][0] = b[14][0] = '\0';
    if (a->lat_n > 0)
        snprintf(b[13], sizeof(b[13]), "%.3f", a->lat_sum / (double)a->lat_n);
    if (a->hn > 0)
        snprintf(b[14], sizeof(b[14]), "%.3f", api_agg_p95(a));
    f[13] = b[13];
    f[14] = b[14];
    ev_format_rfc3339(a->first, b[15], sizeof(b[15]));
    ev_format_rfc3339(a->last, b[16], sizeof(b[16]));
    f[15] = b[15];
    f[16] = b[16];
    for (int i = 0; i < API_ROUND_NCOLS; i++)
        api_csv_field(r, f[i] ? f[i] : "", i == API_ROUND_NCOLS - 1);
}

/* The per-model totals of a session or a round. */
struct api_models {
    struct api_agg *a;
    const char **provider, **model;
    int n, cap;
};

/* The aggregate of (provider, model) in m, added at its place (m stays
 * sorted by provider, then model) if new; NULL when out of memory.  The
 * pointer is good until the next call. */
static struct api_agg *api_models_get(struct api_req *r, struct api_models *m,
                                      const char *provider, const char *model)
{
    int i = 0, c = 1;
    while (i < m->n && (c = strcmp(m->provider[i], provider) == 0
                                ? strcmp(m->model[i], model)
                                : strcmp(m->provider[i], provider)) < 0)
        i++;
    if (i < m->n && c == 0)
        return &m->a[i];
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 8;
        struct api_agg *a = arena_alloc(r->arena, cap * sizeof(*a));
        const char **p = arena_alloc(r->arena, cap * sizeof(*p));
        const char **q = arena_alloc(r->arena, cap * sizeof(*q));
        if (a == NULL || p == NULL || q == NULL)
            return NULL;
        if (m->n > 0) {
            memcpy(a, m->a, m->n * sizeof(*a));
            memcpy(p, m->provider, m->n * sizeof(*p));
            memcpy(q, m->model, m->n * sizeof(*q));
        }
        m->a = a;
        m->provider = p;
        m->model = q;
        m->cap = cap;
    }
    memmove(&m->a[i + 1], &m->a[i], (m->n - i) * sizeof(m->a[0]));
    memmove(&m->provider[i + 1], &m->provider[i],
            (m->n - i) * sizeof(m->provider[0]));
    memmove(&m->model[i + 1], &m->model[i], (m->n - i) * sizeof(m->model[0]));
    m->n++;
    m->provider[i] = arena_strndup(r->arena, provider, strlen(provider));
    m->model[i] = arena_strndup(r->arena, model, strlen(model));
    if (m->provider[i] == NULL || m->model[i] == NULL ||
        api_agg_init(r, &m->a[i]) != 0)
        return NULL;
    return &m->a[i];
}

/* The per-model totals as a JSON array (by provider, then model). */
static json_t *api_models_json(const struct api_models *m)
{
    json_t *arr = json_array();
    for (int i = 0; i < m->n; i++) {
        json_t *o = api_agg_json(&m->a[i]);
        json_object_set_new(o, "provider", json_string(m->provider[i]));
        json_object_set_new(o, "model", json_string(m->model[i]));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* Compare strings for qsort. */
static int api_str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct model names of m, sorted (as the list shows them). */
static json_t *api_models_names(struct api_req *r, const struct api_models *m)
{
    json_t *arr = json_array();
    const char **names = arena_alloc(r->arena, (m->n + 1) * sizeof(*names));
    if (names == NULL)
        return arr;
    memcpy(names, m->model, m->n * sizeof(names[0]));
    qsort(names, m->n, sizeof(names[0]), api_str_cmp);
    for (int i = 0; i < m->n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            json_array_append_new(arr, json_string(names[i]));
    return arr;
}

/* Close a round: its JSON with its models. */
static json_t *api_round_json(int round, const struct api_models *m)
{
    struct api_agg t;
    uint32_t hist[HIST_BUCKETS];
    t.hist = hist;
    api_agg_reset(&t);
    for (int i = 0; i < m->n; i++) {
        const struct api_agg *a = &m->a[i];
        t.calls += a->calls;
        t.errors += a->errors;
        for (int k = 0; k < SHM_TOK_N; k++)
            t.tok[k] += a->tok[k];
        t.cost += a->cost;
        t.lat_n += a->lat_n;
        t.lat_sum += a->lat_sum;
        t.first = a->first < t.first ? a->first : t.first;
        t.last = a->last > t.last ? a->last : t.last;
        for (int b = 0; b < HIST_BUCKETS; b++)
            hist[b] += a->hist[b];
        t.hn += a->hn;
    }
    json_t *o = api_agg_json(&t);
    json_object_set_new(o, "round",
                        round >= 0 ? json_integer(round) : json_null());
    json_object_set_new(o, "models", api_models_json(m));
    return o;
}

int api_sessions_get(struct api_req *r)
{
    static const char *const allowed[] = {"format", NULL};
    int csv;
    if (api_query_only(r, allowed) != 0 || api_parse_format(r, &csv) != 0)
        return -1;
    const char *id = r->params[0];
    int64_t ws = api_ws_id(r), seq;
    if (ws < 0)
        return api_db_unavailable(r);
    if ((seq = api_read_begin(r)) < 0)
        return -1;
    sqlite3_stmt *st = NULL, *who = NULL;
    if (sqlite3_prepare_v2(r->t->db, api_sess_rounds_sql, -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(r->t->db, api_sess_who_sql, -1, &who, NULL) !=
            SQLITE_OK) {
        sqlite3_finalize(st);
        api_read_end(r);
        return api_db_unavailable(r);
    }
    sqlite3_stmt *both[2] = {st, who};
    for (int i = 0; i < 2; i++) {
        sqlite3_bind_int64(both[i], 1, ws);
        sqlite3_bind_text(both[i], 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(both[i], 3, seq);
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        sqlite3_finalize(who);
        api_read_end(r);
        if (rc != SQLITE_DONE)
            return api_db_unavailable(r);
        return api_error(r, 404, "not_found", "id",
                         "no session \"%.64s\" in this workspace", id);
    }
    if (csv)
        api_sess_csv_head(r, "session", NULL, id, api_round_cols,
                          API_ROUND_NCOLS);
    struct api_agg total, one;
    struct api_models all = {0}, cur = {0};
    json_t *rounds = json_array();
    int nrounds = 0, round = sqlite3_column_int(st, 0);
    int ok = api_agg_init(r, &total) == 0 && api_agg_init(r, &one) == 0;
    for (; ok && rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        int rd = sqlite3_column_int(st, 0);
        if (rd != round) {
            json_array_append_new(rounds, api_round_json(round, &cur));
            nrounds += round >= 0;
            round = rd;
            cur.n = 0;
        }
        const char *p = (const char *)sqlite3_column_text(st, 1);
        const char *m = (const char *)sqlite3_column_text(st, 2);
        struct api_agg *am = api_models_get(r, &all, p, m);
        struct api_agg *rm = api_models_get(r, &cur, p, m);
        if (am == NULL || rm == NULL) {
            ok = 0;
            break;
        }
        api_agg_add(&total, st);
        api_agg_add(am, st);
        api_agg_add(rm, st);
        if (csv) {
            api_agg_reset(&one);
            api_agg_add(&one, st);
            api_round_csv(r, id, st, &one);
        }
    }
    json_array_append_new(rounds, api_round_json(round, &cur));
    nrounds += round >= 0;
    const char *user = NULL, *agent = NULL;
    if (sqlite3_step(who) == SQLITE_ROW) {
        user = (const char *)sqlite3_column_text(who, 0);
        agent = (const char *)sqlite3_column_text(who, 1);
        user = user ? arena_strndup(r->arena, user, strlen(user)) : NULL;
        agent = agent ? arena_strndup(r->arena, agent, strlen(agent)) : NULL;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(who);
    api_read_end(r);
    if (csv)
        return 0;
    if (!ok)
        return api_error(r, 500, "internal", NULL, "out of memory");
    json_t *s = api_agg_json(&total);
    json_object_set_new(s, "id", json_string(id));
    json_object_set_new(s, "user", api_str_or_null(user));
    json_object_set_new(s, "agent", api_str_or_null(agent));
    json_object_set_new(s, "models", api_models_names(r, &all));
    json_object_set_new(s, "rounds", json_integer(nrounds));
    json_object_set_new(s, "duration_ms",
                        json_integer(total.last - total.first));
    return api_send_json(r, 200,
                         json_pack("{s:o, s:o, s:o}", "session", s, "rounds",
                                   rounds, "models", api_models_json(&all)),
                         NULL);
}
