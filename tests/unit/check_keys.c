/*
 * check_keys.c: unit tests for API keys (common/keys.h): their format,
 * their SHA-256 hashes, roles and workspace names.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* A generated key is "tt_" and 40 lower-case hex characters. */
START_TEST(test_generate_format)
{
    char key[KEY_LEN + 1];
    memset(key, 'x', sizeof(key));
    ck_assert_int_eq(key_generate(key), 0);
    ck_assert_uint_eq(strlen(key), KEY_LEN);
    ck_assert_mem_eq(key, "tt_", 3);
    for (int i = 3; i < KEY_LEN; i++)
        ck_assert_msg(strchr("0123456789abcdef", key[i]) != NULL,
                      "key %s has '%c' at %d", key, key[i], i);
    ck_assert_int_eq(key_well_formed(key, strlen(key)), 1);
}
END_TEST

/* qsort comparator for key strings. */
static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Many generated keys are all different (160 random bits each). */
START_TEST(test_generate_unique)
{
    enum { N = 2000 };
    static char keys[N][KEY_LEN + 1];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(key_generate(keys[i]), 0);
    /* Sort, then compare neighbours: one assert per pair would be slow. */
    qsort(keys, N, sizeof(keys[0]), cmp_key);
    int same = -1;
    for (int i = 0; i + 1 < N && same < 0; i++)
        if (strcmp(keys[i], keys[i + 1]) == 0)
            same = i;
    ck_assert_msg(same < 0, "key %s generated twice",
                  keys[same < 0 ? 0 : same]);
}
END_TEST

/* The listing prefix is the first KEY_PREFIX_LEN characters: "tt_" and 8
 * hex, and different keys almost always have different prefixes. */
START_TEST(test_prefix)
{
    char a[KEY_LEN + 1], b[KEY_LEN + 1];
    ck_assert_int_eq(key_generate(a), 0);
    ck_assert_int_eq(key_generate(b), 0);
    ck_assert_int_eq(KEY_PREFIX_LEN, 11);
    ck_assert_mem_eq(a, "tt_", 3);
    ck_assert_msg(memcmp(a, b, KEY_PREFIX_LEN) != 0,
                  "two keys share the prefix %.11s", a);
}
END_TEST

/* key_hash is the lower-case hex SHA-256 of its input (FIPS 180-2 vectors). */
START_TEST(test_hash_known_vectors)
{
    char hex[KEY_HASH_HEX + 1];
    key_hash("abc", 3, hex);
    ck_assert_str_eq(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    key_hash("", 0, hex);
    ck_assert_str_eq(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_uint_eq(strlen(hex), KEY_HASH_HEX);
}
END_TEST

/* key_hash uses exactly len bytes, not the string up to its NUL. */
START_TEST(test_hash_uses_len)
{
    char h1[KEY_HASH_HEX + 1], h2[KEY_HASH_HEX + 1];
    key_hash("abcdef", 3, h1);
    key_hash("abc", 3, h2);
    ck_assert_str_eq(h1, h2);
    key_hash("abcdef", 6, h2);
    ck_assert_str_ne(h1, h2);
}
END_TEST

/* Two different keys hash differently and the same key hashes the same. */
START_TEST(test_hash_of_keys)
{
    char a[KEY_LEN + 1], b[KEY_LEN + 1];
    char ha[KEY_HASH_HEX + 1], ha2[KEY_HASH_HEX + 1], hb[KEY_HASH_HEX + 1];
    ck_assert_int_eq(key_generate(a), 0);
    ck_assert_int_eq(key_generate(b), 0);
    key_hash(a, KEY_LEN, ha);
    key_hash(a, KEY_LEN, ha2);
    key_hash(b, KEY_LEN, hb);
    ck_assert_str_eq(ha, ha2);
    ck_assert_str_ne(ha, hb);
}
END_TEST

/* key_well_formed rejects a wrong prefix. */
START_TEST(test_well_formed_prefix)
{
    const char *ok = "tt_0123456789abcdef0123456789abcdef01234567";
    ck_assert_int_eq(key_well_formed(ok, strlen(ok)), 1);
    const char *bad[] = {
        "tx_0123456789abcdef0123456789abcdef01234567",
        "TT_0123456789abcdef0123456789abcdef01234567",
        "tt-0123456789abcdef0123456789abcdef01234567",
        "sk_0123456789abcdef0123456789abcdef01234567",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(key_well_formed(bad[i], strlen(bad[i])) == 0,
                      "accepted \"%s\"", bad[i]);
}
END_TEST

/* key_well_formed rejects a key one character short or long, or empty. */
START_TEST(test_well_formed_length)
{
    const char *ok = "tt_0123456789abcdef0123456789abcdef01234567";
    ck_assert_int_eq(key_well_formed(ok, KEY_LEN - 1), 0);
    const char *longer = "tt_0123456789abcdef0123456789abcdef012345678";
    ck_assert_int_eq(key_well_formed(longer, strlen(longer)), 0);
    ck_assert_int_eq(key_well_formed("", 0), 0);
    ck_assert_int_eq(key_well_formed("tt_", 3), 0);
}
END_TEST

/* key_well_formed rejects upper case, non-hex, spaces and embedded NULs. */
START_TEST(test_well_formed_characters)
{
    const char *bad[] = {
        "tt_0123456789ABCDEF0123456789abcdef01234567",
        "tt_0123456789abcdeg0123456789abcdef01234567",
        "tt_0123456789abcdef0123456789abcdef0123456 ",
        "tt_0123456789abcdef01234567-9abcdef01234567",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(key_well_formed(bad[i], strlen(bad[i])) == 0,
                      "accepted \"%s\"", bad[i]);
    char nul[KEY_LEN + 1] = "tt_0123456789abcdef0123456789abcdef01234567";
    nul[20] = '\0';
    ck_assert_int_eq(key_well_formed(nul, KEY_LEN), 0);
}
END_TEST

/* Every role parses from its name and back. */
START_TEST(test_role_round_trip)
{
    enum key_role roles[] = {KEY_ROLE_INGEST, KEY_ROLE_READ, KEY_ROLE_ADMIN};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        ck_assert_int_eq(key_role_parse(key_role_name(roles[i])), roles[i]);
    ck_assert_str_eq(key_role_name(KEY_ROLE_ADMIN), "admin");
    ck_assert_str_eq(key_role_name(KEY_ROLE_READ), "read");
    ck_assert_str_eq(key_role_name(KEY_ROLE_INGEST), "ingest");
}
END_TEST

/* Unknown role names, including case variants, are KEY_ROLE_NONE. */
START_TEST(test_role_unknown)
{
    const char *bad[] = {"", "Admin", "ADMIN", "root", "admin ", "write"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(key_role_parse(bad[i]) == KEY_ROLE_NONE,
                      "\"%s\" parsed as %d", bad[i], key_role_parse(bad[i]));
    ck_assert_str_eq(key_role_name(KEY_ROLE_NONE), "none");
}
END_TEST

/* Valid workspace names: 1..64 of [a-z0-9_-], first a letter or digit. */
START_TEST(test_workspace_valid)
{
    const char *ok[] = {"default",
                        "a",
                        "0",
                        "team-a",
                        "team_b",
                        "x1-2_3",
                        "a234567890123456789012345678901234567890"
                        "123456789012345678901234"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(key_workspace_ok(ok[i]) == 1, "rejected \"%s\"", ok[i]);
    ck_assert_uint_eq(strlen(ok[6]), 64);
}
END_TEST

/* Invalid workspace names are refused. */
START_TEST(test_workspace_invalid)
{
    const char *bad[] = {"",
                         "-a",
                         "_a",
                         "Team",
                         "a b",
                         "a/b",
                         "a.b",
                         "caf\xc3\xa9",
                         "a234567890123456789012345678901234567890"
                         "1234567890123456789012345"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(key_workspace_ok(bad[i]) == 0, "accepted \"%s\"", bad[i]);
}
END_TEST

/* Build the suite. */
static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_generate_format);
    tcase_add_test(tc, test_generate_unique);
    tcase_add_test(tc, test_prefix);
    tcase_add_test(tc, test_hash_known_vectors);
    tcase_add_test(tc, test_hash_uses_len);
    tcase_add_test(tc, test_hash_of_keys);
    tcase_add_test(tc, test_well_formed_prefix);
    tcase_add_test(tc, test_well_formed_length);
    tcase_add_test(tc, test_well_formed_characters);
    tcase_add_test(tc, test_role_round_trip);
    tcase_add_test(tc, test_role_unknown);
    tcase_add_test(tc, test_workspace_valid);
    tcase_add_test(tc, test_workspace_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keys_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
