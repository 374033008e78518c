/*
 * testutil.h: what the Check suites share: temporary directories and
 * one-value SQL queries (plain or printf-formatted).
 *
 * Directories: base_setup/base_teardown make and remove one directory per
 * test case (unchecked fixtures: they run in the runner's process, so the
 * directory goes even when a test crashes), tmp_setup one per test inside
 * it; a suite with a single directory uses testdir_make/testdir_remove,
 * and one with a directory per test and no base tmpdir_setup and
 * tmpdir_teardown.
 * A suite defines TESTDIR_NAME (e.g. "tt-store") before including this.
 * Everything is static inline: a suite uses what it needs.
 */
#ifndef TT_TESTUTIL_H
#define TT_TESTUTIL_H

#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#ifndef TESTDIR_NAME
#error "define TESTDIR_NAME before including testutil.h"
#endif

static char basedir[200], tmpdir[256];

/* Make dir (n bytes) as TMPDIR/TESTDIR_NAME-XXXXXX; 0, or -1 ("" in dir). */
static inline int testdir_make(char *dir, size_t n)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/" TESTDIR_NAME "-XXXXXX",
             base && base[0] ? base : "/tmp");
    if (mkdtemp(dir) != NULL)
        return 0;
    dir[0] = '\0';
    return -1;
}

/* Remove one file or directory (an nftw visitor). */
static inline int testdir_rm_entry(const char *path, const struct stat *st,
                                   int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove dir and everything in it (nothing when dir is ""). */
static inline void testdir_remove(char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, testdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

static inline void base_setup(void)
{
    testdir_make(basedir, sizeof(basedir));
}

static inline void base_teardown(void)
{
    testdir_remove(basedir);
}

/* This test's own directory, tmpdir, with no basedir (a checked fixture:
 * it runs in the test's process). */
static inline void tmpdir_setup(void)
{
    ck_assert_int_eq(testdir_make(tmpdir, sizeof(tmpdir)), 0);
}

static inline void tmpdir_teardown(void)
{
    testdir_remove(tmpdir);
}

/* This test's directory inside basedir (a checked fixture). */
static inline void tmp_setup(void)
{
    ck_assert_msg(basedir[0] != '\0', "no base temporary directory");
    snprintf(tmpdir, sizeof(tmpdir), "%s/t-XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* The path of name inside this test's directory (static buffer). */
static inline const char *tmp_path(const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

/* Run a query that returns one integer (0 for NULL). */
static inline long long q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: no row", sql);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Run a query that returns one text value ("" for NULL; a static
 * buffer). */
static inline const char *q_text(sqlite3 *db, const char *sql)
{
    static char out[4096];
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: no row", sql);
    const char *t = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, sizeof(out), "%s", t ? t : "");
    sqlite3_finalize(st);
    return out;
}

/* Format SQL into sql (n bytes), asserting that it fits. */
static inline void sql_vformat(char *sql, size_t n, const char *fmt, va_list ap)
{
    int len = vsnprintf(sql, n, fmt, ap);
    ck_assert_msg(len >= 0 && (size_t)len < n, "SQL too long: %s", sql);
}

/* q_int on printf-formatted SQL. */
__attribute__((format(printf, 2, 3))) static inline long long
q_intf(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    sql_vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return q_int(db, sql);
}

/* q_text on printf-formatted SQL. */
__attribute__((format(printf, 2, 3))) static inline const char *
q_textf(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    sql_vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return q_text(db, sql);
}

/* Run SQL that must work. */
static inline void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

/* tmpdir's tokentap.db (a static buffer). */
static inline const char *tmp_db_path(void)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/tokentap.db", tmpdir);
    return path;
}

#endif
