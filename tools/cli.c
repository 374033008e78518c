/*
 * cli.c: the load tools' shared command line, messages and helpers
 * (cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_KEY_LINE 512 /* longest key-file line read */

const char *cli_prog = "tt-tool";

void cli_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_usage(FILE *f, const char *head, const struct cli_opt *opts, int n)
{
    fputs(head, f);
    for (int i = 0; i < n; i++)
        fprintf(f, "  --%-12s %s\n", opts[i].name, opts[i].help);
}

/* Store value s of option o into cfg; 0, or -1 after a message. */
static int cli_set(void *cfg, const struct cli_opt *o, const char *s)
{
    char *p = (char *)cfg + o->off, *end;
    if (o->kind == 's') {
        *(const char **)p = s;
        return 0;
    }
    if (o->kind == 'f') {
        *(int *)p = 1;
        return 0;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= o->lo && v <= o->hi) ||
        (o->kind == 'w' && v != floor(v))) {
        cli_msg("invalid value \"%s\" for \"--%s\": expected a %s from %.16g "
                "to %.16g",
                s, o->name, o->kind == 'w' ? "whole number" : "number", o->lo,
                o->hi);
        return -1;
    }
    *(double *)p = v;
    return 0;
}

int cli_parse(void *cfg, const char *head, const struct cli_opt *opts, int n,
              int argc, char **argv)
{
    struct option *longopts = calloc((size_t)n + 2, sizeof(*longopts));
    int idx, opt, rc = 0;
    if (longopts == NULL) {
        cli_msg("out of memory");
        return 2;
    }
    for (int i = 0; i < n; i++)
        longopts[i] =
            (struct option){opts[i].name, opts[i].kind != 'f', NULL, i};
    longopts[n] = (struct option){"help", 0, NULL, 'h'};
    while (rc == 0 &&
           (opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (opt == 'h') {
            cli_usage(stdout, head, opts, n);
            exit(0);
        }
        if (opt < 0 || opt >= n || opt != idx ||
            cli_set(cfg, &opts[opt], optarg ? optarg : "") < 0)
            rc = 2;
    }
    if (rc == 0 && optind < argc) {
        cli_msg("unexpected argument \"%s\"", argv[optind]);
        rc = 2;
    }
    free(longopts);
    if (rc != 0)
        cli_usage(stderr, head, opts, n);
    return rc;
}

int cli_events_url(const char *arg, char *out, size_t n)
{
    size_t ul = strcspn(arg, "?#");
    while (ul > 0 && arg[ul - 1] == '/')
        ul--;
    if (ul + sizeof "/api/v1/events" > n || ul == 0) {
        cli_msg("invalid value \"%s\" for \"--url\"", arg);
        return 2;
    }
    snprintf(out, n, "%.*s/api/v1/events", (int)ul, arg);
    return 0;
}

int cli_read_key_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    char line[CLI_KEY_LINE];
    int rc = -1;
    while (f && rc < 0 && fgets(line, sizeof line, f)) {
        char *s = line + strspn(line, " \t"), *e = s + strlen(s);
        while (e > s && strchr(" \t\r\n", e[-1]))
            *--e = '\0';
        if (*s && *s != '#' && (size_t)(e - s) < n) {
            memcpy(buf, s, (size_t)(e - s) + 1);
            rc = 0;
        }
    }
    if (f)
        fclose(f);
    return rc;
}

double cli_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cli_target(const char *url_arg, const char *key, const char *key_file,
               char *url, size_t n, const char *head,
               const struct cli_opt *opts, int nopts)
{
    if (url_arg == NULL || (key == NULL) == (key_file == NULL)) {
        cli_msg("--url and one of --key and --key-file are required");
        cli_usage(stderr, head, opts, nopts);
        return 2;
    }
    return cli_events_url(url_arg, url, n) != 0 ? 2 : 0;
}

int cli_key_arg(const char *key, char *buf, size_t n)
{
    if (key == NULL)
        return 1;
    if (key[0] == '\0' || strlen(key) >= n) {
        cli_msg("invalid value for \"--key\": empty or too long");
        return -1;
    }
    snprintf(buf, n, "%s", key);
    return 0;
}
