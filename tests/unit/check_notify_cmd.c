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

static json_t *last;        /* the reply of the last command (owned here) */
static char last_cmd[8192]; /* the text of the last command, for messages */

static void nc_tmp_teardown(void)
{
    json_decref(last);
    last = NULL;
    tmpdir_teardown();
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

/* cmd() on a va_list. */
static int vcmd(struct col *c, const char *fmt, va_list ap)
{
    int n = vsnprintf(last_cmd, sizeof(last_cmd), fmt, ap);
    ck_assert_msg(n > 0 && (size_t)n < sizeof(last_cmd), "command too long");
    for (char *p = last_cmd; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_decref(last);
    last = NULL;
    int status = col_command(c, last_cmd, strlen(last_cmd), &last);
    ck_assert_msg(last != NULL, "%s: no reply", last_cmd);
    return status;
}

/* Run the printf-formatted command (' for ") as the API would; its
 * status, its reply in last and its text in last_cmd. */
__attribute__((format(printf, 2, 3))) static int cmd(struct col *c,
                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = vcmd(c, fmt, ap);
    va_end(ap);
    return status;
}

/* routes.set in w1 with the printf-formatted routes (' for "), e.g.
 * "{'fallback':[%lld]}"; its status. */
__attribute__((format(printf, 2, 3))) static int
routes_set(struct col *c, const char *fmt, ...)
{
    char whole[1024];
    snprintf(whole, sizeof(whole),
             "{'op':'routes.set','workspace':'w1','routes':%s}", fmt);
    va_list ap;
    va_start(ap, fmt);
    int status = vcmd(c, whole, ap);
    va_end(ap);
    return status;
}

/* channel.update of channel id in workspace ws with members (' for "),
 * e.g. "'name':'b'"; its status. */
static int update(struct col *c, const char *ws, long long id,
                  const char *members)
{
    return cmd(c, "{'op':'channel.update','workspace':'%s','id':%lld,%s}", ws,
               id, members);
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

/* Assert a command's status (got, evaluated once), naming the command. */
#define ck_status(got, want)                                                   \
    do {                                                                       \
        int got_ = (got);                                                      \
        ck_assert_msg(got_ == (want), "%s: status %d, want %d: %s", last_cmd,  \
                      got_, (want), last_text());                              \
    } while (0)

/* Assert a command's status and the field its error reply names. */
#define ck_refused(got, want, field)                                           \
    do {                                                                       \
        ck_status(got, want);                                                  \
        ck_assert_str_eq(err_field(), field);                                  \
    } while (0)

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

/* q_intf and q_textf on collector c's database. */
#define qi(c, ...) q_intf((c)->store.db, __VA_ARGS__)
#define qs(c, ...) q_textf((c)->store.db, __VA_ARGS__)

/* Create channel name of type (webhook or in_app) in workspace ws through
 * channel.create; its id. */
static long long chan(struct col *c, const char *ws, const char *name,
                      const char *type)
{
    ck_status(cmd(c,
                  "{'op':'channel.create','workspace':'%s','name':'%s',"
                  "'type':'%s','config':%s}",
                  ws, name, type,
                  strcmp(type, "in_app") == 0 ? APP_CONFIG : HOOK_CONFIG),
              201);
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
    ck_status(cmd(c,
                  "{'op':'notify.result','results':[{'id':%lld,'attempt':%d,"
                  "'outcome':'%s','code':500,'error':'HTTP 500',"
                  "'latency_ms':3,'next_ms':123,'ts_ms':1%s}]}",
                  id, attempt, outcome, extra),
              200);
}

/* A notification as note() makes whose first try ended in outcome (as
 * result() sends it, with no extra members); its id. */
static long long tried(struct col *c, int ws, long long alert,
                       const char *event, long long ch, const char *outcome)
{
    long long n = note(c, ws, alert, event, ch);
    result(c, n, 1, outcome, "");
    return n;
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

/* The attempt rows of notification n. */
static long long tries(struct col *c, long long n)
{
    return qi(c,
              "SELECT count(*) FROM notification_attempts WHERE "
              "notification_id = %lld",
              n);
}

/* How many of notifications a and b failed with last_error why. */
static long long failed_with(struct col *c, long long a, long long b,
                             const char *why)
{
    return qi(c,
              "SELECT count(*) FROM notifications WHERE id IN (%lld, %lld) "
              "AND status = 'failed' AND last_error = '%s'",
              a, b, why);
}

/* Channel id's run of failures. */
static long long failures(struct col *c, long long id)
{
    return qi(c, "SELECT failures FROM channels WHERE id = %lld", id);
}

/* Channel id's webhook url. */
static const char *url_of(struct col *c, long long id)
{
    return qs(c,
              "SELECT json_extract(config, '$.url') FROM channels WHERE id "
              "= %lld",
              id);
}

/* channel.test of w1's channel ch (200); the test notification's id. */
static long long test_note(struct col *c, long long ch)
{
    ck_status(cmd(c, "{'op':'channel.test','workspace':'w1','id':%lld}", ch),
              200);
    long long n = reply_int("notification_id");
    ck_assert_int_gt(n, 0);
    return n;
}

/* inbox.read in workspace ws of the rows named by what (' for "), e.g.
 * "'all':true" (200); how many it marked read. */
static long long read_inbox(struct col *c, const char *ws, const char *what)
{
    ck_status(cmd(c, "{'op':'inbox.read','workspace':'%s',%s}", ws, what), 200);
    return reply_int("changed");
}

/* read_inbox of the one row id in w1. */
static long long read_row(struct col *c, long long id)
{
    char what[64];
    snprintf(what, sizeof(what), "'ids':[%lld]", id);
    return read_inbox(c, "w1", what);
}

/* Make ch w1's only route, its fallback. */
static void set_fallback(struct col *c, long long ch)
{
    ck_status(routes_set(c, "{'fallback':[%lld]}", ch), 200);
}

/* ---- channels ---- */

/* channel.create validates type, name, enabled and config (naming the
 * config's path), answers 201 {id} with the config's defaults stored, and
 * names are unique per workspace. */
START_TEST(test_create_validates)
{
    struct col c;
    nc_init(&c);
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                       "'type':'sms','config':{}}"),
               400, "type");
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                       "'config':{}}"),
               400, "type");
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'',"
                       "'type':'in_app','config':{}}"),
               400, "name");
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'a',"
                       "'type':'in_app','config':{},'enabled':'yes'}"),
               400, "enabled");
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'W 1','name':'a',"
                       "'type':'in_app','config':{}}"),
               400, "workspace");
    /* A bad config names the path of the bad field. */
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'mail',"
                       "'type':'email','config':{'smtp_url':'smtp://mail."
                       "example.com','from':'alerts@example.com','to':["
                       "'ops@example.com','example.com']}}"),
               400, "config.to[1]");
    ck_assert_str_eq(err_code(), "invalid_field");
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                       "'type':'webhook','config':{'url':'https://hook."
                       "example.com/in','color':'red'}}"),
               400, "config.color");
    /* A webhook with no config at all: its url is required. */
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                       "'type':'webhook'}"),
               400, "config.url");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels"), 0);

    long long id = chan(&c, "w1", "hook", "webhook");
    ck_assert_str_eq(qs(&c,
                        "SELECT type || ' ' || enabled || ' ' || ws || ' ' || "
                        "json_extract(config, '$.timeout_ms') FROM channels "
                        "WHERE id = %lld",
                        id),
                     "webhook 1 1 10000");
    /* The same name again in w1: 409 on the name; in w2: its own. */
    ck_refused(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'hook',"
                       "'type':'in_app','config':{}}"),
               409, "name");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE ws = 1"), 1);
    long long other = chan(&c, "w2", "hook", "in_app");
    ck_assert_int_ne(other, id);
    /* Created disabled when asked. */
    ck_status(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'off',"
                      "'type':'in_app','config':{},'enabled':false}"),
              201);
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
    ck_status(cmd(&c, "{'op':'channel.create','workspace':'w1','name':'one "
                      "more','type':'in_app','config':{}}"),
              409);
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
    ck_refused(update(&c, "w1", a, "'type':'in_app'"), 400, "type");
    ck_assert_str_eq(qs(&c, "SELECT type FROM channels WHERE id = %lld", a),
                     "webhook");
    /* The same type may be sent back. */
    ck_status(update(&c, "w1", a, "'type':'webhook','name':'a2'"), 200);
    ck_assert_int_eq(reply_int("id"), a);
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", a),
                     "a2");
    ck_assert_str_eq(url_of(&c, a), "https://hook.example.com/in");
    /* Another channel's name: 409, nothing changed. */
    ck_refused(update(&c, "w1", a, "'name':'b'"), 409, "name");
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", a),
                     "a2");
    /* A bad config names its path. */
    ck_refused(
        update(&c, "w1", a, "'config':{'url':'ftp://hook.example.com/in'}"),
        400, "config.url");
    ck_status(
        update(&c, "w1", a, "'config':{'url':'https://other.example.com/in'}"),
        200);
    ck_assert_str_eq(url_of(&c, a), "https://other.example.com/in");
    /* Another workspace's channel, an unknown id or workspace: 404. */
    ck_status(update(&c, "w1", other, "'name':'mine'"), 404);
    ck_assert_str_eq(qs(&c, "SELECT name FROM channels WHERE id = %lld", other),
                     "x");
    ck_status(update(&c, "w1", 9999, "'name':'z'"), 404);
    ck_status(update(&c, "w9", a, "'name':'z'"), 404);
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
        result(&c, n, 1, "retry", "");
        ck_assert_str_eq(qs(&c,
                            "SELECT attempts || ' ' || status || ' ' || "
                            "next_ms || ' ' || last_code || ' ' || "
                            "last_error FROM notifications WHERE id = %lld",
                            n),
                         "1 retrying 123 500 HTTP 500");
        ck_assert_int_eq(tries(&c, n), 1);
    }
    ck_assert_str_eq(qs(&c,
                        "SELECT outcome || ' ' || code || ' ' || error || ' ' "
                        "|| latency_ms || ' ' || ts_ms FROM "
                        "notification_attempts WHERE notification_id = %lld",
                        n),
                     "retry 500 HTTP 500 3 1");
    /* A retry is no failure for good: the run is as it was. */
    ck_assert_int_eq(failures(&c, x), 2);
    /* A result for a try not made yet (3) is stale too. */
    result(&c, n, 3, "sent", "");
    ck_assert_str_eq(n_status(&c, n), "retrying");
    result(&c, n, 2, "sent", "");
    ck_assert_str_eq(qs(&c,
                        "SELECT attempts || ' ' || status || ' ' || "
                        "(sent_ms > 0) FROM notifications WHERE id = %lld",
                        n),
                     "2 sent 1");
    ck_assert_int_eq(failures(&c, x), 0);
    /* Sent: no longer waiting, so a late result changes nothing. */
    result(&c, n, 3, "failed", "");
    ck_assert_str_eq(n_status(&c, n), "sent");
    ck_assert_int_eq(tries(&c, n), 2);
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
    set_fallback(&c, f);
    /* Three retries of one notification, then it fails for good: one. */
    long long n1 = tried(&c, 1, 1, "firing", x, "retry");
    result(&c, n1, 2, "retry", "");
    result(&c, n1, 3, "retry", "");
    ck_assert_int_eq(failures(&c, x), 0);
    result(&c, n1, 4, "failed", ",'channel_fault':true");
    ck_assert_str_eq(n_status(&c, n1), "failed");
    ck_assert_int_eq(failures(&c, x), 1);
    /* Not the channel's fault: not counted. */
    long long n2 = note(&c, 1, 2, "firing", x);
    result(&c, n2, 1, "failed", ",'channel_fault':false");
    ck_assert_str_eq(n_status(&c, n2), "failed");
    ck_assert_int_eq(failures(&c, x), 1);
    tried(&c, 1, 3, "firing", x, "failed");
    ck_assert_int_eq(failures(&c, x), 2);
    /* A sent ends the run. */
    tried(&c, 1, 4, "firing", x, "sent");
    ck_assert_int_eq(failures(&c, x), 0);
    long long waiting = note(&c, 1, 5, "firing", x);
    long long retrying = tried(&c, 1, 6, "firing", x, "retry");
    for (int i = 0; i < 2; i++)
        tried(&c, 1, 10 + i, "firing", x, "failed");
    ck_assert_int_eq(failures(&c, x), 2);
    ck_assert_int_eq(qi(&c, "SELECT enabled FROM channels WHERE id = %lld", x),
                     1);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 0);
    long long n7 = tried(&c, 1, 12, "firing", x, "failed");
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
    ck_assert_int_eq(
        failed_with(&c, waiting, retrying, "the channel is disabled"), 2);
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
    ck_assert_int_eq(failures(&c, x), 3);
    /* A rename keeps it disabled, its reason and its run. */
    ck_status(update(&c, "w1", x, "'name':'flaky2'"), 200);
    ck_assert_int_eq(qi(&c,
                        "SELECT enabled = 0 AND failures = 3 AND "
                        "disabled_reason IS NOT NULL FROM channels WHERE id "
                        "= %lld",
                        x),
                     1);
    /* Enabled again: the run and the reason are gone. */
    ck_status(update(&c, "w1", x, "'enabled':true"), 200);
    ck_assert_int_eq(qi(&c,
                        "SELECT enabled = 1 AND failures = 0 AND "
                        "disabled_reason IS NULL FROM channels WHERE id = "
                        "%lld",
                        x),
                     1);
    /* Disabled by hand: a failure counts, but no second disable. */
    ck_status(update(&c, "w1", x, "'enabled':false"), 200);
    exec_sql(c.store.db, "UPDATE channels SET failures = 5");
    tried(&c, 1, 13, "firing", x, "failed");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT disabled_reason IS NULL FROM channels WHERE id = %lld",
           x),
        1);
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
    set_fallback(&c, f);
    ck_assert_int_eq(qi(&c,
                        "SELECT count(*) FROM channel_routes WHERE ws = 1 "
                        "AND route = 'fallback' AND channel_id = %lld",
                        f),
                     1);
    /* The copy. */
    long long n = tried(&c, 1, 7, "firing", x, "failed");
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
    long long r = tried(&c, 1, 8, "firing", x, "retry");
    ck_assert_int_eq(copies(&c, r), 0);
    /* The fallback already has this event of the alert (it is routed
     * there too): no copy. */
    long long direct = note(&c, 1, 9, "firing", f);
    n = tried(&c, 1, 9, "firing", x, "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* ... or a later row of it: a late "firing" would arrive after the
     * "resolved". */
    n = note(&c, 1, 10, "firing", x);
    note(&c, 1, 10, "resolved", f);
    result(&c, n, 1, "failed", "");
    ck_assert_int_eq(copies(&c, n), 0);
    /* An earlier row of another event of it does not stand in. */
    note(&c, 1, 11, "firing", f);
    n = tried(&c, 1, 11, "resolved", x, "failed");
    ck_assert_int_eq(copies(&c, n), 1);
    /* The fallback's own failure: no copy to itself. */
    result(&c, direct, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, direct), "failed");
    ck_assert_int_eq(copies(&c, direct), 0);
    /* Tests (alert 0) are not of one alert: each failed one of x is
     * copied, but the fallback's own is not copied to itself. */
    for (int i = 0; i < 2; i++) {
        n = test_note(&c, x);
        result(&c, n, 1, "failed", "");
        ck_assert_int_eq(qi(&c,
                            "SELECT count(*) FROM notifications WHERE "
                            "fallback_of = %lld AND event = 'test' AND "
                            "alert_id = 0 AND channel_id = %lld",
                            n, f),
                         1);
    }
    n = test_note(&c, f);
    result(&c, n, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, n), "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* A copy is not copied again, even once the route names another
     * channel. */
    set_fallback(&c, g);
    result(&c, copy, 1, "failed", "");
    ck_assert_str_eq(n_status(&c, copy), "failed");
    ck_assert_int_eq(copies(&c, copy), 0);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM notifications WHERE channel_id = %lld", g),
        0);
    /* A disabled fallback gets nothing. */
    ck_status(update(&c, "w1", g, "'enabled':false"), 200);
    n = tried(&c, 1, 12, "firing", x, "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* Another workspace's rows do not take w1's route. */
    n = tried(&c, 2, 13, "firing", y, "failed");
    ck_assert_str_eq(n_status(&c, n), "failed");
    ck_assert_int_eq(copies(&c, n), 0);
    /* A failure that is not the channel's still fails over. */
    set_fallback(&c, f);
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
    set_fallback(&c, f);
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
    ck_status(routes_set(&c,
                         "{'critical':[%lld,%lld],'low':[%lld],"
                         "'fallback':[%lld]}",
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
    ck_refused(routes_set(&c, "{'fallback':[%lld]}", y), 400,
               "routes.fallback[0]");
    ck_refused(routes_set(&c, "{'high':[%lld,%lld]}", a, y), 400,
               "routes.high[1]");
    ck_refused(routes_set(&c, "{'urgent':[%lld]}", a), 400, "routes.urgent");
    ck_refused(routes_set(&c, "{'fallback':[%lld,%lld]}", a, b), 400,
               "routes.fallback");
    ck_refused(routes_set(&c, "{'low':%lld}", a), 400, "routes.low");
    ck_refused(routes_set(&c, "{'low':['1']}"), 400, "routes.low[0]");
    ck_refused(routes_set(&c, "[]"), 400, "routes");
    ck_assert_str_eq(ROUTES, before);
    /* Replaced whole. */
    ck_status(routes_set(&c, "{'medium':[%lld]}", a), 200);
    char want[64];
    snprintf(want, sizeof(want), "medium:%lld", a);
    ck_assert_str_eq(ROUTES, want);
    ck_status(routes_set(&c, "{}"), 200);
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
    ck_status(routes_set(&c, "{'high':[%lld],'fallback':[%lld]}", x, f), 200);
    long long pending = note(&c, 1, 7, "firing", x);
    long long retrying = tried(&c, 1, 8, "firing", x, "retry");
    long long sent = tried(&c, 1, 9, "firing", x, "sent");
    ck_status(cmd(&c, "{'op':'channel.delete','workspace':'w2','id':%lld}", x),
              404);
    ck_status(cmd(&c, "{'op':'channel.delete','workspace':'w9','id':%lld}", x),
              404);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE id = %lld", x),
                     1);
    ck_assert_str_eq(n_status(&c, pending), "pending");

    ck_status(cmd(&c, "{'op':'channel.delete','workspace':'w1','id':%lld}", x),
              200);
    ck_assert_int_eq(reply_int("deleted"), x);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM channels WHERE id = %lld", x),
                     0);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM channel_routes WHERE channel_id = %lld",
           x),
        0);
    ck_assert_int_eq(
        failed_with(&c, pending, retrying, "the channel was deleted"), 2);
    ck_assert_str_eq(n_status(&c, sent), "sent");
    ck_assert_int_eq(copies(&c, pending), 1);
    ck_assert_int_eq(copies(&c, retrying), 1);
    /* The dispatcher's results for them, arriving late: ignored. */
    result(&c, pending, 1, "sent", "");
    result(&c, retrying, 2, "failed", "");
    ck_assert_int_eq(
        failed_with(&c, pending, retrying, "the channel was deleted"), 2);
    ck_assert_int_eq(
        qi(&c, "SELECT attempts FROM notifications WHERE id = %lld", pending),
        0);
    ck_assert_int_eq(tries(&c, pending) + tries(&c, retrying), 1);
    ck_status(cmd(&c, "{'op':'channel.delete','workspace':'w1','id':%lld}", x),
              404);
    /* A row whose channel is gone some other way: its failure is not the
     * channel's (nothing to count), and nothing breaks. */
    long long orphan = tried(&c, 1, 10, "firing", 999, "failed");
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
    ck_status(cmd(&c, "{'op':'channel.test','workspace':'w2','id':%lld}", a),
              404);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM notifications"), 0);
    long long n = test_note(&c, a);
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
    long long n = tried(&c, 1, 7, "firing", app, "sent");
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
    tried(&c, 1, 7, "firing", hook, "sent");
    long long later = tried(&c, 1, 7, "resolved", app, "retry");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox"), 1);
    result(&c, later, 2, "sent", "");
    tried(&c, 2, 0, "test", app2, "sent");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox WHERE ws = 1"), 2);
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM inbox WHERE ws = 2"), 1);
    long long other = qi(&c, "SELECT id FROM inbox WHERE ws = 2");

    ck_refused(cmd(&c, "{'op':'inbox.read','workspace':'w1'}"), 400, "ids");
    ck_assert_int_eq(read_row(&c, row), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT read_ms > 0 FROM inbox WHERE id = %lld", row), 1);
    ck_assert_int_eq(read_row(&c, row), 0);
    /* Another workspace's row, by id: untouched. */
    ck_assert_int_eq(read_row(&c, other), 0);
    ck_assert_int_eq(read_inbox(&c, "w1", "'all':true"), 1);
    ck_assert_int_eq(
        qi(&c, "SELECT count(*) FROM inbox WHERE ws = 1 AND read_ms IS NULL"),
        0);
    ck_assert_int_eq(
        qi(&c, "SELECT read_ms IS NULL FROM inbox WHERE id = %lld", other), 1);
    ck_assert_int_eq(read_inbox(&c, "w1", "'all':true"), 0);
    ck_assert_int_eq(read_inbox(&c, "w2", "'all':true"), 1);
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
    ck_status(cmd(&c,
                  "{'op':'notify.result','results':['garbage',17,{'id':999999,"
                  "'attempt':1,'outcome':'sent'},{'id':%lld,'attempt':1,"
                  "'outcome':'bounced'},{'id':%lld,'attempt':1,'outcome':"
                  "'sent','latency_ms':5,'ts_ms':1},{'id':%lld,'outcome':"
                  "'sent'}]}",
                  a, a, b),
              200);
    ck_assert_int_eq(reply_int("applied"), 6);
    ck_assert_str_eq(n_status(&c, a), "sent");
    ck_assert_int_eq(qi(&c, "SELECT count(*) FROM notification_attempts"), 1);
    /* b's result had no attempt number: not this try's, ignored. */
    ck_assert_str_eq(n_status(&c, b), "pending");
    /* Not an array: 400. */
    ck_refused(cmd(&c, "{'op':'notify.result','results':{'id':%lld}}", b), 400,
               "results");

    /* An in-app delivery whose inbox row cannot be written: its attempt
     * row and status change are undone, the next result is written. */
    exec_sql(c.store.db, "CREATE TEMP TRIGGER no_inbox BEFORE INSERT ON inbox "
                         "BEGIN SELECT RAISE(ABORT, 'inbox refused'); END");
    long long m = note(&c, 1, 9, "firing", app);
    ck_status(cmd(&c,
                  "{'op':'notify.result','results':[{'id':%lld,'attempt':1,"
                  "'outcome':'sent'},{'id':%lld,'attempt':1,'outcome':'retry',"
                  "'next_ms':55}]}",
                  m, b),
              200);
    ck_assert_str_eq(qs(&c,
                        "SELECT status || ' ' || attempts FROM "
                        "notifications WHERE id = %lld",
                        m),
                     "pending 0");
    ck_assert_int_eq(tries(&c, m), 0);
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
    tcase_add_checked_fixture(tc, tmpdir_setup, nc_tmp_teardown);
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
