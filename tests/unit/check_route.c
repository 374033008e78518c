/*
 * check_route.c: unit tests for tt-api's router (api_route_find in
 * fcgi-app/api.h), on small tables of its own and on the real api_routes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fcgi-app/ is not on the include path of the tests. */
#include "api.h"

/* Handlers of the test tables; never called. */
static int h_a(struct api_req *r)
{
    (void)r;
    return 0;
}

static int h_b(struct api_req *r)
{
    (void)r;
    return 1;
}

/* A small table in the shape of the real one. */
static const struct api_route table[] = {
    {"GET", "/health", KEY_ROLE_NONE, h_a},
    {"GET", "/k", KEY_ROLE_READ, h_a},
    {"POST", "/k", KEY_ROLE_ADMIN, h_b},
    {"DELETE", "/k/{id}", KEY_ROLE_ADMIN, h_b},
    {"GET", "/items/{id}/parts/{part}", KEY_ROLE_READ, h_a},
    {"GET", "/k/special", KEY_ROLE_READ, h_b},
    {NULL, NULL, 0, NULL},
};

/* Route method/path in t; fills found, params and allow. */
static enum api_match route(const struct api_route *t, const char *method,
                            const char *path, const struct api_route **found,
                            const char **params, char *allow, size_t allowlen)
{
    *found = NULL;
    for (int i = 0; i < 4; i++)
        params[i] = NULL;
    return api_route_find(t, method, path, found, params, allow, allowlen);
}

/* The length of a parameter: up to the next '/' or the end. */
static size_t param_len(const char *p)
{
    const char *slash = strchr(p, '/');
    return slash ? (size_t)(slash - p) : strlen(p);
}

/* An exact path and method finds its own route. */
START_TEST(test_exact_match)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    ck_assert_int_eq(
        route(table, "GET", "/health", &rt, params, allow, sizeof(allow)),
        API_FOUND);
    ck_assert_ptr_eq(rt, &table[0]);
    ck_assert_ptr_null(params[0]);
    ck_assert_int_eq(
        route(table, "POST", "/k", &rt, params, allow, sizeof(allow)),
        API_FOUND);
    ck_assert_ptr_eq(rt, &table[2]);
}
END_TEST

/* {x} captures one segment; the parameter points into the path and ends at
 * the next '/' or at the end. */
START_TEST(test_param_capture)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    const char *path = "/items/42/parts/x9-z";
    ck_assert_int_eq(
        route(table, "GET", path, &rt, params, allow, sizeof(allow)),
        API_FOUND);
    ck_assert_ptr_eq(rt, &table[4]);
    ck_assert_ptr_eq(params[0], path + 7);
    ck_assert_uint_eq(param_len(params[0]), 2);
    ck_assert_int_eq(strncmp(params[0], "42", 2), 0);
    ck_assert_ptr_eq(params[1], path + 16);
    ck_assert_str_eq(params[1], "x9-z");
    ck_assert_ptr_null(params[2]);

    const char *del = "/k/abc";
    ck_assert_int_eq(
        route(table, "DELETE", del, &rt, params, allow, sizeof(allow)),
        API_FOUND);
    ck_assert_ptr_eq(rt, &table[3]);
    ck_assert_ptr_eq(params[0], del + 3);
    ck_assert_str_eq(params[0], "abc");
}
END_TEST

/* A literal route listed after a parameter route still matches with its
 * own method. */
START_TEST(test_literal_after_param)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    ck_assert_int_eq(
        route(table, "GET", "/k/special", &rt, params, allow, sizeof(allow)),
        API_FOUND);
    ck_assert_ptr_eq(rt, &table[5]);
}
END_TEST

/* A parameter matches only a non-empty segment. */
START_TEST(test_param_not_empty)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    ck_assert_int_eq(
        route(table, "DELETE", "/k/", &rt, params, allow, sizeof(allow)),
        API_NOT_FOUND);
    ck_assert_int_eq(route(table, "GET", "/items//parts/1", &rt, params, allow,
                           sizeof(allow)),
                     API_NOT_FOUND);
    ck_assert_ptr_null(rt);
}
END_TEST

/* A trailing slash, a doubled slash or an extra segment does not match. */
START_TEST(test_trailing_slash)
{
    static const char *const paths[] = {
        "/health/", "//health", "/health//",
        "/k/7/",    "/k/7/x",   "/items/1/parts/2/",
        "/healthz", "/healt",   "",
        "/",        "health"};
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        enum api_match m =
            route(table, "GET", paths[i], &rt, params, allow, sizeof(allow));
        ck_assert_msg(m == API_NOT_FOUND, "GET \"%s\" gave %d, not 404",
                      paths[i], (int)m);
        ck_assert_str_eq(allow, "");
    }
}
END_TEST

/* A known path with another method is 405 and lists the allowed methods
 * in table order. */
START_TEST(test_bad_method_allow)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    ck_assert_int_eq(
        route(table, "PUT", "/k", &rt, params, allow, sizeof(allow)),
        API_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, POST");
    ck_assert_ptr_null(rt);
    ck_assert_int_eq(
        route(table, "GET", "/k/7", &rt, params, allow, sizeof(allow)),
        API_BAD_METHOD);
    ck_assert_str_eq(allow, "DELETE");
    /* Methods are case-sensitive. */
    ck_assert_int_eq(
        route(table, "get", "/health", &rt, params, allow, sizeof(allow)),
        API_BAD_METHOD);
    ck_assert_str_eq(allow, "GET");
}
END_TEST

/* An unknown path is 404 whatever the method. */
START_TEST(test_not_found)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[64];
    ck_assert_int_eq(
        route(table, "GET", "/nope", &rt, params, allow, sizeof(allow)),
        API_NOT_FOUND);
    ck_assert_int_eq(
        route(table, "DELETE", "/nope/7", &rt, params, allow, sizeof(allow)),
        API_NOT_FOUND);
    ck_assert_str_eq(allow, "");
}
END_TEST

/* A small Allow buffer is truncated, never overrun. */
START_TEST(test_allow_small_buffer)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[8];
    memset(allow, 'z', sizeof(allow));
    ck_assert_int_eq(route(table, "PUT", "/k", &rt, params, allow, 6),
                     API_BAD_METHOD);
    ck_assert_uint_le(strlen(allow), 5);
    ck_assert_int_eq(allow[6], 'z');
    ck_assert_int_eq(allow[7], 'z');
}
END_TEST

/* An empty table finds nothing. */
START_TEST(test_empty_table)
{
    static const struct api_route none[] = {{NULL, NULL, 0, NULL}};
    const struct api_route *rt;
    const char *params[4];
    char allow[16];
    ck_assert_int_eq(
        route(none, "GET", "/health", &rt, params, allow, sizeof(allow)),
        API_NOT_FOUND);
}
END_TEST

/* Replace every {x} segment of pattern with "7" into out. */
static void instantiate(const char *pattern, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < n;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            ck_assert_ptr_nonnull(close);
            out[o++] = '7';
            p = close + 1;
        } else
            out[o++] = *p++;
    }
    out[o] = '\0';
}

/* Every route of api_routes is reached by its own method and pattern (with
 * "7" for each parameter), and a parameter reads "7". */
START_TEST(test_real_routes_reachable)
{
    int n = 0;
    for (const struct api_route *want = api_routes; want->method; want++) {
        char path[256], allow[128];
        const struct api_route *rt;
        const char *params[4];
        instantiate(want->pattern, path, sizeof(path));
        enum api_match m = route(api_routes, want->method, path, &rt, params,
                                 allow, sizeof(allow));
        ck_assert_msg(m == API_FOUND, "%s %s (from %s) gave %d", want->method,
                      path, want->pattern, (int)m);
        ck_assert_msg(rt == want, "%s %s found %s %s instead", want->method,
                      path, rt->method, rt->pattern);
        for (int i = 0; i < 4 && params[i]; i++) {
            ck_assert_uint_eq(param_len(params[i]), 1);
            ck_assert_int_eq(params[i][0], '7');
        }
        ck_assert_ptr_nonnull(want->fn);
        n++;
    }
    ck_assert_int_ge(n, 10);
}
END_TEST

/* The real table answers 405 with the right Allow list and 404 for
 * near misses. */
START_TEST(test_real_routes_errors)
{
    const struct api_route *rt;
    const char *params[4];
    char allow[128];
    ck_assert_int_eq(route(api_routes, "PUT", "/api/v1/keys", &rt, params,
                           allow, sizeof(allow)),
                     API_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, POST");
    ck_assert_int_eq(route(api_routes, "GET", "/api/v1/keys/7", &rt, params,
                           allow, sizeof(allow)),
                     API_BAD_METHOD);
    ck_assert_str_eq(allow, "DELETE");
    ck_assert_int_eq(route(api_routes, "GET", "/api/v1/events", &rt, params,
                           allow, sizeof(allow)),
                     API_BAD_METHOD);
    ck_assert_str_eq(allow, "POST");
    static const char *const missing[] = {"/health/", "/api/v1/keys/",
                                          "/api/v1", "/api/v2/keys",
                                          "/api/v1/live/stats/"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        ck_assert_msg(route(api_routes, "GET", missing[i], &rt, params, allow,
                            sizeof(allow)) == API_NOT_FOUND,
                      "GET %s is not 404", missing[i]);
}
END_TEST

/* Public routes need no key and the rest need one: the health checks are
 * the only routes open to everyone, and nginx's stream check
 * (/_tt/ws-auth, internal; a key or a stream token) and the browser
 * session (/api/v1/session: a key in the body, or any role's key or
 * cookie) the only ones that authenticate by themselves. */
START_TEST(test_real_routes_roles)
{
    for (const struct api_route *rt = api_routes; rt->method; rt++) {
        int open = strncmp(rt->pattern, "/health", 7) == 0 ||
                   strcmp(rt->pattern, "/_tt/ws-auth") == 0 ||
                   strcmp(rt->pattern, "/api/v1/session") == 0;
        ck_assert_msg((rt->role == KEY_ROLE_NONE) == open, "%s %s has role %d",
                      rt->method, rt->pattern, rt->role);
    }
}
END_TEST

/* Build the suite. */
static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_exact_match);
    tcase_add_test(tc, test_param_capture);
    tcase_add_test(tc, test_literal_after_param);
    tcase_add_test(tc, test_param_not_empty);
    tcase_add_test(tc, test_trailing_slash);
    tcase_add_test(tc, test_bad_method_allow);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_allow_small_buffer);
    tcase_add_test(tc, test_empty_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("api_routes");
    tcase_add_test(tc, test_real_routes_reachable);
    tcase_add_test(tc, test_real_routes_errors);
    tcase_add_test(tc, test_real_routes_roles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(route_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
