/*
 * check_mapvfs.c: the API's mapping VFS (fcgi-app/mapvfs.c).
 *
 * A reader through the VFS must see exactly what a reader through the
 * default VFS sees, while a writer (the default VFS, as the collector)
 * commits in WAL mode and grows the file past the mapping; its reads must
 * really come from the mapping; and files that are not main databases, or
 * reads past the end, must behave as SQLite expects.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TESTDIR_NAME "tt-mapvfs"
#include "testutil.h"

#include "mapvfs.h"

static sqlite3 *open_writer(const char *path)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF");
    return db;
}

static sqlite3 *open_reader(const char *path, const char *vfs)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, vfs),
                     SQLITE_OK);
    return db;
}

/* The sum over t's rows, and their number, through db. */
static void sums(sqlite3 *db, long long *n, long long *sum)
{
    *n = q_int(db, "SELECT count(*) FROM t");
    *sum = q_int(db, "SELECT total(length(v) * k) FROM t");
}

/* While a writer grows the file many times over, a mapped reader and a
 * plain reader agree after every commit, and the mapped one reads through
 * the mapping. */
START_TEST(test_grows_and_agrees)
{
    const char *path = tmp_path("grow.db");
    ck_assert_int_eq(mapvfs_register(), 0);
    sqlite3 *w = open_writer(path);
    exec_sql(w, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);"
                "CREATE INDEX t_v ON t(v)");
    sqlite3 *mapped = open_reader(path, MAPVFS_NAME);
    sqlite3 *plain = open_reader(path, NULL);
    uint64_t m0, f0, m1, f1;
    mapvfs_counts(&m0, &f0);
    sqlite3_stmt *ins;
    ck_assert_int_eq(
        sqlite3_prepare_v2(w, "INSERT INTO t(v) VALUES(?)", -1, &ins, NULL),
        SQLITE_OK);
    char blob[700];
    for (int round = 0; round < 40; round++) {
        exec_sql(w, "BEGIN");
        for (int i = 0; i < 300; i++) {
            for (size_t j = 0; j < sizeof(blob); j++)
                blob[j] = (char)(round * 31 + i * 7 + j);
            sqlite3_bind_blob(ins, 1, blob, 100 + (round * 37 + i) % 600,
                              SQLITE_STATIC);
            ck_assert_int_eq(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        exec_sql(w, "COMMIT");
        /* Move the pages into the database file now and then, as the
         * collector's checkpointer does. */
        if (round % 3 == 0)
            exec_sql(w, "PRAGMA wal_checkpoint(PASSIVE)");
        long long n1, s1, n2, s2;
        sums(mapped, &n1, &s1);
        sums(plain, &n2, &s2);
        ck_assert_int_eq(n1, (round + 1) * 300);
        ck_assert_int_eq(n1, n2);
        ck_assert_int_eq(s1, s2);
        ck_assert_int_eq(q_int(mapped, "SELECT count(*) FROM "
                                       "pragma_integrity_check WHERE "
                                       "integrity_check != 'ok'"),
                         0);
    }
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, 4 << 20); /* many times the first size */
    mapvfs_counts(&m1, &f1);
    ck_assert_msg(m1 - m0 > 1000, "only %llu reads came from the mapping",
                  (unsigned long long)(m1 - m0));
    sqlite3_finalize(ins);
    sqlite3_close(mapped);
    sqlite3_close(plain);
    sqlite3_close(w);
}
END_TEST

/* A reader through the VFS keeps its snapshot inside a read transaction
 * while the writer commits and checkpoints: the mapping shows the file as
 * it is, SQLite's WAL logic decides what the reader sees. */
START_TEST(test_snapshot_holds)
{
    const char *path = tmp_path("snap.db");
    ck_assert_int_eq(mapvfs_register(), 0);
    sqlite3 *w = open_writer(path);
    exec_sql(w, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);"
                "INSERT INTO t(v) VALUES(zeroblob(3000)), (zeroblob(3000))");
    sqlite3 *r = open_reader(path, MAPVFS_NAME);
    exec_sql(r, "BEGIN");
    ck_assert_int_eq(q_int(r, "SELECT count(*) FROM t"), 2);
    exec_sql(w, "INSERT INTO t(v) SELECT zeroblob(3000) FROM t, t, t, t;"
                "PRAGMA wal_checkpoint(PASSIVE)");
    ck_assert_int_eq(q_int(r, "SELECT count(*) FROM t"), 2);
    exec_sql(r, "COMMIT");
    ck_assert_int_eq(q_int(r, "SELECT count(*) FROM t"), 18);
    sqlite3_close(r);
    sqlite3_close(w);
}
END_TEST

/* Opening what is not there fails as with the default VFS; a database
 * made empty reads as empty; temporary files (a sort spilling to disk)
 * work. */
START_TEST(test_edges)
{
    ck_assert_int_eq(mapvfs_register(), 0);
    ck_assert_int_eq(mapvfs_register(), 0); /* twice is fine */
    sqlite3 *db;
    ck_assert_int_ne(sqlite3_open_v2(tmp_path("none.db"), &db,
                                     SQLITE_OPEN_READONLY, MAPVFS_NAME),
                     SQLITE_OK);
    sqlite3_close(db);
    FILE *f = fopen(tmp_path("empty.db"), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    db = open_reader(tmp_path("empty.db"), MAPVFS_NAME);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
    sqlite3_close(db);
    /* Read-write through the VFS: temporary b-trees and the journal go
     * to the default VFS's files. */
    ck_assert_int_eq(sqlite3_open_v2(tmp_path("rw.db"), &db,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     MAPVFS_NAME),
                     SQLITE_OK);
    exec_sql(db,
             "PRAGMA temp_store=FILE; PRAGMA cache_size=10;"
             "CREATE TABLE t(a); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
             "SELECT x + 1 FROM c WHERE x < 20000) INSERT INTO t SELECT "
             "hex(randomblob(40)) FROM c");
    ck_assert_int_eq(
        q_int(db, "SELECT count(*) FROM (SELECT a FROM t ORDER BY a)"), 20000);
    sqlite3_close(db);
}
END_TEST

static Suite *mapvfs_suite(void)
{
    Suite *s = suite_create("mapvfs");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_grows_and_agrees);
    tcase_add_test(tc, test_snapshot_holds);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mapvfs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
