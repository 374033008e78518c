/*
 * checkjson.h: what the Check suites of JSON-producing modules share:
 * JSON written with ' for " in C strings, and assertions that a text
 * contains (or lacks) another.
 */
#ifndef TT_CHECKJSON_H
#define TT_CHECKJSON_H

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Assert that haystack contains needle, or does not, printing both. */
#define ck_assert_contains(haystack, needle)                                   \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                        \
                  "\"%s\" does not contain \"%s\"", (haystack), (needle))
#define ck_assert_lacks(haystack, needle)                                      \
    ck_assert_msg(strstr((haystack), (needle)) == NULL,                        \
                  "\"%s\" contains \"%s\"", (haystack), (needle))

/* Load JSON written with ' for " (\u0000 allowed); the text must be
 * valid. */
static inline json_t *load(const char *text)
{
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t e;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "%s: %s", s, e.text);
    free(s);
    return j;
}

#endif
