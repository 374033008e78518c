/*
 * check_token.c: unit tests for tt-api's signed tokens, the Cookie header
 * reader and the session secret's file (fcgi-app/token.h).
 *
 * The promises under test: a token made under a secret checks under that
 * secret only, until its expiry and not a second after; any change to any
 * part (subject, expiry, MAC) or any other spelling of it is refused; the
 * MAC is HMAC-SHA256 of "<subject>.<expiry>" (a known answer); every
 * cookie of a name is found, and no other; the secret file is made once,
 * private, and read back the same, and a file of the wrong size is an
 * error that names it.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TESTDIR_NAME "tt-token"
#include "testutil.h"
#include "token.h"

static unsigned char secret[TOK_SECRET_LEN];

/* secret = 0, 1, ..., 31. */
static void secret_setup(void)
{
    for (int i = 0; i < TOK_SECRET_LEN; i++)
        secret[i] = (unsigned char)i;
}

/* Check t (a string) at now; 0 or -1, subject into subj (24 bytes). */
static int check(const char *t, long long now, char *subj, long long *exp)
{
    return tok_check(secret, sizeof(secret), t, strlen(t), now, subj, 24, exp);
}

/* The MAC is the hex HMAC-SHA256 of "<subject>.<expiry>" (the value from
 * Python's hmac module). */
START_TEST(test_known_answer)
{
    char t[TOK_MAX];
    ck_assert_int_eq(
        tok_make(secret, sizeof(secret), "7", 1795352249, t, sizeof(t)), 0);
    ck_assert_str_eq(t, "7.1795352249."
                        "fb096351192b787ec0c3c2355f7881a985a89679526e45be95ab20"
                        "62be37cb8f");
}
END_TEST

/* A token checks until its expiry (included), giving back its parts. */
START_TEST(test_round_trip_and_expiry)
{
    char t[TOK_MAX], subj[24];
    long long exp = 0;
    ck_assert_int_eq(
        tok_make(secret, sizeof(secret), "team-a", 1000, t, sizeof(t)), 0);
    ck_assert_int_eq(check(t, 999, subj, &exp), 0);
    ck_assert_str_eq(subj, "team-a");
    ck_assert_int_eq(exp, 1000);
    ck_assert_int_eq(check(t, 1000, subj, &exp), 0);
    ck_assert_int_eq(check(t, 1001, subj, &exp), -1);
}
END_TEST

/* Changing any one character of a token, or the secret, breaks it. */
START_TEST(test_any_change_refused)
{
    char t[TOK_MAX], subj[24];
    long long exp;
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "42", 2000, t, sizeof(t)),
                     0);
    size_t n = strlen(t);
    for (size_t i = 0; i < n; i++) {
        char u[TOK_MAX];
        memcpy(u, t, n + 1);
        if (u[i] == '.')
            continue;
        u[i] = u[i] == '1' ? '2' : '1';
        ck_assert_msg(check(u, 0, subj, &exp) == -1, "%s checked", u);
    }
    unsigned char other[TOK_SECRET_LEN];
    memcpy(other, secret, sizeof(other));
    other[31] ^= 1;
    ck_assert_int_eq(tok_check(other, sizeof(other), t, n, 0, subj, 24, &exp),
                     -1);
    /* Only the first len bytes count: a prefix is not a token. */
    ck_assert_int_eq(
        tok_check(secret, sizeof(secret), t, n - 1, 0, subj, 24, &exp), -1);
}
END_TEST

/* Other spellings of a valid token are refused: a leading zero, upper-case
 * hex, more or fewer parts, an empty subject, a subject too long for the
 * caller's buffer. */
START_TEST(test_malformed)
{
    char t[TOK_MAX], u[TOK_MAX + 8], subj[24];
    long long exp;
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "5", 900, t, sizeof(t)),
                     0);
    snprintf(u, sizeof(u), "5.0900.%s", t + 6);
    ck_assert_int_eq(check(u, 0, subj, &exp), -1);
    snprintf(u, sizeof(u), "%s", t);
    for (char *p = u + 6; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    ck_assert_int_eq(check(u, 0, subj, &exp), -1);
    snprintf(u, sizeof(u), "%s.", t);
    ck_assert_int_eq(check(u, 0, subj, &exp), -1);
    snprintf(u, sizeof(u), "5.%s", t + 6);
    ck_assert_int_eq(check(u, 0, subj, &exp), -1);
    ck_assert_int_eq(check("", 0, subj, &exp), -1);
    ck_assert_int_eq(check("..", 0, subj, &exp), -1);
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "x", -1, t, sizeof(t)),
                     -1);
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "", 1, t, sizeof(t)), -1);
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "a.b", 1, t, sizeof(t)),
                     -1);
    ck_assert_int_eq(tok_make(secret, sizeof(secret), "a", 1, t, 60), -1);
    const char *longsub = "abcdefghijklmnopqrstuvwxyz";
    ck_assert_int_eq(tok_make(secret, sizeof(secret), longsub, 1, t, sizeof(t)),
                     0);
    ck_assert_int_eq(check(t, 0, subj, &exp), -1); /* 24-byte subj */
    ck_assert_int_eq(
        tok_check(secret, sizeof(secret), t, strlen(t), 0, u, sizeof(u), &exp),
        0);
    ck_assert_str_eq(u, longsub);
}
END_TEST

/* The next cookie value of name from p (as a string in buf), or NULL. */
static const char *next(const char **p, const char *name, char *buf)
{
    size_t len;
    const char *v = tok_cookie_next(p, name, &len);
    if (v == NULL)
        return NULL;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

/* Every cookie of the name, in order; not one whose name only starts or
 * ends like it. */
START_TEST(test_cookie_header)
{
    char buf[64];
    const char *h = "xtt_session=1; tt_sessionx=2;tt_session=3; a=b;  "
                    "tt_session=\"4\" ; tt_session=";
    ck_assert_str_eq(next(&h, "tt_session", buf), "3");
    ck_assert_str_eq(next(&h, "tt_session", buf), "4");
    ck_assert_str_eq(next(&h, "tt_session", buf), "");
    ck_assert_ptr_null(next(&h, "tt_session", buf));
    ck_assert_ptr_null(next(&h, "tt_session", buf));
    h = "";
    ck_assert_ptr_null(next(&h, "tt_session", buf));
    h = "a=1; b=2";
    ck_assert_ptr_null(next(&h, "tt_session", buf));
    h = "tt_session";
    ck_assert_ptr_null(next(&h, "tt_session", buf));
    h = "tt_session=7.8.9";
    ck_assert_str_eq(next(&h, "tt_session", buf), "7.8.9");
}
END_TEST

/* The number of entries in dir besides . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* The first load makes a private 32-byte file and nothing else; the next
 * reads the same secret. */
START_TEST(test_secret_made_then_read)
{
    unsigned char a[TOK_SECRET_LEN], b[TOK_SECRET_LEN];
    char err[512] = "";
    const char *path = tmp_path("session.secret");
    ck_assert_msg(tok_secret_load(path, a, err, sizeof(err)) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, TOK_SECRET_LEN);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    memset(b, 0, sizeof(b));
    ck_assert_msg(tok_secret_load(path, b, err, sizeof(err)) == 0, "%s", err);
    ck_assert_mem_eq(a, b, TOK_SECRET_LEN);
    static const unsigned char zero[TOK_SECRET_LEN];
    ck_assert_int_ne(memcmp(a, zero, sizeof(zero)), 0);
}
END_TEST

/* A file of another size is an error naming it; so is a directory that
 * does not exist. */
START_TEST(test_secret_bad_file)
{
    unsigned char a[TOK_SECRET_LEN];
    char err[512] = "";
    const char *path = tmp_path("session.secret");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("short", f);
    fclose(f);
    ck_assert_int_eq(tok_secret_load(path, a, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, "5 bytes") != NULL,
                  "%s", err);
    ck_assert_int_eq(tok_secret_load(tmp_path("no/such/dir/session.secret"), a,
                                     err, sizeof(err)),
                     -1);
    ck_assert_msg(strstr(err, "no/such/dir") != NULL, "%s", err);
}
END_TEST

/* Build the suite. */
static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("tokens");
    tcase_add_checked_fixture(tc, secret_setup, NULL);
    tcase_add_test(tc, test_known_answer);
    tcase_add_test(tc, test_round_trip_and_expiry);
    tcase_add_test(tc, test_any_change_refused);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_cookie_header);
    suite_add_tcase(s, tc);

    tc = tcase_create("secret");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, NULL);
    tcase_add_test(tc, test_secret_made_then_read);
    tcase_add_test(tc, test_secret_bad_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(token_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
