/*
 * check_notify_cmd.c: unit tests for the collector's notification commands
 * (collector/notify_cmd.c), driven through col_command with JSON texts as
 * the API and the dispatcher send them, on a database of their own, and
 * read back with SQL.  No live segment (in-app rows are not published)
 * and no alert engine: none of these commands needs either.
 *
 * Covered: channel.create and channel.update validation (type, name,
 * config paths, unique names per workspace, the type kept, the limit),
 * enabling again clearing the run; notify.result written once per try
 * (the same result twice counts once), the run of failures (retries and
 * failures that are not the channel's do not count, a sent ends it) and
 * the disable at notify_disable_after with its inbox row and failed-over
 * waiting rows; the fallback copy and when none is made; routes.set
 * validation; channel.delete (its waiting rows failed, later results
 * ignored, other workspaces' channels not found); channel.test; the
 * in-app inbox and inbox.read; a batch with bad or unwritable results.
 *
 * Commands are written in C strings with ' for " (see cmd()).  Workspace
 * w1 is id 1 and w2 id 2.
 */
#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "log.h"

#define TESTDIR_NAME "tt-notify-cmd"
#include "testutil.h"

/* A minimal valid config of each type used here. */
#define HOOK_CONFIG "{'url':'https://hook.example.com/in'}"
#define APP_CONFIG  "{}"

static json_t *last; /* the reply of the last command (owned here) */

static void nc_tmp_setup(void)
{
    ck_assert_int_eq(testdir_make(tmpdir, sizeof(tmpdir)), 0);
}

static void nc_tmp_teardown(void)
{
    json_decref(last);
    last = NULL;
    testdir_remove(tmpdir);
}

/* A collector with a fresh database (workspaces w1 and w2), no live
 * segment and no alert engine. */
static void nc_init(struct col *c)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    conf_defaults(&c->conf);
    ck_assert_msg(col_store_open(&c->store, tmp_db_path(), "normal", err,
                                 sizeof(err)) == 0,
                  "col_store_open: %s", err);
    exec_sql(c->store.db, "INSERT INTO workspaces VALUES(1, 'w1', 0), "
                          "(2, 'w2', 0)");
}

static void nc_fini(struct col *c)
{
    col_store_close(&c->store);
}

/* Run the printf-formatted command (' for ") as the API would; its
 * status, its reply in last. */
static int cmd(struct col *c, const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ck_assert_msg(n > 0 && (size_t)n < sizeof(text), "command too long");
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_decref(last);
    last = NULL;
    int status = col_command(c, text, strlen(text), &last);
    ck_assert_msg(last != NULL, "%s: no reply", text);
    return status;
}

/* The last reply, compact (static buffer), for messages. */
static const char *last_text(void)
{
    static char out[2048];
    char *s = last ? json_dumps(last, JSON_COMPACT) : NULL;
    snprintf(out, sizeof(out), "%s", s ? s : "(none)");
    free(s);
    return out;
}

/* Assert the last command's status. */
#define ck_status(got, want)                                                   \
    ck_assert_msg((got) == (want), "status %d, want %d: %s", (got), (want),    \
                  last_text())

/* The field the last (error) reply names ("" when none). */
static const char *err_field(void)
{
    const char *f = json_string_value(
        json_object_get(json_object_get(last, "error"), "field"));
    return f ? f : "";
}

/* The error code of the last reply ("" when none). */
static const char *err_code(void)
{
    const char *f = json_string_value(
        json_object_get(json_object_get(last, "error"), "code"));
    return f ? f : "";
}

/* Integer member key of the last reply (-1 when absent). */
static long long reply_int(const char *key)
{
    json_t *v = json_object_get(last, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* q_int on printf-formatted SQL. */
static long long qi(struct col *c, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return q_int(c->store.db, sql);
}

/* A one-text query on printf-formatted SQL ("" for NULL; static buffer). */
static const char *qs(struct col *c, const char *fmt, ...)
{
    static char out[2048];
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(c->store.db, sql, -1, &st, NULL) ==
                      SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(c->store.db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: no row", sql);
    const char *t = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, sizeof(out), "%s", t ? t : "");
    sqlite3_finalize(st);
    return out;
}

/* Create channel name of type (webhook or in_app) in workspace ws through
 * channel.create; its id. */
static long long chan(struct col *c, const char *ws, const char *name,
                      const char *type)
{
    int st = cmd(c,
                 "{'op':'channel.create','workspace':'%s','name':'%s',"
                 "'type':'%s','config':%s}",
                 ws, name, type,
                 strcmp(type, "in_app") == 0 ? APP_CONFIG : HOOK_CONFIG);
    ck_status(st, 201);
    long long id = reply_int("id");
    ck_assert_int_gt(id, 0);
    return id;
}

/* A pending notification (no try yet) of workspace ws for alert's event
 * on channel ch, as col_notify_enqueue writes it; its id. */
static long long note(struct col *c, int ws, long long alert, const char *event,
                      long long ch)
{
    char *sql = sqlite3_mprintf(
        "INSERT INTO notifications(ws, alert_id, event, channel_id, status, "
        "attempts, created_ms, updated_ms) VALUES(%d, %lld, %Q, %lld, "
        "'pending', 0, 0, 0)",
        ws, alert, event, ch);
    exec_sql(c->store.db, sql);
    sqlite3_free(sql);
    return (long long)sqlite3_last_insert_rowid(c->store.db);
}

/* Send one outcome for try attempt of notification id; extra: more
 * members (",'channel_fault':false") or "".  Expects 200. */
static void result(struct col *c, long long id, int attempt,
                   const char *outcome, const char *extra)
{
    int st = cmd(c,
                 "{'op':'notify.result','results':[{'id':%lld,'attempt':%d,"
                 "'outcome':'%s','code':500,'error':'HTTP 500',"
                 "'latency_ms':3,'next_ms':123,'ts_ms':1%s}]}",
                 id, attempt, outcome, extra);
    ck_status(st, 200);
}

/* The status of notification n. */
static const char *n_status(struct col *c, long long n)
{
    return qs(c, "SELECT status FROM notifications WHERE id = %lld", n);
}

/* Fallback copies of notification n. */
static long long copies(struct col *c, long long n)
{
    return qi(c, "SELECT count(*) FROM notifications WHERE fallback_of = %lld",
              n);
}

/* ---- channels ---- */

/* channel.create validates type, name, enabled and config (naming the
 * config's path), answers 201 {id} with the config's defaults stored, and
 * names are unique per workspace. */
START_TEST(test_create_validates)
{
    struct col c;
    nc_init(&c);
    int st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                     "'type':'sms','config':{}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "type");
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                 "'config':{}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "type");
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'',"
                 "'type':'in_app','config':{}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "name");
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                 "'type':'in_app','config':{},'enabled':'yes'}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "enabled");
    st = cmd(&c, "{'op':'channel.create','workspace':'W 1','name':'a',"
                 "'type':'in_app','config':{}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "workspace");
    /* A bad config names the path of the bad field. */
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'mail',"
                 "'type':'email','config':{'smtp_url':'smtp://mail.example."
                 "com','from':'alerts@example.com','to':['ops@example.com',"
                 "'example.com']}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_code(), "invalid_field");
    ck_assert_str_eq(err_field(), "config.to[1]");
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                 "'type':'webhook','config':{'url':'https://hook.example."
                 "com/in','color':'red'}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "config.color");
    /* A webhook with no config at all: its url is required. */
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                 "'type':'webhook'}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "config.url");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels"), 0);

    long long id = chan(&c, "w1", "hook", "webhook");
    ck_assert_str_eq(qs(&c,
                        "SELECT type || ' ' || enabled || ' ' || ws || ' ' || "
                        "json_extract(config, '$.timeout_ms') FROM channels "
                        "WHERE id = %lld",
                        id),
                     "webhook 1 1 10000");
    /* The same name again in w1: 409 on the name; in w2: its own. */
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                 "'type':'in_app','config':{}}");
    ck_status(st, 409);
    ck_assert_str_eq(err_field(), "name");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE ws = 1"), 1);
    long long other = chan(&c, "w2", "hook", "in_app");
    ck_assert_int_ne(other, id);
    /* Created disabled when asked. */
    st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'off',"
                 "'type':'in_app','config':{},'enabled':false}");
    ck_status(st, 201);
    ck_assert_int_eq(
        qi(&c, "SELECT enabled FROM channels WHERE id = %lld", reply_int("id")),
        0);
    nc_fini(&c);
}
END_TEST

/* A workspace has 200 channels at most (409 limit); another workspace
 * is not held back by it. */
START_TEST(test_create_limit)
{
    struct col c;
    nc_init(&c);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        chan(&c, "w1", name, "in_app");
    }
    int st = cmd(&c, "{'op':'channel.create','workspace':'w1','name':'one "
                     "more','type':'in_app','config':{}}");
    ck_status(st, 409);
    ck_assert_str_eq(err_code(), "limit");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE ws = 1"), 200);
    chan(&c, "w2", "one more", "in_app");
    nc_fini(&c);
}
END_TEST

/* channel.update: the type stays (changing it is 400 on "type"), names
 * stay unique, a channel of another workspace is not found, the config
 * is validated and left as stored when not sent. */
START_TEST(test_update)
{
    struct col c;
    nc_init(&c);
    long long a = chan(&c, "w1", "a", "webhook");
    chan(&c, "w1", "b", "webhook");
    long long other = chan(&c, "w2", "x", "webhook");
    int st = cmd(&c,
                 "{'op':'channel.update','workspace':'w1','id':%lld,"
                 "'type':'in_app'}",
                 a);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "type");
    ck_assert_str_eq(qs(&c, "SELECT type FROM channels WHERE id = %lld", a),
                     "webhook");
    /* The same type may be sent back. */
    st = cmd(&c,
             "{'op':'channel.update','workspace':'w1','id':%lld,"
             "'type':'webhook','name':'a2'}",
             a);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("id"), a);
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", a),
                     "a2");
    ck_assert_str_eq(
        qs(&c,
           "SELECT json_extract(config, '$.url') FROM channels WHERE id "
           "= %lld",
           a),
        "https://hook.example.com/in");
    /* Another channel's name: 409, nothing changed. */
    st = cmd(
        &c, "{'op':'channel.update','workspace':'w1','id':%lld,'name':'b'}", a);
    ck_status(st, 409);
    ck_assert_str_eq(err_field(), "name");
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", a),
                     "a2");
    /* A bad config names its path. */
    st = cmd(&c,
             "{'op':'channel.update','workspace':'w1','id':%lld,"
             "'config':{'url':'ftp://hook.example.com/in'}}",
             a);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "config.url");
    st = cmd(&c,
             "{'op':'channel.update','workspace':'w1','id':%lld,"
             "'config':{'url':'https://other.example.com/in'}}",
             a);
    ck_status(st, 200);
    ck_assert_str_eq(
        qs(&c,
           "SELECT json_extract(config, '$.url') FROM channels WHERE id "
           "= %lld",
           a),
        "https://other.example.com/in");
    /* Another workspace's channel, an unknown id or workspace: 404. */
    st = cmd(&c,
             "{'op':'channel.update','workspace':'w1','id':%lld,"
             "'name':'mine'}",
             other);
    ck_status(st, 404);
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", other),
                     "x");
    st = cmd(&c, "{'op':'channel.update','workspace':'w1','id':9999,"
                 "'name':'z'}");
    ck_status(st, 404);
    st = cmd(
        &c, "{'op':'channel.update','workspace':'w9','id':%lld,'name':'z'}", a);
    ck_status(st, 404);
    nc_fini(&c);
}
END_TEST

/* ---- notify.result ---- */

/* The same result twice (the dispatcher restarted) is written once: one
 * try, one attempt row; the next try is taken, a sent ends the run. */
START_TEST(test_result_once)
{
    struct col c;
    nc_init(&c);
    long long x = chan(&c, "w1", "x", "webhook");
    exec_sql(c.store.db, "UPDATE channels SET failures = 2");
    long long n = note(&c, 1, 7, "firing", x);
    for (int i = 0; i < 2; i++) {
        int st = cmd(&c,
                     "{'op':'notify.result','results':[{'id':%lld,"
                     "'attempt':1,'outcome':'retry','code':500,'error':"
                     "'HTTP 500','latency_ms':3,'next_ms':123,'ts_ms':1}]}",
                     n);
        ck_status(st, 200);
        ck_assert_str_eq(qs(&c,
                            "SELECT attempts || ' ' || status || ' ' || "
                            "next_ms || ' ' || last_code || ' ' || "
                            "last_error FROM notifications WHERE id = %lld",
                            n),
                         "1 retrying 123 500 HTTP 500");
        ck_assert_int_eq(qi(&c,
                            "SELECT count(*) FROM notification_attempts "
                            "WHERE notification_id = %lld",
                            n),
                         1);
    }
    ck_assert_str_eq(qs(&c,
                        "SELECT outcome || ' ' || code || ' ' || error || ' ' "
                        "|| latency_ms || ' ' || ts_ms FROM "
                        "notification_attempts WHERE notification_id = %lld",
                        n),
                     "retry 500 HTTP 500 3 1");
    /* A retry is no failure for good: the run is as it was. */
    ck_assert_int_eq(qi(&c, "SELECT failures FROM channels WHERE id = %lld", x),
                     2);
    /* A result for a try not made yet (3) is stale too. */
    result(&c, n, 3, "sent", "");
    ck_assert_str_eq(n_status(&c, n), "retrying");
    result(&c, n, 2, "sent", "");
    ck_assert_str_eq(qs(&c,
                        "SELECT attempts || ' ' || status || ' ' || "
                        "(sent_ms > 0) FROM notifications WHERE id = %lld",
                        n),
                     "2 sent 1");
    ck_assert_int_eq(qi(&c, "SELECT failures FROM channels WHERE id = %lld", x),
                     0);
    /* Sent: no longer waiting, so a late result changes nothing. */
    result(&c, n, 3, "failed", "");
    ck_assert_str_eq(n_status(&c, n), "sent");
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notification_attempts WHERE "
                        "notification_id = %lld",
                        n),
                     2);
    nc_fini(&c);
}
END_TEST

/* The run of failures: retries and failures that are not the channel's
 * do not count, a sent ends the run; at notify_disable_after in a row
 * the channel is disabled, the inbox says so and its waiting rows fail
 * over; enabling it again clears the run and the reason. */
START_TEST(test_disable_after_run)
{
    struct col c;
    nc_init(&c);
    c.conf.notify_disable_after = 3;
    long long x = chan(&c, "w1", "flaky", "webhook");
    long long f = chan(&c, "w1", "fb", "webhook");
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'fallback':[%lld]}}",
                  f),
              200);
#define FAILURES qi(&c, "SELECT failures FROM channels WHERE id = %lld", x)
    /* Three retries of one notification, then it fails for good: one. */
    long long n1 = note(&c, 1, 1, "firing", x);
    result(&c, n1, 1, "retry", "");
    result(&c, n1, 2, "retry", "");
    result(&c, n1, 3, "retry", "");
    ck_assert_int_eq(FAILURES, 0);
    result(&c, n1, 4, "failed", ",'channel_fault':true");
    ck_assert_str_eq(n_status(&c, n1), "failed");
    ck_assert_int_eq(FAILURES, 1);
    /* Not the channel's fault: not counted. */
    long long n2 = note(&c, 1, 2, "firing", x);
    result(&c, n2, 1, "failed", ",'channel_fault':false");
    ck_assert_str_eq(n_status(&c, n2), "failed");
    ck_assert_int_eq(FAILURES, 1);
    long long n3 = note(&c, 1, 3, "firing", x);
    result(&c, n3, 1, "failed", "");
    ck_assert_int_eq(FAILURES, 2);
    /* A sent ends the run. */
    long long n4 = note(&c, 1, 4, "firing", x);
    result(&c, n4, 1, "sent", "");
    ck_assert_int_eq(FAILURES, 0);
    long long waiting = note(&c, 1, 5, "firing", x);
    long long retrying = note(&c, 1, 6, "firing", x);
    result(&c, retrying, 1, "retry", "");
    for (int i = 0; i < 2; i++) {
        long long n = note(&c, 1, 10 + i, "firing", x);
        result(&c, n, 1, "failed", "");
    }
    ck_assert_int_eq(FAILURES, 2);
    ck_assert_int_eq(qi(&c, "SELECT enabled FROM channels WHERE id = %lld", x),
                     1);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 0);
    long long n7 = note(&c, 1, 12, "firing", x);
    result(&c, n7, 1, "failed", "");
    ck_assert_int_eq(qi(&c,
                        "SELECT enabled = 0 AND failures = 3 AND "
                        "disabled_reason LIKE '%%3 consecutive%%HTTP 500%%' "
                        "AND last_error = 'HTTP 500' FROM channels WHERE id "
                        "= %lld",
                        x),
                     1);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM inbox WHERE ws = 1 AND kind = "
                        "'channel_disabled' AND title LIKE '%%flaky%%' AND "
                        "body LIKE '%%3 consecutive%%' AND read_ms IS NULL"),
                     1);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    /* Its waiting rows (pending and retrying) failed, each to the
     * fallback. */
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notifications WHERE id IN "
                        "(%lld, %lld) AND status = 'failed' AND last_error = "
                        "'the channel is disabled'",
                        waiting, retrying),
                     2);
    ck_assert_int_eq(copies(&c, waiting), 1);
    ck_assert_int_eq(copies(&c, retrying), 1);
    ck_assert_int_eq(copies(&c, n7), 1);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notifications WHERE channel_id "
                        "= %lld AND status IN ('pending', 'retrying')",
                        x),
                     0);
    /* A retry of an outcome still in flight changes nothing now. */
    result(&c, retrying, 2, "failed", "");
    ck_assert_int_eq(FAILURES, 3);
    /* A rename keeps it disabled, its reason and its run. */
    ck_status(cmd(&c,
                  "{'op':'channel.update','workspace':'w1','id':%lld,"
                  "'name':'flaky2'}",
                  x),
              200);
    ck_assert_int_eq(qi(&c,
                        "SELECT enabled = 0 AND failures = 3 AND "
                        "disabled_reason IS NOT NULL FROM channels WHERE id "
                        "= %lld",
                        x),
                     1);
    /* Enabled again: the run and the reason are gone. */
    ck_status(cmd(&c,
                  "{'op':'channel.update','workspace':'w1','id':%lld,"
                  "'enabled':true}",
                  x),
              200);
    ck_assert_int_eq(qi(&c,
                        "SELECT enabled = 1 AND failures = 0 AND "
                        "disabled_reason IS NULL FROM channels WHERE id = "
                        "%lld",
                        x),
                     1);
    /* Disabled by hand: a failure counts, but no second disable. */
    ck_status(cmd(&c,
                  "{'op':'channel.update','workspace':'w1','id':%lld,"
                  "'enabled':false}",
                  x),
              200);
    exec_sql(c.store.db, "UPDATE channels SET failures = 5");
    long long n8 = note(&c, 1, 13, "firing", x);
    result(&c, n8, 1, "failed", "");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT disabled_reason IS NULL FROM channels WHERE id = %lld",
           x),
        1);
#undef FAILURES
    nc_fini(&c);
}
END_TEST

/* ---- fallback ---- */

/* A notification that fails for good gets a pending copy on the
 * fallback channel, except: a copy itself, the fallback's own rows, a
 * fallback that already has this event of the alert or a later row of
 * it, a disabled fallback, another workspace's route. */
START_TEST(test_fallback)
{
    struct col c;
    nc_init(&c);
    long long x = chan(&c, "w1", "x", "webhook");
    long long f = chan(&c, "w1", "f", "webhook");
    long long g = chan(&c, "w1", "g", "webhook");
    long long y = chan(&c, "w2", "y", "webhook");
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'fallback':[%lld]}}",
                  f),
              200);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM channel_routes WHERE ws = 1 "
                        "AND route = 'fallback' AND channel_id = %lld",
                        f),
                     1);
    /* The copy. */
    long long n = note(&c, 1, 7, "firing", x);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 1);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notifications WHERE "
                        "fallback_of = %lld AND ws = 1 AND alert_id = 7 AND "
                        "event = 'firing' AND channel_id = %lld AND status "
                        "= 'pending' AND attempts = 0 AND id > %lld",
                        n, f, n),
                     1);
    long long copy =
        qi(&c, "SELECT id FROM notifications WHERE fallback_of = %lld", n);
    /* A retry is not final: no copy. */
    long long r = note(&c, 1, 8, "firing", x);
    result(&c, r, 1, "retry", "");
    ck_assert_int_eq(copies(&c, r), 0);
    /* The fallback already has this event of the alert (it is routed
     * there too): no copy. */
    long long direct = note(&c, 1, 9, "firing", f);
    n = note(&c, 1, 9, "firing", x);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 0);
    /* ... or a later row of it: a late "firing" would arrive after the
     * "resolved". */
    n = note(&c, 1, 10, "firing", x);
    note(&c, 1, 10, "resolved", f);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 0);
    /* An earlier row of another event of it does not stand in. */
    note(&c, 1, 11, "firing", f);
    n = note(&c, 1, 11, "resolved", x);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 1);
    /* The fallback's own failure: no copy to itself. */
    result(&c, direct, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, direct), "failed");
    ck_assert_int_eq(copies(&c, direct), 0);
    /* Tests (alert 0) are not of one alert: each failed one of x is
     * copied, but the fallback's own is not copied to itself. */
    for (int i = 0; i < 2; i++) {
        ck_status(
            cmd(&c, "{'op':'channel.test','workspace':'w1','id':%lld}", x),
            200);
        n = reply_int("notification_id");
        result(&c, n, 1, "failed", "");
        ck_assert_int_eq(qi(&c,
                            "SELECT count(*) FROM notifications WHERE "
                            "fallback_of = %lld AND event = 'test' AND "
                            "alert_id = 0 AND channel_id = %lld",
                            n, f),
                         1);
    }
    ck_status(cmd(&c, "{'op':'channel.test','workspace':'w1','id':%lld}", f),
              200);
    n = reply_int("notification_id");
    result(&c, n, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, n), "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* A copy is not copied again, even once the route names another
     * channel. */
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'fallback':[%lld]}}",
                  g),
              200);
    result(&c, copy, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, copy), "failed");
    ck_assert_int_eq(copies(&c, copy), 0);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM notifications WHERE channel_id = %lld", g),
        0);
    /* A disabled fallback gets nothing. */
    ck_status(cmd(&c,
                  "{'op':'channel.update','workspace':'w1','id':%lld,"
                  "'enabled':false}",
                  g),
              200);
    n = note(&c, 1, 12, "firing", x);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 0);
    /* Another workspace's rows do not take w1's route. */
    n = note(&c, 2, 13, "firing", y);
    result(&c, n, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, n), "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* A failure that is not the channel's still fails over. */
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'fallback':[%lld]}}",
                  f),
              200);
    n = note(&c, 1, 14, "firing", x);
    result(&c, n, 1, "failed", ",'channel_fault':false");
    ck_assert_int_eq(copies(&c, n), 1);
    nc_fini(&c);
}
END_TEST

/*
 * A copy made for an earlier event of the alert is not "a later row" of
 * it (a copy's own id is newer than every row waiting when it was made:
 * the original's id decides).  The channel retries the alert's "firing"
 * while its "resolved" waits behind it; the firing fails for good and is
 * copied to the fallback; then the resolved fails for good and is copied
 * too, or the fallback (PagerDuty, say) would keep an incident open.
 */
START_TEST(test_fallback_after_earlier_copy)
{
    struct col c;
    nc_init(&c);
    long long x = chan(&c, "w1", "x", "webhook");
    long long f = chan(&c, "w1", "f", "webhook");
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'fallback':[%lld]}}",
                  f),
              200);
    long long firing = note(&c, 1, 7, "firing", x);
    long long resolved = note(&c, 1, 7, "resolved", x);
    result(&c, firing, 1, "failed", "");
    ck_assert_int_eq(copies(&c, firing), 1);
    result(&c, resolved, 1, "failed", "");
    ck_assert_msg(copies(&c, resolved) == 1,
                  "the resolved event is not copied to the fallback");
    nc_fini(&c);
}
END_TEST

/* routes.set: only channels of the workspace, only the known routes, one
 * fallback at most; a refused set leaves the routes as they were; a good
 * one replaces them all. */
START_TEST(test_routes_set)
{
    struct col c;
    nc_init(&c);
    long long a = chan(&c, "w1", "a", "webhook");
    long long b = chan(&c, "w1", "b", "in_app");
    long long y = chan(&c, "w2", "y", "webhook");
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'critical':[%lld,%lld],'low':[%lld],'fallback':[%lld]}}",
                  a, b, b, b),
              200);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channel_routes WHERE ws = 1"),
                     4);
#define ROUTES                                                                 \
    qs(&c, "SELECT group_concat(route || ':' || channel_id, ',') FROM "        \
           "(SELECT * FROM channel_routes WHERE ws = 1 ORDER BY route, "       \
           "channel_id)")
    char before[256];
    snprintf(before, sizeof(before), "%s", ROUTES);
    int st = cmd(&c,
                 "{'op':'routes.set','workspace':'w1','routes':{"
                 "'fallback':[%lld]}}",
                 y);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.fallback[0]");
    st = cmd(&c,
             "{'op':'routes.set','workspace':'w1','routes':{'high':[%lld,"
             "%lld]}}",
             a, y);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.high[1]");
    st = cmd(&c,
             "{'op':'routes.set','workspace':'w1','routes':{'urgent':"
             "[%lld]}}",
             a);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.urgent");
    st = cmd(&c,
             "{'op':'routes.set','workspace':'w1','routes':{'fallback':"
             "[%lld,%lld]}}",
             a, b);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.fallback");
    st = cmd(&c, "{'op':'routes.set','workspace':'w1','routes':{'low':%lld}}",
             a);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.low");
    st = cmd(&c, "{'op':'routes.set','workspace':'w1','routes':{'low':"
                 "['1']}}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes.low[0]");
    st = cmd(&c, "{'op':'routes.set','workspace':'w1','routes':[]}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "routes");
    ck_assert_str_eq(ROUTES, before);
    /* Replaced whole. */
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{"
                  "'medium':[%lld]}}",
                  a),
              200);
    char want[64];
    snprintf(want, sizeof(want), "medium:%lld", a);
    ck_assert_str_eq(ROUTES, want);
    ck_status(cmd(&c, "{'op':'routes.set','workspace':'w1','routes':{}}"), 200);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channel_routes"), 0);
#undef ROUTES
    nc_fini(&c);
}
END_TEST

/* ---- channel.delete and channel.test ---- */

/* channel.delete fails the channel's waiting rows (to the fallback) and
 * drops its routes; a late result for them is ignored; another
 * workspace's channel is not found. */
START_TEST(test_delete)
{
    struct col c;
    nc_init(&c);
    long long x = chan(&c, "w1", "x", "webhook");
    long long f = chan(&c, "w1", "f", "webhook");
    ck_status(cmd(&c,
                  "{'op':'routes.set','workspace':'w1','routes':{'high':"
                  "[%lld],'fallback':[%lld]}}",
                  x, f),
              200);
    long long pending = note(&c, 1, 7, "firing", x);
    long long retrying = note(&c, 1, 8, "firing", x);
    result(&c, retrying, 1, "retry", "");
    long long sent = note(&c, 1, 9, "firing", x);
    result(&c, sent, 1, "sent", "");
    int st = cmd(&c, "{'op':'channel.delete','workspace':'w2','id':%lld}", x);
    ck_status(st, 404);
    st = cmd(&c, "{'op':'channel.delete','workspace':'w9','id':%lld}", x);
    ck_status(st, 404);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE id = %lld", x),
                     1);
    ck_assert_str_eq(n_status(&c, pending), "pending");

    st = cmd(&c, "{'op':'channel.delete','workspace':'w1','id':%lld}", x);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("deleted"), x);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE id = %lld", x),
                     0);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM channel_routes WHERE channel_id = %lld",
           x),
        0);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notifications WHERE id IN "
                        "(%lld, %lld) AND status = 'failed' AND last_error = "
                        "'the channel was deleted'",
                        pending, retrying),
                     2);
    ck_assert_str_eq(n_status(&c, sent), "sent");
    ck_assert_int_eq(copies(&c, pending), 1);
    ck_assert_int_eq(copies(&c, retrying), 1);
    /* The dispatcher's results for them, arriving late: ignored. */
    result(&c, pending, 1, "sent", "");
    result(&c, retrying, 2, "failed", "");
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notifications WHERE id IN "
                        "(%lld, %lld) AND status = 'failed' AND last_error = "
                        "'the channel was deleted'",
                        pending, retrying),
                     2);
    ck_assert_int_eq(
        qi(&c, "SELECT attempts FROM notifications WHERE id = %lld", pending),
        0);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notification_attempts WHERE "
                        "notification_id IN (%lld, %lld)",
                        pending, retrying),
                     1);
    st = cmd(&c, "{'op':'channel.delete','workspace':'w1','id':%lld}", x);
    ck_status(st, 404);
    /* A row whose channel is gone some other way: its failure is not the
     * channel's (nothing to count), and nothing breaks. */
    long long orphan = note(&c, 1, 10, "firing", 999);
    result(&c, orphan, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, orphan), "failed");
    nc_fini(&c);
}
END_TEST

/* channel.test enqueues a test row for the channel of the workspace;
 * delivered in-app, it is a "Test notification" in the inbox. */
START_TEST(test_channel_test)
{
    struct col c;
    nc_init(&c);
    long long a = chan(&c, "w1", "app", "in_app");
    int st = cmd(&c, "{'op':'channel.test','workspace':'w2','id':%lld}", a);
    ck_status(st, 404);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM notifications"), 0);
    st = cmd(&c, "{'op':'channel.test','workspace':'w1','id':%lld}", a);
    ck_status(st, 200);
    long long n = reply_int("notification_id");
    ck_assert_int_gt(n, 0);
    char want[64];
    snprintf(want, sizeof(want), "1 0 test %lld pending 0", a);
    ck_assert_str_eq(qs(&c,
                        "SELECT ws || ' ' || alert_id || ' ' || event || ' ' "
                        "|| channel_id || ' ' || status || ' ' || attempts "
                        "FROM notifications WHERE id = %lld",
                        n),
                     want);
    result(&c, n, 1, "sent", "");
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM inbox WHERE ws = 1 AND kind = "
                        "'test' AND title = 'Test notification' AND "
                        "notification_id = %lld AND alert_id IS NULL",
                        n),
                     1);
    nc_fini(&c);
}
END_TEST

/* ---- the inbox ---- */

/* An in-app channel's sent notification is its inbox row (once, however
 * often the result comes); inbox.read marks rows of the workspace read,
 * by id or all, and answers how many changed. */
START_TEST(test_inbox)
{
    struct col c;
    nc_init(&c);
    long long app = chan(&c, "w1", "app", "in_app");
    long long hook = chan(&c, "w1", "hook", "webhook");
    long long app2 = chan(&c, "w2", "app", "in_app");
    exec_sql(c.store.db,
             "INSERT INTO alerts(id, ws, rule_id, rule_name, severity, "
             "group_key, group_json, status, started_ms, values_json, "
             "last_notified_ms, updated_ms) VALUES(7, 1, 1, 'errors', "
             "'critical', '', '{}', 'firing', 0, '[]', 0, 0)");
    long long n = note(&c, 1, 7, "firing", app);
    result(&c, n, 1, "sent", "");
    result(&c, n, 1, "sent", "");
    ck_assert_str_eq(n_status(&c, n), "sent");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    ck_assert_str_eq(qs(&c,
                        "SELECT ws || ' ' || kind || ' ' || severity || ' ' "
                        "|| title || ' ' || alert_id || ' ' || "
                        "(notification_id = %lld) || ' ' || "
                        "(read_ms IS NULL) FROM inbox",
                        n),
                     "1 firing critical errors: firing 7 1 1");
    long long row = qi(&c, "SELECT id FROM inbox");
    /* A webhook's sent is not an inbox row; nor is an in-app retry. */
    long long h = note(&c, 1, 7, "firing", hook);
    result(&c, h, 1, "sent", "");
    long long later = note(&c, 1, 7, "resolved", app);
    result(&c, later, 1, "retry", "");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    result(&c, later, 2, "sent", "");
    long long n2 = note(&c, 2, 0, "test", app2);
    result(&c, n2, 1, "sent", "");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox WHERE ws = 1"), 2);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox WHERE ws = 2"), 1);
    long long other = qi(&c, "SELECT id FROM inbox WHERE ws = 2");

    int st = cmd(&c, "{'op':'inbox.read','workspace':'w1'}");
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "ids");
    st = cmd(&c, "{'op':'inbox.read','workspace':'w1','ids':[%lld]}", row);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT read_ms > 0 FROM inbox WHERE id = %lld", row), 1);
    st = cmd(&c, "{'op':'inbox.read','workspace':'w1','ids':[%lld]}", row);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 0);
    /* Another workspace's row, by id: untouched. */
    st = cmd(&c, "{'op':'inbox.read','workspace':'w1','ids':[%lld]}", other);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 0);
    st = cmd(&c, "{'op':'inbox.read','workspace':'w1','all':true}");
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM inbox WHERE ws = 1 AND read_ms IS NULL"),
        0);
    ck_assert_int_eq(
        qi(&c, "SELECT read_ms IS NULL FROM inbox WHERE id = %lld", other), 1);
    st = cmd(&c, "{'op':'inbox.read','workspace':'w1','all':true}");
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 0);
    st = cmd(&c, "{'op':'inbox.read','workspace':'w2','all':true}");
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("changed"), 1);
    nc_fini(&c);
}
END_TEST

/* ---- batches ---- */

/* One result that is garbage, stale, unknown or cannot be written does
 * not hold back the others: 200, the good ones written, the unwritable
 * one left out whole (no half-written try). */
START_TEST(test_batch)
{
    struct col c;
    nc_init(&c);
    long long x = chan(&c, "w1", "x", "webhook");
    long long app = chan(&c, "w1", "app", "in_app");
    long long a = note(&c, 1, 7, "firing", x);
    long long b = note(&c, 1, 8, "firing", x);
    int st = cmd(&c,
                 "{'op':'notify.result','results':['garbage',17,{'id':999999,"
                 "'attempt':1,'outcome':'sent'},{'id':%lld,'attempt':1,"
                 "'outcome':'bounced'},{'id':%lld,'attempt':1,'outcome':"
                 "'sent','latency_ms':5,'ts_ms':1},{'id':%lld,'outcome':"
                 "'sent'}]}",
                 a, a, b);
    ck_status(st, 200);
    ck_assert_int_eq(reply_int("applied"), 6);
    ck_assert_str_eq(n_status(&c, a), "sent");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM notification_attempts"), 1);
    /* b's result had no attempt number: not this try's, ignored. */
    ck_assert_str_eq(n_status(&c, b), "pending");
    /* Not an array: 400. */
    st = cmd(&c, "{'op':'notify.result','results':{'id':%lld}}", b);
    ck_status(st, 400);
    ck_assert_str_eq(err_field(), "results");

    /* An in-app delivery whose inbox row cannot be written: its attempt
     * row and status change are undone, the next result is written. */
    exec_sql(c.store.db, "CREATE TEMP TRIGGER no_inbox BEFORE INSERT ON inbox "
                         "BEGIN SELECT RAISE(ABORT, 'inbox refused'); END");
    long long m = note(&c, 1, 9, "firing", app);
    st = cmd(&c,
             "{'op':'notify.result','results':[{'id':%lld,'attempt':1,"
             "'outcome':'sent'},{'id':%lld,'attempt':1,'outcome':'retry',"
             "'next_ms':55}]}",
             m, b);
    ck_status(st, 200);
    ck_assert_str_eq(qs(&c,
                        "SELECT status || ' ' || attempts FROM "
                        "notifications WHERE id = %lld",
                        m),
                     "pending 0");
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM notification_attempts WHERE "
                        "notification_id = %lld",
                        m),
                     0);
    ck_assert_str_eq(qs(&c,
                        "SELECT status || ' ' || attempts || ' ' || next_ms "
                        "FROM notifications WHERE id = %lld",
                        b),
                     "retrying 1 55");
    exec_sql(c.store.db, "DROP TRIGGER no_inbox");
    result(&c, m, 1, "sent", "");
    ck_assert_str_eq(n_status(&c, m), "sent");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    nc_fini(&c);
}
END_TEST

static Suite *notify_cmd_suite(void)
{
    Suite *s = suite_create("notify_cmd");
    TCase *tc = tcase_create("commands");
    tcase_add_checked_fixture(tc, nc_tmp_setup, nc_tmp_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_create_validates);
    tcase_add_test(tc, test_create_limit);
    tcase_add_test(tc, test_update);
    tcase_add_test(tc, test_result_once);
    tcase_add_test(tc, test_disable_after_run);
    tcase_add_test(tc, test_fallback);
    tcase_add_test(tc, test_fallback_after_earlier_copy);
    tcase_add_test(tc, test_routes_set);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_channel_test);
    tcase_add_test(tc, test_inbox);
    tcase_add_test(tc, test_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("check_notify_cmd", LOG_ERROR, NULL);
    SRunner *sr = srunner_create(notify_cmd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
