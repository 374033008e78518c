/*
 * check_conf.c: unit tests for the configuration table (common/conf.h).
 *
 * Each test that touches files works in its own temporary directory,
 * removed at the end; Check runs every test in its own process, so a test
 * may chdir() freely.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"

#define TESTDIR_NAME "tt-conf"
#include "testutil.h"

/* Write text to tmpdir/name and return the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Assert that haystack contains needle, printing both. */
#define ck_assert_contains(haystack, needle)                                   \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                        \
                  "\"%s\" does not contain \"%s\"", (haystack), (needle))

/* Apply one override to fresh defaults; returns conf_set's result. */
static int set1(struct conf *c, const char *kv, char *err, size_t errlen)
{
    conf_defaults(c);
    err[0] = '\0';
    return conf_set(c, kv, err, errlen);
}

/* Every option starts at its documented default. */
START_TEST(test_defaults)
{
    struct conf c;
    memset(&c, 0x5a, sizeof(c));
    conf_defaults(&c);
    ck_assert_str_eq(c.data_dir, "./var");
    ck_assert_str_eq(c.listen, "127.0.0.1");
    ck_assert_int_eq(c.port, 8080);
    ck_assert_str_eq(c.shm_name, "");
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_int_eq(c.api_threads, 16);
    ck_assert_int_eq(c.ingest_max_body, 1048576);
    ck_assert_int_eq(c.ingest_timeout_ms, 10000);
    ck_assert_int_eq(c.ingest_queue_ms, 2000);
    ck_assert_int_eq(c.commit_max_rows, 20000);
    ck_assert_str_eq(c.db_synchronous, "normal");
    ck_assert_int_eq(c.live_seconds, 3660);
    ck_assert_int_eq(c.live_slots, 128);
    ck_assert_int_eq(c.live_hist_entries, 8192);
    ck_assert_int_eq(c.feed_size, 1000);
    ck_assert_str_eq(c.pricing_file, "");
    ck_assert_str_eq(c.pricing_override, "");
    ck_assert_int_eq(c.disk_min_free_mb, 100);
    ck_assert_int_eq(c.stale_after_ms, 3000);
}
END_TEST

/* Comments, blank lines, indentation, tabs, quotes and spaces around '='
 * are all understood. */
START_TEST(test_file_syntax)
{
    const char *path =
        write_file("tokentap.conf", "# a comment\n"
                                    "\n"
                                    "   \n"
                                    "\t\n"
                                    "port=9090\n"
                                    "   # an indented comment\n"
                                    "  listen =   \"::1\"  \n"
                                    "log_level\t=\tdebug\n"
                                    "api_threads = 9\r\n"
                                    "pricing_file = \" /opt/a b.json \"\n"
                                    "shm_name = \"/tt-x\"\n"
                                    "feed_size = 10");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_msg(conf_load_file(&c, path, 0, err, sizeof(err)) == 0,
                  "load failed: %s", err);
    ck_assert_int_eq(c.port, 9090);
    ck_assert_str_eq(c.listen, "::1");
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_int_eq(c.api_threads, 9);
    ck_assert_str_eq(c.pricing_file, " /opt/a b.json ");
    ck_assert_str_eq(c.shm_name, "/tt-x");
    ck_assert_int_eq(c.feed_size, 10);         /* last line without a newline */
    ck_assert_int_eq(c.ingest_queue_ms, 2000); /* untouched keeps default */
}
END_TEST

/* A later line for the same key wins. */
START_TEST(test_file_last_wins)
{
    const char *path = write_file("a.conf", "port = 1000\nport = 2000\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 2000);
}
END_TEST

/* An empty quoted value sets an empty string. */
START_TEST(test_file_empty_quotes)
{
    const char *path = write_file("a.conf", "shm_name = \"/x\"\n"
                                            "shm_name = \"\"\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_msg(conf_load_file(&c, path, 0, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_str_eq(c.shm_name, "");
}
END_TEST

/* A comment line longer than the line buffer is still one comment. */
START_TEST(test_file_long_comment)
{
    char text[3000];
    memset(text, 'x', sizeof(text));
    text[0] = '#';
    memcpy(text + 2000, "\nport = 7\n", 11);
    const char *path = write_file("a.conf", text);
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_msg(conf_load_file(&c, path, 0, err, sizeof(err)) == 0,
                  "a 2000-byte comment failed: %s", err);
    ck_assert_int_eq(c.port, 7);
}
END_TEST

/* A missing file is fine only when missing_ok; otherwise the error names
 * the file. */
START_TEST(test_file_missing)
{
    struct conf c;
    char err[512] = "", path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), -1);
    ck_assert_contains(err, "nope.conf");
}
END_TEST

/* An unknown key fails with file:line and the key quoted. */
START_TEST(test_unknown_key)
{
    const char *path =
        write_file("tokentap.conf", "# header\nport = 80\nbogus_key = 1\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), -1);
    ck_assert_contains(err, "tokentap.conf:3:");
    ck_assert_contains(err, "\"bogus_key\"");
    ck_assert_contains(err, "unknown");
}
END_TEST

/* A bad value in a file: file:line, the value and the key quoted. */
START_TEST(test_bad_value_message)
{
    const char *path = write_file("tokentap.conf", "\n\napi_threads = abc\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "tokentap.conf:3: invalid value \"abc\" for "
                          "\"api_threads\": not an integer");
}
END_TEST

/* A line without '=' is refused, quoting the line. */
START_TEST(test_line_without_equals)
{
    const char *path = write_file("x.conf", "port 8080\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), -1);
    ck_assert_contains(err, "x.conf:1:");
    ck_assert_contains(err, "\"port 8080\"");
}
END_TEST

/* Integers are accepted at both bounds and refused one past each. */
START_TEST(test_int_bounds)
{
    static const struct {
        const char *key;
        long lo, hi;
    } opts[] = {
        {"port", 1, 65535},
        {"api_threads", 8, 256},
        {"ingest_max_body", 1024, 1048576},
        {"live_seconds", 3660, 86400},
        {"live_slots", 8, 4096},
        {"feed_size", 10, 100000},
        {"disk_min_free_mb", 0, 1000000},
        {"stale_after_ms", 500, 600000},
    };
    struct conf c;
    char err[512], kv[128], want[256];
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        long edge[2] = {opts[i].lo, opts[i].hi};
        long out[2] = {opts[i].lo - 1, opts[i].hi + 1};
        for (int k = 0; k < 2; k++) {
            snprintf(kv, sizeof(kv), "%s=%ld", opts[i].key, edge[k]);
            ck_assert_msg(set1(&c, kv, err, sizeof(err)) == 0, "%s refused: %s",
                          kv, err);
            snprintf(kv, sizeof(kv), "%s=%ld", opts[i].key, out[k]);
            ck_assert_msg(set1(&c, kv, err, sizeof(err)) == -1, "%s accepted",
                          kv);
            snprintf(want, sizeof(want),
                     "invalid value \"%ld\" for \"%s\": must be between %ld "
                     "and %ld",
                     out[k], opts[i].key, opts[i].lo, opts[i].hi);
            ck_assert_contains(err, want);
        }
    }
    ck_assert_int_eq(set1(&c, "port=65535", err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 65535);
}
END_TEST

/* Anything but a whole decimal integer is "not an integer". */
START_TEST(test_not_an_integer)
{
    static const char *const bad[] = {
        "abc", "12abc",    "", "1.5", "0x10", "1e3", "99999999999999999999",
        "- 1", "8080 8081"};
    struct conf c;
    char err[512], kv[128], want[160];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(kv, sizeof(kv), "port=%s", bad[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == -1, "%s accepted", kv);
        snprintf(want, sizeof(want), "invalid value \"%s\" for \"port\"",
                 bad[i]);
        ck_assert_contains(err, want);
        ck_assert_contains(err, "not an integer");
        ck_assert_int_eq(c.port, 8080); /* unchanged */
    }
}
END_TEST

/* Enumerated options take exactly their words, and the message lists them. */
START_TEST(test_enum_words)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    struct conf c;
    char err[512], kv[64];
    for (size_t i = 0; i < 4; i++) {
        snprintf(kv, sizeof(kv), "log_level=%s", levels[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == 0, "%s: %s", kv, err);
        ck_assert_str_eq(c.log_level, levels[i]);
    }
    static const char *const bad[] = {"verbose", "INFO", "inf",
                                      "infos",   "",     "debug|info"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(kv, sizeof(kv), "log_level=%s", bad[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == -1, "%s accepted", kv);
        ck_assert_contains(err, "must be one of debug|info|warn|error");
    }
    ck_assert_int_eq(set1(&c, "db_synchronous=full", err, sizeof(err)), 0);
    ck_assert_str_eq(c.db_synchronous, "full");
    ck_assert_int_eq(set1(&c, "db_synchronous=off", err, sizeof(err)), -1);
    ck_assert_contains(err, "\"off\"");
    ck_assert_contains(err, "\"db_synchronous\"");
}
END_TEST

/* listen takes IPv4 and IPv6 addresses and nothing else. */
START_TEST(test_listen_address)
{
    static const char *const ok[] = {
        "0.0.0.0", "127.0.0.1", "192.168.1.20",           "::",
        "::1",     "fe80::1",   "2001:db8::8a2e:370:7334"};
    static const char *const bad[] = {"localhost",  "256.1.1.1", "1.2.3",
                                      "[::1]",      "",          "::1%lo",
                                      "1.2.3.4:80", "127.0.0.1 "};
    struct conf c;
    char err[512], kv[128];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(kv, sizeof(kv), "listen=%s", ok[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == 0, "%s: %s", kv, err);
        ck_assert_str_eq(c.listen, ok[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* Quote the value so trailing spaces survive the trim. */
        snprintf(kv, sizeof(kv), "listen=\"%s\"", bad[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == -1, "%s accepted", kv);
        ck_assert_contains(err, "not an IPv4 or IPv6 address");
        ck_assert_str_eq(c.listen, "127.0.0.1");
    }
}
END_TEST

/* shm_name is "" or "/name" with no other '/', short enough for the
 * header's 64-byte field. */
START_TEST(test_shm_name_rules)
{
    struct conf c;
    char err[512], kv[160];
    ck_assert_int_eq(set1(&c, "shm_name=/tokentap-test", err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/tokentap-test");
    ck_assert_int_eq(set1(&c, "shm_name=", err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "");
    static const char *const bad[] = {"tokentap", "/a/b", "//", "/a/", "x/y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(kv, sizeof(kv), "shm_name=%s", bad[i]);
        ck_assert_msg(set1(&c, kv, err, sizeof(err)) == -1, "%s accepted", kv);
        ck_assert_contains(err, "\"shm_name\"");
    }
    /* 60 characters fit; 61 do not. */
    char name[80];
    memset(name, 'n', sizeof(name));
    name[0] = '/';
    name[60] = '\0';
    snprintf(kv, sizeof(kv), "shm_name=%s", name);
    ck_assert_msg(set1(&c, kv, err, sizeof(err)) == 0, "60 chars: %s", err);
    name[60] = 'n';
    name[61] = '\0';
    snprintf(kv, sizeof(kv), "shm_name=%s", name);
    ck_assert_int_eq(set1(&c, kv, err, sizeof(err)), -1);
}
END_TEST

/* shm_name "/" alone names nothing (shm_open refuses it) and is refused. */
START_TEST(test_shm_name_slash_only)
{
    struct conf c;
    char err[512] = "";
    ck_assert_msg(set1(&c, "shm_name=/", err, sizeof(err)) == -1,
                  "shm_name \"/\" accepted, shm_name is now \"%s\"",
                  c.shm_name);
}
END_TEST

/* A path longer than its field is "too long" and changes nothing. */
START_TEST(test_path_too_long)
{
    struct conf c;
    char err[2048], kv[900];
    snprintf(kv, sizeof(kv), "pricing_file=/");
    memset(kv + strlen(kv), 'p', CONF_PATH_MAX);
    kv[14 + CONF_PATH_MAX] = '\0';
    ck_assert_int_eq(set1(&c, kv, err, sizeof(err)), -1);
    ck_assert_contains(err, "too long");
    ck_assert_str_eq(c.pricing_file, "");
}
END_TEST

/* --set errors: no '=', unknown key; both say where they came from. */
START_TEST(test_set_errors)
{
    struct conf c;
    char err[512];
    ck_assert_int_eq(set1(&c, "port", err, sizeof(err)), -1);
    ck_assert_contains(err, "--set");
    ck_assert_contains(err, "\"port\"");
    ck_assert_int_eq(set1(&c, "nope=1", err, sizeof(err)), -1);
    ck_assert_contains(err, "--set: ");
    ck_assert_contains(err, "\"nope\"");
    ck_assert_int_eq(set1(&c, " port = 81 ", err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 81);
}
END_TEST

/* A --set applied after the file overrides the file's value. */
START_TEST(test_set_overrides_file)
{
    const char *path = write_file("tokentap.conf", "port = 9090\n"
                                                   "log_level = warn\n");
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, path, 0, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_set(&c, "port=9191", err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 9191);
    ck_assert_str_eq(c.log_level, "warn");
}
END_TEST

/* conf_from_args: --data, -c, repeated --set, and leftover arguments by
 * index. */
START_TEST(test_from_args)
{
    char data[PATH_MAX], conffile[PATH_MAX];
    snprintf(data, sizeof(data), "%s/data", tmpdir);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    snprintf(conffile, sizeof(conffile), "%s",
             write_file("other.conf", "port = 9090\napi_threads = 12\n"
                                      "log_level = warn\n"));
    char *argv[] = {"prog",
                    "--data",
                    data,
                    "first",
                    "-c",
                    conffile,
                    "--set",
                    "port=9191",
                    "--unknown",
                    "--set",
                    "log_level=error",
                    "last",
                    NULL};
    int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
    int rest[8];
    struct conf c;
    char err[512] = "";
    int n = conf_from_args(&c, argc, argv, rest, 8, err, sizeof(err));
    ck_assert_msg(n == 3, "conf_from_args returned %d (%s)", n, err);
    ck_assert_int_eq(rest[0], 3);
    ck_assert_int_eq(rest[1], 8);
    ck_assert_int_eq(rest[2], 11);
    ck_assert_str_eq(c.data_dir, data);
    ck_assert_int_eq(c.port, 9191);         /* --set beats the file */
    ck_assert_int_eq(c.api_threads, 12);    /* from -c */
    ck_assert_str_eq(c.log_level, "error"); /* the second --set */
    ck_assert_str_ne(c.shm_name, "");       /* conf_finish ran */
}
END_TEST

/* Without -c, the file is DATA/tokentap.conf; it may not set data_dir
 * (only --data chooses the directory), and says so with its line. */
START_TEST(test_from_args_default_file)
{
    char data[PATH_MAX], cf[PATH_MAX + 32];
    snprintf(data, sizeof(data), "%s/d", tmpdir);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    snprintf(cf, sizeof(cf), "%s/tokentap.conf", data);
    FILE *f = fopen(cf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "port = 4444\ndata_dir = /elsewhere\n");
    fclose(f);
    char *argv[] = {"prog", "--data", data, NULL};
    int rest[1];
    struct conf c;
    char err[512] = "";
    ck_assert_int_eq(conf_from_args(&c, 3, argv, rest, 1, err, sizeof(err)),
                     -1);
    ck_assert_contains(err, "tokentap.conf:2:");
    ck_assert_contains(err, "use --data");
    f = fopen(cf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "port = 4444 # the test port\n");
    fclose(f);
    ck_assert_msg(conf_from_args(&c, 3, argv, rest, 1, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(c.port, 4444);
    ck_assert_str_eq(c.data_dir, data);
}
END_TEST

/* Too many leftover arguments and a bad --set both fail with a message. */
START_TEST(test_from_args_errors)
{
    char data[PATH_MAX];
    snprintf(data, sizeof(data), "%s", tmpdir);
    char *argv1[] = {"prog", "--data", data, "a", "b", NULL};
    int rest[1];
    struct conf c;
    char err[512] = "";
    ck_assert_int_eq(conf_from_args(&c, 5, argv1, rest, 1, err, sizeof(err)),
                     -1);
    ck_assert_contains(err, "\"b\"");
    char *argv2[] = {"prog", "--data", data, "--set", "port=0", NULL};
    ck_assert_int_eq(conf_from_args(&c, 5, argv2, rest, 1, err, sizeof(err)),
                     -1);
    ck_assert_contains(err, "invalid value \"0\" for \"port\"");
    write_file("tokentap.conf", "port = x\n");
    char *argv3[] = {"prog", "--data", data, NULL};
    ck_assert_int_eq(conf_from_args(&c, 3, argv3, rest, 1, err, sizeof(err)),
                     -1);
    ck_assert_contains(err, "tokentap.conf:1:");
}
END_TEST

/* conf_finish makes relative paths absolute against the current
 * directory. */
START_TEST(test_finish_absolute)
{
    char cwd[PATH_MAX], want[PATH_MAX + 64], err[512] = "";
    ck_assert_int_eq(chdir(tmpdir), 0);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    struct conf c;
    conf_defaults(&c);
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/var", cwd);
    ck_assert_str_eq(c.data_dir, want); /* "./var" */

    conf_defaults(&c);
    ck_assert_int_eq(conf_set(&c, "data_dir=state", err, sizeof(err)), -1);
    snprintf(c.data_dir, sizeof(c.data_dir), "state");
    ck_assert_int_eq(
        conf_set(&c, "pricing_file=p/catalog.json", err, sizeof(err)), 0);
    ck_assert_int_eq(
        conf_set(&c, "pricing_override=./o.json", err, sizeof(err)), 0);
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/state", cwd);
    ck_assert_str_eq(c.data_dir, want);
    snprintf(want, sizeof(want), "%s/p/catalog.json", cwd);
    ck_assert_str_eq(c.pricing_file, want);
    snprintf(want, sizeof(want), "%s/o.json", cwd);
    ck_assert_str_eq(c.pricing_override, want);

    conf_defaults(&c);
    snprintf(c.data_dir, sizeof(c.data_dir), "/abs/dir");
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.data_dir, "/abs/dir");
}
END_TEST

/* The derived shm name depends only on data_dir: same dir, same name;
 * two dirs, two names; and it passes the shm_name validator. */
START_TEST(test_finish_shm_name)
{
    struct conf a, b, a2;
    char err[512] = "", kv[128];
    conf_defaults(&a);
    conf_defaults(&a2);
    conf_defaults(&b);
    snprintf(a.data_dir, sizeof(a.data_dir), "/srv/tokentap/one");
    snprintf(a2.data_dir, sizeof(a2.data_dir), "/srv/tokentap/one");
    conf_set(&a2, "port=9999", err, sizeof(err));
    snprintf(b.data_dir, sizeof(b.data_dir), "/srv/tokentap/two");
    ck_assert_int_eq(conf_finish(&a, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_finish(&a2, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_finish(&b, err, sizeof(err)), 0);
    ck_assert_str_eq(a.shm_name, a2.shm_name);
    ck_assert_str_ne(a.shm_name, b.shm_name);
    ck_assert_int_eq(a.shm_name[0], '/');
    ck_assert_ptr_null(strchr(a.shm_name + 1, '/'));
    snprintf(kv, sizeof(kv), "shm_name=%s", a.shm_name);
    ck_assert_msg(set1(&b, kv, err, sizeof(err)) == 0,
                  "derived name refused: %s", err);
    /* A second finish keeps the name. */
    char first[64];
    snprintf(first, sizeof(first), "%s", a.shm_name);
    ck_assert_int_eq(conf_finish(&a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.shm_name, first);
}
END_TEST

/* An explicit shm_name is kept by conf_finish. */
START_TEST(test_finish_keeps_shm_name)
{
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    conf_set(&c, "shm_name=/mine", err, sizeof(err));
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/mine");
}
END_TEST

/* Two real temp directories give two different derived names. */
START_TEST(test_finish_two_dirs)
{
    char d1[256], d2[256], err[512] = "";
    snprintf(d1, sizeof(d1), "%.200s/one", tmpdir);
    snprintf(d2, sizeof(d2), "%.200s/two", tmpdir);
    ck_assert_int_eq(mkdir(d1, 0700), 0);
    ck_assert_int_eq(mkdir(d2, 0700), 0);
    struct conf a, b;
    conf_defaults(&a);
    conf_defaults(&b);
    snprintf(a.data_dir, sizeof(a.data_dir), "%s", d1);
    snprintf(b.data_dir, sizeof(b.data_dir), "%s", d2);
    ck_assert_int_eq(conf_finish(&a, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_finish(&b, err, sizeof(err)), 0);
    ck_assert_str_ne(a.shm_name, b.shm_name);
}
END_TEST

/* pricing_override defaults to DATA/pricing.json; an explicit one stays. */
START_TEST(test_finish_pricing_override)
{
    struct conf c;
    char err[512] = "";
    conf_defaults(&c);
    snprintf(c.data_dir, sizeof(c.data_dir), "/srv/tt");
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.pricing_override, "/srv/tt/pricing.json");

    conf_defaults(&c);
    snprintf(c.data_dir, sizeof(c.data_dir), "/srv/tt");
    conf_set(&c, "pricing_override=/etc/tt/prices.json", err, sizeof(err));
    ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.pricing_override, "/etc/tt/prices.json");
}
END_TEST

/* conf_describe documents every option with its default. */
START_TEST(test_describe)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    conf_describe(f);
    fclose(f);
    ck_assert_contains(text, "# port = 8080");
    ck_assert_contains(text, "# log_level = info");
    ck_assert_contains(text, "# live_seconds = 3660");
    ck_assert_contains(text, "(1..65535)");
    free(text);
}
END_TEST

/* Build the suite. */
static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_file_syntax);
    tcase_add_test(tc, test_file_last_wins);
    tcase_add_test(tc, test_file_empty_quotes);
    tcase_add_test(tc, test_file_long_comment);
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_bad_value_message);
    tcase_add_test(tc, test_line_without_equals);
    tcase_add_test(tc, test_int_bounds);
    tcase_add_test(tc, test_not_an_integer);
    tcase_add_test(tc, test_enum_words);
    tcase_add_test(tc, test_listen_address);
    tcase_add_test(tc, test_shm_name_rules);
    tcase_add_test(tc, test_shm_name_slash_only);
    tcase_add_test(tc, test_path_too_long);
    tcase_add_test(tc, test_set_errors);
    tcase_add_test(tc, test_set_overrides_file);
    tcase_add_test(tc, test_from_args);
    tcase_add_test(tc, test_from_args_default_file);
    tcase_add_test(tc, test_from_args_errors);
    tcase_add_test(tc, test_finish_absolute);
    tcase_add_test(tc, test_finish_shm_name);
    tcase_add_test(tc, test_finish_keeps_shm_name);
    tcase_add_test(tc, test_finish_two_dirs);
    tcase_add_test(tc, test_finish_pricing_override);
    tcase_add_test(tc, test_describe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
